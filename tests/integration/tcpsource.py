#!/usr/bin/env python3
"""Connects to ADDR PORT (retrying for a few seconds) and sends FILE, then closes."""
import socket
import sys
import time

addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
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
    sock.sendfile(src)
    sock.shutdown(socket.SHUT_WR)
    # Wait for the sink to close, so every byte has been taken before we report success.
    sock.recv(1)
