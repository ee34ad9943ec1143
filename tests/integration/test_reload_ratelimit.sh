#!/usr/bin/env bash
# examples/ratelimit.lua keeps its buckets across a reload: B empties its bucket on A (burst
# 16 KiB, refilled at 1 KB/s), A reloads its scripts (SIGHUP), and B's next 20 datagrams are
# still limited to what the refill allows (before, the reload gave every source a full bucket,
# and all 20 passed).
source "$(dirname "$0")/lib.sh"
COUNT="$MT_ROOT/tests/integration/udpcount.py"
mt_topology
mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 \
    -S "$MT_ROOT/examples/ratelimit.lua rate=8kbit burst=16kb"
mt_wait_link "$NS_A" mt0
mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24
mt_wait_link "$NS_B" mt0
mt_wait_log srv 'peer .* up'
mt_wait_log cli 'peer .* up'
OUT="$MT_TMP/recv.out"
touch "$OUT"
ip netns exec "$NS_A" timeout 60 python3 "$COUNT" recv 10.9.0.1 7000 "$OUT" &
MT_PIDS+=($!)
for _ in $(seq 50); do ip netns exec "$NS_A" ss -lun | grep -q ':7000 ' && break; sleep 0.1; done
send() { ip netns exec "$NS_B" timeout 20 python3 "$COUNT" send 10.9.0.1 7000 7001 "$@"; }

# 1. 40 datagrams of 1000 bytes (1028 on the device): the 16 KiB burst lets about 16 through.
send one 40 1000
sleep 0.5
n1=$(grep -c '^one-' "$OUT")
[ "$n1" -ge 12 ] && [ "$n1" -le 20 ] || mt_fail "first burst: $n1 of 40 passed, expected ~16"
mt_pass "first burst: $n1 of 40 passed (16 KiB bucket)"

# 2. Reload, then 20 more at once: only the refill since the burst (1 KB/s) may pass.
kill -HUP "$PID_srv"
mt_wait_log srv 'scripts reloaded'
send two 20 1000
sleep 0.5
n2=$(grep -c '^two-' "$OUT")
[ "$n2" -le 5 ] || mt_fail "after the reload $n2 of 20 passed: the bucket was refilled"
mt_pass "after SIGHUP: $n2 of 20 passed (the bucket was not refilled)"

# 3. And it does refill with time: after 4 s, about 4 KB pass again.
sleep 4
send three 20 1000
sleep 0.5
n3=$(grep -c '^three-' "$OUT")
[ "$n3" -ge 2 ] && [ "$n3" -le 10 ] || mt_fail "after 4 s of refill $n3 of 20 passed, expected ~4"
mt_pass "4 s later: $n3 of 20 passed (refilled at the rate)"
kill "$PID_srv" "$PID_cli"
wait "$PID_srv" || mt_fail "server exit status $?"
wait "$PID_cli" || mt_fail "client exit status $?"
