#!/usr/bin/env bash
# examples/firewall.lua keeps its connections across a reload: with the firewall on the server
# (A), an open TCP connection that B started (to an allowed port) and one that A started (B's
# port is not allowed in) stay idle while A reloads its scripts (SIGHUP); then B, the tunnel
# side, speaks first on each, and both get through (before, the reloaded firewall had
# forgotten them and dropped B's packets for good). The same over IPv6, and a denied port
# stays denied after the reload.
source "$(dirname "$0")/lib.sh"
FW="$MT_ROOT/examples/firewall.lua"
CHAT="$MT_ROOT/tests/integration/chat.py"
mt_topology
mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 --addr fd09::1/64 \
    -S "$FW allow=tcp/5201,icmp"
mt_wait_link "$NS_A" mt0
mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24 --addr fd09::2/64
mt_wait_link "$NS_B" mt0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "no ping from B"

GO="$MT_TMP/go"
chat() { # NAME NS ARGS...: in the background, output in $MT_TMP/NAME.out
    local name=$1 ns=$2
    shift 2
    ip netns exec "$ns" timeout 40 python3 "$CHAT" "$@" >"$MT_TMP/$name.out" 2>&1 &
    eval "CHAT_$name=$!"
    MT_PIDS+=($!)
}
listening() { # NS PORT
    for _ in $(seq 50); do
        ip netns exec "$1" ss -ltn | grep -q ":$2 " && return 0
        sleep 0.1
    done
    mt_fail "nothing listens on $2"
}
# B -> A on the allowed port (IPv4 and IPv6): B speaks first after the reload.
chat in4s "$NS_A" serve 10.9.0.1 5201 "$GO" answer
chat in6s "$NS_A" serve fd09::1 5201 "$GO" answer
listening "$NS_A" 5201
chat in4c "$NS_B" connect 10.9.0.1 5201 "$GO" speak
chat in6c "$NS_B" connect fd09::1 5201 "$GO" speak
# A -> B (no inbound rule): B, the server, speaks first after the reload.
chat outs "$NS_B" serve 10.9.0.2 6000 "$GO" speak
listening "$NS_B" 6000
chat outc "$NS_A" connect 10.9.0.2 6000 "$GO" answer
for name in in4c in6c outc; do
    for _ in $(seq 50); do grep -q 'round1 ok' "$MT_TMP/$name.out" && break; sleep 0.1; done
    grep -q 'round1 ok' "$MT_TMP/$name.out" || mt_fail "$name round 1: $(cat "$MT_TMP/$name.out")"
done
mt_pass "three connections open: B->A IPv4, B->A IPv6, A->B"

kill -HUP "$PID_srv"
mt_wait_log srv 'scripts reloaded'
touch "$GO"
for name in in4c in6c outs; do
    eval "wait \$CHAT_$name" || mt_fail "$name after the reload: $(cat "$MT_TMP/$name.out")"
done
for name in in4s in6s outc; do
    eval "wait \$CHAT_$name" || mt_fail "$name after the reload: $(cat "$MT_TMP/$name.out")"
done
mt_pass "after SIGHUP, B spoke first on each connection and got its answer"

# Still a firewall: a port that is not allowed stays closed.
ip netns exec "$NS_A" timeout 10 python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.9.0.1", 5202)); s.listen(1); time.sleep(6)' &
MT_PIDS+=($!)
listening "$NS_A" 5202
ip netns exec "$NS_B" timeout 10 python3 -c '
import socket, sys
try:
    socket.create_connection(("10.9.0.1", 5202), timeout=2)
except socket.timeout:
    sys.exit(0)
sys.exit(1)' || mt_fail "denied port 5202 reachable after the reload"
mt_pass "denied port 5202 still times out after the reload"
kill "$PID_srv" "$PID_cli"
wait "$PID_srv" || mt_fail "server exit status $?"
wait "$PID_cli" || mt_fail "client exit status $?"
