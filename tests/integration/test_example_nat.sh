#!/usr/bin/env bash
# examples/nat.lua on real traffic: LAN hosts behind gateway G reach far end F, which has no
# route to the LAN and sees only G's tunnel address (tcpdump); two LAN hosts on the same source
# port get different public ports; ICMP errors, expiry, a reload and a port forward to the LAN.
source "$(dirname "$0")/lib.sh"
NAT="$MT_ROOT/examples/nat.lua"
mt_topology
F=$NS_A G=$NS_B # F: tunnel server 10.9.0.1; G: client 10.9.0.2, the NAT gateway
L=$(mt_ns l)
L2=$(mt_ns m)

# The LAN: a bridge on G (192.168.77.1) with L (.2) and L2 (.3) on it, routed via G.
ip -n "$G" link add br0 type bridge
ip -n "$G" addr add 192.168.77.1/24 dev br0
ip -n "$G" link set br0 up
ip netns exec "$G" sysctl -qw net.ipv4.ip_forward=1
for host in "$L:192.168.77.2" "$L2:192.168.77.3"; do
    ns=${host%%:*} veth="n${MT_TAG}$RANDOM"
    veth=${veth:0:13}
    ip link add "${veth}a" netns "$ns" type veth peer name "${veth}b" netns "$G" || mt_fail "veth"
    ip -n "$G" link set "${veth}b" master br0 up
    ip -n "$ns" addr add "${host#*:}/24" dev "${veth}a"
    ip -n "$ns" link set "${veth}a" up
    ip -n "$ns" route add default via 192.168.77.1
done

# A UDP helper: "echo ADDR PORT" answers every datagram with the sender's address as F saw
# it; "ask PORT DST DPORT" sends from a fixed source port and prints the answers; "refused
# DST DPORT" succeeds when the ICMP port unreachable comes back to the socket.
cat >"$MT_TMP/udp.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
if sys.argv[1] == "echo":
    s.settimeout(None)
    s.bind((sys.argv[2], int(sys.argv[3])))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(("%s:%d" % peer).encode(), peer)
elif sys.argv[1] == "ask":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    for _ in range(3):
        s.sendto(b"hello", (sys.argv[3], int(sys.argv[4])))
        print(s.recvfrom(2048)[0].decode(), flush=True)
else:
    s.connect((sys.argv[2], int(sys.argv[3])))
    s.send(b"anyone?")
    try:
        s.recv(100)
    except ConnectionRefusedError:
        sys.exit(0)
    sys.exit(1)
EOF
udp() { ip netns exec "$1" timeout 10 python3 "$MT_TMP/udp.py" "${@:2}"; }

# A bad setting stops start-up with one line naming it, before any device exists.
out=$(ip netns exec "$G" "$MOONTUN" -i mtbad -c 172.31.0.1 \
    -S "$NAT inside=192.168.77.0/33 public=10.9.0.2" 2>&1) && mt_fail "inside=/33 was accepted"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && grep -q 'inside' <<<"$out" ||
    mt_fail "bad setting: expected one line naming inside, got: $out"
mt_pass "inside=192.168.77.0/33 refused: $out"

mt_start srv "$F" -i mt0 -s --addr 10.9.0.1/24
mt_wait_link "$F" mt0
mt_start gw "$G" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24 \
    -S "$NAT inside=192.168.77.0/24 public=10.9.0.2 forward=tcp/8080=192.168.77.2:80 udp_idle=3s"
GW=$MT_LAST_PID
mt_wait_link "$G" mt0
ip netns exec "$F" tcpdump -nn -l -i mt0 >"$MT_TMP/mt0.txt" 2>"$MT_TMP/tcpdump.log" &
TCPDUMP=$!
MT_PIDS+=("$TCPDUMP")
mt_wait_log tcpdump 'listening on'
ip -n "$F" route | grep -q 192.168.77 && mt_fail "F has a route to the LAN"

# 1. Ping and a TCP transfer from L to F, through the NAT only.
mt_wait_ping "$L" 10.9.0.1 || mt_fail "L cannot ping F"
mt_ping "$L" 10.9.0.1 5 || mt_fail "L's pings to F lost"
mt_ping "$F" 10.9.0.2 3 || mt_fail "F cannot ping G itself (not NATed)"
mt_transfer "$L" "$F" 10.9.0.1 8 || mt_fail "TCP transfer L -> F"
mt_pass "L -> F: 5/5 pings, 8 MiB TCP sha256 ok ($MT_XFER_MBIT Mbit/s); G still answers F"

# 2. L and L2 both send UDP from port 40000 at once: each gets its answers, under different
#    public ports, and keeps its port for the whole exchange (one of them the original).
ip netns exec "$F" timeout 60 python3 "$MT_TMP/udp.py" echo 10.9.0.1 7777 &
MT_PIDS+=("$!")
sleep 0.3
udp "$L" ask 40000 10.9.0.1 7777 >"$MT_TMP/l.out" &
A=$!
udp "$L2" ask 40000 10.9.0.1 7777 >"$MT_TMP/l2.out" &
B=$!
wait "$A" || mt_fail "L's UDP answers did not all come back"
wait "$B" || mt_fail "L2's UDP answers did not all come back"
sort -u "$MT_TMP/l.out" >"$MT_TMP/l.seen"
sort -u "$MT_TMP/l2.out" >"$MT_TMP/l2.seen"
[ "$(wc -l <"$MT_TMP/l.seen")" -eq 1 ] && [ "$(wc -l <"$MT_TMP/l2.seen")" -eq 1 ] ||
    mt_fail "a host's public port changed mid-exchange: $(cat "$MT_TMP"/l*.out)"
P1=$(cat "$MT_TMP/l.seen") P2=$(cat "$MT_TMP/l2.seen")
[[ $P1 == 10.9.0.2:* && $P2 == 10.9.0.2:* && $P1 != "$P2" ]] ||
    mt_fail "F saw L as $P1 and L2 as $P2"
[[ $P1 == *:40000 || $P2 == *:40000 ]] || mt_fail "original port not kept: $P1 $P2"
mt_pass "same source port 40000 on L and L2: F saw $P1 and $P2, 3/3 answers each"

# 3. A reload keeps the mappings: L2 asks again and comes from the same public port.
kill -HUP "$GW"
mt_wait_log gw 'scripts reloaded'
udp "$L2" ask 40000 10.9.0.1 7777 >"$MT_TMP/l2b.out" || mt_fail "L2 after the reload"
[ "$(sort -u "$MT_TMP/l2b.out")" = "$P2" ] ||
    mt_fail "mapping lost in the reload: $P2 became $(sort -u "$MT_TMP/l2b.out")"
mt_pass "SIGHUP: L2 still maps to $P2"

# The control plane: `moontun call mt0 table` lists the mappings (L2's just refreshed, the
# forward), and the gauge sampled each second counts the dynamic UDP ones.
out=$(ip netns exec "$G" "$MOONTUN" call mt0 table) || mt_fail "call table: $out"
echo "$out" | grep -qx "udp $P2 <- 192.168.77.3:40000" &&
    echo "$out" | grep -qx "tcp 10.9.0.2:8080 <- 192.168.77.2:80 (forward)" ||
    mt_fail "call table said: $out"
sleep 1.2
n=$(ip netns exec "$G" "$MOONTUN" metrics mt0 |
    sed -n 's/^moontun_script_nat_mappings{script=".*nat.lua",index="0",proto="udp"} //p')
[ "${n:-0}" -ge 1 ] && [ "$n" -le 2 ] || mt_fail "nat_mappings{proto=udp} is '$n'"
mt_pass "moontun call mt0 table lists $P2 and the forward; nat_mappings{proto=\"udp\"} $n"

# 4. ICMP errors are translated back: UDP to a closed port on F is refused at L.
udp "$L" refused 10.9.0.1 9 || mt_fail "L did not get port unreachable"
mt_pass "port unreachable from F reached L's socket (quoted header translated)"

# 5. The port forward: F connects to G's 10.9.0.2:8080 and lands on L's 192.168.77.2:80.
head -c $((4 * 1024 * 1024)) /dev/urandom >"$MT_TMP/fwd.in"
ip netns exec "$L" timeout 30 python3 "$MT_ROOT/tests/integration/tcpsink.py" \
    192.168.77.2 80 "$MT_TMP/fwd.out" &
SINK=$!
MT_PIDS+=("$SINK")
for _ in $(seq 50); do
    ip netns exec "$L" ss -ltn | grep -q ':80 ' && break
    sleep 0.1
done
ip netns exec "$F" timeout 30 python3 "$MT_ROOT/tests/integration/tcpsource.py" \
    10.9.0.2 8080 "$MT_TMP/fwd.in" || mt_fail "forward: F could not send to 10.9.0.2:8080"
wait "$SINK" || mt_fail "forward: L's listener failed"
cmp -s "$MT_TMP/fwd.in" "$MT_TMP/fwd.out" || mt_fail "forward: data differs"
mt_pass "forward tcp/8080: F -> 10.9.0.2:8080 reached 192.168.77.2:80, 4 MiB sha256 ok"

# 6. Expiry: 3 s after their last datagram both UDP mappings are gone, so L2 gets 40000 now.
sleep 5
udp "$L2" ask 40000 10.9.0.1 7777 >"$MT_TMP/l2c.out" || mt_fail "L2 after expiry"
[ "$(sort -u "$MT_TMP/l2c.out")" = 10.9.0.2:40000 ] ||
    mt_fail "expired mappings still in force: L2 came as $(sort -u "$MT_TMP/l2c.out")"
mt_pass "after udp_idle=3s the mappings expired: L2 now keeps 40000"

# 7. What F's tunnel device saw: only G's address, never the LAN's.
sleep 0.3
kill -INT "$TCPDUMP"
wait "$TCPDUMP"
grep -q '192\.168\.77\.' "$MT_TMP/mt0.txt" &&
    mt_fail "a LAN address showed on F's mt0: $(grep -m3 '192\.168\.77\.' "$MT_TMP/mt0.txt")"
n=$(grep -c 'IP 10\.9\.0\.2\.' "$MT_TMP/mt0.txt")
# Offloads (the default over TCP) carry up to 64 KiB per packet: count packets, not segments.
[ "$n" -gt 100 ] || mt_fail "tcpdump on F saw only $n packets from 10.9.0.2"
grep -q 'IP 10\.9\.0\.2\.8080 > 10\.9\.0\.1\.' "$MT_TMP/mt0.txt" || mt_fail "forward replies"
mt_pass "tcpdump on F's mt0: $n packets from 10.9.0.2, none from 192.168.77.x"

kill "$GW"
wait "$GW" || mt_fail "gateway exited with $?"
grep -q 'script errors 0 ' "$MT_TMP/gw.log" ||
    mt_fail "script errors: $(tail -n 3 "$MT_TMP/gw.log")"
mt_pass "nat.lua: no script errors"
