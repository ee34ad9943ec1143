#!/usr/bin/env python3
"""A hostile moontun client for the offload path: it completes the offload handshake, then
sends extended frames whose virtio-net headers and sizes lie, each aimed at the server's
device or, through the server, at another (plain) peer. Faults it once triggered: a heap
overflow (a frame of more than 64 KiB), unchecked offload headers reaching the kernel and
fanning out into 65,000 segments, oversized packets that made plain peers close, and a
super-packet cut twice in place (corrupt sequence numbers).

  offload_liar.py attack SERVER PORT      run every case, one line per case sent
  offload_liar.py check PCAP              the super-packets that reached the plain peer's
                                          device (a tcpdump of its tun) arrived right

Inner addresses: the liar is 10.9.0.66, the server 10.9.0.1, the plain peer 10.9.0.3."""
import socket
import struct
import sys
import threading
import time

HS_IP = bytes([0x45, 0, 0, 44, 0, 0, 0, 0, 1, 253]) + bytes(10)
HS_MAGIC = b"moontun-offload\0"
HELLO, SWITCH = 1, 2
LIAR, SERVER, PLAIN = "10.9.0.66", "10.9.0.1", "10.9.0.3"
NEEDS_CSUM = 1
GSO_TCPV4 = 1
SEQ = 1_000_000


def hs(kind):
    msg = bytearray(HS_IP + HS_MAGIC + bytes(8))
    msg[36] = kind
    return bytes(msg)


def frame(payload):
    return struct.pack("!H", len(payload)) + payload


def xframe(vnet, packet, claim=None):
    body = vnet + packet
    return struct.pack("!I", claim if claim is not None else len(body)) + body


def vnet_hdr(flags=0, gso=0, hdr_len=0, gso_size=0, csum_start=0, csum_off=0):
    return struct.pack("<BBHHHH", flags, gso, hdr_len, gso_size, csum_start, csum_off)


def csum(data, start=0):
    if len(data) % 2:
        data += b"\0"
    s = start + sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ip4(src, dst, proto, l4):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 7, 0x4000, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    c = 0xFFFF - csum(hdr)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + l4


def pseudo(src, dst, proto, n):
    return csum(socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, n))


def tcp_super(dst, paylen, flags=0x19):
    """A TCP super-packet as a tun device hands it out: the checksum field holds the
    pseudo-header sum (partial), IP lengths cover the whole."""
    payload = bytes((i * 7 + 3) & 0xFF for i in range(paylen))
    l4len = 20 + paylen
    partial = pseudo(LIAR, dst, 6, l4len)
    tcp = struct.pack("!HHIIBBHHH", 4444, 5555, SEQ, 1, 5 << 4, flags, 502, partial, 0)
    return ip4(LIAR, dst, 6, tcp + payload)


def udp_packet(dst, paylen):
    payload = bytes(paylen)
    udp = struct.pack("!HHHH", 4444, 5555, 8 + paylen, 0)
    return ip4(LIAR, dst, 17, udp + payload)


def read_frames(sock, n):
    """Reads until n ordinary frames arrived; returns their payloads."""
    buf, out = b"", []
    while len(out) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("server closed during the handshake")
        buf += chunk
        while len(buf) >= 2:
            ln = struct.unpack("!H", buf[:2])[0]
            if len(buf) < 2 + ln:
                break
            out.append(buf[2:2 + ln])
            buf = buf[2 + ln:]
    return out


def drain(sock):
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def attack(server, port):
    sock = socket.create_connection((server, port), timeout=5)
    sock.sendall(frame(hs(HELLO)))
    # The server answers SWITCH (it may have sent a HELLO of its own first, as old servers did).
    got = []
    while hs(SWITCH) not in got:
        if len(got) > 4:
            raise SystemExit("no SWITCH from the server")
        got += read_frames(sock, 1)
    sock.sendall(frame(hs(SWITCH)))
    threading.Thread(target=drain, args=(sock,), daemon=True).start()
    time.sleep(0.2)

    def send(name, data):
        sock.sendall(data)
        print(name, flush=True)
        time.sleep(0.3)

    # A packet so the server learns where 10.9.0.66 lives.
    send("learn", xframe(vnet_hdr(), udp_packet(SERVER, 10)))
    # The header seen from a hostile peer: TCPv4 GSO, hdr_len 65535, gso_size 0,
    # csum_start 60000, on a 28-byte UDP packet; to the device and to the plain peer.
    liar = vnet_hdr(NEEDS_CSUM, GSO_TCPV4, 65535, 0, 60000, 6)
    send("liar-header-device", xframe(liar, udp_packet(SERVER, 0)))
    send("liar-header-relay", xframe(liar, udp_packet(PLAIN, 0)))
    # gso_size 1: one frame, 60,000 segments for the plain peer's queue.
    big = tcp_super(PLAIN, 60000)
    send("gso-size-1", xframe(vnet_hdr(NEEDS_CSUM, GSO_TCPV4, 40, 1, 20, 16), big))
    # A partial checksum pointed into the IP header.
    send("csum-in-ip", xframe(vnet_hdr(NEEDS_CSUM, 0, 0, 0, 10, 0), udp_packet(SERVER, 100)))
    # 3,000-byte UDP packet (no offload) for the plain peer, whose frames take about 1,650.
    send("oversize-udp", xframe(vnet_hdr(), udp_packet(PLAIN, 3000)))
    # Segments bigger than the plain peer's frames (gso 4000): once cut twice, in place.
    send("gso-4000", xframe(vnet_hdr(NEEDS_CSUM, GSO_TCPV4, 40, 4000, 20, 16),
                            tcp_super(PLAIN, 10000)))
    # Segments bigger than the plain peer's MTU but inside its frames (gso 1500): re-cut.
    send("gso-1500", xframe(vnet_hdr(NEEDS_CSUM, GSO_TCPV4, 40, 1500, 20, 16),
                            tcp_super(PLAIN, 10000)))
    # Last: a frame longer than any packet (65,791 bytes behind the header), the one that
    # overflowed a heap buffer. The server must close this connection, nothing else.
    # Its source is a group address too: the server's push_tag.lua prepends 4 bytes, after
    # which the destination reads as that group, and the packet is flooded to every peer.
    group = socket.inet_aton("224.0.0.9")
    head = struct.pack("!BBHHHBBH", 0x45, 0, 0xFFFF, 0, 0, 64, 17, 0) + group + group
    huge = head + bytes(65791 - len(head))
    send("huge-frame", xframe(vnet_hdr(NEEDS_CSUM, 0, 0, 0, 20, 16), huge))
    time.sleep(0.5)
    sock.close()


def pcap_packets(path):
    with open(path, "rb") as f:
        header = f.read(24)
        magic = struct.unpack("<I", header[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        linktype = struct.unpack(endian + "I", header[20:24])[0]
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            incl = struct.unpack(endian + "IIII", rec)[2]
            data = f.read(incl)
            if linktype == 113:  # Linux cooked capture (any)
                data = data[16:]
            yield data


def check(path):
    """Every TCP segment from the liar: at most 1400 bytes, a valid checksum, consecutive
    sequence numbers from SEQ, FIN|PSH only on the last of each super-packet; both
    10,000-byte super-packets that may pass arrive whole (the gso-4000 one may be refused
    instead, never corrupted). Nothing from the gso-size-1 packet arrives."""
    segs = []
    for p in pcap_packets(path):
        if len(p) < 40 or p[0] >> 4 != 4 or p[9] != 6 or socket.inet_ntoa(p[12:16]) != LIAR:
            continue
        ihl = (p[0] & 15) * 4
        tot = struct.unpack("!H", p[2:4])[0]
        l4 = p[ihl:tot]
        if tot > 1400:
            raise SystemExit("segment of %d bytes (> MTU 1400)" % tot)
        if csum(l4, pseudo(LIAR, PLAIN, 6, len(l4))) != 0xFFFF:
            raise SystemExit("segment with a bad TCP checksum")
        seq = struct.unpack("!I", l4[4:8])[0]
        segs.append((seq, len(l4) - (l4[12] >> 4) * 4, l4[13]))
    runs, cur = [], []
    for seq, n, flags in segs:
        if seq == SEQ and cur:
            runs.append(cur)
            cur = []
        cur.append((seq, n, flags))
    if cur:
        runs.append(cur)
    if not runs:
        raise SystemExit("no super-packet reached the plain peer")
    for run in runs:
        expect = SEQ
        for i, (seq, n, flags) in enumerate(run):
            if seq != expect:
                raise SystemExit("sequence %d where %d was due (segment %d)" % (seq, expect, i))
            last = i == len(run) - 1
            if bool(flags & 0x09) != last:
                raise SystemExit("FIN/PSH on segment %d of %d" % (i, len(run)))
            expect += n
        if expect - SEQ == 60000:
            raise SystemExit("the gso_size-1 super-packet was delivered")
        if expect - SEQ != 10000:
            raise SystemExit("a super-packet arrived with %d of 10000 bytes" % (expect - SEQ))
    print("%d super-packet(s), %d segments, all right" % (len(runs), len(segs)))


if __name__ == "__main__":
    if sys.argv[1] == "attack":
        attack(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "check":
        check(sys.argv[2])
    else:
        raise SystemExit(__doc__)
