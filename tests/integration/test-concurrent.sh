#!/usr/bin/env bash
# Concurrent replicates into one vault.
#
# - two replicates of different VMs at once: both succeed, both export right;
# - two replicates of the same VM with the same --time at once: exactly one
#   succeeds, the other exits non-zero with an "rpfs: " message; the listed point
#   is the winner's disk, byte for byte (three rounds; two in the Azurite
#   twin: lib.sh rounds);
# - four replicates of different VMs sharing most data at once: all succeed
#   and export right; the vault stays readable throughout.
. "$(dirname "$0")/lib.sh"
need mkfs.ext4 python3

MB=$(( 1024 * 1024 ))
make_tree_image "$T/base.raw" 72 56

# variant N: the base with a few 64 KiB blocks of its own and 4 MiB of its own
variant() {  # N -> $T/vN.raw
    cp "$T/base.raw" "$T/v$1.raw"
    overwrite_blocks "$T/v$1.raw" 65536 "var$1" $(( 10 + $1 )) $(( 500 + 7 * $1 )) $(( 900 + $1 ))
    make_random "$T/.r" $(( 4 * MB )) "var4m$1"
    dd if="$T/.r" of="$T/v$1.raw" bs=1M seek=$(( 60 + $1 % 8 )) conv=notrunc status=none
    rm -f "$T/.r"
}
for n in 1 2 3 4 5 6; do variant $n; done
declare -A SUMS=()
for n in 1 2 3 4 5 6; do SUMS[$n]=$(sum "$T/v$n.raw"); done

V=$(vault_path vault)
ok rpfs init "$V"

# start_rep TAG ARGS...: replicate in the background; PID in PIDS[TAG]
declare -A PIDS=()
start_rep() {
    local tag=$1; shift
    "$RPFS" replicate "$V" "$@" >"$T/$tag.out" 2>"$T/$tag.err" &
    PIDS[$tag]=$!
    track_pid "${PIDS[$tag]}"
}
wait_rep() {  # TAG -> exit code in RC_W
    RC_W=0
    wait "${PIDS[$1]}" || RC_W=$?
}

# --- two different VMs at once ---------------------------------------------------
start_rep a vmA --disk "$T/v1.raw" --time 20261122T100000Z
start_rep b vmB --disk "$T/v2.raw" --time 20261122T100000Z
wait_rep a; ra=$RC_W
wait_rep b; rb=$RC_W
(( ra == 0 )) || { cat "$T/a.err" >&2; fail "concurrent replicate of vmA exited $ra"; }
(( rb == 0 )) || { cat "$T/b.err" >&2; fail "concurrent replicate of vmB exited $rb"; }
export_check "$V" vmA disk0 "${SUMS[1]}"
export_check "$V" vmB disk0 "${SUMS[2]}"

# --- the same VM and ID at once: exactly one wins ------------------------------------
C_ROUNDS=$(rounds 3)
for round in $(seq "$C_ROUNDS"); do
    id="20261122T11${round}000Z"
    x=$(( round % 2 ? 3 : 4 )); y=$(( round % 2 ? 4 : 3 ))
    start_rep x vmC --disk "$T/v$x.raw" --time "$id"
    start_rep y vmC --disk "$T/v$y.raw" --time "$id"
    wait_rep x; rx=$RC_W
    wait_rep y; ry=$RC_W
    msg "round $round: exit codes $rx and $ry"
    if (( rx == 0 && ry == 0 )); then
        fail "two replicates of vmC with ID $id both succeeded"
    elif (( rx != 0 && ry != 0 )); then
        cat "$T/x.err" "$T/y.err" >&2
        fail "both replicates of vmC with ID $id failed"
    fi
    if (( rx == 0 )); then win=$x; lose=y; rl=$ry; else win=$y; lose=x; rl=$rx; fi
    (( rl == 1 )) || { cat "$T/$lose.err" >&2; fail "the refused replicate exited $rl, expected 1"; }
    err=$(cat "$T/$lose.err")
    [[ $err == "rpfs: "* ]] || fail "the refused replicate's message does not start with 'rpfs: ': '$err'"
    (( $(wc -l <"$T/$lose.err") <= 1 )) || fail "the refused replicate's message is not one line: '$err'"
    msg "round $round: refused with: $err"
    n=$(point_ids "$V" vmC | grep -cxF "$id" || true)
    assert_eq "$n" 1 "point $id of vmC listed once"
    export_check "$V" vmC disk0 "${SUMS[$win]}" --point "$id"
done

# --- four VMs sharing most data at once ------------------------------------------------
before=$(vault_bytes "$V")
for n in 3 4 5 6; do start_rep "d$n" "vmD$n" --disk "$T/v$n.raw" --disk "shared=$T/v1.raw" --time 20261122T120000Z; done
# readers meanwhile: the point list stays valid JSON
for _ in 1 2 3; do json_points "$V" >/dev/null; sleep 0.1; done
for n in 3 4 5 6; do
    wait_rep "d$n"
    (( RC_W == 0 )) || { cat "$T/d$n.err" >&2; fail "concurrent replicate of vmD$n exited $RC_W"; }
done
after=$(vault_bytes "$V")
msg "four concurrent replicates grew the vault by $(( after - before )) bytes"
for n in 3 4 5 6; do
    export_check "$V" "vmD$n" disk0 "${SUMS[$n]}"
    export_check "$V" "vmD$n" shared "${SUMS[1]}"
done

# --- the vault is whole: every point exports, a new replicate works -------------------
export_check "$V" vmA disk0 "${SUMS[1]}"
export_check "$V" vmB disk0 "${SUMS[2]}"
J=$(json_points "$V")
# vmA, vmB, one vmC point a round, vmD3-6
assert_eq "$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$J")" $(( 6 + C_ROUNDS )) "number of points"
ok rpfs replicate "$V" vmA --disk "$T/v6.raw" --time 20261122T130000Z
export_check "$V" vmA disk0 "${SUMS[6]}" --point latest
