#!/usr/bin/env bash
# Two clients of one server reach each other through it: the server learns which peer owns
# which inner address and forwards between them. In tun mode over TCP and tap mode over UDP.
source "$(dirname "$0")/lib.sh"
NS_S=$(mt_ns s)
NS_B=$(mt_ns b)
NS_C=$(mt_ns c)
mt_veth "$NS_S" 172.31.1.1/24 "$NS_B" 172.31.1.2/24 >/dev/null
mt_veth "$NS_S" 172.31.2.1/24 "$NS_C" 172.31.2.2/24 >/dev/null

run_case() {
    local transport=$1 mode=$2
    mt_start "s_$transport" "$NS_S" -i mt0 "--$mode" -s "--$transport" --addr 10.9.0.1/24
    local s=$MT_LAST_PID
    mt_wait_link "$NS_S" mt0
    mt_start "b_$transport" "$NS_B" -i mt0 "--$mode" -c 172.31.1.1 "--$transport" --addr 10.9.0.2/24
    local b=$MT_LAST_PID
    mt_start "c_$transport" "$NS_C" -i mt0 "--$mode" -c 172.31.2.1 "--$transport" --addr 10.9.0.3/24
    local c=$MT_LAST_PID
    mt_wait_link "$NS_B" mt0
    mt_wait_link "$NS_C" mt0
    # Each client speaks once, so the server learns where it lives.
    mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "$transport/$mode: B cannot reach the server"
    mt_wait_ping "$NS_C" 10.9.0.1 || mt_fail "$transport/$mode: C cannot reach the server"
    mt_ping "$NS_B" 10.9.0.3 5 || mt_fail "$transport/$mode: B cannot ping C"
    mt_transfer "$NS_C" "$NS_B" 10.9.0.2 4 || mt_fail "$transport/$mode: C->B transfer"
    # The server's own kernel must not have been the one forwarding.
    [ "$(ip netns exec "$NS_S" sysctl -n net.ipv4.ip_forward)" = 0 ] ||
        mt_fail "ip_forward is on in the server namespace: the test would prove nothing"
    mt_pass "$transport/$mode: client B <-> client C through the server (ping, 4 MiB sha256 ok)"
    kill "$s" "$b" "$c"
    wait "$s" "$b" "$c"
}

run_case tcp tun
run_case udp tap
