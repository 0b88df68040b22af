#!/usr/bin/env bash
# kill -9 at any moment of a failback, then the same command again: the
# target ends byte-identical to the point.  --status tells "in progress N%"
# while it runs and "interrupted: rerun to finish" after the kill.
#
# Runs are slowed with --bwlimit so that a kill lands anywhere: during the
# scan, between checkpoints, while the journal is written.  Every mode is
# killed: delta, full, a new file (--create), --complete, and a resumed run
# killed again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-failback.sh"

fb_images 96 64
fb_vault
tgt=$T/target.img

# run_killed DELAY ARGS...: start a failback, kill -9 it after DELAY seconds
run_killed() {
    local delay=$1 pid rc=0 st; shift
    "$RPFS" failback "$@" >"$T/run.out" 2>"$T/run.err" &
    pid=$!
    track_pid "$pid"
    sleep "$delay"
    if kill -0 "$pid" 2>/dev/null; then
        st=$("$RPFS" failback "$V" vm1 --target "disk0=$tgt" --status 2>&1) || true
        if [[ $st == *"in progress"* ]]; then SEEN_RUNNING=1; fi
    fi
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || rc=$?
    _check_sanitizer "$T/run.err" "failback $*"
    if (( rc == 137 )); then
        KILLED=$(( KILLED + 1 ))
        st=$(status_of "$tgt")
        [[ $st == *"interrupted: rerun to finish"* || $st == *"consistent at point"* ]] ||
            fail "status after kill -9: $st"
        [[ $st == *interrupted* ]] && SEEN_INTERRUPTED=1
        msg "killed after ${delay}s: $st"
    else
        (( rc == 0 )) || { cat "$T/run.err" >&2; fail "failback exited $rc before the kill"; }
        msg "finished before the kill (${delay}s)"
    fi
}

delays() {  # N SEED MAX: N delays in 0.1..MAX, deterministic
    python3 -c 'import random,sys; r=random.Random(sys.argv[2]); print(" ".join("%.2f" % r.uniform(0.1, float(sys.argv[3])) for _ in range(int(sys.argv[1]))))' "$@"
}

KILLED=0 SEEN_RUNNING=0 SEEN_INTERRUPTED=0
RESUMED=0
check_rerun() {  # WANT-SUM ARGS...
    local want=$1; shift
    fb "$@"
    assert_eq "$(sum "$tgt")" "$want" "rerun after kill -9: $*"
    if (( $(jf targets.0.resumed_from) > 0 )); then RESUMED=$(( RESUMED + 1 )); fi
}

# delta: about N_CHG * 64 KiB to fetch; 128 KiB/s makes it last seconds
for d in $(delays 3 delta 5); do
    cp --sparse=always "$T/v1.img" "$tgt"
    run_killed "$d" "$V" vm1 --target "disk0=$tgt" --bwlimit 128K
    check_rerun "$SUM2" "$V" vm1 --target "disk0=$tgt"
done

# full, over the old version
for d in $(delays 2 full 3); do
    cp --sparse=always "$T/v1.img" "$tgt"
    run_killed "$d" "$V" vm1 --target "disk0=$tgt" --mode full --bwlimit 8M
    check_rerun "$SUM2" "$V" vm1 --target "disk0=$tgt" --mode full
done

# a new file, killed twice (the resumed run too)
rm -f "$tgt"
for d in $(delays 2 create 2.5); do
    run_killed "$d" "$V" vm1 --target "disk0=$tgt" --create --bwlimit 8M
done
check_rerun "$SUM2" "$V" vm1 --target "disk0=$tgt" --create

# --complete, killed: the rerun finishes it
cp --sparse=always "$T/v1.img" "$tgt"
fb "$V" vm1 --target "disk0=$tgt" --prepare --point $P1
for d in $(delays 1 complete 4); do
    run_killed "$d" "$V" vm1 --target "disk0=$tgt" --complete --bwlimit 128K
done
check_rerun "$SUM2" "$V" vm1 --target "disk0=$tgt" --complete
assert_contains "$(status_of "$tgt")" "consistent at point $P2" "status after the resumed complete"

# an interrupted sync to point 1, rerun asking for point 2: finishes point 1's
# sync from its high-water mark, then applies the difference to point 2
cp --sparse=always "$T/v2.img" "$tgt"
run_killed 1.5 "$V" vm1 --target "disk0=$tgt" --point $P1 --mode full --bwlimit 8M
check_rerun "$SUM2" "$V" vm1 --target "disk0=$tgt" --point $P2

msg "$KILLED runs killed, $RESUMED reruns resumed from a checkpoint"
assert_ge "$KILLED" 6 "most runs were killed midway"
assert_ge "$RESUMED" 2 "some reruns resumed from a checkpoint"
(( SEEN_RUNNING )) || fail "--status never said 'in progress' while a failback ran"
(( SEEN_INTERRUPTED )) || fail "--status never said 'interrupted' after a kill"

# --resume with nothing to resume is an error
expect_fail 3 rpfs failback "$V" vm1 --target "disk0=$tgt" --resume
expect_err_contains "no interrupted failback"
