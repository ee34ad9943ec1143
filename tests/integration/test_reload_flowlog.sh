#!/usr/bin/env bash
# examples/flowlog.lua keeps its flows across a reload: B sends 10 datagrams of one UDP flow to
# A, A's table shows 10 packets; A reloads its scripts (SIGHUP), B sends 5 more, and the table
# shows 15 packets and 15,000 bytes for the flow (before, the counters started again at 5).
source "$(dirname "$0")/lib.sh"
COUNT="$MT_ROOT/tests/integration/udpcount.py"
mt_topology
mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 \
    -S "$MT_ROOT/examples/flowlog.lua interval=1s dir=ingress"
mt_wait_link "$NS_A" mt0
mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24
mt_wait_link "$NS_B" mt0
mt_wait_log srv 'peer .* up'
mt_wait_log cli 'peer .* up'
send() { ip netns exec "$NS_B" timeout 20 python3 "$COUNT" send 10.9.0.1 7000 7001 "$@"; }
row() { # PACKETS BYTES: the flow's row with these counters
    echo "udp +10\\.9\\.0\\.2:7001 +10\\.9\\.0\\.1:7000 +$1 +$2 "
}

send one 10 972 # 1000 bytes on the device with the UDP and IPv4 headers
mt_wait_log srv "$(row 10 10000)" 5
mt_pass "before the reload: $(grep -oE "$(row 10 10000)" "$MT_TMP/srv.log" | head -1)"
kill -HUP "$PID_srv"
mt_wait_log srv 'scripts reloaded'
send two 5 972
mt_wait_log srv "$(row 15 15000)" 5
grep -qE "$(row 5 5000)" "$MT_TMP/srv.log" && mt_fail "the counters started again after the reload"
mt_pass "after SIGHUP: $(grep -oE "$(row 15 15000)" "$MT_TMP/srv.log" | head -1)"
kill "$PID_srv" "$PID_cli"
wait "$PID_srv" || mt_fail "server exit status $?"
wait "$PID_cli" || mt_fail "client exit status $?"
