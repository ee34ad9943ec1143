#!/usr/bin/env bash
# Start-up errors: every bad invocation exits non-zero with exactly one line naming the
# problem and leaves no device behind. Also: writes to a device that is not up (EIO) drop the
# packet and are never fatal; SIGTERM exits 0 with a summary.
source "$(dirname "$0")/lib.sh"
NS=$(mt_ns cli)
printf 'return {}\n' >"$MT_TMP/ok.lua"
printf 'local x = = 1\n' >"$MT_TMP/broken.lua"

expect_error() {
    local pattern=$1
    shift
    local out rc
    out=$(ip netns exec "$NS" timeout 10 "$MOONTUN" "$@" 2>&1)
    rc=$?
    [ "$rc" -ne 0 ] || mt_fail "'$*' exited 0"
    [ "$rc" -ne 124 ] || mt_fail "'$*' hung"
    [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || mt_fail "'$*' printed more than one line: $out"
    printf "%s\n" "$out" | grep -qE -- "$pattern" || mt_fail "'$*' said '$out', expected /$pattern/"
    # Nothing may be left: no tun/tap device in the namespace.
    if ip -n "$NS" -o link show | grep -qvE ': lo:'; then
        mt_fail "'$*' left a device behind: $(ip -n "$NS" -o link show)"
    fi
    mt_log "'$*' -> $out"
}

expect_error 'bogus' -s --bogus
expect_error '-p.*70000' -s -p 70000
expect_error '--addr.*10.0.0.1/33' -s --addr 10.0.0.1/33
expect_error '--mtu.*40' -s --mtu 40
expect_error 'cannot read script.*missing.lua' -s -S "$MT_TMP/missing.lua"
expect_error 'broken.lua:1' -s -S "$MT_TMP/broken.lua"
expect_error '-s \(server\) or -c' -i mt0
expect_error 'exclude' -s -c 127.0.0.1
expect_error 'needs a value' -s -p
expect_error 'unexpected argument' -s extra
expect_error 'cannot resolve' -c no-such-host.invalid
expect_error '--on-error' -s --on-error maybe
mt_pass "bad invocations: one line each, non-zero, no device left"

# A port already in use is an error at start-up too, before any device.
ip netns exec "$NS" python3 -c 'import socket,time; s=socket.socket(socket.AF_INET6); s.bind(("::",55999)); s.listen(); time.sleep(5)' &
MT_PIDS+=($!)
for _ in $(seq 50); do
    ip netns exec "$NS" ss -ltn | grep -q ':55999 ' && break
    sleep 0.1
done
expect_error 'cannot bind' -s -p 55999 -i mtbusy
mt_pass "port in use: one line, no device"

# --help and --version succeed.
"$MOONTUN" --help | grep -q -- '--lua-budget' || mt_fail "--help lacks --lua-budget"
"$MOONTUN" -V | grep -qE '^moontun [0-9]' || mt_fail "-V"
mt_pass "--help and --version"

# EIO: the server's device is never brought up (no --addr, as simpletun); a client's packets
# arrive anyway and must be dropped and counted, not crash or stop the server.
mt_topology
mt_start srv "$NS_A" -i mtdown -s
srv=$MT_LAST_PID
mt_wait_log srv 'tun mtdown up'
mt_start cli "$NS_B" -i mt0 -c 172.31.0.1 --addr 10.9.0.2/24
cli=$MT_LAST_PID
mt_wait_link "$NS_B" mt0
ip netns exec "$NS_B" ping -c 5 -i 0.2 -W 1 10.9.0.1 >/dev/null 2>&1
mt_wait_log srv 'write to mtdown failed'
kill -0 "$srv" || mt_fail "the server died on EIO"
kill "$srv"
wait "$srv" || mt_fail "server exit status $? after SIGTERM"
grep -qE 'stopped: .*tx 0/0 B \(errors [1-9]' "$MT_TMP/srv.log" || mt_fail "EIO writes not counted"
mt_pass "writes to a down device are dropped and counted; SIGTERM exits 0 with a summary"

# Repeated --addr: every address ends up on the device (a second IPv4 one used to replace the
# first: the ioctl keeps one per label, so the others go on alias labels).
mt_start addrs "$NS" -i mtaddr -s -p 55601 --addr 10.9.0.1/24 --addr 10.9.1.1/24 \
    --addr 10.9.2.1/32 --addr fd09::1/64
ADDRS=$MT_LAST_PID
mt_wait_link "$NS" mtaddr
have=$(ip -n "$NS" addr show dev mtaddr)
for a in 10.9.0.1/24 10.9.1.1/24 10.9.2.1/32 fd09::1/64; do
    echo "$have" | grep -q "inet6\? $a" || mt_fail "--addr $a missing: $have"
done
kill "$ADDRS"
wait "$ADDRS"
mt_pass "four --addr (three IPv4, one IPv6) all on the device"
