#!/usr/bin/env bash
# examples/dns_sinkhole.lua with dig and a real responder across the tunnel: A/AAAA queries for
# blocked names and their subdomains (any case, over IPv4 and IPv6) get NXDOMAIN from the client's
# script and never reach the responder; other names and other query types are answered by it.
source "$(dirname "$0")/lib.sh"
mt_topology

mt_pair --addr fd00:9::1/64 -- --addr fd00:9::2/64 \
    -S "$MT_ROOT/examples/dns_sinkhole.lua block=ads.example,Tracker.Test."
CLI=$PID_cli
QUERIES="$MT_TMP/queries.txt"
touch "$QUERIES"
ip netns exec "$NS_A" timeout 50 python3 "$MT_ROOT/tests/integration/dns_responder.py" \
    "$QUERIES" 10.9.0.1 fd00:9::1 >"$MT_TMP/responder.log" 2>&1 &
MT_PIDS+=("$!")
mt_wait_log responder 'listening on'
mt_wait_ping "$NS_B" 10.9.0.1 || mt_fail "no ping through the tunnel"

# ask SERVER NAME TYPE: one query from B with dig; sets STATUS and ANSWER (the first record's
# data, empty when none); keeps dig's output in $MT_TMP/dig.out.
ask() {
    ip netns exec "$NS_B" dig @"$1" "$2" "$3" +time=3 +tries=1 >"$MT_TMP/dig.out" 2>&1 ||
        mt_fail "dig $2 $3: no answer: $(tail -3 "$MT_TMP/dig.out")"
    STATUS=$(sed -n 's/.*status: \([A-Z]*\).*/\1/p' "$MT_TMP/dig.out")
    ANSWER=$(awk '/ANSWER SECTION/ { getline; print $NF; exit }' "$MT_TMP/dig.out")
}

# What passes: the responder answers (this also proves it would answer the blocked names).
ask 10.9.0.1 ok.example A
[ "$STATUS/$ANSWER" = NOERROR/10.9.0.53 ] || mt_fail "ok.example A: $STATUS '$ANSWER'"
ask 10.9.0.1 notads.example A
[ "$STATUS/$ANSWER" = NOERROR/10.9.0.53 ] || mt_fail "notads.example A: $STATUS '$ANSWER'"
ask 10.9.0.1 ads.example MX
[ "$STATUS" = NOERROR ] || mt_fail "ads.example MX was not passed: $STATUS"
mt_pass "ok.example A, notads.example A and ads.example MX answered by the far responder"

# What is sunk: NXDOMAIN, a well-formed answer (question echoed, no records), from the script.
for q in "10.9.0.1 ads.example A" "10.9.0.1 x.TRACKER.test AAAA" \
    "fd00:9::1 deep.sub.ads.example AAAA"; do
    read -r server name type <<<"$q"
    ask "$server" "$name" "$type"
    [ "$STATUS" = NXDOMAIN ] || mt_fail "$name $type via $server: status $STATUS, not NXDOMAIN"
    grep -q 'flags: qr rd ra; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 0' \
        "$MT_TMP/dig.out" || mt_fail "$name $type: $(grep 'flags:' "$MT_TMP/dig.out")"
    grep -qiE "^;$name\.[[:space:]]+IN[[:space:]]+$type\$" "$MT_TMP/dig.out" ||
        mt_fail "$name $type: question not echoed"
    grep -q WARNING "$MT_TMP/dig.out" && mt_fail "$name $type: dig warns: $(grep WARNING \
        "$MT_TMP/dig.out")"
done
mt_pass "ads.example A, x.TRACKER.test AAAA, deep.sub.ads.example AAAA (IPv6): NXDOMAIN"

# The responder saw exactly what passed, nothing that was sunk.
expected=$(printf '%s\n' "ok.example 1" "notads.example 1" "ads.example 15")
[ "$(cat "$QUERIES")" = "$expected" ] || mt_fail "the responder saw: $(tr '\n' ',' <"$QUERIES")"
kill "$CLI"
wait "$CLI" || mt_fail "client exit status $?"
grep -q 'replies 3,' "$MT_TMP/cli.log" || mt_fail "expected 3 REPLY verdicts: $(grep -o \
    'replies [0-9]*' "$MT_TMP/cli.log")"
mt_pass "the responder saw only the 3 passed queries; the client's script made 3 replies"
