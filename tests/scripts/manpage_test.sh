#!/usr/bin/env bash
# The manual cannot drift from the binary: every long option that `moontun --help` and the
# verbs' --help print, and every verb of tools/verbs.c, must appear in docs/moontun.8, and
# groff must render it without a warning. Usage: manpage_test.sh MOONTUN SOURCE_DIR
set -euo pipefail
moontun=$(realpath "$1")
src=$(realpath "$2")
page="$src/docs/moontun.8"
fail() { echo "FAIL: $*"; exit 1; }

# The page as plain words: roff's \- is a hyphen.
text=$(sed 's/\\-/-/g' "$page")

verbs=$(grep -oE '\{"[a-z]+", mt_[a-z_]+\}' "$src/tools/verbs.c" | cut -d'"' -f2)
[ "$(echo "$verbs" | wc -w)" -ge 8 ] || fail "found only these verbs in tools/verbs.c: $verbs"
missing=()
for verb in $verbs; do
    grep -qE "^\.(B|TP|SS|BR|BI)?.*\<$verb\>" <<<"$text" || missing+=("verb $verb")
done

help="$("$moontun" --help)"
for verb in $verbs; do
    help+=$'\n'"$("$moontun" "$verb" --help 2>&1 || true)"
done
options=$(grep -oE -- '--[a-z][a-z0-9-]+' <<<"$help" | sort -u)
[ "$(echo "$options" | wc -w)" -ge 30 ] || fail "found only these options in --help: $options"
for opt in $options; do
    grep -qE -- "$opt([^a-z0-9-]|\$)" <<<"$text" || missing+=("option $opt")
done
[ ${#missing[@]} -eq 0 ] || fail "docs/moontun.8 lacks: ${missing[*]}"
echo "ok: $(echo "$verbs" | wc -w) verbs and $(echo "$options" | wc -w) long options of --help are in docs/moontun.8"

if ! command -v groff >/dev/null; then
    echo "skip: groff is not installed (scripts/setup.sh --test installs groff-base)"
    exit 0
fi
warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
[ -z "$warnings" ] || fail "groff warns about docs/moontun.8: $warnings"
lines=$(groff -man -Tutf8 "$page" 2>/dev/null | wc -l)
[ "$lines" -gt 200 ] || fail "docs/moontun.8 renders to only $lines lines"
echo "ok: groff renders docs/moontun.8 without a warning ($lines lines)"
