#!/usr/bin/env bash
# examples/mss_clamp.lua on the client (B) only, on real traffic: tcpdump on both tunnel devices
# shows each SYN and SYN-ACK leaving its kernel with the MTU's MSS and arriving with MSS 1200,
# checksum correct (IPv4 and IPv6); a smaller MSS is not raised; transfers still match.
source "$(dirname "$0")/lib.sh"
PY=$(python3 -c 'import sys; print(sys.executable)')
PATH=$(dirname "$PY"):$PATH # lib.sh's python3 too: past a version manager's slow shim
mt_topology

mt_pair --addr fd09::1/64 -- --addr fd09::2/64 -S "$MT_ROOT/examples/mss_clamp.lua mss=1200"

# tcpdump -v prints the TCP options and verifies the checksum: "(correct)".
for side in A B; do
    ns=NS_$side
    ip netns exec "${!ns}" tcpdump -i mt0 -l -nn -v tcp \
        >"$MT_TMP/dump$side.txt" 2>"$MT_TMP/tcpdump$side.log" &
    MT_PIDS+=($!)
    eval "DUMP_$side=$!"
    mt_wait_log "tcpdump$side" 'listening on'
done

mt_transfer "$NS_B" "$NS_A" 10.9.0.1 4 5201 || mt_fail "IPv4 transfer B->A"
mt_transfer "$NS_B" "$NS_A" fd09::1 2 5202 || mt_fail "IPv6 transfer B->A"
# A SYN that already announces less (MSS 1000) must keep it.
ip netns exec "$NS_A" timeout 10 "$PY" -c '
import socket; s = socket.create_server(("10.9.0.1", 5203)); s.settimeout(8); s.accept()' &
MT_PIDS+=($!)
sleep 0.3
ip netns exec "$NS_B" timeout 10 "$PY" -c '
import socket; s = socket.socket(); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1000)
s.settimeout(5); s.connect(("10.9.0.1", 5203))' || mt_fail "MSS 1000 connection failed"
sleep 0.5
kill -INT "$DUMP_A" "$DUMP_B"
wait "$DUMP_A" "$DUMP_B"
mt_pass "4 MiB (IPv4) and 2 MiB (IPv6) transfers through the clamp, sha256 ok"

# mss_of FILE FLAGS PORT [sent]: the MSS of every SYN (FLAGS "S") or SYN-ACK ("S.") to or from
# PORT, one per line, "bad" for one whose checksum tcpdump did not find correct. With "sent",
# the packet is one the local kernel sent: with checksum offload (moontun's default over TCP)
# the capture shows its partial checksum, like any offloading NIC, so it is not judged.
mss_of() {
    if [ "${4:-}" = sent ]; then
        grep -E "\.$3[ :].*Flags \[$2\]," "$1" | sed -E 's/.*mss ([0-9]+).*/\1/; t; s/.*/bad/'
    else
        grep -E "\.$3[ :].*Flags \[$2\]," "$1" |
            sed -E 's/.*cksum 0x[0-9a-f]+ \(correct\).*mss ([0-9]+).*/\1/; t; s/.*/bad/'
    fi
}
expect() { # expect FILE FLAGS PORT MSS WHAT [sent]
    local got
    got=$(mss_of "$1" "$2" "$3" "${6:-}" | sort -u | tr '\n' ' ')
    [ "$got" = "$4 " ] || mt_fail "$5: MSS seen '$got', expected '$4'"
}
# B's device: what B's kernel sent (unclamped) and what it received (clamped on ingress).
expect "$MT_TMP/dumpB.txt" S 5201 1360 "SYN leaving B (IPv4)" sent
expect "$MT_TMP/dumpB.txt" 'S\.' 5201 1200 "SYN-ACK arriving at B (IPv4)"
expect "$MT_TMP/dumpB.txt" S 5202 1340 "SYN leaving B (IPv6)" sent
expect "$MT_TMP/dumpB.txt" 'S\.' 5202 1200 "SYN-ACK arriving at B (IPv6)"
# A's device: what arrived from B (clamped on B's egress) and what A's kernel sent.
expect "$MT_TMP/dumpA.txt" S 5201 1200 "SYN arriving at A (IPv4)"
expect "$MT_TMP/dumpA.txt" 'S\.' 5201 1360 "SYN-ACK leaving A (IPv4)" sent
expect "$MT_TMP/dumpA.txt" S 5202 1200 "SYN arriving at A (IPv6)"
expect "$MT_TMP/dumpA.txt" 'S\.' 5202 1340 "SYN-ACK leaving A (IPv6)" sent
# untouched by the clamp, this SYN keeps its offloaded partial checksum
expect "$MT_TMP/dumpA.txt" S 5203 1000 "a SYN with MSS 1000" sent
mt_pass "SYNs 1360 (IPv4) / 1340 (IPv6) leave B, arrive at A as 1200; SYN-ACKs likewise from A to B"
mt_pass "every clamped SYN's checksum correct; MSS 1000 left at 1000"

kill "$PID_srv" "$PID_cli"
wait "$PID_srv" || mt_fail "server exit status $?"
wait "$PID_cli" || mt_fail "client exit status $?"
