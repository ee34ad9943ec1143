#!/usr/bin/env bash
# Memcheck: the server runs under valgrind (a build without sanitizers) with a script that uses
# timers, carries a ping and a transfer, reloads once and stops; valgrind must report no
# errors and no definite leaks.
source "$(dirname "$0")/lib.sh"
PLAIN=${MOONTUN_PLAIN:-}
if [ -z "$PLAIN" ] || ! command -v valgrind >/dev/null; then
    mt_fail "needs valgrind and MOONTUN_PLAIN (a build without sanitizers; scripts/test.sh sets it)"
fi
mt_topology
S="$MT_ROOT/tests/integration/scripts"
ip netns exec "$NS_A" valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite --log-file="$MT_TMP/valgrind.txt" \
    "$PLAIN" -i mt0 -s --addr 10.9.0.1/24 -S "$S/timers.lua" >"$MT_TMP/srv.log" 2>&1 &
SRV=$!
MT_PIDS+=("$SRV")
mt_wait_link "$NS_A" mt0 30
mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24
CLI=$MT_LAST_PID
mt_wait_link "$NS_B" mt0
mt_wait_ping "$NS_B" 10.9.0.1 30 || mt_fail "no ping through the server under valgrind"
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 2 || mt_fail "transfer through the server under valgrind"
mt_wait_log srv 'packets egress=[1-9]' 10
kill -HUP "$SRV"
mt_wait_log srv 'scripts reloaded' 20
sleep 1
kill "$SRV"
wait "$SRV"
rc=$?
cat "$MT_TMP/valgrind.txt"
[ "$rc" -eq 0 ] || mt_fail "valgrind/moontun exit status $rc (99 = memcheck errors)"
grep -q 'stop: egress=' "$MT_TMP/srv.log" || mt_fail "stop handler did not run"
grep -q 'cancelled timer fired' "$MT_TMP/srv.log" && mt_fail "a cancelled timer fired"
mt_pass "memcheck: no errors, no definite leaks (ping, 2 MiB transfer, timers, reload, stop)"
kill "$CLI"
wait "$CLI"
