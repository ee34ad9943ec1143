#!/usr/bin/env bash
# moontun as a WireGuard endpoint (--wg) against Debian's wireguard-go (wg setconf) in
# namespaces: handshakes initiated by either end, ping both ways, a sha256-checked TCP stream,
# IPv4 and IPv6 inside (ping both ways, TCP), a rekey forced mid-stream (the
# MOONTUN_WG_REKEY_AFTER_TIME test hook), a script (-S) seeing WireGuard peers (name, key,
# endpoint, AllowedIPs, handshake age) and dropping one port, a spoofed inner source dropped
# before any script, roaming (wireguard-go moves to a new port mid-session), and moontun to
# moontun over --wg.
source "$(dirname "$0")/lib.sh"

for tool in wireguard-go wg; do
    command -v "$tool" >/dev/null || mt_fail "$tool missing: scripts/setup.sh --test installs it"
done
mt_topology
WGIF="wgt${MT_TAG}"
WGIF=${WGIF:0:15}
SCRIPT="$MT_ROOT/tests/integration/scripts/wg_watch.lua"

MT_PRIV=$("$MOONTUN" genkey)
MT_PUB=$(echo "$MT_PRIV" | "$MOONTUN" pubkey)
WG_PRIV=$(wg genkey)
WG_PUB=$(echo "$WG_PRIV" | wg pubkey)
PSK=$(wg genpsk)

# wireguard-go in A: 172.31.0.1:51820, inner 10.77.0.1; moontun is its peer 10.77.0.2.
ip netns exec "$NS_A" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
    wireguard-go -f "$WGIF" >"$MT_TMP/wireguard-go.out" 2>&1 &
MT_PIDS+=($!)
for _ in $(seq 50); do
    [ -S "/var/run/wireguard/$WGIF.sock" ] && break
    sleep 0.1
done
cat >"$MT_TMP/wg.conf" <<CONF
[Interface]
PrivateKey = $WG_PRIV
ListenPort = 51820

[Peer]
PublicKey = $MT_PUB
PresharedKey = $PSK
AllowedIPs = 10.77.0.2/32, fd77::2/128
Endpoint = 172.31.0.2:51821
CONF
ip netns exec "$NS_A" wg setconf "$WGIF" "$MT_TMP/wg.conf" || mt_fail "wg setconf"
ip -n "$NS_A" addr add 10.77.0.1/24 dev "$WGIF"
ip -n "$NS_A" addr add fd77::1/64 dev "$WGIF"
ip -n "$NS_A" link set "$WGIF" up

# moontun in B, its config as wg-quick would take it (Address, MTU), the peer named.
cat >"$MT_TMP/mt.conf" <<CONF
[Interface]
PrivateKey = $MT_PRIV
ListenPort = 51821
Address = 10.77.0.2/24, fd77::2/64
MTU = 1420

[Peer]
# Name = alice
PublicKey = $WG_PUB
PresharedKey = $PSK
AllowedIPs = 10.77.0.1/32, fd77::1/128
Endpoint = 172.31.0.1:51820
CONF
chmod 600 "$MT_TMP/mt.conf"

start_moontun() {
    mt_start mtwg "$NS_B" -i mtw0 --wg "$MT_TMP/mt.conf" -S "$SCRIPT port=5999"
    mt_wait_link "$NS_B" mtw0
}

mt_log "wireguard-go initiates"
start_moontun
ip -n "$NS_B" addr show mtw0 | grep -q "10.77.0.2/24" || mt_fail "Address from the file not set"
ip -n "$NS_B" link show mtw0 | grep -q "mtu 1420" || mt_fail "MTU from the file not set"
mt_wait_ping "$NS_A" 10.77.0.2 10 || mt_fail "no ping from wireguard-go to moontun"
mt_ping "$NS_A" 10.77.0.2 3 || mt_fail "ping from wireguard-go"
grep -q "handshake complete (it initiated)" "$MT_TMP/mtwg.log" || mt_fail "moontun did not answer a handshake"
mt_ping "$NS_B" 10.77.0.1 3 || mt_fail "ping from moontun over wireguard-go's session"
mt_ping "$NS_A" fd77::2 3 || mt_fail "IPv6 ping from wireguard-go"
mt_ping "$NS_B" fd77::1 3 || mt_fail "IPv6 ping from moontun"
mt_transfer "$NS_A" "$NS_B" fd77::2 1 5204 || mt_fail "IPv6 TCP transfer wireguard-go -> moontun"
mt_pass "wireguard-go initiated (moontun its server): ping v4/v6 both ways, 1 MiB over IPv6"

mt_log "moontun initiates"
kill "$PID_mtwg"
wait "$PID_mtwg" 2>/dev/null
mv "$MT_TMP/mtwg.log" "$MT_TMP/mtwg-first.log"
# The test hook: moontun, the initiator now, rekeys 2 s after each handshake (5 s apart at
# least, REKEY_TIMEOUT) instead of 120 s.
MOONTUN_WG_REKEY_AFTER_TIME=2 start_moontun
mt_wait_ping "$NS_B" 10.77.0.1 10 || mt_fail "no ping from moontun to wireguard-go"
grep -q "handshake complete (we initiated)" "$MT_TMP/mtwg.log" || mt_fail "moontun did not initiate"
mt_ping "$NS_A" 10.77.0.2 3 || mt_fail "ping from wireguard-go after moontun initiated"
mt_ping "$NS_B" fd77::1 3 || mt_fail "IPv6 ping from moontun (the client)"
mt_pass "moontun initiated (wireguard-go its server); ping v4/v6 both ways"

mt_log "rekey mid-stream"
hs0=$(grep -c "handshake complete (we initiated)" "$MT_TMP/mtwg.log")
# 2 MiB at 300 kB/s: 7 s, longer than REKEY_TIMEOUT, so a new handshake falls inside it.
mt_transfer "$NS_B" "$NS_A" fd77::1 2 5205 300000 || mt_fail "transfer across a rekey"
hs1=$(grep -c "handshake complete (we initiated)" "$MT_TMP/mtwg.log")
[ "$hs1" -gt "$hs0" ] || mt_fail "no new handshake during a ${MT_XFER_SECONDS} s transfer"
grep -q "test hook: REKEY_AFTER_TIME is 2 s" "$MT_TMP/mtwg.log" || mt_fail "the hook was not logged"
mt_pass "$((hs1 - hs0)) rekey(s) with wireguard-go during a 2 MiB IPv6 transfer (${MT_XFER_SECONDS} s), sha256 equal"

mt_log "TCP stream and the script"
mt_transfer "$NS_A" "$NS_B" 10.77.0.2 4 5201 || mt_fail "TCP transfer wireguard-go -> moontun"
mt_pass "4 MiB wireguard-go -> moontun, sha256 equal (${MT_XFER_MBIT} Mbit/s)"
mt_transfer "$NS_B" "$NS_A" 10.77.0.1 2 5202 || mt_fail "TCP transfer moontun -> wireguard-go"
mt_pass "2 MiB moontun -> wireguard-go, sha256 equal"
# A base64 key may hold '+', a quantifier in the pattern: escaped.
grep -qE "seen src=10.77.0.1 peer=alice key=${WG_PUB//+/\\+} addr=172.31.0.1:51820 endpoint=172.31.0.1:51820 allowed=10.77.0.1/32,fd77::1/128 handshake=[0-9]\.[0-9]$" \
    "$MT_TMP/mtwg.log" || mt_fail "the script did not see alice's key, endpoint, AllowedIPs, handshake age"
ip netns exec "$NS_A" timeout 10 python3 -c '
import socket, sys
s = socket.socket(); s.settimeout(1.5)
try:
    s.connect(("10.77.0.2", 5999)); sys.exit(1)
except OSError:
    sys.exit(0)' || mt_fail "tcp/5999 was not dropped"
grep -q "dropped tcp/5999 from alice" "$MT_TMP/mtwg.log" || mt_fail "the script did not drop tcp/5999"
mt_pass "the script sees peer alice (name, key, endpoint, AllowedIPs, handshake age) and drops tcp/5999"

mt_log "spoofed inner source"
# wireguard-go sends whatever its routes say; 10.77.0.9 is not in alice's AllowedIPs here.
ip -n "$NS_A" addr add 10.77.0.9/32 dev "$WGIF"
ip netns exec "$NS_A" ping -n -q -c 3 -i 0.2 -W 1 -I 10.77.0.9 10.77.0.2 >/dev/null 2>&1 &&
    mt_fail "a ping from a source outside AllowedIPs was answered"
grep -q "decode src=10.77.0.1 peer=alice" "$MT_TMP/mtwg.log" || mt_fail "decode saw nothing"
grep -qE "(seen|decode) src=10.77.0.9" "$MT_TMP/mtwg.log" && mt_fail "a script saw the spoofed source"
grep -q "inner source not in the peer's AllowedIPs from alice: dropped before any script" \
    "$MT_TMP/mtwg.log" || mt_fail "no log of the spoofed source being dropped"
mt_ping "$NS_A" 10.77.0.2 2 || mt_fail "alice's own address stopped working"
mt_pass "10.77.0.9 (not alice's) dropped before the script, logged; 10.77.0.1 still passes"

mt_log "roaming"
ip netns exec "$NS_A" wg set "$WGIF" listen-port 51830 || mt_fail "wg set listen-port"
mt_wait_ping "$NS_A" 10.77.0.2 10 || mt_fail "no ping after wireguard-go moved to port 51830"
mt_wait_log mtwg "endpoint 172.31.0.1:51820 -> 172.31.0.1:51830" 3
mt_ping "$NS_B" 10.77.0.1 3 || mt_fail "moontun does not reach wireguard-go at its new port"
ip -n "$NS_A" addr add 172.31.0.11/24 dev "$VETH_A"
ip netns exec "$NS_A" wg set "$WGIF" listen-port 51831
# wireguard-go answers from the address the kernel picks: make it the new one.
ip -n "$NS_A" route replace 172.31.0.0/24 dev "$VETH_A" src 172.31.0.11
mt_wait_ping "$NS_A" 10.77.0.2 10 || mt_fail "no ping after wireguard-go moved to 172.31.0.11"
mt_wait_log mtwg "endpoint 172.31.0.1:51830 -> 172.31.0.11:51831" 3
mt_ping "$NS_B" 10.77.0.1 3 || mt_fail "moontun does not reach wireguard-go at its new address"
mt_pass "wireguard-go moved port, then address: moontun follows (51820 -> 51830 -> .11:51831)"

mt_log "moontun to moontun"
P1=$("$MOONTUN" genkey)
P2=$("$MOONTUN" genkey)
cat >"$MT_TMP/m1.conf" <<CONF
[Interface]
PrivateKey = $P1
ListenPort = 51840
[Peer]
# Name = two
PublicKey = $(echo "$P2" | "$MOONTUN" pubkey)
AllowedIPs = 10.78.0.2/32, fd78::2/128
CONF
cat >"$MT_TMP/m2.conf" <<CONF
[Interface]
PrivateKey = $P2
[Peer]
PublicKey = $(echo "$P1" | "$MOONTUN" pubkey)
AllowedIPs = 10.78.0.0/24, fd78::/64
Endpoint = 172.31.0.1:51840
PersistentKeepalive = 25
CONF
chmod 600 "$MT_TMP/m1.conf" "$MT_TMP/m2.conf"
mt_start m1 "$NS_A" -i mtm1 --wg "$MT_TMP/m1.conf" --addr 10.78.0.1/24 --addr fd78::1/64
mt_wait_link "$NS_A" mtm1
mt_start m2 "$NS_B" -i mtm2 --wg "$MT_TMP/m2.conf" --addr 10.78.0.2/24 --addr fd78::2/64 \
    -S "$MT_ROOT/tests/integration/scripts/largest.lua"
mt_wait_link "$NS_B" mtm2
mt_wait_log m1 "handshake complete \(it initiated\)" 5
mt_ping "$NS_A" 10.78.0.2 3 || mt_fail "moontun to moontun: ping"
mt_ping "$NS_B" fd78::1 3 || mt_fail "moontun to moontun: IPv6 ping"
mt_transfer "$NS_A" "$NS_B" 10.78.0.2 4 5203 || mt_fail "moontun to moontun: TCP transfer"
mt_pass "moontun to moontun over --wg: persistent keepalive handshake, ping v4/v6, 4 MiB (${MT_XFER_MBIT} Mbit/s)"
# The receiving end joins the decrypted TCP segments (software GRO): its script sees packets
# longer than the tunnel MTU (1400), which no single data message can carry.
big=$(grep -o "largest ingress packet from [^:]*: [0-9]* bytes" "$MT_TMP/m2.log" | tail -n 1 | awk '{print $(NF-1)}')
[ "${big:-0}" -gt 1400 ] || mt_fail "no super-packet reached the device (largest ingress ${big:-none} bytes)"
mt_pass "decrypted segments joined: ingress packets up to $big bytes"
# Both ends' exit lines count data messages against the sends and receives that carried
# them: the sender (m1) sealed each super-packet's segments into messages of one size and
# handed them to the kernel as GSO trains (UDP_SEGMENT), and the receiver (m2) took them as
# UDP_GRO trains; each far fewer than messages.
kill "$PID_m1" "$PID_m2"
wait "$PID_m1" "$PID_m2"
for check in "m1 sent GSO" "m2 received UDP_GRO"; do
    read -r name verb kind <<<"$check"
    read -r msgs calls < <(sed -n "s/.*wg: .*$verb \([0-9]*\) [a-z ]*messages in \([0-9]*\) [a-z]* ($kind trains).*/\1 \2/p" "$MT_TMP/$name.log")
    [ "${msgs:-0}" -ge 2000 ] && [ $((calls * 2)) -lt "$msgs" ] ||
        mt_fail "no $kind trains: $verb ${msgs:-?} data messages in ${calls:-?} calls"
    mt_pass "$kind: $verb $msgs data messages in $calls calls"
done
