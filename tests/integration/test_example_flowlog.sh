#!/usr/bin/env bash
# examples/flowlog.lua on real traffic: a 4 MiB TCP transfer shows up in the logged table with
# the bytes the device carried (payload plus 40-60 header bytes a packet, within 5% of payload
# plus 52 a packet), its ACK flow too, and the flow ends after idle and leaves the tables.
source "$(dirname "$0")/lib.sh"
MIB=4
mt_topology

out=$("$MOONTUN" -s -p 1 -S "$MT_ROOT/examples/flowlog.lua interval=often" 2>&1) &&
    mt_fail "a bad interval did not stop start-up"
echo "$out" | grep -q 'interval=often' || mt_fail "bad setting not named: $out"

mt_pair -S "$MT_ROOT/examples/flowlog.lua interval=1s idle=3s top=10" --

mt_transfer "$NS_B" "$NS_A" 10.9.0.1 "$MIB" 5201 || mt_fail "transfer"
mt_log "transferred $MIB MiB in ${MT_XFER_SECONDS}s"
# Pings keep tables coming after the transfer's flow ends, so its absence from them counts.
ip netns exec "$NS_B" ping -n -q -i 0.2 -c 50 10.9.0.1 >/dev/null 2>&1 &
MT_PIDS+=($!)
mt_wait_log srv 'ended \(idle\) tcp 10\.9\.0\.2:[0-9]+ > 10\.9\.0\.1:5201' 8
sleep 2.5 # two more tables

# The last table row of the data flow and of its ACK flow, and what the log says after the end.
python3 - "$MT_TMP/srv.log" "$((MIB * 1024 * 1024))" <<'EOF' || mt_fail "flow table check"
import re, sys
log, payload = open(sys.argv[1]).read().splitlines(), int(sys.argv[2])
row = r"flowlog\.lua:\s+tcp\s+%s\s+%s\s+(\d+)\s+(\d+)\s"
data = ack = None
for i, line in enumerate(log):
    m = re.search(row % (r"10\.9\.0\.2:(\d+)", r"10\.9\.0\.1:5201"), line)
    if m:
        sport, data = m.group(1), (int(m.group(2)), int(m.group(3)))
    m = re.search(row % (r"10\.9\.0\.1:5201", r"10\.9\.0\.2:\d+"), line)
    if m:
        ack = (int(m.group(1)), int(m.group(2)))
    if re.search(r"ended \(idle\) tcp 10\.9\.0\.2:\d+ > 10\.9\.0\.1:5201", line):
        end = i
        break
if data is None or ack is None:
    sys.exit("  the data flow or its ACK flow never appeared in a table")
pkts, nbytes = data
# Every packet (or offload super-packet) carries one IPv4 20 + TCP 20 + timestamps 12 header.
expect = payload + 52 * pkts
print("  table: %d packets, %d bytes; payload %d; payload + 52 a packet %d (%+.2f%%); ACK flow %d packets, %d bytes"
      % (pkts, nbytes, payload, expect, 100.0 * (nbytes - expect) / expect, *ack))
if not payload + 40 * pkts <= nbytes <= payload + 60 * pkts:
    sys.exit("  bytes outside payload + 40..60 header bytes a packet")
if abs(nbytes - expect) > 0.05 * expect:
    sys.exit("  bytes not within 5% of payload + 52 a packet")
if not re.search(r"ended \(idle\) tcp 10\.9\.0\.2:%s > 10\.9\.0\.1:5201: %d packets, %d bytes"
                 % (sport, pkts, nbytes), log[end]):
    sys.exit("  the end line's counters differ from the table's: " + log[end])
tables = [l for l in log[end + 1:] if re.search(r"flowlog\.lua: \d+ flows", l)]
later = [l for l in log[end + 1:] if "10.9.0.2:%s " % sport in l]
if len(tables) < 2 or later:
    sys.exit("  after the end: %d tables, the ended flow in %s" % (len(tables), later or "none"))
EOF
mt_pass "4 MiB transfer counted in the flow table with its headers; the flow ended after idle=3s and left the table"

kill "$PID_srv"
wait "$PID_srv" || mt_fail "server exit status $?"
