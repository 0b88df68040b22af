#!/usr/bin/env bash
# rpfs check on a directory vault: clean vaults exit 0 (with and without
# --read-data, --json); a flipped byte in a blob is found by --read-data and
# names its point; a truncated index segment leaves blocks outside the index;
# a deleted pack leaves a point's manifest chunks missing; each exits 1 and
# names the damaged point and disk; bad options exit 2.
. "$(dirname "$0")/lib.sh"
need python3
dir_vault_only "corrupts the vault's files"

mkvault() {  # NAME: a vault with points a (one pack) and b (b's changes in another)
    V=$T/$1
    ok rpfs init "$V" -q
    make_random "$T/d.raw" $(( 3 * 1024 * 1024 )) "$1"
    ok rpfs replicate "$V" web --disk "$T/d.raw" --time 20261201T000000Z -q
    make_random "$T/.c" $(( 1024 * 1024 )) "$1-b"
    dd if="$T/.c" of="$T/d.raw" bs=1M seek=1 conv=notrunc status=none
    ok rpfs replicate "$V" web --disk "$T/d.raw" --time 20261202T000000Z -q
    PACK_B=$(python3 - "$V" <<'PY'
import os, sys
v = sys.argv[1]
packs = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(v, "packs")) for f in fs if f.endswith(".pack")]
print(max(packs, key=os.path.getmtime))
PY
)
}

mkvault v1
out=$(ok rpfs check "$V" --read-data)
assert_contains "$out" "2 point(s) checked" "both points checked"
assert_contains "$out" "clean" "a fresh vault is clean"
out=$(ok rpfs check "$V" --read-data=30% --json)
assert_eq "$(python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["points"], o["damaged_points"], o["damage"])' <<<"$out")" \
    "2 0 []" "--json on a clean vault"

# a flipped byte in the first blob of b's pack
python3 - "$PACK_B" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(40); b = f.read(1); f.seek(40); f.write(bytes([b[0] ^ 0x55]))
PY
ok rpfs check "$V" >/dev/null   # structure is intact: only reading finds it
expect_fail_out() { RC=0; OUT=$("$@" 2>"$T/.err") || RC=$?; assert_eq "$RC" 1 "exit 1: $*"; }
expect_fail_out rpfs check "$V" --read-data
assert_contains "$OUT" "damaged: web/20261202T000000Z disk0 blocks" "the flipped byte names point b"
assert_contains "$OUT" "corrupt" "and says corrupt"
assert_not_contains "$OUT" "web/20261201T000000Z" "point a is not named"

# a deleted pack: b's manifest chunk goes with it
mkvault v2
rm -f "$PACK_B"
expect_fail_out rpfs check "$V" --json
assert_eq "$(python3 -c 'import json,sys; o=json.load(sys.stdin); print(sorted({(d["point"], d["disk"], d["problem"]) for d in o["damage"]}))' <<<"$OUT")" \
    "[('20261202T000000Z', 'disk0', 'manifest chunk missing')]" "a deleted pack: b's manifest chunk is missing"

# a truncated index segment: its blocks are no longer in the index
mkvault v3
for s in "$V"/index/*.idx; do truncate -s 100 "$s"; break; done
expect_fail_out rpfs check "$V"
assert_contains "$OUT" "damaged: web/" "a truncated segment is found"
assert_contains "$OUT" "damage found" "summary says damage"

expect_fail 2 rpfs check
expect_fail 2 rpfs check "$V" --read-data=0
expect_fail 2 rpfs check "$V" --read-data=150%
expect_fail 2 rpfs check "$V" ../x
expect_fail 1 rpfs check "$T/nothing"
msg "ok"
