#!/usr/bin/env bash
# The demo: two network namespaces ("left" and "right") joined by a veth cable, a moontun
# tunnel between them, a ping and a file transfer across it, then everything removed.
# Needs root. Usage: scripts/demo.sh [--udp]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
transport=${1:---tcp}

"$root/scripts/setup.sh" || exit 1
"$root/scripts/build.sh" "$root/build" || exit 1
export MOONTUN="$root/build/moontun" MT_ROOT="$root"
source "$root/tests/integration/lib.sh"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

say "1. Two hosts: "left" and "right", cabled with veth"
mt_topology
echo "   left  = $NS_A, outer address 172.31.0.1"
echo "   right = $NS_B, outer address 172.31.0.2"

say "2. moontun server on the left, client on the right ($transport)"
echo "   left:  moontun -i tun0 -s $transport --addr 10.9.0.1/24"
mt_start server "$NS_A" -i tun0 -s "$transport" --addr 10.9.0.1/24
mt_wait_link "$NS_A" tun0
echo "   right: moontun -i tun0 -c 172.31.0.1 $transport --addr 10.9.0.2/24"
mt_start client "$NS_B" -i tun0 -c 172.31.0.1 "$transport" --addr 10.9.0.2/24
mt_wait_link "$NS_B" tun0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "the tunnel did not come up"

say "3. Ping the left host's tunnel address from the right host"
ip netns exec "$NS_B" ping -c 4 -i 0.2 10.9.0.1 | sed 's/^/   /'

say "4. Send 32 MiB of random bytes through the tunnel and compare checksums"
if mt_transfer "$NS_B" "$NS_A" 10.9.0.1 32; then
    echo "   32 MiB arrived intact (sha256 matches) in ${MT_XFER_SECONDS} s, ~${MT_XFER_MBIT} Mbit/s"
else
    mt_fail "transfer failed"
fi

say "5. What the tunnel saw (the server's log)"
kill "$PID_server" "$PID_client"
wait "$PID_server" "$PID_client" 2>/dev/null
sed 's/^/   /' "$MT_TMP/server.log"

say "Done: namespaces and processes are removed on exit."
