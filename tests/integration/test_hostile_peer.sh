#!/usr/bin/env bash
# Hostile input on the server's port: random bytes, zero and 0xFFFF frame lengths over TCP,
# random datagrams over UDP. A length no frame can have (0) closes that connection with a
# logged reason; a whole frame longer than the server takes (0xFFFF) is skipped, logged and
# the connection kept; the server keeps serving, and a legitimate transfer afterwards still
# matches its sha256.
source "$(dirname "$0")/lib.sh"
mt_topology

for transport in tcp udp; do
    mt_start "srv_$transport" "$NS_A" -i mt0 -s "--$transport" --addr 10.9.0.1/24
    srv=$MT_LAST_PID
    mt_wait_link "$NS_A" mt0
    mt_start "cli_$transport" "$NS_B" -i mt0 -c 172.31.0.1 "--$transport" --addr 10.9.0.2/24
    cli=$MT_LAST_PID
    mt_wait_link "$NS_B" mt0
    mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "$transport: tunnel not up"
    if [ "$transport" = tcp ]; then
        modes="garbage-tcp zero-tcp huge-tcp"
    else
        modes="garbage-udp"
    fi
    for mode in $modes; do
        ip netns exec "$NS_B" timeout 30 python3 "$MT_ROOT/tests/integration/hostile_peer.py" \
            "$mode" 172.31.0.1 55555 >"$MT_TMP/hostile.out" 2>&1 ||
            { cat "$MT_TMP/hostile.out"; mt_fail "$mode"; }
        kill -0 "$srv" || mt_fail "$mode: the server died"
    done
    if [ "$transport" = tcp ]; then
        grep -q 'bad frame length 0' "$MT_TMP/srv_tcp.log" || mt_fail "zero length not logged"
        grep -q 'oversized frame length 65535' "$MT_TMP/srv_tcp.log" || mt_fail "0xFFFF not logged"
    fi
    mt_ping "$NS_B" 10.9.0.1 5 || mt_fail "$transport: ping after hostile input"
    mt_transfer "$NS_B" "$NS_A" 10.9.0.1 8 || mt_fail "$transport: transfer after hostile input"
    mt_pass "$transport: survived $modes; ping and 8 MiB sha256 ok afterwards"
    kill "$srv" "$cli"
    wait "$srv" || mt_fail "$transport: server exit status $?"
    wait "$cli"
done
