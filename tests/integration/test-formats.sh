#!/usr/bin/env bash
# Every supported input format goes in and comes back out byte for byte.
#
# One ext4 disk with real files is converted by qemu-img to qcow2, vhdx, VHD
# dynamic, VHD fixed and vmdk (the qcow2 renamed to disk.img: the format must be
# detected from content).  Each is replicated as its own VM and all six together
# as one multi-disk point; every disk is exported to a file and to stdout and
# compared by sha256 with the raw source.  A raw file with holes and an odd
# size, a vault with a non-default block size, and a loop block device (root
# only) follow.
. "$(dirname "$0")/lib.sh"
need qemu-img mkfs.ext4 python3

SIZE_MB=80
make_tree_image "$T/src.raw" $SIZE_MB 48
SRC_SUM=$(sum "$T/src.raw")
SIZE=$(( SIZE_MB * 1024 * 1024 ))

conv() {  # FMT OUT [OPTS]
    qemu-img convert -f raw -O "$1" ${3:+-o "$3"} "$T/src.raw" "$2" ||
        fail "qemu-img convert to $1 failed"
}
conv qcow2 "$T/disk.img"                                   # misleading name
conv vhdx  "$T/src.vhdx"
conv vpc   "$T/src-dyn.vhd"   subformat=dynamic,force_size=on
conv vpc   "$T/src-fixed.vhd" subformat=fixed,force_size=on
conv vmdk  "$T/src.vmdk"
# the converted files really are in those formats (and differ from the raw)
for f in disk.img src.vhdx src-dyn.vhd src-fixed.vhd src.vmdk; do
    assert_ne "$(sum "$T/$f")" "$SRC_SUM" "$f differs from the raw source"
done
assert_eq "$(qemu-img info --output=json "$T/disk.img" |
             python3 -c 'import json,sys; print(json.load(sys.stdin)["format"])')" \
          qcow2 "disk.img is a qcow2 image"

V=$(vault_path vault)
ok rpfs init "$V"

# --- one VM per format ---------------------------------------------------
declare -A FILES=(
    [raw]="$T/src.raw"
    [qcow2]="$T/disk.img"
    [vhdx]="$T/src.vhdx"
    [vhddyn]="$T/src-dyn.vhd"
    [vhdfixed]="$T/src-fixed.vhd"
    [vmdk]="$T/src.vmdk"
)
ORDER=(raw qcow2 vhdx vhddyn vhdfixed vmdk)

t=0
for f in "${ORDER[@]}"; do
    t=$(( t + 1 ))
    ok rpfs replicate "$V" "vm-$f" --disk "${FILES[$f]}" --time "20261122T10000${t}Z"
done

# --- one VM with all six disks in one point --------------------------------
args=()
for f in "${ORDER[@]}"; do args+=(--disk "${FILES[$f]}"); done
ok rpfs replicate "$V" multi "${args[@]}" --time 20261122T110000Z

# --- the catalogue says what we put in --------------------------------------
J=$(json_points "$V")
J="$J" python3 - "$SIZE" "${ORDER[@]}" <<'EOF' || fail "points --json does not describe the disks: $J"
import json, os, sys
size, order = int(sys.argv[1]), sys.argv[2:]
words = dict(raw="raw", qcow2="qcow", vhdx="vhdx", vhddyn="vhd", vhdfixed="vhd", vmdk="vmdk")
pts = json.loads(os.environ["J"])
byvm = {p["vm"]: p for p in pts}
assert len(pts) == len(order) + 1, "expected %d points, got %d" % (len(order) + 1, len(pts))
for f in order:
    p = byvm["vm-" + f]
    assert [d["name"] for d in p["disks"]] == ["disk0"], p
    d = p["disks"][0]
    assert d["size"] == size, ("size", f, d)
    assert words[f] in d["format"].lower(), ("format", f, d)
    if f == "vhddyn" or f == "vhdfixed":
        assert "vhdx" not in d["format"].lower(), ("format", f, d)
m = byvm["multi"]
assert [d["name"] for d in m["disks"]] == ["disk%d" % i for i in range(len(order))], m
assert all(d["size"] == size for d in m["disks"]), m
EOF

# --- every disk exports byte for byte ---------------------------------------
for f in "${ORDER[@]}"; do
    export_check "$V" "vm-$f" disk0 "$SRC_SUM"
    export_check_stdout "$V" "vm-$f" disk0 "$SRC_SUM"
done
i=0
for f in "${ORDER[@]}"; do
    export_check "$V" multi "disk$i" "$SRC_SUM"
    export_check_stdout "$V" multi "disk$i" "$SRC_SUM" --point 20261122T110000Z
    i=$(( i + 1 ))
done

# Six formats of one disk share every block: the vault holds the data once, so
# seven points of it (compressible) take less than one uncompressed copy.
ONE=$(vault_bytes "$V")
msg "vault after 7 points of the same disk: $ONE bytes (disk $SIZE bytes)"
assert_lt "$ONE" "$SIZE" "7 points of one compressible disk stored in less than the disk's size"

# --- raw file with holes, odd size (a multiple of 512, not of 64 KiB) -------
H="$T/holes.raw"
HSIZE=$(( 50 * 1024 * 1024 + 3 * 512 ))
truncate -s "$HSIZE" "$H"
make_random "$T/r1" $(( 200 * 1024 )) holes1
dd if="$T/r1" of="$H" bs=1 seek=0 count=4096 conv=notrunc status=none
dd if="$T/r1" of="$H" bs=1024 seek=$(( 10 * 1024 )) count=130 conv=notrunc status=none
printf 'unaligned bytes in the middle of a block' |
    dd of="$H" bs=1 seek=$(( 33 * 1024 * 1024 + 12345 )) conv=notrunc status=none
dd if="$T/r1" of="$H" bs=512 seek=$(( HSIZE / 512 - 3 )) count=3 conv=notrunc status=none
assert_eq "$(file_size "$H")" "$HSIZE" "holes.raw size"
HSUM=$(sum "$H")
ok rpfs replicate "$V" holes --disk "data=$H" --time 20261122T120000Z
ok rpfs export "$V" holes data -o "$T/holes.out"
assert_file_sum "$T/holes.out" "$HSUM" "export of holes.raw"
assert_eq "$(file_size "$T/holes.out")" "$HSIZE" "exported size of holes.raw"
alloc_k=$(du -k "$T/holes.out" | cut -f1)
msg "holes.out: $HSIZE bytes apparent, ${alloc_k} KiB allocated"
assert_lt "$alloc_k" 4096 "export is sparse where zero (KiB allocated of a 50 MiB file with ~0.3 MiB data)"
export_check_stdout "$V" holes data "$HSUM"
J=$(json_points "$V" holes)
python3 -c '
import json, sys
p = json.loads(sys.argv[1]); assert len(p) == 1, p
d = p[0]["disks"]; assert len(d) == 1 and d[0]["name"] == "data" and d[0]["size"] == int(sys.argv[2]), d
' "$J" "$HSIZE" || fail "points holes --json: $J"

# an all-zero disk and a disk smaller than one block
truncate -s 8M "$T/zero.raw"
head -c 1000 "$T/r1" >"$T/tiny.raw"
ok rpfs replicate "$V" small --disk "$T/zero.raw" --disk "$T/tiny.raw" --time 20261122T120100Z
export_check "$V" small disk0 "$(sum "$T/zero.raw")"
export_check "$V" small disk1 "$(sum "$T/tiny.raw")"

# --- a vault with another block size and compression level ------------------
V2=$(vault_path vault4k)
ok rpfs init "$V2" --block-size 4K --compression zstd:1
ok rpfs replicate "$V2" holes --disk "$H" --disk "$T/src-dyn.vhd" --time 20261122T130000Z
export_check "$V2" holes disk0 "$HSUM"
export_check "$V2" holes disk1 "$SRC_SUM"
V3=$(vault_path vault1m)
ok rpfs init "$V3" --block-size 1M
ok rpfs replicate "$V3" holes --disk "$H" --disk "$T/src.vmdk" --time 20261122T130000Z
export_check "$V3" holes disk0 "$HSUM"
export_check "$V3" holes disk1 "$SRC_SUM"

# --- a block device ----------------------------------------------------------
if [[ $(id -u) == 0 ]] && command -v losetup >/dev/null &&
   LOOP=$(losetup -f --show --read-only "$T/src.raw" 2>/dev/null); then
    track_loop "$LOOP"
    ok rpfs replicate "$V" blockdev --disk "$LOOP" --time 20261122T140000Z
    export_check "$V" blockdev disk0 "$SRC_SUM"
    J=$(json_points "$V" blockdev)
    python3 -c '
import json, sys
p = json.loads(sys.argv[1]); assert p[0]["disks"][0]["size"] == int(sys.argv[2]), p
' "$J" "$SIZE" || fail "block device size in points --json: $J"
    losetup -d "$LOOP"
else
    skip_part_facility "loop devices unavailable (needs root): the block device part"
fi
