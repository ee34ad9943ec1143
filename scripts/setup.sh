#!/usr/bin/env bash
# Installs what building and testing moontun needs, from Debian packages, skipping what is
# already there. Safe to run again. Needs root (or sudo) only when something is missing.
set -euo pipefail

# package:command-or-file that proves it is installed
NEEDED=(
    "cmake:/usr/bin/cmake"
    "gcc:/usr/bin/gcc"
    "make:/usr/bin/make"
    "pkg-config:/usr/bin/pkg-config"
    "liblua5.4-dev:/usr/include/lua5.4/lua.h"
    "libev-dev:/usr/include/ev.h"
    "libcmocka-dev:/usr/include/cmocka.h"
    "libpcap-dev:/usr/include/pcap/pcap.h"
    "libssl-dev:/usr/include/openssl/evp.h"
    "libsodium-dev:/usr/include/sodium.h"
    "iproute2:/usr/sbin/ip"
    "iputils-ping:/usr/bin/ping"
    "python3:/usr/bin/python3"
    "tcpdump:/usr/bin/tcpdump"
    "procps:/usr/bin/pkill"
)
if [ "${1:-}" = "--test" ]; then
    NEEDED+=(
        "clang-format:/usr/bin/clang-format"
        "iperf3:/usr/bin/iperf3"
        "dnsutils:/usr/bin/dig"
        "valgrind:/usr/bin/valgrind"
        "clang:/usr/bin/clang"
        "wireguard-go:/usr/bin/wireguard-go"
        "wireguard-tools:/usr/bin/wg"
        "libclang-rt-14-dev:/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a"
        "python3-prometheus-client:/usr/lib/python3/dist-packages/prometheus_client/parser.py"
        "groff-base:/usr/bin/groff"
        "dpkg-dev:/usr/bin/dpkg-shlibdeps"
        "systemd:/usr/bin/systemd-analyze"
        "strace:/usr/bin/strace"
    )
fi

missing=()
for entry in "${NEEDED[@]}"; do
    pkg=${entry%%:*}
    probe=${entry#*:}
    [ -e "$probe" ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all dependencies present"
    exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
