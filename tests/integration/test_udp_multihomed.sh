#!/usr/bin/env bash
# A multihomed UDP server (issue 9, fault 10): a client that connects to the server's
# secondary address, IPv4 or IPv6, must get replies from that address (its connected socket
# discards anything else). The kernel's own source choice would be the primary address.
source "$(dirname "$0")/lib.sh"
mt_topology
mt_multihome

mt_start srv "$NS_A" -i mts -s --udp --addr 10.9.0.1/24 --addr fd09::1/64
mt_wait_link "$NS_A" mts
n=0
for server in 172.31.0.100 fd31::100; do
    n=$((n + 1))
    mt_start "cli$n" "$NS_B" -i mtc -c "$server" --udp --addr 10.9.0.2/24 --addr fd09::2/64
    mt_wait_link "$NS_B" mtc
    mt_wait_ping "$NS_B" 10.9.0.1 5 || mt_fail "client of $server: no reply (answered from another address?)"
    mt_ping "$NS_B" fd09::1 5 || mt_fail "client of $server: IPv6 inside lost"
    mt_ping "$NS_A" 10.9.0.2 5 || mt_fail "client of $server: server-initiated traffic lost"
    mt_pass "client of the secondary address $server: replies come from it, both directions"
    eval "kill \$PID_cli$n; wait \$PID_cli$n"
    sleep 0.3
done
