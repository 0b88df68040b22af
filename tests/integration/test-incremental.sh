#!/usr/bin/env bash
# Replication is incremental by content, measured from the vault's own size.
#
# Point 1: an ext4 image with ~128 MiB of real files.  Point 2: the same image
# with ~1% of its non-zero 64 KiB blocks overwritten with random data: the vault
# grows by about the changed bytes (<= 1.5x + 256 KiB) and by at least half of
# them (random data does not compress).  Point 3: the identical image again: the
# vault hardly grows.  Point 1 is stored in less than the image's non-zero data
# (compression).  Every point exports to its own version's bytes.
. "$(dirname "$0")/lib.sh"
need mkfs.ext4 python3

BS=65536
make_tree_image "$T/disk.raw" 160 112
SUM1=$(sum "$T/disk.raw")

mapfile -t NZ < <(nonzero_blocks "$T/disk.raw" $BS)
NZ_BYTES=$(( ${#NZ[@]} * BS ))
msg "image: $(file_size "$T/disk.raw") bytes, ${#NZ[@]} non-zero 64 KiB blocks"

V=$(vault_path vault)
ok rpfs init "$V"
EMPTY=$(vault_bytes "$V")

ok rpfs replicate "$V" vm1 --disk "$T/disk.raw" --time 20261122T100000Z
AFTER1=$(vault_bytes "$V")
msg "point 1: vault $EMPTY -> $AFTER1 bytes; non-zero data $NZ_BYTES bytes"
assert_gt $(( AFTER1 - EMPTY )) $(( 1024 * 1024 )) "point 1 stored something"
assert_lt "$AFTER1" "$NZ_BYTES" "point 1 is compressed: vault smaller than the image's non-zero data"

# ~1% of the non-zero blocks, chosen deterministically, scattered
N=$(( ${#NZ[@]} / 100 ))
(( N >= 8 )) || N=8
mapfile -t CHG < <(printf '%s\n' "${NZ[@]}" | python3 -c '
import random, sys
b = [int(x) for x in sys.stdin.read().split()]
for x in sorted(random.Random(42).sample(b, int(sys.argv[1]))): print(x)' "$N")
cp "$T/disk.raw" "$T/disk1.raw"
overwrite_blocks "$T/disk.raw" $BS change1 "${CHG[@]}"
SUM2=$(sum "$T/disk.raw")
assert_ne "$SUM2" "$SUM1" "image changed"
CHANGED=$(( N * BS ))

ok rpfs replicate "$V" vm1 --disk "$T/disk.raw" --time 20261122T101500Z
AFTER2=$(vault_bytes "$V")
GROWTH=$(( AFTER2 - AFTER1 ))
LIMIT=$(( CHANGED * 3 / 2 + 256 * 1024 ))
msg "point 2: $N blocks ($CHANGED bytes) changed; vault grew $GROWTH bytes (limit $LIMIT)"
assert_le "$GROWTH" "$LIMIT" "incremental point stores about the changed bytes"
assert_ge "$GROWTH" $(( CHANGED / 2 )) "incremental point stores the changed (incompressible) blocks"

ok rpfs replicate "$V" vm1 --disk "$T/disk.raw" --time 20261122T103000Z
AFTER3=$(vault_bytes "$V")
GROWTH3=$(( AFTER3 - AFTER2 ))
msg "point 3 (identical image): vault grew $GROWTH3 bytes"
assert_le "$GROWTH3" $(( 96 * 1024 )) "an unchanged disk costs only metadata"

# every point exports to its own version
export_check "$V" vm1 disk0 "$SUM1" --point 20261122T100000Z
export_check "$V" vm1 disk0 "$SUM2" --point 20261122T101500Z
export_check "$V" vm1 disk0 "$SUM2" --point 20261122T103000Z
export_check_stdout "$V" vm1 disk0 "$SUM1" --point 20261122T100000Z
export_check "$V" vm1 disk0 "$SUM2" --point latest

# The same data under another VM name is not stored again either.
ok rpfs replicate "$V" vm2 --disk "$T/disk1.raw" --time 20261122T110000Z
AFTER4=$(vault_bytes "$V")
msg "another VM with point 1's image: vault grew $(( AFTER4 - AFTER3 )) bytes"
assert_le $(( AFTER4 - AFTER3 )) $(( 96 * 1024 )) "identical data of another VM costs only metadata"
export_check "$V" vm2 disk0 "$SUM1"

# A second disk changed in a few blocks, with another block size vault: 4 KiB
# blocks, 1 changed 4 KiB block costs about 4 KiB.
V4=$(vault_path vault4k)
ok rpfs init "$V4" --block-size 4K
head -c $(( 32 * 1024 * 1024 )) "$T/disk1.raw" >"$T/small.raw"
ok rpfs replicate "$V4" s --disk "$T/small.raw" --time 20261122T100000Z
A=$(vault_bytes "$V4")
mapfile -t NZ4 < <(nonzero_blocks "$T/small.raw" 4096)
overwrite_blocks "$T/small.raw" 4096 change4k "${NZ4[100]}" "${NZ4[$(( ${#NZ4[@]} / 2 ))]}"
ok rpfs replicate "$V4" s --disk "$T/small.raw" --time 20261122T101500Z
B=$(vault_bytes "$V4")
msg "4 KiB-block vault: 2 changed blocks grew it by $(( B - A )) bytes"
assert_le $(( B - A )) $(( 2 * 4096 * 3 / 2 + 256 * 1024 )) "4 KiB vault: 2 changed blocks"
export_check "$V4" s disk0 "$(sum "$T/small.raw")" --point 20261122T101500Z
