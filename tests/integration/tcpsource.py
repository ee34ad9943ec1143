#!/usr/bin/env python3
"""Connects to ADDR PORT (retrying for a few seconds) and sends FILE, then closes.
An optional fourth argument limits the rate (bytes per second), to keep a connection open
across something a test does meanwhile."""
import socket
import sys
import time

addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rate = int(sys.argv[4]) if len(sys.argv) > 4 else 0
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
deadline = time.time() + 10
while True:
    try:
        sock = socket.create_connection((addr, port), timeout=10)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.2)
with sock, open(path, "rb") as src:
    sock.settimeout(30)
    if rate:
        chunk = max(1024, rate // 20)
        start, sent = time.time(), 0
        while True:
            data = src.read(chunk)
            if not data:
                break
            sock.sendall(data)
            sent += len(data)
            ahead = sent / rate - (time.time() - start)
            if ahead > 0:
                time.sleep(ahead)
    else:
        sock.sendfile(src)
    sock.shutdown(socket.SHUT_WR)
    # Wait for the sink to close, so every byte has been taken before we report success.
    sock.recv(1)
