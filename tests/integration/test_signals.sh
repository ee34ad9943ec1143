#!/usr/bin/env bash
# Signals that tell the truth: SIGUSR1 and SIGUSR2 log the status (counters, peers, scripts)
# and the tunnel goes on; SIGPIPE changes nothing; SIGQUIT, SIGINT, SIGALRM and a real-time
# signal end it with its summary and the device gone. A client's packets before its connection
# is up count as "not connected", not "no route".
. "$(dirname "$0")/lib.sh"
mt_topology

# The client alone first: what it reads from its device has nowhere to go yet.
mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24 -S "$MT_ROOT/examples/firewall.lua"
mt_wait_link "$NS_B" mt0
ip netns exec "$NS_B" ping -n -q -c 3 -i 0.2 -W 1 10.9.0.1 >/dev/null 2>&1
kill -USR1 "$PID_cli"
mt_wait_log cli 'status \(SIGUSR1\): 0 peers'
line=$(grep 'status (SIGUSR1)' "$MT_TMP/cli.log")
nc=$(echo "$line" | sed -n 's/.*not connected \([0-9]*\), no route \([0-9]*\),.*/\1 \2/p')
read -r not_connected no_route <<<"$nc"
[ "${not_connected:-0}" -ge 3 ] && [ "$no_route" -eq 0 ] ||
    mt_fail "before the link: not connected '$not_connected', no route '$no_route': $line"
mt_pass "before the link: $not_connected packets not connected, no route $no_route"

mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 -S "$MT_ROOT/examples/firewall.lua allow=icmp"
mt_wait_link "$NS_A" mt0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "no ping through the tunnel"

# SIGUSR1, SIGUSR2, SIGPIPE: a status block (or nothing), and the tunnel goes on.
for sig in USR1 USR2 PIPE; do
    kill -"$sig" "$PID_srv" || mt_fail "kill -$sig"
    sleep 0.3
    kill -0 "$PID_srv" 2>/dev/null || mt_fail "SIG$sig ended the server: $(tail -3 "$MT_TMP/srv.log")"
    mt_ping "$NS_B" 10.9.0.1 || mt_fail "pings lost after SIG$sig"
done
grep -qE 'status \(SIGUSR1\): 1 peer, device rx [0-9]+/' "$MT_TMP/srv.log" || mt_fail "no SIGUSR1 status"
grep -qE 'status \(SIGUSR2\): 1 peer, ' "$MT_TMP/srv.log" || mt_fail "no SIGUSR2 status"
grep -qE 'status: peer 172\.31\.0\.2:[0-9]+ .* up [0-9]+ s, .*rx [0-9]+/[0-9]+ B' "$MT_TMP/srv.log" ||
    mt_fail "no peer line in the status"
grep -qE 'status: script .*examples/firewall.lua: calls [1-9][0-9]*, errors 0' "$MT_TMP/srv.log" ||
    mt_fail "no script line in the status"
[ "$(grep -c 'status (SIG' "$MT_TMP/srv.log")" -eq 2 ] || mt_fail "SIGPIPE logged a status"
mt_pass "SIGUSR1/SIGUSR2 log the status, SIGPIPE is ignored; pings pass after each"
grep -E 'status' "$MT_TMP/srv.log" | head -3 | sed 's/^/    /'

# Ending signals: each ends its process with the summary, status 0, the device gone.
ends() { # NAME SIGNAL
    local pid
    eval "pid=\$PID_$1"
    kill -"$2" "$pid" || mt_fail "kill -$2"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid"
    local rc=$?
    [ "$rc" -eq 0 ] || mt_fail "SIG$2: exit status $rc"
    grep -qE "caught signal [0-9]+ .*stopping" "$MT_TMP/$1.log" || mt_fail "SIG$2: no 'caught signal'"
    grep -qE 'stopped: device rx [0-9]+/[0-9]+ B .* not connected [0-9]+, no route' "$MT_TMP/$1.log" ||
        mt_fail "SIG$2: no summary: $(tail -3 "$MT_TMP/$1.log")"
}
ends srv QUIT
ip -n "$NS_A" link show mt0 >/dev/null 2>&1 && mt_fail "the server's device outlived SIGQUIT"
ends cli INT
mt_pass "SIGQUIT and SIGINT end with the summary, status 0"

for sig in ALRM RTMIN+3; do
    : >"$MT_TMP/srv.log"
    mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24
    mt_wait_link "$NS_A" mt0
    ends srv "$sig"
done
mt_pass "SIGALRM and SIGRTMIN+3 end with the summary too"
