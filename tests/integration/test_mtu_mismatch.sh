#!/usr/bin/env bash
# Fault: an MTU mismatch between the ends tore down TCP connections. The client's --mtu (4000)
# is larger than the server's (1400); a 3000-byte ping makes the client send a frame longer
# than the server takes. The stream is still in step, so the server skips that frame, counts
# it and logs it (rate-limited), and keeps the connection: small pings go on. Tap and tun,
# both with --no-offload (a plain peer: with offloads, moontun ends carry 64 KiB frames whole).
source "$(dirname "$0")/lib.sh"
mt_topology

for mode in tap tun; do
    if [ "$mode" = tap ]; then
        flags=(-a --no-offload)
        frame=3042 # IP 3028 + Ethernet 14
    else
        flags=(-u --no-offload)
        frame=3028
    fi
    mt_start "srv_$mode" "$NS_A" -i mt0 "${flags[@]}" -s --mtu 1400 --addr 10.9.0.1/24
    srv=$MT_LAST_PID
    mt_wait_link "$NS_A" mt0
    mt_start "cli_$mode" "$NS_B" -i mt0 "${flags[@]}" -c 172.31.0.1 --mtu 4000 --addr 10.9.0.2/24
    cli=$MT_LAST_PID
    mt_wait_link "$NS_B" mt0
    mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "$mode: tunnel not up"

    ip netns exec "$NS_B" ping -n -q -c 20 -i 0.05 -W 1 -s 3000 10.9.0.1 >"$MT_TMP/big.out" 2>&1 &&
        mt_fail "$mode: a 3000-byte ping crossed a 1400-byte tunnel"
    mt_ping "$NS_B" 10.9.0.1 5 || mt_fail "$mode: small pings after the oversized frames"
    grep -q "oversized frame length $frame" "$MT_TMP/srv_$mode.log" ||
        mt_fail "$mode: the skipped frame was not logged"
    lines=$(grep -c 'oversized frame length' "$MT_TMP/srv_$mode.log")
    [ "$lines" -le 2 ] || mt_fail "$mode: $lines log lines for 20 oversized frames (not rate-limited)"
    grep -qE 'peer .* down' "$MT_TMP/srv_$mode.log" && mt_fail "$mode: the server dropped the peer"
    grep -qE 'peer .* down' "$MT_TMP/cli_$mode.log" && mt_fail "$mode: the client lost its connection"
    kill "$srv" "$cli"
    wait "$srv" || mt_fail "$mode: server exit status"
    wait "$cli"
    bad=$(sed -nE 's/.*bad frames ([0-9]+),.*/\1/p' "$MT_TMP/srv_$mode.log")
    [ "${bad:-0}" -ge 20 ] || mt_fail "$mode: ${bad:-no} bad frames counted for 20 oversized frames"
    mt_pass "$mode: 20 frames of $frame bytes skipped and counted ($bad), logged in $lines line(s); connection and pings kept"
done
