#!/usr/bin/env bash
# examples/netem.lua keeps its waiting packets across a reload: on A, every packet is held 2 s
# each way (dir=both); B's ping waits 2 s in the line to A's device and its reply 2 s in the
# line to the tunnel, and A reloads its scripts (SIGHUP) while each is waiting. The reply still
# arrives, after about 4 s (before, a reload dropped whatever was waiting). Then the learned
# owner of B's address still routes A's delayed packets to B.
source "$(dirname "$0")/lib.sh"
mt_topology
mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 \
    -S "$MT_ROOT/examples/netem.lua delay=2s dir=both"
mt_wait_link "$NS_A" mt0
mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24
mt_wait_link "$NS_B" mt0
mt_wait_log srv 'peer .* up'
mt_wait_log cli 'peer .* up'

ip netns exec "$NS_B" ping -n -c 1 -W 12 10.9.0.1 >"$MT_TMP/ping1.out" 2>&1 &
PING=$!
sleep 1 # the request waits in the line to A's device
kill -HUP "$PID_srv"
mt_wait_log srv 'scripts reloaded'
sleep 2 # now the reply waits in the line to the tunnel
kill -HUP "$PID_srv"
for _ in $(seq 50); do [ "$(grep -c 'scripts reloaded' "$MT_TMP/srv.log")" -ge 2 ] && break; sleep 0.1; done
[ "$(grep -c 'scripts reloaded' "$MT_TMP/srv.log")" -ge 2 ] || mt_fail "second reload not done"
wait "$PING" || mt_fail "the ping was lost in the reloads: $(cat "$MT_TMP/ping1.out")"
rtt=$(grep -oE 'time=[0-9.]+' "$MT_TMP/ping1.out" | cut -d= -f2)
awk -v t="$rtt" 'BEGIN { exit !(t >= 3900) }' || mt_fail "rtt $rtt ms: expected 4 s of delay"
mt_pass "a ping held through two reloads came back after $rtt ms"

# After the reloads A still knows which peer owns 10.9.0.2: more pings, all answered.
ip netns exec "$NS_B" ping -n -q -c 3 -i 0.3 -W 8 10.9.0.1 >"$MT_TMP/ping2.out" 2>&1 ||
    mt_fail "pings after the reloads: $(cat "$MT_TMP/ping2.out")"
mt_pass "3/3 pings answered after the reloads"
kill "$PID_srv" "$PID_cli"
wait "$PID_srv" || mt_fail "server exit status $?"
wait "$PID_cli" || mt_fail "client exit status $?"
