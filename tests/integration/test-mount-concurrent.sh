#!/usr/bin/env bash
# Concurrent and random reads through the mount.
#
# Two points of a ~128 MiB disk (an ext4 image of real files whose size is not
# a multiple of the block size, with random bytes in its last partial block;
# the second point with ~1% of its blocks changed).  With a fresh cache:
# - 16 threads start together and each makes 40 reads of one of the two
#   points' disk0.raw at random offsets and sizes (1 B .. 2 MiB: whole
#   blocks, tiny and unaligned reads, reads across block boundaries, across
#   the end of the disk and past it): every read equals the same range of the
#   source, and no block is fetched twice (the blocks fetched are at most
#   the distinct non-zero blocks of both points);
# - then, remounted with another fresh cache, 32 random aligned 4 KiB reads
#   (one per non-zero block): the vault fetches stay far below the disk's
#   size (< 64 blocks and < 64 blocks' bytes).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need mkfs.ext4 python3

make_tree "$T/tree" 88
SIZE=$(( 128 * 1024 * 1024 + 3 * 512 ))
make_ext4_image "$T/d1.raw" 128 "$T/tree"
rm -rf "$T/tree"
truncate -s "$SIZE" "$T/d1.raw"
make_random "$T/tail" 1536 tail
dd if="$T/tail" of="$T/d1.raw" bs=512 seek=$(( SIZE / 512 - 3 )) conv=notrunc status=none
rm -f "$T/tail"
cp "$T/d1.raw" "$T/d2.raw"
mapfile -t NZ < <(nonzero_blocks "$T/d1.raw" $BS)
mapfile -t CHG < <(printf '%s\n' "${NZ[@]}" | python3 -c '
import random, sys
b = [int(x) for x in sys.stdin.read().split()]
for x in sorted(random.Random(7).sample(b, max(8, len(b) // 100))): print(x)')
overwrite_blocks "$T/d2.raw" $BS conc2 "${CHG[@]}"
msg "disk: $SIZE bytes, ${#NZ[@]} non-zero 64 KiB blocks, ${#CHG[@]} changed in point 2"

V=$(vault_path vault)
P1=20261122T100000Z P2=20261122T101500Z
ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" vm --disk "$T/d1.raw" --time $P1 -q
ok rpfs replicate "$V" vm --disk "$T/d2.raw" --time $P2 -q

# --- 16 concurrent readers ---------------------------------------------------------
M="$T/mnt"
mount_fg "$V" "$M" --cache "$T/cache1"
assert_eq "$(file_size "$M/vm/points/$P1/disk0.raw")" "$SIZE" "size of disk0.raw"
out=$(timeout 120 "${MH[@]}" concurrent 16 100 conc \
      "$M/vm/points/$P1/disk0.raw:$T/d1.raw" "$M/vm/points/$P2/disk0.raw:$T/d2.raw") || {
    rc=$?
    printf '%s\n' "$out" >&2
    (( rc == 124 )) && fail "concurrent readers hung (120 s)"
    fail "concurrent reads through the mount differ from the source"
}
msg "$out"
stats "$M"
msg "stats: $(stats_line)"
assert_eq "${ST[errors]}" 0 "stats errors after the concurrent reads"
DISTINCT=$(mh distinct-blocks $BS "$T/d1.raw" "$T/d2.raw")
assert_le "${ST[blocks_fetched]}" "$DISTINCT" \
    "blocks fetched by 16 readers and readahead <= the $DISTINCT distinct non-zero blocks (none fetched twice)"
unmount_ok "$M"

# --- random 4 KiB reads fetch little -------------------------------------------------
mount_fg "$V" "$M" --cache "$T/cache2"
stats "$M"
F0=${ST[blocks_fetched]} B0=${ST[bytes_fetched]}
out=$(timeout 60 "${MH[@]}" randread "$M/vm/latest/disk0.raw" "$T/d2.raw" 32 rand4k $BS) ||
    { printf '%s\n' "$out" >&2; fail "random 4 KiB reads"; }
msg "$out"
stats "$M"
msg "after 32 random 4 KiB reads: $(stats_line)"
FETCHED=$(( ST[blocks_fetched] - F0 )) BYTES=$(( ST[bytes_fetched] - B0 ))
assert_le "$FETCHED" 64 "blocks fetched for 32 random 4 KiB reads"
assert_lt "$BYTES" $(( 64 * BS )) "bytes fetched for 32 random 4 KiB reads"
assert_ge "$FETCHED" 1 "blocks fetched for 32 random 4 KiB reads with an empty cache"
assert_eq "${ST[errors]}" 0 "stats errors"
unmount_ok "$M"
