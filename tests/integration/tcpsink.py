#!/usr/bin/env python3
"""Accepts one TCP connection on ADDR PORT and writes everything it receives to FILE."""
import socket
import sys

addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as srv:
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(1)
    srv.settimeout(30)
    conn, _ = srv.accept()
    conn.settimeout(30)
    with conn, open(path, "wb") as out:
        while True:
            data = conn.recv(1 << 16)
            if not data:
                break
            out.write(data)
