#!/usr/bin/env bash
# Every mix of moontun and a peer that behaves as the tutorial's simpletun does
# (tests/tools/simpletun_peer.c: a real tun/tap device, connect or accept at start, every frame
# written to the device, exit on the first failed write), used as its tutorial says: start
# the program, then `ip addr add` and `ip link set up`. moontun server + simpletun client and
# simpletun server + moontun client, in tun and tap mode: pings both ways, a TCP stream.
#
# A moontun server must send a simpletun client nothing of its own: the client's device is
# still down when the connection opens, and the first frame written to it ends the program
# (moontun's offload HELLO once did). IPv6 is off in both namespaces: a kernel's link-up
# chatter (router solicitations, MLD) is such a frame too, whoever relays it; the test is
# about what moontun itself sends.
source "$(dirname "$0")/lib.sh"
ST=${SIMPLETUN_PEER:-$(dirname "$MOONTUN")/simpletun_peer}
[ -x "$ST" ] || mt_fail "simpletun_peer not built (expected at $ST)"
mt_topology
for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done

st_start() { # NAME NS ARGS...: the simpletun peer in NS, log in $MT_TMP/NAME.log
    local name=$1 ns=$2
    shift 2
    ip netns exec "$ns" "$ST" "$@" >"$MT_TMP/$name.log" 2>&1 &
    MT_LAST_PID=$!
    MT_PIDS+=("$MT_LAST_PID")
}

wait_dev() { # NS IFNAME: until the device exists
    for _ in $(seq 50); do
        ip -n "$1" link show "$2" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    mt_fail "device $2 never appeared in $1"
}

user_config() { # NS IFNAME ADDR: what the tutorial tells the user to do
    ip -n "$1" addr add "$3" dev "$2" || mt_fail "ip addr add $3 dev $2"
    ip -n "$1" link set "$2" up || mt_fail "ip link set $2 up"
}

alive() { # PID NAME
    kill -0 "$1" 2>/dev/null || {
        cat "$MT_TMP/$2.log"
        mt_fail "$2 exited: $(tail -1 "$MT_TMP/$2.log")"
    }
}

traffic() { # CASE MODE ST_PID ST_NAME ST_NS MT_NS ST_ADDR MT_ADDR
    local case=$1 mode=$2 stpid=$3 stname=$4 stns=$5 mtns=$6 staddr=$7 mtaddr=$8
    mt_wait_ping "$stns" "$mtaddr" || { alive "$stpid" "$stname"; mt_fail "$case: no ping"; }
    mt_ping "$stns" "$mtaddr" 5 || mt_fail "$case: ping simpletun side -> moontun side"
    mt_ping "$mtns" "$staddr" 5 || mt_fail "$case: ping moontun side -> simpletun side"
    local xfer=""
    if [ "$mode" = tun ]; then
        mt_transfer "$stns" "$mtns" "$mtaddr" 4 || mt_fail "$case: 4 MiB simpletun -> moontun"
        mt_transfer "$mtns" "$stns" "$staddr" 4 || mt_fail "$case: 4 MiB moontun -> simpletun"
        xfer=", 4 MiB each way sha256 ok"
    fi
    alive "$stpid" "$stname"
    mt_pass "$case: pings both ways$xfer; the simpletun peer still runs"
}

port=55600
for mode in tun tap; do
    flag=-u
    [ "$mode" = tap ] && flag=-a

    # moontun server, simpletun client: the client connects before its device is configured.
    port=$((port + 1))
    mt_start "srv_$mode" "$NS_A" -i mt0 -s "$flag" -p "$port" --addr 10.9.0.1/24
    srv=$MT_LAST_PID
    mt_wait_link "$NS_A" mt0
    st_start "stcli_$mode" "$NS_B" -i st0 "$flag" -c 172.31.0.1 -p "$port"
    stcli=$MT_LAST_PID
    mt_wait_log "srv_$mode" 'peer .* up'
    # Whatever the server sends before the user configures the device kills the client now.
    sleep 1
    alive "$stcli" "stcli_$mode"
    user_config "$NS_B" st0 10.9.0.2/24
    traffic "moontun server + simpletun client ($mode)" "$mode" "$stcli" "stcli_$mode" \
        "$NS_B" "$NS_A" 10.9.0.2 10.9.0.1
    grep -q 'offloads on' "$MT_TMP/srv_$mode.log" && mt_fail "$mode: the server switched a simpletun client"
    kill "$srv" "$stcli"
    wait "$srv" || mt_fail "$mode: server exit status"
    wait "$stcli" 2>/dev/null || true # killed: status 143

    # simpletun server, configured while it waits in accept; moontun client (its HELLO in tun
    # mode reaches the simpletun server's device, whose kernel drops it).
    port=$((port + 1))
    st_start "stsrv_$mode" "$NS_A" -i st0 "$flag" -s -p "$port"
    stsrv=$MT_LAST_PID
    wait_dev "$NS_A" st0
    user_config "$NS_A" st0 10.9.0.1/24
    mt_start "cli_$mode" "$NS_B" -i mt0 -c 172.31.0.1 "$flag" -p "$port" --addr 10.9.0.2/24
    cli=$MT_LAST_PID
    mt_wait_log "cli_$mode" 'peer .* up'
    traffic "simpletun server + moontun client ($mode)" "$mode" "$stsrv" "stsrv_$mode" \
        "$NS_A" "$NS_B" 10.9.0.1 10.9.0.2
    grep -q 'offloads on' "$MT_TMP/cli_$mode.log" && mt_fail "$mode: the client switched against simpletun"
    grep -qE 'peer .* down' "$MT_TMP/cli_$mode.log" && mt_fail "$mode: the client lost its connection"
    kill "$cli" "$stsrv"
    wait "$cli" || mt_fail "$mode: client exit status"
    wait "$stsrv" 2>/dev/null || true
done
