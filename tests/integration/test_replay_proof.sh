#!/usr/bin/env bash
# The proof that `moontun replay` tells the truth: real traffic from B (TCP, UDP, ICMP, IPv6, a
# NAT port forward and two packets with lying headers) crosses a tunnel whose server A runs
# examples/firewall.lua and examples/nat.lua. tcpdump records what B's kernel sends into the
# tunnel (what reaches A's ingress hooks) and what A's moontun writes to its device (what passed,
# as rewritten). The first capture is then replayed as `nobody` through the same chain; its
# per-packet verdicts must be those of the live tunnel, and the packets it writes out must be
# those A's device got, byte for byte (TCP checksums aside, see below).
source "$(dirname "$0")/lib.sh"
FW="$MT_ROOT/examples/firewall.lua allow=tcp/5201,tcp/8080,udp/5300,icmp"
NAT="$MT_ROOT/examples/nat.lua inside=192.168.77.0/24 public=10.9.0.1 forward=tcp/8080=192.168.77.2:80"
PY=$(python3 -c 'import sys; print(sys.executable)')
PATH=$(dirname "$PY"):$PATH
NET="$MT_TMP/net.py"
cat >"$NET" <<'EOF'
import socket, struct, sys, time
cmd = sys.argv[1]
def fam(a): return socket.AF_INET6 if ":" in a else socket.AF_INET
if cmd == "sink":  # accept connections for 15 s, print the bytes each brought
    s = socket.socket(fam(sys.argv[2])); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[2], int(sys.argv[3]))); s.listen(8); s.settimeout(15)
    while True:
        c, _ = s.accept(); c.settimeout(5); n = 0
        while (d := c.recv(65536)):
            n += len(d)
        print("got", n, flush=True); c.close()
elif cmd == "send":  # connect, send N bytes, close; prints sent|timeout
    a, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(fam(a)); s.settimeout(1.5)
    try:
        s.connect((a, port)); s.sendall(b"m" * n); s.shutdown(socket.SHUT_WR)
        s.settimeout(5); s.recv(1); print("sent")
    except socket.timeout:
        print("timeout")
elif cmd == "udp":  # one datagram
    a, port = sys.argv[2], int(sys.argv[3])
    socket.socket(fam(a), socket.SOCK_DGRAM).sendto(b"proof " + sys.argv[4].encode(), (a, port))
elif cmd == "liars":  # written straight into the tun device: no socket would send these
    def csum(b):
        b += b"\0" * (len(b) % 2); s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        while s >> 16: s = (s & 0xFFFF) + (s >> 16)
        return ~s & 0xFFFF
    def ip4(total, l4, ident):
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0, 64, 6, 0,
                        bytes([10, 9, 0, 2]), bytes([10, 9, 0, 1]))
        return h[:10] + struct.pack("!H", csum(h)) + h[12:] + l4
    syn = lambda off: struct.pack("!HHIIBBHHH", 41000, 5202, 1, 0, off << 4, 2, 65535, 0, 0)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    s.bind((sys.argv[2], 0x0800))
    s.send(ip4(900, syn(5), 0x4c31))   # total length 900 in a 40-byte packet
    s.send(ip4(40, syn(15), 0x4c32))   # TCP data offset 60 bytes in a 20-byte header
EOF
net() { local ns=$1; shift; ip netns exec "$ns" timeout 30 "$PY" "$NET" "$@"; }
net_bg() {
    local ns=$1; shift
    ip netns exec "$ns" timeout 30 "$PY" "$NET" "$@" &
    MT_PIDS+=($!)
}
mt_topology
ip -n "$NS_A" addr add 192.168.77.2/32 dev lo # the "LAN host" behind A's port forward

mt_pair --addr fd09::1/64 -S "$FW" -S "$NAT" -- --addr fd09::2/64

# What enters A's hooks is what B's kernel sends into B's tunnel device (B runs no script);
# what passed them is what A's moontun writes into A's device.
cap() { # NAME NS DIRECTION
    ip netns exec "$2" tcpdump -i mt0 -Q "$3" -U --immediate-mode -n -w "$MT_TMP/$1.pcap" 2>"$MT_TMP/tcpdump_$1.log" &
    MT_PIDS+=($!)
    eval "PID_$1=$!"
    mt_wait_log "tcpdump_$1" 'listening on'
}
cap b_out "$NS_B" out
cap a_in "$NS_A" in

net_bg "$NS_A" sink 0.0.0.0 5201 >"$MT_TMP/sink4.out"
net_bg "$NS_A" sink :: 5202 >/dev/null # denied by the firewall: nothing gets here
net_bg "$NS_A" sink fd09::1 5201 >"$MT_TMP/sink6.out"
net_bg "$NS_A" sink 192.168.77.2 80 >"$MT_TMP/sink80.out"
sleep 0.5
mt_ping "$NS_B" 10.9.0.1 2 || mt_fail "ping (allowed)"
mt_ping "$NS_B" fd09::1 2 || mt_fail "ping6 (allowed)"
[ "$(net "$NS_B" send 10.9.0.1 5201 200000)" = sent ] || mt_fail "TCP to allowed 5201"
[ "$(net "$NS_B" send fd09::1 5201 30000)" = sent ] || mt_fail "TCP over IPv6 to allowed 5201"
[ "$(net "$NS_B" send 10.9.0.1 8080 5000)" = sent ] || mt_fail "TCP to the forward 8080"
[ "$(net "$NS_B" send 10.9.0.1 5202 100)" = timeout ] || mt_fail "TCP to denied 5202 got through"
[ "$(net "$NS_B" send fd09::1 5202 100)" = timeout ] || mt_fail "TCP6 to denied 5202 got through"
net "$NS_B" udp 10.9.0.1 5300 allowed
net "$NS_B" udp 10.9.0.1 5301 denied
net "$NS_B" udp fd09::1 5300 allowed6
net "$NS_B" udp fd09::1 5301 denied6
net "$NS_B" liars mt0
sleep 1
grep -q 'got 200000' "$MT_TMP/sink4.out" || mt_fail "the sink on 5201 got $(cat "$MT_TMP/sink4.out")"
grep -q 'got 30000' "$MT_TMP/sink6.out" || mt_fail "the IPv6 sink got $(cat "$MT_TMP/sink6.out")"
grep -q 'got 5000' "$MT_TMP/sink80.out" ||
    mt_fail "the forward to 192.168.77.2:80 got $(cat "$MT_TMP/sink80.out")"
mt_pass "live: ping, ping6, TCP 5201 (IPv4, IPv6), the NAT forward 8080 -> 192.168.77.2:80 arrive; 5202 times out"
kill -INT "$PID_b_out" "$PID_a_in"
wait "$PID_b_out" "$PID_a_in" 2>/dev/null
mkdir "$MT_TMP/out" && chmod 755 "$MT_TMP" && chown nobody "$MT_TMP/out"
chmod 644 "$MT_TMP"/*.pcap

# Replayed as nobody: no root, no device, no socket.
setpriv --reuid=nobody --regid=nogroup --clear-groups "$MOONTUN" replay --dir ingress \
    -S "$FW" -S "$NAT" -r "$MT_TMP/b_out.pcap" -w "$MT_TMP/out/replayed.pcap" \
    >"$MT_TMP/replay.txt" 2>"$MT_TMP/replay.err" || mt_fail "replay failed: $(cat "$MT_TMP/replay.err")"
[ -s "$MT_TMP/out/replayed.pcap" ] || mt_fail "replay wrote no -w capture"

# Live verdicts: A's capture is, in order, the packets of B's that passed (TCP keeps the tunnel
# in order), some with the NAT's new destination. A packet of B's passed when it is the next one
# of A's, compared without the fields NAT rewrites (destination address and port, checksums).
python3 - "$MT_TMP" <<'EOF' >"$MT_TMP/compare.txt" || mt_fail "verdicts differ: $(cat "$MT_TMP/compare.txt")"
import struct, sys
tmp = sys.argv[1]
def packets(path):
    d = open(path, "rb").read()
    magic, = struct.unpack_from("<I", d)
    assert magic in (0xa1b2c3d4, 0xa1b23c4d), "%s: not a little-endian pcap" % path
    link, = struct.unpack_from("<I", d, 20)
    assert link in (101, 12, 228, 229), "%s: link type %d is not raw IP" % (path, link)
    o, out = 24, []
    while o < len(d):
        n, = struct.unpack_from("<I", d, o + 8)
        out.append(d[o + 16:o + 16 + n]); o += 16 + n
    return out
def l4(p):  # transport offset and protocol, or None for a liar or a non-first fragment
    if p[0] >> 4 == 4:
        ihl = (p[0] & 15) * 4
        if struct.unpack_from("!H", p, 2)[0] != len(p) or struct.unpack_from("!H", p, 6)[0] & 0x1fff:
            return None
        return ihl, p[9]
    if p[0] >> 4 == 6 and 40 + struct.unpack_from("!H", p, 4)[0] == len(p):
        return 40, p[6]
    return None
def key(p):  # without what NAT and checksum offload change
    b = bytearray(p)
    if b[0] >> 4 == 4:
        b[10:12] = b"\0\0"; b[16:20] = bytes(4)
    else:
        b[24:40] = bytes(16)
    t = l4(p)
    if t and t[1] in (6, 17) and len(b) >= t[0] + 8:
        b[t[0] + 2:t[0] + 4] = b"\0\0"
        c = t[0] + (16 if t[1] == 6 else 6)
        b[c:c + 2] = b"\0\0"
    return bytes(b)
def kind(p):
    t = l4(p)
    v = "IP6" if p[0] >> 4 == 6 else "IP"
    if t is None or (t[1] == 6 and len(p) - t[0] < max(20, (p[t[0] + 12] >> 4) * 4)):
        return v + " liar"
    return v + " " + {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}.get(t[1], str(t[1]))
b_out, a_in, replayed = packets(tmp + "/b_out.pcap"), packets(tmp + "/a_in.pcap"), packets(tmp + "/out/replayed.pcap")
live, j = [], 0
for p in b_out:
    if j < len(a_in) and key(a_in[j]) == key(p):
        live.append("pass"); j += 1
    else:
        live.append("drop")
if j != len(a_in):
    sys.exit("A's device got %d packets that B never sent (first: %s)" % (len(a_in) - j, a_in[j][:40].hex()))
rep = [l.split()[2] for l in open(tmp + "/replay.txt") if len(l.split()) > 2 and l.split()[1] == "ingress"]
if len(rep) != len(b_out):
    sys.exit("replay saw %d packets, the capture holds %d" % (len(rep), len(b_out)))
tally, bad = {}, 0
for i, (p, a, b) in enumerate(zip(b_out, live, rep)):
    k = (kind(p), a)
    tally[k] = tally.get(k, 0) + 1
    if a != b:
        bad += 1
        print("packet %d (%s): live %s, replay %s" % (i + 1, kind(p), a, b))
for k in sorted(tally):
    print("%-10s %-4s %d" % (k[0], k[1], tally[k]))
# What replay wrote out is what A's device got: the same packets, rewritten the same way. TCP
# checksums may differ: A's kernel hands a TCP super-packet over with a partial checksum, which
# the nat.lua rewrite keeps partial in the tunnel, while the replayed capture holds it as seen.
if len(replayed) != len(a_in):
    sys.exit("replay passed %d packets, A's device got %d" % (len(replayed), len(a_in)))
for i, (x, y) in enumerate(zip(replayed, a_in)):
    t = l4(x)
    if t and t[1] == 6:
        x, y = bytearray(x), bytearray(y)
        x[t[0] + 16:t[0] + 18] = y[t[0] + 16:t[0] + 18] = b"\0\0"
    if bytes(x) != bytes(y):
        bad += 1
        print("passed packet %d (%s) differs: replay %s, live %s" % (i + 1, kind(x), bytes(x)[:48].hex(), bytes(y)[:48].hex()))
need = [("IP tcp", "pass"), ("IP tcp", "drop"), ("IP6 tcp", "pass"), ("IP6 tcp", "drop"), ("IP udp", "pass"),
        ("IP udp", "drop"), ("IP6 udp", "pass"), ("IP6 udp", "drop"), ("IP icmp", "pass"), ("IP6 icmp6", "pass"), ("IP liar", "pass")]
if tally.get(("IP liar", "pass"), 0) < 2:
    sys.exit("the two liars did not both pass live")
missing = [k for k in need if k not in tally]
if missing:
    sys.exit("the capture lacks %s" % missing)
print("%d packets, %d passed, %d differ" % (len(b_out), len(a_in), bad))
sys.exit(1 if bad else 0)
EOF
sed 's/^/    /' "$MT_TMP/compare.txt"
grep -q ' 0 differ$' "$MT_TMP/compare.txt" || mt_fail "comparison"
grep -q 'nat.lua:ingress\|rewritten IP 10.9.0.2.[0-9]* > 192.168.77.2.80' "$MT_TMP/replay.txt" ||
    mt_fail "the replay shows no NAT rewrite"
mt_pass "replay as nobody: every packet's verdict is the live tunnel's, what passed is what A's device got"
