#!/usr/bin/env bash
# Installed like a Debian daemon: a Release build configured here for /usr, `cmake --install`
# into a scratch DESTDIR, the .deb that cpack makes from it (name, section, dependencies, the
# same files), unpacked with dpkg -x into another scratch root. The unpacked binary runs a
# tunnel between two namespaces from the installed example.conf (the installed firewall.lua,
# its mtutil found in the unpacked tree, not in the source), reloads, answers `show`; the man
# page renders; systemd-analyze verifies the unit where it exists.
source "$(dirname "$0")/lib.sh"

build="$MT_TMP/build"
dest="$MT_TMP/destdir"
root="$MT_TMP/root"
version=$(sed -n 's/^project(moontun VERSION \([0-9.]*\).*/\1/p' "$MT_ROOT/CMakeLists.txt")
[ -n "$version" ] || mt_fail "no project version in CMakeLists.txt"

# 1. Configure, build, install, package.
t0=$(date +%s)
{
    cmake -S "$MT_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
        -DMOONTUN_TESTS=OFF &&
        cmake --build "$build" -j"$(nproc)" --target moontun manpage
} >"$MT_TMP/build.log" 2>&1 || mt_fail "Release build failed"
DESTDIR="$dest" cmake --install "$build" >"$MT_TMP/install.log" 2>&1 || mt_fail "cmake --install failed"
for f in usr/bin/moontun usr/share/moontun/lua/mtutil.lua usr/share/moontun/examples/firewall.lua \
    usr/share/man/man8/moontun.8.gz usr/lib/systemd/system/moontun@.service \
    usr/share/doc/moontun/example.conf usr/share/doc/moontun/copyright; do
    [ -f "$dest/$f" ] || mt_fail "cmake --install did not install /$f"
done
[ ! -e "$dest/etc" ] || mt_fail "cmake --install wrote to /etc: $(find "$dest/etc")"
mt_pass "Release build and cmake --install: $(find "$dest" -type f | wc -l) files ($(($(date +%s) - t0)) s)"

(cd "$build" && cpack -G DEB -B "$MT_TMP/pkg") >"$MT_TMP/cpack.log" 2>&1 || mt_fail "cpack -G DEB failed"
deb="$MT_TMP/pkg/moontun_${version}_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || mt_fail "no $deb: $(ls "$MT_TMP/pkg")"
[ "$(dpkg-deb -f "$deb" Package)" = moontun ] || mt_fail "package name: $(dpkg-deb -f "$deb" Package)"
[ "$(dpkg-deb -f "$deb" Section)" = net ] || mt_fail "section: $(dpkg-deb -f "$deb" Section)"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || mt_fail "version: $(dpkg-deb -f "$deb" Version)"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in liblua5.4-0 libev4 libssl3 libsodium23 libpcap0.8; do
    grep -qE "(^|, )$lib( |,|$)" <<<"$depends" || mt_fail "Depends lacks $lib: $depends"
done
dpkg-deb -f "$deb" Maintainer | grep -q . || mt_fail "no Maintainer"
# The package holds exactly what cmake --install installs.
diff <(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' | sort) \
    <(cd "$dest" && find . -type f -o -type l | sed 's/^\.//' | sort) >"$MT_TMP/diff.out" ||
    mt_fail "the .deb and the DESTDIR differ: $(cat "$MT_TMP/diff.out")"
dpkg-deb -e "$deb" "$MT_TMP/control" || mt_fail "dpkg-deb -e failed"
for f in postinst prerm postrm; do
    [ "$(stat -c %a "$MT_TMP/control/$f" 2>/dev/null)" = 755 ] || mt_fail "no executable $f"
    sh -n "$MT_TMP/control/$f" || mt_fail "$f is not valid sh"
done
dpkg -x "$deb" "$root" || mt_fail "dpkg -x failed"
mt_pass "$(basename "$deb"): Section net, Depends: $depends"

# 2. The unpacked binary: version, help, its man page.
bin="$root/usr/bin/moontun"
out=$("$bin" --version) || mt_fail "--version failed"
grep -q "$version" <<<"$out" || mt_fail "--version says '$out', not $version"
"$bin" --help | grep -q -- '--config FILE' || mt_fail "--help lacks --config"
if command -v groff >/dev/null; then
    warn=$(zcat "$root/usr/share/man/man8/moontun.8.gz" | groff -man -Tutf8 -ww -z 2>&1)
    [ -z "$warn" ] || mt_fail "the installed man page: $warn"
    zcat "$root/usr/share/man/man8/moontun.8.gz" | groff -man -Tutf8 -P-cbou 2>/dev/null |
        grep -q 'moontun@.service' || mt_fail "the installed man page does not render"
fi
mt_pass "$bin: '$out', --help, man page renders"

# 3. Its modules come from the unpacked tree: without mtutil.lua there, require fails and
# names only installed places (the source tree is for binaries in their build tree).
unset MOONTUN_LUA_PATH
cat >"$MT_TMP/t_require.lua" <<EOF
local T = require "moontun.test"
T.test("the installed firewall loads", function()
    T.chain { "$root/usr/share/moontun/examples/firewall.lua allow=icmp" }
end)
EOF
chmod 644 "$MT_TMP/t_require.lua"
"$bin" test "$MT_TMP/t_require.lua" >"$MT_TMP/t_require.out" 2>&1 ||
    mt_fail "the installed firewall.lua does not load: $(cat "$MT_TMP/t_require.out")"
mv "$root/usr/share/moontun/lua/mtutil.lua" "$MT_TMP/mtutil.lua.aside"
"$bin" test "$MT_TMP/t_require.lua" >"$MT_TMP/t_norequire.out" 2>&1 &&
    mt_fail "firewall.lua loaded without the installed mtutil.lua"
mv "$MT_TMP/mtutil.lua.aside" "$root/usr/share/moontun/lua/mtutil.lua"
grep -q "module 'mtutil' not found" "$MT_TMP/t_norequire.out" ||
    mt_fail "no 'module not found': $(cat "$MT_TMP/t_norequire.out")"
grep -q "no file '$root/usr/bin/../share/moontun/lua/mtutil.lua'" "$MT_TMP/t_norequire.out" ||
    mt_fail "require did not look beside the binary: $(cat "$MT_TMP/t_norequire.out")"
grep -q "$MT_ROOT/lua" "$MT_TMP/t_norequire.out" &&
    mt_fail "the installed binary looked in the source tree: $(cat "$MT_TMP/t_norequire.out")"
mt_pass "require finds mtutil beside the installed binary, never in the source tree"

# 4. A tunnel from config files, as the unit starts it: the server from the installed
# example.conf (its /usr paths moved to the unpacked root), the client from one written here.
MOONTUN=$bin
mt_topology
sed "s#/usr/share/#$root/usr/share/#" "$root/usr/share/doc/moontun/example.conf" >"$MT_TMP/mt0.conf"
grep -q "^script $root/usr/share/moontun/examples/firewall.lua" "$MT_TMP/mt0.conf" ||
    mt_fail "example.conf runs no installed firewall.lua: $(cat "$MT_TMP/mt0.conf")"
printf 'iface mt0\nclient 172.31.0.1\nudp\naddr 10.9.0.2/24\n' >"$MT_TMP/cli.conf"
# No systemd here enforces the unit's SystemCallFilter: where strace and systemd-analyze
# exist, the server runs under strace, and every call it makes must be in that filter.
traced=""
if command -v strace >/dev/null && command -v systemd-analyze >/dev/null; then
    traced="$MT_TMP/server.strace"
    printf '#!/bin/sh\nexec strace -f -qq -o %s %s "$@"\n' "$traced" "$bin" >"$MT_TMP/traced"
    chmod 755 "$MT_TMP/traced"
    MOONTUN=$MT_TMP/traced
fi
mt_start srv "$NS_A" --config "$MT_TMP/mt0.conf"
MOONTUN=$bin
mt_wait_link "$NS_A" mt0
srv=$PID_srv
[ -z "$traced" ] || srv=$(pgrep -P "$PID_srv") || mt_fail "no moontun under strace"
mt_start cli "$NS_B" --config "$MT_TMP/cli.conf"
mt_wait_link "$NS_B" mt0
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "no ping through the tunnel"
mt_ping "$NS_B" 10.9.0.1 5 || mt_fail "pings lost"
# reject=1: a connection to a port allow= does not name is refused by the firewall's RST.
ip netns exec "$NS_B" timeout 3 bash -c 'exec 3<>/dev/tcp/10.9.0.1/23' 2>"$MT_TMP/refused.out" &&
    mt_fail "tcp/23 was let through"
grep -q "Connection refused" "$MT_TMP/refused.out" || mt_fail "tcp/23: $(cat "$MT_TMP/refused.out")"
kill -HUP "$srv" # what the unit's ExecReload does
mt_wait_log srv 'scripts reloaded \(SIGHUP\)'
ip netns exec "$NS_A" "$bin" show mt0 --json >"$MT_TMP/show.json" || mt_fail "show failed"
python3 - "$MT_TMP/show.json" "$root" <<'PYEOF' || mt_fail "show --json: $(cat "$MT_TMP/show.json")"
import json, sys
j = json.load(open(sys.argv[1]))
fw = j["scripts"][0]
assert fw["file"] == sys.argv[2] + "/usr/share/moontun/examples/firewall.lua", fw
assert fw["settings"] == {"allow": "tcp/22,icmp", "reject": "1"}, fw
assert fw["verdicts"]["pass"] >= 5 and fw["verdicts"]["reply"] >= 1, fw
assert j["counters"]["reloads"] == 1, j["counters"]
print("  firewall verdicts %s" % fw["verdicts"])
PYEOF
kill -TERM "$srv"
wait "$PID_srv" || mt_fail "the server exited with status $? on SIGTERM"
grep -q 'stopped: device rx' "$MT_TMP/srv.log" || mt_fail "the server left no exit summary"
mt_pass "tunnel from example.conf with the installed firewall.lua: ping, tcp/23 refused, SIGHUP reload, SIGTERM"

unit="$root/usr/lib/systemd/system/moontun@.service"
if [ -n "$traced" ]; then
    filter=$(sed -n 's/^SystemCallFilter=//p' "$unit")
    [ -n "$filter" ] || mt_fail "the unit has no SystemCallFilter"
    python3 - "$traced" $filter <<'PYEOF' || mt_fail "system calls outside the unit's SystemCallFilter=$filter"
import re, subprocess, sys
used = set()
for line in open(sys.argv[1]):
    m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", line)
    if m:
        used.add(m.group(1))
def expand(entry, seen):
    if not entry.startswith("@"):
        return {entry}
    names = set()
    out = subprocess.run(["systemd-analyze", "syscall-filter", entry], capture_output=True,
                         text=True, check=True).stdout
    for word in out.splitlines()[1:]:
        word = word.strip()
        if word and not word.startswith("#") and word not in seen:
            seen.add(word)
            names |= expand(word, seen)
    return names
allowed = set()
for entry in sys.argv[2:]:
    allowed |= expand(entry, set())
assert len(used) > 30 and len(allowed) > 100, (used, len(allowed))
assert used <= allowed, "not allowed: %s" % sorted(used - allowed)
print("  %d distinct system calls, all in the filter's %d" % (len(used), len(allowed)))
PYEOF
    mt_pass "under strace, from start to exit: every system call is in SystemCallFilter=$filter"
fi

# 5. The unit, where systemd-analyze exists (it needs no running systemd).
grep -qx 'ExecStart=/usr/bin/moontun --config /etc/moontun/%i.conf' "$unit" ||
    mt_fail "the unit's ExecStart: $(grep ExecStart= "$unit")"
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit" || mt_fail "the unit's ExecReload"
grep -qx 'RuntimeDirectory=moontun' "$unit" || mt_fail "the unit has no RuntimeDirectory"
if command -v systemd-analyze >/dev/null; then
    # Its ExecStart pointed at the unpacked binary, man:moontun(8) at the unpacked manual.
    mkdir -p "$MT_TMP/unit"
    sed "s#=/usr/bin/moontun#=$bin#" "$unit" >"$MT_TMP/unit/moontun@.service"
    MANPATH="$root/usr/share/man" systemd-analyze verify "$MT_TMP/unit/moontun@.service" \
        >"$MT_TMP/verify.out" 2>&1 || mt_fail "systemd-analyze verify: $(cat "$MT_TMP/verify.out")"
    [ ! -s "$MT_TMP/verify.out" ] || mt_fail "systemd-analyze verify warns: $(cat "$MT_TMP/verify.out")"
    exposure=$(systemd-analyze security --offline=yes "$MT_TMP/unit/moontun@.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: //p')
    mt_pass "systemd-analyze verify: moontun@.service is clean (security exposure: ${exposure:-n/a})"
else
    mt_log "skip: systemd-analyze is not installed (scripts/setup.sh --test installs systemd)"
fi
