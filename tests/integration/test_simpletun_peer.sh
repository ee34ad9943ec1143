#!/usr/bin/env bash
# Compatibility: a peer speaking only simpletun's framing (written independently, in Python,
# from the simpletun description) exchanges ICMP echo with a moontun server's kernel.
source "$(dirname "$0")/lib.sh"
mt_topology
mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24
mt_wait_link "$NS_A" mt0
ip netns exec "$NS_B" timeout 20 python3 "$MT_ROOT/tests/integration/simpletun_peer.py" \
    172.31.0.1 55555 10.9.0.50 10.9.0.1 10 >"$MT_TMP/peer.out" 2>&1 ||
    { cat "$MT_TMP/peer.out"; mt_fail "the simpletun-framed peer did not get its replies"; }
mt_pass "$(cat "$MT_TMP/peer.out")"
