#!/usr/bin/env bash
# Fault: a relayed handshake dropped other peers. In tap mode a peer sends the offload SWITCH,
# then an extended frame whose packet is the 44-byte SWITCH message; its destination MAC has
# the group bit, so the server floods it. The server must not honour a SWITCH it never asked
# for (the rest of that stream is ordinary frames: its length 0 closes that connection), and
# no other peer may take the flooded copy for a handshake: they keep their connection and
# their traffic.
source "$(dirname "$0")/lib.sh"
mt_topology
mt_start srv "$NS_A" -i mt0 -a -s --addr 10.9.0.1/24
srv=$MT_LAST_PID
mt_wait_link "$NS_A" mt0
mt_start cli "$NS_B" -i mt0 -a -c 172.31.0.1 --addr 10.9.0.2/24
cli=$MT_LAST_PID
mt_wait_link "$NS_B" mt0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "tunnel not up"

for i in 1 2 3; do
    ip netns exec "$NS_B" timeout 10 python3 "$MT_ROOT/tests/integration/hostile_peer.py" \
        relay-switch 172.31.0.1 55555 >"$MT_TMP/hostile.out" 2>&1 ||
        { cat "$MT_TMP/hostile.out"; mt_fail "hostile peer"; }
done
grep -q 'server closed' "$MT_TMP/hostile.out" || mt_fail "the server kept the liar's connection"
grep -q 'bad frame length 0 ' "$MT_TMP/srv.log" ||
    mt_fail "the server did not read the liar's extended frame as an ordinary one"
mt_ping "$NS_B" 10.9.0.1 5 || mt_fail "ping after the relayed handshake"
grep -q 'bad frame length' "$MT_TMP/cli.log" && mt_fail "the other peer took the relayed SWITCH for a handshake"
grep -qE 'peer .* down' "$MT_TMP/cli.log" && mt_fail "the other peer lost its connection"
[ "$(grep -c 'peer 172.31.0.2:.* down' "$MT_TMP/srv.log")" -eq 3 ] ||
    mt_fail "the server dropped peers other than the three liars"
kill "$srv" "$cli"
wait "$srv" || mt_fail "server exit status"
wait "$cli" || mt_fail "client exit status"
mt_pass "3 relayed SWITCHes: the liars closed, the other peer kept its connection and its pings"
