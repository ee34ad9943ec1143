#!/usr/bin/env bash
# A multihomed WireGuard end: moontun --wg in A has a second address on its veth, IPv4 and
# IPv6, and the peer (another moontun --wg in B) talks to that second address. Every reply
# (the handshake response, data, keepalives) must leave from it: one from the kernel's choice
# (the primary address) would make B roam its endpoint to that address, which B logs.
source "$(dirname "$0")/lib.sh"
mt_topology
mt_multihome

PA=$("$MOONTUN" genkey)
PB=$("$MOONTUN" genkey)
cat >"$MT_TMP/a.conf" <<CONF
[Interface]
PrivateKey = $PA
ListenPort = 51860
[Peer]
# Name = bee
PublicKey = $(echo "$PB" | "$MOONTUN" pubkey)
AllowedIPs = 10.79.0.2/32, fd79::2/128
CONF
chmod 600 "$MT_TMP/a.conf"
mt_start a "$NS_A" -i mth1 --wg "$MT_TMP/a.conf" --addr 10.79.0.1/24 --addr fd79::1/64
mt_wait_link "$NS_A" mth1

n=0
for server in 172.31.0.100 '[fd31::100]'; do
    n=$((n + 1))
    cat >"$MT_TMP/b$n.conf" <<CONF
[Interface]
PrivateKey = $PB
[Peer]
# Name = aye
PublicKey = $(echo "$PA" | "$MOONTUN" pubkey)
AllowedIPs = 10.79.0.0/24, fd79::/64
Endpoint = $server:51860
CONF
    chmod 600 "$MT_TMP/b$n.conf"
    mt_start "b$n" "$NS_B" -i mth2 --wg "$MT_TMP/b$n.conf" --addr 10.79.0.2/24 --addr fd79::2/64
    mt_wait_link "$NS_B" mth2
    mt_wait_ping "$NS_B" 10.79.0.1 10 || mt_fail "peer of $server: no reply"
    mt_ping "$NS_B" fd79::1 5 || mt_fail "peer of $server: IPv6 inside lost"
    mt_ping "$NS_A" 10.79.0.2 5 || mt_fail "peer of $server: traffic from A's side lost"
    grep -q "handshake complete (we initiated)" "$MT_TMP/b$n.log" || mt_fail "peer of $server: no handshake"
    # A stream from A: data messages in GSO trains, each with the source address cmsg.
    mt_transfer "$NS_A" "$NS_B" 10.79.0.2 1 $((5300 + n)) || mt_fail "peer of $server: transfer from A"
    if grep "endpoint .* -> " "$MT_TMP/b$n.log"; then
        mt_fail "peer of $server: a reply came from another address (B roamed, above)"
    fi
    mt_pass "peer of the secondary address $server: handshake, data both ways (1 MiB from A), every reply from it"
    eval "kill \$PID_b$n; wait \$PID_b$n"
    sleep 0.3
done
