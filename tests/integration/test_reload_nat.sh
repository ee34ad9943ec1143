#!/usr/bin/env bash
# examples/nat.lua keeps its mappings across a reload, with the time they have left: a TCP
# connection from LAN host L to far end F through gateway G stays idle while G reloads its
# scripts (SIGHUP), then F speaks first and L answers (the mapping still translates); and a
# UDP mapping idle for 2 of its 3 s before a reload expires 1 s after it, as it would have
# without the reload (before, a reload gave every mapping its full idle time again).
source "$(dirname "$0")/lib.sh"
CHAT="$MT_ROOT/tests/integration/chat.py"
COUNT="$MT_ROOT/tests/integration/udpcount.py"
mt_topology
F=$NS_A G=$NS_B
L=$(mt_ns l)
read -r VG VL < <(mt_veth "$G" 192.168.77.1/24 "$L" 192.168.77.2/24)
ip -n "$L" route add default via 192.168.77.1
ip netns exec "$G" sysctl -qw net.ipv4.ip_forward=1
mt_start srv "$F" -i mt0 -s --addr 10.9.0.1/24
mt_wait_link "$F" mt0
mt_start gw "$G" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24 \
    -S "$MT_ROOT/examples/nat.lua inside=192.168.77.0/24 public=10.9.0.2 udp_idle=3s"
mt_wait_link "$G" mt0
mt_wait_ping "$L" 10.9.0.1 || mt_fail "L cannot ping F"

# 1. TCP: L connects to F; after G's reload, F speaks first.
GO="$MT_TMP/go"
ip netns exec "$F" timeout 40 python3 "$CHAT" serve 10.9.0.1 5201 "$GO" speak >"$MT_TMP/f.out" 2>&1 &
FCHAT=$!
MT_PIDS+=($!)
for _ in $(seq 50); do ip netns exec "$F" ss -ltn | grep -q ':5201 ' && break; sleep 0.1; done
ip netns exec "$L" timeout 40 python3 "$CHAT" connect 10.9.0.1 5201 "$GO" answer >"$MT_TMP/l.out" 2>&1 &
LCHAT=$!
MT_PIDS+=($!)
for _ in $(seq 50); do grep -q 'round1 ok' "$MT_TMP/l.out" && break; sleep 0.1; done
grep -q 'round1 ok' "$MT_TMP/l.out" || mt_fail "L round 1: $(cat "$MT_TMP/l.out" "$MT_TMP/f.out")"
kill -HUP "$PID_gw"
mt_wait_log gw 'scripts reloaded'
touch "$GO"
wait "$FCHAT" || mt_fail "F after the reload: $(cat "$MT_TMP/f.out")"
wait "$LCHAT" || mt_fail "L after the reload: $(cat "$MT_TMP/l.out")"
mt_pass "TCP L -> F through the NAT: after SIGHUP F spoke first and L answered"

# 2. UDP: L sends from port 40000 (F sees the public port, answers at once); 2 s later G
#    reloads; 2.5 s after that, F's datagram to the public port must no longer reach L: the
#    mapping expired 3 s after its last packet (the old reload gave it 3 s more).
touch "$MT_TMP/f-udp.out" "$MT_TMP/l-udp.out"
ip netns exec "$F" timeout 30 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.9.0.1", 7000))
d, peer = s.recvfrom(2048); print("%s %d" % peer, flush=True)' >"$MT_TMP/f-udp.out" &
FUDP=$!
MT_PIDS+=($!)
sleep 0.3
# L: sends one datagram from port 40000, then writes down what comes back to that port.
ip netns exec "$L" timeout 15 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 40000)); s.settimeout(10)
s.sendto(b"out", ("10.9.0.1", 7000))
with open(sys.argv[1], "a") as out:
    while True:
        out.write(s.recv(2048).split(b" ")[0].decode() + "\n"); out.flush()' "$MT_TMP/l-udp.out" &
MT_PIDS+=($!)
wait "$FUDP" || mt_fail "F got nothing from L"
read -r PADDR PPORT <"$MT_TMP/f-udp.out"
[ "$PADDR" = 10.9.0.2 ] || mt_fail "F saw L as $PADDR"
# The mapping lives while F answers at once.
ip netns exec "$F" python3 "$COUNT" send 10.9.0.2 "$PPORT" 7000 early 1 10
sleep 0.3
grep -q '^early-0' "$MT_TMP/l-udp.out" || mt_fail "F's answer did not reach L"
sleep 1.7
kill -HUP "$PID_gw"
for _ in $(seq 50); do [ "$(grep -c 'scripts reloaded' "$MT_TMP/gw.log")" -ge 2 ] && break; sleep 0.1; done
sleep 2.5 # 4.5 s after its last packet (swept within 1 s of its deadline)
ip netns exec "$F" python3 "$COUNT" send 10.9.0.2 "$PPORT" 7000 late 1 10
sleep 0.5
grep -q '^late-0' "$MT_TMP/l-udp.out" &&
    mt_fail "the mapping outlived its 3 s idle time: the reload restarted it"
mt_pass "UDP mapping $PADDR:$PPORT expired 3 s after its last packet, a reload in between"
kill "$PID_srv" "$PID_gw"
wait "$PID_srv" || mt_fail "server exit status $?"
wait "$PID_gw" || mt_fail "gateway exit status $?"
