#!/usr/bin/env python3
"""Writes a small pcap (LINKTYPE_RAW) for the replay test: traffic from the tunnel side to
10.9.0.1 (TCP to an allowed and a refused port, UDP, ICMP echo, IPv6 TCP, a lying IPv4 header),
then this host's own connection and its reply, spread over time so that timers run.
Usage: make_capture.py OUT.pcap [--lan]   (--lan: LAN traffic for nat.lua instead)"""
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def addr4(a):
    return bytes(int(x) for x in a.split("."))


def ip4(src, dst, proto, l4, ttl=64, total=None):
    total = total if total is not None else 20 + len(l4)
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, ttl, proto, 0, addr4(src), addr4(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + l4


def l4sum(src, dst, proto, l4, v6=False):
    if v6:
        import socket
        ph = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        ph += struct.pack("!IxxxB", len(l4), proto)
    else:
        ph = addr4(src) + addr4(dst) + struct.pack("!xBH", proto, len(l4))
    return csum(ph + l4)


def tcp(src, dst, sport, dport, flags, seq=1, ack=0, v6=False):
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    c = l4sum(src, dst, 6, h, v6)
    return h[:16] + struct.pack("!H", c) + h[18:]


def udp(src, dst, sport, dport, payload):
    h = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = l4sum(src, dst, 17, h) or 0xFFFF
    return h[:6] + struct.pack("!H", c) + h[8:]


def icmp_echo(ident, seq):
    h = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"ping"
    return h[:2] + struct.pack("!H", csum(h)) + h[4:]


def ip6_tcp(src, dst, sport, dport, flags):
    import socket
    t = tcp(src, dst, sport, dport, flags, v6=True)
    h = struct.pack("!IHBB", 6 << 28, len(t), 6, 64)
    return h + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + t


SYN, RST, ACK = 0x02, 0x04, 0x10


def tunnel_mix():
    peer, me = "10.9.0.2", "10.9.0.1"
    return [
        (0.0, ip4(peer, me, 6, tcp(peer, me, 40000, 22, SYN))),    # allowed: pass
        (0.1, ip4(peer, me, 6, tcp(peer, me, 40001, 23, SYN))),    # refused: RST (reject=1)
        (0.2, ip4(peer, me, 17, udp(peer, me, 5000, 53, b"q"))),   # refused UDP: drop
        (0.3, ip4(peer, me, 1, icmp_echo(7, 1))),                  # icmp allowed: pass
        (0.4, ip6_tcp("fd09::2", "fd09::1", 40002, 22, SYN)),      # IPv6 allowed: pass
        (0.5, ip4(peer, me, 6, tcp(peer, me, 40003, 22, SYN), total=900)),  # a liar: no views
        (400.0, ip4(peer, me, 6, tcp(peer, me, 40000, 22, ACK, seq=2))),  # after the idle expiry
    ]


def lan_mix():
    lan, far = "192.168.77.2", "10.9.0.1"
    return [
        (0.0, ip4(lan, far, 6, tcp(lan, far, 40000, 80, SYN))),
        (0.1, ip4(lan, far, 17, udp(lan, far, 5000, 53, b"q"))),
        (0.2, ip4(lan, far, 1, icmp_echo(7, 1))),
        (0.3, ip4("192.168.77.3", far, 6, tcp("192.168.77.3", far, 40000, 80, SYN))),
    ]


def main():
    out = sys.argv[1]
    pkts = lan_mix() if "--lan" in sys.argv else tunnel_mix()
    base = 1767225600  # 2026-01-01: any fixed time
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        for t, p in pkts:
            sec = base + int(t)
            usec = int(round((t - int(t)) * 1e6))
            f.write(struct.pack("<IIII", sec, usec, len(p), len(p)) + p)


if __name__ == "__main__":
    main()
