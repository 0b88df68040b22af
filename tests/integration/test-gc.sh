#!/usr/bin/env bash
# Garbage collection in rpfs prune (issue 16).
# 1. 8 points of a 4 MiB disk, 8 blocks rewritten between points; keep-last
#    3. prune --dry-run says how many bytes it would free; prune frees them
#    (packs and index: within one pack of the dry run's figure); every kept
#    point exports byte-identical to its source (sha256) before and after;
#    check --read-data is clean; the index is a handful of segments; no GC
#    record is left; a second prune has nothing to free.
# 2. kill -9 at each named stage of a GC (RPFS_GC_CRASH_AT), with new
#    garbage each time: check --read-data clean, every point exact, and the
#    next prune finishes the job (no record left).
# (kill -9 at random moments: test-gc-kill.sh)
. "$(dirname "$0")/lib.sh"
need python3

. "$(dirname "$0")/lib-gc.sh"

for _ in 1 2 3 4 5 6 7 8; do new_point; done
ok rpfs policy "$V" --keep-last 3 >/dev/null
check_all "before"
assert_eq "$(segments)" 8 "one segment per replicate"

# 1. dry run, then prune
before=$(data_bytes)
state=$(vault_state "$V")
j=$(ok rpfs prune "$V" --dry-run --json)
would=$(gc_field freed_bytes <<<"$j")
assert_gt "$would" 0 "the dry run frees something"
assert_gt "$(gc_field packs_deleted <<<"$j")" 0 "the dry run deletes packs"
assert_gt "$(gc_field packs_rewritten <<<"$j")" 0 "the dry run rewrites the first pack"
assert_eq "$(vault_state "$V")" "$state" "a dry run changes nothing"
out=$(ok rpfs prune "$V" --dry-run)
assert_contains "$out" "would free $would byte(s)" "the dry run's text says the same bytes"

out=$(ok rpfs prune "$V")
assert_contains "$out" "dropped 5 point(s)" "prune drops 5 points"
assert_contains "$out" "freed $would byte(s)" "prune frees what the dry run said"
after=$(data_bytes)
freed=$(( before - after ))
tol=$(max_pack)
msg "freed $freed bytes, dry run said $would, one pack is $tol"
diff=$(( freed > would ? freed - would : would - freed ))
assert_le "$diff" "$tol" "vault went down by the dry run's figure within one pack"
assert_le "$(segments)" 3 "a handful of index segments after GC"
assert_eq "$(has_record)" 0 "no GC record left"
check_all "after prune"
j=$(ok rpfs prune "$V" --json)
assert_eq "$(gc_field freed_bytes <<<"$j")" 0 "a second prune frees nothing"

# 2. kill -9 at each named stage
for stage in marked rewritten merged condemned sessions carried segments-deleted deleting; do
    new_point
    rc=0
    RPFS_GC_CRASH_AT=$stage "$RPFS" prune "$V" -q >"$T/crash.out" 2>&1 || rc=$?
    assert_eq "$rc" 137 "prune killed at stage $stage"
    check_all "killed at $stage"
    ok rpfs prune "$V" -q
    assert_eq "$(has_record)" 0 "after $stage, the next prune finished the job"
done

check_all "end"
assert_le "$(segments)" 3 "a handful of index segments at the end"
expect_fail 2 rpfs prune "$V" --max-unused abc
msg "ok"
