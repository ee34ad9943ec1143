#!/usr/bin/env bash
# examples/firewall.lua on the server (A), on real traffic over IPv4 and IPv6: from the far side
# (B) ping and TCP to an allowed port work, a denied port times out (or is refused fast with
# reject=1), a stray UDP is dropped; what A starts (TCP both ways, UDP) gets its replies until
# the state expires. A bad setting stops start-up with one line naming it.
source "$(dirname "$0")/lib.sh"
FW="$MT_ROOT/examples/firewall.lua"
NET="$MT_TMP/net.py"
cat >"$NET" <<'EOF'
import socket, sys, time
cmd, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
arg = sys.argv[4] if len(sys.argv) > 4 else None
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
if cmd == "connect":  # prints connected|refused|timeout and the seconds it took
    s, t0 = socket.socket(fam), time.time()
    s.settimeout(float(arg))
    try:
        s.connect((addr, port)); r = "connected"
    except ConnectionRefusedError:
        r = "refused"
    except socket.timeout:
        r = "timeout"
    print(r, "%.2f" % (time.time() - t0))
elif cmd in ("listen", "serve"):  # listen: 20 s; serve: send file arg to the first, close
    s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(8)
    if cmd == "listen":
        time.sleep(20)
    else:
        s.settimeout(15); c, _ = s.accept(); c.sendall(open(arg, "rb").read()); c.close()
elif cmd == "fetch":  # connect, read to the end into file arg
    s = socket.create_connection((addr, port), timeout=10)
    with open(arg, "wb") as out:
        while (d := s.recv(65536)):
            out.write(d)
elif cmd == "udp-echo":  # answer one datagram
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((addr, port)); s.settimeout(15)
    d, peer = s.recvfrom(2048); s.sendto(d, peer)
elif cmd == "udp-recv":  # prints received|timeout
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((addr, port)); s.settimeout(float(arg))
    try:
        s.recvfrom(2048); print("received")
    except socket.timeout:
        print("timeout")
elif cmd == "udp-send":  # from local port arg
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind(("", int(arg)))
    s.sendto(b"udp-test", (addr, port))
elif cmd == "udp-ask":  # from local port arg: send, print the reply; then print whether
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind(("", int(arg))); s.settimeout(3)
    s.sendto(b"hello", (addr, port))  # anything else arrives on that port within 5 s
    for what in ("reply", "late"):
        try:
            s.recvfrom(2048); print(what, "received", flush=True)
        except socket.timeout:
            print(what, "timeout", flush=True)
        s.settimeout(5)
EOF
PY=$(python3 -c 'import sys; print(sys.executable)')
PATH=$(dirname "$PY"):$PATH # lib.sh's python3 too: past a version manager's slow shim
net() { local ns=$1; shift; ip netns exec "$ns" timeout 30 "$PY" "$NET" "$@"; }
net_bg() { # in the background, stopped by the cleanup
    local ns=$1; shift
    ip netns exec "$ns" timeout 30 "$PY" "$NET" "$@" &
    MT_PIDS+=($!)
}
mt_topology

# 0. A bad setting: exits non-zero before any device, one line naming the setting.
out=$(ip netns exec "$NS_A" timeout 5 "$MOONTUN" -s -i mt0 -S "$FW allow=tcp/99999" 2>&1) &&
    mt_fail "allow=tcp/99999 was accepted"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ $out == *allow=tcp/99999* ]] ||
    mt_fail "bad setting: expected one line naming allow, got: $out"
mt_pass "allow=tcp/99999 refused: $out"

up() { # firewall settings for A
    mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 --addr fd09::1/64 -S "$FW $*"
    mt_wait_link "$NS_A" mt0
    mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24 --addr fd09::2/64
    mt_wait_link "$NS_B" mt0
}
down() {
    kill "$PID_srv" "$PID_cli"
    wait "$PID_srv" || mt_fail "server exit status $?"
    wait "$PID_cli" || mt_fail "client exit status $?"
}

up allow=tcp/5201,icmp timeout_udp=2
# 1. Inbound: allowed ping and TCP port (IPv4 and IPv6).
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "no ping from B"
mt_ping "$NS_B" 10.9.0.1 3 || mt_fail "ping from B lost packets"
mt_ping "$NS_B" fd09::1 3 || mt_fail "ping6 from B lost packets"
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 4 5201 || mt_fail "transfer B->A to allowed 5201"
mt_transfer "$NS_B" "$NS_A" fd09::1 2 5201 || mt_fail "IPv6 transfer B->A to allowed 5201"
mt_pass "from B: ping, ping6, TCP 5201 over IPv4 (4 MiB) and IPv6 (2 MiB), sha256 ok"

# 2. Inbound to a denied port with a listener: the SYN is dropped, the connect times out.
net_bg "$NS_A" listen 0.0.0.0 5202
net_bg "$NS_A" listen :: 5203
sleep 0.5
r=$(net "$NS_B" connect 10.9.0.1 5202 2) && [[ $r == timeout* ]] ||
    mt_fail "TCP 10.9.0.1:5202 from B: expected timeout, got '$r'"
r=$(net "$NS_B" connect fd09::1 5203 2) && [[ $r == timeout* ]] ||
    mt_fail "TCP [fd09::1]:5203 from B: expected timeout, got '$r'"
mt_pass "from B: TCP to denied 5202 (IPv4) and 5203 (IPv6) time out although A listens"

# 3. Outbound: A connects to B; data flows both ways on that connection.
mt_transfer "$NS_A" "$NS_B" 10.9.0.2 4 5300 || mt_fail "transfer A->B on an A-started connection"
head -c 1048576 /dev/urandom >"$MT_TMP/back.in"
net_bg "$NS_B" serve 10.9.0.2 5301 "$MT_TMP/back.in"
sleep 0.5
net "$NS_A" fetch 10.9.0.2 5301 "$MT_TMP/back.out" || mt_fail "fetch B->A failed"
cmp -s "$MT_TMP/back.in" "$MT_TMP/back.out" || mt_fail "data B->A differs"
mt_pass "A-started TCP: 4 MiB A->B sha256 ok, 1 MiB B->A identical"

# 4. UDP: a flow A starts gets its reply; after timeout_udp=2 idle the same 5-tuple is
#    dropped; an unsolicited datagram to a port A listens on is dropped.
net_bg "$NS_B" udp-echo 10.9.0.2 5310
sleep 0.3
net_bg "$NS_A" udp-ask 10.9.0.2 5310 5311 >"$MT_TMP/ask.out"
ASK=$!
for _ in $(seq 40); do grep -q reply "$MT_TMP/ask.out" && break; sleep 0.1; done
grep -q 'reply received' "$MT_TMP/ask.out" ||
    mt_fail "UDP reply to A's flow: $(cat "$MT_TMP/ask.out")"
sleep 3 # the flow expires (2 s idle; entries die on their deadline)
net "$NS_B" udp-send 10.9.0.1 5311 5310
wait "$ASK"
grep -q 'late timeout' "$MT_TMP/ask.out" ||
    mt_fail "UDP after expiry got in: $(cat "$MT_TMP/ask.out")"
net_bg "$NS_A" udp-recv 10.9.0.1 5320 2 >"$MT_TMP/recv.out"
RECV=$!
sleep 0.3
net "$NS_B" udp-send 10.9.0.1 5320 5321
wait "$RECV"
grep -q timeout "$MT_TMP/recv.out" || mt_fail "unsolicited UDP to 5320 reached A"
mt_pass "UDP: A's flow answered, the same flow dropped once expired, stray inbound dropped"
down
grep -qE 'script drops [1-9]' "$MT_TMP/srv.log" || mt_fail "drops not counted"

# 5. reject=1: the denied connect is refused at once (RST built by the script), IPv4 and IPv6;
#    allowed traffic is unchanged.
up allow=tcp/5201,icmp reject=1
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "reject=1: no ping"
net_bg "$NS_A" listen :: 5204
sleep 0.3
for addr in 10.9.0.1 fd09::1; do
    r=$(net "$NS_B" connect "$addr" 5204 3) || mt_fail "connect helper failed"
    read -r what secs <<<"$r"
    [ "$what" = refused ] && awk -v s="$secs" 'BEGIN { exit !(s < 1) }' ||
        mt_fail "reject=1: TCP $addr:5204 expected refused within 1 s, got '$r'"
    mt_pass "reject=1: TCP to $addr port 5204 refused in $secs s"
done
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 2 5201 || mt_fail "reject=1: transfer to allowed 5201"
down
mt_pass "reject=1: allowed 5201 still carries 2 MiB, sha256 ok"
