#!/usr/bin/env bash
# A server restart: the client keeps running, reconnects (TCP: back-off; UDP: keepalives make
# the new server learn it) and the tunnel carries traffic again. Also a server that is not
# there yet when the client starts.
source "$(dirname "$0")/lib.sh"
mt_topology

for transport in tcp udp; do
    # Client first: nobody listens yet; it must wait, not exit.
    mt_start "cli_$transport" "$NS_B" -i mtc -c 172.31.0.1 "--$transport" --addr 10.9.0.2/24 \
        --keepalive 0.5 --idle-timeout 3
    cli=$MT_LAST_PID
    mt_wait_link "$NS_B" mtc
    sleep 1.5
    kill -0 "$cli" || mt_fail "$transport: client exited while the server was absent"

    mt_start "srv1_$transport" "$NS_A" -i mts -s "--$transport" --addr 10.9.0.1/24 \
        --keepalive 0.5 --idle-timeout 3
    srv=$MT_LAST_PID
    mt_wait_link "$NS_A" mts
    mt_wait_ping "$NS_B" 10.9.0.1 15 || mt_fail "$transport: no traffic after the late server start"
    mt_pass "$transport: client waited for a late server"

    kill "$srv"
    wait "$srv"
    sleep 1
    kill -0 "$cli" || mt_fail "$transport: client exited when the server went away"
    mt_start "srv2_$transport" "$NS_A" -i mts -s "--$transport" --addr 10.9.0.1/24 \
        --keepalive 0.5 --idle-timeout 3
    srv=$MT_LAST_PID
    mt_wait_link "$NS_A" mts
    t0=$(date +%s.%N)
    mt_wait_ping "$NS_B" 10.9.0.1 15 || mt_fail "$transport: no traffic after the server restart"
    t1=$(date +%s.%N)
    mt_transfer "$NS_B" "$NS_A" 10.9.0.1 4 || mt_fail "$transport: transfer after restart"
    if [ "$transport" = tcp ]; then
        grep -qE 'connect to .* failed|down:' "$MT_TMP/cli_$transport.log" ||
            mt_fail "tcp: the client never logged the lost connection"
    fi
    mt_pass "$transport: survived a server restart, back in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s, 4 MiB sha256 ok"
    kill "$srv" "$cli"
    wait "$srv" "$cli"
done
