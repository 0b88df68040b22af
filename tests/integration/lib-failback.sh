# shellcheck shell=bash
# Helpers for the tests of `rpfs failback`.  Source after lib.sh:
#
#     . "$(dirname "$0")/lib.sh"
#     . "$(dirname "$0")/lib-failback.sh"
#
#   fb_images MB FILES_MB   $T/v1.img: an ext4 image of real files; $T/v2.img:
#                           the same with ~1.5% of its non-zero 64 KiB blocks
#                           overwritten with random data (scattered, as
#                           test-incremental.sh does).  Sets SUM1, SUM2,
#                           CHG (changed block indexes), N_CHG, NZ2 (non-zero
#                           blocks of v2), SIZE (bytes).
#   fb_vault                $V with point $P1 (v1) and $P2 (v2) of VM vm1
#   fb JSON-ARGS...         rpfs failback ... --json, which must succeed; the
#                           result line in $RES
#   jf KEY [JSON]           a field of $RES (or of JSON); nested: targets.0.key
#   target_sum FILE|DEV     sha256 of the first $SIZE bytes
#
# Journals go to $T/state, and no block cache is used unless a test asks.

BS=65536
P1=20261122T100000Z
P2=20261122T101500Z
P3=20261122T103000Z
V=$(vault_path vault)
export RPFS_STATE_DIR=$T/state
export RPFS_CACHE_DIR=$T/no-cache

fb_images() {
    local mb=$1 files=$2
    need mkfs.ext4 python3
    make_tree_image "$T/v1.img" "$mb" "$files"
    SIZE=$(file_size "$T/v1.img")
    SUM1=$(sum "$T/v1.img")
    local nz
    mapfile -t nz < <(nonzero_blocks "$T/v1.img" $BS)
    N_CHG=$(( ${#nz[@]} * 15 / 1000 ))
    (( N_CHG >= 8 )) || N_CHG=8
    mapfile -t CHG < <(printf '%s\n' "${nz[@]}" | python3 -c '
import random, sys
b = [int(x) for x in sys.stdin.read().split()]
for x in sorted(random.Random(7).sample(b, int(sys.argv[1]))): print(x)' "$N_CHG")
    cp --sparse=always "$T/v1.img" "$T/v2.img"
    overwrite_blocks "$T/v2.img" $BS fbchange "${CHG[@]}"
    SUM2=$(sum "$T/v2.img")
    NZ2=$(nonzero_blocks "$T/v2.img" $BS | wc -l)
    msg "image: $SIZE bytes, ${#nz[@]} non-zero blocks; v2 changes $N_CHG of them"
}

fb_vault() {
    ok rpfs init "$V" >/dev/null
    ok rpfs replicate "$V" vm1 --disk "$T/v1.img" --time $P1 -q
    ok rpfs replicate "$V" vm1 --disk "$T/v2.img" --time $P2 -q
}

RES=
fb() {
    local out="$T/.fb.out" errf="$T/.fb.err" rc=0
    "$RPFS" failback "$@" --json >"$out" 2>"$errf" || rc=$?
    _check_sanitizer "$errf" "failback $*"
    if (( rc != 0 )); then
        cat "$errf" >&2
        fail "rpfs failback $* failed with exit $rc"
    fi
    RES=$(grep '"type":"result"' "$out" | tail -1)
    [[ -n $RES ]] || fail "no result line from: rpfs failback $*"
    python3 -c 'import json,sys; json.loads(sys.argv[1])' "$RES" || fail "result line is not JSON: $RES"
}

jf() {
    python3 -c '
import json, sys
v = json.loads(sys.argv[2])
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(str(v).lower() if isinstance(v, bool) else v)' "$1" "${2:-$RES}"
}

# target_sum PATH: lib.sh's sum of the first $SIZE bytes of a target
target_sum() { head -c "$SIZE" "$1" | sum -; }

# status_of PATH [DISK]: the --status line of one target
status_of() {
    "$RPFS" failback "$V" vm1 --target "${2:-disk0}=$1" --status
}
