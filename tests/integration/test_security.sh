#!/usr/bin/env bash
# Least privilege and admission: --user drops root after set-up (the process runs as nobody,
# traffic and reloads still work), --allow admits only matching peers (TCP and UDP), and a
# device deleted under a running moontun gives one clear line and exit status 1, not a spin.
source "$(dirname "$0")/lib.sh"
mt_topology
chmod 755 "$MT_TMP"
printf 'local mt = require "moontun"\nreturn { start = function() mt.log("script started") end }\n' \
    >"$MT_TMP/hello.lua"
chmod 644 "$MT_TMP/hello.lua"

# --user
mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 --user nobody -S "$MT_TMP/hello.lua"
SRV=$MT_LAST_PID
mt_wait_link "$NS_A" mt0
mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24
CLI=$MT_LAST_PID
mt_wait_link "$NS_B" mt0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "--user: no traffic"
user=$(ps -o user= -p "$SRV" | tr -d ' ')
[ "$user" = nobody ] || mt_fail "--user nobody: the process runs as '$user'"
grep -q 'script started' "$MT_TMP/srv.log" || mt_fail "--user: the script did not start"
kill -HUP "$SRV"
mt_wait_log srv 'scripts reloaded'
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 4 || mt_fail "--user: transfer"
kill "$SRV" "$CLI"
wait "$SRV" || mt_fail "--user: exit status $?"
wait "$CLI"
mt_pass "--user nobody: runs as nobody after set-up; script, reload and 4 MiB transfer ok"

# --allow, both transports: a refused prefix first, then an admitted one.
for transport in tcp udp; do
    mt_start "deny_$transport" "$NS_A" -i mt0 -s "--$transport" --addr 10.9.0.1/24 --allow 10.0.0.0/8 --allow fd00::/8
    SRV=$MT_LAST_PID
    mt_wait_link "$NS_A" mt0
    mt_start "cli_$transport" "$NS_B" -i mt0 -c 172.31.0.1 "--$transport" --addr 10.9.0.2/24
    CLI=$MT_LAST_PID
    mt_wait_link "$NS_B" mt0
    if mt_wait_ping "$NS_B" 10.9.0.1 3; then
        mt_fail "--allow 10.0.0.0/8 admitted 172.31.0.2 over $transport"
    fi
    mt_wait_log "deny_$transport" 'not in --allow'
    kill "$SRV"
    wait "$SRV"
    mt_start "allow_$transport" "$NS_A" -i mt0 -s "--$transport" --addr 10.9.0.1/24 --allow 172.31.0.0/24
    SRV=$MT_LAST_PID
    mt_wait_link "$NS_A" mt0
    mt_wait_ping "$NS_B" 10.9.0.1 15 || mt_fail "--allow 172.31.0.0/24 refused 172.31.0.2 over $transport"
    kill "$SRV" "$CLI"
    wait "$SRV" "$CLI"
    mt_pass "--allow over $transport: 10.0.0.0/8 refuses 172.31.0.2 (logged), 172.31.0.0/24 admits it"
done

# The device disappears under a running process.
mt_start gone "$NS_A" -i mtgone -s --addr 10.9.0.1/24
SRV=$MT_LAST_PID
mt_wait_link "$NS_A" mtgone
ip -n "$NS_A" link del mtgone
for _ in $(seq 30); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
kill -0 "$SRV" 2>/dev/null && mt_fail "still running 3 s after its device was deleted"
wait "$SRV"
rc=$?
[ "$rc" -eq 1 ] || mt_fail "exit status $rc after the device vanished, expected 1"
grep -q 'device mtgone is gone' "$MT_TMP/gone.log" || mt_fail "no clear log line"
mt_pass "device deleted: '$(grep -o 'device mtgone is gone.*' "$MT_TMP/gone.log")', exit 1"
