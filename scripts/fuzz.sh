#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (tests/fuzz/fuzz_*.c) with clang into build-fuzz and runs each
# for SECONDS (default 25) from a temp copy of its committed seed corpus (tests/fuzz/corpus/),
# after replaying every saved reproducer in tests/fuzz/regressions/<fuzzer>/.
# One line per fuzzer; exit status non-zero on any crash, with the crash file's path kept
# (build-fuzz/artifacts/). Without clang: one "skipped" line and exit 0.
#
#   scripts/fuzz.sh [SECONDS]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-25}
case $secs in '' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: skipped: clang not available (apt-get install clang)"
    exit 0
fi

build="$root/build-fuzz"
blog="$build/fuzz-build.log"
echo "== fuzz: building in $build"
mkdir -p "$build"
if ! CC=clang cmake -S "$root" -B "$build" -DMOONTUN_FUZZ=ON -DMOONTUN_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$blog" 2>&1 ||
    ! cmake --build "$build" --target fuzzers -j"$(nproc)" >>"$blog" 2>&1; then
    tail -30 "$blog"
    echo "fuzz: build failed (full log: $blog)"
    exit 1
fi

tmp=$(mktemp -d /tmp/moontun-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
artifacts="$build/artifacts"

# Per fuzzer: the longest input worth trying, and extra options.
#  frame: a stream must hold a 65535-byte frame and then some; handshake: the largest
#  extended frame too, after a switch.
#  lpacket: libFuzzer's leak check runs after every input that mallocs more than it frees,
#  which a long-lived Lua state does all the time (its GC frees later); it would halve the
#  speed and prove nothing about the binding, which never allocates. Leaks stay checked
#  by the unit tests and the other fuzzers.
declare -A max_len=([fuzz_frame]=70000 [fuzz_handshake]=140000 [fuzz_proto]=2048 [fuzz_lpacket]=2048
    [fuzz_vnet]=70000 [fuzz_wg]=2048 [fuzz_wgconfig]=8192)
declare -A extra=([fuzz_lpacket]="-detect_leaks=0")

failed=()
for bin in "$build"/fuzz_*; do
    [ -x "$bin" ] && [ -f "$bin" ] || continue
    name=$(basename "$bin")
    corpus="$tmp/$name"
    mkdir -p "$corpus" "$artifacts/$name"
    cp "$root/tests/fuzz/corpus/$name/"* "$corpus/" 2>/dev/null || true
    log="$tmp/$name.log"
    # shellcheck disable=SC2206
    opts=(-max_len="${max_len[$name]:-4096}" -timeout=20 -rss_limit_mb=4096
        -artifact_prefix="$artifacts/$name/" -print_final_stats=1 ${extra[$name]:-})

    # Reproducers of bugs found earlier must stay fixed.
    regs=("$root/tests/fuzz/regressions/$name/"*)
    if [ -e "${regs[0]}" ]; then
        if ! "$bin" "${opts[@]}" "${regs[@]}" >"$log" 2>&1; then
            tail -40 "$log"
            echo "$name: FAILED: a saved reproducer in tests/fuzz/regressions/$name crashes again"
            failed+=("$name")
            continue
        fi
    fi

    t0=$SECONDS
    "$bin" "${opts[@]}" -max_total_time="$secs" "$corpus" >"$log" 2>&1
    rc=$?
    took=$((SECONDS - t0))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    if [ $rc -eq 0 ] && [ -z "$crash" ]; then
        result=ok
    else
        tail -60 "$log"
        result="CRASH (exit $rc): ${crash:-see the log above}"
        failed+=("$name")
    fi
    printf '%-13s %9s runs in %ss (%s exec/s), cov %s, features %s, corpus %s: %s\n' \
        "$name" "${runs:-?}" "$took" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: all fuzzers ran clean"
