#!/usr/bin/env bash
# The tunnel end to end, between two namespaces joined by veth: for TCP and UDP, tun and tap,
# IPv4 and IPv6 ping and a TCP transfer whose sha256 must match at the far end.
source "$(dirname "$0")/lib.sh"
mt_topology

run_case() {
    local transport=$1 mode=$2 mib=$3
    local ifname="mt${transport:0:1}${mode:0:2}"
    mt_start "srv_${transport}_$mode" "$NS_A" -i "$ifname" "--$mode" -s "--$transport" \
        --addr 10.9.0.1/24 --addr fd09::1/64
    local srv=$MT_LAST_PID
    mt_wait_link "$NS_A" "$ifname"
    mt_start "cli_${transport}_$mode" "$NS_B" -i "$ifname" "--$mode" -c 172.31.0.1 \
        "--$transport" --addr 10.9.0.2/24 --addr fd09::2/64
    local cli=$MT_LAST_PID
    mt_wait_link "$NS_B" "$ifname"
    mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "$transport/$mode: tunnel never carried a ping"
    mt_ping "$NS_B" 10.9.0.1 5 || mt_fail "$transport/$mode: IPv4 ping lost packets"
    mt_ping "$NS_A" fd09::2 5 || mt_fail "$transport/$mode: IPv6 ping lost packets"
    mt_transfer "$NS_B" "$NS_A" 10.9.0.1 "$mib" ||
        mt_fail "$transport/$mode: $mib MiB transfer B->A"
    local up=$MT_XFER_MBIT
    mt_transfer "$NS_A" "$NS_B" fd09::2 "$mib" ||
        mt_fail "$transport/$mode: $mib MiB transfer A->B over IPv6"
    mt_pass "$transport/$mode: ping v4+v6, $mib MiB each way sha256 ok ($up / $MT_XFER_MBIT Mbit/s)"
    kill "$srv" "$cli"
    wait "$srv" || mt_fail "$transport/$mode: server exited with $?"
    wait "$cli" || mt_fail "$transport/$mode: client exited with $?"
    grep -q 'stopped: device rx' "$MT_TMP/srv_${transport}_$mode.log" ||
        mt_fail "$transport/$mode: no exit summary"
}

run_case tcp tun 16
run_case udp tun 16
run_case tcp tap 8
run_case udp tap 8
