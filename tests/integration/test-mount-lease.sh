#!/usr/bin/env bash
# Leases of the mount (issue 16): a mount that has opened a point's disk file
# holds a lease on that point, renewed while mounted (RPFS_LEASE_TTL=6 here,
# and the test waits past it), so `rpfs prune` with a policy that would drop
# the point keeps it, and the open file still reads the exact bytes; after
# the unmount the lease is gone and prune drops the point. A file opened and
# closed keeps its point leased while mounted. A mount killed with kill -9
# leaves its lease behind; once the ttl has passed, prune drops the point.
# A pruner whose clock is 10 minutes ahead (faketime) still sees a mount's
# 300 s lease: leases are judged on the vault's clock.
# A failback leaves no lease behind (it leases its source point while it runs).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need faketime python3

V=$(vault_path vault)
M=$T/mnt
ok rpfs init "$V"
ago() { date -u -d "-$1 min" +%Y%m%dT%H%M%SZ; }
A=$(ago 100) B=$(ago 50) C=$(ago 10)
declare -A SUM
rep() {  # ID SEED
    truncate -s $(( 3 * 1024 * 1024 )) "$T/$1.raw"
    make_random "$T/.r" $(( 1024 * 1024 )) "$2"
    dd if="$T/.r" of="$T/$1.raw" bs=1M seek=1 conv=notrunc status=none
    SUM[$1]=$(sum "$T/$1.raw")
    ok rpfs replicate "$V" web --disk "$T/$1.raw" --time "$1" -q
}
ids() { json_points "$V" web | python3 -c 'import json,sys; print(" ".join(p["id"] for p in json.load(sys.stdin)))'; }
leases() { vault_files "$V" | awk '{print $2}' | grep "^leases/web/$1/" || true; }
# wait_lease ID WHAT: the mount takes its leases in the background (an open
# never waits on the vault): wait for one on web/ID, 20 s at most.
wait_lease() {
    local i
    for i in $(seq 100); do
        [[ -n $(leases "$1") ]] && return 0
        sleep 0.2
    done
    fail "no lease on web/$1 $2"
}

rep "$A" a
rep "$B" b
ok rpfs policy "$V" --vm web --keep-last 1 -q
assert_contains "$(ok rpfs prune "$V" --dry-run)" "would drop web/$A" "the policy would drop the older point"

# --- a mount with the point open keeps it -------------------------------------
RPFS_LEASE_TTL=6 mount_fg "$V" "$M"
exec 3<"$M/web/points/$A/disk0.raw"
wait_lease "$A" "with its disk file open"
[[ -z $(leases "$B") ]] || fail "a lease on web/$B, which was not opened"
sleep 8   # past the ttl: only a renewed lease still holds
out=$(ok rpfs prune "$V")
assert_not_contains "$out" "dropped web/$A" "a leased point is kept"
assert_eq "$(ids)" "$A $B" "both points after the prune"
assert_eq "$(sum - <&3)" "${SUM[$A]}" "the open file reads exact bytes after the prune"
exec 3<&-
unmount "$M"
assert_eq "$(leases "$A")" "" "the lease is dropped at unmount"
assert_contains "$(ok rpfs prune "$V")" "dropped web/$A" "unmounted, the point goes"
assert_eq "$(ids)" "$B" "after the prune"

# --- a killed mount's lease expires -----------------------------------------------
rep "$C" c
RPFS_LEASE_TTL=4 mount_fg "$V" "$M"
assert_eq "$(sum "$M/web/points/$B/disk0.raw")" "${SUM[$B]}" "web/$B through the mount"
wait_lease "$B" "after reading it"
out=$(ok rpfs prune "$V")
assert_not_contains "$out" "dropped web/$B" "closed, the point stays leased while mounted"
kill -KILL "$MPID"
wait "$MPID" 2>/dev/null || true
_MNT_PID[$M]=
fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M"
[[ -n $(leases "$B") ]] || fail "the killed mount's lease object is gone"
sleep 6   # past the ttl
assert_contains "$(ok rpfs prune "$V")" "dropped web/$B" "an expired lease does not keep its point"
assert_eq "$(ids)" "$C" "after the prune"
export_check "$V" web disk0 "${SUM[$C]}"

# --- leases are judged on the vault's clock, not the pruner's -------------------
# A pruner whose clock runs 10 minutes ahead (faketime) does not expire the
# mount's lease of 300 s early: expiries are written and compared on the
# vault's clock (the Date of Azure's replies, a fresh file's mtime here).
D=$(ago 5)
rep "$D" d
mount_fg "$V" "$M"
assert_eq "$(sum "$M/web/points/$C/disk0.raw")" "${SUM[$C]}" "web/$C through the mount"
wait_lease "$C" "after reading it"
out=$(ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 faketime -f +10m "$RPFS" prune "$V" 2>&1) ||
    fail "prune with a clock 10 minutes ahead: $out"
assert_not_contains "$out" "dropped web/$C" "a pruner with a fast clock keeps a leased point"
assert_eq "$(ids)" "$C $D" "both points after the skewed prune"
unmount "$M"
assert_contains "$(ok rpfs prune "$V")" "dropped web/$C" "unmounted, the point goes"

# --- a failback drops its source point's lease at the end ----------------------
cp "$T/$A.raw" "$T/target.raw"
ok rpfs failback "$V" web --target "disk0=$T/target.raw" >/dev/null
assert_file_sum "$T/target.raw" "${SUM[$D]}" "failback to the latest point"
assert_eq "$(leases "$D")" "" "no lease left after the failback"
msg "ok"
