#!/usr/bin/env bash
# kill -9 at any moment of a replicate: earlier points stay readable, no half
# point is listed, and the next replicate succeeds.
#
# Point 1 is small.  Then a 256 MiB disk (ext4 with real files plus random
# data, so that replication takes a while) is replicated and killed with
# SIGKILL after 0.05..1 s, five times (two in the Azurite twin: lib.sh
# rounds), each time with 96 MiB of new data.
# After each kill, every listed point exports to exactly the bytes it was made
# from, and a following (small) replicate succeeds and exports correctly.
. "$(dirname "$0")/lib.sh"
need mkfs.ext4 python3

MB=$(( 1024 * 1024 ))
V=$(vault_path vault)
ok rpfs init "$V"

# point 1: small
truncate -s $(( 8 * MB )) "$T/small.raw"
make_random "$T/r" $(( 2 * MB )) small
dd if="$T/r" of="$T/small.raw" bs=1M seek=3 conv=notrunc status=none
declare -A WANT=()     # "vm id" -> sha256 of what that point was made from
ok rpfs replicate "$V" vm1 --disk "$T/small.raw" --time 20261122T090000Z
WANT["vm1 20261122T090000Z"]=$(sum "$T/small.raw")

# the big disk: 160 MiB ext4 with ~120 MiB of files, then 96 MiB random
make_tree_image "$T/big.raw" 160 120
make_random "$T/r" $(( 96 * MB )) big
cat "$T/r" >>"$T/big.raw"
rm -f "$T/r"
assert_eq "$(file_size "$T/big.raw")" $(( 256 * MB )) "big.raw size"

# Every listed point must export to what it was made from; no unknown point.
# Between rounds, a big point already verified is not exported again (256 MiB
# each, it would dominate the run time); the final check exports everything.
declare -A VERIFIED=()
check_vault() {  # [full]
    local j ids vm id
    j=$(json_points "$V")
    ids=$(python3 -c 'import json,sys; [print(p["vm"], p["id"]) for p in json.loads(sys.argv[1])]' "$j")
    while read -r vm id; do
        [[ -n ${WANT["$vm $id"]:-} ]] || fail "listed point $vm $id was never completed (half point?)"
        if [[ ${1:-} == full || $vm != big || -z ${VERIFIED["$vm $id"]:-} ]]; then
            export_check "$V" "$vm" disk0 "${WANT["$vm $id"]}" --point "$id"
            VERIFIED["$vm $id"]=1
        fi
    done <<<"$ids"
    # and every point we know was committed is listed
    for k in "${!WANT[@]}"; do
        grep -qxF "$k" <<<"$ids" || fail "committed point $k is no longer listed"
    done
}

SECONDS_START=$SECONDS
killed=0
for i in $(seq "$(rounds 5)"); do
    # new data each round (a fresh random tail and a few changed blocks), so
    # that no round can finish quickly on blocks stored by the killed ones
    make_random "$T/r" $(( 96 * MB )) "big$i"
    dd if="$T/r" of="$T/big.raw" bs=1M seek=160 conv=notrunc status=none
    rm -f "$T/r"
    overwrite_blocks "$T/big.raw" 65536 "kill$i" $(( i * 97 )) $(( 1000 + i * 31 )) $(( 2000 + i ))
    sum_i=$(sum "$T/big.raw")
    id="20261122T1${i}0000Z"
    # 0.05 .. 1 s, deterministic per round but spread
    delay=$(python3 -c "import random; print('%.2f' % random.Random($i).uniform(0.05, 1.0))")
    "$RPFS" replicate "$V" big --disk "$T/big.raw" --time "$id" >"$T/rep.out" 2>"$T/rep.err" &
    pid=$!
    track_pid "$pid"
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null || true
    rc=0; wait "$pid" 2>/dev/null || rc=$?
    if (( rc == 137 )); then
        killed=$(( killed + 1 ))
        msg "round $i: killed after ${delay}s"
        # the point may be listed only if it was complete: then it must be right
        if point_ids "$V" big | grep -qxF "$id"; then
            msg "round $i: point $id was committed just before the kill"
            WANT["big $id"]=$sum_i
        fi
    elif (( rc == 0 )); then
        msg "round $i: replicate finished before the kill (${delay}s)"
        WANT["big $id"]=$sum_i
    else
        cat "$T/rep.err" >&2
        fail "round $i: replicate exited $rc"
    fi
    check_vault

    # the next replicate succeeds (same VM, new point; and the small VM)
    overwrite_blocks "$T/small.raw" 65536 "small$i" $(( 40 + i ))
    ok rpfs replicate "$V" vm1 --disk "$T/small.raw" --time "20261122T1${i}3000Z"
    WANT["vm1 20261122T1${i}3000Z"]=$(sum "$T/small.raw")
    export_check "$V" vm1 disk0 "${WANT["vm1 20261122T1${i}3000Z"]}" --point latest
done
msg "$killed of 5 replicates were killed mid-way"
(( killed > 0 )) || msg "warning: no replicate was slow enough to be killed mid-way"

# Finally the big disk goes in completely (reusing what the killed runs left is
# allowed, the result must be right) and an ID used by a killed run is free.
ok rpfs replicate "$V" big --disk "$T/big.raw" --time 20261122T200000Z
WANT["big 20261122T200000Z"]=$(sum "$T/big.raw")
for i in $(seq "$(rounds 5)"); do
    id="20261122T1${i}0000Z"
    if [[ -z ${WANT["big $id"]:-} ]]; then
        ok rpfs replicate "$V" big --disk "$T/small.raw" --time "$id"
        WANT["big $id"]=$(sum "$T/small.raw")
        break
    fi
done
check_vault full
msg "total time $(( SECONDS - SECONDS_START )) s"
