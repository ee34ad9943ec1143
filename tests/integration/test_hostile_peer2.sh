#!/usr/bin/env bash
# Hostile peers that are patient or many: slowloris connections holding half a frame (closed
# by the stall timeout), a connection flood against --max-peers (no fd exhaustion), packets
# with lying IP headers (scripts see nil views, nothing crashes), and a client killed with
# SIGKILL mid-transfer and restarted. After each, a legitimate transfer still matches.
source "$(dirname "$0")/lib.sh"
S="$MT_ROOT/tests/integration/scripts"
mt_topology
HP="$MT_ROOT/tests/integration/hostile_peer.py"

mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 --max-peers 40 -S "$S/views.lua"
SRV=$MT_LAST_PID
mt_wait_link "$NS_A" mt0
mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24
CLI=$MT_LAST_PID
mt_wait_link "$NS_B" mt0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "tunnel not up"

fds() { ls "/proc/$SRV/fd" | wc -l; }
fd0=$(fds)

# Slowloris: 30 connections with half a frame each; the legitimate tunnel works meanwhile.
ip netns exec "$NS_B" timeout 45 python3 "$HP" slowloris 172.31.0.1 55555 30 >"$MT_TMP/slow.out" 2>&1 &
SLOW=$!
sleep 1
mt_ping "$NS_B" 10.9.0.1 3 || mt_fail "ping during slowloris"
wait "$SLOW" || { cat "$MT_TMP/slow.out"; mt_fail "slowloris connections were not closed"; }
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 4 || mt_fail "transfer after slowloris"
mt_pass "$(head -1 "$MT_TMP/slow.out"); 4 MiB sha256 ok after"

# Flood: 300 connections at once against --max-peers 40.
ip netns exec "$NS_B" timeout 30 python3 "$HP" flood 172.31.0.1 55555 300 >"$MT_TMP/flood.out" 2>&1 ||
    { cat "$MT_TMP/flood.out"; mt_fail "flood"; }
kept=$(grep -oE "[0-9]+ kept open" "$MT_TMP/flood.out" | cut -d" " -f1)
[ "$kept" -le 39 ] || mt_fail "the server kept $kept flood connections with --max-peers 40"
grep -q 'max-peers 40 reached' "$MT_TMP/srv.log" || mt_fail "refusals not logged"
sleep 0.5
fd1=$(fds)
[ "$fd1" -le $((fd0 + 2)) ] || mt_fail "fds grew from $fd0 to $fd1 after the flood"
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 4 || mt_fail "transfer after the flood"
mt_pass "$(head -1 "$MT_TMP/flood.out") (max 39 besides the client); fds $fd0 -> $fd1; 4 MiB sha256 ok"

# Lying headers: every view over them is nil (the TCP one with a bad data offset too).
ip netns exec "$NS_B" timeout 20 python3 "$HP" lying 172.31.0.1 55555 >"$MT_TMP/lying.out" 2>&1 ||
    { cat "$MT_TMP/lying.out"; mt_fail "lying"; }
sleep 0.5
kill -0 "$SRV" || mt_fail "the server died on lying headers"
grep -q 'view present, tcp view present' "$MT_TMP/srv.log" && mt_fail "a lying TCP header got a view"
nil_ip=$(grep -c 'lying packet: ip view nil' "$MT_TMP/srv.log")
[ "$nil_ip" -ge 80 ] || mt_fail "expected 80 lying packets with a nil ip view, saw $nil_ip"
grep -q 'ip view present, tcp view nil' "$MT_TMP/srv.log" || mt_fail "bad TCP offset: no nil tcp view"
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 4 || mt_fail "transfer after lying headers"
mt_pass "100 lying packets: $nil_ip with nil ip view, bad TCP offsets with nil tcp view; 4 MiB sha256 ok"

# SIGKILL in the middle of a transfer, then a restart.
(mt_transfer "$NS_B" "$NS_A" 10.9.0.1 8 5220 1000000 >/dev/null 2>&1) &
XFER=$!
sleep 1.5
kill -9 "$CLI"
wait "$XFER" 2>/dev/null
mt_wait_log srv 'down: connection closed by peer|down: Connection reset'
mt_start cli2 "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24
CLI=$MT_LAST_PID
mt_wait_link "$NS_B" mt0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "no ping after the client restart"
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 4 || mt_fail "transfer after the client restart"
mt_pass "client SIGKILLed mid-transfer: server dropped the peer, restart works, 4 MiB sha256 ok"
kill "$SRV" "$CLI"
wait "$SRV" || mt_fail "server exit status $?"
