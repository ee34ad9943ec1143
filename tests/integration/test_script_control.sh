#!/usr/bin/env bash
# Scripts extend the control plane: mt.command run by `moontun call` (arguments, replies, a
# failing and a spinning command, an unknown one), mt.counter/mt.gauge in `moontun metrics`
# (parsed by prometheus_client) and `moontun show [--json]`, with the firewall example's
# per-rule counter matching the UDP datagrams sent through it, and a reload that replaces the
# commands and metrics with the new script's.
. "$(dirname "$0")/lib.sh"
mt_topology
PY=/usr/bin/python3 # Debian's, with python3-prometheus-client
mt() { ip netns exec "$NS_A" "$MOONTUN" "$@"; }

# A script of commands and metrics, in two versions for the reload.
cat >"$MT_TMP/ctl.lua" <<'EOF'
local mt = require "moontun"
local level = mt.gauge("test_level", "a gauge the test sets")
local calls = mt.counter("test_calls_total", "commands run, by name")
level:set(7)
mt.command("echo", function(...)
    calls:inc(1, { name = "echo" })
    return table.concat({ ... }, "|")
end)
mt.command("boom", function() error("kaboom", 0) end)
mt.command("spin", function() while true do end end)
mt.command("quiet", function() end)
return {}
EOF
sed -e 's/"echo"/"echo2"/' -e '/test_level/d' -e '/level:set/d' "$MT_TMP/ctl.lua" >"$MT_TMP/ctl2.lua"

mt_pair -S "$MT_ROOT/examples/firewall.lua allow=udp/5000,icmp" -S "$MT_TMP/ctl.lua" --

# Commands: arguments in, reply out, exit status 0.
out=$(mt call mt0 echo a b c) || mt_fail "call echo failed: $out"
[ "$out" = "a|b|c" ] || mt_fail "call echo said: $out"
quiet=$(mt call mt0 quiet) && [ -z "$quiet" ] || mt_fail "call quiet: '$quiet'"
mt_pass "moontun call mt0 echo a b c -> $out; a command returning nothing prints nothing"

# A failing command: one line, status 1, counted as the script's error.
errors0=$(mt show mt0 --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["counters"]["script_errors"])')
out=$(mt call mt0 boom 2>&1)
rc=$?
[ "$rc" -eq 1 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q kaboom ||
    mt_fail "call boom: status $rc: $out"
# A command that spins is stopped by the handlers' time bound; the tunnel goes on.
out2=$(timeout 10 ip netns exec "$NS_A" "$MOONTUN" call mt0 spin 2>&1)
rc=$?
[ "$rc" -eq 1 ] && echo "$out2" | grep -qE "time limit exceeded|instruction budget exceeded" ||
    mt_fail "call spin: status $rc: $out2"
mt_ping "$NS_B" 10.9.0.1 || mt_fail "no ping after the spinning command"
errors1=$(mt show mt0 --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["counters"]["script_errors"])')
[ "$errors1" -eq $((errors0 + 2)) ] || mt_fail "script_errors $errors0 -> $errors1, want +2"
grep -q "ctl.lua: command boom failed: kaboom" "$MT_TMP/srv.log" || mt_fail "no log line for boom"
mt_pass "failing command: '$out'; spinning: '$out2'; script_errors +2, pings pass"

out=$(mt call mt0 nosuch 2>&1)
[ $? -eq 1 ] && echo "$out" | grep -q "no script command 'nosuch' (registered: rules, echo, boom, spin, quiet)" ||
    mt_fail "unknown command: $out"
mt_pass "unknown command: $out"

# The firewall counts per rule: K datagrams to an allowed port from one source port are one new
# connection (udp/5000) and K-1 established; K to a denied port are K denied.
K=25
snap() { mt metrics mt0 >"$MT_TMP/$1.txt" || mt_fail "metrics failed"; }
snap m0
ip netns exec "$NS_B" $PY - $K <<'PYEOF' || mt_fail "sending datagrams"
import socket, sys, time
k = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.9.0.2", 40000))
for port in (5000, 6000):
    for i in range(k):
        s.sendto(b"x" * 32, ("10.9.0.1", port))
        time.sleep(0.002)
PYEOF
sleep 0.5
snap m1
$PY - "$MT_TMP/m0.txt" "$MT_TMP/m1.txt" $K <<'PYEOF' || mt_fail "metrics: the firewall's counts"
import sys
from prometheus_client.parser import text_string_to_metric_families
def load(path):
    fams = {f.name: f for f in text_string_to_metric_families(open(path).read())}
    return fams
a, b, k = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
def rules(fams):
    f = fams["moontun_script_firewall_packets"]
    assert f.type == "counter" and "by the rule" in f.documentation, f
    out = {}
    for s in f.samples:
        assert s.labels["script"].endswith("examples/firewall.lua") and s.labels["index"] == "0", s
        out[s.labels["rule"]] = s.value
    return out
ra, rb = rules(a), rules(b)
d = {r: rb.get(r, 0) - ra.get(r, 0) for r in rb}
assert d["udp/5000"] == 1, d
assert d["established"] == k - 1, d
assert d["deny"] == k, d
assert "icmp" in rb, rb
lvl = b["moontun_script_test_level"]
assert lvl.type == "gauge" and [s.value for s in lvl.samples] == [7.0], lvl.samples
assert lvl.samples[0].labels["script"].endswith("ctl.lua") and lvl.samples[0].labels["index"] == "1"
calls = b["moontun_script_test_calls"].samples
assert [(s.labels["name"], s.value) for s in calls] == [("echo", 1.0)], calls
print("  firewall: %s" % ", ".join("%s +%d" % (r, v) for r, v in sorted(d.items())))
PYEOF
mt_pass "metrics parse; firewall_packets_total matches the $K + $K datagrams sent"

out=$(mt call mt0 rules) || mt_fail "call rules failed"
echo "$out" | grep -qE '^allow udp/5000 +1 packets$' && echo "$out" | grep -qE "^deny +$K packets" ||
    mt_fail "call rules said: $out"
mt show mt0 >"$MT_TMP/show.txt" || mt_fail "show failed"
grep -q '^  commands: rules$' "$MT_TMP/show.txt" && grep -q '^  commands: echo, boom, spin, quiet$' "$MT_TMP/show.txt" &&
    grep -qE '^  counter firewall_packets_total:.* \{rule="deny"\} [0-9]+' "$MT_TMP/show.txt" &&
    grep -q '^  gauge test_level: 7$' "$MT_TMP/show.txt" || mt_fail "show: $(cat "$MT_TMP/show.txt")"
mt show mt0 --json | $PY -c '
import json, sys
j = json.load(sys.stdin)
fw, ctl = j["scripts"]
assert fw["commands"] == ["rules"], fw
m = {s["labels"]["rule"]: s["value"] for s in fw["metrics"][0]["series"]}
assert fw["metrics"][0]["type"] == "counter" and m["udp/5000"] == 1, fw["metrics"]
assert ctl["metrics"][0] == {"name": "test_level", "type": "gauge", "help": "a gauge the test sets",
                             "series": [{"labels": {}, "value": 7}]}, ctl["metrics"]
' || mt_fail "show --json: commands and metrics"
mt_pass "call rules, show and show --json list the commands and metrics"

# A reload re-registers from the new script: echo2 instead of echo, no test_level.
cp "$MT_TMP/ctl2.lua" "$MT_TMP/ctl.lua"
mt reload mt0 >/dev/null || mt_fail "reload failed"
out=$(mt call mt0 echo2 x y) && [ "$out" = "x|y" ] || mt_fail "echo2 after the reload: $out"
out=$(mt call mt0 echo x 2>&1) && mt_fail "echo still there after the reload"
echo "$out" | grep -q "registered: rules, echo2, boom" || mt_fail "after the reload: $out"
snap m2
grep -q moontun_script_test_level "$MT_TMP/m2.txt" && mt_fail "test_level still in the metrics"
grep -q 'moontun_script_firewall_packets_total{.*rule="udp/5000"} 0' "$MT_TMP/m2.txt" ||
    mt_fail "firewall counter not declared afresh: $(grep firewall_packets "$MT_TMP/m2.txt")"
mt_pass "after the reload: echo2 runs, echo and test_level are gone, counters start again"
