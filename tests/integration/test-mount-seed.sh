#!/usr/bin/env bash
# Seeds: blocks a local copy already holds are read from it, not fetched.
#
# Point 1: an ext4 image of real files.  Point 2: the same with ~1.5% of its
# non-zero 64 KiB blocks overwritten with random data.  Point 3: point 1 with
# 8 of its blocks also copied to places that were zero (blocks that "moved").
# - Fresh cache, --seed vm/disk0=<copy of point 1's image>: point 2 reads
#   back exactly, fetching only the changed blocks (blocks_fetched between
#   changed and changed + manifest chunks), bytes_seed > 0; point 3 fetches
#   no data block at all (its moved blocks are found elsewhere in the seed).
# - The same with the seed as qcow2.
# - A seed changed under the mount (a few of its blocks overwritten after
#   mounting, fresh cache): point 2 still reads back exactly, no read fails,
#   and the overwritten blocks come from the vault.
# - A missing seed file: rpfs mount exits 1 naming the path.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need mkfs.ext4 qemu-img python3

make_tree_image "$T/v1.raw" 64 40
SIZE=$(file_size "$T/v1.raw")
NCHUNKS=$(( (SIZE + 512 * BS - 1) / (512 * BS) ))

# changed, moved and seed-overwritten blocks: disjoint, deterministic; the
# moved and seed-overwritten ones hold content found once in v1
python3 - "$T/v1.raw" $BS >"$T/plan" <<'EOF'
import hashlib, random, sys
path, bs = sys.argv[1], int(sys.argv[2])
zero = bytes(bs)
data = open(path, "rb").read()
blocks = [data[i:i + bs] for i in range(0, len(data), bs)]
count = {}
for b in blocks:
    count[b] = count.get(b, 0) + 1
nz = [i for i, b in enumerate(blocks) if b != zero]
zeros = [i for i, b in enumerate(blocks) if b == zero]
unique = [i for i in nz if count[blocks[i]] == 1]
r = random.Random(11)
changed = sorted(r.sample(nz, max(8, len(nz) * 15 // 1000)))
rest = [i for i in unique if i not in set(changed)]
moved_src = sorted(r.sample(rest, 8))
rest = [i for i in rest if i not in set(moved_src)]
moved_dst = sorted(r.sample(zeros, 8))
seedbad = sorted(r.sample(rest, 4))
print(" ".join(map(str, changed)))
print(" ".join(map(str, moved_src)))
print(" ".join(map(str, moved_dst)))
print(" ".join(map(str, seedbad)))
print(len(nz))
EOF
{ read -ra CHG; read -ra MSRC; read -ra MDST; read -ra SEEDBAD; read -r NNZ; } <"$T/plan"
N=${#CHG[@]}
msg "image: $SIZE bytes, $NNZ non-zero blocks, $N changed in point 2 ($(( N * 100 / NNZ )).$(( N * 1000 / NNZ % 10 ))%)"

cp "$T/v1.raw" "$T/v2.raw"
overwrite_blocks "$T/v2.raw" $BS seed2 "${CHG[@]}"
cp "$T/v1.raw" "$T/v3.raw"
for i in "${!MSRC[@]}"; do
    dd if="$T/v1.raw" of="$T/v3.raw" bs=$BS skip="${MSRC[i]}" seek="${MDST[i]}" count=1 \
       conv=notrunc status=none
done
SUM2=$(sum "$T/v2.raw") SUM3=$(sum "$T/v3.raw")

V=$(vault_path vault)
P1=20261122T100000Z P2=20261122T101500Z P3=20261122T103000Z
ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" vm --disk "$T/v1.raw" --time $P1 -q
ok rpfs replicate "$V" vm --disk "$T/v2.raw" --time $P2 -q
ok rpfs replicate "$V" vm --disk "$T/v3.raw" --time $P3 -q

cp "$T/v1.raw" "$T/seed.raw"
qemu-img convert -f raw -O qcow2 "$T/v1.raw" "$T/seed.qcow2" || fail "qemu-img convert"
M="$T/mnt"

# seeded_read SEED CACHE: mount with the seed, read point 2 then point 3
seeded_read() {
    local seed=$1 cache=$2 f0
    mount_fg "$V" "$M" --cache "$cache" --seed "vm/disk0=$seed"
    stats "$M"
    f0=${ST[blocks_fetched]}
    assert_eq "$(msum "$M/vm/points/$P2/disk0.raw")" "$SUM2" "point 2 read with seed $(basename "$seed")"
    stats "$M"
    msg "seed $(basename "$seed"), point 2: $(stats_line)"
    assert_ge $(( ST[blocks_fetched] - f0 )) "$N" "blocks fetched >= the $N changed blocks"
    assert_le $(( ST[blocks_fetched] - f0 )) $(( N + NCHUNKS )) \
        "blocks fetched <= the $N changed blocks + $NCHUNKS manifest chunks (seed $(basename "$seed"))"
    assert_gt "${ST[bytes_seed]}" 0 "bytes_seed with seed $(basename "$seed")"
    assert_eq "${ST[errors]}" 0 "stats errors"
    msg "seed $(basename "$seed"): fetched $(( ST[blocks_fetched] - f0 )) blocks, ${ST[bytes_fetched]} bytes for $N changed blocks (~$(( N * (BS + 8) )) bytes stored)"
    f0=${ST[blocks_fetched]}
    assert_eq "$(msum "$M/vm/points/$P3/disk0.raw")" "$SUM3" "point 3 read with seed $(basename "$seed")"
    stats "$M"
    assert_le $(( ST[blocks_fetched] - f0 )) "$NCHUNKS" \
        "point 3 (blocks moved within the seed) fetches no data block (<= its $NCHUNKS manifest chunks)"
    unmount_ok "$M"
}
seeded_read "$T/seed.raw" "$T/cache1"
seeded_read "$T/seed.qcow2" "$T/cache2"

# --- the seed changes under the mount -------------------------------------------------
mount_fg "$V" "$M" --cache "$T/cache3" --seed "vm/disk0=$T/seed.raw"
[[ -d $M/vm/points/$P2 ]] || fail "point 2 not in the mount"
sleep 1   # a different mtime, even on coarse-grained file systems
overwrite_blocks "$T/seed.raw" $BS seedbad "${SEEDBAD[@]}"
stats "$M"
f0=${ST[blocks_fetched]}
assert_eq "$(msum "$M/vm/points/$P2/disk0.raw")" "$SUM2" "point 2 read with a seed changed under the mount"
stats "$M"
msg "seed changed under the mount: $(stats_line)"
assert_eq "${ST[errors]}" 0 "no read failed with a seed changed under the mount"
assert_ge $(( ST[blocks_fetched] - f0 )) $(( N + ${#SEEDBAD[@]} )) \
    "the ${#SEEDBAD[@]} seed blocks overwritten under the mount are fetched from the vault"
unmount_ok "$M"

# --- a missing seed file ---------------------------------------------------------------
mkdir "$T/mnt4"
expect_mount_fail 1 "$V" "$T/mnt4" --cache "$T/cache4" --seed "vm/disk0=$T/no-such-seed.raw"
expect_err_contains "$T/no-such-seed.raw"
msg "missing seed: $ERR"
