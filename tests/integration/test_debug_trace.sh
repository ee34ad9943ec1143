#!/usr/bin/env bash
# -d as a live trace, on real traffic: each packet's line says its fate (the verdict, the script,
# line and hook that decided) and what the scripts changed (a TOS rewrite, a NAT'd destination,
# a length change); a packet no script touched says "=> pass".
source "$(dirname "$0")/lib.sh"
mt_topology
cat >"$MT_TMP/mark.lua" <<'EOF2'
local mt = require "moontun"
return {
    ingress = function(pkt)
        local ip = pkt.ip
        if pkt.udp and pkt.udp.dport == 9 then
            return mt.DROP
        elseif pkt.udp and pkt.udp.dport == 10 then
            pkt:append("xyz")
            pkt:checksum()
        elseif pkt.icmp and ip.version == 4 then
            ip.tos = 0xb8
        end
    end,
}
EOF2
cat >"$MT_TMP/dnat.lua" <<'EOF2'
return {
    ingress = function(pkt)
        if pkt.udp and pkt.udp.dport == 11 then
            pkt.ip.dst = "10.9.0.77"
            pkt.udp.dport = 12
        end
    end,
}
EOF2
mt_pair -d --addr fd09::1/64 -S "$MT_TMP/mark.lua" -S "$MT_TMP/dnat.lua" -- --addr fd09::2/64
mt_ping "$NS_B" fd09::1 1 || mt_fail "no ping6"
for port in 9 10 11; do
    ip netns exec "$NS_B" python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'hi', ('10.9.0.1', $port))"
done
sleep 0.5
L="$MT_TMP/srv.log"
expect() { grep -qE "$1" "$L" || mt_fail "no line /$1/"; }
expect 'debug: ingress IP 10\.9\.0\.2 > 10\.9\.0\.1: ICMP echo request, .* => pass; tos 0x00->0xb8$'
expect 'debug: ingress IP6 fd09::2 > fd09::1: ICMP6 echo request, .* => pass$'
expect 'debug: ingress IP 10\.9\.0\.2\.[0-9]+ > 10\.9\.0\.1\.9: udp, length 30 => drop by mark\.lua:3 ingress$'
expect 'debug: ingress IP 10\.9\.0\.2\.[0-9]+ > 10\.9\.0\.1\.10: udp, length 30 => pass; rewritten, length 30->33$'
expect 'debug: ingress IP 10\.9\.0\.2\.[0-9]+ > 10\.9\.0\.1\.11: udp, length 30 => pass; dst 10\.9\.0\.1->10\.9\.0\.77, dport 11->12$'
expect 'debug: egress IP 10\.9\.0\.1 > 10\.9\.0\.2: ICMP echo reply, .* => pass$'
mt_pass "-d: verdicts, the deciding script:line and hook, TOS / address / port / length changes"
