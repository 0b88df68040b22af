#!/usr/bin/env bash
# kill -9 at 10 random moments (3 in the Azurite twin: lib.sh rounds) of a
# prune with garbage collection (new garbage each time): check --read-data
# is clean, every point exports exact, and the next prune finishes the job
# (no GC record left).
. "$(dirname "$0")/lib.sh"
need python3
. "$(dirname "$0")/lib-gc.sh"

for _ in 1 2 3 4; do new_point; done
ok rpfs policy "$V" --keep-last 3 >/dev/null
new_point
t0=$EPOCHREALTIME
ok rpfs prune "$V" -q
D=$(python3 -c "print(max(0.05, $EPOCHREALTIME - $t0))")   # how long one prune takes here
msg "a prune takes ${D}s; killing at random moments within it"
for i in $(seq "$(rounds 10)"); do
    new_point
    "$RPFS" prune "$V" -q >"$T/kill.out" 2>&1 &
    pid=$!
    sleep "$(python3 -c "import random; print(random.Random($i).uniform(0.01, 1.1 * $D))")"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    check_all "random kill $i"
    ok rpfs prune "$V" -q
    assert_eq "$(has_record)" 0 "after random kill $i, the next prune finished"
done
check_all "end"
assert_le "$(segments)" 3 "a handful of index segments at the end"
msg "ok"
