#!/usr/bin/env bash
# A hostile moontun peer on the offload path (offload_liar.py): after the handshake it sends
# extended frames whose virtio-net headers and sizes lie, aimed at the server's device and,
# through the server, at a plain peer (--no-offload, as a simpletun peer). The server must
# refuse each lie (counted), cut what can be cut at the plain peer's MTU with right sequence
# numbers and checksums, drop what cannot (counted), close only the liar's connection for a
# frame over 64 KiB (once a heap overflow), and keep the plain peer's traffic flowing.
source "$(dirname "$0")/lib.sh"
LIAR="$MT_ROOT/tests/integration/offload_liar.py"
mt_topology

mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 -d \
    -S "$MT_ROOT/tests/integration/scripts/push_tag.lua"
SRV=$MT_LAST_PID
mt_wait_link "$NS_A" mt0
mt_start plain "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.3/24 --no-offload
PLAIN=$MT_LAST_PID
mt_wait_link "$NS_B" mt0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "no ping from the plain peer"

ip netns exec "$NS_B" tcpdump -i mt0 -U -n -w "$MT_TMP/plain.pcap" tcp \
    >"$MT_TMP/tcpdump.log" 2>&1 &
MT_PIDS+=($!)
TCPDUMP=$!
mt_wait_log tcpdump 'listening on'

# Pings from the plain peer all through the attack: none may be lost.
ip netns exec "$NS_B" ping -n -q -c 40 -i 0.1 -W 2 10.9.0.1 >"$MT_TMP/ping.log" 2>&1 &
PING=$!
ip netns exec "$NS_B" timeout 30 python3 "$LIAR" attack 172.31.0.1 55555 >"$MT_TMP/liar.log" 2>&1 ||
    mt_fail "the attack did not run: $(tail -3 "$MT_TMP/liar.log")"
wait "$PING" || mt_fail "pings lost during the attack: $(grep -E 'loss' "$MT_TMP/ping.log")"
mt_pass "40 pings from the plain peer during the attack, none lost"
sleep 0.5
kill "$TCPDUMP"
wait "$TCPDUMP" 2>/dev/null

kill -0 "$SRV" 2>/dev/null || mt_fail "the server died"
kill -0 "$PLAIN" 2>/dev/null || mt_fail "the plain peer died"
grep -q 'bad frame length\|closing' "$MT_TMP/plain.log" &&
    mt_fail "the plain peer got a frame it could not take: $(grep -m1 'bad frame' "$MT_TMP/plain.log")"
grep -c 'peer .* up' "$MT_TMP/plain.log" | grep -qx 1 || mt_fail "the plain peer reconnected"
mt_pass "the plain peer kept its one connection (no frame over its limit)"

grep -qE 'peer 172\.31\.0\.2:[0-9]+ down: bad frame length' "$MT_TMP/srv.log" ||
    mt_fail "the server did not close the liar's connection for the 65,791-byte frame"
mt_pass "a frame over 64 KiB closes the liar's connection, with its reason"

python3 "$LIAR" check "$MT_TMP/plain.pcap" >"$MT_TMP/check.log" 2>&1 ||
    mt_fail "segments at the plain peer: $(cat "$MT_TMP/check.log")"
mt_pass "super-packets re-cut at the plain peer's MTU: $(cat "$MT_TMP/check.log")"

kill "$SRV"
wait "$SRV" || mt_fail "server exit status"
summary=$(grep 'stopped:' "$MT_TMP/srv.log")
bad=$(sed -E 's/.*bad offloads ([0-9]+).*/\1/' <<<"$summary")
big=$(sed -E 's/.*too big ([0-9]+).*/\1/' <<<"$summary")
# Refused: two liar headers, gso_size 1, a checksum in the IP header, gso 4000 (segments
# larger than any frame this end takes).
[ "${bad:-0}" -ge 5 ] || mt_fail "expected >= 5 refused offload headers, counted '${bad}'"
[ "${big:-0}" -ge 1 ] || mt_fail "expected the 3,000-byte UDP packet counted as too big, '${big}'"
grep -q 'exceeds its' "$MT_TMP/srv.log" || mt_fail "the oversize drop was not logged"
mt_pass "counted: $bad refused offload headers, $big packets too big for the plain peer"
