#!/usr/bin/env bash
# The control socket of a running tunnel: moontun show (text and --json), metrics (the
# Prometheus parser, and GET /metrics), reload under traffic, peer kill, 50 clients at once and
# hostile ones while pings flow without loss, the socket's mode and owner, and the one-line
# error when no instance runs.
. "$(dirname "$0")/lib.sh"
mt_topology
PY=/usr/bin/python3 # Debian's, with python3-prometheus-client
CTL="$MT_ROOT/tests/integration/ctl_client.py"
SOCK=/run/moontun/mt0@$NS_A.sock
show() { ip netns exec "$NS_A" "$MOONTUN" "$@"; }

# No instance: one line naming the socket, status 1.
out=$(show show mt0 2>&1)
rc=$?
[ "$rc" -eq 1 ] || mt_fail "show without an instance: status $rc"
echo "$out" | grep -q "no moontun instance on mt0: cannot connect to $SOCK" ||
    mt_fail "show without an instance said: $out"
[ "$(echo "$out" | wc -l)" -eq 1 ] || mt_fail "more than one line: $out"
mt_pass "no instance: $out"

mt_pair -S "$MT_ROOT/examples/firewall.lua" --metrics-listen 127.0.0.1:9586 --
[ -S "$SOCK" ] || mt_fail "no socket at $SOCK"
[ "$(stat -c '%a %U' "$SOCK")" = "600 root" ] || mt_fail "socket mode/owner: $(stat -c '%a %U' "$SOCK")"
out=$(ip netns exec "$NS_A" setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$MOONTUN" show mt0 2>&1) && mt_fail "a non-owner could connect: $out"
echo "$out" | grep -q "Permission denied" || mt_fail "non-owner: $out"
mt_pass "socket $SOCK is 0600 root; nobody gets: $out"

# show during traffic: the peer, the script, counters that rise, the firewall's drops.
show show mt0 >"$MT_TMP/show1.txt" || mt_fail "show failed"
grep -q '^peer: 172.31.0.2:' "$MT_TMP/show1.txt" || mt_fail "show lists no peer: $(cat "$MT_TMP/show1.txt")"
grep -q "^script: .*examples/firewall.lua" "$MT_TMP/show1.txt" || mt_fail "show lists no script"
grep -q "inner addresses: .*10.9.0.2" "$MT_TMP/show1.txt" || mt_fail "show lists no inner address"
show show --json >"$MT_TMP/show1.json" || mt_fail "show --json failed"
ip netns exec "$NS_B" ping -n -q -c 20 -i 0.02 10.9.0.1 >/dev/null || mt_fail "pings lost"
# a TCP connection the firewall refuses (port 7 not in allow=icmp): drop verdicts
ip netns exec "$NS_B" timeout 2 bash -c 'exec 3<>/dev/tcp/10.9.0.1/7' 2>/dev/null
show show mt0 --json >"$MT_TMP/show2.json" || mt_fail "show --json failed"
$PY - "$MT_TMP/show1.json" "$MT_TMP/show2.json" <<'PYEOF' || mt_fail "show --json: counters"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
pa, pb = a["peers"][0], b["peers"][0]
assert pb["rx_packets"] >= pa["rx_packets"] + 20, (pa, pb)
assert pb["tx_packets"] >= pa["tx_packets"] + 20, (pa, pb)
fw = b["scripts"][0]
assert fw["file"].endswith("firewall.lua") and fw["settings"] == {}, fw
assert fw["verdicts"]["drop"] >= 1 and fw["verdicts"]["pass"] >= 20, fw
assert fw["hook_samples"] >= 1 and 0 < fw["hook_p50"] <= fw["hook_p99"] < 0.05, fw
assert b["counters"]["script_drops"] >= 1, b["counters"]
assert "10.9.0.2" in pb["inner"], pb
print("  peer rx %d -> %d packets, firewall verdicts %s, hook p50 %.1f us" % (
    pa["rx_packets"], pb["rx_packets"], fw["verdicts"], fw["hook_p50"] * 1e6))
PYEOF
mt_pass "show and show --json: counters rise, firewall drops counted"

# metrics: the real parser, and the same numbers over HTTP.
show metrics mt0 >"$MT_TMP/metrics.txt" || mt_fail "metrics failed"
$PY "$CTL" metrics "$MT_TMP/metrics.txt" >"$MT_TMP/metrics.json" || mt_fail "metrics do not parse"
$PY - "$MT_TMP/metrics.json" <<'PYEOF' || mt_fail "metrics: values"
import json, sys
m = json.load(open(sys.argv[1]))["values"]
assert m["moontun_peers"] == 1, m
assert m["moontun_script_verdicts_total:drop"] >= 1, m
assert m["moontun_peer_rx_packets_total"] >= 20, m
assert m["moontun_dev_rx_packets_total"] >= 20, m
PYEOF
ip netns exec "$NS_A" $PY "$CTL" http 127.0.0.1 9586 /metrics >"$MT_TMP/http.txt" ||
    mt_fail "GET /metrics failed"
head -1 "$MT_TMP/http.txt" | grep -q '^HTTP/1.1 200' || mt_fail "GET /metrics: $(head -1 "$MT_TMP/http.txt")"
tail -n +2 "$MT_TMP/http.txt" >"$MT_TMP/http_body.txt"
$PY "$CTL" metrics "$MT_TMP/http_body.txt" >/dev/null || mt_fail "GET /metrics does not parse"
ip netns exec "$NS_A" $PY "$CTL" http 127.0.0.1 9586 /other | head -1 | grep -q 404 ||
    mt_fail "GET /other is not a 404"
mt_pass "metrics and GET /metrics parse with prometheus_client ($(grep -c '^# TYPE' "$MT_TMP/metrics.txt") families)"

# Reload through the socket under traffic: no ping lost.
ip netns exec "$NS_B" ping -n -q -c 100 -i 0.02 -W 2 10.9.0.1 >"$MT_TMP/ping_reload.out" 2>&1 &
ping_pid=$!
for _ in 1 2 3 4 5; do
    show reload mt0 >"$MT_TMP/reload.out" || mt_fail "reload failed: $(cat "$MT_TMP/reload.out")"
    sleep 0.2
done
wait "$ping_pid" || mt_fail "pings lost during reloads: $(cat "$MT_TMP/ping_reload.out")"
grep -q ' 0% packet loss' "$MT_TMP/ping_reload.out" || mt_fail "loss during reloads"
[ "$(grep -c 'scripts reloaded (control socket)' "$MT_TMP/srv.log")" -eq 5 ] || mt_fail "not 5 reloads"
show show mt0 --json | $PY -c 'import json,sys; j=json.load(sys.stdin); assert j["counters"]["reloads"] == 5 and j["scripts"][0]["calls"] > 100, j' ||
    mt_fail "reload count or script counters lost over reloads"
mt_pass "5 reloads through the socket under 100 pings: 0% loss, counters carried"

# 50 clients at once, then hostile ones, while pings flow: none lost.
ip netns exec "$NS_B" ping -n -q -c 150 -i 0.02 -W 2 10.9.0.1 >"$MT_TMP/ping_flood.out" 2>&1 &
ping_pid=$!
$PY "$CTL" flood "$SOCK" 50 || mt_fail "50 concurrent clients"
$PY "$CTL" hostile "$SOCK" || mt_fail "hostile clients"
wait "$ping_pid" || mt_fail "pings lost under control clients: $(cat "$MT_TMP/ping_flood.out")"
grep -q ' 0% packet loss' "$MT_TMP/ping_flood.out" || mt_fail "loss under control clients"
show show mt0 >/dev/null || mt_fail "the socket no longer answers"
mt_pass "50 concurrent clients and hostile ones: 150 pings, 0% loss, socket still answers"

# peer kill: the TCP client's connection goes, it reconnects, traffic flows again.
addr=$(show show mt0 --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["peers"][0]["addr"])')
show peer mt0 "$addr" kill | grep -q "peer $addr killed" || mt_fail "peer kill"
mt_wait_log srv "peer $addr down: killed from the control socket"
out=$(show peer mt0 10.1.1.1:1 kill 2>&1)
[ $? -eq 1 ] && echo "$out" | grep -q "no peer 10.1.1.1:1" || mt_fail "kill of an unknown peer: $out"
mt_wait_ping "$NS_B" 10.9.0.1 20 || mt_fail "no traffic after the client reconnected"
new=$(show show mt0 --json | $PY -c 'import json,sys; p=json.load(sys.stdin)["peers"]; print(len(p), p[0]["id"])')
[ "$new" = "1 2" ] || mt_fail "after the kill: peers/id $new (want 1 peer, id 2)"
mt_pass "peer $addr killed, the client reconnected as peer 2"

# The socket goes with the process.
kill -TERM "$PID_srv"
wait "$PID_srv" 2>/dev/null
[ ! -e "$SOCK" ] || mt_fail "socket left behind at exit"
mt_pass "socket removed at exit"

# --config: a bad line is named by FILE:LINE before anything exists.
printf 'server\n# the MTU\nmtu 20\n' >"$MT_TMP/bad.conf"
out=$(ip netns exec "$NS_A" "$MOONTUN" --config "$MT_TMP/bad.conf" 2>&1)
rc=$?
[ "$rc" -eq 2 ] && echo "$out" | grep -q "bad.conf:3: --mtu" || mt_fail "bad config: $rc $out"
mt_pass "--config error: $out"

# --user (from a --config file): the socket belongs to that user, still 0600; --control moves
# it; a command-line flag overrides the file (-p).
cat >"$MT_TMP/usr.conf" <<CONF
iface mt1   # the device
server
port 1      # overridden below
user nobody
control $MT_TMP/ctl.sock
CONF
mt_start usr "$NS_A" --config "$MT_TMP/usr.conf" -p 55557
for _ in $(seq 50); do [ -S "$MT_TMP/ctl.sock" ] && break; sleep 0.1; done
[ "$(stat -c '%a %U' "$MT_TMP/ctl.sock")" = "600 nobody" ] ||
    mt_fail "--user socket: $(stat -c '%a %U' "$MT_TMP/ctl.sock" 2>&1)"
show show --control "$MT_TMP/ctl.sock" >"$MT_TMP/show_usr.txt" || mt_fail "show --control"
grep -q '^interface: mt1' "$MT_TMP/show_usr.txt" || mt_fail "show --control: $(cat "$MT_TMP/show_usr.txt")"
grep -q 'tcp server, any port 55557' "$MT_TMP/show_usr.txt" || mt_fail "-p did not override the file"
mt_pass "--config with user nobody, control PATH: socket 0600 nobody, answers; -p overrides"
