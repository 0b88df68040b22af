#!/usr/bin/env bash
# The ext4 filesystem inside a mounted point loop-mounts read-only, and every
# file in it is the original, by sha256.
#
# Two points of one VM: an ext4 image of a tree of real files, then an image
# of that tree with files added, changed and removed.  With rpfs mounted,
# `mount -o loop,ro MNT/vm/latest/disk0.raw` and the same for the first point
# (both at once): every file's sha256 equals the tree's.  The filesystems are
# unmounted, then rpfs; its daemon exits 0.  Needs root and loop devices.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
[[ $(id -u) == 0 ]] || skip_facility "needs root to loop-mount"
need losetup mount umount mkfs.ext4 python3
losetup -f >/dev/null 2>&1 || skip_facility "no free loop device"

make_tree "$T/tree1" 56
make_ext4_image "$T/v1.raw" 96 "$T/tree1"
cp -a "$T/tree1" "$T/tree2"
mapfile -t FILES < <(cd "$T/tree2" && find . -type f -size +8k | sort | head -40)
make_random "$T/tree2/new-random.bin" $(( 3 * 1024 * 1024 + 123 )) loop2
printf 'a small new file\n' >"$T/tree2/small.txt"
rm -f -- "$T/tree2/${FILES[0]}" "$T/tree2/${FILES[1]}"
for f in "${FILES[@]:2:5}"; do
    printf 'appended line\n' >>"$T/tree2/$f"
done
make_ext4_image "$T/v2.raw" 96 "$T/tree2"

manifest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }
manifest "$T/tree1" >"$T/want1"
manifest "$T/tree2" >"$T/want2"
rm -rf "$T/tree1" "$T/tree2"

V=$(vault_path vault)
P1=20261122T100000Z P2=20261122T101500Z
ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" vm --disk "$T/v1.raw" --time $P1 -q
ok rpfs replicate "$V" vm --disk "$T/v2.raw" --time $P2 -q

M="$T/mnt"
mount_fg "$V" "$M" --cache "$T/cache"

# loop_mount IMAGE DIR: mount -o loop,ro; unmounted on exit before rpfs
loop_mount() {
    mkdir -p "$2"
    at_exit "mountpoint -q '$2' && umount '$2'"
    if ! mount -o loop,ro "$1" "$2" 2>"$T/mount.err"; then
        if grep -Eqi 'permission denied|not permitted|failed to setup loop|no such device' "$T/mount.err"; then
            skip_facility "cannot loop-mount here: $(cat "$T/mount.err")"
        fi
        cat "$T/mount.err" >&2
        fail "mount -o loop,ro $1 $2 failed"
    fi
}
loop_mount "$M/vm/latest/disk0.raw" "$T/fs2"
loop_mount "$M/vm/points/$P1/disk0.raw" "$T/fs1"
findmnt -rn -M "$T/fs2" -o FSTYPE,OPTIONS | grep -q '^ext4 ro' ||
    fail "$T/fs2 is not a read-only ext4 mount: $(findmnt -rn -M "$T/fs2")"

manifest "$T/fs2" >"$T/got2" 2>"$T/got2.err" ||
    fail "reading the files of the loop-mounted latest point failed: $(head -3 "$T/got2.err")"
manifest "$T/fs1" >"$T/got1" 2>"$T/got1.err" ||
    fail "reading the files of the loop-mounted first point failed: $(head -3 "$T/got1.err")"
if ! diff -q "$T/want2" "$T/got2" >/dev/null; then
    diff "$T/want2" "$T/got2" | head -20 >&2
    fail "files of vm/latest/disk0.raw (loop-mounted) differ from the tree"
fi
if ! diff -q "$T/want1" "$T/got1" >/dev/null; then
    diff "$T/want1" "$T/got1" | head -20 >&2
    fail "files of vm/points/$P1/disk0.raw (loop-mounted) differ from the tree"
fi
msg "$(wc -l <"$T/got2") + $(wc -l <"$T/got1") files read through the loop mounts, all equal"

umount "$T/fs1" || fail "umount $T/fs1"
umount "$T/fs2" || fail "umount $T/fs2"
losetup -j "$M/vm/latest/disk0.raw" 2>/dev/null | grep -q . &&
    fail "a loop device is still attached to the point's disk after umount"

stats "$M"
msg "stats: $(stats_line)"
assert_eq "${ST[errors]}" 0 "stats errors"
unmount_ok "$M"
