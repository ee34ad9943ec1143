#!/usr/bin/env python3
"""Many UDP peers in one process, speaking moontun's UDP framing without a session identity
(an older client): one IPv4 packet per datagram, an empty datagram is a keepalive.

  udp_peers.py SERVER PORT COUNT [--wait SEC] [--size N] [--inner-base 10.9.0.10]

Peer i sends from its own UDP socket (its own source port), with inner address
inner-base + i. First every peer sends a keepalive (the server learns it), then, at once,
every peer sends one ICMP echo request to 10.9.0.1 through the tunnel; replies are collected
for at most --wait seconds. Prints one line: peers requests replies loss_pct seconds.
Bounded: COUNT <= 10000 datagrams of each kind, one burst, a fixed wait."""
import argparse
import ipaddress
import resource
import selectors
import socket
import struct
import sys
import time


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def echo_request(src, dst, ident, size):
    payload = bytes(size)
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + payload
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), ident, 0, 64, 1, 0,
                      src.packed, dst.packed)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + icmp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--wait", type=float, default=5.0)
    ap.add_argument("--size", type=int, default=56)
    ap.add_argument("--inner-base", default="10.9.0.10")
    ap.add_argument("--target", default="10.9.0.1")
    a = ap.parse_args()
    if not 1 <= a.count <= 10000:
        sys.exit("count must be 1-10000")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.count + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, soft), max(need, hard)))
    dst = (a.server, a.port)
    base = ipaddress.IPv4Address(a.inner_base)
    target = ipaddress.IPv4Address(a.target)
    socks = []
    for i in range(a.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.bind(("0.0.0.0", 0))
        socks.append(s)
    # Introduce every peer, paced so that admission is not what is measured.
    for i, s in enumerate(socks):
        s.sendto(b"", dst)
        if i % 200 == 199:
            time.sleep(0.02)
    time.sleep(1.0)
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
    # Drain the server's keepalives, if any arrived.
    for key, _ in sel.select(timeout=0):
        try:
            while True:
                key.fileobj.recv(65535)
        except BlockingIOError:
            pass
    reqs = [echo_request(base + i, target, i & 0xFFFF, a.size) for i in range(a.count)]
    got = set()
    t0 = time.monotonic()
    for i, s in enumerate(socks):
        try:
            s.sendto(reqs[i], dst)
        except OSError:
            pass
    deadline = t0 + a.wait
    last = t0
    while len(got) < a.count and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                while True:
                    d = s.recv(65535)
                    # An echo reply (ICMP type 0) to this peer's inner address.
                    if len(d) >= 28 and d[9] == 1 and d[20] == 0 and \
                            d[16:20] == (base + key.data).packed:
                        got.add(key.data)
                        last = time.monotonic()
            except BlockingIOError:
                pass
    loss = 100.0 * (a.count - len(got)) / a.count
    print("%d %d %d %.1f %.3f" % (a.count, a.count, len(got), loss, last - t0))


if __name__ == "__main__":
    main()
