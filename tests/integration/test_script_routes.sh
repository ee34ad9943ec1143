#!/usr/bin/env bash
# What a script writer trips on, on real traffic: mt.route sends a prefix to a peer named
# before it connected, on the server's egress path and on the client-to-client path (one-way
# UDP, so the learning table never learns the address), and its removal stops that; peers a
# script named are named in the core's log lines; a packet dropped because a script failed is
# counted once, as a script error.
source "$(dirname "$0")/lib.sh"
NS_S=$(mt_ns s)
NS_B=$(mt_ns b)
NS_C=$(mt_ns c)
mt_veth "$NS_S" 172.31.1.1/24 "$NS_B" 172.31.1.2/24 >/dev/null
mt_veth "$NS_S" 172.31.2.1/24 "$NS_C" 172.31.2.2/24 >/dev/null
cat >"$MT_TMP/routes.lua" <<'EOF2'
local mt = require "moontun"
local NAMES = { ["172.31.1.2"] = "branch-b", ["172.31.2.2"] = "branch-c" }
return {
    start = function()
        assert(mt.route("10.77.2.0/24", "branch-c")) -- by name: branch-c has not connected yet
    end,
    ingress = function(pkt, peer)
        peer.name = NAMES[peer.host] or peer.name
        local udp = pkt.udp
        if udp and udp.dport == 7777 then
            mt.log("removed: %s", tostring(mt.route("10.77.2.0/24", nil)))
            return mt.DROP
        elseif udp and udp.dport == 9999 then
            error("broken on purpose")
        end
    end,
}
EOF2
mt_start s "$NS_S" -i mt0 -s --udp --addr 10.9.0.1/24 -S "$MT_TMP/routes.lua"
mt_wait_link "$NS_S" mt0
mt_start b "$NS_B" -i mt0 -c 172.31.1.1 --udp --addr 10.9.0.2/24
mt_start c "$NS_C" -i mt0 -c 172.31.2.1 --udp --addr 10.9.0.3/24 --addr 10.77.2.5/32
mt_wait_link "$NS_B" mt0
mt_wait_link "$NS_C" mt0
ip -n "$NS_S" route add 10.77.2.0/24 dev mt0
ip -n "$NS_B" route add 10.77.2.0/24 dev mt0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "B cannot reach the server"
mt_wait_ping "$NS_C" 10.9.0.1 || mt_fail "C cannot reach the server"

ip netns exec "$NS_C" timeout 20 python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.77.2.5", 6000))
while True:
    print(s.recv(100).decode(), flush=True)' >"$MT_TMP/c.out" &
MT_PIDS+=($!)
sleep 0.3
send() { # NS DST PORT TEXT
    ip netns exec "$1" python3 -c "import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))" "$2" "$3" "$4"
}
got() { sleep 0.5; grep -qx "$1" "$MT_TMP/c.out"; }

send "$NS_S" 10.77.2.5 6000 from-server
got from-server || mt_fail "the server's packet to 10.77.2.5 did not reach C by mt.route"
send "$NS_B" 10.77.2.5 6000 from-b
got from-b || mt_fail "B's packet to 10.77.2.5 did not reach C (client to client) by mt.route"
mt_pass "mt.route by name: server egress and client-to-client packets to 10.77.2.0/24 reach C"

send "$NS_B" 10.9.0.1 7777 remove
mt_wait_log s 'removed: true'
send "$NS_S" 10.77.2.5 6000 after-server
send "$NS_B" 10.77.2.5 6000 after-b
got after-server && mt_fail "the server's packet reached C after the route was removed"
got after-b && mt_fail "B's packet reached C after the route was removed"
mt_pass "mt.route(prefix, nil) removes it: neither path reaches C any more"

send "$NS_B" 10.9.0.1 9999 fail
mt_wait_log s 'broken on purpose'
kill "$PID_c"
wait "$PID_c"
mt_wait_log s 'peer branch-c \(172\.31\.2\.2:[0-9]+\) down'
mt_pass "the core names a peer a script named: $(grep -o 'peer branch-c ([^)]*) down' "$MT_TMP/s.log")"
kill "$PID_s" "$PID_b"
wait "$PID_s"
summary=$(grep 'stopped:' "$MT_TMP/s.log")
# One drop: the removal packet (DROP). The failed packet is an error, not also a drop.
[[ $summary == *"script drops 1,"* && $summary == *"script errors 1 "* ]] ||
    mt_fail "counts: $summary"
mt_pass "a failure's drop counted once, as an error: $(grep -o 'script drops [0-9]*' <<<"$summary"), $(grep -o 'script errors [0-9]*' <<<"$summary")"
