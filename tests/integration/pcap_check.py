#!/usr/bin/env python3
"""Checks a pcap file (Ethernet link type, as tcpdump writes on a veth) of moontun's outer
traffic. Usage:
  pcap_check.py FILE --udp-prefix HEX [--min N]   every UDP payload starts with HEX (at least N)
  pcap_check.py FILE --absent TEXT [--min N]      no packet contains TEXT (at least N packets)
  pcap_check.py FILE --tcp-mss MSS [--min N]      every TCP SYN carries MSS option == MSS
Exit 0 when the claim holds, 1 with the reason otherwise."""
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        header = f.read(24)
        magic = struct.unpack("<I", header[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            _, _, incl, _ = struct.unpack(endian + "IIII", rec)
            yield f.read(incl)


def ip_payload(frame):
    """Returns (proto, l4 bytes, ip bytes) for IPv4/IPv6 inside Ethernet, else None."""
    etype = struct.unpack("!H", frame[12:14])[0]
    ip = frame[14:]
    if etype == 0x0800:
        ihl = (ip[0] & 0x0F) * 4
        return ip[9], ip[ihl:], ip
    if etype == 0x86DD:
        return ip[6], ip[40:], ip
    return None


def main():
    path, mode, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    minimum = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--min" else 1
    seen = 0
    for frame in packets(path):
        parsed = ip_payload(frame)
        if parsed is None:
            continue
        proto, l4, ip = parsed
        if mode == "--udp-prefix" and proto == 17:
            payload = l4[8:]
            if not payload:
                continue  # keepalive
            seen += 1
            if not payload.startswith(bytes.fromhex(arg)):
                sys.exit("UDP payload starts with %s, not %s" % (payload[:8].hex(), arg))
        elif mode == "--absent":
            seen += 1
            if arg.encode() in frame:
                sys.exit("found %r in a captured packet" % arg)
        elif mode == "--tcp-mss" and proto == 6:
            flags = l4[13]
            if not flags & 0x02:
                continue
            seen += 1
            off, end = 20, (l4[12] >> 4) * 4
            mss = None
            while off < end:
                kind = l4[off]
                if kind == 0:
                    break
                if kind == 1:
                    off += 1
                    continue
                if kind == 2:
                    mss = struct.unpack("!H", l4[off + 2:off + 4])[0]
                off += l4[off + 1]
            if mss != int(arg):
                sys.exit("SYN with MSS %s, expected %s" % (mss, arg))
    if seen < minimum:
        sys.exit("only %d matching packets captured, expected at least %d" % (seen, minimum))
    print("pcap: %d packets checked, claim holds" % seen)


if __name__ == "__main__":
    main()
