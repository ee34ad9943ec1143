#!/usr/bin/env bash
# The demo: two network namespaces ("left" and "right") joined by a veth cable, a moontun
# tunnel between them whose left end runs examples/firewall.lua, a ping and a file transfer
# across it, a port the firewall refuses, the same traffic, recorded, replayed through the
# script by an unprivileged user with `moontun replay`, and at the end the running server's
# view through its control socket (`moontun show`, the firewall's `moontun call tun0 rules`).
# Needs root. Usage: scripts/demo.sh [--udp]
# (MT_DEMO_NO_BUILD=1 with MOONTUN=path skips setup and build: tests/integration/test_demo.sh.)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
transport=${1:---tcp}

if [ -z "${MT_DEMO_NO_BUILD:-}" ]; then
    "$root/scripts/setup.sh" || exit 1
    "$root/scripts/build.sh" "$root/build" || exit 1
    export MOONTUN="$root/build/moontun"
fi
export MT_ROOT="$root"
source "$root/tests/integration/lib.sh"
FW="examples/firewall.lua allow=tcp/5201,icmp reject=1"
cd "$root"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

say "1. Two hosts: \"left\" and \"right\", cabled with veth"
mt_topology
echo "   left  = $NS_A, outer address 172.31.0.1"
echo "   right = $NS_B, outer address 172.31.0.2"

say "2. moontun server on the left running a Lua firewall, client on the right ($transport)"
echo "   left:  moontun -i tun0 -s $transport --addr 10.9.0.1/24 -S \"$FW\""
mt_start server "$NS_A" -i tun0 -s "$transport" --addr 10.9.0.1/24 -S "$FW"
mt_wait_link "$NS_A" tun0
echo "   right: moontun -i tun0 -c 172.31.0.1 $transport --addr 10.9.0.2/24"
mt_start client "$NS_B" -i tun0 -c 172.31.0.1 "$transport" --addr 10.9.0.2/24
mt_wait_link "$NS_B" tun0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "the tunnel did not come up"
echo "   The script decides, per packet, what may start from the tunnel side:"
sed -n '/^function M.ingress/,/^end/p' examples/firewall.lua | sed 's/^/     | /'

say "3. Record what the right host sends into the tunnel (tcpdump on its tun0)"
ip netns exec "$NS_B" tcpdump -i tun0 -Q out -U --immediate-mode -n -w "$MT_TMP/right.pcap" 2>"$MT_TMP/tcpdump.log" &
MT_PIDS+=($!)
PID_tcpdump=$!
mt_wait_log tcpdump 'listening on'

say "4. Ping the left host's tunnel address from the right host (icmp is allowed)"
ip netns exec "$NS_B" ping -c 3 -i 0.2 10.9.0.1 | sed 's/^/   /'

say "5. Send 8 MiB to port 5201 (allowed) and compare checksums"
if mt_transfer "$NS_B" "$NS_A" 10.9.0.1 8 5201; then
    echo "   8 MiB arrived intact (sha256 matches) in ${MT_XFER_SECONDS} s, ~${MT_XFER_MBIT} Mbit/s"
else
    mt_fail "transfer to the allowed port failed"
fi

say "6. Connect to port 22 (not allowed): the script answers with a RST (reject=1)"
out=$(ip netns exec "$NS_B" timeout 5 python3 -c '
import socket, time
s = socket.socket(); s.settimeout(3); t = time.time()
try:
    s.connect(("10.9.0.1", 22)); print("connected")
except ConnectionRefusedError:
    print("refused in %.3f s" % (time.time() - t))
except socket.timeout:
    print("timed out")' 2>&1)
echo "   connect 10.9.0.1:22: $out"
[[ $out == refused* ]] || mt_fail "port 22 was not refused: $out"

say "7. A UDP datagram to port 53 (not allowed): dropped"
ip netns exec "$NS_B" python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"q", ("10.9.0.1", 53))'
sleep 0.3
kill -INT "$PID_tcpdump"
wait "$PID_tcpdump" 2>/dev/null
kill -INT "$PID_tcpdump"
wait "$PID_tcpdump" 2>/dev/null

say "8. The same traffic, offline: moontun replay as user nobody (no root, no device)"
chmod 755 "$MT_TMP"
chmod 644 "$MT_TMP/right.pcap"
echo "   setpriv --reuid=nobody moontun replay --dir ingress -S \"$FW\" -r right.pcap"
setpriv --reuid=nobody --regid=nogroup --clear-groups "$MOONTUN" replay --dir ingress \
    -S "$FW" -r "$MT_TMP/right.pcap" >"$MT_TMP/replay.txt" 2>&1 || mt_fail "replay failed"
# Every packet of the handshakes, pings and refusals; the transfer's data in between is elided.
grep -vE ' pass  - .*tcp \[P?\.\]' "$MT_TMP/replay.txt" | head -40 | sed 's/^/   /'
grep -q 'reply firewall.lua:ingress *rewritten IP 10.9.0.1.22 > 10.9.0.2' "$MT_TMP/replay.txt" ||
    mt_fail "the replay did not show the refusal"
grep -q 'drop  firewall.lua:ingress *IP 10.9.0.2.[0-9]* > 10.9.0.1.53: udp' "$MT_TMP/replay.txt" ||
    mt_fail "the replay did not show the dropped datagram"

say "9. The running server, asked through its control socket: moontun show, moontun call"
echo "   left: moontun show tun0"
ip netns exec "$NS_A" "$MOONTUN" show tun0 >"$MT_TMP/show.txt" || mt_fail "moontun show failed"
sed 's/^/   /' "$MT_TMP/show.txt"
echo "   left: moontun call tun0 rules   (a command firewall.lua registers with mt.command)"
ip netns exec "$NS_A" "$MOONTUN" call tun0 rules | sed 's/^/   /' || mt_fail "moontun call failed"
echo "   => firewall.lua: script drops $(sed -n 's/^  script_drops: //p' "$MT_TMP/show.txt"), replies $(sed -n 's/^  script_replies: //p' "$MT_TMP/show.txt") (its RSTs), everything else passed"

say "Done: namespaces and processes are removed on exit."
