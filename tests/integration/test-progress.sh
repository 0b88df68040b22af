#!/usr/bin/env bash
# Long commands draw a progress line (bytes, rate, ETA) on a terminal, and
# print none when stderr is not a terminal.
. "$(dirname "$0")/lib.sh"
need script python3

V=$(vault_path vault)
ok rpfs init "$V" >/dev/null
make_random "$T/d.raw" $(( 96 * 1024 * 1024 )) progress

# Not a terminal: no progress line, nothing on stderr.
"$RPFS" replicate "$V" vm --disk "$T/d.raw" --time 20261122T100000Z >"$T/out" 2>"$T/err" || fail "replicate failed"
[[ ! -s $T/err ]] || fail "replicate wrote to stderr without a terminal: $(head -c 300 "$T/err")"

# On a terminal (script gives the command a pty): a progress line.
script -qec "'$RPFS' replicate '$V' vm --disk '$T/d.raw' --time 20261122T101500Z" "$T/typescript" >/dev/null ||
    fail "replicate under script failed"
grep -aq 'replicate: .*MiB.*/s' "$T/typescript" || fail "no progress line on a terminal: $(tr '\r' '\n' <"$T/typescript" | tail -3)"
script -qec "'$RPFS' export '$V' vm disk0 -o '$T/x.raw'" "$T/typescript2" >/dev/null || fail "export under script failed"
grep -aq 'export: .*MiB' "$T/typescript2" || fail "no export progress line on a terminal"
cmp -s "$T/x.raw" "$T/d.raw" || fail "export differs"
msg PASS
