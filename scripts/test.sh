#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what is missing, builds with
# ASan+UBSan and -Werror, runs the cmocka unit tests (ctest), every netns integration test,
# and the clang-format check. Needs root (namespaces, tun devices). Exit status 0 = all pass.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)

"$root/scripts/setup.sh" --test || exit 1
build="$root/build-test"
"$root/scripts/build.sh" "$build" -DCMAKE_BUILD_TYPE=Debug -DMOONTUN_SANITIZE=ON \
    -DMOONTUN_WERROR=ON || { echo "test: build failed"; exit 1; }

# A plain build too: valgrind cannot run sanitized binaries.
"$root/scripts/build.sh" "$root/build-plain" -DCMAKE_BUILD_TYPE=Debug -DMOONTUN_TESTS=OFF \
    -DMOONTUN_WERROR=ON || { echo "test: plain build failed"; exit 1; }
export MOONTUN_PLAIN="$root/build-plain/moontun"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=66
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=67
export MOONTUN="$build/moontun"
export MT_ROOT="$root"

failed=()
echo "== unit tests (ctest)"
if ! ctest --test-dir "$build" --output-on-failure --timeout 120; then
    failed+=("unit tests")
fi

echo "== integration tests (network namespaces)"
only=${MT_ONLY:-}
for t in "$root"/tests/integration/test_*.sh; do
    name=$(basename "$t" .sh)
    [ -n "$only" ] && [[ "$name" != *$only* ]] && continue
    t0=$(date +%s)
    echo "-- $name"
    if timeout --kill-after=10 300 bash "$t"; then
        echo "-- $name: passed ($(($(date +%s) - t0)) s)"
    else
        echo "-- $name: FAILED ($(($(date +%s) - t0)) s)"
        failed+=("$name")
    fi
done

if [ -z "$only" ] && [ -x "$root/scripts/fuzz.sh" ]; then
    echo "== fuzzers (libFuzzer, ${MT_FUZZ_SECONDS:-10} s each)"
    "$root/scripts/fuzz.sh" "${MT_FUZZ_SECONDS:-10}" || failed+=("fuzzers")
fi

echo "== format (clang-format)"
unformatted=$(find core lua include tests tools -name '*.[ch]' -print0 |
    xargs -0 clang-format --dry-run 2>&1 | grep -c 'warning:' || true)
if [ "$unformatted" != "0" ]; then
    echo "clang-format would change $unformatted places:"
    find core lua include tests tools -name '*.[ch]' -print0 | xargs -0 clang-format --dry-run 2>&1 |
        grep 'warning:' | head -20
    failed+=("clang-format")
fi

echo "== $(($(date +%s) - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "all tests passed"
