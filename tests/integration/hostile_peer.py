#!/usr/bin/env python3
"""Sends hostile input to a moontun server: MODE is one of
  garbage-tcp   random bytes on several TCP connections, each closed by us after 0.1 s (random
                lengths are mostly frames longer than the server takes, which it skips)
  zero-tcp      a frame of length 0
  huge-tcp      a whole 65535-byte frame (longer than the server takes, but a frame): the
                server must skip it and keep the connection; then a zero length, which
                must close it
  relay-switch  tap: the offload SWITCH as a first frame, then an extended frame holding the
                44-byte SWITCH message (a group destination MAC: the server floods it); other
                peers must not take it for a handshake
  garbage-udp   random datagrams of random sizes (0-1500 and one of 60000 bytes)
  slowloris N   N connections that each send half a frame, then hold it; reports after how
                long the server closed each (waits at most 30 s)
  flood N       N connections at once, held for 2 s; reports how many the server kept open
  lying         framed IP packets whose headers lie (lengths beyond the packet, IHL 15,
                truncated IPv6, a TCP data offset past the end), source 10.66.0.x
Usage: hostile_peer.py MODE HOST PORT [N]. Bounded in count and time."""
import os
import random
import socket
import sys
import time

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(1234)


def tcp_send(data, wait=0.3):
    """Sends data on a new connection; True when the server then closes it (EOF or reset)
    within 2 s. Whatever the server sends first (a moontun offload HELLO) is read past."""
    s = socket.create_connection((host, port), timeout=3)
    try:
        s.sendall(data)
        time.sleep(wait)
        s.settimeout(2)
        try:
            while s.recv(4096):
                pass
            closed = True
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            closed = False
    finally:
        s.close()
    return closed


if mode == "garbage-tcp":
    for i in range(20):
        s = socket.create_connection((host, port), timeout=3)
        s.sendall(os.urandom(random.randint(1, 4000)))
        time.sleep(0.1)
        s.close()
elif mode == "zero-tcp":
    if not tcp_send(b"\x00\x00" + os.urandom(100)):
        sys.exit("server kept a connection that sent a zero-length frame")
elif mode == "huge-tcp":
    s = socket.create_connection((host, port), timeout=3)
    s.sendall(b"\xff\xff" + os.urandom(65535))
    time.sleep(0.5)
    s.setblocking(False)
    try:
        if s.recv(4096) == b"":
            sys.exit("server closed a connection that sent a whole 65535-byte frame")
    except BlockingIOError:
        pass
    except ConnectionResetError:
        sys.exit("server reset a connection that sent a whole 65535-byte frame")
    s.close()
    if not tcp_send(b"\xff\xff" + os.urandom(65535) + b"\x00\x00" + os.urandom(100)):
        sys.exit("server kept a connection that sent a zero-length frame after a 65535-byte one")
elif mode == "relay-switch":
    import struct
    switch = bytes([0x45, 0, 0, 44, 0, 0, 0, 0, 1, 253]) + bytes(10) + b"moontun-offload\0"
    switch += bytes([2]) + bytes(7)
    assert len(switch) == 44
    xframe = struct.pack("!I", 10 + len(switch)) + bytes(10) + switch
    closed = tcp_send(struct.pack("!H", len(switch)) + switch + xframe, wait=0.5)
    print("relay-switch: sent; the server %s the connection" % ("closed" if closed else "kept"))
elif mode == "garbage-udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(300):
        s.sendto(os.urandom(random.randint(0, 1500)), (host, port))
    s.sendto(os.urandom(60000), (host, port))
    s.close()
elif mode == "slowloris":
    n = int(sys.argv[4])
    conns = []
    for i in range(n):
        c = socket.create_connection((host, port), timeout=3)
        c.sendall(b"\x05\xdc" + b"half a frame")  # promises 1500 bytes, sends 12
        c.setblocking(False)
        conns.append(c)
    start = time.time()
    closed = {}
    while len(closed) < n and time.time() - start < 30:
        for i, c in enumerate(conns):
            if i in closed:
                continue
            try:
                if c.recv(1) == b"":
                    closed[i] = time.time() - start
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed[i] = time.time() - start
        time.sleep(0.1)
    for c in conns:
        c.close()
    if len(closed) < n:
        sys.exit("slowloris: only %d of %d half-frame connections were closed" % (len(closed), n))
    print("slowloris: %d connections closed after %.1f-%.1f s" % (n, min(closed.values()), max(closed.values())))
elif mode == "flood":
    n = int(sys.argv[4])
    conns = []
    for i in range(n):
        try:
            conns.append(socket.create_connection((host, port), timeout=3))
        except OSError:
            pass
    time.sleep(2)
    alive = 0
    for c in conns:
        c.setblocking(False)
        try:
            alive += c.recv(1) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        c.close()
    print("flood: %d connections made, %d kept open by the server" % (len(conns), alive))
elif mode == "lying":
    import struct

    def frame(pkt):
        return struct.pack("!H", len(pkt)) + pkt

    def ipv4(total, ihl=5, proto=6, body=b""):
        hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, 0, 64, proto, 0,
                          bytes([10, 66, 0, 1]), bytes([10, 9, 0, 1]))
        return hdr + body

    lies = [
        ipv4(60000, body=b"x" * 20),                      # total length far beyond the packet
        ipv4(40, ihl=15, body=b"x" * 20),                 # header length beyond the packet
        ipv4(20)[:10],                                    # truncated IPv4 header
        ipv4(40, body=struct.pack("!HHIIBB", 1, 2, 3, 4, 0xF0, 2) + b"\0" * 6),  # TCP doff 60
        bytes([0x60, 0, 0, 0, 0xFF, 0xFF, 17, 64]) + bytes([10, 66, 0, 2]) + b"\0" * 12 + b"\0" * 16,  # IPv6 payload beyond
    ]
    s = socket.create_connection((host, port), timeout=3)
    for rounds in range(20):
        for pkt in lies:
            s.sendall(frame(pkt))
    time.sleep(0.5)
    s.close()
    print("lying: %d lying packets sent" % (20 * len(lies)))
else:
    sys.exit("unknown mode " + mode)
print("hostile peer: %s done" % mode)
