#!/usr/bin/env bash
# UDP session identity (issue 9, fault 9): the server follows a client, not an address.
#  - --max-peers 1, client stopped cleanly and restarted (new ephemeral port): its goodbye
#    frees the slot, the new client is accepted and reachable from the server at once;
#  - client SIGKILLed and restarted: the dead peer, silent for two keepalives, makes way;
#  - NAT rebinding (a relay that changes the client's outer port mid-session), with a second
#    peer so that nothing falls back to point-to-point: the peer and its learned routes move
#    to the new address; traffic from the server reaches the client within a second or two;
#  - an older peer without identity (udp_peers.py) still gets answers.
source "$(dirname "$0")/lib.sh"
mt_topology
ka="--keepalive 0.5"

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

mt_start srv1 "$NS_A" -i mts -s --udp --addr 10.9.0.1/24 --max-peers 1 $ka
mt_wait_link "$NS_A" mts
mt_start cli1 "$NS_B" -i mtc -c 172.31.0.1 --udp --addr 10.9.0.2/24 $ka
mt_wait_link "$NS_B" mtc
mt_wait_ping "$NS_A" 10.9.0.2 10 || mt_fail "no tunnel at first"

kill "$PID_cli1"
wait "$PID_cli1"
mt_start cli2 "$NS_B" -i mtc -c 172.31.0.1 --udp --addr 10.9.0.2/24 $ka
mt_wait_link "$NS_B" mtc
t0=$(date +%s.%N)
mt_wait_ping "$NS_A" 10.9.0.2 3 || mt_fail "clean restart: server cannot reach the new client within 3 s (--max-peers 1)"
grep -q 'said goodbye' "$MT_TMP/srv1.log" || mt_fail "no goodbye logged"
mt_pass "clean restart with --max-peers 1: goodbye freed the slot, reachable after $(elapsed "$t0") s"

kill -9 "$PID_cli2"
wait "$PID_cli2" 2>/dev/null
mt_start cli3 "$NS_B" -i mtc -c 172.31.0.1 --udp --addr 10.9.0.2/24 $ka
mt_wait_link "$NS_B" mtc
t0=$(date +%s.%N)
mt_wait_ping "$NS_A" 10.9.0.2 6 || mt_fail "SIGKILL restart: new client not reachable within 6 s (--max-peers 1)"
grep -q 'its slot goes to a new client' "$MT_TMP/srv1.log" || mt_fail "dead peer not replaced"
mt_pass "SIGKILL restart with --max-peers 1: the dead peer made way, reachable after $(elapsed "$t0") s"
kill "$PID_srv1" "$PID_cli3"
wait "$PID_srv1" "$PID_cli3"

# NAT rebinding through a relay on B's loopback.
mt_start srv2 "$NS_A" -i mts -s --udp --addr 10.9.0.1/24 $ka
mt_wait_link "$NS_A" mts
flag=$MT_TMP/rebind
ip netns exec "$NS_B" timeout 60 python3 "$MT_ROOT/tests/integration/udp_rebind_relay.py" \
    127.0.0.1 40000 172.31.0.1 55555 "$flag" 50 >"$MT_TMP/relay.log" 2>&1 &
MT_PIDS+=($!)
sleep 0.3
mt_start cli4 "$NS_B" -i mtc -c 127.0.0.1 -p 40000 --udp --addr 10.9.0.2/24 $ka
mt_wait_link "$NS_B" mtc
mt_wait_ping "$NS_B" 10.9.0.1 10 || mt_fail "no tunnel through the relay"
# A second, older peer (no identity) from B's address: the server now has two peers.
read -r _ _ replies _ _ < <(ip netns exec "$NS_B" timeout 30 python3 \
    "$MT_ROOT/tests/integration/udp_peers.py" 172.31.0.1 55555 1 --inner-base 10.9.0.50 --wait 3)
[ "$replies" = 1 ] || mt_fail "a peer without session identity got no answer"
mt_pass "a peer without session identity (older client) is answered"
mt_ping "$NS_A" 10.9.0.2 3 || mt_fail "server cannot reach the client before the rebinding"
touch "$flag"
sleep 0.2
t0=$(date +%s.%N)
mt_wait_ping "$NS_A" 10.9.0.2 3 || mt_fail "NAT rebinding: server traffic black-holed (stale peer)"
grep -q 'moved to' "$MT_TMP/srv2.log" || mt_fail "no move logged"
grep -q 'rebound' "$MT_TMP/relay.log" || mt_fail "the relay never rebound"
mt_pass "NAT rebinding: peer and routes followed the new port, reachable after $(elapsed "$t0") s"
