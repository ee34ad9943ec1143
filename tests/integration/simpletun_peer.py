#!/usr/bin/env python3
"""A throwaway simpletun-style peer: connects over TCP, sends ICMP echo requests framed as
simpletun frames them (2-byte big-endian length + IP packet), and checks the framed replies.
Usage: simpletun_peer.py SERVER PORT SRC_IP DST_IP COUNT. Exit 0 when every echo came back."""
import socket
import struct
import sys


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def echo_request(src, dst, ident, seq):
    payload = b"simpletun-peer" + bytes(range(34))
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    total = 20 + len(icmp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, seq, 0, 64, 1, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + icmp


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("server closed the connection")
        buf += chunk
    return buf


def main():
    server, port, src, dst, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    ident = 0x5354
    sock = socket.create_connection((server, port), timeout=5)
    got = set()
    for seq in range(1, count + 1):
        pkt = echo_request(src, dst, ident, seq)
        sock.sendall(struct.pack("!H", len(pkt)) + pkt)
        while seq not in got:
            (length,) = struct.unpack("!H", read_exact(sock, 2))
            frame = read_exact(sock, length)
            ihl = (frame[0] & 0x0F) * 4
            if frame[9] != 1 or socket.inet_ntoa(frame[12:16]) != dst:
                continue  # not ours (e.g. IPv6 router solicitations)
            typ, code, _, rid, rseq = struct.unpack("!BBHHH", frame[ihl:ihl + 8])
            if typ == 0 and rid == ident:
                if checksum(frame[ihl:]) != 0:
                    sys.exit("reply %d has a bad ICMP checksum" % rseq)
                got.add(rseq)
    print("simpletun peer: %d/%d echo replies" % (len(got), count))


if __name__ == "__main__":
    main()
