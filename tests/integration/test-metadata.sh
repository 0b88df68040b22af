#!/usr/bin/env bash
# Metadata grows with the change, not with the disk (format version 2,
# manifest trees). A 9 GiB sparse raw disk (288 manifest chunks: a tree
# of two levels) with data at both ends is replicated, then changed a
# little four times (a few blocks, in different chunks and leaves), each
# change a new point:
# - each point object is small (no chunk list: under 1 KiB) and names a
#   two-level tree;
# - each incremental point adds at most the changed (random) bytes plus
#   64 KiB to the vault;
# - every point exports byte-exact against its own source (compared
#   through the data extents of both sparse files, holes read as zeros);
# - `rpfs check` is clean; `rpfs diff` of consecutive points names exactly
#   the changed blocks.
. "$(dirname "$0")/lib.sh"
need python3 truncate dd

BS=65536
CMP=(python3 "$(dirname "$0")/sparse_cmp.py")
V=$(vault_path v)
ok rpfs init "$V" >/dev/null
D=$T/disk.raw
truncate -s 9G "$D"
make_random "$T/r" $(( 4 * 1024 * 1024 )) meta
dd if="$T/r" of="$D" bs=1M count=2 conv=notrunc status=none
dd if="$T/r" of="$D" bs=1M count=2 seek=$(( 9 * 1024 - 2 )) conv=notrunc status=none

declare -a IDS=(20261122T100000Z 20261122T101500Z 20261122T103000Z 20261122T104500Z 20261122T110000Z)
# blocks changed by each incremental point (block 147455 is the last one)
declare -a CHANGES=("" "5 6" "100000" "16 147455" "70000 70001 140000")
for i in "${!IDS[@]}"; do
    [[ -n ${CHANGES[$i]} ]] && overwrite_blocks "$D" $BS "chg$i" ${CHANGES[$i]}
    cp --sparse=always "$D" "$T/src$i.raw"
    B0=$(vault_bytes "$V")
    ok rpfs replicate "$V" vm1 --disk disk0="$D" --time "${IDS[$i]}"
    B1=$(vault_bytes "$V")
    P=$(vault_cat "$V" "points/vm1/${IDS[$i]}.json")
    python3 -c '
import json, sys
p = json.loads(sys.argv[1])
d = p["disks"][0]
assert p["format"] == 2 and "chunks" not in d and d["tree_levels"] == 2 and d["blocks"] == 147456, p' "$P" ||
        fail "point ${IDS[$i]} is not a format-2 point with a two-level tree"
    assert_le "${#P}" 1024 "point object ${IDS[$i]} is small"
    if (( i > 0 )); then
        n=$(wc -w <<<"${CHANGES[$i]}")
        assert_le $(( B1 - B0 )) $(( n * BS + 64 * 1024 )) "point $i adds its $n changed blocks + under 64 KiB"
        msg "point $i: ${#P}-byte point object, vault +$(( B1 - B0 )) bytes for $n changed blocks"
    fi
done

for i in "${!IDS[@]}"; do
    rm -f "$T/out.raw"
    ok rpfs export "$V" vm1 disk0 --point "${IDS[$i]}" -o "$T/out.raw"
    "${CMP[@]}" "$T/src$i.raw" "$T/out.raw" || fail "point ${IDS[$i]} does not export to its source's bytes"
done
msg "every point exports byte-exact"
ok rpfs check "$V"

for (( i = 1; i < ${#IDS[@]}; i++ )); do
    got=$("$RPFS" diff "$V" vm1 "${IDS[$((i - 1))]}" "${IDS[$i]}" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)["disks"][0]
print(" ".join(str(b) for e in d["extents"] for b in range(e["start"] // 65536, (e["start"] + e["length"]) // 65536)))') ||
        fail "diff failed"
    assert_eq "$got" "${CHANGES[$i]}" "diff of points $((i - 1)) and $i names the changed blocks"
done
msg "diffs name exactly the changed blocks"
