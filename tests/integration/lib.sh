# Shared by the integration tests: namespaces joined by veth, moontun processes in them, and
# cleanup that runs on every exit (success, failure, signal). Source it; then call
# mt_topology. Names carry the PID so two runs never collide.
set -u

MT_ROOT=${MT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
MOONTUN=${MOONTUN:-$MT_ROOT/build/moontun}
MT_TAG=${MT_TAG:-$$}
MT_TMP=$(mktemp -d "/tmp/moontun-test.XXXXXX")
MT_PIDS=()
MT_FAILED=0
MT_TEST_NAME=${MT_TEST_NAME:-$(basename "$0" .sh)}

mt_cleanup() {
    local pid ns
    for pid in "${MT_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${MT_PIDS[@]}"; do
        # Give each a moment to exit cleanly, then insist.
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    # Namespaces are recorded in a file: mt_ns runs in $(...) subshells, whose variables die.
    for ns in $(cat "$MT_TMP/namespaces" 2>/dev/null); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    # A sanitizer report in any moontun log fails the test, even if its checks passed.
    if grep -lE 'AddressSanitizer|LeakSanitizer|runtime error:' "$MT_TMP"/*.log 2>/dev/null; then
        echo "  FAIL: sanitizer report in the logs above"
        MT_FAILED=1
    fi
    if [ "$MT_FAILED" -ne 0 ] || [ -n "${MT_KEEP_LOGS:-}" ]; then
        for f in "$MT_TMP"/*.log; do
            [ -f "$f" ] || continue
            echo "---- $f (last 30 lines)"
            tail -n 30 "$f"
        done
    fi
    rm -rf "$MT_TMP"
    [ "$MT_FAILED" -eq 0 ] || exit 1
}
trap mt_cleanup EXIT
trap 'exit 130' INT TERM

mt_log() { printf '  %s\n' "$*"; }
mt_pass() { printf '  ok: %s\n' "$*"; }
mt_fail() {
    printf '  FAIL: %s\n' "$*"
    MT_FAILED=1
    exit 1
}

# mt_ns NAME: creates namespace ${NAME}${MT_TAG} with loopback up; prints the full name.
mt_ns() {
    local ns="mt${1}${MT_TAG}"
    ip netns add "$ns" || mt_fail "cannot create namespace $ns"
    echo "$ns" >>"$MT_TMP/namespaces"
    ip -n "$ns" link set lo up
    echo "$ns"
}

# mt_veth NS1 ADDR1 NS2 ADDR2: joins two namespaces with a veth pair (addresses with prefix).
mt_veth() {
    local a="v${MT_TAG}a$RANDOM" b="v${MT_TAG}b$RANDOM"
    a=${a:0:15}
    b=${b:0:15}
    ip link add "$a" netns "$1" type veth peer name "$b" netns "$3" || mt_fail "veth"
    ip -n "$1" addr add "$2" dev "$a"
    ip -n "$3" addr add "$4" dev "$b"
    ip -n "$1" link set "$a" up
    ip -n "$3" link set "$b" up
    echo "$a $b"
}

# mt_topology: two hosts, A (server side, 172.31.0.1) and B (client side, 172.31.0.2).
mt_topology() {
    NS_A=$(mt_ns a)
    NS_B=$(mt_ns b)
    read -r VETH_A VETH_B < <(mt_veth "$NS_A" 172.31.0.1/24 "$NS_B" 172.31.0.2/24)
    # IPv6 addresses on tunnels must be usable at once, without duplicate detection.
    for ns in "$NS_A" "$NS_B"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
}

# mt_multihome: after mt_topology, A's veth gets a second address of each family
# (172.31.0.100 besides 172.31.0.1; fd31::100 besides fd31::1, the kernel's choice towards B)
# and B's veth fd31::2: a multihomed server whose client talks to the second address.
mt_multihome() {
    ip -n "$NS_A" addr add 172.31.0.100/24 dev "$VETH_A"
    ip -n "$NS_A" addr add fd31::1/64 dev "$VETH_A" nodad
    ip -n "$NS_A" addr add fd31::100/64 dev "$VETH_A" nodad
    ip -n "$NS_B" addr add fd31::2/64 dev "$VETH_B" nodad
    sleep 0.5
}

# mt_start NAME NS ARGS...: runs moontun in NS in the background, log in $MT_TMP/NAME.log;
# sets MT_LAST_PID.
mt_start() {
    local name=$1 ns=$2
    shift 2
    ip netns exec "$ns" "$MOONTUN" "$@" >"$MT_TMP/$name.log" 2>&1 &
    MT_LAST_PID=$!
    MT_PIDS+=("$MT_LAST_PID")
    eval "PID_$name=$MT_LAST_PID"
}

# mt_wait_link NS IFNAME [SECONDS]: waits until the device exists and is up.
mt_wait_link() {
    local i
    for i in $(seq 1 $((${3:-5} * 10))); do
        ip -n "$1" link show "$2" 2>/dev/null | grep -q 'UP' && return 0
        sleep 0.1
    done
    mt_fail "device $2 did not come up in $1"
}

# mt_pair [SERVER ARGS...] -- [CLIENT ARGS...]: the usual two ends on mt_topology's namespaces:
# server "srv" in NS_A (-i mt0 -s --addr 10.9.0.1/24) and client "cli" in NS_B (-i mt0 -c
# 172.31.0.1 --addr 10.9.0.2/24), each with the extra arguments given; waits for both links and
# the first ping from B to 10.9.0.1. Their PIDs are PID_srv and PID_cli.
mt_pair() {
    local srv=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        srv+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    mt_start srv "$NS_A" -i mt0 -s --addr 10.9.0.1/24 "${srv[@]}"
    mt_wait_link "$NS_A" mt0
    mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24 "$@"
    mt_wait_link "$NS_B" mt0
    mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "no ping through the tunnel"
}

# mt_wait_log NAME PATTERN [SECONDS]: waits until the process log matches.
mt_wait_log() {
    local i
    for i in $(seq 1 $((${3:-5} * 10))); do
        grep -qE "$2" "$MT_TMP/$1.log" 2>/dev/null && return 0
        sleep 0.1
    done
    mt_fail "log $1 never showed /$2/"
}

# mt_ping NS ADDR [COUNT]: succeeds when every ping is answered.
mt_ping() {
    ip netns exec "$1" ping -n -q -c "${3:-3}" -i 0.2 -W 2 "$2" >"$MT_TMP/ping.out" 2>&1
}

# mt_wait_ping NS ADDR [SECONDS]: waits until one ping gets through (routes, learning).
mt_wait_ping() {
    local i
    for i in $(seq 1 $((${3:-10} * 2))); do
        ip netns exec "$1" ping -n -q -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# mt_transfer SRC_NS DST_NS DST_ADDR MIB [PORT [RATE]]: sends MIB MiB of random bytes over TCP from
# SRC to DST through whatever path exists; fails unless the sha256 matches. Prints seconds.
mt_transfer() {
    local src=$1 dst=$2 addr=$3 mib=$4 port=${5:-5201} rate=${6:-}
    local in="$MT_TMP/xfer.in" out="$MT_TMP/xfer.out"
    head -c "$((mib * 1024 * 1024))" /dev/urandom >"$in"
    rm -f "$out"
    ip netns exec "$dst" timeout 60 python3 "$MT_ROOT/tests/integration/tcpsink.py" \
        "${MT_SINK_ADDR:-$addr}" "$port" "$out" &
    local sink=$!
    MT_PIDS+=("$sink")
    for _ in $(seq 50); do
        ip netns exec "$dst" ss -ltn | grep -q ":$port " && break
        sleep 0.1
    done
    local t0 t1
    t0=$(date +%s.%N)
    ip netns exec "$src" timeout 60 python3 "$MT_ROOT/tests/integration/tcpsource.py" \
        "$addr" "$port" "$in" $rate || { mt_log "transfer: source failed"; return 1; }
    wait "$sink" || { mt_log "transfer: sink failed"; return 1; }
    t1=$(date +%s.%N)
    local a b
    a=$(sha256sum <"$in" | cut -d' ' -f1)
    b=$(sha256sum <"$out" | cut -d' ' -f1)
    [ "$a" = "$b" ] || { mt_log "transfer: sha256 differs ($a vs $b)"; return 1; }
    MT_XFER_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    MT_XFER_MBIT=$(awk -v s="$MT_XFER_SECONDS" -v m="$mib" 'BEGIN { printf "%.0f", m * 8.388608 / s }')
    return 0
}
