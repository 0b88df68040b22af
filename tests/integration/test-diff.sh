#!/usr/bin/env bash
# rpfs diff and MOUNT/<vm>/points/<id>/<disk>.changes: the changed extents
# between two points, from the manifests.  Three versions of a real ext4
# image (files written and removed with debugfs), a point each; then:
# - `rpfs diff` (text and --json) of each pair equals what `cmp -l` finds
#   between the versions, at block granularity, merged into extents;
# - a diff of a point with itself is empty; the first point's .changes is
#   its non-zero blocks; each later point's .changes is the diff with the
#   point before; --disk; a disk the older point lacks; usage errors.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need mkfs.ext4 debugfs cmp python3

V=$(vault_path v)
ok rpfs init "$V" >/dev/null

make_tree "$T/tree" 24
make_ext4_image "$T/v1.raw" 64 "$T/tree"
cp "$T/v1.raw" "$T/v2.raw"
make_random "$T/new1" $(( 700 * 1024 )) new1
debugfs -w -R "write $T/new1 new1" "$T/v2.raw" >/dev/null 2>&1 || fail "debugfs write"
victim=$(cd "$T/tree" && find . -type f -size +20k | sort | awk 'NR == 1')
debugfs -w -R "rm ${victim#.}" "$T/v2.raw" >/dev/null 2>&1 || fail "debugfs rm $victim"
cp "$T/v2.raw" "$T/v3.raw"
make_random "$T/new2" $(( 3 * 1024 * 1024 )) new2
debugfs -w -R "write $T/new2 new2" "$T/v3.raw" >/dev/null 2>&1 || fail "debugfs write"
debugfs -w -R "mkdir newdir" "$T/v3.raw" >/dev/null 2>&1 || fail "debugfs mkdir"
rm -rf "$T/tree"

ok rpfs replicate "$V" vm --disk disk0="$T/v1.raw" --time 20261122T100000Z >/dev/null
ok rpfs replicate "$V" vm --disk disk0="$T/v2.raw" --time 20261122T101500Z >/dev/null
ok rpfs replicate "$V" vm --disk disk0="$T/v3.raw" --disk extra="$T/new1" --time 20261122T103000Z >/dev/null
P1=20261122T100000Z P2=20261122T101500Z P3=20261122T103000Z

# expected A B: "OFFSET LENGTH" lines of the blocks where cmp -l finds
# differences between A and B (A "-": B's non-zero blocks), merged.
expected() {
    if [[ $1 == - ]]; then
        nonzero_blocks "$2" $BS
    else
        { cmp -l "$1" "$2" || true; } | awk -v bs=$BS '{ print int(($1 - 1) / bs) }' | uniq
    fi | awk -v bs=$BS -v size="$(file_size "$2")" '
        function out() { if (n) { e = (last + 1) * bs; if (e > size) e = size; print first * bs, e - first * bs } }
        { if (n && $1 == last + 1) last = $1; else { out(); first = last = $1; n = 1 } }
        END { out() }'
}

check_pair() {  # FROM TO SRC-FROM SRC-TO
    local want got
    want=$(expected "$3" "$4")
    [[ -n $want ]] || fail "test setup: $3 and $4 do not differ"
    got=$(rpfs diff -q "$V" vm "$1" "$2" --disk disk0 | sed 's/^disk0 //')
    assert_eq "$got" "$want" "rpfs diff $1 $2 against cmp -l"
    got=$(rpfs diff "$V" vm "$1" "$2" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
x = [k for k in d["disks"] if k["name"] == "disk0"][0]
assert x["changed_bytes"] == sum(e["length"] for e in x["extents"])
for e in x["extents"]:
    print(e["start"], e["length"])')
    assert_eq "$got" "$want" "rpfs diff $1 $2 --json against cmp -l"
    msg "$1 -> $2: $(wc -l <<<"$want") extents, as cmp -l finds"
}
check_pair $P1 $P2 "$T/v1.raw" "$T/v2.raw"
check_pair $P2 $P3 "$T/v2.raw" "$T/v3.raw"
check_pair $P1 $P3 "$T/v1.raw" "$T/v3.raw"
check_pair $P1 latest "$T/v1.raw" "$T/v3.raw"
assert_eq "$(rpfs diff -q "$V" vm $P2 $P2)" "" "a diff of a point with itself"

# A disk the older point lacks: its non-zero blocks.
assert_eq "$(rpfs diff -q "$V" vm $P2 $P3 --disk extra | sed 's/^extra //')" "$(expected - "$T/new1")" \
    "diff of a disk the older point lacks"
assert_eq "$(rpfs diff -q "$V" vm $P2 $P3 | cut -d' ' -f1 | sort -u | tr '\n' ' ')" "disk0 extra " \
    "diff of every disk"

grep -qE "^  diff " <<<"$(ok rpfs --help)" || fail "rpfs --help does not list diff"
assert_contains "$(ok rpfs diff --help)" "Usage: rpfs diff " "rpfs diff --help"
expect_fail 2 rpfs diff "$V" vm $P1
expect_fail 2 rpfs diff "$V" vm $P1 notapoint
expect_fail 1 rpfs diff "$V" vm $P1 20261122T120000Z
expect_err_contains "no point"
expect_fail 1 rpfs diff "$V" vm $P1 $P2 --disk nosuch
expect_err_contains "no disk"

# --- the mount's <disk>.changes
[[ -e /dev/fuse ]] && command -v fusermount3 >/dev/null || { skip_part_facility "no FUSE: <disk>.changes"; exit 0; }
M="$T/mnt"
mount_fg "$V" "$M"
assert_eq "$(cat "$M/vm/points/$P1/disk0.changes")" "$(expected - "$T/v1.raw")" "$P1/disk0.changes: the first point's data"
assert_eq "$(cat "$M/vm/points/$P2/disk0.changes")" "$(expected "$T/v1.raw" "$T/v2.raw")" "$P2/disk0.changes"
assert_eq "$(cat "$M/vm/latest/disk0.changes")" "$(expected "$T/v2.raw" "$T/v3.raw")" "latest/disk0.changes"
assert_eq "$(cat "$M/vm/latest/extra.changes")" "$(expected - "$T/new1")" "latest/extra.changes"
assert_eq "$(stat -c %s "$M/vm/latest/disk0.changes")" "$(wc -c <"$M/vm/latest/disk0.changes")" "size of .changes"
unmount "$M"
