#!/usr/bin/env python3
"""Sends hostile input to a moontun server: MODE is one of
  garbage-tcp   random bytes on several TCP connections
  zero-tcp      a frame of length 0
  huge-tcp      a frame header claiming 0xFFFF bytes, then bytes
  garbage-udp   random datagrams of random sizes (0-1500 and one of 60000 bytes)
Usage: hostile_peer.py MODE HOST PORT. Bounded: a few hundred sends, a few seconds."""
import os
import random
import socket
import sys
import time

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(1234)


def tcp_send(data, wait=0.3):
    s = socket.create_connection((host, port), timeout=3)
    try:
        s.sendall(data)
        time.sleep(wait)
        s.settimeout(2)
        try:
            closed = s.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            closed = True
    finally:
        s.close()
    return closed


if mode == "garbage-tcp":
    for i in range(20):
        tcp_send(os.urandom(random.randint(1, 4000)), wait=0.05)
elif mode == "zero-tcp":
    if not tcp_send(b"\x00\x00" + os.urandom(100)):
        sys.exit("server kept a connection that sent a zero-length frame")
elif mode == "huge-tcp":
    if not tcp_send(b"\xff\xff" + os.urandom(3000)):
        sys.exit("server kept a connection that sent a 65535-byte frame header")
elif mode == "garbage-udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(300):
        s.sendto(os.urandom(random.randint(0, 1500)), (host, port))
    s.sendto(os.urandom(60000), (host, port))
    s.close()
else:
    sys.exit("unknown mode " + mode)
print("hostile peer: %s done" % mode)
