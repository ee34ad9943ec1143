#!/usr/bin/env bash
# Hostile scripts: a spin inside pcall, a memory bomb, deep recursion, huge strings, absurd
# resizes, an error on every packet, a packet used after its call, a storm of 100 reloads and a
# reload to a broken file. The tunnel stays up, other traffic keeps flowing (a transfer's
# sha256 matches), the log stays rate-limited and the counters say what happened.
source "$(dirname "$0")/lib.sh"
S="$MT_ROOT/tests/integration/scripts"
mt_topology
cp "$S/hostile.lua" "$MT_TMP/hostile.lua"

mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24
SRV=$MT_LAST_PID
mt_wait_link "$NS_A" mt0
mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24 -S "$MT_TMP/hostile.lua" \
    --lua-budget 300000 --lua-mem 32 --lua-time 2000 # this test is about the budget and the cap
CLI=$MT_LAST_PID
mt_wait_link "$NS_B" mt0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "tunnel not up"

udp_to() { # PORT COUNT
    ip netns exec "$NS_B" python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    s.sendto(b"hostile", ("10.9.0.1", int(sys.argv[1])))
    time.sleep(0.002)
' "$1" "$2"
}

# A transfer runs underneath the whole misbehaviour and must arrive intact.
(mt_transfer "$NS_B" "$NS_A" 10.9.0.1 6 5210 1500000 && touch "$MT_TMP/xfer.ok") &
XFER=$!
for port in 9 10 11 12 13 15; do
    udp_to "$port" 3
    kill -0 "$CLI" || mt_fail "port $port killed the client"
done
udp_to 14 400
sleep 1.2
udp_to 14 1 # the next second's first error reports how many the last one suppressed
mt_ping "$NS_B" 10.9.0.1 5 || mt_fail "pings lost while scripts misbehaved"
wait "$XFER"
[ -f "$MT_TMP/xfer.ok" ] || mt_fail "the transfer under hostile scripts failed"
mt_pass "spin/memory bomb/recursion/huge strings/resizes/errors: client alive, ping ok, 6 MiB sha256 ok"

mt_wait_log cli 'stashed packet later: .*expired'
grep -q 'still readable' "$MT_TMP/cli.log" && mt_fail "a stashed packet was readable after its call"
mt_pass "a packet kept past its call raises 'expired'"

# 400 errors in ~1 s: at most 5 lines a second plus the suppression notes.
boom=$(grep -c 'boom on every packet' "$MT_TMP/cli.log")
[ "$boom" -le 20 ] || mt_fail "error log not rate-limited: $boom lines for 400 errors"
grep -q 'more script errors suppressed' "$MT_TMP/cli.log" || mt_fail "no suppression note"
mt_pass "400 failing calls logged as $boom lines plus suppression notes"

# Reload storm: 100 SIGHUPs while a transfer runs.
(mt_transfer "$NS_B" "$NS_A" 10.9.0.1 4 5211 2000000 && touch "$MT_TMP/xfer2.ok") &
XFER=$!
sleep 0.3
for i in $(seq 1 100); do
    kill -HUP "$CLI"
    sleep 0.01
done
wait "$XFER"
[ -f "$MT_TMP/xfer2.ok" ] || mt_fail "the transfer during the reload storm failed"
for _ in $(seq 50); do
    [ "$(grep -c 'scripts reloaded' "$MT_TMP/cli.log")" -ge 100 ] && break
    sleep 0.1
done
n=$(grep -c 'scripts reloaded' "$MT_TMP/cli.log")
# Signals that arrive while one is pending merge into one: at least most must have landed.
[ "$n" -ge 50 ] || mt_fail "only $n of 100 reloads happened"
mt_pass "reload storm: $n reloads under a 4 MiB transfer (sha256 ok)"

printf 'return { egress = function(pkt) return nonsense( end }\n' >"$MT_TMP/hostile.lua"
kill -HUP "$CLI"
mt_wait_log cli 'reload failed, keeping'
udp_to 14 1
mt_ping "$NS_B" 10.9.0.1 3 || mt_fail "ping after the broken reload"

kill "$SRV" "$CLI"
wait "$CLI" || mt_fail "client exit status $?"
wait "$SRV"
summary=$(grep 'stopped:' "$MT_TMP/cli.log")
echo "  $summary" | sed 's/.*script errors/  script errors/'
echo "$summary" | grep -qE 'budget [1-9]' || mt_fail "budget aborts not counted"
echo "$summary" | grep -qE 'memory [1-9]' || mt_fail "memory aborts not counted"
echo "$summary" | grep -qE 'failed [1-9]' || mt_fail "failed reload not counted"
mt_pass "broken reload refused, old script kept; counters: budget, memory and reload failures"
