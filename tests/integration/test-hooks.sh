#!/bin/bash
# rpfs replicate --hook: every phase in order with its environment; a
# snapshot's printed path read instead of the live disk; a failed freeze
# (crash point, or with --app-consistent=required no point and the vault
# unchanged); a failed snapshot; a failed copy; thaw and failed always run.
# Then the example fsfreeze + device-mapper snapshot hook for real: ext4 on
# a loop device with a writer writing, and the point fsck-clean.
. "$(dirname "$0")/lib.sh"
need python3

V=$(vault_path v)
ok rpfs init "$V" -q
make_disk() { truncate -s 2M "$1"; dd if=/dev/urandom of="$1" bs=64K count=4 conv=notrunc status=none; }
make_disk "$T/live.img"
make_disk "$T/snap.img"
make_disk "$T/data.img"
LOG=$T/hook.log
# The test's hook: logs "PHASE VM POINT DISKS"; FAIL_PHASE makes one phase
# fail; SNAP_OUT is what snapshot prints.
cat >"$T/hook" <<'HOOK'
#!/bin/bash
echo "$1 $RPFS_VM $RPFS_POINT $RPFS_DISKS" >>"$HOOK_LOG"
[[ $1 == snapshot && -n ${SNAP_OUT:-} ]] && printf '%b' "$SNAP_OUT"
[[ $1 == "${FAIL_PHASE:-}" ]] && exit 3
exit 0
HOOK
chmod +x "$T/hook"
export HOOK_LOG=$LOG
phases() { awk '{printf "%s%s", sep, $1; sep=","} END {print ""}' "$LOG"; }
type_of() { json_points "$V" | python3 -c 'import json,sys; print([p["type"] for p in json.load(sys.stdin) if p["id"] == sys.argv[1]][0])' "$1"; }

# All phases, in order, with the environment.
: >"$LOG"
ok rpfs replicate "$V" web01 --disk "$T/live.img" --disk data="$T/data.img" --hook "$T/hook" \
    --app-consistent --time 20261122T100000Z -q
assert_eq "$(phases)" "freeze,snapshot,thaw,done" "phases"
assert_eq "$(head -1 "$LOG")" "freeze web01 20261122T100000Z disk0=$T/live.img data=$T/data.img" "environment"
assert_eq "$(type_of 20261122T100000Z)" app "frozen: app-consistent"
export_check "$V" web01 disk0 "$(sum "$T/live.img")" --point 20261122T100000Z

# snapshot prints paths: those are read, not the live disks.
: >"$LOG"
SNAP_OUT="disk0=$T/snap.img\n" ok rpfs replicate "$V" web01 --disk "$T/live.img" --disk data="$T/data.img" \
    --hook "$T/hook" --app-consistent --time 20261122T101000Z -q
export_check "$V" web01 disk0 "$(sum "$T/snap.img")" --point 20261122T101000Z
export_check "$V" web01 data "$(sum "$T/data.img")" --point 20261122T101000Z
SNAP_OUT="$T/snap.img\n" ok rpfs replicate "$V" one --disk "$T/live.img" --hook "$T/hook" -q --time 20261122T101500Z
export_check "$V" one disk0 "$(sum "$T/snap.img")" --point 20261122T101500Z
assert_eq "$(type_of 20261122T101500Z)" crash "without --app-consistent: crash"

# A failed freeze: a crash point with a warning; thaw still runs.
: >"$LOG"
FAIL_PHASE=freeze ok rpfs replicate "$V" web01 --disk "$T/live.img" --hook "$T/hook" --app-consistent \
    --time 20261122T102000Z
assert_contains "$(cat "$T/.ok.stderr")" "the point is stored as crash-consistent" "warning"
assert_eq "$(phases)" "freeze,snapshot,thaw,done" "phases after a failed freeze"
assert_eq "$(type_of 20261122T102000Z)" crash "not frozen: crash-consistent"

# A failed freeze with =required: no point, the vault unchanged; thaw and failed run.
before=$(vault_state "$V")
: >"$LOG"
RC=0; FAIL_PHASE=freeze "$RPFS" replicate "$V" web01 --disk "$T/live.img" --hook "$T/hook" \
    --app-consistent=required --time 20261122T103000Z 2>"$T/err" || RC=$?
assert_eq "$RC" 1 "required freeze failed: exit 1"
assert_contains "$(cat "$T/err")" "--app-consistent=required: no point stored" "message"
assert_eq "$(phases)" "freeze,thaw,failed" "phases after a required freeze failed"
assert_eq "$(vault_state "$V")" "$before" "vault unchanged"

# A failed snapshot: no point; thaw and failed run.
: >"$LOG"
RC=0; FAIL_PHASE=snapshot "$RPFS" replicate "$V" web01 --disk "$T/live.img" --hook "$T/hook" \
    --time 20261122T104000Z 2>"$T/err" || RC=$?
assert_eq "$RC" 1 "snapshot failed: exit 1"
assert_eq "$(phases)" "freeze,snapshot,thaw,failed" "phases after a failed snapshot"
assert_eq "$(vault_state "$V")" "$before" "vault unchanged after a failed snapshot"

# The copy fails (the snapshot path is missing): failed runs, not done.
: >"$LOG"
RC=0; SNAP_OUT="disk0=$T/missing.img\n" "$RPFS" replicate "$V" web01 --disk "$T/live.img" --hook "$T/hook" \
    --time 20261122T105000Z 2>"$T/err" || RC=$?
assert_eq "$RC" 1 "copy failed: exit 1"
assert_eq "$(phases)" "freeze,snapshot,thaw,failed" "phases after a failed copy"
RC=0; SNAP_OUT="nosuch=$T/snap.img\n" "$RPFS" replicate "$V" web01 --disk "$T/live.img" --hook "$T/hook" \
    --time 20261122T105000Z 2>"$T/err" || RC=$?
assert_eq "$RC" 1 "snapshot named an unknown disk"
assert_contains "$(cat "$T/err")" "no disk named 'nosuch'" "unknown disk message"
expect_fail 2 rpfs replicate "$V" web01 --disk "$T/live.img" --app-consistent=required
expect_fail 2 rpfs replicate "$V" web01 --disk "$T/live.img" --hook "$T/nonexistent"

# ---- the example hook, for real ----
# ext4 on a loop device (and, where the kernel has device-mapper, on a dm
# device over it), mounted, a writer writing: the point is fsck-clean.
HOOKX=$SRCDIR/examples/hooks/fsfreeze-dm-snapshot
[[ $(id -u) == 0 ]] || { skip_part_facility "not root: the fsfreeze + snapshot hook"; exit 0; }
need fsfreeze losetup mkfs.ext4 e2fsck findmnt
truncate -s 64M "$T/origin.img"
mkfs.ext4 -q -F "$T/origin.img"
LOOP=$(losetup -f --show "$T/origin.img" 2>/dev/null) || { skip_part_facility "no loop devices"; exit 0; }
track_loop "$LOOP"
mkdir -p "$T/mnt" "$T/cow"
at_exit "umount '$T/mnt' 2>/dev/null"
# real_point DEV ID: mount DEV, write while replicating it through the hook, check the point.
real_point() {
    local dev=$1 id=$2 wpid
    mount "$dev" "$T/mnt" || { skip_part_facility "mounting ext4 refused"; return 1; }
    ( i=0; while :; do
          i=$((i + 1)); head -c $((RANDOM * 8)) /dev/urandom >"$T/mnt/f$((i % 50))"; rm -f "$T/mnt/f$(((i + 25) % 50))"
      done ) &
    wpid=$!
    track_pid "$wpid"
    sleep 1
    RPFS_HOOK_COW_DIR=$T/cow ok rpfs replicate "$V" ext --disk "$dev" --hook "$HOOKX" \
        --app-consistent=required --time "$id"
    kill "$wpid"; wait "$wpid" 2>/dev/null || true
    umount "$T/mnt"
    assert_eq "$(type_of "$id")" app "the example hook's point is app-consistent"
    assert_eq "$(ls -A "$T/cow")" "" "the hook removed its snapshot files"
    ok rpfs export "$V" ext disk0 --point "$id" -o "$T/point.img"
    e2fsck -fn "$T/point.img" >"$T/fsck.out" 2>&1 || fail "the point of $dev is not fsck-clean: $(cat "$T/fsck.out")"
    rm -f "$T/point.img"
    msg "fsfreeze + snapshot of $dev while a writer wrote: the point is fsck-clean"
}
real_point "$LOOP" 20261122T110000Z || exit 0

DM=rpfs-test-$$
if ! dmsetup --noudevsync create "$DM" --table "0 $(blockdev --getsz "$LOOP") linear $LOOP 0" 2>"$T/dm.err"; then
    skip_part_facility "device-mapper unavailable in this kernel: the dm-snapshot variant ($(head -1 "$T/dm.err"))"
    exit 0
fi
at_exit "dmsetup --noudevsync remove '$DM' 2>/dev/null"
real_point "/dev/mapper/$DM" 20261122T111000Z
assert_eq "$(dmsetup table "$DM" | awk '{print $3}')" linear "the origin is linear again"
dmsetup ls 2>/dev/null | grep -q "$DM-rpfs" && fail "the hook left its snapshot devices"
