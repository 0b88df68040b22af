#!/usr/bin/env bash
# The writable on-prem side of the mount (rpfs mount --onprem DIR):
# MNT/failback is DIR. A manual failback with cp, dd conv=notrunc, plain dd
# (O_TRUNC) or rsync --inplace leaves the target equal to the point, and
# only the changed blocks are written (cp also fetches only those: it
# reaches rpfs as copy_file_range, handled as a delta sync). dd, which
# reads the point and writes the target in one process, reads the target's
# matching blocks from the target (an on-prem seed): it fetches only the
# blocks that differ there. New files are created sparse. --failback-mode
# full writes every block.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need mkfs.ext4 python3 rsync strace

BS=65536
make_tree_image "$T/v1.raw" 64 40
cp "$T/v1.raw" "$T/v2.raw"
# ~1.5% of the non-zero blocks change between the points
mapfile -t NZ < <(nonzero_blocks "$T/v1.raw" $BS)
CHANGED=()
for (( i = 7; i < ${#NZ[@]}; i += 67 )); do CHANGED+=("${NZ[$i]}"); done
overwrite_blocks "$T/v2.raw" $BS failback "${CHANGED[@]}"
NCH=${#CHANGED[@]}
msg "${#NZ[@]} non-zero blocks, $NCH changed"
SUM1=$(sum "$T/v1.raw") SUM2=$(sum "$T/v2.raw")

V=$(vault_path vault)
ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" vm --disk "$T/v1.raw" --time 20261122T100000Z -q
ok rpfs replicate "$V" vm --disk "$T/v2.raw" --time 20261122T101500Z -q

ONP=$T/onprem
mkdir -p "$ONP"
for t in cp dd ddt rsync; do cp --sparse=always "$T/v1.raw" "$ONP/$t.img"; done
M=$T/mnt
mount_fg "$V" "$M" --cache "$T/cache" --onprem "$ONP"

[[ -d $M/failback ]] || fail "$M/failback is missing"
ls "$M" | grep -qx failback || fail "failback not listed in $M"

declare -A ST0
snap() { stats "$M"; for k in blocks_written blocks_fetched blocks_skipped bytes_seed; do ST0[$k]=${ST[$k]}; done; }
delta() { stats "$M"; echo $(( ${ST[$1]} - ${ST0[$1]} )); }

# cp: copy_file_range -> delta sync: fetch and write only the changed blocks.
# Holes of the target are compared as zeros without reading them: one
# unchanged data block punched out of the target must be written back.
PUNCH=${NZ[3]}
fallocate --punch-hole --keep-size -o $(( PUNCH * BS )) -l $BS "$ONP/cp.img" ||
    fail "could not punch a hole into cp.img"
snap
cp "$M/vm/latest/disk0.raw" "$M/failback/cp.img" || fail "cp failed"
assert_file_sum "$ONP/cp.img" "$SUM2" "cp target equals the point"
W=$(delta blocks_written) F=$(delta blocks_fetched)
msg "cp: $W blocks written, $F fetched ($NCH changed, 1 punched)"
assert_eq "$W" $(( NCH + 1 )) "cp: blocks written"
assert_le "$F" $(( NCH + 3 )) "cp: blocks fetched"

# dd conv=notrunc: every block read, only changed ones written. dd opens
# the point and then the target: the target becomes the point's on-prem
# seed for dd's reads, so its unchanged blocks are read from it (verified)
# and nothing is fetched (the changed blocks are in the cache since cp)
snap
dd if="$M/vm/latest/disk0.raw" of="$M/failback/dd.img" bs=1M conv=notrunc status=none || fail "dd failed"
assert_file_sum "$ONP/dd.img" "$SUM2" "dd conv=notrunc target equals the point"
W=$(delta blocks_written) F=$(delta blocks_fetched) SEEDB=$(delta bytes_seed)
msg "dd conv=notrunc: $W blocks written, $F fetched, $SEEDB bytes read from the target as seed"
assert_eq "$W" "$NCH" "dd conv=notrunc: blocks written"
assert_eq "$F" 0 "dd conv=notrunc: blocks fetched (unchanged ones come from the target)"
# (all unchanged non-zero blocks but the one cp fetched back into the cache)
assert_ge "$SEEDB" $(( (${#NZ[@]} - NCH - 1) * BS )) "dd conv=notrunc: bytes read from the target as seed"
grep -q "copies it to failback/dd.img" "$MLOG" ||
    fail "the daemon's log does not say that dd.img serves as the seed"

# A block read from the target as seed is noted as verified there, so that
# writing the same bytes back is compared by checksum (fs/verified.c). A
# write through the mount in between drops the note: the point's block
# written after it must reach the target, not be skipped as "the same".
# O_DIRECT: the read reaches rpfs, not the kernel's cache of the point.
cp --sparse=always "$T/v2.raw" "$ONP/note.img"
snap
python3 - "$M/vm/latest/disk0.raw" "$M/failback/note.img" $BS "${NZ[5]}" <<'PY' || fail "the note check failed"
import mmap, os, sys
src, dst, bs, b = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fs = os.open(src, os.O_RDONLY | os.O_DIRECT)
fd = os.open(dst, os.O_RDWR)
buf = mmap.mmap(-1, bs)
assert os.preadv(fs, [buf], b * bs) == bs     # from note.img as seed: noted
os.pwrite(fd, b"\x5a" * bs, b * bs)          # other bytes through the mount
os.pwrite(fd, bytes(buf), b * bs)             # the point's block again
os.close(fd)
os.close(fs)
PY
assert_file_sum "$ONP/note.img" "$SUM2" "a block written back after another write through the mount"
assert_eq "$(delta blocks_written)" 2 "note check: blocks written (the other bytes, then the point's block)"

# plain dd opens with O_TRUNC: truncation is deferred, the compare still
# works, and the old content serves as seed. It reads the .vhd view (the
# disk's bytes, without the footer): the kernel already caches the pages
# of disk0.raw that dd read above, so those reads would not reach rpfs.
snap
dd if="$M/vm/latest/disk0.vhd" of="$M/failback/ddt.img" bs=1M iflag=count_bytes count="$(file_size "$T/v2.raw")" \
    status=none || fail "dd (O_TRUNC) failed"
assert_file_sum "$ONP/ddt.img" "$SUM2" "dd (O_TRUNC) target equals the point"
W=$(delta blocks_written) F=$(delta blocks_fetched) SEEDB=$(delta bytes_seed)
msg "dd (O_TRUNC): $W blocks written, $F fetched, $SEEDB bytes read from the target as seed"
assert_eq "$W" "$NCH" "dd (O_TRUNC): blocks written"
assert_eq "$F" 0 "dd (O_TRUNC): blocks fetched"
assert_ge "$SEEDB" $(( (${#NZ[@]} - NCH - 1) * BS )) "dd (O_TRUNC): bytes read from the target as seed"

# rsync --inplace
snap
rsync --inplace "$M/vm/latest/disk0.raw" "$M/failback/rsync.img" || fail "rsync failed"
assert_file_sum "$ONP/rsync.img" "$SUM2" "rsync --inplace target equals the point"
W=$(delta blocks_written)
msg "rsync --inplace: $W blocks written"
assert_le "$W" $(( NCH + 2 )) "rsync --inplace: blocks written"

# dd of point 1 over rsync.img (now point 2): the seed serves the
# unchanged blocks; where it holds point 2's version of a block its
# checksum does not match and point 1's block is fetched
snap
dd if="$M/vm/points/20261122T100000Z/disk0.raw" of="$M/failback/rsync.img" bs=256K conv=notrunc status=none ||
    fail "dd of point 1 failed"
assert_file_sum "$ONP/rsync.img" "$SUM1" "dd of point 1 over point 2"
W=$(delta blocks_written) F=$(delta blocks_fetched)
msg "dd of point 1 over point 2: $W blocks written, $F fetched"
assert_eq "$W" "$NCH" "dd of point 1 over point 2: blocks written"
assert_eq "$F" "$NCH" "dd of point 1 over point 2: blocks fetched (the seed's differing blocks are not used)"

# back to point 1 with cp: the same blocks change back
snap
cp "$M/vm/points/20261122T100000Z/disk0.raw" "$M/failback/cp.img" || fail "cp back failed"
assert_file_sum "$ONP/cp.img" "$SUM1" "cp back to point 1"
assert_eq "$(delta blocks_written)" "$NCH" "cp back: blocks written"

# a new file (alternate location) is created sparse
cp "$M/vm/latest/disk0.raw" "$M/failback/new.img" || fail "cp to a new file failed"
assert_file_sum "$ONP/new.img" "$SUM2" "new file equals the point"
alloc=$(( $(stat -c %b "$ONP/new.img") * 512 ))
data=$(( ${#NZ[@]} * BS ))
msg "new file: $alloc bytes allocated for $data bytes of non-zero blocks"
assert_le "$alloc" $(( data + 4 * 1024 * 1024 )) "new file is sparse"

# a shorter copy over a longer file leaves exactly the shorter content
head -c 1000000 "$T/v2.raw" >"$T/short"
cp "$T/short" "$M/failback/cp.img" || fail "cp of a short file failed"
assert_file_sum "$ONP/cp.img" "$(sum "$T/short")" "short copy over a long file"

# ordinary file operations pass through
echo hello >"$M/failback/note.txt" && mkdir "$M/failback/d" && mv "$M/failback/note.txt" "$M/failback/d/" ||
    fail "file operations in $M/failback failed"
[[ $(cat "$ONP/d/note.txt") == hello ]] || fail "note.txt not in the on-prem directory"
rm -r "$M/failback/d" || fail "rm in $M/failback failed"
# point files stay read-only
if echo x 2>/dev/null >"$M/vm/latest/disk0.raw"; then fail "a point file was writable"; fi
# In a mount with --onprem, point files count as fully allocated, so that
# cp copies them with copy_file_range (the daemon's local compare), not
# with read/write as it would a sparse source; SEEK_HOLE still finds holes.
read -r sz blk < <(stat -c '%s %b' "$M/vm/latest/disk0.raw")
assert_eq "$blk" $(( (sz + 511) / 512 )) "point file st_blocks under --onprem"
strace -f -e trace=copy_file_range -o "$T/cp.strace" cp "$M/vm/latest/disk0.raw" "$T/probe.img" ||
    fail "cp of a point file failed"
grep -q 'copy_file_range(' "$T/cp.strace" || fail "cp did not use copy_file_range on a point file: $(head -3 "$T/cp.strace")"
rm -f "$T/probe.img"
unmount_ok "$M"

# --failback-mode full: every block written
cp --sparse=always "$T/v1.raw" "$ONP/full.img"
mount_fg "$V" "$M" --cache "$T/cache" --onprem "$ONP" --failback-mode full
cp "$M/vm/latest/disk0.raw" "$M/failback/full.img" || fail "cp (full) failed"
assert_file_sum "$ONP/full.img" "$SUM2" "full mode target equals the point"
stats "$M"
msg "full mode: ${ST[blocks_written]} blocks written"
assert_ge "${ST[blocks_written]}" "${#NZ[@]}" "full mode writes every block"
unmount_ok "$M"
msg PASS
