#!/usr/bin/env bash
# Is `moontun replay` as fast as the hook? Builds Release (build-release/), writes bench_hook's
# own packet mix as a capture of N packets (default 1,000,000), times `moontun replay -q` of it
# through a chain (default examples/firewall.lua egress, settings as bench_hook gives it), and
# runs bench_hook on the same chain and mix: both figures are printed, ns per packet in the hook,
# and the replay's wall time. A benchmark, not a test: nothing fails on a slow machine.
# Usage: scripts/bench_replay.sh [N [DIR [SCRIPT]]]   e.g. 1000000 ingress "examples/nat.lua ..."
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000000}
dir=${2:-egress}
script=${3:-"$root/examples/firewall.lua allow=tcp/22,tcp/80,icmp reject=1"}
build=$root/build-release
[[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 20000000 ] || { echo "N: 1-20000000" >&2; exit 2; }
[ "$dir" = egress ] || [ "$dir" = ingress ] || { echo "DIR: egress or ingress" >&2; exit 2; }

"$root/scripts/build.sh" "$build" -DCMAKE_BUILD_TYPE=Release -DMOONTUN_TESTS=OFF
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/bench_hook" -n "$n" --mix-pcap "$tmp/mix.pcap"
chmod 755 "$tmp"
chmod 644 "$tmp/mix.pcap"
as_user=()
[ "$(id -u)" -ne 0 ] || as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)

echo "chain: $script ($dir), $n packets of bench_hook's mix"
for round in 1 2 3; do # alternate, so both see the same load of a shared machine
    t0=$(date +%s.%N)
    line=$(timeout 600 "${as_user[@]}" "$build/moontun" replay -q --dir "$dir" -S "$script" \
        -r "$tmp/mix.pcap" | grep '^replay: [0-9]* packets')
    t1=$(date +%s.%N)
    replay_ns=$(sed -n 's/.*hook \([0-9]*\) ns\/packet.*/\1/p' <<<"$line")
    flags=(-n "$n")
    [ "$dir" = egress ] || flags+=(--ingress)
    hook=$(timeout 600 "$build/bench_hook" "${flags[@]}" "$script" | grep "| *$dir *|")
    hook_ns=$(awk -F'|' '{ gsub(/ /, "", $3); print $3 }' <<<"$hook")
    hook_range=$(awk -F'|' '{ gsub(/ /, "", $4); gsub(/ /, "", $5); print $4 "-" $5 }' <<<"$hook")
    printf 'round %d: replay %s ns/packet in the hook, %.1f s wall for %d packets; bench_hook %s ns/packet (min-max %s)\n' \
        "$round" "$replay_ns" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$n" \
        "$hook_ns" "$hook_range"
done
echo "(replay: $line)"
