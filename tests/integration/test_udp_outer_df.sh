#!/usr/bin/env bash
# Path-MTU black hole (issue 9, fault 13): A and B talk through a router R whose link to B
# has MTU 1300, narrower than the tunnel's 1428-byte outer datagrams, and R sends no ICMP
# (its own packets are routed into a blackhole, like a firewall that filters ICMP). With the
# default --outer-df off the outer datagrams are fragmented at R and full-size inner packets
# and a TCP transfer flow both ways; with --outer-df on (DF, path-MTU discovery) the
# full-size packets towards B vanish, which shows the test really builds the black hole.
source "$(dirname "$0")/lib.sh"
NS_A=$(mt_ns a)
NS_R=$(mt_ns r)
NS_B=$(mt_ns b)
read -r VETH_A VETH_RA < <(mt_veth "$NS_A" 172.31.0.1/24 "$NS_R" 172.31.0.254/24)
read -r VETH_RB VETH_B < <(mt_veth "$NS_R" 172.31.2.254/24 "$NS_B" 172.31.2.2/24)
ip -n "$NS_R" link set "$VETH_RB" mtu 1300
ip -n "$NS_B" link set "$VETH_B" mtu 1300
ip -n "$NS_A" route add 172.31.2.0/24 via 172.31.0.254
ip -n "$NS_B" route add 172.31.0.0/24 via 172.31.2.254
ip netns exec "$NS_R" sysctl -qw net.ipv4.ip_forward=1
# Everything R itself sends (its ICMP "fragmentation needed" included) goes nowhere.
ip -n "$NS_R" rule add iif lo lookup 100 priority 100
ip -n "$NS_R" route add blackhole default table 100
ip netns exec "$NS_A" ping -c 1 -W 2 172.31.2.2 >/dev/null || mt_fail "underlay not routed"

for df in default on; do
    opt=()
    [ "$df" = on ] && opt=(--outer-df on)
    mt_start "srv_$df" "$NS_A" -i mts -s --udp --addr 10.9.0.1/24 "${opt[@]}"
    mt_wait_link "$NS_A" mts
    mt_start "cli_$df" "$NS_B" -i mtc -c 172.31.0.1 --udp --addr 10.9.0.2/24 "${opt[@]}"
    mt_wait_link "$NS_B" mtc
    mt_wait_ping "$NS_B" 10.9.0.1 10 || mt_fail "$df: no tunnel at all"
    # 1372 bytes of ICMP data: a 1400-byte inner packet, a 1428-byte outer datagram.
    if ip netns exec "$NS_B" ping -n -q -c 3 -i 0.2 -W 2 -s 1372 -M do 10.9.0.1 >/dev/null 2>&1; then
        full=ok
    else
        full=lost
    fi
    if [ "$df" = default ]; then
        [ "$full" = ok ] || mt_fail "default (--outer-df off): full-size packets lost on the narrow path"
        mt_transfer "$NS_B" "$NS_A" 10.9.0.1 2 || mt_fail "default: TCP B->A stalled"
        mt_transfer "$NS_A" "$NS_B" 10.9.0.2 2 || mt_fail "default: TCP A->B stalled"
        mt_pass "--outer-df off (default): full-size pings and 2 MiB TCP each way cross a 1300-byte hop without ICMP"
    else
        [ "$full" = lost ] || mt_fail "--outer-df on: full-size packets got through, so the test builds no black hole"
        mt_pass "--outer-df on: full-size packets vanish on the same path (the black hole the default avoids)"
    fi
    eval "kill \$PID_srv_$df \$PID_cli_$df; wait \$PID_srv_$df \$PID_cli_$df"
done
