#!/usr/bin/env bash
# bench.sh: moontun side by side with OpenVPN, on one machine, in one run.
#
# WHAT IT MEASURES
#   Two network namespaces A (172.31.0.1) and B (172.31.0.2) joined by a veth pair (MTU 1500).
#   Each tunnel in turn is set up between them (tunnel MTU 1400 everywhere, A = 10.9.0.1 is the
#   server, B = 10.9.0.2 the client) and measured from B towards A:
#     underlay            the veth itself, no tunnel: the ceiling
#     mt-udp, mt-tcp      moontun over UDP / TCP, no script
#     mt-*-fw             + examples/firewall.lua on A (the side receiving the iperf3
#                         connections), allow=tcp/5201,udp/5201,icmp
#     mt-*-nat            + examples/nat.lua on B, inside=192.168.77.0/24 public=10.9.0.2: the
#                         traffic comes from 192.168.77.1 (on B's loopback) and A has no
#                         route back to it, so every packet is really translated (NAT active)
#     ovpn-udp, ovpn-tcp  OpenVPN 2.6 point-to-point, no TLS and no keys:
#                         --dev tun --ifconfig A B --cipher none --auth none --disable-dco
#     mt-wg, mt-wg-fw     moontun --wg to moontun --wg (WireGuard, fresh keys per run), no
#                         script / + examples/firewall.lua on A as above
#     wireguard-go        Debian's wireguard-go on both ends, configured with wg setconf
#     openvpn-gcm         OpenVPN 2.6 point-to-point over UDP with TLS (self-signed EC
#                         certificates, --peer-fingerprint) and --data-ciphers AES-256-GCM
#   For every row:
#     - single-stream TCP throughput: iperf3 -t 5 -J, one run per round (3 rounds): median and
#       min-max, in Mbit/s (receiver side);
#     - the tunnel processes' CPU seconds during each of those runs (utime+stime from
#       /proc/PID/stat, both ends summed, / CLK_TCK) → Mbit per tunnel-CPU-second;
#     - CPU microseconds per packet at a fixed, unsaturated 20 kpps of 64-byte UDP
#       (iperf3 -u -l 64 -b 10.24M -t 5): tunnel CPU seconds / packets received;
#     - ping RTT median and p99 (200 pings, 10 ms apart, all rounds pooled).
#   Rows are measured in turn, the order reversed on every other round so that slow drift of
#   the machine (other load, thermal) does not favour one row. Every row is compared with
#   OpenVPN-UDP as measured in the same run: throughput ratio, Mbit/CPU-s ratio, µs/packet
#   ratio (lower is better) and RTT median delta.
#   At the end it runs build-release/bench_hook (the Lua hook micro-benchmark) and includes
#   its table.
#
# HOW TO RUN (as root, on Debian 12, from a clone of this repository)
#   scripts/bench.sh            full run: every row, 3 rounds (under 15 minutes; the 9 rows
#                               before the WireGuard ones took under 10)
#   scripts/bench.sh --quick    one short round (-t 2, 1 run) of mt-udp-fw and ovpn-udp only
#                               (under 2 minutes)
#   scripts/bench.sh --scale    a UDP server with 10, 1,000 and 10,000 peers answering one
#                               burst each: loss, time and server CPU per packet
#                               (scripts/bench_peers.sh; BENCH_PEERS chooses the counts)
#   It installs what it needs (scripts/setup.sh, then iperf3, openvpn, python3, procps with
#   apt-get when missing), builds moontun in Release into build-release/, prints a table and
#   writes the same figures to build-release/bench-<date>.json (the path is printed at the
#   end). Namespaces, devices and every process it started are removed on any exit.
#   Environment: BENCH_ROWS="ROW ..." (these rows only, e.g. "mt-wg mt-wg-fw wireguard-go
#   openvpn-gcm"; the time guards follow the number of rows), BENCH_ROUNDS=N (1-9, default 3;
#   1 with --quick), BENCH_HOOK_N=N (packets per bench_hook run, default 300000; 100000 with
#   --quick), BENCH_OUT=FILE (JSON path).
#
# Figures on a shared 2-core machine are noisy; the ratios within one run are what to read.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
START_TIME=$(date +%s)

# --- options ----------------------------------------------------------------------------------
QUICK=0
for arg in "$@"; do
    case $arg in
    --quick) QUICK=1 ;;
    --scale)
        # Per-packet CPU of a UDP server with many peers: scripts/bench_peers.sh does it.
        BENCH_PEERS=${BENCH_PEERS:-10 1000 10000} exec "$ROOT/scripts/bench_peers.sh"
        ;;
    -h | --help)
        sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench.sh: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "bench.sh: needs root (network namespaces, tun devices)" >&2
    exit 1
fi

if [ "$QUICK" -eq 1 ]; then
    ROUNDS=1 DUR=2 HOOK_N=${BENCH_HOOK_N:-100000}
    ROWS=(mt-udp-fw ovpn-udp)
else
    ROUNDS=${BENCH_ROUNDS:-3} DUR=5 HOOK_N=${BENCH_HOOK_N:-300000}
    ROWS=(underlay mt-udp mt-udp-fw mt-udp-nat mt-tcp mt-tcp-fw mt-tcp-nat ovpn-udp ovpn-tcp
        mt-wg mt-wg-fw wireguard-go openvpn-gcm)
fi
if [ -n "${BENCH_ROWS:-}" ]; then
    read -ra ROWS <<<"${BENCH_ROWS//,/ }"
fi
case $ROUNDS in [1-9]) ;; *)
    echo "bench.sh: BENCH_ROUNDS must be 1-9" >&2
    exit 2
    ;;
esac
# Time guards, in seconds since the start (9 rows must end under 10 minutes, resp. 2 rows
# under 2 with --quick, build and bench_hook included; a row takes about 19 s on 2 busy
# cores, and every row past those adds 60 s, resp. 40 s): after
# SOFT_DEADLINE a row of round 2 or later gets only its TCP throughput run (UDP and ping are
# skipped, noted); after DEADLINE no row is started (noted as a problem).
if [ "$QUICK" -eq 1 ]; then
    SOFT_DEADLINE=80 DEADLINE=90
    if [ ${#ROWS[@]} -gt 2 ]; then
        SOFT_DEADLINE=$((SOFT_DEADLINE + 40 * (${#ROWS[@]} - 2)))
        DEADLINE=$((DEADLINE + 40 * (${#ROWS[@]} - 2)))
    fi
else
    SOFT_DEADLINE=480 DEADLINE=545
    if [ ${#ROWS[@]} -gt 9 ]; then
        SOFT_DEADLINE=$((SOFT_DEADLINE + 60 * (${#ROWS[@]} - 9)))
        DEADLINE=$((DEADLINE + 60 * (${#ROWS[@]} - 9)))
    fi
fi

PPS=20000                       # packets per second of the per-packet CPU test
PKT_LEN=64                      # UDP payload bytes
UDP_RATE=$((PPS * PKT_LEN * 8)) # iperf3 -b counts payload bits: 10.24 Mbit/s
PINGS=200
IPERF_PORT=5201
MT_PORT=55555
OVPN_PORT=1194
TUN_MTU=1400
NAT_SRC=192.168.77.1 # the "LAN" address on B whose traffic nat.lua translates
FW_SCRIPT=$ROOT/examples/firewall.lua
NAT_SCRIPT=$ROOT/examples/nat.lua
FW_SETTINGS="allow=tcp/$IPERF_PORT,udp/$IPERF_PORT,icmp"
NAT_SETTINGS="inside=192.168.77.0/24 public=10.9.0.2"
OVPN_COMMON=(--dev tun --cipher none --auth none --disable-dco --tun-mtu "$TUN_MTU" --verb 3)
OVPN_GCM=(--dev tun --disable-dco --tun-mtu "$TUN_MTU" --verb 3 --cipher AES-256-GCM
    --data-ciphers AES-256-GCM --dh none)
WG_PORT=51820

declare -A LABEL=(
    [underlay]="underlay (veth, no tunnel)"
    [mt-udp]="moontun UDP"
    [mt-udp-fw]="moontun UDP + firewall.lua"
    [mt-udp-nat]="moontun UDP + nat.lua"
    [mt-tcp]="moontun TCP"
    [mt-tcp-fw]="moontun TCP + firewall.lua"
    [mt-tcp-nat]="moontun TCP + nat.lua"
    [ovpn-udp]="OpenVPN UDP (no crypto)"
    [ovpn-tcp]="OpenVPN TCP (no crypto)"
    [mt-wg]="moontun WireGuard"
    [mt-wg-fw]="moontun WireGuard + firewall"
    [wireguard-go]="wireguard-go"
    [openvpn-gcm]="OpenVPN UDP AES-256-GCM"
)
for row in "${ROWS[@]}"; do
    [ -n "${LABEL[$row]:-}" ] || {
        echo "bench.sh: unknown row '$row' (BENCH_ROWS)" >&2
        exit 2
    }
done

say() { printf '\n== %s\n' "$*"; }
elapsed() { echo $(($(date +%s) - START_TIME)); }

# --- 1. dependencies --------------------------------------------------------------------------
say "dependencies"
"$ROOT/scripts/setup.sh" || exit 1
# package:file that proves it is installed (the same probe-file approach as scripts/setup.sh)
NEEDED=(
    "iperf3:/usr/bin/iperf3"
    "openvpn:/usr/sbin/openvpn"
    "python3:/usr/bin/python3"
    "procps:/usr/bin/ps"
    "iproute2:/usr/sbin/ip"
    "iputils-ping:/usr/bin/ping"
    "wireguard-go:/usr/bin/wireguard-go"
    "wireguard-tools:/usr/bin/wg"
    "openssl:/usr/bin/openssl"
)
missing=()
for entry in "${NEEDED[@]}"; do
    [ -e "${entry#*:}" ] || missing+=("${entry%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get update -qq || ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        echo "bench: apt-get install ${missing[*]} failed" >&2
        exit 1
    fi
fi
echo "bench: $(iperf3 --version | head -n1); $(openvpn --version | head -n1 | cut -d' ' -f1-2)"

# --- 2. Release build -------------------------------------------------------------------------
say "build (Release, build-release/)"
BUILD=$ROOT/build-release
"$ROOT/scripts/build.sh" "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMOONTUN_TESTS=OFF || exit 1

# --- 3. topology and cleanup ------------------------------------------------------------------
# lib.sh gives the namespaces (names carry our PID), the veth pair and the EXIT trap that kills
# the PIDs in MT_PIDS and deletes the namespaces. We add our PIDs there and take them out again
# once reaped, so the trap never signals a recycled PID.
export MOONTUN=$BUILD/moontun MT_ROOT=$ROOT
# shellcheck source=../tests/integration/lib.sh
source "$ROOT/tests/integration/lib.sh"
set +e # lib.sh may set options; failures here are recorded, not fatal

RES=$MT_TMP/results.tsv # raw results, read by the report at the end
: >"$RES"
track() { MT_PIDS+=("$1"); }
untrack() {
    local keep=() p
    for p in "${MT_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    MT_PIDS=("${keep[@]}")
}
record() { (IFS=$'\t' && echo "$*") >>"$RES"; }
problem() {
    echo "  PROBLEM [$1]: $2"
    record problem "$1" "$2"
}

say "topology"
mt_topology
ip -n "$NS_A" link set dev "$VETH_A" mtu 1500
ip -n "$NS_B" link set dev "$VETH_B" mtu 1500
# The NAT rows' "LAN" address on B, 192.168.77.1, on its loopback (the dummy module may be
# missing): traffic bound to it leaves through the tunnel and only comes back if translated.
ip -n "$NS_B" addr add "$NAT_SRC/32" dev lo
echo "  A = $NS_A (172.31.0.1), B = $NS_B (172.31.0.2), veth MTU 1500"

# Keys for the WireGuard rows (one pair per end, for moontun and wireguard-go alike) and
# self-signed certificates for openvpn-gcm, made fresh in this run's temporary directory.
wg_file() { # wg_file END: the wg(8) file of end A or B, wg-quick's Address and MTU included
    local me=$1 peer ip peer_ip
    [ "$me" = A ] && peer=B ip=10.9.0.1 peer_ip=172.31.0.2 || peer=A ip=10.9.0.2 peer_ip=172.31.0.1
    cat <<CONF
[Interface]
PrivateKey = $(cat "$MT_TMP/wg-$me.key")
ListenPort = $WG_PORT
Address = $ip/24
MTU = $TUN_MTU

[Peer]
PublicKey = $(cat "$MT_TMP/wg-$peer.pub")
AllowedIPs = ${ip%.*}.$([ "$peer" = A ] && echo 1 || echo 2)/32
Endpoint = $peer_ip:$WG_PORT
CONF
}
for end in A B; do
    "$MOONTUN" genkey >"$MT_TMP/wg-$end.key" && "$MOONTUN" pubkey <"$MT_TMP/wg-$end.key" >"$MT_TMP/wg-$end.pub"
done
for end in A B; do
    wg_file "$end" >"$MT_TMP/wg-$end.conf"
    # wg setconf takes no Address/MTU: the same file without them.
    grep -v -e '^Address' -e '^MTU' "$MT_TMP/wg-$end.conf" >"$MT_TMP/wg-$end.setconf"
    chmod 600 "$MT_TMP/wg-$end.conf" "$MT_TMP/wg-$end.setconf"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=bench-$end" -keyout "$MT_TMP/ovpn-$end.key" -out "$MT_TMP/ovpn-$end.crt" 2>/dev/null
    openssl x509 -in "$MT_TMP/ovpn-$end.crt" -noout -fingerprint -sha256 | cut -d= -f2 >"$MT_TMP/ovpn-$end.fp"
done
# wireguard-go's devices: their control sockets (/var/run/wireguard/NAME.sock) are not per
# namespace, so each end has its own name, carrying our PID.
WGGO_IF=(bwa$$ bwb$$)

# One iperf3 server in A for the whole run (restarted if a client run fails).
IPERF_PID=""
start_iperf_server() {
    if [ -n "$IPERF_PID" ]; then
        kill "$IPERF_PID" 2>/dev/null
        wait "$IPERF_PID" 2>/dev/null
        untrack "$IPERF_PID"
    fi
    ip netns exec "$NS_A" iperf3 -s -p "$IPERF_PORT" >>"$MT_TMP/iperf3-server.log" 2>&1 &
    IPERF_PID=$!
    track "$IPERF_PID"
    local i
    for i in $(seq 1 30); do
        ip netns exec "$NS_A" ss -ltn 2>/dev/null | grep -q ":$IPERF_PORT " && return 0
        sleep 0.1
    done
    echo "  iperf3 server did not start"
    return 1
}
start_iperf_server || mt_fail "no iperf3 server"

# --- 4. tunnels -------------------------------------------------------------------------------
# start_tunnel ROW ROUND: starts both ends; sets TUN_PIDS (A then B), DST (iperf3/ping target in
# A), BIND (iperf3 options for the source on B), PSRC (ping options). Returns 1 if it did not
# come up (recorded as a problem).
TUN_PIDS=()
launch() { # launch NAME NS CMD...: background process with its log; appends to TUN_PIDS
    local name=$1 ns=$2
    shift 2
    ip netns exec "$ns" "$@" >"$MT_TMP/$name.log" 2>&1 &
    # ip netns exec execs the command: $! is the tunnel process itself.
    TUN_PIDS+=($!)
    track $!
}
wait_dev() { # wait_dev NS IFNAME: up to 5 s
    local i
    for i in $(seq 1 50); do
        ip -n "$1" link show "$2" 2>/dev/null | grep -q 'UP' && return 0
        sleep 0.1
    done
    return 1
}
start_tunnel() {
    local row=$1 round=$2 sa=() sb=() tr
    TUN_PIDS=() DST=10.9.0.1 BIND=() PSRC=()
    case $row in
    underlay)
        DST=172.31.0.1
        return 0
        ;;
    mt-wg*)
        [ "$row" = mt-wg-fw ] && sa=(-S "$FW_SCRIPT $FW_SETTINGS")
        launch "$row-r$round-A" "$NS_A" "$MOONTUN" -i bt0 --wg "$MT_TMP/wg-A.conf" "${sa[@]}"
        launch "$row-r$round-B" "$NS_B" "$MOONTUN" -i bt0 --wg "$MT_TMP/wg-B.conf"
        ;;
    wireguard-go)
        local end ns dev ip
        for end in A B; do
            [ "$end" = A ] && ns=$NS_A dev=${WGGO_IF[0]} ip=10.9.0.1 || ns=$NS_B dev=${WGGO_IF[1]} ip=10.9.0.2
            launch "$row-r$round-$end" "$ns" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
                wireguard-go -f "$dev"
            for i in $(seq 1 50); do
                [ -S "/var/run/wireguard/$dev.sock" ] && break
                sleep 0.1
            done
            ip netns exec "$ns" wg setconf "$dev" "$MT_TMP/wg-$end.setconf" &&
                ip -n "$ns" addr add "$ip/24" dev "$dev" &&
                ip -n "$ns" link set dev "$dev" mtu "$TUN_MTU" up || {
                problem "$row" "round $round: wireguard-go end $end could not be configured"
                return 1
            }
        done
        ;;
    mt-*)
        case $row in mt-udp*) tr=--udp ;; *) tr=--tcp ;; esac
        case $row in
        *-fw) sa=(-S "$FW_SCRIPT $FW_SETTINGS") ;;
        *-nat)
            sb=(-S "$NAT_SCRIPT $NAT_SETTINGS")
            BIND=(-B "$NAT_SRC") PSRC=(-I "$NAT_SRC")
            ;;
        esac
        launch "$row-r$round-A" "$NS_A" "$MOONTUN" -i bt0 -s "$tr" -p "$MT_PORT" \
            --mtu "$TUN_MTU" --addr 10.9.0.1/24 "${sa[@]}"
        wait_dev "$NS_A" bt0 || {
            problem "$row" "round $round: server device never came up: $(tail -n 3 "$MT_TMP/$row-r$round-A.log" | tr '\n' ' ')"
            return 1
        }
        launch "$row-r$round-B" "$NS_B" "$MOONTUN" -i bt0 -c 172.31.0.1 "$tr" -p "$MT_PORT" \
            --mtu "$TUN_MTU" --addr 10.9.0.2/24 "${sb[@]}"
        ;;
    ovpn-*)
        local pa pb
        if [ "$row" = ovpn-udp ]; then
            pa=(--proto udp --lport "$OVPN_PORT")
            pb=(--proto udp --remote 172.31.0.1 "$OVPN_PORT")
        else
            pa=(--proto tcp-server --lport "$OVPN_PORT")
            pb=(--proto tcp-client --remote 172.31.0.1 "$OVPN_PORT" --connect-retry 1)
        fi
        launch "$row-r$round-A" "$NS_A" openvpn "${OVPN_COMMON[@]}" --ifconfig 10.9.0.1 10.9.0.2 "${pa[@]}"
        sleep 0.2
        launch "$row-r$round-B" "$NS_B" openvpn "${OVPN_COMMON[@]}" --ifconfig 10.9.0.2 10.9.0.1 "${pb[@]}"
        ;;
    openvpn-gcm)
        launch "$row-r$round-A" "$NS_A" openvpn "${OVPN_GCM[@]}" --ifconfig 10.9.0.1 10.9.0.2 \
            --proto udp --lport "$OVPN_PORT" --tls-server --cert "$MT_TMP/ovpn-A.crt" \
            --key "$MT_TMP/ovpn-A.key" --peer-fingerprint "$(cat "$MT_TMP/ovpn-B.fp")"
        sleep 0.2
        launch "$row-r$round-B" "$NS_B" openvpn "${OVPN_GCM[@]}" --ifconfig 10.9.0.2 10.9.0.1 \
            --proto udp --remote 172.31.0.1 "$OVPN_PORT" --tls-client --cert "$MT_TMP/ovpn-B.crt" \
            --key "$MT_TMP/ovpn-B.key" --peer-fingerprint "$(cat "$MT_TMP/ovpn-A.fp")"
        ;;
    esac
    # Up when a ping gets through end to end (bounded: 40 tries, about 20 s at most).
    local i
    for i in $(seq 1 40); do
        ip netns exec "$NS_B" ping -n -q -c 1 -W 0.5 "${PSRC[@]}" "$DST" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    problem "$row" "round $round: tunnel never passed a ping in 20 s"
    return 1
}
# stop_tunnel ROW ROUND: SIGTERM both ends, 5 s to exit, then SIGKILL; records how they ended.
stop_tunnel() {
    local row=$1 round=$2 pid end=A i st
    for pid in "${TUN_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${TUN_PIDS[@]}"; do
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            problem "$row" "round $round: end $end (pid $pid) still running 5 s after SIGTERM: killed"
            kill -9 "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
        st=$?
        untrack "$pid"
        [ "$st" -eq 0 ] || [ "$st" -eq 143 ] ||
            problem "$row" "round $round: end $end exited with status $st: $(tail -n 3 "$MT_TMP/$row-r$round-$end.log" | tr '\n' ' ')"
        case $row in mt-*)
            # moontun's exit summary (counters) goes into the JSON.
            record summary "$row" "$round" "$end" "$(tail -n 1 "$MT_TMP/$row-r$round-$end.log")"
            ;;
        esac
        end=B
    done
    TUN_PIDS=()
}
# alive ROW ROUND WHAT: records a problem if a tunnel process died.
alive() {
    local pid end=A ok=0
    for pid in "${TUN_PIDS[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            problem "$1" "round $2: end $end (pid $pid) died during $3: $(tail -n 3 "$MT_TMP/$1-r$2-$end.log" | tr '\n' ' ')"
            ok=1
        fi
        end=B
    done
    return $ok
}

# --- 5. measurements --------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID...: utime+stime of the processes (all their threads), in clock ticks.
cpu_ticks() {
    local t=0 p line f
    for p in "$@"; do
        read -r line <"/proc/$p/stat" 2>/dev/null || {
            echo NA
            return
        }
        # Fields after "(comm)": state is field 3, utime 14 and stime 15.
        read -ra f <<<"${line##*) }"
        t=$((t + f[11] + f[12]))
    done
    echo "$t"
}
# jget FILE EXPR: evaluates a Python expression over the iperf3 JSON `d` (for progress lines).
jget() {
    python3 -c 'import json,sys
try:
    d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))
except Exception:
    print("NA")' "$1" "$2"
}

# iperf_run ROW ROUND KIND OPTIONS...: one iperf3 client run from B to $DST with the tunnel CPU
# it took; KIND is tput or pps. Returns 1 if a tunnel process died meanwhile.
iperf_run() {
    local row=$1 round=$2 kind=$3 base=$MT_TMP/$1-r$2 t0 t1 cpu=NA rc
    shift 3
    t0=$(cpu_ticks "${TUN_PIDS[@]}")
    timeout $((DUR + 20)) ip netns exec "$NS_B" iperf3 -c "$DST" -p "$IPERF_PORT" -t "$DUR" -J \
        --connect-timeout 5000 "${BIND[@]}" "$@" >"$base-$kind.json" 2>"$base-$kind.err"
    rc=$?
    t1=$(cpu_ticks "${TUN_PIDS[@]}")
    # No tunnel processes (underlay): no CPU figure.
    [ ${#TUN_PIDS[@]} -gt 0 ] && [ "$t0" != NA ] && [ "$t1" != NA ] && cpu=$((t1 - t0))
    record "$kind" "$row" "$round" "$base-$kind.json" "$cpu"
    eval "CPU_$kind=$cpu"
    if [ "$rc" -ne 0 ]; then
        problem "$row" "round $round: iperf3 $kind run failed (status $rc$([ "$rc" = 124 ] && echo ', timed out: stall'))"
        start_iperf_server
    fi
    alive "$row" "$round" "the iperf3 $kind run"
}

# measure_row ROW ROUND: tunnel up, TCP throughput, UDP at 20 kpps, ping, tunnel down.
measure_row() {
    local row=$1 round=$2 base=$MT_TMP/$1-r$2 out mbit pk
    CPU_tput=NA CPU_pps=NA
    start_tunnel "$row" "$round" || {
        stop_tunnel "$row" "$round"
        return
    }
    # 1. Single-stream TCP throughput and the tunnel CPU it took.
    iperf_run "$row" "$round" tput || {
        stop_tunnel "$row" "$round"
        return
    }
    if [ "$round" -gt 1 ] && [ "$(elapsed)" -ge "$SOFT_DEADLINE" ]; then
        record note "$row" "round $round: UDP and ping not measured (time guard, ${SOFT_DEADLINE}s)"
    else
        # 2. 20 kpps of 64-byte UDP: tunnel CPU per packet received.
        iperf_run "$row" "$round" pps -u -l "$PKT_LEN" -b "$UDP_RATE" || {
            stop_tunnel "$row" "$round"
            return
        }
        # 3. Ping RTT: 200 echo requests 10 ms apart (root may go below 200 ms).
        ip netns exec "$NS_B" ping -n -c "$PINGS" -i 0.01 -W 1 "${PSRC[@]}" "$DST" >"$base-ping.txt" 2>&1
        record rtt "$row" "$round" "$base-ping.txt"
        alive "$row" "$round" "the ping run"
    fi

    # One progress line.
    mbit=$(jget "$base-tput.json" "round(d['end']['sum_received']['bits_per_second']/1e6)")
    pk=$(jget "$base-pps.json" "d['end']['sum_received']['packets']-d['end']['sum_received']['lost_packets']")
    out=$(awk -v m="$mbit" -v c="$CPU_tput" -v p="$pk" -v c2="$CPU_pps" -v hz="$CLK_TCK" -v d="$DUR" 'BEGIN {
        s = sprintf("%s Mbit/s", m)
        if (c != "NA" && c > 0 && m != "NA") s = s sprintf(", %.2f CPU-s (%.0f Mbit/CPU-s)", c / hz, m * d / (c / hz))
        if (p != "NA") s = s sprintf("; %s UDP packets", p)
        if (c2 != "NA" && p != "NA" && p > 0) s = s sprintf(", %.2f us CPU/packet", c2 / hz * 1e6 / p)
        print s }')
    out="$out$(grep -so 'rtt.*' "$base-ping.txt" | head -n1 | sed 's/^/; /')"
    printf '  [round %d, %3ss] %-28s %s\n' "$round" "$(elapsed)" "${LABEL[$row]}:" "$out"
    stop_tunnel "$row" "$round"
}

# Rows whose example script does not exist yet are skipped (with a note in the table).
ACTIVE=()
for row in "${ROWS[@]}"; do
    case $row in
    *-fw) script=$FW_SCRIPT ;;
    *-nat) script=$NAT_SCRIPT ;;
    *) script="" ;;
    esac
    if [ -n "$script" ] && [ ! -f "$script" ]; then
        record note "$row" "skipped: ${script#"$ROOT"/} does not exist"
        echo "  skipping ${LABEL[$row]}: ${script#"$ROOT"/} does not exist"
    else
        ACTIVE+=("$row")
    fi
done
record note mt-udp-nat "NAT active: nat.lua on B ($NAT_SETTINGS), traffic sourced from $NAT_SRC (on B's loopback); A has no route to it"
record note mt-tcp-nat "NAT active: nat.lua on B ($NAT_SETTINGS), traffic sourced from $NAT_SRC (on B's loopback); A has no route to it"
record note mt-udp-fw "firewall.lua on A (server, iperf3 receiver): $FW_SETTINGS"
record note mt-tcp-fw "firewall.lua on A (server, iperf3 receiver): $FW_SETTINGS"
record note mt-wg-fw "firewall.lua on A (iperf3 receiver): $FW_SETTINGS"

say "measuring: ${#ACTIVE[@]} rows x $ROUNDS round(s), iperf3 -t $DUR, $PPS pps x $PKT_LEN B UDP, $PINGS pings"
for round in $(seq 1 "$ROUNDS"); do
    order=("${ACTIVE[@]}")
    if [ $((round % 2)) -eq 0 ]; then # even rounds go backwards
        order=()
        for ((i = ${#ACTIVE[@]} - 1; i >= 0; i--)); do order+=("${ACTIVE[i]}"); done
    fi
    for row in "${order[@]}"; do
        if [ "$(elapsed)" -ge "$DEADLINE" ]; then
            problem "$row" "round $round: not measured, time guard (${DEADLINE}s) reached"
            continue
        fi
        measure_row "$row" "$round"
    done
done

# --- 6. the hook micro-benchmark -----------------------------------------------------------------
HOOK_OUT=$MT_TMP/bench_hook.txt
: >"$HOOK_OUT"
if [ -x "$BUILD/bench_hook" ]; then
    say "bench_hook -n $HOOK_N (ns per packet in the Lua hook, no device)"
    MOONTUN_SOURCE_DIR=$ROOT timeout 300 "$BUILD/bench_hook" -n "$HOOK_N" >"$HOOK_OUT" 2>&1 ||
        echo "(bench_hook exited with status $?)" >>"$HOOK_OUT"
else
    echo "(build-release/bench_hook was not built)" >"$HOOK_OUT"
fi

# --- 7. report: table and JSON ---------------------------------------------------------------
STAMP=$(date -u +%Y%m%d-%H%M%S)
if [ -n "${BENCH_OUT:-}" ]; then
    JSON=$BENCH_OUT
elif [ "$QUICK" -eq 1 ]; then
    JSON=$BUILD/bench-quick-$STAMP.json
else
    JSON=$BUILD/bench-$STAMP.json
fi
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
say "results"
for row in "${ROWS[@]}"; do record row "$row" "${LABEL[$row]}"; done
BENCH_MODE=$([ "$QUICK" -eq 1 ] && echo quick || echo full) \
    BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC') BENCH_CPU=$CPU_MODEL BENCH_NPROC=$(nproc) \
    BENCH_KERNEL=$(uname -r) BENCH_CLK_TCK=$CLK_TCK BENCH_DUR=$DUR BENCH_ROUNDS=$ROUNDS \
    BENCH_PPS=$PPS BENCH_PKT_LEN=$PKT_LEN BENCH_PINGS=$PINGS BENCH_TUN_MTU=$TUN_MTU \
    BENCH_ELAPSED=$(elapsed) BENCH_HOOK_FILE=$HOOK_OUT BENCH_HOOK_N=$HOOK_N \
    BENCH_OVPN_FLAGS="${OVPN_COMMON[*]} --ifconfig LOCAL REMOTE (udp: --proto udp --lport/--remote; tcp: --proto tcp-server / tcp-client)" \
    BENCH_VERSIONS="$("$MOONTUN" -V 2>&1 | head -n1) (tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)); $(iperf3 --version | head -n1); $(openvpn --version | head -n1 | cut -d' ' -f1-2)" \
    python3 "$ROOT/scripts/bench_report.py" "$RES" "$JSON"

echo
echo "JSON: $JSON"
echo "total time: $(elapsed) s"
