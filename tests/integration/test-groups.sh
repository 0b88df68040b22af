#!/usr/bin/env bash
# Replication groups: rpfs group create/list/show, rpfs points --group G,
# rpfs replicate --group G
# --vm ... (one point of every member with one ID, the group's commit
# object last), rpfs failback --group G, and retention keeping group
# points whole.
# - three group points P1 (crash), P2 (app), P3 (crash); a fourth group
#   replicate stopped between its members (RPFS_TEST_GROUP_PAUSE) and
#   killed with kill -9: web01 has a point P4, db01 none, and there is no
#   group point P4 (group show, failback --point P4 refused);
# - failback --group: latest goes to P3 (not web01's newer P4), latest-app
#   to P2, every target byte-exact (sha256 of the source images);
#   refused with nothing written (targets' checksums unchanged, no journal)
#   when a member has no such point, a member has no target, a target is
#   missing or not a member's; --prepare (P1) / --complete (P3) / --commit;
# - members: a later group replicate must give every member;
# - prune (keep-last 1): a point of a group point that another member
#   holds is kept ("group"), and dropped from every member once released.
. "$(dirname "$0")/lib.sh"
need python3

MIB=$((1024 * 1024))
V=$(vault_path v)
ok rpfs init "$V" >/dev/null

# image NAME SEED: an 8 MiB image, data in its first 6 MiB.
image() {
    truncate -s $((8 * MIB)) "$T/$1"
    make_random "$T/.r" $((6 * MIB)) "$2"
    dd if="$T/.r" of="$T/$1" bs=1M conv=notrunc status=none
    rm -f "$T/.r"
}
P1=20261201T100000Z P2=20261201T110000Z P3=20261201T120000Z P4=20261201T130000Z
declare -A SUM
for p in 1 2 3; do
    image web-$p.raw web$p
    image db-$p.raw db$p
    SUM[web$p]=$(sum "$T/web-$p.raw")
    SUM[db$p]=$(sum "$T/db-$p.raw")
done

ok rpfs group "$V" create g1 web01 db01
expect_fail 1 rpfs group "$V" create g1 web01
expect_err_contains "exists"
assert_eq "$(rpfs group "$V" list)" "g1: db01 web01" "group list"
ok rpfs replicate "$V" --group g1 --vm web01 --disk disk0="$T/web-1.raw" --vm db01 --disk disk0="$T/db-1.raw" \
    --time $P1 >/dev/null
ok rpfs replicate "$V" --group g1 --vm web01 --disk disk0="$T/web-2.raw" --vm db01 --disk disk0="$T/db-2.raw" \
    --time $P2 --app-consistent >/dev/null
ok rpfs replicate "$V" --group g1 --vm db01 --disk disk0="$T/db-3.raw" --vm web01 --disk disk0="$T/web-3.raw" \
    --time $P3 >/dev/null
# Every member, every time.
STATE=$(vault_state "$V")
expect_fail 1 rpfs replicate "$V" --group g1 --vm web01 --disk disk0="$T/web-3.raw" --time $P4
expect_err_contains "db01"
expect_fail 1 rpfs replicate "$V" --group g1 --vm web01 --disk disk0="$T/web-3.raw" --vm db01 \
    --disk disk0="$T/db-3.raw" --vm app01 --disk disk0="$T/db-3.raw" --time $P4
assert_eq "$(vault_state "$V")" "$STATE" "refused group replicates left the vault unchanged"
# The point of each member carries the group.
assert_contains "$(vault_cat "$V" points/db01/$P2.json)" '"group": "g1"' "db01's point names its group"
assert_contains "$(vault_cat "$V" points/db01/$P2.json)" '"type": "app"' "db01's P2 is app-consistent"

# A group replicate killed between its members leaves no group point.
PAUSE=$T/paused
RPFS_TEST_GROUP_PAUSE=$PAUSE "$RPFS" replicate "$V" --group g1 --vm web01 --disk disk0="$T/web-3.raw" \
    --vm db01 --disk disk0="$T/db-3.raw" --time $P4 >/dev/null 2>"$T/kill.err" &
KPID=$!
track_pid $KPID
for _ in $(seq 600); do [[ -e $PAUSE ]] && break; sleep 0.1; done
[[ -e $PAUSE ]] || { cat "$T/kill.err" >&2; fail "the group replicate never reached its pause"; }
kill -9 $KPID
wait $KPID 2>/dev/null || true
assert_eq "$(point_ids "$V" web01 | tail -1)" $P4 "web01's point of the killed group replicate is there"
assert_eq "$(point_ids "$V" db01 | tail -1)" $P3 "db01 has no point of the killed group replicate"
assert_eq "$(rpfs group "$V" show g1)" "$(printf 'g1: db01 web01\n%s crash\n%s app\n%s crash' $P1 $P2 $P3)" \
    "group show: P1..P3, not the killed P4"
rpfs group "$V" show g1 --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["members"] == ["db01", "web01"], d
assert [p["id"] for p in d["points"]] == sys.argv[1:], d' $P1 $P2 $P3 || fail "group show --json"

rpfs points "$V" --group g1 --json | python3 -c '
import json, sys
got = sorted((p["vm"], p["id"]) for p in json.load(sys.stdin))
want = sorted((vm, i) for vm in ("web01", "db01") for i in sys.argv[1:])
assert got == want, got' $P1 $P2 $P3 || fail "points --group: the member points of complete group points only"

# Group failback.
for t in web db; do cp "$T/$t-1.raw" "$T/t-$t.raw"; done
TW=$T/t-web.raw TD=$T/t-db.raw
before() { echo "$(sum "$TW") $(sum "$TD") $(ls "$XDG_STATE_HOME"/rpfs/failback 2>/dev/null | wc -l)"; }
B=$(before)
expect_fail 4 rpfs failback "$V" --group g1 --target web01/disk0="$TW" --target db01/disk0="$TD" --point $P4
expect_err_contains "db01" "nothing written"
expect_fail 3 rpfs failback "$V" --group g1 --target web01/disk0="$TW"
expect_err_contains "db01" "no --target"
expect_fail 3 rpfs failback "$V" --group g1 --target web01/disk0="$TW" --target db01/disk0="$T/missing.raw"
expect_err_contains "missing"
expect_fail 2 rpfs failback "$V" --group g1 --target web01/disk0="$TW" --target db01/disk0="$TD" \
    --target app01/disk0="$TD"
expect_err_contains "not a member"
expect_fail 4 rpfs failback "$V" --group g1 --target web01/disk1="$TW" --target db01/disk0="$TD"
expect_err_contains "no disk disk1"
expect_fail 4 rpfs failback "$V" --group nosuch --target web01/disk0="$TW" --target db01/disk0="$TD"
expect_fail 2 rpfs failback "$V" web01 --group g1 --target web01/disk0="$TW"
assert_eq "$(before)" "$B" "refused group failbacks wrote nothing (targets and journals unchanged)"

ok rpfs failback "$V" --group g1 --target web01/disk0="$TW" --target db01/disk0="$TD" >"$T/fb.out"
assert_contains "$(cat "$T/fb.out")" "group g1: point $P3" "latest: the newest common point, not web01's P4"
assert_file_sum "$TW" "${SUM[web3]}" "web01 at P3"
assert_file_sum "$TD" "${SUM[db3]}" "db01 at P3"
ok rpfs failback "$V" --group g1 --target web01/disk0="$TW" --target db01/disk0="$TD" --point latest-app >/dev/null
assert_file_sum "$TW" "${SUM[web2]}" "latest-app: web01 at P2"
assert_file_sum "$TD" "${SUM[db2]}" "latest-app: db01 at P2"

# Two phases, per group as per VM.
rm -f "$TW" "$TD"
ok rpfs failback "$V" --group g1 --target web01/disk0="$TW" --target db01/disk0="$TD" --point $P1 --prepare \
    --create >/dev/null
assert_file_sum "$TW" "${SUM[web1]}" "prepare: web01 at P1"
ok rpfs failback "$V" --group g1 --target web01/disk0="$TW" --target db01/disk0="$TD" --complete >"$T/c.out"
assert_contains "$(cat "$T/c.out")" "group g1: point $P3" "complete: to the newest group point"
assert_file_sum "$TW" "${SUM[web3]}" "complete: web01 at P3"
assert_file_sum "$TD" "${SUM[db3]}" "complete: db01 at P3"
ok rpfs failback "$V" --group g1 --target web01/disk0="$TW" --target db01/disk0="$TD" --commit >/dev/null
S=$(rpfs failback "$V" --group g1 --target web01/disk0="$TW" --target db01/disk0="$TD" --status)
assert_eq "$(grep -c "consistent at point $P3, committed" <<<"$S")" 2 "status: both committed at P3"

# Retention keeps group points whole (a vault of its own: no journals).
V2=$(vault_path v2)
ok rpfs init "$V2" >/dev/null
for p in 1 2 3; do
    ok rpfs replicate "$V2" --group g1 --vm web01 --disk disk0="$T/web-$p.raw" --vm db01 \
        --disk disk0="$T/db-$p.raw" --time 2026110${p}T100000Z >/dev/null
done
ok rpfs policy "$V2" --keep-last 1 >/dev/null
ok rpfs hold "$V2" web01 20261101T100000Z >/dev/null
rpfs prune "$V2" --dry-run --json | python3 -c '
import json, sys
kept = {(p["vm"], p["id"]): p["kept"] for p in json.load(sys.stdin)["points"]}
assert kept[("db01", "20261101T100000Z")] == "group", kept
assert kept[("web01", "20261101T100000Z")] == "pinned", kept' || fail "prune --dry-run --json: db01's P1 kept for its group"
ok rpfs prune "$V2" >/dev/null
assert_eq "$(point_ids "$V2" db01 | tr '\n' ' ')" "20261101T100000Z 20261103T100000Z " \
    "prune kept db01's point of the group point web01 holds, dropped P2 of both"
assert_eq "$(point_ids "$V2" web01 | tr '\n' ' ')" "20261101T100000Z 20261103T100000Z " "web01 after prune"
ok rpfs release "$V2" web01 20261101T100000Z >/dev/null
ok rpfs prune "$V2" db01 >/dev/null
ok rpfs prune "$V2" >/dev/null
assert_eq "$(point_ids "$V2" db01)" "20261103T100000Z" "released: dropped from db01"
assert_eq "$(point_ids "$V2" web01)" "20261103T100000Z" "released: dropped from web01"
assert_eq "$(rpfs group "$V2" show g1 | tail -1)" "20261103T100000Z crash" "one group point left, whole"
exit 0
