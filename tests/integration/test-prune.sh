#!/usr/bin/env bash
# rpfs prune (of points): with points at times relative to now, --dry-run
# names the points beyond the 24 h window and removes nothing; prune drops
# exactly those; the newest app-consistent point, a held point and the
# points of the last 2 hours stay; every kept point exports byte-identical
# to its source (sha256); a VM not named is untouched; released, the held
# point goes on the next prune; --json; usage errors.
# Garbage collection is test-gc.sh.
. "$(dirname "$0")/lib.sh"
need python3

V=$(vault_path vault)
ok rpfs init "$V"
ago() { date -u -d "-$1 min" +%Y%m%dT%H%M%SZ; }
A30=$(ago 1800) A28=$(ago 1680) A26=$(ago 1560) A25=$(ago 1500) A50=$(ago 50) A10=$(ago 10)
declare -A SUM
rep() {  # VM ID SEED [ARGS]
    local vm=$1 id=$2 seed=$3; shift 3
    truncate -s $(( 3 * 1024 * 1024 )) "$T/$vm-$id.raw"
    make_random "$T/.r" $(( 1024 * 1024 )) "$seed"
    dd if="$T/.r" of="$T/$vm-$id.raw" bs=1M seek=1 conv=notrunc status=none
    SUM[$vm-$id]=$(sum "$T/$vm-$id.raw")
    ok rpfs replicate "$V" "$vm" --disk "$T/$vm-$id.raw" --time "$id" -q "$@"
}
rep web "$A30" a
rep web "$A28" b
rep web "$A26" c --app-consistent
rep web "$A25" d
rep web "$A50" e --app-consistent
rep web "$A10" f
rep db "$A30" g
rep db "$A10" h
ok rpfs hold "$V" web "$A25" --reason test -q

ids() { json_points "$V" "$1" | python3 -c 'import json,sys; print(" ".join(p["id"] for p in json.load(sys.stdin)))'; }
before=$(ids web)
out=$(ok rpfs prune "$V" web --dry-run)
assert_contains "$out" "would drop web/$A30" "dry run names the oldest"
assert_contains "$out" "would drop web/$A28" "dry run names the second"
assert_contains "$out" "would drop web/$A26" "an app point with a newer app point goes"
assert_not_contains "$out" "web/$A25" "a held point stays"
assert_contains "$out" "would drop 3 point(s)" "dry-run count"
assert_eq "$(ids web)" "$before" "a dry run removes nothing"

out=$(ok rpfs prune "$V" web --json)
assert_eq "$(python3 -c 'import json,sys; print(sorted(p["id"] for p in json.load(sys.stdin)["points"] if p["dropped"]))' <<<"$out")" \
    "$(python3 -c 'import sys; print(sorted(sys.argv[1:]))' "$A30" "$A28" "$A26")" "--json: the dropped points"
assert_contains "$out" '"kept": "pinned"' "--json says why the held point stays"
assert_eq "$(ids web)" "$A25 $A50 $A10" "kept: the held point and the last 2 hours"
assert_eq "$(ids db)" "$A30 $A10" "a VM not named is untouched"
for id in "$A25" "$A50" "$A10"; do export_check "$V" web disk0 "${SUM[web-$id]}" --point "$id"; done
export_check "$V" db disk0 "${SUM[db-$A30]}" --point "$A30"

ok rpfs release "$V" web "$A25" -q
out=$(ok rpfs prune "$V")
assert_contains "$out" "dropped web/$A25" "released, the point goes"
assert_contains "$out" "dropped db/$A30" "every VM without arguments"
assert_eq "$(ids web)" "$A50 $A10" "web after the second prune"
assert_eq "$(ids db)" "$A10" "db keeps its newest"
export_check "$V" web disk0 "${SUM[web-$A50]}" --point latest-app
export_check "$V" db disk0 "${SUM[db-$A10]}"
assert_contains "$(ok rpfs prune "$V")" "dropped 0 point(s)" "a second run has nothing to do"

expect_fail 2 rpfs prune
expect_fail 2 rpfs prune "$V" ../x
expect_fail 2 rpfs prune "$V" --max-unused 5x
expect_fail 2 rpfs prune "$V" --max-unused 101
expect_fail 1 rpfs prune "$T/nothing"
msg "ok"
