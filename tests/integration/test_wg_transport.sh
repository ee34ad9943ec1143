#!/usr/bin/env bash
# moontun as a WireGuard endpoint (--wg) against Debian's wireguard-go (wg setconf) in
# namespaces: handshakes initiated by either end, ping both ways, a sha256-checked TCP stream,
# a script (-S) seeing WireGuard peers and dropping one port, a spoofed inner source dropped
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
AllowedIPs = 10.77.0.2/32
Endpoint = 172.31.0.2:51821
CONF
ip netns exec "$NS_A" wg setconf "$WGIF" "$MT_TMP/wg.conf" || mt_fail "wg setconf"
ip -n "$NS_A" addr add 10.77.0.1/24 dev "$WGIF"
ip -n "$NS_A" link set "$WGIF" up

# moontun in B, its config as wg-quick would take it (Address, MTU), the peer named.
cat >"$MT_TMP/mt.conf" <<CONF
[Interface]
PrivateKey = $MT_PRIV
ListenPort = 51821
Address = 10.77.0.2/24
MTU = 1420

[Peer]
# Name = alice
PublicKey = $WG_PUB
PresharedKey = $PSK
AllowedIPs = 10.77.0.1/32
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
mt_pass "wireguard-go initiated; ping both ways"

mt_log "moontun initiates"
kill "$PID_mtwg"
wait "$PID_mtwg" 2>/dev/null
mv "$MT_TMP/mtwg.log" "$MT_TMP/mtwg-first.log"
start_moontun
mt_wait_ping "$NS_B" 10.77.0.1 10 || mt_fail "no ping from moontun to wireguard-go"
grep -q "handshake complete (we initiated)" "$MT_TMP/mtwg.log" || mt_fail "moontun did not initiate"
mt_ping "$NS_A" 10.77.0.2 3 || mt_fail "ping from wireguard-go after moontun initiated"
mt_pass "moontun initiated; ping both ways"
