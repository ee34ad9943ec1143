#!/usr/bin/env python3
"""A tiny DNS responder for the tests: answers every A query with 10.9.0.53 and any other type
with an empty NOERROR, on UDP port 53 of each ADDR, and appends "name type" for every query it
sees to LOG. Usage: dns_responder.py LOG ADDR..."""
import select
import socket
import struct
import sys

ANSWER_A = socket.inet_aton("10.9.0.53")


def question(msg):
    """Returns (name, qtype, offset after the question) of the first question, or None."""
    off, labels = 12, []
    while off < len(msg):
        n = msg[off]
        if n == 0:
            if off + 5 > len(msg):
                return None
            qtype = struct.unpack("!H", msg[off + 1:off + 3])[0]
            return ".".join(labels).lower(), qtype, off + 5
        if n > 63 or off + 1 + n > len(msg):
            return None
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return None


def answer(msg):
    if len(msg) < 12:
        return None, None
    q = question(msg)
    if q is None:
        return None, None
    name, qtype, end = q
    flags = 0x8000 | (struct.unpack("!H", msg[2:4])[0] & 0x0100) | 0x0080
    count = 1 if qtype == 1 else 0
    out = msg[:2] + struct.pack("!HHHHH", flags, 1, count, 0, 0) + msg[12:end]
    if count:  # a pointer to the question's name, A, IN, TTL 60, 4 bytes
        out += struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + ANSWER_A
    return out, "%s %d" % (name, qtype)


def main():
    log = open(sys.argv[1], "a", buffering=1)
    socks = []
    for addr in sys.argv[2:]:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((addr, 53))
        socks.append(s)
    print("listening on", " ".join(sys.argv[2:]), flush=True)
    while True:
        for s in select.select(socks, [], [])[0]:
            msg, peer = s.recvfrom(4096)
            reply, line = answer(msg)
            if reply:
                log.write(line + "\n")
                s.sendto(reply, peer)


if __name__ == "__main__":
    main()
