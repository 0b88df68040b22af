#!/usr/bin/env bash
# rpfs mount: MOUNT/groups/<g>/<id>/<vm> -> ../../../<vm>/points/<id> for
# the complete points of a replication group, groups/<g>/latest and
# latest-app -> <id>:
# - two group points (app, then crash) and a third group replicate killed
#   between its members: only the two complete ones are listed, the killed
#   one's ID resolves to nothing although web01 has a point with it;
# - the links' text, and reading through them (MOUNT/groups/g1/latest/web01/
#   disk0.raw) gives the source images' bytes (sha256);
# - a group point replicated while mounted appears after the catalog's
#   refresh; a VM named "groups" does not hide the groups directory.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse

MIB=$((1024 * 1024))
V=$(vault_path v)
ok rpfs init "$V" >/dev/null
image() {
    truncate -s $((4 * MIB + 4096)) "$T/$1"
    make_random "$T/.r" $((3 * MIB)) "$2"
    dd if="$T/.r" of="$T/$1" bs=1M conv=notrunc status=none
    rm -f "$T/.r"
}
P1=20261201T100000Z P2=20261201T110000Z P3=20261201T120000Z P4=20261201T130000Z
for p in 1 2 3 4; do image web-$p.raw web$p; image db-$p.raw db$p; done
grp() { ok rpfs replicate "$V" --group g1 --vm web01 --disk disk0="$T/web-$1.raw" --vm db01 \
            --disk disk0="$T/db-$1.raw" --time "$2" "${@:3}" >/dev/null; }
grp 1 $P1 --app-consistent
grp 2 $P2
RPFS_TEST_GROUP_PAUSE=$T/paused "$RPFS" replicate "$V" --group g1 --vm web01 --disk disk0="$T/web-3.raw" \
    --vm db01 --disk disk0="$T/db-3.raw" --time $P3 >/dev/null 2>&1 &
KPID=$!
track_pid $KPID
for _ in $(seq 600); do [[ -e $T/paused ]] && break; sleep 0.1; done
[[ -e $T/paused ]] || fail "the group replicate never reached its pause"
kill -9 $KPID
wait $KPID 2>/dev/null || true
ok rpfs replicate "$V" groups --disk "$T/db-4.raw" --time $P1 >/dev/null # a VM named "groups"

M=$T/mnt
mkdir -p "$M"
mount_bg "$V" "$M"
assert_eq "$(ls "$M/groups")" "g1" "groups/"
assert_eq "$(ls "$M/groups/g1" | tr '\n' ' ')" "$P1 $P2 latest latest-app " "groups/g1: complete points only"
[[ -e $M/groups/g1/$P3 ]] && fail "the killed group replicate's $P3 is shown"
[[ -d $M/web01/points/$P3 ]] || fail "web01's own point $P3 is not shown"
assert_eq "$(readlink "$M/groups/g1/latest")" $P2 "latest"
assert_eq "$(readlink "$M/groups/g1/latest-app")" $P1 "latest-app"
assert_eq "$(ls "$M/groups/g1/$P2" | tr '\n' ' ')" "db01 web01 " "members of $P2"
assert_eq "$(readlink "$M/groups/g1/$P2/db01")" "../../../db01/points/$P2" "member link text"
assert_file_sum "$M/groups/g1/latest/web01/disk0.raw" "$(sum "$T/web-2.raw")" "latest/web01"
assert_file_sum "$M/groups/g1/latest/db01/disk0.raw" "$(sum "$T/db-2.raw")" "latest/db01"
assert_file_sum "$M/groups/g1/latest-app/db01/disk0.raw" "$(sum "$T/db-1.raw")" "latest-app/db01"
assert_file_sum "$M/groups/g1/$P1/web01/disk0.raw" "$(sum "$T/web-1.raw")" "$P1/web01"
assert_contains "$(cat "$M/groups/g1/$P2/web01/point.json")" '"group": "g1"' "point.json through the link"

# A new group point while mounted.
grp 4 $P4
for _ in $(seq 300); do [[ $(readlink "$M/groups/g1/latest") == "$P4" ]] && break; sleep 0.1; done # the refresh
assert_eq "$(readlink "$M/groups/g1/latest")" $P4 "latest after a new group point"
assert_file_sum "$M/groups/g1/latest/db01/disk0.raw" "$(sum "$T/db-4.raw")" "new latest/db01"
unmount "$M"
exit 0
