#!/usr/bin/env bash
# bench_peers.sh: a UDP server with thousands of peers answering one synchronized burst.
#
# WHAT IT MEASURES
#   Two namespaces A (172.31.0.1, the moontun UDP server, --addr 10.9.0.1/16, --max-peers
#   4096) and B (172.31.0.2) joined by veth. In B one Python process
#   (tests/integration/udp_peers.py) plays N peers, each on its own UDP source port speaking
#   moontun's UDP framing: every peer says hello (an empty datagram), then, at once, each
#   sends one ICMP echo request from its own inner address (10.9.0.10 + i) to 10.9.0.1. The
#   server's kernel answers each; moontun must carry every reply back to the right peer.
#   For N in 100, 1000, 3000 (a fresh server for each): requests, replies, loss % and the
#   time from the first request sent to the last reply received, and the server's CPU
#   (utime+stime from /proc/PID/stat) per packet it carried (requests + replies) during the
#   burst: the per-packet cost of a server with that many peers.
#
# HOW TO RUN (as root)
#   scripts/bench_peers.sh                  builds Release into build-release/ and runs it
#   scripts/bench_peers.sh BINARY [LABEL]   measures that moontun binary instead (e.g. an
#                                           older build, for before/after figures)
#   BENCH_PEERS="100 3000" chooses the peer counts (each 1-10000; --max-peers is set to the
#   count, at least 4096). Bounded: one burst of N datagrams per count, replies awaited 5 s at
#   most. Namespaces and processes are removed on any exit. scripts/bench.sh --scale runs it
#   with 10, 1000 and 10000 peers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -ge 1 ]; then
    bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
    label=${2:-$bin}
else
    "$root/scripts/setup.sh" >/dev/null
    "$root/scripts/build.sh" "$root/build-release" -DCMAKE_BUILD_TYPE=Release \
        -DMOONTUN_TESTS=OFF >/dev/null
    bin=$root/build-release/moontun
    label="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo tree)"
fi
[ -x "$bin" ] || { echo "bench_peers: no binary at $bin" >&2; exit 2; }

export MT_ROOT=$root MOONTUN=$bin MT_TEST_NAME=bench_peers
source "$root/tests/integration/lib.sh"
mt_topology

counts=${BENCH_PEERS:-100 1000 3000}
echo "moontun UDP server, one synchronized burst of echo requests ($label)"
printf '| %6s | %8s | %7s | %6s | %7s | %9s | %10s |\n' peers requests replies "loss %" "time s" \
    "CPU ticks" "CPU us/pkt"
printf '| %6s | %8s | %7s | %6s | %7s | %9s | %10s |\n' ------ -------- ------- ------ ------- \
    --------- ----------
cpu_ticks() { # PID: utime+stime in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
for n in $counts; do
    maxp=$((n > 4096 ? n : 4096))
    mt_start "srv$n" "$NS_A" -i mtp -s --udp --addr 10.9.0.1/16 --max-peers "$maxp" -q
    srv=$MT_LAST_PID
    mt_wait_link "$NS_A" mtp
    sleep 0.3
    t0=$(cpu_ticks "$srv")
    read -r peers reqs replies loss secs < <(ip netns exec "$NS_B" timeout 60 python3 \
        "$root/tests/integration/udp_peers.py" 172.31.0.1 55555 "$n" --wait 5)
    t1=$(cpu_ticks "$srv")
    # Hellos, requests and replies all cost the server. Ticks are 1/CLK_TCK s (10 ms): a
    # figure from a handful of ticks (a small count) is a bound, not a measurement.
    us=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v p=$((2 * n + replies)) \
        'BEGIN { printf "%.2f", p ? d * 1e6 / hz / p : 0 }')
    printf '| %6s | %8s | %7s | %6s | %7s | %9s | %10s |\n' "$peers" "$reqs" "$replies" "$loss" \
        "$secs" $((t1 - t0)) "$us"
    kill "$srv"
    wait "$srv" 2>/dev/null || true
    sleep 0.2
done
