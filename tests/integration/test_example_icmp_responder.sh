#!/usr/bin/env bash
# examples/icmp_responder.lua on the server (A) answers pings for 10.9.0.77 and fd09::77, which
# no interface has: from A itself (egress REPLY) and from the far side B (ingress REPLY back to
# the peer), while a neighbouring phantom address stays unanswered. Bad settings stop start-up.
source "$(dirname "$0")/lib.sh"
IR="$MT_ROOT/examples/icmp_responder.lua"
mt_topology

for bad in "addr=10.9.0.777" "" "addr=10.9.0.77 ttl=0"; do
    out=$(ip netns exec "$NS_A" timeout 5 "$MOONTUN" -s -i mt0 -S "$IR $bad" 2>&1) &&
        mt_fail "'$bad' was accepted"
    [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ $out == *icmp_responder.lua*setting* ]] ||
        mt_fail "'$bad': expected one line naming the setting, got: $out"
    mt_log "refused '$bad': $out"
done
mt_pass "bad settings stop start-up with one line naming the setting"

mt_pair --addr fd09::1/64 -S "$IR addr=10.9.0.77,fd09::77" -- --addr fd09::2/64

for ns in "$NS_A" "$NS_B"; do
    ip -n "$ns" addr | grep -qE '10\.9\.0\.77|fd09::77' &&
        mt_fail "an interface in $ns has the phantom"
done
for addr in 10.9.0.77 fd09::77; do
    mt_ping "$NS_A" "$addr" 5 || mt_fail "ping $addr from A (local side): $(cat "$MT_TMP/ping.out")"
    mt_ping "$NS_B" "$addr" 5 || mt_fail "ping $addr from B (far side): $(cat "$MT_TMP/ping.out")"
    mt_pass "$addr: 5/5 pings answered from A (egress) and from B (ingress, across the tunnel)"
done
for addr in 10.9.0.78 fd09::78; do # nobody answers for these: the replies above are the script's
    ip netns exec "$NS_B" ping -n -q -c 2 -i 0.2 -W 1 "$addr" >/dev/null 2>&1 &&
        mt_fail "$addr answered: something other than the script replies"
done
mt_pass "10.9.0.78 and fd09::78 stay unanswered"

kill "$PID_srv" "$PID_cli"
wait "$PID_srv" || mt_fail "server exit status $?"
wait "$PID_cli" || mt_fail "client exit status $?"
grep -qE 'replies 20,' "$MT_TMP/srv.log" ||
    mt_fail "expected 20 replies: $(grep stopped "$MT_TMP/srv.log")"
mt_pass "the server counted 20 script replies"
