#!/usr/bin/env bash
# rpfs mount: each partition of a disk is a file beside it,
# DISK.p<N>.raw, with the partition's exact bytes.
#
# disk0: GPT (sfdisk) with ext4, xfs and vfat partitions, made on a loop
# device and filled with real files; disk1: MBR with a primary ext4
# partition and a logical one (p5) in an extended partition.  With rpfs
# mounted:
# - the point lists DISK.p<N>.raw for each partition (not the extended one);
#   each one's size and sha256 equal the source partition's;
# - point.json lists the partitions: number, start, size, type, name,
#   UUID, and the filesystem, label and filesystem UUID that blkid reports
#   for the source partitions;
# - each partition file loop-mounts read-only (xfs with nouuid, the source
#   being mounted too) and every file inside equals the source's by sha256
#   (vfat: read with mtools when the kernel lacks vfat);
# - SEEK_DATA in a partition file is relative to the partition.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
[[ $(id -u) == 0 ]] || skip_facility "needs root to loop-mount"
need losetup mount umount sfdisk blkid mkfs.ext4 mkfs.xfs mkfs.vfat mcopy python3
losetup -f >/dev/null 2>&1 || skip_facility "no free loop device"

manifest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

# --- disk0: GPT, ext4 + xfs + vfat
D0="$T/gpt.raw"
truncate -s 480M "$D0"
sfdisk -q "$D0" <<'SF' || fail "sfdisk gpt"
label: gpt
start=1MiB, size=64MiB, type=linux, name=root
size=320MiB, type=linux, name=data
size=48MiB, type=uefi, name=esp
SF
# one loop device per partition (--offset, --sizelimit: no udev needed)
declare -A LP=()
while read -r n start size; do
    LP[$n]=$(losetup -f --show --offset $(( start * 512 )) --sizelimit $(( size * 512 )) "$D0") ||
        skip_facility "losetup --offset failed"
    track_loop "${LP[$n]}"
done < <(sfdisk -J "$D0" | python3 -c '
import json, sys
for i, p in enumerate(json.load(sys.stdin)["partitiontable"]["partitions"]):
    print(i + 1, p["start"], p["size"])')
mkfs.ext4 -q -L rootfs "${LP[1]}" >/dev/null || fail "mkfs.ext4"
mkfs.xfs -q -f -L datafs "${LP[2]}" >/dev/null || fail "mkfs.xfs"
mkfs.vfat -n ESPFS "${LP[3]}" >/dev/null || fail "mkfs.vfat"
make_tree "$T/tree" 20
mkdir -p "$T/src1" "$T/src2" "$T/src3"
mount "${LP[1]}" "$T/src1" && at_exit "umount '$T/src1' 2>/dev/null"
mount "${LP[2]}" "$T/src2" && at_exit "umount '$T/src2' 2>/dev/null"
# vfat: mounted when the kernel has it, else filled and read with mtools
VFAT_MOUNT=1
grep -qw vfat /proc/filesystems || VFAT_MOUNT=0
if (( VFAT_MOUNT )); then
    mount "${LP[3]}" "$T/src3" && at_exit "umount '$T/src3' 2>/dev/null"
fi
cp -a "$T/tree/." "$T/src1/"
cp -a "$T/tree/." "$T/src2/"
make_random "$T/src2/big.bin" $(( 5 * 1024 * 1024 + 77 )) xfs
mkdir -p "$T/src3/EFI/BOOT"
make_random "$T/src3/EFI/BOOT/BOOTX64.EFI" $(( 900 * 1024 )) efi
printf 'timeout 3\n' >"$T/src3/loader.cfg"
if (( ! VFAT_MOUNT )); then
    MTOOLS_SKIP_CHECK=1 mcopy -s -i "${LP[3]}" "$T/src3/EFI" "$T/src3/loader.cfg" ::/ || fail "mcopy into the vfat partition"
fi
for i in 1 2 3; do
    manifest "$T/src$i" >"$T/want$i"
    (( i == 3 && ! VFAT_MOUNT )) || umount "$T/src$i"
done
rm -rf "$T/tree"
# what blkid reports of the source partitions, and their sizes and sums
for i in 1 2 3; do
    printf '%s %s %s %s\n' "$(blkid -p -o value -s TYPE "${LP[$i]}")" "$(blkid -p -o value -s LABEL "${LP[$i]}")" \
        "$(blkid -p -o value -s UUID "${LP[$i]}")" \
        "$(sfdisk -J "$D0" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][int(sys.argv[1]) - 1]["uuid"])' "$i")" \
        >"$T/blkid$i"
done
# the source's partitions stay mounted (xfs then needs nouuid for the copy)
mount -o ro "${LP[2]}" "$T/src2" || fail "mount source xfs"

# --- disk1: MBR, a primary ext4 partition and a logical one
make_tree "$T/tree5" 6
make_ext4_image "$T/p1.img" 24 "$T/tree5"
make_ext4_image "$T/p5.img" 16 "$T/tree5"
manifest "$T/tree5" >"$T/want5"
rm -rf "$T/tree5"
D1="$T/mbr.raw"
truncate -s 64M "$D1"
sfdisk -q "$D1" <<'SF' || fail "sfdisk dos"
label: dos
start=2048, size=24MiB, type=83
start=51200, size=36MiB, type=5
start=53248, size=16MiB, type=83
SF
sfdisk -d "$D1" >"$T/mbr.dump"
p1_start=$(awk '/mbr.raw1 /{gsub(",","",$4); print $4}' "$T/mbr.dump")
p5_start=$(awk '/mbr.raw5 /{gsub(",","",$4); print $4}' "$T/mbr.dump")
[[ -n $p1_start && -n $p5_start ]] || fail "sfdisk -d: $(cat "$T/mbr.dump")"
dd if="$T/p1.img" of="$D1" bs=512 seek="$p1_start" conv=notrunc status=none
dd if="$T/p5.img" of="$D1" bs=512 seek="$p5_start" conv=notrunc status=none

# the partitions' sizes and sums, from the image replicated
sync
while read -r n start size; do
    echo $(( size * 512 )) >"$T/size$n"
    dd if="$D0" bs=512 skip="$start" count="$size" status=none | sum - >"$T/sum$n"
done < <(sfdisk -J "$D0" | python3 -c '
import json, sys
for i, p in enumerate(json.load(sys.stdin)["partitiontable"]["partitions"]):
    print(i + 1, p["start"], p["size"])')

V=$(vault_path v)
ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" vm --disk disk0="$D0" --disk disk1="$D1" -q

M="$T/mnt"
mount_fg "$V" "$M"
P=$M/vm/latest
assert_eq "$(ls "$P" | tr '\n' ' ')" \
    "disk0.changes disk0.p1.raw disk0.p2.raw disk0.p3.raw disk0.raw disk0.vhd disk1.changes disk1.p1.raw disk1.p5.raw disk1.raw disk1.vhd point.json " \
    "files of a point with partitioned disks"
[[ ! -e $P/disk0.p4.raw && ! -e $P/disk1.p2.raw && ! -e $P/disk0.p01.raw ]] || fail "a partition that is not there"

for i in 1 2 3; do
    assert_eq "$(stat -c %s "$P/disk0.p$i.raw")" "$(cat "$T/size$i")" "size of disk0.p$i.raw"
    assert_file_sum "$P/disk0.p$i.raw" "$(cat "$T/sum$i")" "disk0.p$i.raw against partition $i of the source"
done
assert_file_sum "$P/disk1.p1.raw" "$(sum "$T/p1.img")" "disk1.p1.raw (MBR primary)"
assert_file_sum "$P/disk1.p5.raw" "$(sum "$T/p5.img")" "disk1.p5.raw (MBR logical)"

# point.json against blkid and sfdisk
python3 - "$P/point.json" "$T" <<'PY' || fail "point.json partitions"
import json, sys, os
p, t = json.load(open(sys.argv[1])), sys.argv[2]
d0, d1 = p["disks"]
assert d0["partition_table"] == "gpt" and d1["partition_table"] == "dos", (d0.get("partition_table"), d1.get("partition_table"))
assert [q["number"] for q in d0["partitions"]] == [1, 2, 3], d0["partitions"]
assert [q["number"] for q in d1["partitions"]] == [1, 5], d1["partitions"]
names = ["root", "data", "esp"]
for q in d0["partitions"]:
    i = q["number"]
    typ, label, uuid, partuuid = (open("%s/blkid%d" % (t, i)).read().rstrip("\n").split(" ") + [""] * 4)[:4]
    got = (q.get("filesystem"), q.get("label"), q.get("fs_uuid"), q.get("uuid", "").lower(), q.get("name"))
    want = (typ, label, uuid, partuuid.lower(), names[i - 1])
    assert got == want, "partition %d: %r, want %r" % (i, got, want)
    assert q["size"] == int(open("%s/size%d" % (t, i)).read()), q
    assert q["file"] == "disk0.p%d.raw" % i, q
assert d0["partitions"][0]["start"] == 1 << 20, d0["partitions"][0]
assert d0["partitions"][0]["type"].lower() == "0fc63daf-8483-4772-8e79-3d69d8477de4", d0["partitions"][0]
assert d0["partitions"][2]["type"].lower() == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", d0["partitions"][2]
assert [q["type"] for q in d1["partitions"]] == ["0x83", "0x83"], d1["partitions"]
assert all(q.get("filesystem") == "ext4" for q in d1["partitions"]), d1["partitions"]
PY

# SEEK_DATA is relative to the partition: the ext4 superblock's block.
assert_eq "$(python3 -c 'import os,sys; print(os.lseek(os.open(sys.argv[1], os.O_RDONLY), 0, os.SEEK_DATA))' "$P/disk1.p1.raw")" 0 \
    "SEEK_DATA 0 in disk1.p1.raw"

# loop-mount each partition file read-only; every file equals the source's
opts=(ro ro,nouuid ro)
for i in 1 2 3; do
    mkdir -p "$T/l$i"
    if (( i == 3 && ! VFAT_MOUNT )); then
        skip_part_facility "this kernel has no vfat: disk0.p3.raw read with mtools, not loop-mounted"
        MTOOLS_SKIP_CHECK=1 mcopy -s -i "$P/disk0.p$i.raw" ::/EFI ::/loader.cfg "$T/l$i/" || fail "mcopy out of disk0.p3.raw"
        manifest "$T/l$i" >"$T/got$i"
        cmp -s "$T/got$i" "$T/want$i" || { diff "$T/got$i" "$T/want$i" | head >&2; fail "files of disk0.p3.raw (vfat, mtools)"; }
        continue
    fi
    mount -o "loop,${opts[i-1]}" "$P/disk0.p$i.raw" "$T/l$i" || fail "mount -o loop,${opts[i-1]} disk0.p$i.raw"
    at_exit "umount '$T/l$i' 2>/dev/null"
    manifest "$T/l$i" >"$T/got$i"
    cmp -s "$T/got$i" "$T/want$i" || { diff "$T/got$i" "$T/want$i" | head >&2; fail "files of disk0.p$i.raw ($(head -c 4 "$T/blkid$i"))"; }
    umount "$T/l$i"
    msg "disk0.p$i.raw: $(wc -l <"$T/want$i") files equal the source's"
done
for i in 1 5; do
    mkdir -p "$T/m$i"
    mount -o loop,ro "$P/disk1.p$i.raw" "$T/m$i" || fail "mount -o loop,ro disk1.p$i.raw"
    at_exit "umount '$T/m$i' 2>/dev/null"
    manifest "$T/m$i" >"$T/gotm$i"
    cmp -s "$T/gotm$i" "$T/want5" || fail "files of disk1.p$i.raw"
    umount "$T/m$i"
done
umount "$T/src2"
unmount "$M"
