#!/usr/bin/env bash
# examples/ratelimit.lua on real TCP: iperf3 from a policed source lands within ±25% of the
# rate; two policed sources at once each get about the rate (a bucket per source); a source
# outside limit= goes far above it; a bad setting stops start-up naming the setting.
source "$(dirname "$0")/lib.sh"
RATE_MBIT=2   # with the default burst=64kb: the documented defaults
mt_topology

out=$("$MOONTUN" -s -p 1 -S "$MT_ROOT/examples/ratelimit.lua rate=lots" 2>&1) &&
    mt_fail "a bad rate did not stop start-up"
echo "$out" | grep -q 'rate=lots' || mt_fail "bad setting not named: $out"

# The server polices what arrives from the tunnel; B sends from .2 and .3 (policed) and .4 (not).
mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 \
    -S "$MT_ROOT/examples/ratelimit.lua rate=${RATE_MBIT}mbit burst=64kb dir=ingress limit=10.9.0.2/32,10.9.0.3/32"
mt_wait_link "$NS_A" mt0
mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24
mt_wait_link "$NS_B" mt0
ip -n "$NS_B" addr add 10.9.0.3/32 dev mt0
ip -n "$NS_B" addr add 10.9.0.4/32 dev mt0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "no ping through the tunnel"

# iperf FROM PORT...: one 5 s TCP upload per port from B (bound to 10.9.0.FROM, FROM+1, ...)
# to A, all at once; sets RATES to the receiver-side rates in Mbit/s.
iperf() {
    local from=$1 port pids=()
    shift
    for port in "$@"; do
        ip netns exec "$NS_A" iperf3 -s -1 -D -B 10.9.0.1 -p "$port"
    done
    for port in "$@"; do
        for _ in $(seq 30); do
            ip netns exec "$NS_A" ss -ltn | grep -q "10.9.0.1:$port " && break
            sleep 0.1
        done
    done
    for port in "$@"; do
        timeout 20 ip netns exec "$NS_B" iperf3 -J -t 5 -c 10.9.0.1 -p "$port" \
            -B "10.9.0.$from" >"$MT_TMP/iperf.$port.json" 2>&1 &
        pids+=($!)
        from=$((from + 1))
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    RATES=()
    for port in "$@"; do
        RATES+=("$(python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e6))' \
            "$MT_TMP/iperf.$port.json" 2>/dev/null)") ||
            mt_fail "iperf3 to port $port: $(grep -m1 '"error"' "$MT_TMP/iperf.$port.json")"
    done
}
within() { awk -v x="$1" -v r="$RATE_MBIT" 'BEGIN { exit !(x >= r * 0.75 && x <= r * 1.25) }'; }

iperf 2 5301
one=${RATES[0]}
within "$one" || mt_fail "policed source: $one Mbit/s, want ${RATE_MBIT} ±25%"
mt_pass "policed source 10.9.0.2: $one Mbit/s (rate ${RATE_MBIT} Mbit/s)"

iperf 2 5302 5303
two=${RATES[0]} three=${RATES[1]}
within "$two" && within "$three" ||
    mt_fail "two policed sources at once: $two and $three Mbit/s, want ${RATE_MBIT} ±25% each"
mt_pass "10.9.0.2 and 10.9.0.3 at once: $two and $three Mbit/s (a bucket each)"

iperf 4 5304
free=${RATES[0]}
awk -v x="$free" -v r="$RATE_MBIT" 'BEGIN { exit !(x >= r * 4) }' ||
    mt_fail "unpoliced source 10.9.0.4: only $free Mbit/s"
mt_pass "unpoliced source 10.9.0.4: $free Mbit/s"

kill "$PID_srv"
wait "$PID_srv" || mt_fail "server exit status $?"
grep -qE 'script drops [1-9]' "$MT_TMP/srv.log" || mt_fail "no drops counted"
