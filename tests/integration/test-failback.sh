#!/usr/bin/env bash
# rpfs failback: delta, full, alternate location, dry run, verify, local
# copies, the block cache, several disks, and --status in each state.
#
# Target = the old version of a disk (an ext4 image of real files), point =
# the newer version (~1.5% of the blocks overwritten).  After each failback
# the target equals the point by sha256, and the figures of the --json result
# line match what changed: a delta fetches and writes exactly the changed
# blocks, and reads at most 1.1x their stored size from the vault.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-failback.sh"

fb_images 128 88
fb_vault
N_BLOCKS=$(( SIZE / BS ))
STORED=$(( N_CHG * (BS + 8) ))   # random blocks are stored as they are

tgt=$T/target.img
cp --sparse=always "$T/v1.img" "$tgt"
assert_contains "$(status_of "$tgt")" "no failback recorded" "status before any failback"

# --- dry run: counts, writes nothing
before=$(sum "$tgt")
fb "$V" vm1 --target "disk0=$tgt" --dry-run
assert_eq "$(sum "$tgt")" "$before" "dry run leaves the target untouched"
assert_eq "$(jf blocks_fetched)" "$N_CHG" "dry run: blocks it would fetch"
assert_eq "$(jf blocks_written)" "$N_CHG" "dry run: blocks it would write"
assert_le "$(jf bytes_fetched)" $(( STORED * 11 / 10 )) "dry run: bytes it would fetch"
assert_contains "$(status_of "$tgt")" "no failback recorded" "a dry run records nothing"
out=$("$RPFS" failback "$V" vm1 --target "disk0=$tgt" --dry-run)
assert_contains "$out" "would fetch $N_CHG blocks" "dry run's text output"

# --- delta
fb "$V" vm1 --target "disk0=$tgt"
assert_eq "$(sum "$tgt")" "$SUM2" "delta failback: target equals the point"
assert_eq "$(jf targets.0.method)" delta "default mode"
assert_eq "$(jf blocks_scanned)" "$N_BLOCKS" "delta scans every block"
assert_eq "$(jf blocks_differing)" "$N_CHG" "delta finds the changed blocks"
assert_eq "$(jf blocks_fetched)" "$N_CHG" "delta fetches the changed blocks only"
assert_eq "$(jf blocks_written)" "$N_CHG" "delta writes the changed blocks only"
assert_le "$(jf bytes_fetched)" $(( STORED * 11 / 10 )) "bytes fetched <= 1.1x the changed blocks' stored size"
assert_ge "$(jf bytes_fetched)" $(( N_CHG * BS * 9 / 10 )) "bytes fetched are counted"
msg "delta: $(jf blocks_fetched) blocks, $(jf bytes_fetched) bytes fetched for $N_CHG changed blocks ($STORED stored)"
assert_contains "$(status_of "$tgt")" "consistent at point $P2" "status after a delta"

# the same again: nothing to do (the journal and the target's fingerprint agree)
fb "$V" vm1 --target "disk0=$tgt"
assert_eq "$(jf blocks_written)" 0 "a second run writes nothing"
assert_eq "$(jf targets.0.method)" none "a second run does nothing"

# --- back to point 1, verified
fb "$V" vm1 --target "disk0=$tgt" --point $P1 --verify
assert_eq "$(sum "$tgt")" "$SUM1" "delta back to point 1"
assert_eq "$(jf blocks_written)" "$N_CHG" "back to point 1: changed blocks written"
assert_eq "$(jf blocks_verified)" "$N_BLOCKS" "--verify re-reads every block"

# --- full: no checksums, every non-zero block
fb "$V" vm1 --target "disk0=$tgt" --mode full
assert_eq "$(sum "$tgt")" "$SUM2" "full failback"
assert_eq "$(jf blocks_scanned)" 0 "full mode scans nothing"
assert_eq "$(jf blocks_fetched)" "$NZ2" "full mode fetches every non-zero block"

# --- auto: a target that is mostly different picks full, a close one delta
truncate -s "$SIZE" "$T/empty.img"
fb "$V" vm1 --target "disk0=$T/empty.img" --mode auto
assert_eq "$(jf targets.0.method)" full "auto on an empty target"
assert_eq "$(sum "$T/empty.img")" "$SUM2" "auto (full) failback"
rm -f "$T/empty.img"
cp --sparse=always "$T/v1.img" "$T/auto.img"
fb "$V" vm1 --target "disk0=$T/auto.img" --mode auto
assert_eq "$(jf targets.0.method)" delta "auto on an old version of the disk"
assert_eq "$(sum "$T/auto.img")" "$SUM2" "auto (delta) failback"
rm -f "$T/auto.img"

# --- alternate location: a new sparse file
new=$T/new/disk0.img
mkdir -p "$T/new"
fb "$V" vm1 --target "disk0=$new" --create
assert_eq "$(sum "$new")" "$SUM2" "alternate location"
assert_eq "$(jf blocks_fetched)" "$NZ2" "alternate location: every non-zero block fetched"
assert_eq "$(jf targets.0.method)" full "alternate location is a full download"
alloc=$(( $(stat -c %b "$new") * 512 ))
assert_lt "$alloc" "$SIZE" "the new file is sparse"
assert_contains "$(status_of "$new")" "consistent at point $P2" "status of the new file"
rm -f "$new"

# --- local copies: a block that sits elsewhere on the target is copied, not fetched
cp --sparse=always "$T/v2.img" "$T/v3.img"
mapfile -t NZ < <(nonzero_blocks "$T/v2.img" $BS)
src=${NZ[10]} dst=${NZ[$(( ${#NZ[@]} - 10 ))]}
dd if="$T/v2.img" of="$T/v3.img" bs=$BS skip="$src" seek="$dst" count=1 conv=notrunc status=none
SUM3=$(sum "$T/v3.img")
ok rpfs replicate "$V" vm1 --disk "$T/v3.img" --time $P3 -q
fb "$V" vm1 --target "disk0=$tgt" --point $P3
assert_eq "$(sum "$tgt")" "$SUM3" "delta to point 3"
assert_eq "$(jf blocks_local)" 1 "the moved block is copied locally"
assert_eq "$(jf blocks_fetched)" 0 "nothing fetched for a block the target has"

# --- two phases: prepare while points keep coming, complete by manifest difference
cp --sparse=always "$T/v1.img" "$tgt"
fb "$V" vm1 --target "disk0=$tgt" --prepare --point $P2
assert_eq "$(sum "$tgt")" "$SUM2" "prepare"
assert_contains "$(status_of "$tgt")" "consistent at point $P2 (prepared" "status after prepare"
fb "$V" vm1 --target "disk0=$tgt" --complete
assert_eq "$(sum "$tgt")" "$SUM3" "complete to the newest point"
assert_eq "$(jf blocks_scanned)" 0 "complete does not rescan the target"
assert_eq "$(jf blocks_written)" 1 "complete writes the manifest difference"
assert_eq "$(jf blocks_local)" 1 "complete copies the moved block locally"
assert_eq "$(jf targets.0.base)" "$P2" "complete starts at the prepared point"
assert_contains "$(status_of "$tgt")" "consistent at point $P3" "status after complete"
fb "$V" vm1 --target "disk0=$tgt" --commit
assert_contains "$(status_of "$tgt")" "consistent at point $P3, committed" "status after commit"
json=$("$RPFS" failback "$V" vm1 --target "disk0=$tgt" --status --json)
assert_eq "$(jf state "$json")" committed "--status --json"

# --- a target written to after prepare: complete refuses and leaves it alone
fb "$V" vm1 --target "disk0=$tgt" --prepare --point $P1
printf 'changed' | dd of="$tgt" bs=1 seek=$(( 5 * BS + 100 )) conv=notrunc status=none
before=$(sum "$tgt")
expect_fail 3 rpfs failback "$V" vm1 --target "disk0=$tgt" --complete
expect_err_contains "changed since it was prepared" "--prepare"
assert_eq "$(sum "$tgt")" "$before" "a refused complete writes nothing"

# --- a VM with two disks, both failed back in one run
make_random "$T/d1.img" $(( 8 * 1024 * 1024 )) d1
ok rpfs replicate "$V" vm2 --disk "disk0=$T/v2.img" --disk "data=$T/d1.img" --time $P1 -q
cp --sparse=always "$T/v1.img" "$T/vm2-0.img"
fb "$V" vm2 --target "disk0=$T/vm2-0.img" --target "data=$T/vm2-1.img" --create
assert_eq "$(sum "$T/vm2-0.img")" "$SUM2" "two disks: disk0"
assert_eq "$(sum "$T/vm2-1.img")" "$(sum "$T/d1.img")" "two disks: data (created)"
assert_eq "$(jf targets.0.method)" delta "two disks: disk0 by delta"
assert_eq "$(jf targets.1.method)" full "two disks: the new one by full download"

# --- the block cache: blocks the mount fetched are copied, not fetched again
if [[ -e /dev/fuse ]] && command -v fusermount3 >/dev/null && [[ -w /dev/fuse ]]; then
    . "$(dirname "$0")/lib-mount.sh"
    mkdir -p "$T/mnt"
    mount_fg "$V" "$T/mnt" --cache "$T/cache"
    for b in "${CHG[@]}"; do
        dd if="$T/mnt/vm1/points/$P2/disk0.raw" of=/dev/null bs=$BS skip="$b" count=1 status=none
    done
    unmount "$T/mnt"
    cp --sparse=always "$T/v1.img" "$T/cached.img"
    fb "$V" vm1 --target "disk0=$T/cached.img" --point $P2 --cache "$T/cache"
    assert_eq "$(sum "$T/cached.img")" "$SUM2" "failback from the cache"
    assert_eq "$(jf blocks_cached)" "$N_CHG" "changed blocks come from the cache"
    assert_eq "$(jf blocks_fetched)" 0 "nothing fetched that the cache holds"
else
    skip_part_facility "no FUSE here: the block cache part"
fi
