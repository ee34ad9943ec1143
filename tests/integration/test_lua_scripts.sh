#!/usr/bin/env bash
# Per-packet Lua on real traffic: a filter, a REPLY that answers pings for a phantom address,
# a destination rewrite the far kernel must accept (checksums), a custom wire header seen on
# the veth, a runaway handler stopped by its budget while other traffic flows, and a SIGHUP
# reload under an open TCP connection (plus a reload to a broken script that changes nothing).
source "$(dirname "$0")/lib.sh"
S="$MT_ROOT/tests/integration/scripts"
mt_topology

# up NAME_A ARGS_A -- ARGS_B: a server in A and a client in B, tunnel 10.9.0.1 <-> 10.9.0.2.
up() {
    local a_args=() b_args=()
    while [ "$1" != "--" ]; do a_args+=("$1"); shift; done
    shift
    b_args=("$@")
    mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 "${a_args[@]}"
    SRV=$MT_LAST_PID
    mt_wait_link "$NS_A" mt0
    mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24 "${b_args[@]}"
    CLI=$MT_LAST_PID
    mt_wait_link "$NS_B" mt0
}
down() {
    kill "$SRV" "$CLI"
    wait "$SRV" || mt_fail "server exit status $?"
    wait "$CLI" || mt_fail "client exit status $?"
}

# 1. A filter: ICMP from the tunnel is dropped by the server's script, TCP passes.
up -S "$S/drop_icmp.lua" --
sleep 0.5
if ip netns exec "$NS_B" ping -c 3 -i 0.2 -W 1 10.9.0.1 >/dev/null 2>&1; then
    mt_fail "drop_icmp: ping got through"
fi
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 4 || mt_fail "drop_icmp: TCP did not pass"
down
grep -qE 'script drops [1-9]' "$MT_TMP/srv.log" || mt_fail "drop_icmp: drops not counted"
mt_pass "drop_icmp.lua: ping dropped, 4 MiB TCP sha256 ok"

# 2. REPLY: the client's script answers pings for 10.9.0.77, which nobody has.
up -- -S "$S/fake_host.lua addr=10.9.0.77"
mt_ping "$NS_B" 10.9.0.77 5 || mt_fail "fake_host: no echo replies from 10.9.0.77"
down
grep -qE 'replies [1-9]' "$MT_TMP/cli.log" || mt_fail "fake_host: replies not counted"
mt_pass "fake_host.lua: 5/5 pings to 10.9.0.77 answered by REPLY"

# 3. A destination rewrite: the client talks TCP to 10.9.0.99; the server's script rewrites it
#    to 10.9.0.1 on the way in and back on the way out. Wrong checksums would stall it.
up -S "$S/rewrite_dst.lua virtual=10.9.0.99 real=10.9.0.1" --
ip netns exec "$NS_B" ip route add 10.9.0.99/32 dev mt0 2>/dev/null
MT_SINK_ADDR=10.9.0.1 mt_transfer "$NS_B" "$NS_A" 10.9.0.99 8 ||
    mt_fail "rewrite_dst: transfer to the rewritten address failed"
down
mt_pass "rewrite_dst.lua: 8 MiB to 10.9.0.99 delivered to 10.9.0.1, sha256 ok (checksums right)"

# 4. encode/decode: a 4-byte "MTUN" header on every datagram, visible on the veth. Kernel GSO
# off: a GSO train is captured as one packet, which would show only its first datagram's header
# (with it on, the transfer's sha256 through decode is the proof; see test_udp_gso.sh).
up --udp --udp-offload off -S "$S/wire_header.lua" -- --udp --udp-offload off -S "$S/wire_header.lua"
ip netns exec "$NS_A" tcpdump -i "$VETH_A" -U --immediate-mode -B 16384 -n -w "$MT_TMP/wire.pcap" udp port 55555 \
    >"$MT_TMP/tcpdump.log" 2>&1 &
TCPDUMP=$!
MT_PIDS+=("$TCPDUMP")
mt_wait_log tcpdump 'listening on'
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "wire_header: no ping"
mt_ping "$NS_B" 10.9.0.1 5 || mt_fail "wire_header: ping lost packets"
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 2 || mt_fail "wire_header: transfer"
sleep 0.3
kill -INT "$TCPDUMP"
wait "$TCPDUMP"
python3 "$MT_ROOT/tests/integration/pcap_check.py" "$MT_TMP/wire.pcap" --udp-prefix 4d54554e \
    --min 100 || mt_fail "wire_header: datagrams without the header"
down
mt_pass "wire_header.lua: every datagram on the veth starts with MTUN; ping and transfer ok"

# 5. A runaway handler: UDP to port 9 spins forever; the budget stops it each time, the
#    process lives and pings keep flowing meanwhile.
up -- -S "$S/spin.lua" --lua-budget 200000 --on-error drop
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "spin: no ping before"
for i in $(seq 1 20); do
    ip netns exec "$NS_B" bash -c 'echo spin >/dev/udp/10.9.0.1/9' 2>/dev/null
done
mt_ping "$NS_B" 10.9.0.1 5 || mt_fail "spin: pings lost while the script spun"
kill -0 "$CLI" || mt_fail "spin: client died"
grep -q 'instruction budget exceeded' "$MT_TMP/cli.log" || mt_fail "spin: abort not logged"
down
grep -qE '\(budget 20, ' "$MT_TMP/cli.log" ||
    mt_fail "spin: expected 20 budget aborts: $(grep stopped "$MT_TMP/cli.log")"
mt_pass "spin.lua: 20 runaway calls aborted by the budget, pings unaffected"

# 6. Reload: v1 passes everything; an open TCP stream runs while SIGHUP switches the same -S
#    path to v2 (drops ICMP) and then to a broken file (refused, v2 stays).
cp "$S/reload_v1.lua" "$MT_TMP/reload.lua"
up -S "$MT_TMP/reload.lua" --
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "reload: no ping with v1"
(mt_transfer "$NS_B" "$NS_A" 10.9.0.1 3 5202 1000000 && touch "$MT_TMP/stream.ok") &
STREAM=$!
sleep 1
cp "$S/reload_v2.lua" "$MT_TMP/reload.lua"
kill -HUP "$SRV"
mt_wait_log srv 'scripts reloaded'
grep -q 'reload_v2 start #2' "$MT_TMP/srv.log" || mt_fail "reload: mt.state not carried over"
if ip netns exec "$NS_B" ping -c 2 -i 0.2 -W 1 10.9.0.1 >/dev/null 2>&1; then
    mt_fail "reload: v2 is not in force (ping passed)"
fi
printf 'return {\n' >"$MT_TMP/reload.lua"
kill -HUP "$SRV"
mt_wait_log srv 'reload failed, keeping'
if ip netns exec "$NS_B" ping -c 2 -i 0.2 -W 1 10.9.0.1 >/dev/null 2>&1; then
    mt_fail "reload: the broken reload replaced v2"
fi
wait "$STREAM"
[ -f "$MT_TMP/stream.ok" ] || mt_fail "reload: the TCP stream across the reloads broke"
grep -q 'down:' "$MT_TMP/srv.log" && mt_fail "reload: a peer connection dropped"
down
mt_pass "SIGHUP: v1 -> v2 under a 3 MiB stream (sha256 ok, no reconnect), mt.state kept; broken reload refused"
