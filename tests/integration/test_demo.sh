#!/usr/bin/env bash
# scripts/demo.sh (without its setup and build) shows the Lua: the tunnel runs firewall.lua, an
# allowed transfer arrives, a refused port is refused by the script, the verdict counts are
# printed, the recorded traffic is replayed by `nobody` with the script's verdicts, and the
# running server answers moontun show and the firewall's moontun call tun0 rules.
source "$(dirname "$0")/lib.sh"
MT_DEMO_NO_BUILD=1 MOONTUN="$MOONTUN" timeout 120 bash "$MT_ROOT/scripts/demo.sh" \
    >"$MT_TMP/demo.log" 2>&1 || mt_fail "demo.sh exit status $?"
expect() {
    grep -qE "$1" "$MT_TMP/demo.log" || mt_fail "demo output lacks /$1/"
}
expect 'moontun -i tun0 -s --tcp --addr 10.9.0.1/24 -S "examples/firewall.lua allow=tcp/5201,icmp reject=1"'
expect '8 MiB arrived intact'
expect 'connect 10.9.0.1:22: refused'
expect '=> firewall.lua: script drops 1, replies 1'
expect 'setpriv --reuid=nobody moontun replay'
expect 'reply firewall.lua:ingress +rewritten IP 10.9.0.1.22 > 10.9.0.2'
expect 'drop  firewall.lua:ingress +IP 10.9.0.2.[0-9]+ > 10.9.0.1.53: udp'
expect '^   replay: [0-9]+ packets \(ingress\).* drop 1, reply 1'
expect '^   script: examples/firewall.lua$'
expect '^   +counter firewall_packets_total: .*\{rule="reject"\} 1'
expect '^   allow tcp/5201 +1 packets$'
mt_pass "demo: firewall.lua in the tunnel, allowed transfer, refused port, counts, replay as nobody, moontun show and call"
