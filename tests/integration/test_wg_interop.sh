#!/usr/bin/env bash
# WireGuard interop: moontun's protocol core (core/wg, driven by tests/tools/wg_probe) against
# Debian's wireguard-go configured with wg(8), in namespaces. Both directions: the probe
# initiates (ping through, replays / wrong keys / unknown key / wrong preshared key refused,
# rekey), then wireguard-go initiates and pings the probe. Also: `moontun genkey`/`pubkey`
# agree with `wg pubkey`, and the plaintext marker never crosses the veth in clear.
source "$(dirname "$0")/lib.sh"

PROBE=${WG_PROBE:-$(dirname "$MOONTUN")/wg_probe}
for tool in wireguard-go wg tcpdump; do
    command -v "$tool" >/dev/null || mt_fail "$tool missing: scripts/setup.sh --test installs it"
done
[ -x "$PROBE" ] || mt_fail "wg_probe not built ($PROBE)"

mt_topology
IF="wgp${MT_TAG}"
IF=${IF:0:15}

# Keys: ours from moontun's verbs, checked against wg(8)'s derivation; wireguard-go's from wg.
PROBE_PRIV=$("$MOONTUN" genkey) || mt_fail "moontun genkey"
PROBE_PUB=$(echo "$PROBE_PRIV" | "$MOONTUN" pubkey) || mt_fail "moontun pubkey"
[ "$PROBE_PUB" = "$(echo "$PROBE_PRIV" | wg pubkey)" ] || mt_fail "moontun pubkey differs from wg pubkey"
WG_PRIV=$(wg genkey)
[ "$(echo "$WG_PRIV" | "$MOONTUN" pubkey)" = "$(echo "$WG_PRIV" | wg pubkey)" ] ||
    mt_fail "moontun pubkey differs from wg pubkey on a wg genkey key"
echo "not-a-key" | "$MOONTUN" pubkey 2>/dev/null && mt_fail "moontun pubkey accepted garbage"
mt_pass "moontun genkey | pubkey gives the keys wg(8) gives"
WG_PUB=$(echo "$WG_PRIV" | wg pubkey)
PSK=$(wg genpsk)

ip netns exec "$NS_A" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
    wireguard-go -f "$IF" >"$MT_TMP/wireguard-go.log" 2>&1 &
MT_PIDS+=($!)
for _ in $(seq 50); do
    ip -n "$NS_A" link show "$IF" >/dev/null 2>&1 && [ -S "/var/run/wireguard/$IF.sock" ] && break
    sleep 0.1
done
ip -n "$NS_A" link show "$IF" >/dev/null 2>&1 || mt_fail "wireguard-go did not create $IF"

cat >"$MT_TMP/wg.conf" <<CONF
[Interface]
PrivateKey = $WG_PRIV
ListenPort = 51820

[Peer]
PublicKey = $PROBE_PUB
PresharedKey = $PSK
AllowedIPs = 10.77.0.2/32
Endpoint = 172.31.0.2:51821
CONF
chmod 600 "$MT_TMP/wg.conf"
ip netns exec "$NS_A" wg setconf "$IF" "$MT_TMP/wg.conf" || mt_fail "wg setconf"
ip -n "$NS_A" addr add 10.77.0.1/24 dev "$IF"
ip -n "$NS_A" link set "$IF" up

# Nothing of the inner packets may cross the veth in clear.
ip netns exec "$NS_B" timeout 60 tcpdump -i "$VETH_B" -n -U -w "$MT_TMP/veth.pcap" udp \
    >"$MT_TMP/tcpdump.log" 2>&1 &
TCPDUMP=$!
MT_PIDS+=("$TCPDUMP")
sleep 1

mt_log "probe initiates"
ip netns exec "$NS_B" timeout 60 "$PROBE" initiate "$PROBE_PRIV" "$WG_PUB" "$PSK" \
    172.31.0.2:51821 172.31.0.1:51820 10.77.0.2:10.77.0.1 | tee "$MT_TMP/probe1.out"
[ "${PIPESTATUS[0]}" -eq 0 ] || mt_fail "probe as initiator"
ip netns exec "$NS_A" wg show "$IF" latest-handshakes | awk '{ exit !($2 > 0) }' ||
    mt_fail "wireguard-go shows no handshake with the probe"
mt_pass "probe as initiator: handshake, ping, refusals, rekey"

mt_log "wireguard-go initiates"
# A fresh peer entry: wireguard-go forgets the sessions and must start a handshake to ping.
ip netns exec "$NS_A" wg set "$IF" peer "$PROBE_PUB" remove
ip netns exec "$NS_A" wg setconf "$IF" "$MT_TMP/wg.conf" || mt_fail "wg setconf again"
ip -n "$NS_A" route replace 10.77.0.0/24 dev "$IF"
ip netns exec "$NS_B" timeout 30 "$PROBE" respond "$PROBE_PRIV" "$WG_PUB" "$PSK" \
    172.31.0.2:51821 172.31.0.1:51820 10.77.0.2:10.77.0.1 3 >"$MT_TMP/probe2.out" 2>&1 &
RESP=$!
MT_PIDS+=("$RESP")
sleep 0.3
mt_ping "$NS_A" 10.77.0.2 3 || { cat "$MT_TMP/ping.out"; mt_fail "ping from wireguard-go to the probe"; }
wait "$RESP"
rc=$?
cat "$MT_TMP/probe2.out"
[ "$rc" -eq 0 ] || mt_fail "probe as responder"
mt_pass "probe as responder: wireguard-go's initiation answered, its pings answered"

sleep 0.5
kill "$TCPDUMP" 2>/dev/null
wait "$TCPDUMP" 2>/dev/null
pkt=$(ip netns exec "$NS_B" tcpdump -r "$MT_TMP/veth.pcap" -n 2>/dev/null | wc -l)
[ "$pkt" -gt 10 ] || mt_fail "tcpdump saw only $pkt packets on the veth"
if grep -aq "moontun-wg-probe-plaintext-mark" "$MT_TMP/veth.pcap"; then
    mt_fail "the plaintext marker crossed the veth in clear"
fi
mt_pass "$pkt UDP packets on the veth, no plaintext marker among them"
