#!/usr/bin/env bash
# rpfs check, on a directory vault and (azurite-check) on Azurite. Each case
# builds a vault with points a (20261201T000000Z, 3 MiB, in one pack and one
# index segment) and b (20261202T000000Z: blocks 16-31 changed, in a pack and
# a segment of their own), damages one object, and checks what is named:
# - clean: exit 0, with and without --read-data, --json;
# - a flipped byte in a blob of b's pack: the structure is whole (exit 0),
#   --read-data finds it and names b, not a;
# - b's pack deleted: the pack is named missing, b's manifest chunk missing;
# - b's index segment truncated: the segment is named, b's blocks are
#   outside the index;
# - a flipped byte in b's segment (its reserved header field, which lookups
#   never read): the checksum mismatch is named, with b's blocks 16-31;
# - a flipped byte in b's pack table: the pack is named, with b's blocks;
# - a manifest chunk missing (b's point names a chunk no pack holds): b's
#   blocks 0-47 named;
# point a is never named; damage exits 1, bad options 2.
. "$(dirname "$0")/lib.sh"
need python3

A=20261201T000000Z B=20261202T000000Z
N=0
# obj_get/obj_put/obj_rm VAULT NAME [FILE]: one object of the vault.
obj_get() {
    if [[ $1 == azure://* ]]; then vault_cat "$1" "$2" >"$3"; else cp -- "$1/$2" "$3"; fi
}
obj_put() {
    if [[ $1 == azure://* ]]; then
        python3 "$_AZ_HELPER" put "$_AZ_CONTAINER" "$(_az_prefix "$1")/$2" "$3"
    else
        chmod u+w "$1/$2" 2>/dev/null || true
        cp -- "$3" "$1/$2"
    fi
}
obj_rm() {
    if [[ $1 == azure://* ]]; then python3 "$_AZ_HELPER" delete "$_AZ_CONTAINER" "$(_az_prefix "$1")/$2"
    else rm -f -- "$1/$2"; fi
}
names() { vault_files "$1" | awk '{print $2}' | grep "$2" | sort; }
# A fresh local cache for each command: Azure objects are immutable, so a
# cached copy of an object this test changed would hide the change.
check() { N=$(( N + 1 )); RPFS_CACHE_DIR=$T/cache.$N rpfs check "$@"; }
expect_damage() {  # CHECK-ARGS...: exit 1, output in $OUT
    RC=0
    N=$(( N + 1 ))
    OUT=$(RPFS_CACHE_DIR=$T/cache.$N "$RPFS" check "$@" 2>"$T/.err") || RC=$?
    assert_eq "$RC" 1 "exit 1: check $*"
}
# flip VAULT NAME OFFSET: xor one byte of an object (OFFSET < 0: from its end).
flip() {
    obj_get "$1" "$2" "$T/.obj"
    python3 - "$T/.obj" "$3" <<'PY'
import os, sys
p, off = sys.argv[1], int(sys.argv[2])
if off < 0:
    off += os.path.getsize(p)
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x55]))
PY
    obj_put "$1" "$2" "$T/.obj"
}
# damage_of JSON: "point disk first-last problem" per damaged range, sorted.
damage_of() {
    python3 -c 'import json,sys; o=json.load(sys.stdin)
for d in sorted(o["damage"], key=lambda d: (d["point"], d["first_block"])):
    print(d["point"], d["disk"], "%d-%d" % (d["first_block"], d["last_block"]), d["problem"])' <<<"$1"
}
objects_of() {
    python3 -c 'import json,sys; o=json.load(sys.stdin)
for d in o["objects"]: print(d["object"], d["problem"])' <<<"$1"
}

mkvault() {  # NAME: sets V, PACK_B and SEG_B (b's own pack and index segment)
    local p0 s0
    V=$(vault_path "$1")
    ok rpfs init "$V" -q
    make_random "$T/d.raw" $(( 3 * 1024 * 1024 )) "$1"
    ok rpfs replicate "$V" web --disk "$T/d.raw" --time $A -q
    p0=$(names "$V" '^packs/.*\.pack$') s0=$(names "$V" '^index/.*\.idx$')
    make_random "$T/.c" $(( 1024 * 1024 )) "$1-b"
    dd if="$T/.c" of="$T/d.raw" bs=1M seek=1 conv=notrunc status=none
    ok rpfs replicate "$V" web --disk "$T/d.raw" --time $B -q
    PACK_B=$(comm -13 <(echo "$p0") <(names "$V" '^packs/.*\.pack$'))
    SEG_B=$(comm -13 <(echo "$s0") <(names "$V" '^index/.*\.idx$'))
    [[ $(wc -w <<<"$PACK_B") == 1 && $(wc -w <<<"$SEG_B") == 1 ]] ||
        fail "expected one new pack and segment for b: '$PACK_B' '$SEG_B'"
}

# --- clean, and a flipped byte in a blob -----------------------------------------------
mkvault v1
out=$(check "$V" --read-data) || fail "check --read-data of a fresh vault: $out"
assert_contains "$out" "2 point(s) checked" "both points checked"
assert_contains "$out" "2 index segment(s), 2 pack(s): clean" "a fresh vault is clean"
out=$(check "$V" --read-data=30% --json) || fail "check --json of a fresh vault"
assert_eq "$(python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["points"], o["damaged_points"], o["segments"], o["packs"], o["objects"], o["damage"])' <<<"$out")" \
    "2 0 2 2 [] []" "--json on a clean vault"
flip "$V" "$PACK_B" 40   # inside the first blob of b's pack
check "$V" >/dev/null || fail "a flipped blob byte: the structure is whole"
expect_damage "$V" --read-data
assert_contains "$OUT" "damaged: web/$B disk0 blocks" "the flipped byte names point b"
assert_contains "$OUT" "corrupt" "and says corrupt"
assert_not_contains "$OUT" "web/$A" "point a is not named"

# --- a deleted pack ----------------------------------------------------------------------
mkvault v2
obj_rm "$V" "$PACK_B"
expect_damage "$V" --json
assert_eq "$(objects_of "$OUT")" "$PACK_B pack missing" "the deleted pack is named"
assert_eq "$(damage_of "$OUT")" "$B disk0 0-47 manifest chunk missing" "a deleted pack: b's manifest chunk is missing"

# --- a truncated index segment --------------------------------------------------------------
mkvault v3
obj_get "$V" "$SEG_B" "$T/.seg"
truncate -s 100 "$T/.seg"
obj_put "$V" "$SEG_B" "$T/.seg"
expect_damage "$V" --json
assert_eq "$(objects_of "$OUT")" "$SEG_B index segment truncated or damaged (header, size or footer)" "the truncated segment is named"
assert_eq "$(damage_of "$OUT")" "$B disk0 0-47 manifest chunk missing" "b's chunk and blocks are outside the index"
expect_damage "$V"
assert_contains "$OUT" "damage found" "summary says damage"

# --- a segment whose checksum fails ---------------------------------------------------------
mkvault v4
flip "$V" "$SEG_B" 24   # the reserved header field: lookups still work
expect_damage "$V" --json
assert_eq "$(objects_of "$OUT")" "$SEG_B index segment checksum mismatch" "the segment is named"
assert_eq "$(damage_of "$OUT")" "$B disk0 16-31 index entry in a damaged segment" "b's blocks in that segment are named"

# --- a damaged pack table ---------------------------------------------------------------------
mkvault v5
flip "$V" "$PACK_B" -33  # the last byte of the table
expect_damage "$V" --json
assert_eq "$(objects_of "$OUT")" "$PACK_B pack header, footer or table damaged" "the pack is named"
assert_eq "$(damage_of "$OUT")" "$B disk0 16-31 pack header, footer or table damaged" "b's blocks in that pack are named"

# --- a missing manifest chunk -----------------------------------------------------------------
mkvault v6
obj_get "$V" "points/web/$B.json" "$T/.pt"
python3 - "$T/.pt" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
d = p["disks"][0]
if "chunks" in d:
    d["chunks"][0] = "5a" * 16   # format 1: a chunk no pack holds
else:
    d["tree"] = "5a" * 16        # format 2: a root node no pack holds, so its chunks are missing
json.dump(p, open(sys.argv[1], "w"))
PY
obj_put "$V" "points/web/$B.json" "$T/.pt"
expect_damage "$V" --json
assert_eq "$(objects_of "$OUT")" "" "no object is damaged"
assert_eq "$(damage_of "$OUT")" "$B disk0 0-47 manifest chunk missing" "the missing chunk names b's blocks"
expect_damage "$V" web
assert_contains "$OUT" "damaged: web/$B disk0 blocks 0-47: manifest chunk missing" "the text names the range"
assert_not_contains "$OUT" "web/$A" "point a is not named"

expect_fail 2 rpfs check
expect_fail 2 rpfs check "$V" --read-data=0
expect_fail 2 rpfs check "$V" --read-data=150%
expect_fail 2 rpfs check "$V" ../x
expect_fail 1 rpfs check "$T/nothing"
msg "ok"
