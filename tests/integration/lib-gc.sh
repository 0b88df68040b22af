# shellcheck shell=bash
# Helpers of the garbage-collection tests (test-gc.sh, test-gc-kill.sh):
# a vault V whose disk changes blocks 8..15 at each new point (so the
# oldest packs die whole and the first one is mostly dead), and checks.
MB=$(( 1024 * 1024 ))
V=$(vault_path vault)
ok rpfs init "$V"
make_random "$T/disk.raw" $(( 4 * MB )) base
declare -A SUM=()
N=0
new_point() {  # a new point: blocks 8..15 rewritten
    N=$(( N + 1 ))
    overwrite_blocks "$T/disk.raw" 65536 "p$N" 8 9 10 11 12 13 14 15
    local id; id=$(date -u -d "2026-01-01 + $N min" +%Y%m%dT%H%M%SZ)
    SUM[$id]=$(sum "$T/disk.raw")
    ok rpfs replicate "$V" web --disk "$T/disk.raw" --time "$id" -q
}
check_all() {  # WHAT: check --read-data clean and every point exact
    local out id
    out=$(ok rpfs check "$V" --read-data) || fail "$1: check failed"
    assert_contains "$out" "clean" "$1: check --read-data"
    for id in $(point_ids "$V" web); do
        [[ -n ${SUM[$id]:-} ]] || fail "$1: unknown point $id"
        export_check "$V" web disk0 "${SUM[$id]}" --point "$id"
    done
}
data_bytes() { vault_files "$V" | awk '$2 ~ /^(packs|index)\// {s += $1} END {printf "%.0f\n", s}'; }
max_pack() { vault_files "$V" | awk '$2 ~ /^packs\// && $1 > m {m = $1} END {printf "%.0f\n", m}'; }
segments() { vault_files "$V" | grep -c ' index/' || true; }
has_record() { vault_files "$V" | grep -c ' gc/record.json' || true; }
gc_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)["gc"][sys.argv[1]])' "$1"; }

