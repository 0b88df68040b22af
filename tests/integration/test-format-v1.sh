#!/usr/bin/env bash
# Format version 1 read by the version-2 code: tests/fixtures/vault-v1 was
# written by the version-1 binary (main at c0c27eb; two points of VM web01,
# disks disk0 and disk1, sources rebuilt by tests/fixtures/v1-images.py).
# - `rpfs points` lists both points; `rpfs check` finds it clean;
# - every disk of every point exports byte-exact (sha256 vs the source),
#   and reads byte-exact through `rpfs mount`;
# - `rpfs diff` of the two version-1 points finds the changed blocks;
# - a new point raises config.json to version 2, is a small format-2 object
#   with a tree, exports exact, and diffs against a version-1 point.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need python3
dir_vault_only "the fixture is a directory vault"

FX=$SRCDIR/tests/fixtures
V=$T/v
cp -r "$FX/vault-v1" "$V"
chmod -R u+w "$V"
P1=20261122T100000Z P2=20261122T101500Z P3=20261122T103000Z
cfg_version() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$V/config.json"; }
assert_eq "$(cfg_version)" 1 "the fixture is a version-1 vault"

declare -A WANT
for p in 1 2; do
    mkdir -p "$T/src$p"
    python3 "$FX/v1-images.py" "$T/src$p" $p
    for d in disk0 disk1; do WANT[$p.$d]=$(sum "$T/src$p/$d.raw"); done
done

assert_eq "$(point_ids "$V" web01 | tr '\n' ' ')" "$P1 $P2 " "rpfs points lists the version-1 points"
ok rpfs check "$V"
for p in 1 2; do
    id=P$p
    for d in disk0 disk1; do export_check "$V" web01 $d "${WANT[$p.$d]}" --point "${!id}"; done
done
msg "version-1 points export byte-exact"

mount_fg "$V" "$T/mnt"
for p in 1 2; do
    id=P$p
    for d in disk0 disk1; do
        assert_eq "$(msum "$T/mnt/web01/points/${!id}/$d.raw")" "${WANT[$p.$d]}" "mount read of point $p $d"
    done
done
unmount_ok "$T/mnt"
msg "version-1 points read byte-exact through the mount"

# disk0 changed blocks 7 and 520 (65536-byte blocks) from point 1 to 2
# diff_extents FROM TO: disk0's changed extents as "start+length ..."
diff_extents() {
    "$RPFS" diff "$V" web01 "$1" "$2" --disk disk0 --json | python3 -c '
import json, sys
d = json.load(sys.stdin)["disks"][0]
print(" ".join("%d+%d" % (e["start"], e["length"]) for e in d["extents"]))' || fail "diff $1 $2 failed"
}
assert_eq "$(diff_extents $P1 $P2)" "$(( 7 * BS ))+$BS $(( 520 * BS ))+$BS" "diff of the version-1 points: blocks 7 and 520"

# A new point: written as format 2, the vault raised to version 2.
ok rpfs replicate "$V" web01 --disk disk0="$T/src2/disk0.raw" --disk disk1="$T/src1/disk1.raw" --time $P3
assert_eq "$(cfg_version)" 2 "the first format-2 point raises the vault to version 2"
python3 - "$V/points/web01/$P3.json" <<'PY' || fail "point 3 is not a format-2 point with trees"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["format"] == 2, p["format"]
for d in p["disks"]:
    assert "chunks" not in d and len(d["tree"]) == 32 and d["tree_levels"] == 1, d
PY
assert_le "$(file_size "$V/points/web01/$P3.json")" 1024 "a format-2 point object is small"
export_check "$V" web01 disk0 "${WANT[2.disk0]}" --point $P3
export_check "$V" web01 disk1 "${WANT[1.disk1]}" --point $P3
export_check "$V" web01 disk0 "${WANT[1.disk0]}" --point $P1
ok rpfs check "$V"
# version 1 -> version 2 diffs (a list against a tree)
assert_eq "$(diff_extents $P2 $P3)" "" "point 2 (v1) -> 3 (v2), disk0 unchanged"
assert_eq "$(diff_extents $P1 $P3)" "$(( 7 * BS ))+$BS $(( 520 * BS ))+$BS" "point 1 (v1) -> 3 (v2)"
assert_eq "$(point_ids "$V" web01 | wc -l)" 3 "three points listed"
msg "a format-2 point in an upgraded version-1 vault: exact, small, diffable"
