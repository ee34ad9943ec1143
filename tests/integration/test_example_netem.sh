#!/usr/bin/env bash
# examples/netem.lua on real traffic: delay=50ms jitter=5ms loss=10% on the server's egress
# raises the median ping RTT from < 10 ms to 45-80 ms and loses 3-20% of 200 pings; dir=both
# on the client (mt.send and mt.inject paths) adds both ways and a TCP transfer stays intact.
source "$(dirname "$0")/lib.sh"
mt_topology

out=$("$MOONTUN" -s -p 1 -S "$MT_ROOT/examples/netem.lua loss=lots" 2>&1) &&
    mt_fail "a bad loss did not stop start-up"
echo "$out" | grep -q 'loss=lots' || mt_fail "bad setting not named: $out"

# up [SERVER ARGS] -- [CLIENT ARGS]: the tunnel 10.9.0.1 (A) <-> 10.9.0.2 (B).
up() {
    mt_pair "$@"
}
down() {
    kill "$PID_srv" "$PID_cli"
    wait "$PID_srv" || mt_fail "server exit status $?"
    wait "$PID_cli" || mt_fail "client exit status $?"
}
# pings COUNT INTERVAL: pings A from B; sets MEDIAN (ms), LOSS (%) and SPREAD (ms, 10th to
# 90th percentile of the RTTs).
pings() {
    ip netns exec "$NS_B" ping -n -c "$1" -i "$2" -W 1 10.9.0.1 >"$MT_TMP/ping.out" 2>&1
    read -r MEDIAN LOSS SPREAD < <(python3 - "$1" "$MT_TMP/ping.out" <<'EOF'
import re, statistics, sys
rtts = sorted(float(m) for m in re.findall(r"time=([\d.]+) ms", open(sys.argv[2]).read()))
if not rtts:
    print("nan 100 nan"); sys.exit()
q = statistics.quantiles(rtts, n=10) if len(rtts) > 1 else [rtts[0]] * 9
print("%.1f %.1f %.1f" % (statistics.median(rtts), 100 * (1 - len(rtts) / int(sys.argv[1])), q[8] - q[0]))
EOF
)
}
between() { awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x >= lo && x <= hi) }'; }

up --
pings 20 0.05
between "$MEDIAN" 0 10 || mt_fail "baseline median RTT $MEDIAN ms, want < 10"
mt_pass "baseline: median RTT $MEDIAN ms"
down

up -S "$MT_ROOT/examples/netem.lua delay=50ms jitter=5ms loss=10% dir=egress" --
pings 200 0.02
between "$MEDIAN" 45 80 || mt_fail "delay=50ms: median RTT $MEDIAN ms, want 45-80"
between "$LOSS" 3 20 || mt_fail "loss=10%: $LOSS% of 200 pings lost, want 3-20%"
between "$SPREAD" 2 12 || mt_fail "jitter=5ms: RTT 10th-90th percentile spread $SPREAD ms, want 2-12"
mt_pass "server egress delay=50ms jitter=5ms loss=10%: median RTT $MEDIAN ms, spread $SPREAD ms, loss $LOSS% of 200"
down
grep -q 'delay 50ms ± 5ms, loss 10%' "$MT_TMP/srv.log" || mt_fail "start-up line missing"

up -- -S "$MT_ROOT/examples/netem.lua delay=20ms dir=both"
pings 20 0.05
between "$MEDIAN" 38 60 || mt_fail "client dir=both delay=20ms: median RTT $MEDIAN ms, want 38-60"
[ "$LOSS" = "0.0" ] || mt_fail "client dir=both: $LOSS% lost with loss=0"
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 2 || mt_fail "TCP through the delay lines"
mt_pass "client dir=both delay=20ms: median RTT $MEDIAN ms, no loss; 2 MiB TCP sha256 ok in ${MT_XFER_SECONDS}s"
down
