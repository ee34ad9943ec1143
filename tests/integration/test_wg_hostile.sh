#!/usr/bin/env bash
# moontun --wg under attack, end to end: an established wireguard-go peer (alice, in A) keeps
# working while an attacker's namespace (C) sends it an unknown key (wireguard-go "eve"), a
# peer with the right key but the wrong preshared key (wireguard-go "bob"), replays of a
# captured data message of alice's (a raw socket forging alice's address, then a plain UDP
# socket), and a flood of 2,000 initiations with a valid mac1. Each is refused, counted (the
# "wg: refused" line at exit) and logged at most once per 5 s; the flood gets cookie replies,
# moontun's CPU stays bounded and alice's pings lose nothing.
source "$(dirname "$0")/lib.sh"

for tool in wireguard-go wg tcpdump; do
    command -v "$tool" >/dev/null || mt_fail "$tool missing: scripts/setup.sh --test installs it"
done
mt_topology
NS_C=$(mt_ns c)
read -r VETH_C VETH_BC < <(mt_veth "$NS_C" 172.31.1.1/24 "$NS_B" 172.31.1.2/24)
HOSTILE="$MT_ROOT/tests/integration/wg_hostile.py"

MT_PRIV=$("$MOONTUN" genkey)
MT_PUB=$(echo "$MT_PRIV" | "$MOONTUN" pubkey)
ALICE_PRIV=$(wg genkey)
BOB_PRIV=$(wg genkey)
EVE_PRIV=$(wg genkey)
PSK=$(wg genpsk)
BOB_PSK=$(wg genpsk)

# wg_go NS IF PRIV PORT ADDR ENDPOINT PSK: a wireguard-go whose one peer is moontun.
wg_go() {
    local ns=$1 ifn="${2}${MT_TAG}"
    ifn=${ifn:0:15}
    ip netns exec "$ns" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
        wireguard-go -f "$ifn" >"$MT_TMP/wg-$2.out" 2>&1 &
    MT_PIDS+=($!)
    eval "WGPID_$2=$!"
    for _ in $(seq 50); do
        [ -S "/var/run/wireguard/$ifn.sock" ] && break
        sleep 0.1
    done
    cat >"$MT_TMP/$2.conf" <<CONF
[Interface]
PrivateKey = $3
ListenPort = $4

[Peer]
PublicKey = $MT_PUB
PresharedKey = $7
AllowedIPs = 10.77.0.2/32
Endpoint = $6
CONF
    ip netns exec "$ns" wg setconf "$ifn" "$MT_TMP/$2.conf" || mt_fail "wg setconf $2"
    ip -n "$ns" addr add "$5/24" dev "$ifn"
    ip -n "$ns" link set "$ifn" up
}
wg_go "$NS_A" alice "$ALICE_PRIV" 51820 10.77.0.1 172.31.0.2:51821 "$PSK"
wg_go "$NS_C" bob "$BOB_PRIV" 51831 10.77.0.3 172.31.1.2:51821 "$BOB_PSK"
wg_go "$NS_C" eve "$EVE_PRIV" 51832 10.77.0.4 172.31.1.2:51821 "$PSK"

# moontun knows alice and bob (bob under another preshared key than his own); eve not at all.
cat >"$MT_TMP/mt.conf" <<CONF
[Interface]
PrivateKey = $MT_PRIV
ListenPort = 51821
Address = 10.77.0.2/24

[Peer]
# Name = alice
PublicKey = $(echo "$ALICE_PRIV" | wg pubkey)
PresharedKey = $PSK
AllowedIPs = 10.77.0.1/32

[Peer]
# Name = bob
PublicKey = $(echo "$BOB_PRIV" | wg pubkey)
PresharedKey = $PSK
AllowedIPs = 10.77.0.3/32
Endpoint = 172.31.1.1:51831
CONF
chmod 600 "$MT_TMP/mt.conf"
mt_start mtwg "$NS_B" -i mtw0 --wg "$MT_TMP/mt.conf"
mt_wait_link "$NS_B" mtw0
MTPID=$PID_mtwg

# What the capture of alice's traffic will give the attacker.
ip netns exec "$NS_B" timeout 20 tcpdump -i "$VETH_B" -n -U --immediate-mode -w "$MT_TMP/alice.pcap" \
    udp port 51821 >"$MT_TMP/tcpdump.out" 2>&1 &
TCPDUMP=$!
MT_PIDS+=("$TCPDUMP")
sleep 0.5
mt_wait_ping "$NS_A" 10.77.0.2 10 || mt_fail "alice cannot reach moontun"
mt_ping "$NS_A" 10.77.0.2 3 || mt_fail "ping from alice"
sleep 0.3
kill "$TCPDUMP"
wait "$TCPDUMP" 2>/dev/null
mt_pass "alice (wireguard-go) established"

mt_log "wrong key: eve is no peer of moontun's"
EVE_IF="eve${MT_TAG}"
ip netns exec "$NS_C" ping -n -q -c 2 -i 0.3 -W 1 -I "${EVE_IF:0:15}" 10.77.0.2 >/dev/null 2>&1 &&
    mt_fail "eve's ping was answered"
mt_wait_log mtwg "handshake refused from 172.31.1.1:51832: initiation from an unknown key" 3
# Eve would retry every 5 s, taking the one handshake refusal line a 5 s period has.
kill "$WGPID_eve"
mt_pass "eve's initiation refused (unknown key), logged"

mt_log "wrong preshared key: bob (moontun initiates, bob's response is under another key)"
ip netns exec "$NS_B" ping -n -q -c 2 -i 0.3 -W 1 10.77.0.3 >/dev/null 2>&1 &&
    mt_fail "a ping to bob (wrong preshared key) was answered"

mt_log "replayed data message"
ip netns exec "$NS_A" python3 "$HOSTILE" replay "$MT_TMP/alice.pcap" 172.31.0.1 51820 \
    172.31.0.2 51821 200 raw || mt_fail "raw replay"
ip netns exec "$NS_C" python3 "$HOSTILE" replay "$MT_TMP/alice.pcap" 172.31.0.1 51820 \
    172.31.0.2 51821 100 udp 172.31.1.2 || mt_fail "udp replay"
mt_wait_log mtwg "data message refused from alice: replayed or too old counter" 3
grep -q "endpoint 172.31.0.1:51820 ->" "$MT_TMP/mtwg.log" &&
    mt_fail "a replay from another address moved alice's endpoint"
mt_ping "$NS_A" 10.77.0.2 2 || mt_fail "alice stopped working after the replays"
n=$(grep -c "data message refused" "$MT_TMP/mtwg.log")
[ "$n" -eq 1 ] || mt_fail "300 replays in under 5 s logged $n lines (one expected)"
mt_pass "300 replays (200 forged as alice's address, 100 from C) refused, 1 log line, endpoint kept"

# One handshake refusal line per 5 s: bob's is written once eve's period is over (moontun
# retries its initiation every 5 s while the pings wait).
mt_wait_log mtwg "handshake refused from 172.31.1.1:51831: response does not authenticate" 8
grep -q "peer bob: handshake complete" "$MT_TMP/mtwg.log" && mt_fail "a handshake with bob completed"
mt_pass "bob's response under another preshared key refused, logged"

mt_log "handshake flood while alice pings"
tick() { awk '{ print $14 + $15 }' "/proc/$MTPID/stat"; }
CLK=$(getconf CLK_TCK)
ip netns exec "$NS_A" ping -n -q -c 100 -i 0.05 -W 1 10.77.0.2 >"$MT_TMP/flood-ping.out" 2>&1 &
PING=$!
MT_PIDS+=("$PING")
c0=$(tick)
w0=$(date +%s.%N)
ip netns exec "$NS_C" timeout 15 python3 "$HOSTILE" flood 172.31.1.2 51821 "$MT_PUB" 2000 4 \
    >"$MT_TMP/flood.out" || mt_fail "the flood sender failed"
c1=$(tick)
w1=$(date +%s.%N)
wait "$PING"
ping_rc=$?
read -r _ sent _ cookies <"$MT_TMP/flood.out"
cpu=$(awk -v a="$c0" -v b="$c1" -v s="$w0" -v e="$w1" -v k="$CLK" \
    'BEGIN { printf "%.0f", 100 * (b - a) / k / (e - s) }')
loss=$(grep -oE '[0-9.]+% packet loss' "$MT_TMP/flood-ping.out")
mt_log "flood: $sent initiations, $cookies cookie replies received, moontun CPU ${cpu}%, alice's ping: $loss"
[ "$ping_rc" -eq 0 ] && [ "$loss" = "0% packet loss" ] || mt_fail "alice lost pings during the flood ($loss)"
[ "$sent" -eq 2000 ] || mt_fail "the flood sent $sent initiations, not 2000"
# Past 64 a second the gate answers with cookies: all but the first second's few dozen.
[ "$cookies" -ge 1500 ] || mt_fail "only $cookies cookie replies for 2000 initiations"
# 5% measured with the gate (ASan build), 19% with the gate removed (2,000 Diffie-Hellmans).
[ "$cpu" -le "${MT_WG_FLOOD_CPU:-12}" ] || mt_fail "moontun used ${cpu}% CPU during the flood"
n=$(grep -c "cookie reply to 172.31.1.1" "$MT_TMP/mtwg.log")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] || mt_fail "$n cookie log lines over a 5 s flood (1 or 2 expected)"
n=$(grep -c "handshake refused" "$MT_TMP/mtwg.log")
[ "$n" -le 4 ] || mt_fail "$n handshake refusal lines: not rate limited"
mt_ping "$NS_A" 10.77.0.2 2 || mt_fail "alice stopped working after the flood"
mt_pass "2,000 initiations: $cookies cookie replies, CPU ${cpu}%, alice $loss"

kill "$MTPID"
wait "$MTPID" 2>/dev/null
line=$(grep "wg: refused:" "$MT_TMP/mtwg.log") || mt_fail "no refusal counters at exit"
mt_log "${line#*wg: }"
read -r hs data cookies_mt < <(echo "$line" |
    sed -E 's/.* ([0-9]+) handshakes, ([0-9]+) data, .* ([0-9]+) cookie replies sent/\1 \2 \3/')
[ "$data" -ge 300 ] || mt_fail "$data data refusals counted, 300 replays sent"
[ "$hs" -ge 2 ] || mt_fail "$hs handshake refusals counted (eve and bob at least)"
[ "$cookies_mt" -ge "$cookies" ] || mt_fail "moontun counted $cookies_mt cookie replies, C got $cookies"
mt_pass "counted at exit: $hs handshakes, $data data messages refused, $cookies_mt cookie replies"
