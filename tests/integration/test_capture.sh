#!/usr/bin/env bash
# moontun capture: a live pcapng capture with verdicts from a running tunnel. The server runs
# examples/firewall.lua (tcp/5201 and icmp allowed); while B tries refused ports and does
# allowed traffic, `capture --verdict drop` holds exactly the refused packets, each with a
# comment naming firewall.lua and verdict drop, read back by tshark; --filter limits what is
# captured and a bad filter is one line; -w - pipes into `tshark -r -`; -c ends by itself;
# Ctrl-C leaves a valid file; a client that never reads loses captured packets (counted in
# moontun show) but no tunnel packet; a client killed mid-stream leaves the tunnel working.
. "$(dirname "$0")/lib.sh"
command -v tshark >/dev/null || mt_fail "tshark is missing (scripts/setup.sh --test installs it)"
mt_topology
FW="$MT_ROOT/examples/firewall.lua"
SOCK=/run/moontun/mt0@$NS_A.sock
A() { ip netns exec "$NS_A" "$@"; }
fields() { tshark -r "$1" -T fields -E separator="|" -e frame.comment -e tcp.dstport -e icmp.type 2>/dev/null; }
# B knocks on a port the firewall refuses: the SYN and its retransmissions are dropped.
knock() { ip netns exec "$NS_B" timeout 3 bash -c "exec 3<>/dev/tcp/10.9.0.1/$1" 2>/dev/null; }
capture_bg() { # NAME ARGS...: a capture client in A, stderr in $MT_TMP/NAME.err
    local name=$1
    shift
    ip netns exec "$NS_A" "$MOONTUN" capture mt0 "$@" 2>"$MT_TMP/$name.err" & # not A: $! is it
    MT_PIDS+=($!)
    eval "CAP_$name=$!"
}
wait_captures() { # N: until show lists N running captures
    for _ in $(seq 50); do
        [ "$(A "$MOONTUN" show mt0 | grep -c '^capture:')" -eq "$1" ] && return 0
        sleep 0.1
    done
    mt_fail "show never listed $1 captures: $(A "$MOONTUN" show mt0 | grep -A3 '^capture:')"
}

mt_pair -S "$FW allow=tcp/5201,icmp" --
ip netns exec "$NS_A" timeout 20 python3 -c 'import socket,time; s=socket.socket(); s.bind(("0.0.0.0",5202)); s.listen(); time.sleep(20)' &
MT_PIDS+=($!)

# 1. --verdict drop while B knocks on 5202 and pings and sends 1 MiB to 5201 (allowed).
capture_bg drop --verdict drop -w "$MT_TMP/drop.pcapng"
wait_captures 1
A "$MOONTUN" show mt0 | grep -A1 '^capture: device-in device-out net-in net-out' |
    grep -q 'verdicts: drop' || mt_fail "show: $(A "$MOONTUN" show mt0 | grep -A3 '^capture:')"
A "$MOONTUN" show mt0 --json | python3 -c '
import json, sys
c = json.load(sys.stdin)["captures"]
assert len(c) == 1 and c[0]["verdicts"] == ["drop"] and len(c[0]["points"]) == 4, c
assert c[0]["filter"] == "" and c[0]["lost"] == 0, c' || mt_fail "show --json: captures"
knock 5202 && mt_fail "B connected to the refused port 5202"
mt_ping "$NS_B" 10.9.0.1 3 || mt_fail "pings lost"
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 1 5201 || mt_fail "transfer to the allowed 5201"
kill -INT "$CAP_drop"
wait "$CAP_drop" || mt_fail "capture client exit status $? after SIGINT: $(cat "$MT_TMP/drop.err")"
# the closing statistics block came (else the line says the tunnel ended the capture)
grep -qE '^moontun capture: [1-9][0-9]* packets captured, 0 lost \(slow reader\)$' "$MT_TMP/drop.err" ||
    mt_fail "end line: $(cat "$MT_TMP/drop.err")"
fields "$MT_TMP/drop.pcapng" >"$MT_TMP/drop.txt" || mt_fail "tshark cannot read the capture"
n=$(grep -c '|5202|' "$MT_TMP/drop.txt")
[ "$n" -ge 2 ] || mt_fail "expected the SYN to 5202 and a retransmission, got: $(cat "$MT_TMP/drop.txt")"
grep '|5202|' "$MT_TMP/drop.txt" | grep -v \
    '^point=net-in peer=172.31.0.2:[0-9]* script=firewall.lua:[0-9]* handler=ingress verdict=drop|' &&
    mt_fail "a 5202 packet with another comment"
grep -qE '\|5201\||\|8$|\|0$' "$MT_TMP/drop.txt" && mt_fail "allowed packets captured: $(cat "$MT_TMP/drop.txt")"
[ "$(wc -l <"$MT_TMP/drop.txt")" -eq "$n" ] || mt_fail "other packets: $(cat "$MT_TMP/drop.txt")"
tshark -r "$MT_TMP/drop.pcapng" -T fields -e frame.protocols -c 1 2>/dev/null | grep -q '^raw:ip:tcp' ||
    mt_fail "not raw IP: $(tshark -r "$MT_TMP/drop.pcapng" -T fields -e frame.protocols -c 1)"
mt_pass "--verdict drop: $n packets to 5202, none of the 1 MiB to 5201 or the pings; $(head -1 "$MT_TMP/drop.txt" | cut -d'|' -f1); $(cat "$MT_TMP/drop.err")"

# 2. --filter: only tcp port 5203 (also refused) while B knocks on 5202 and 5203; -c 2 ends it.
capture_bg filt --filter "tcp port 5203" -c 2 -w "$MT_TMP/filt.pcapng"
wait_captures 1
knock 5202
knock 5203
for _ in $(seq 50); do kill -0 "$CAP_filt" 2>/dev/null || break; sleep 0.1; done
wait "$CAP_filt" || mt_fail "-c 2: exit status $?: $(cat "$MT_TMP/filt.err")"
fields "$MT_TMP/filt.pcapng" >"$MT_TMP/filt.txt" || mt_fail "tshark cannot read the filtered capture"
[ "$(wc -l <"$MT_TMP/filt.txt")" -eq 2 ] && [ "$(grep -c '|5203|' "$MT_TMP/filt.txt")" -eq 2 ] ||
    mt_fail "--filter 'tcp port 5203' -c 2: $(cat "$MT_TMP/filt.txt")"
out=$(A "$MOONTUN" capture mt0 --filter "tcp port nope" -w "$MT_TMP/bad.pcapng" 2>&1) &&
    mt_fail "a bad filter was accepted"
[ "$(echo "$out" | wc -l)" -eq 1 ] && [[ $out == *"bad filter 'tcp port nope'"* ]] ||
    mt_fail "bad filter said: $out"
mt_pass "--filter 'tcp port 5203' -c 2: 2 packets, all to 5203; a bad filter: $out"

# 3. -w - into tshark -r -: three pings' packets as they arrive from the peer.
ip netns exec "$NS_A" bash -c "'$MOONTUN' capture mt0 --point net-in -c 3 --filter icmp -w - 2>'$MT_TMP/pipe.err' |
    tshark -r - -T fields -e frame.comment -e icmp.type >'$MT_TMP/pipe.txt' 2>/dev/null" &
PIPE=$!
MT_PIDS+=($PIPE)
wait_captures 1
mt_ping "$NS_B" 10.9.0.1 3 || mt_fail "pings lost"
wait "$PIPE" || mt_fail "capture | tshark failed: $(cat "$MT_TMP/pipe.err")"
[ "$(grep -c $'^point=net-in peer=172.31.0.2:[0-9]* verdict=pass\t8$' "$MT_TMP/pipe.txt")" -eq 3 ] ||
    mt_fail "-w - | tshark -r -: $(cat "$MT_TMP/pipe.txt")"
mt_pass "-w - | tshark -r -: 3 echo requests, point=net-in verdict=pass"

# 4. A client that never reads: its buffer fills, captured packets are lost and counted, the
#    tunnel carries 8 MiB intact; then it is killed mid-stream and costs nothing.
ip netns exec "$NS_A" python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b"capture all any 0\n"); time.sleep(60)' "$SOCK" &
SLOW=$!
MT_PIDS+=($SLOW)
wait_captures 1
mt_transfer "$NS_B" "$NS_A" 10.9.0.1 8 5201 || mt_fail "transfer under a capture that never reads"
lost=$(A "$MOONTUN" show mt0 | sed -n 's/.*lost (slow reader): \([0-9]*\).*/\1/p')
[ "${lost:-0}" -gt 0 ] || mt_fail "no loss counted: $(A "$MOONTUN" show mt0 | grep -A3 '^capture:')"
kill -9 "$SLOW"
wait "$SLOW" 2>/dev/null
mt_pass "a reader that never reads: 8 MiB through the tunnel intact, $lost captured packets lost"
capture_bg killed -w "$MT_TMP/killed.pcapng"
wait_captures 1
mt_ping "$NS_B" 10.9.0.1 3 || mt_fail "pings lost"
kill -9 "$CAP_killed"
wait "$CAP_killed" 2>/dev/null
mt_ping "$NS_B" 10.9.0.1 5 || mt_fail "pings lost after a capture client was killed"
wait_captures 0
tshark -r "$MT_TMP/killed.pcapng" >/dev/null 2>&1 || mt_fail "the killed client's file is not readable"
mt_pass "capture clients killed mid-stream: removed, pings go on, the file so far reads"
kill "$PID_srv" "$PID_cli"
wait "$PID_srv" || mt_fail "server exit status $?"
wait "$PID_cli"

# 5. tap: Ethernet frames, linktype 1; the echo requests' fate on the device side of the
#    client (device-in, routed to its one peer, the server).
mt_pair -a -- -a
ip netns exec "$NS_B" "$MOONTUN" capture mt0 --point device-in --filter icmp -c 2 \
    -w "$MT_TMP/tap.pcapng" 2>"$MT_TMP/tap.err" &
TAP=$!
MT_PIDS+=($TAP)
for _ in $(seq 50); do
    ip netns exec "$NS_B" "$MOONTUN" show mt0 | grep -q '^capture:' && break
    sleep 0.1
done
mt_ping "$NS_B" 10.9.0.1 2 || mt_fail "tap: pings lost"
wait "$TAP" || mt_fail "tap capture: exit status $?: $(cat "$MT_TMP/tap.err")"
tshark -r "$MT_TMP/tap.pcapng" -T fields -e frame.protocols -e frame.comment 2>/dev/null \
    >"$MT_TMP/tap.txt" || mt_fail "tshark cannot read the tap capture"
[ "$(grep -c $'^eth:ethertype:ip:icmp:data\tpoint=device-in peer=172.31.0.1:55555 verdict=pass$' \
    "$MT_TMP/tap.txt")" -eq 2 ] || mt_fail "tap capture: $(cat "$MT_TMP/tap.txt")"
mt_pass "tap: 2 Ethernet frames, $(head -1 "$MT_TMP/tap.txt")"
