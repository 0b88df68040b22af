#!/usr/bin/env bash
# rpfs replicate --base B --changed EXTENTS [--verify-base N]: a 128 MiB
# image with data, a full point; then random changes at known (unaligned,
# overlapping, end-of-disk, zeroing) ranges:
# - --changed with the ranges as text, as JSON and as thin_delta XML (block
#   size from the XML or --changed-block-size): each point exports to
#   the new image's bytes, and its manifest (the disks of the point object:
#   chunk checksums, sizes, block counts) equals a full replicate's;
# - an extents file missing a 32 MiB change: --verify-base (seeded by
#   RPFS_VERIFY_SEED) refuses and the vault is unchanged; without it the
#   point is silently wrong (what the README warns about);
# - bad lines, bad JSON, ranges past the end, a size mismatch, a base of
#   another VM or without the disk, usage errors: refused with a clear
#   message, vault unchanged.
. "$(dirname "$0")/lib.sh"
need python3

MIB=$((1024 * 1024))
SIZE=$((128 * MIB))
V=$(vault_path v)
ok rpfs init "$V" >/dev/null

truncate -s $SIZE "$T/v1.raw"
make_random "$T/r" $((40 * MIB)) base
dd if="$T/r" of="$T/v1.raw" bs=1M count=24 conv=notrunc status=none
dd if="$T/r" of="$T/v1.raw" bs=1M skip=24 seek=80 count=16 conv=notrunc status=none
rm -f "$T/r"
ok rpfs replicate "$V" vm --disk disk0="$T/v1.raw" --time 20261122T100000Z >/dev/null
P1=20261122T100000Z

# write_ranges IMAGE SEED "OFF LEN [zero]"...: random (or zero) bytes there.
write_ranges() {
    python3 - "$@" <<'PY'
import random, sys
path, seed = sys.argv[1], sys.argv[2]
r = random.Random(seed)
with open(path, "r+b") as f:
    for spec in sys.argv[3:]:
        w = spec.split()
        off, n = int(w[0]), int(w[1])
        f.seek(off)
        f.write(bytes(n) if len(w) > 2 else r.randbytes(n))
PY
}

cp "$T/v1.raw" "$T/v2.raw"
CHANGES=("1000 5000" "$((3 * MIB + 17)) 200000" "$((3 * MIB + 100000)) 300000"
         "$((50 * MIB)) $((4 * MIB))" "$((82 * MIB)) $MIB zero" "$((SIZE - 100)) 100")
write_ranges "$T/v2.raw" c2 "${CHANGES[@]}"
SUM2=$(sum "$T/v2.raw")
{
    echo "# changed extents (offset length), unsorted and overlapping"
    echo "$((SIZE - 100)) 100"
    echo "   1000	5000   # a comment"
    echo ""
    echo "$((3 * MIB + 17)) 200000"
    echo "$((3 * MIB + 100000)) 300000"
    echo "$((50 * MIB)) $((4 * MIB))"
    echo "$((50 * MIB + 4096)) 8192"
    echo "$((82 * MIB)) $MIB"
    echo "0 0"
} >"$T/ext.txt"
python3 - "$T/ext.txt" >"$T/ext.json" <<'PY'
import json, sys
out = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].split()
    if line:
        out.append({"start": int(line[0]), "length": int(line[1])})
print(json.dumps(out[::-1], indent=1))
PY

ok rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --base latest --changed "$T/ext.txt" \
    --verify-base 64 --time 20261122T101500Z >/dev/null
export_check "$V" vm disk0 "$SUM2" --point 20261122T101500Z
ok rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --base $P1 --changed "$T/ext.json" \
    --time 20261122T103000Z >/dev/null
export_check "$V" vm disk0 "$SUM2" --point 20261122T103000Z
# the same ranges as LVM thin_delta XML (64 KiB pool blocks: 128 sectors;
# --verbose form; a <same> range is not read), and with the block size
# from --changed-block-size instead
python3 - "$T/ext.txt" "$T/ext.xml" "$T/ext-nobs.xml" <<'PY'
import sys
bs, blocks = 65536, set()
for line in open(sys.argv[1]):
    w = line.split("#")[0].split()
    if w and int(w[1]):
        blocks.update(range(int(w[0]) // bs, (int(w[0]) + int(w[1]) + bs - 1) // bs))
body = ['  <diff left="1" right="2">', '    <same>', '      <range begin="0" data_begin="0" length="1"/>', '    </same>']
for kind in ("different", "right_only"):
    body.append("    <%s>" % kind)
    body += ['      <range begin="%d" data_begin="%d" length="1"/>' % (b, b) for b in sorted(blocks) if (b % 2 == 0) == (kind == "different")]
    body.append("    </%s>" % kind)
body += ["  </diff>", "</superblock>"]
for path, attr in ((sys.argv[2], ' data_block_size="128"'), (sys.argv[3], "")):
    open(path, "w").write('<superblock uuid="" time="1" transaction="2"%s nr_data_blocks="4096">\n' % attr + "\n".join(body) + "\n")
PY
ok rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --base $P1 --changed "$T/ext.xml" --time 20261122T103500Z >/dev/null
export_check "$V" vm disk0 "$SUM2" --point 20261122T103500Z
ok rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --base $P1 --changed "$T/ext-nobs.xml" --changed-block-size 64K \
    --time 20261122T104000Z >/dev/null
export_check "$V" vm disk0 "$SUM2" --point 20261122T104000Z
expect_fail 1 rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --base $P1 --changed "$T/ext-nobs.xml"
expect_err_contains "ext-nobs.xml" "give --changed-block-size"
expect_fail 2 rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --base $P1 --changed-block-size 64K
expect_err_contains "--changed-block-size needs --changed"
ok rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --time 20261122T104500Z >/dev/null
export_check "$V" vm disk0 "$SUM2" --point 20261122T104500Z

# point_disks ID: the disks of the point object (its manifest), as JSON.
point_disks() {
    vault_cat "$V" "points/vm/$1.json" | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["disks"], sort_keys=True))'
}
FULL=$(point_disks 20261122T104500Z)
[[ $FULL == *chunks* || $FULL == *manifest* ]] || msg "point disks: ${FULL:0:200}"
assert_eq "$(point_disks 20261122T101500Z)" "$FULL" "--changed (text) manifest = full replicate's"
assert_eq "$(point_disks 20261122T103000Z)" "$FULL" "--changed (JSON) manifest = full replicate's"
assert_eq "$(point_disks 20261122T103500Z)" "$FULL" "--changed (thin_delta XML) manifest = full replicate's"
assert_ne "$(point_disks $P1)" "$FULL" "the base's manifest differs"

# A tracker that missed a 32 MiB change (a quarter of the disk).
cp "$T/v2.raw" "$T/v3.raw"
write_ranges "$T/v3.raw" c3 "$((10 * MIB)) 4096" "$((90 * MIB)) $((32 * MIB))"
echo "$((10 * MIB)) 4096" >"$T/missed.txt"
BEFORE=$(vault_state "$V")
RPFS_VERIFY_SEED=1 expect_fail 1 rpfs replicate "$V" vm --disk disk0="$T/v3.raw" --base latest \
    --changed "$T/missed.txt" --verify-base 32 --time 20261122T110000Z
expect_err_contains "verify-base" "differs from base point vm/20261122T104500Z" "outside the changed ranges"
assert_eq "$(vault_state "$V")" "$BEFORE" "vault unchanged after --verify-base refused"
ok rpfs replicate "$V" vm --disk disk0="$T/v3.raw" --base latest --changed "$T/missed.txt" \
    --time 20261122T110000Z >/dev/null
rm -f "$T/wrong.raw"
ok rpfs export "$V" vm disk0 --point 20261122T110000Z -o "$T/wrong.raw"
assert_ne "$(sum "$T/wrong.raw")" "$(sum "$T/v3.raw")" "without --verify-base a missed change is silently lost"
rm -f "$T/wrong.raw"

# Bad input: refused, vault unchanged.
BEFORE=$(vault_state "$V")
bad() {  # FILE-CONTENT TEXT...: --changed with that content must fail mentioning TEXT
    local content=$1; shift
    printf '%s' "$content" >"$T/bad.ext"
    expect_fail 1 rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --base latest --changed "$T/bad.ext"
    expect_err_contains "$@"
}
bad $'0 4096\n# ok\n12x 5\n' "line 3" "OFFSET LENGTH"
bad $'0 4096 7\n' "line 1"
bad $'-5 10\n' "line 1"
bad $'4096\n' "line 1"
bad $'0 99999999999999999999999\n' "line 1"
bad "$((SIZE - 10)) 11"$'\n' "passes the disk's end"
bad $'[{"start": 0, "length": 10},\n {"start": 5}]' "JSON element 1"
bad $'[{"start": -1, "length": 10}]' "JSON element 0"
bad $'[{"start": 0, "length": 10}\n' "line" "invalid JSON"
bad '{"start": 0, "length": 10}' "expected an array"
bad "[{\"start\": $SIZE, \"length\": 1}]" "passes the disk's end"
expect_fail 1 rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --base latest --changed "$T/nonexistent"
expect_err_contains "nonexistent"
truncate -s $((SIZE + MIB)) "$T/big.raw"
expect_fail 1 rpfs replicate "$V" vm --disk disk0="$T/big.raw" --base latest --changed "$T/ext.txt"
expect_err_contains "$SIZE bytes" "$((SIZE + MIB))" "not the disk"
ok rpfs replicate "$V" other --disk disk0="$T/v1.raw" --time 20261122T120000Z >/dev/null
BEFORE=$(vault_state "$V")
expect_fail 1 rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --base 20261122T120000Z --changed "$T/ext.txt"
expect_err_contains "VM vm has no such point"
expect_fail 1 rpfs replicate "$V" other --disk disk0="$T/v2.raw" --base 20261122T101500Z --changed "$T/ext.txt"
expect_err_contains "VM other has no such point"
expect_fail 1 rpfs replicate "$V" vm --disk data="$T/v2.raw" --base latest --changed "$T/ext.txt"
expect_err_contains "has no disk data"
expect_fail 2 rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --changed "$T/ext.txt"
expect_err_contains "--changed needs --base"
expect_fail 2 rpfs replicate "$V" vm --disk "$T/v2.raw" --disk "$T/v1.raw" --base latest --changed "$T/ext.txt"
expect_err_contains "exactly one --disk"
expect_fail 1 rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --base latest
expect_err_contains "is not an overlay" "--changed"
expect_fail 2 rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --base latest --changed "$T/ext.txt" --verify-base x
expect_err_contains "invalid --verify-base"
assert_eq "$(vault_state "$V")" "$BEFORE" "vault unchanged after refused input"
msg "ok"
