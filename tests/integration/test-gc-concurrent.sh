#!/usr/bin/env bash
# Garbage collection beside replication (docs/FORMAT.md "Garbage
# collection"). 20 rounds (6 in the Azurite twin: lib.sh rounds): a
# replicate starts, a prune (with GC) runs while
# it does; the disk cycles through 3 versions and keep-last 2 drops the
# version that the next round brings back, so replicates hit blocks that
# the GC condemned. Every replicate commits; every point exports exact;
# check --read-data is clean; a last prune leaves no GC record.
# Then a writer whose session lapsed (SIGSTOP past RPFS_GC_SESSION_TTL
# while a prune ends its session) refuses to commit, and the vault stays
# clean.
. "$(dirname "$0")/lib.sh"
need python3

MB=$(( 1024 * 1024 ))
V=$(vault_path vault)
ok rpfs init "$V"
ok rpfs policy "$V" --keep-last 2 >/dev/null
make_random "$T/base.raw" $(( 6 * MB )) base
declare -A SUM=()
for v in 0 1 2; do
    cp "$T/base.raw" "$T/v$v.raw"
    overwrite_blocks "$T/v$v.raw" 65536 "ver$v" $(seq $(( 10 + v * 12 )) $(( 21 + v * 12 )))
    SUM[v$v]=$(sum "$T/v$v.raw")
done
declare -A WANT=()
has_record() { vault_files "$V" | grep -c ' gc/record.json' || true; }
deferred=0
ROUNDS=$(rounds 20)
for k in $(seq 1 "$ROUNDS"); do
    v=$(( k % 3 ))
    id=$(date -u -d "2026-01-01 + $k min" +%Y%m%dT%H%M%SZ)
    "$RPFS" replicate "$V" web --disk "$T/v$v.raw" --time "$id" -q >"$T/rep.out" 2>&1 &
    rpid=$!
    out=$(ok rpfs prune "$V")
    [[ $out == *"deletions wait"* ]] && deferred=$(( deferred + 1 ))
    rc=0
    wait "$rpid" || rc=$?
    (( rc == 0 )) || { cat "$T/rep.out" >&2; fail "round $k: replicate beside prune failed ($rc)"; }
    WANT[$id]=${SUM[v$v]}
done
msg "$ROUNDS rounds; $deferred prune(s) left deletions to a later one"
ok rpfs prune "$V" -q
assert_eq "$(has_record)" 0 "a prune without a replicate beside it finishes"
out=$(ok rpfs check "$V" --read-data)
assert_contains "$out" "clean" "check --read-data after the rounds"
n=0
for id in $(point_ids "$V" web); do
    [[ -n ${WANT[$id]:-} ]] || fail "unknown point $id"
    export_check "$V" web disk0 "${WANT[$id]}" --point "$id"
    n=$(( n + 1 ))
done
assert_eq "$n" 2 "keep-last 2"

# a writer whose session lapsed does not commit
export RPFS_GC_SESSION_TTL=3
make_random "$T/big.raw" $(( 96 * MB )) big
"$RPFS" replicate "$V" web --disk "$T/big.raw" --time 20260102T000000Z -q >"$T/big.out" 2>&1 &
rpid=$!
track_pid "$rpid"
for _ in $(seq 200); do
    vault_files "$V" | grep -q ' gc/sessions/' && break
    sleep 0.05
done
kill -STOP "$rpid"
# garbage for the prune to condemn: one more point, the oldest goes
ok rpfs replicate "$V" other --disk "$T/v0.raw" --time 20260101T010000Z -q
ok rpfs replicate "$V" other --disk "$T/v1.raw" --time 20260101T020000Z -q
ok rpfs replicate "$V" other --disk "$T/v2.raw" --time 20260101T030000Z -q
sleep 7  # past the session's expiry and grace (3 s each)
ok rpfs prune "$V" -q
assert_eq "$(has_record)" 0 "the lapsed session did not hold the deletions"
kill -CONT "$rpid"
rc=0
wait "$rpid" || rc=$?
assert_eq "$rc" 1 "the replicate whose session lapsed fails"
assert_contains "$(cat "$T/big.out")" "session lapsed" "it says why"
assert_eq "$(point_ids "$V" web | grep -c 20260102T000000Z || true)" 0 "no point committed"
out=$(ok rpfs check "$V" --read-data)
assert_contains "$out" "clean" "check --read-data after the lapsed writer"
unset RPFS_GC_SESSION_TTL
msg "ok"
