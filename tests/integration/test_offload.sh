#!/usr/bin/env bash
# Offloads. Over TCP two moontun ends agree on extended frames and carry 64 KiB super-packets
# whole; against an end that does not (--no-offload, like a simpletun peer) the offloading end
# cuts super-packets into ordinary packets in software. Over UDP the sender cuts them and the
# receiver joins the segments again (userspace GRO). Transfers both ways must match, through a
# NAT-style address rewrite of every super-packet (partial checksums kept right).
source "$(dirname "$0")/lib.sh"
S="$MT_ROOT/tests/integration/scripts"
mt_topology

run_case() { # NAME SERVER_EXTRA CLIENT_EXTRA...
    local name=$1 srv_extra=$2
    shift 2
    mt_start "srv_$name" "$NS_A" -i mt0 -s --addr 10.9.0.1/24 $srv_extra \
        -S "$S/rewrite_dst.lua virtual=10.9.0.99 real=10.9.0.1"
    SRV=$MT_LAST_PID
    mt_wait_link "$NS_A" mt0
    mt_start "cli_$name" "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24 "$@"
    CLI=$MT_LAST_PID
    mt_wait_link "$NS_B" mt0
    ip netns exec "$NS_B" ip route add 10.9.0.99/32 dev mt0 2>/dev/null
    mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "$name: no ping"
    # The server's script maps 10.9.0.99 to itself (and its TCP replies back to .99), so both
    # transfers cross a rewrite of every super-packet's addresses.
    MT_SINK_ADDR=10.9.0.1 mt_transfer "$NS_B" "$NS_A" 10.9.0.99 32 ||
        mt_fail "$name: 32 MiB client -> server (rewritten to 10.9.0.1)"
    local up=$MT_XFER_MBIT
    mt_transfer "$NS_A" "$NS_B" 10.9.0.2 32 || mt_fail "$name: 32 MiB server -> client"
    local down=$MT_XFER_MBIT
    kill "$SRV" "$CLI"
    wait "$SRV" || mt_fail "$name: server exit status"
    wait "$CLI" || mt_fail "$name: client exit status"
    grep -qE 'bad frames 0,' "$MT_TMP/srv_$name.log" || mt_fail "$name: the server counted bad frames"
    grep -qE 'errors 0\)' "$MT_TMP/srv_$name.log" || mt_fail "$name: device write errors"
    MT_CASE_RATES="$up / $down Mbit/s"
}

run_case both ""
grep -q 'offloads on' "$MT_TMP/srv_both.log" || mt_fail "both: the server did not switch"
grep -q 'offloads on' "$MT_TMP/cli_both.log" || mt_fail "both: the client did not switch"
# Back-pressure must stop the device before a queue overflows (a batch of 64 super-packets
# once dropped thousands, and TCP resent them).
for end in srv_both cli_both; do
    grep -qE 'queue drops 0,' "$MT_TMP/$end.log" || mt_fail "both: $end dropped packets at its queue"
done
mt_pass "offload on both ends: extended frames, 32 MiB each way through an address rewrite, sha256 ok ($MT_CASE_RATES)"

run_case plain "" --no-offload
grep -q 'offloads on' "$MT_TMP/srv_plain.log" && mt_fail "plain: the server switched to a peer that cannot"
grep -q 'offloads on' "$MT_TMP/cli_plain.log" && mt_fail "plain: the client switched"
mt_pass "offloading server, plain client: super-packets cut in software, sha256 ok ($MT_CASE_RATES)"

run_case udp --udp --udp
# Joined segments reach the device as one write: far fewer device writes than datagrams.
summary=$(grep 'stopped:' "$MT_TMP/srv_udp.log")
dev_tx=$(echo "$summary" | sed -E 's/.*device rx [0-9]+\/[0-9]+ B tx ([0-9]+)\/.*/\1/')
net_rx=$(echo "$summary" | sed -E 's/.*network rx ([0-9]+)\/.*/\1/')
[ "$dev_tx" -lt $((net_rx / 3)) ] || mt_fail "udp: $net_rx datagrams became $dev_tx device writes: no coalescing"
mt_pass "udp: segments joined on receipt ($net_rx datagrams -> $dev_tx device writes), sha256 ok ($MT_CASE_RATES)"

# A script that keeps copies of super-packets (netem.lua re-sends pkt:bytes() later) toward a
# plain peer: the copy is an ordinary 64 KiB packet, cut at the MTU on its way out.
mt_start netem_srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 -S "$MT_ROOT/examples/netem.lua delay=5ms dir=egress"
SRV=$MT_LAST_PID
mt_wait_link "$NS_A" mt0
mt_start netem_cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24 --no-offload
CLI=$MT_LAST_PID
mt_wait_link "$NS_B" mt0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "netem: no ping"
mt_transfer "$NS_A" "$NS_B" 10.9.0.2 8 || mt_fail "netem: 8 MiB server -> plain client"
kill "$SRV" "$CLI"
wait "$SRV" "$CLI"
grep -qE 'bad frame length|oversized frame' "$MT_TMP/netem_cli.log" && mt_fail "netem: the plain client got an oversized frame"
mt_pass "delayed copies of super-packets reach a plain peer cut at the MTU (8 MiB sha256 ok)"
