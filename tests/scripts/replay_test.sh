#!/usr/bin/env bash
# moontun replay over a capture generated here (no root, no device): runs as nobody when started
# as root. firewall.lua sees tunnel traffic (TCP to allowed and refused ports, UDP, ICMP, IPv6,
# a lying header, an ACK after the idle timeout), nat.lua sees LAN traffic; the verdicts, the
# counts and the packets written out are checked. Usage: replay_test.sh MOONTUN SOURCE_DIR
set -euo pipefail
moontun=$(realpath "$1")
src=$(realpath "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 777 "$tmp"
cd "$src"

python3 tests/scripts/make_capture.py "$tmp/tunnel.pcap"
python3 tests/scripts/make_capture.py "$tmp/lan.pcap" --lan
chmod 644 "$tmp"/*.pcap

as_user=()
if [ "$(id -u)" -eq 0 ]; then
    as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
run() { "${as_user[@]}" "$moontun" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

# Packets per pcap file (classic pcap, little-endian, as libpcap writes on x86).
count() {
    python3 -c 'import struct,sys
d=open(sys.argv[1],"rb").read(); o=24; n=0
while o < len(d):
    n+=1; o+=16+struct.unpack_from("<I",d,o+8)[0]
print(n)' "$1"
}

run replay -S "examples/firewall.lua allow=tcp/22,icmp reject=1" --dir ingress \
    -r "$tmp/tunnel.pcap" -w "$tmp/out.pcap" --replies "$tmp/replies.pcap" >"$tmp/fw.txt"
cat "$tmp/fw.txt"
verdicts=$(awk '$2 == "ingress" { printf "%s ", $3 }' "$tmp/fw.txt")
[ "$verdicts" = "pass reply drop pass pass pass drop " ] || fail "firewall verdicts: $verdicts"
grep -q '^0.100000 ingress reply firewall.lua:ingress *rewritten IP 10.9.0.1.23 > 10.9.0.2.40001: tcp \[R.\]' \
    "$tmp/fw.txt" || fail "the RST line"
grep -q '^400.000000 ingress drop  firewall.lua:ingress' "$tmp/fw.txt" ||
    fail "idle expiry in capture time"
grep -q 'pass 4, drop 2, reply 1, route 0; rewritten 1; script errors 0' "$tmp/fw.txt" ||
    fail "firewall counts"
[ "$(count "$tmp/out.pcap")" = 4 ] || fail "out.pcap holds $(count "$tmp/out.pcap") packets"
[ "$(count "$tmp/replies.pcap")" = 1 ] || fail "replies.pcap holds $(count "$tmp/replies.pcap")"

# The written capture replays again: what passed, passes again (a round trip through pcap_dump).
run replay -q -S "examples/firewall.lua allow=tcp/22,icmp" --dir ingress -r "$tmp/out.pcap" \
    >"$tmp/again.txt"
grep -q 'pass 4, drop 0' "$tmp/again.txt" || fail "replay of -w output: $(cat "$tmp/again.txt")"

run replay -S "examples/nat.lua inside=192.168.77.0/24 public=10.9.0.2" -r "$tmp/lan.pcap" \
    -w "$tmp/nat.pcap" >"$tmp/nat.txt"
cat "$tmp/nat.txt"
[ "$(grep -c ' egress  pass  - *rewritten IP 10.9.0.2' "$tmp/nat.txt")" = 4 ] ||
    fail "nat.lua: 4 packets leave as 10.9.0.2"

# Timers run in capture time: flowlog's table comes out at 5 s only with --drain.
run replay -S "examples/flowlog.lua interval=5s" -r "$tmp/lan.pcap" --drain 6 >"$tmp/flow.txt"
grep -q '^5.000000   | flowlog.lua: 4 flows' "$tmp/flow.txt" || fail "flowlog at 5 s: $(cat "$tmp/flow.txt")"
run replay -S "examples/flowlog.lua interval=5s" -r "$tmp/lan.pcap" >"$tmp/flow0.txt"
grep -q 'timers still armed' "$tmp/flow0.txt" || fail "pending timers not reported"

# Errors a user makes: exit 2 (flags) or 1 (set-up), one line.
set +e
run replay -S examples/firewall.lua >/dev/null 2>&1; [ $? = 2 ] || fail "no -r: status"
run replay -S "examples/firewall.lua allow=tcp/0" -r "$tmp/lan.pcap" 2>"$tmp/err.txt"
[ $? = 1 ] && grep -q 'allow=' "$tmp/err.txt" || fail "bad setting: $(cat "$tmp/err.txt")"
run replay -S examples/firewall.lua -r "$tmp/nosuch.pcap" 2>/dev/null; [ $? = 1 ] || fail "missing capture"
run replay -S examples/firewall.lua --tap -r "$tmp/lan.pcap" 2>"$tmp/err.txt"
[ $? = 1 ] && grep -q 'Ethernet' "$tmp/err.txt" || fail "tap over a raw capture"
set -e
echo "replay_test: ok"
