#!/usr/bin/env bash
# UDP send errors and drops (issue 9, faults 11 and 12):
#  - one unreachable peer next to a healthy one: when a message of a sendmmsg batch fails
#    (ENETUNREACH), only that message is dropped; a bounded flood to both loses nothing to the
#    healthy peer, and the error is logged (rate-limited);
#  - an oversize datagram is dropped, counted and logged, and its peer stays.
source "$(dirname "$0")/lib.sh"
mt_topology
NS_C=$(mt_ns c)
read -r VETH_AC VETH_CA < <(mt_veth "$NS_A" 172.31.1.1/24 "$NS_C" 172.31.1.2/24)

mt_start srv "$NS_A" -i mts -s --udp --addr 10.9.0.1/24
mt_wait_link "$NS_A" mts
mt_start cli "$NS_B" -i mtc -c 172.31.0.1 --udp --addr 10.9.0.2/24
mt_wait_link "$NS_B" mtc
mt_wait_ping "$NS_B" 10.9.0.1 10 || mt_fail "no tunnel"

# Peer C announces inner address 10.9.0.3 with one UDP packet, then becomes unreachable.
ip netns exec "$NS_C" python3 - <<'PY' || mt_fail "peer C could not send"
import socket, struct
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
udp = struct.pack("!HHHH", 9, 9, 12, 0) + b"helo"
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton("10.9.0.3"), socket.inet_aton("10.9.0.1"))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(ip + udp, ("172.31.1.1", 55555))
PY
mt_wait_log srv 'peer 172.31.1.2:[0-9]+ up' 5
sleep 0.3
ip -n "$NS_A" addr flush dev "$VETH_AC" # no route to peer C any more: ENETUNREACH

# The healthy peer counts what arrives; the server side floods both, interleaved.
ip netns exec "$NS_B" timeout 20 python3 - >"$MT_TMP/recv.out" <<'PY' &
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.9.0.2", 9999))
s.settimeout(2.0)
n = 0
try:
    while n < 2000:
        s.recv(2048)
        n += 1
except socket.timeout:
    pass
print(n)
PY
rcv=$!
MT_PIDS+=("$rcv")
sleep 0.5
ip netns exec "$NS_A" timeout 20 python3 - <<'PY' || mt_fail "flood sender failed"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"x" * 100
for burst in range(63):
    for i in range(16):
        s.sendto(payload, ("10.9.0.3", 9))
        s.sendto(payload, ("10.9.0.2", 9999))
    time.sleep(0.005)
s.sendto(payload, ("10.9.0.2", 9999))
s.sendto(payload, ("10.9.0.2", 9999))
PY
wait "$rcv"
got=$(cat "$MT_TMP/recv.out")
sent=1010
mt_log "healthy peer received $got of $sent while the other peer was unreachable"
[ "$got" -ge $((sent * 99 / 100)) ] || mt_fail "healthy peer lost $((sent - got)) of $sent datagrams"
grep -qE 'udp send to 172\.31\.1\.2:[0-9]+ failed: Network is unreachable' "$MT_TMP/srv.log" ||
    mt_fail "the send error was not logged"
lines=$(grep -c 'udp send to' "$MT_TMP/srv.log")
[ "$lines" -le 3 ] || mt_fail "send errors not rate-limited ($lines lines)"
mt_pass "unreachable peer: healthy peer got $got/$sent, error logged in $lines line(s)"

# An oversize datagram (MTU 1400 + 256 headroom = 1656 bytes at most): logged, peer stays.
ip netns exec "$NS_B" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"\x45" + bytes(1699), ("172.31.0.1", 55555))
for _ in range(50): s.sendto(b"\x45" + bytes(1999), ("172.31.0.1", 55555))'
mt_wait_log srv '1700-byte datagram exceeds the 1656-byte limit' 3
big=$(grep -c 'exceeds the' "$MT_TMP/srv.log")
[ "$big" -eq 1 ] || mt_fail "oversize drops not rate-limited ($big lines)"
mt_ping "$NS_B" 10.9.0.1 3 || mt_fail "tunnel broken after oversize datagrams"
mt_pass "oversize datagrams: dropped, logged once, the tunnel carries on"
