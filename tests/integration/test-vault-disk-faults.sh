#!/usr/bin/env bash
# The disk under a directory vault fails (root only: a loop device with a
# small ext4 file system):
# - out of space during replicate: rpfs replicate fails saying so (exit 1,
#   "No space left on device"), and the vault is as before: the same point
#   objects, config and index segments, one point, which exports exactly;
#   once space is freed the same replicate succeeds and both points export
#   exactly;
# - the disk returns EIO while a mount reads a point: every read fails with
#   EIO or gives the point's exact bytes, never a wrong byte, and the mount
#   stays up; with the disk back every read gives the point's bytes. The
#   EIO comes from device-mapper's `error` target swapped in under the
#   mounted file system where device-mapper is available, else from a
#   preload library that fails the daemon's reads of pack files with EIO
#   (preload-eio.c), and the test says which.
# (test-failback-faults.sh covers a full failback target.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need losetup mkfs.ext4 python3 blockdev
[[ $(id -u) == 0 ]] || skip_facility "needs root (loop devices, mounting ext4)"

# volume NAME MB [DM]: ext4 on a loop device (through a device-mapper
# linear device NAME when DM is given) mounted at $T/NAME; the device in
# DEV, the loop device in LOOP, its size in sectors in SECTORS.
volume() {
    local name=$1 mb=$2 dm=${3:-}
    truncate -s "${mb}M" "$T/$name.img"
    LOOP=$(losetup -f --show "$T/$name.img" 2>/dev/null) || skip_facility "cannot attach a loop device"
    track_loop "$LOOP"
    DEV=$LOOP
    SECTORS=$(blockdev --getsz "$LOOP")
    if [[ -n $dm ]]; then
        dmsetup create "$dm" --table "0 $SECTORS linear $LOOP 0" || return 1
        at_exit "dmsetup remove --retry $dm >/dev/null 2>&1"
        DEV=/dev/mapper/$dm
    fi
    mkfs.ext4 -q -F "$DEV" >/dev/null || fail "mkfs.ext4 $DEV failed"
    mkdir -p "$T/$name"
    mount -o errors=continue "$DEV" "$T/$name" || skip_facility "cannot mount ext4 from $DEV"
    at_exit "umount -l $T/$name 2>/dev/null"
}
# the vault's state apart from packs: names and checksums
snapshot() { (cd "$1" && find . -path ./packs -prune -o -type f -print0 | sort -z | xargs -0 sha256sum); }

# --- out of space
volume full 64
V=$T/full/vault
make_random "$T/a.raw" $((4 << 20)) one
make_random "$T/b.raw" $((24 << 20)) two   # incompressible
SUMA=$(sum "$T/a.raw") SUMB=$(sum "$T/b.raw")
ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" vm --disk "$T/a.raw" --time 20261122T100000Z -q
# leave about 8 MiB free
free=$(df -B1 --output=avail "$T/full" | tail -1)
fallocate -l $((free - (8 << 20))) "$T/full/filler" || fail "fallocate of the filler failed"
before=$(snapshot "$V") packs_before=$(find "$V/packs" -type f | wc -l)
expect_fail 1 rpfs replicate "$V" vm --disk "$T/b.raw" --time 20261122T110000Z -q
msg "replicate said: $ERR"
expect_err_contains "No space left"
assert_eq "$(snapshot "$V")" "$before" "a replicate that ran out of space leaves points, config and index as they were"
assert_eq "$(rpfs points "$V" vm | grep -c 20261122T)" 1 "still one point"
ok rpfs export "$V" vm disk0 --point 20261122T100000Z -o "$T/x.out"
assert_file_sum "$T/x.out" "$SUMA" "the earlier point exports exactly"
rm -f "$T/x.out"
msg "out of space: replicate failed cleanly, the vault is as before" \
    "($(( $(find "$V/packs" -type f | wc -l) - packs_before )) pack files left unreferenced, $(du -sb "$V/packs" | cut -f1) bytes in packs/)"
rm -f "$T/full/filler"
ok rpfs replicate "$V" vm --disk "$T/b.raw" --time 20261122T110000Z -q
for p in 20261122T100000Z:$SUMA 20261122T110000Z:$SUMB; do
    ok rpfs export "$V" vm disk0 --point "${p%%:*}" -o "$T/x.out"
    assert_file_sum "$T/x.out" "${p#*:}" "point ${p%%:*} after space was freed"
    rm -f "$T/x.out"
done
msg "after space was freed: the same replicate succeeded, both points export exactly"
umount "$T/full"
rm -f "$T/b.raw" "$T/full.img"

# --- EIO under a mounted vault
DM=
if command -v dmsetup >/dev/null 2>&1 && dmsetup version >/dev/null 2>&1; then
    DM=rpfs-t$$
    volume eio 64 "$DM" || DM=
fi
if [[ -z $DM ]]; then
    skip_part_facility "no device-mapper in this kernel: EIO comes from preload-eio.c instead"
    [[ -n $(findmnt -rn "$T/eio" 2>/dev/null) ]] || volume eio 64
    PRE=${RPFS_TEST_PRELOAD_EIO:-}
    [[ -f $PRE ]] || fail "RPFS_TEST_PRELOAD_EIO is not the preload library (meson test sets it): '$PRE'"
fi
V=$T/eio/vault
make_random "$T/c.raw" $((8 << 20)) three
SUMC=$(sum "$T/c.raw")
ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" vm --disk "$T/c.raw" --time 20261122T100000Z -q
# a cold page cache: the file system mounted again
umount "$T/eio"
mount -o errors=continue "$DEV" "$T/eio"
M=$T/mnt FLAG=$T/eio-on
if [[ -n $DM ]]; then
    mount_fg "$V" "$M" --cache "$T/cache" --timeout 5
else
    RPFS_TEST_EIO_FLAG=$FLAG LD_PRELOAD=$PRE ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
        mount_fg "$V" "$M" --cache "$T/cache" --timeout 5
fi
[[ -f $M/vm/latest/disk0.raw ]] || fail "the point is not in the mount"
disk_fails() {
    if [[ -n $DM ]]; then
        dmsetup suspend "$DM" && dmsetup load "$DM" --table "0 $SECTORS error" && dmsetup resume "$DM"
    else
        touch "$FLAG"
    fi
}
disk_back() {
    if [[ -n $DM ]]; then
        dmsetup suspend "$DM" && dmsetup load "$DM" --table "0 $SECTORS linear $LOOP 0" && dmsetup resume "$DM"
    else
        rm -f "$FLAG"
    fi
}
disk_fails
# read every 1 MiB piece: each must fail with EIO or be exactly the source's
python3 - "$M/vm/latest/disk0.raw" "$T/c.raw" >"$T/eio.out" <<'PY'
import errno, os, sys
mnt, src = sys.argv[1], sys.argv[2]
size = os.path.getsize(src)
fd = os.open(mnt, os.O_RDONLY)
eio = good = bad = 0
with open(src, "rb") as s:
    for off in range(0, size, 1 << 20):
        s.seek(off)
        want = s.read(1 << 20)
        try:
            got = os.pread(fd, 1 << 20, off)
        except OSError as e:
            if e.errno == errno.EIO:
                eio += 1
            else:
                print(f"error {e} at {off}")
                bad += 1
            continue
        if got == want:
            good += 1
        else:
            print(f"wrong bytes at {off}")
            bad += 1
print(f"eio={eio} good={good} bad={bad}")
PY
msg "reads with the disk failing ($([[ -n $DM ]] && echo device-mapper error || echo preload-eio)): $(tail -1 "$T/eio.out")"
grep -q "bad=0$" "$T/eio.out" || { cat "$T/eio.out" >&2; fail "a read under EIO returned wrong bytes or another error"; }
grep -q "^eio=0 " "$T/eio.out" && fail "no read saw the disk's EIO"
mounted "$M" || fail "the mount went away under EIO"
stats "$M"
msg "mount stats: errors=${ST[errors]:-?}"
disk_back
assert_eq "$(sum "$M/vm/latest/disk0.raw")" "$SUMC" "with the disk back, the point reads exactly"
unmount "$M"
assert_eq "${UMOUNT_RC:-0}" 0 "the daemon exits 0"
msg "EIO from the vault's disk: reads failed with EIO, never wrong bytes; exact again after"
