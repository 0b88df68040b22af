#!/usr/bin/env bash
# rpfs failback to a block device (a loop device; root only, skip otherwise):
# delta, full, --verify, two phases with a new point in between, a device
# written to after --prepare (complete refuses), kill -9 and rerun, and
# refusals: mounted, read-only.  The device is larger than the disk: only
# the disk's bytes are compared and written.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-failback.sh"

(( $(id -u) == 0 )) || skip_facility "needs root for loop devices"
need losetup mount umount
fb_images 96 64
fb_vault

back=$T/backing.img
cp --sparse=always "$T/v1.img" "$back"
truncate -s $(( SIZE + 4 * 1024 * 1024 )) "$back"
# wait_size DEV: a freshly attached loop device can report size 0 for a
# moment; wait until it shows its backing file's size.
wait_size() {
    local want i
    want=$(stat -c %s "$back")
    for (( i = 0; i < 100; i++ )); do
        [[ $(blockdev --getsize64 "$1" 2>/dev/null) == "$want" ]] && return 0
        sleep 0.05
    done
    fail "loop device $1 never showed its size $want"
}
dev=$(losetup -f --show "$back" 2>/dev/null) || skip_facility "cannot attach a loop device"
track_loop "$dev"
msg "target $dev"
assert_eq "$(target_sum "$dev")" "$SUM1" "the device holds version 1"

# --- delta
fb "$V" vm1 --target "disk0=$dev"
assert_eq "$(target_sum "$dev")" "$SUM2" "delta to a block device"
assert_eq "$(jf blocks_fetched)" "$N_CHG" "delta fetches the changed blocks"
assert_eq "$(jf blocks_written)" "$N_CHG" "delta writes the changed blocks"
assert_contains "$(status_of "$dev")" "consistent at point $P2" "status of the device"
tail_sum=$(tail -c $(( 4 * 1024 * 1024 )) "$dev" | sum -)

# --- full back to point 1, verified
fb "$V" vm1 --target "disk0=$dev" --point $P1 --mode full --verify
assert_eq "$(target_sum "$dev")" "$SUM1" "full to a block device"
assert_eq "$(jf blocks_verified)" $(( SIZE / BS )) "verified every block"
assert_eq "$(tail -c $(( 4 * 1024 * 1024 )) "$dev" | sum -)" "$tail_sum" \
    "bytes past the disk's size are left alone"

# --- two phases, a new point in between
cp --sparse=always "$T/v2.img" "$T/v3.img"
overwrite_blocks "$T/v3.img" $BS v3 3 "${CHG[0]}" $(( SIZE / BS - 2 ))
SUM3=$(sum "$T/v3.img")
fb "$V" vm1 --target "disk0=$dev" --prepare
assert_eq "$(target_sum "$dev")" "$SUM2" "prepare to the newest point"
ok rpfs replicate "$V" vm1 --disk "$T/v3.img" --time $P3 -q
fb "$V" vm1 --target "disk0=$dev" --complete
assert_eq "$(target_sum "$dev")" "$SUM3" "complete to the point made after prepare"
assert_eq "$(jf blocks_scanned)" 0 "complete does not rescan"
assert_eq "$(jf blocks_fetched)" 3 "complete fetches the manifest difference"
fb "$V" vm1 --target "disk0=$dev" --commit
assert_contains "$(status_of "$dev")" "committed" "commit"

# --- written to after prepare: complete refuses
fb "$V" vm1 --target "disk0=$dev" --prepare --point $P2
printf 'x' | dd of="$dev" bs=1 seek=$(( 7 * BS + 3 )) conv=notrunc status=none
sync
before=$(target_sum "$dev")
expect_fail 3 rpfs failback "$V" vm1 --target "disk0=$dev" --complete
expect_err_contains "changed since it was prepared"
assert_eq "$(target_sum "$dev")" "$before" "a refused complete writes nothing"

# --- kill -9, rerun
fb "$V" vm1 --target "disk0=$dev" --point $P1
"$RPFS" failback "$V" vm1 --target "disk0=$dev" --mode full --bwlimit 4M -q 2>"$T/kill.err" &
pid=$!
track_pid "$pid"
sleep 1.5
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
assert_contains "$(status_of "$dev")" "interrupted" "status after kill -9"
fb "$V" vm1 --target "disk0=$dev"
assert_eq "$(target_sum "$dev")" "$SUM3" "rerun after kill -9"

# --- refusals: mounted, read-only
mkdir -p "$T/mnt"
before=$(target_sum "$dev")  # (reading a mounted device shows the mount's buffers)
if mount -o ro "$dev" "$T/mnt" 2>/dev/null; then
    at_exit "umount '$T/mnt' 2>/dev/null"
    expect_fail 3 rpfs failback "$V" vm1 --target "disk0=$dev" --point $P1
    expect_err_contains "mounted on $T/mnt"
    umount "$T/mnt"
    assert_eq "$(target_sum "$dev")" "$before" "a mounted device is not written"
else
    skip_part_facility "cannot mount the image here: the mounted case"
fi
losetup -d "$dev"
rodev=$(losetup -f --show -r "$back") || fail "losetup -r"
wait_size "$rodev"
track_loop "$rodev"
before=$(target_sum "$rodev")
expect_fail 3 rpfs failback "$V" vm1 --target "disk0=$rodev" --point $P1
expect_err_contains "read-only"
assert_eq "$(target_sum "$rodev")" "$before" "a read-only device is not written"
