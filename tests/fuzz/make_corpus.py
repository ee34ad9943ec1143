#!/usr/bin/env python3
"""Writes the seed corpora of the fuzzers in tests/fuzz: real packets (with valid checksums)
and a few liars for fuzz_proto, frame streams for fuzz_frame, and small programs over those
packets for fuzz_lpacket. Deterministic; run it again after changing it and commit the result.

    tests/fuzz/make_corpus.py [OUTDIR]   (default: tests/fuzz/corpus)
"""
import os
import shutil
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(proto, payload, src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", ident=1, frag=0,
        ttl=64, options=b"", total=None):
    ihl = (20 + len(options)) // 4
    tot = total if total is not None else 20 + len(options) + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tot, ident, frag, ttl, proto, 0, src, dst)
    h += options
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


SRC6 = bytes.fromhex("fd000000000000000000000000000001")
DST6 = bytes.fromhex("fd000000000000000000000000000002")


def ip6(nxt, payload, src=SRC6, dst=DST6, plen=None):
    plen = plen if plen is not None else len(payload)
    return struct.pack("!IHBB16s16s", 0x60000000, plen, nxt, 64, src, dst) + payload


def pseudo4(src, dst, proto, length):
    return src + dst + struct.pack("!BBH", 0, proto, length)


def pseudo6(src, dst, proto, length):
    return src + dst + struct.pack("!I3xB", length, proto)


def with_csum(seg, off, pseudo):
    seg = seg[:off] + b"\0\0" + seg[off + 2:]
    return seg[:off] + struct.pack("!H", csum(pseudo + seg)) + seg[off + 2:]


def tcp(sport, dport, flags, payload=b"", options=b"", seq=1000, ack=0, pseudo=None):
    doff = (20 + len(options)) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 65535, 0, 0)
    seg += options + payload
    return with_csum(seg, 16, pseudo(len(seg)))


def udp(sport, dport, payload, pseudo=None, zero=False):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return seg if zero else with_csum(seg, 6, pseudo(len(seg)))


def icmp4(typ, code, rest, payload=b""):
    msg = struct.pack("!BBH", typ, code, 0) + rest + payload
    return with_csum(msg, 2, b"")


def icmp6(typ, code, rest, payload=b"", src=SRC6, dst=DST6):
    msg = struct.pack("!BBH", typ, code, 0) + rest + payload
    return with_csum(msg, 2, pseudo6(src, dst, 58, len(msg)))


S4, D4 = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
P4 = {p: (lambda n, p=p: pseudo4(S4, D4, p, n)) for p in (6, 17)}
P6 = {p: (lambda n, p=p: pseudo6(SRC6, DST6, p, n)) for p in (6, 17, 58)}

SYN_OPTS = bytes.fromhex("020405b4") + b"\x04\x02" + bytes.fromhex("080a0001e2400000000001030307")
DNS_Q = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")


def eth(etype, payload, vlans=()):
    h = bytes.fromhex("020000000002") + bytes.fromhex("020000000001")
    for tpid, vid in vlans:
        h += struct.pack("!HH", tpid, vid)
    return h + struct.pack("!H", etype) + payload


def packets():
    """name -> (bytes, tap)"""
    pk = {}
    echo = icmp4(8, 0, struct.pack("!HH", 7, 1), bytes(range(56)))
    pk["ip4_icmp_echo"] = (ip4(1, echo), False)
    pk["ip4_tcp_syn_opts"] = (ip4(6, tcp(40000, 80, 0x02, options=SYN_OPTS, pseudo=P4[6])), False)
    pk["ip4_tcp_ack_data"] = (ip4(6, tcp(80, 40000, 0x18, b"HTTP/1.1 200 OK\r\n", seq=5,
                                         ack=99, pseudo=P4[6])), False)
    pk["ip4_udp_dns"] = (ip4(17, udp(53000, 53, DNS_Q, pseudo=P4[17])), False)
    pk["ip4_udp_nocsum"] = (ip4(17, udp(5000, 6000, b"hello", zero=True)), False)
    pk["ip4_options_udp"] = (ip4(17, udp(1, 2, b"x", pseudo=P4[17]),
                                 options=b"\x94\x04\x00\x00"), False)
    pk["ip4_frag_first"] = (ip4(17, udp(1, 2, b"A" * 32, pseudo=P4[17])[:24], frag=0x2000),
                            False)
    pk["ip4_frag_rest"] = (ip4(17, b"B" * 24, frag=0x0003), False)
    pk["ip6_icmp6_echo"] = (ip6(58, icmp6(128, 0, struct.pack("!HH", 9, 2), b"ping" * 4)),
                            False)
    pk["ip6_tcp_syn"] = (ip6(6, tcp(40001, 443, 0x02, options=SYN_OPTS, pseudo=P6[6])), False)
    t6 = udp(5353, 5353, DNS_Q, pseudo=P6[17])
    # hop-by-hop (PadN), destination options, routing (type 0, no addresses), then UDP
    ext = (bytes([60, 0]) + bytes.fromhex("010400000000") +
           bytes([43, 0]) + bytes.fromhex("010400000000") +
           bytes([17, 0, 0, 0]) + bytes(4))
    pk["ip6_ext_udp"] = (ip6(0, ext + t6), False)
    pk["ip6_frag_first_tcp"] = (ip6(44, bytes([6, 0, 0, 1]) + b"\0\0\0\x2a" +
                                    tcp(1, 2, 0x10, b"data", pseudo=P6[6])), False)
    pk["ip6_frag_rest"] = (ip6(44, bytes([17, 0, 0, 0x18]) + b"\0\0\0\x2a" + b"C" * 16), False)
    pk["ip6_nonext"] = (ip6(59, b""), False)
    pk["ip6_ns"] = (ip6(58, icmp6(135, 0, bytes(4), DST6)), False)
    # Ethernet (tap)
    pk["eth_vlan_ip4_icmp"] = (eth(0x0800, ip4(1, echo), vlans=((0x8100, 42),)), True)
    pk["eth_qinq_ip6_udp"] = (eth(0x86DD, ip6(17, udp(9, 9, b"q", pseudo=P6[17])),
                                  vlans=((0x88A8, 100), (0x8100, 200))), True)
    pk["eth_ip4_tcp_padded"] = (eth(0x0800, ip4(6, tcp(1, 2, 0x11, pseudo=P4[6]))) + bytes(6),
                                True)
    pk["eth_arp_request"] = (eth(0x0806, struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1,
                                                     bytes.fromhex("020000000001"), S4,
                                                     bytes(6), D4)), True)
    pk["eth_unknown_type"] = (eth(0x88CC, b"\x02\x07\x04" + bytes(20)), True)
    # liars and fragments of packets
    good = ip4(6, tcp(40000, 80, 0x02, options=SYN_OPTS, pseudo=P4[6]))
    pk["lie_ip4_truncated"] = (good[:30], False)
    pk["lie_ip4_total_len"] = (ip4(17, udp(1, 2, b"xy", pseudo=P4[17]), total=1500), False)
    pk["lie_ip4_ihl15"] = (bytes([0x4F]) + good[1:], False)
    pk["lie_ip4_ihl3"] = (bytes([0x43]) + good[1:], False)
    pk["lie_tcp_doff15"] = (good[:32] + bytes([0xF0]) + good[33:], False)
    pk["lie_ip6_plen"] = (ip6(17, udp(1, 2, b"z", pseudo=P6[17]), plen=4000), False)
    pk["lie_ip6_ext_len"] = (ip6(0, bytes([17, 200]) + bytes(6) + udp(1, 2, b"", pseudo=P6[17])),
                             False)
    pk["lie_eth_vlan_cut"] = (eth(0x8100, b"")[:14] + b"\x00", True)
    return pk


def frame(payload):
    return struct.pack("!H", len(payload)) + payload


def frames(pk):
    """name -> fuzz_frame input: [max][k][selectors][stream]"""
    ip = [b for b, tap in pk.values() if not tap]
    stream = b"".join(frame(p) for p in ip[:6])
    big = frame(bytes(range(256)) * 80)  # 20480 bytes: crosses many reads
    out = {
        "stream_whole": b"\0\0\0" + stream,
        "stream_bytewise": b"\0\0\x01\x00" + stream,
        "stream_mixed_reads": b"\0\0\x04\x02\x80\x05\x40" + stream + stream[:7],
        "stream_big_frame": b"\0\0\x03\x90\x13\xff" + frame(b"x") + big + frame(b"y") + b"\x01",
        "stream_zero_length": b"\0\0\x01\x07" + frame(ip[0]) + b"\0\0" + frame(ip[1]),
        "stream_too_long": b"\x05\xdc\x02\x10\x03" + frame(ip[0]) + struct.pack("!H", 1501) +
                           bytes(40),
        "stream_max_65535": b"\xff\xff\x02\xa0\x7f" + frame(b"\xab" * 65535)[:3000],
        "stream_header_only": b"\0\0\x00" + b"\xff",
    }
    return out


HS = bytes([0x45, 0, 0, 44, 0, 0, 0, 0, 1, 253]) + bytes(10) + b"moontun-offload\0"
HELLO = frame(HS + b"\x01" + bytes(7))
SWITCH = frame(HS + b"\x02" + bytes(7))


def xframe(payload, vnet=bytes(10)):
    return struct.pack("!I", len(vnet) + len(payload)) + vnet + payload


def handshakes(pk):
    """name -> fuzz_handshake input: [flags: 1 client, 2 offloads][max][k][selectors][stream]"""
    ip = [b for b, tap in pk.values() if not tap]
    gso = struct.pack("<BBHHHH", 1, 1, 54, 1400, 34, 16)  # NEEDS_CSUM, TCPv4
    x = xframe(ip[0]) + xframe(ip[1], gso) + xframe(ip[2])
    plain = frame(ip[0]) + frame(ip[1])
    return {
        "server_hello_switch": b"\x02\x06\x78\x00" + HELLO + plain + SWITCH + x,
        "server_hello_chunked": b"\x02\x06\x78\x03\x05\x81\x00" + HELLO + SWITCH + x,
        "server_no_offload": b"\x00\x06\x78\x00" + HELLO + SWITCH + plain,
        "server_unasked_switch": b"\x02\x06\x78\x00" + SWITCH + xframe(HS + b"\x02" + bytes(7)),
        "server_late_hello": b"\x02\x06\x78\x00" + plain + HELLO + SWITCH + plain,
        "client_switch": b"\x03\x06\x78\x00" + plain + SWITCH + x,
        "client_hello_is_packet": b"\x03\x06\x78\x00" + HELLO + SWITCH + x + b"\0\0\0\x05",
        "client_x_max": b"\x03\x06\x78\x01\xff" + SWITCH + struct.pack("!I", 10 + 65535 + 256) +
                        bytes(3000),
        "oversize_then_hello": b"\x02\x05\xdc\x02\x10\x90" + frame(bytes(3042)) + HELLO + plain,
        "oversize_65535": b"\x00\x05\xdc\x01\xc0" + frame(b"\xab" * 65535) + plain,
        "x_bad_length": b"\x02\x06\x78\x00" + HELLO + SWITCH + struct.pack("!I", 3997695),
    }


def assemble(*ops):
    """A fuzz_lpacket program: opcodes and argument bytes as the Lua interpreter reads them."""
    return bytes(b for op in ops for b in op)


OP = {n: i for i, n in enumerate(
    "u8 u16 u32 set_u8 set_u16 set_u32 bytes set_bytes resize push pull append checksum "
    "tostring len view_read view_write save_view misc parse".split())}
VIEW = {"eth": 0, "ip": 1, "tcp": 2, "udp": 3, "icmp": 4, "saved": 5}
FIELD = {n: i for i, n in enumerate("src dst type version hlen tos len id ttl proto sport dport "
                                    "seq ack flags window code".split())}


def v16(x):
    return bytes([0x80]) + struct.pack("!H", x)


def wr(view, field, value):
    """view write with an integer value (val() encoding, 16 bits)"""
    return bytes([OP["view_write"], VIEW[view], FIELD[field], 0x50]) + v16(value)


def wr_text(view, field, text_index):
    return bytes([OP["view_write"], VIEW[view], FIELD[field], text_index])


def rd(view, field):
    return bytes([OP["view_read"], VIEW[view], FIELD[field]])


def s(data):
    return bytes([len(data)]) + data


def programs(pk):
    """name -> fuzz_lpacket input: [flags][program length][program][packet]"""
    P = {}

    def add(name, flags, prog, pkt):
        assert len(prog) < 256, name
        P[name] = bytes([flags, len(prog)]) + prog + pkt

    reads = assemble([OP["u8"], 0], [OP["u16"], 2], [OP["u32"], 12], [OP["bytes"], 2, 4, 8],
                     [OP["tostring"]], [OP["len"]], [OP["parse"]])
    add("prog_reads_icmp", 0, reads + rd("icmp", "type") + rd("icmp", "id") + rd("ip", "ttl"),
        pk["ip4_icmp_echo"][0])
    nat = assemble(wr_text("ip", "src", 0), wr_text("ip", "dst", 1), wr("tcp", "dport", 8080),
                   wr("tcp", "sport", 1), wr("ip", "ttl", 3), wr("ip", "tos", 0x10),
                   wr("tcp", "window", 100), [OP["parse"]], [OP["tostring"]])
    add("prog_nat_tcp4", 0, nat, pk["ip4_tcp_syn_opts"][0])
    add("prog_nat_udp4_nocsum", 0, nat + wr("udp", "dport", 0) + wr("udp", "sport", 53),
        pk["ip4_udp_nocsum"][0])
    six = assemble(wr_text("ip", "src", 6), wr_text("ip", "dst", 5), wr("udp", "dport", 53),
                   wr("ip", "id", 0xABCD), wr("ip", "tos", 0xB8), wr("ip", "ttl", 1),
                   [OP["checksum"]], [OP["parse"]])
    add("prog_ip6_ext_udp", 2, six, pk["ip6_ext_udp"][0])
    add("prog_icmp6", 0, assemble(wr("icmp", "type", 129), wr("icmp", "id", 1),
                                  wr("icmp", "seq", 2), wr_text("ip", "dst", 7),
                                  [OP["parse"]]), pk["ip6_icmp6_echo"][0])
    grow = assemble([OP["push"]], s(bytes.fromhex("deadbeef")), [OP["pull"], 4],
                    [OP["append"]], s(b"trailer"), [OP["resize"], 0x80, 0, 100],
                    [OP["resize"], 0x40, 20], [OP["checksum"]], [OP["set_bytes"]], s(b"\x45\x00"),
                    [0], [OP["resize"], 0xC0 | 10], [OP["resize"], 0xC0 | 11], [OP["parse"]])
    add("prog_grow_shrink", 0, grow, pk["ip4_udp_dns"][0])
    add("prog_grow_no_headroom", 4, grow, pk["ip4_udp_dns"][0])
    add("prog_grow_no_tailroom", 12, grow, pk["ip4_tcp_ack_data"][0])
    tap = assemble(wr_text("eth", "src", 10), wr_text("eth", "dst", 11), rd("eth", "type"),
                   wr("ip", "ttl", 9), [OP["save_view"], 1], [OP["pull"], 4],
                   rd("saved", "ttl"), wr("saved", "ttl", 2), wr("eth", "type", 0x86DD),
                   [OP["parse"]], [OP["misc"], 0], [OP["misc"], 1])
    add("prog_tap_vlan", 1, tap, pk["eth_vlan_ip4_icmp"][0])
    add("prog_tap_qinq_ingress", 3, tap, pk["eth_qinq_ip6_udp"][0])
    bounds = assemble([OP["u8"], 0xC0], [OP["u16"], 0xC0 | 3], [OP["u32"], 0xC0 | 5],
                      [OP["set_u8"], 0xC0 | 6, 1], [OP["set_u16"], 0, 0xC0 | 9],
                      [OP["set_u32"], 0, 0xC0 | 14], [OP["bytes"], 2, 0xC0 | 2, 0xC0 | 6],
                      [OP["pull"], 0xC0 | 6], [OP["resize"], 0xC0 | 15], [OP["misc"], 3],
                      [OP["misc"], 4], [OP["misc"], 5, 1], [OP["misc"], 2, 0xC0])
    add("prog_bounds_liar", 0, bounds + rd("tcp", "seq") + wr("tcp", "flags", 0x12),
        pk["lie_tcp_doff15"][0])
    add("prog_bounds_truncated", 0, bounds + rd("ip", "src"), pk["lie_ip4_truncated"][0])
    return P


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    pk = packets()
    sets = {
        "fuzz_proto": {n: b for n, (b, tap) in pk.items()},
        "fuzz_frame": frames(pk),
        "fuzz_handshake": handshakes(pk),
        "fuzz_lpacket": programs(pk),
    }
    for fuzzer, files in sets.items():
        d = os.path.join(out, fuzzer)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    total = sum(len(b) for files in sets.values() for b in files.values())
    print("%d files, %d bytes" % (sum(len(f) for f in sets.values()), total))


if __name__ == "__main__":
    main()
