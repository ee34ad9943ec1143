#!/usr/bin/env bash
# examples/obfuscate.lua over UDP and TCP: pings and a TCP transfer (byte-equal) pass while the
# secret text they carry never shows on the veth (without the script it does), datagrams carry the
# magic, identical packets differ on the wire; with mismatched keys nothing passes, both stay up.
source "$(dirname "$0")/lib.sh"
OBF="$MT_ROOT/examples/obfuscate.lua"
CHECK="$MT_ROOT/tests/integration/pcap_check.py"
SECRET=MOONTUN-SECRET-PAYLOAD
PATTERN=$(printf '%s' "${SECRET:0:16}" | od -An -tx1 | tr -d ' \n') # ping -p takes 16 bytes
mt_topology
yes "$SECRET" | head -n 10000 >"$MT_TMP/secret.txt" # 230 KB of it

# up TRANSPORT SCRIPT_A SCRIPT_B [ARGS...]: server in A, client in B (10.9.0.1/2, fd00:9::1/2);
# an empty SCRIPT_* runs that end without a script.
# Over UDP the kernel's GSO is off: a train of datagrams is captured as one packet, and the
# checks below look at every datagram (repeats, the magic on each).
up() {
    local tr=$1 sa=$2 sb=$3 gso=()
    shift 3
    [ "$tr" = --udp ] && gso=(--udp-offload off)
    mt_start srv "$NS_A" -i mt0 -s "$tr" "${gso[@]}" --addr 10.9.0.1/24 --addr fd00:9::1/64 \
        ${sa:+-S "$sa"} "$@"
    SRV=$MT_LAST_PID
    mt_wait_link "$NS_A" mt0
    mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 "$tr" "${gso[@]}" --addr 10.9.0.2/24 --addr fd00:9::2/64 \
        ${sb:+-S "$sb"} "$@"
    CLI=$MT_LAST_PID
    mt_wait_link "$NS_B" mt0
}
down() {
    kill "$SRV" "$CLI"
    wait "$SRV" || mt_fail "server exit status $?"
    wait "$CLI" || mt_fail "client exit status $?"
}

# capture NAME / capture_stop: everything on A's veth to and from the tunnel port. Immediate
# mode, so the last packets are not left in the kernel's ring when tcpdump is stopped.
capture() {
    ip netns exec "$NS_A" tcpdump -i "$VETH_A" --immediate-mode -B 16384 -U -n \
        -w "$MT_TMP/$1.pcap" port 55555 >"$MT_TMP/tcpdump-$1.log" 2>&1 &
    TCPDUMP=$!
    MT_PIDS+=("$TCPDUMP")
    mt_wait_log "tcpdump-$1" 'listening on'
}
capture_stop() {
    sleep 0.3
    kill -INT "$TCPDUMP"
    wait "$TCPDUMP"
}

# traffic WHAT: full-size pings carrying the secret's first 16 bytes, the secret text B -> A
# over TCP (compared byte for byte), and 10 identical UDP datagrams over IPv6 (no IP id in IPv6
# to make them differ).
traffic() {
    mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "$1: no ping"
    ip netns exec "$NS_B" ping -n -q -c 5 -i 0.2 -W 2 -s 1372 -p "$PATTERN" 10.9.0.1 \
        >"$MT_TMP/ping.out" 2>&1 ||
        mt_fail "$1: $(grep -o '[0-9.]*% packet loss' "$MT_TMP/ping.out")"
    rm -f "$MT_TMP/secret.out"
    ip netns exec "$NS_A" timeout 30 python3 "$MT_ROOT/tests/integration/tcpsink.py" \
        10.9.0.1 5201 "$MT_TMP/secret.out" &
    local sink=$!
    MT_PIDS+=("$sink")
    ip netns exec "$NS_B" timeout 30 python3 "$MT_ROOT/tests/integration/tcpsource.py" \
        10.9.0.1 5201 "$MT_TMP/secret.txt" || mt_fail "$1: transfer source failed"
    wait "$sink" || mt_fail "$1: transfer sink failed"
    cmp -s "$MT_TMP/secret.txt" "$MT_TMP/secret.out" || mt_fail "$1: transfer differs"
    # One socket, so one source port; the far end's "port unreachable" may fail a later write.
    ip netns exec "$NS_B" bash -c 'exec 3>/dev/udp/fd00:9::1/9
        for _ in $(seq 10); do printf "same bytes every time" >&3; done' 2>/dev/null
}

# unique_udp PCAP MIN [MAGIC]: no two non-empty UDP payloads in PCAP are the same, and each
# starts with MAGIC (at least MIN of them).
unique_udp() {
    python3 - "$MT_ROOT/tests/integration" "$@" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from pcap_check import packets, ip_payload
magic = sys.argv[4].encode() if len(sys.argv) > 4 else b""
seen = set()
for frame in packets(sys.argv[2]):
    parsed = ip_payload(frame)
    if parsed and parsed[0] == 17 and len(parsed[1]) > 8:
        payload = parsed[1][8:]
        if not payload.startswith(magic):
            sys.exit("a UDP payload starts with %s, not %s" % (payload[:4].hex(), magic))
        if payload in seen:
            sys.exit("the same UDP payload twice on the wire")
        seen.add(payload)
if len(seen) < int(sys.argv[3]):
    sys.exit("only %d UDP payloads captured" % len(seen))
EOF
}

# 1. Control: without the script the secret is plain on the wire, and so are repeats; the
#    checks below would catch a script that leaks.
up --udp "" ""
capture plain
traffic plain
capture_stop
down
grep -qa "${SECRET:0:14}" "$MT_TMP/plain.pcap" ||
    mt_fail "control: the secret was not seen on the wire without the script"
unique_udp "$MT_TMP/plain.pcap" 50 2>&1 | grep -q twice || mt_fail "control: no repeated datagram"
mt_pass "control: without the script the secret and the repeated datagrams show on the veth"

# 2. Both transports, same key on both ends. UDP carries ordinary packets: a budget of 20,000
#    instructions per call (the default is 1,000,000) proves a full-size one costs far less.
#    TCP carries 64 KiB super-packets between moontun peers (offloads): the default budget.
for tr in udp tcp; do
    budget=()
    [ "$tr" = udp ] && budget=(--lua-budget 20000)
    up --$tr "$OBF key=s3cret pad=0-32" "$OBF key=s3cret pad=4-48" "${budget[@]}"
    capture "$tr"
    traffic "$tr"
    capture_stop
    kill -0 "$SRV" "$CLI" || mt_fail "$tr: a process died"
    down
    grep -qE "script errors [1-9]" "$MT_TMP/srv.log" "$MT_TMP/cli.log" &&
        mt_fail "$tr: script errors"
    python3 "$CHECK" "$MT_TMP/$tr.pcap" --absent "${SECRET:0:14}" --min 20 ||
        mt_fail "$tr: the secret showed on the veth"
    if [ "$tr" = udp ]; then
        unique_udp "$MT_TMP/udp.pcap" 50 MTOB || mt_fail "udp: the datagrams on the wire (above)"
    fi
    mt_pass "$tr: pings and a 230 KB transfer (bytes equal) pass, the secret never on the veth"
done

# 3. Mismatched keys: decode drops everything (counted), nothing reaches the far device.
for tr in udp tcp; do
    up --$tr "$OBF key=s3cret" "$OBF key=other"
    sleep 0.5
    if ip netns exec "$NS_B" ping -n -c 3 -i 0.2 -W 1 10.9.0.1 >/dev/null 2>&1; then
        mt_fail "$tr: ping passed with mismatched keys"
    fi
    kill -0 "$SRV" "$CLI" || mt_fail "$tr: a process died with mismatched keys"
    down
    grep -qE 'script drops [1-9]' "$MT_TMP/srv.log" || mt_fail "$tr: server dropped nothing"
    mt_pass "$tr: with mismatched keys no ping passes, the server's decode drops them, both stay up"
done
