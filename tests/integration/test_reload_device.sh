#!/usr/bin/env bash
# The device's addresses, from the command line to a device taken down and up again:
# --mtu below 1280 with an IPv6 --addr stops start-up with one line naming the address and the
# minimum, before any device exists; a device taken down and up (which flushes its IPv6
# addresses) gets its IPv6 --addr back, logged once, and ping6 through the tunnel works again.
source "$(dirname "$0")/lib.sh"
mt_topology

# 1. --mtu 576 with an IPv6 address: exit 2, one line, no device left behind.
out=$(ip netns exec "$NS_A" timeout 5 "$MOONTUN" -s -i mt0 --mtu 576 --addr 10.9.0.1/24 \
    --addr fd09::1/64 2>&1)
rc=$?
[ "$rc" -eq 2 ] || mt_fail "--mtu 576 with IPv6: exit status $rc, expected 2 ($out)"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ $out == *fd09::1/64* ]] && [[ $out == *1280* ]] ||
    mt_fail "--mtu 576 with IPv6: expected one line naming fd09::1/64 and 1280, got: $out"
ip -n "$NS_A" link show mt0 >/dev/null 2>&1 && mt_fail "a device was created before the error"
mt_pass "--mtu 576 --addr fd09::1/64 refused: $out"
# IPv4 alone may use a small MTU.
mt_start small "$NS_A" -s -i mt0 --mtu 576 --addr 10.9.0.1/24
mt_wait_link "$NS_A" mt0
kill "$PID_small"
wait "$PID_small" || mt_fail "--mtu 576 with IPv4 only: exit status $?"
mt_pass "--mtu 576 with IPv4 only runs"

# 2. Down and up on either end: IPv6 addresses come back, ping6 works again.
mt_pair --addr fd09::1/64 --addr fd0a::1/64 -- --addr fd09::2/64
mt_wait_ping "$NS_B" fd09::1 || mt_fail "no ping6 before the flap"
mt_pass "ping6 B -> A works"

flap() { # NS NAME: takes mt0 down and up, waits for the restore line
    ip -n "$1" link set dev mt0 down
    ip -n "$1" -6 addr show dev mt0 | grep -q 'fd0' && mt_log "(IPv6 addresses kept on down)"
    ip -n "$1" link set dev mt0 up
    mt_wait_log "$2" 'mt0 is up again: restored'
}
flap "$NS_A" srv
ip -n "$NS_A" -6 addr show dev mt0 | grep -q 'fd09::1/64' || mt_fail "fd09::1/64 not restored"
ip -n "$NS_A" -6 addr show dev mt0 | grep -q 'fd0a::1/64' || mt_fail "fd0a::1/64 not restored"
ip -n "$NS_A" -4 addr show dev mt0 | grep -q '10.9.0.1/24' || mt_fail "10.9.0.1/24 lost"
mt_wait_ping "$NS_B" fd09::1 5 || mt_fail "no ping6 B -> A after A's device went down and up"
mt_ping "$NS_B" fd09::1 3 || mt_fail "ping6 B -> A lost packets after the flap"
mt_ping "$NS_B" 10.9.0.1 3 || mt_fail "ping B -> A lost packets after the flap"
[ "$(grep -c 'up again' "$MT_TMP/srv.log")" -eq 1 ] || mt_fail "expected one restore line"
mt_pass "A down/up: $(grep -o 'restored.*' "$MT_TMP/srv.log"); ping6 and ping work"

flap "$NS_B" cli
mt_wait_ping "$NS_A" fd09::2 5 || mt_fail "no ping6 A -> B after B's device went down and up"
mt_ping "$NS_A" fd09::2 3 || mt_fail "ping6 A -> B lost packets after B's flap"
mt_pass "B down/up: ping6 A -> B works"

# A second flap is restored as well; down alone restores nothing.
ip -n "$NS_A" link set dev mt0 down
sleep 0.5
[ "$(grep -c 'up again' "$MT_TMP/srv.log")" -eq 1 ] || mt_fail "a restore while the device is down"
ip -n "$NS_A" link set dev mt0 up
for _ in $(seq 50); do [ "$(grep -c 'up again' "$MT_TMP/srv.log")" -eq 2 ] && break; sleep 0.1; done
[ "$(grep -c 'up again' "$MT_TMP/srv.log")" -eq 2 ] || mt_fail "second flap not restored"
mt_wait_ping "$NS_B" fd09::1 5 || mt_fail "no ping6 after the second flap"
mt_pass "second flap restored too"

kill "$PID_srv" "$PID_cli"
wait "$PID_srv" || mt_fail "server exit status $?"
wait "$PID_cli" || mt_fail "client exit status $?"
