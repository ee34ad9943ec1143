#!/usr/bin/env bash
# Configures and builds moontun. Usage: scripts/build.sh [DIR] [cmake -D options...]
# The default DIR is build/ (sanitizers off, RelWithDebInfo).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/build}
shift || true
cmake -S "$root" -B "$dir" "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)" >/dev/null
echo "build: $dir/moontun"
