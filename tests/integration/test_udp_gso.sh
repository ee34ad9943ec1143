#!/usr/bin/env bash
# Kernel UDP offloads. With --udp-offload auto (the default) a super-packet cut at the MTU
# leaves in one sendmsg with UDP_SEGMENT and the receiver reads datagrams the kernel joined
# (UDP_GRO) and cuts them back; with --udp-offload off every datagram has its own slot. Both
# must carry 12 MiB each way (enough for hundreds of GSO trains) with the same sha256, and the counters (exit summary and
# `moontun show --json`) must show which path was taken. IPv6 outer datagrams too, and tap mode. And where
# the kernel has USO on tun (6.2+), an application's UDP GSO send crosses the device whole.
source "$(dirname "$0")/lib.sh"
mt_topology
ip -n "$NS_A" addr add fd31::1/64 dev "$VETH_A" nodad
ip -n "$NS_B" addr add fd31::2/64 dev "$VETH_B" nodad

counter() { # LOG NAME: a counter of the exit summary ("udp gso sends 12")
    sed -nE "s/.*stopped:.* $2 ([0-9]+).*/\1/p" "$MT_TMP/$1.log"
}

run_case() { # NAME SERVER_ADDR MODE [DEVICE]
    local name=$1 server=$2 mode=$3 dev=${4:---tun}
    mt_start "srv_$name" "$NS_A" -i mt0 "$dev" -s --udp --addr 10.9.0.1/24 --udp-offload "$mode" \
        --control "$MT_TMP/srv_$name.sock"
    local srv=$MT_LAST_PID
    mt_wait_link "$NS_A" mt0
    mt_start "cli_$name" "$NS_B" -i mt0 "$dev" -c "$server" --udp --addr 10.9.0.2/24 --udp-offload "$mode" \
        --control "$MT_TMP/cli_$name.sock"
    local cli=$MT_LAST_PID
    mt_wait_link "$NS_B" mt0
    mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "$name: no ping"
    mt_transfer "$NS_B" "$NS_A" 10.9.0.1 12 || mt_fail "$name: 12 MiB client -> server"
    local up=$MT_XFER_MBIT
    mt_transfer "$NS_A" "$NS_B" 10.9.0.2 12 || mt_fail "$name: 12 MiB server -> client"
    local down=$MT_XFER_MBIT
    DEV_RX=$(show_counter "$name" cli dev_rx_packets)
    DEV_RX_BYTES=$(show_counter "$name" cli dev_rx_bytes)
    app_gso "$name"
    json=$(ip netns exec "$NS_A" "$MOONTUN" show --json --control "$MT_TMP/srv_$name.sock") ||
        mt_fail "$name: moontun show --json"
    JSON_GSO=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["udp_gso_sends"])') ||
        mt_fail "$name: no udp_gso_sends in show --json"
    kill "$srv" "$cli"
    local -A pid=([srv]=$srv [cli]=$cli)
    for end in srv cli; do
        wait "${pid[$end]}" || mt_fail "$name: $end exit status"
        grep -qE 'bad frames 0,' "$MT_TMP/${end}_$name.log" || mt_fail "$name: $end counted bad frames"
    done
    RATES="$up / $down Mbit/s"
}

show_counter() { # NAME END COUNTER: from moontun show --json
    ip netns exec "$([ "$2" = srv ] && echo "$NS_A" || echo "$NS_B")" "$MOONTUN" show --json \
        --control "$MT_TMP/$2_$1.sock" |
        python3 -c "import json,sys; print(json.load(sys.stdin)['counters']['$3'])"
}

# An application in B sends 100 UDP GSO super-packets of 10 x 1000 bytes to A. Every datagram
# must arrive (a few may be lost: UDP) with its bytes; with USO the client's device hands
# each send to moontun whole (about 100 reads, not 1000), and moontun cuts it for the peer.
app_gso() { # NAME
    local name=$1 before after
    before=$(show_counter "$name" cli dev_rx_packets) || mt_fail "$name: show --json (client)"
    ip netns exec "$NS_A" timeout 30 python3 "$MT_ROOT/tests/integration/udp_gso_app.py" recv \
        10.9.0.1 6000 2 >"$MT_TMP/app_$name.out" &
    local rcv=$!
    MT_PIDS+=("$rcv")
    sleep 0.5
    ip netns exec "$NS_B" timeout 30 python3 "$MT_ROOT/tests/integration/udp_gso_app.py" send \
        10.9.0.1 6000 100 10 1000 || mt_fail "$name: the GSO application could not send"
    wait "$rcv" || mt_fail "$name: the receiver failed"
    after=$(show_counter "$name" cli dev_rx_packets)
    read -r APP_N APP_BAD <"$MT_TMP/app_$name.out"
    [ "$APP_N" -ge 950 ] && [ "$APP_N" -le 1000 ] || mt_fail "$name: $APP_N of 1000 GSO datagrams arrived"
    [ "$APP_BAD" = 0 ] || mt_fail "$name: $APP_BAD datagrams arrived damaged"
    APP_READS=$((after - before))
    if grep -q 'offloads TSO and USO' "$MT_TMP/cli_$name.log"; then
        [ "$APP_READS" -lt 300 ] || mt_fail "$name: USO on, yet 1000 datagrams took $APP_READS device reads"
    fi
}

check_kernel_path() { # NAME: both ends sent runs with GSO and read joined datagrams
    local name=$1 end n
    grep -q 'udp kernel offloads: GSO and GRO on' "$MT_TMP/srv_$name.log" ||
        mt_fail "$name: the server did not turn kernel offloads on"
    for end in "srv_$name" "cli_$name"; do
        for c in "gso sends" "gro reads"; do
            n=$(counter "$end" "$c")
            [ -n "$n" ] && [ "$n" -gt 0 ] || mt_fail "$name: $end: udp $c is '${n}', not > 0"
        done
    done
    [ "$JSON_GSO" -gt 0 ] || mt_fail "$name: show --json says udp_gso_sends $JSON_GSO"
}

run_case v4 172.31.0.1 auto
check_kernel_path v4
if grep -q 'offloads TSO and USO' "$MT_TMP/cli_v4.log"; then
    mt_pass "tun USO: 1000 datagrams sent with UDP GSO by an application took $APP_READS device reads, $APP_N arrived intact"
else
    mt_log "the kernel refused TUN_F_USO4/6: UDP super-packets not tested ($(uname -r))"
fi
mt_pass "udp, kernel GSO/GRO: 12 MiB each way, sha256 ok, gso sends $(counter srv_v4 "gso sends")/$(counter cli_v4 "gso sends"), gro reads $(counter srv_v4 "gro reads")/$(counter cli_v4 "gro reads") ($RATES)"

run_case off 172.31.0.1 off
grep -q 'udp kernel offloads off' "$MT_TMP/srv_off.log" || mt_fail "off: no log line"
for end in srv_off cli_off; do
    for c in "gso sends" "gro reads"; do
        [ "$(counter "$end" "$c")" = 0 ] || mt_fail "off: $end: udp $c is $(counter "$end" "$c"), not 0"
    done
done
[ "$JSON_GSO" = 0 ] || mt_fail "off: show --json says udp_gso_sends $JSON_GSO"
mt_pass "udp, --udp-offload off: 12 MiB each way, sha256 ok, no GSO send, no GRO read ($RATES)"

run_case v6 fd31::1 auto
check_kernel_path v6
mt_pass "udp over IPv6, kernel GSO/GRO: 12 MiB each way, sha256 ok ($RATES)"

# Tap: the device hands over Ethernet frames of up to 64 KiB (TSO), cut at the MTU for the
# peer and sent with GSO.
run_case tap 172.31.0.1 auto --tap
check_kernel_path tap
[ $((DEV_RX_BYTES / DEV_RX)) -gt 4000 ] ||
    mt_fail "tap: $DEV_RX device reads of $DEV_RX_BYTES bytes: no super-packets from the tap device"
mt_pass "tap, offloads: $DEV_RX_BYTES bytes in $DEV_RX device reads, GSO sends $(counter cli_tap "gso sends"), sha256 ok ($RATES)"

# A kernel that refuses a GSO send: the link is narrower (1300) than the outer datagrams
# (1428; --outer-df off lets the kernel fragment them), so UDP_SEGMENT fails (EMSGSIZE). The
# run goes datagram by datagram, GSO goes off for good (logged once), and transfers are whole.
ip -n "$NS_A" link set "$VETH_A" mtu 1300
ip -n "$NS_B" link set "$VETH_B" mtu 1300
run_case narrow 172.31.0.1 auto
for end in srv_narrow cli_narrow; do
    n=$(grep -c 'udp kernel GSO: a send of .* refused (.*); GSO off' "$MT_TMP/$end.log")
    [ "$n" = 1 ] || mt_fail "narrow: $end logged the GSO refusal $n times, not once"
done
mt_pass "GSO refused by the kernel (1300-byte link): sent one by one, GSO off (logged once per end), sha256 ok ($RATES)"
