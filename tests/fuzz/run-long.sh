#!/usr/bin/env bash
# tests/fuzz/run-long.sh [SECONDS] [TARGET...]: real fuzzing. Builds
# build-fuzz/ (clang, -Dfuzzing=true: libFuzzer + AddressSanitizer +
# UndefinedBehaviorSanitizer; installs clang and its runtime through
# tools/deps.sh when missing), then runs each target (all by default) for
# SECONDS (default 600), one at a time in one process, on its kept corpus
# tests/fuzz/corpus/TARGET/ (seeded on first use from seeds/TARGET/ or
# the target's run-*.sh; not in git). A crash stops that target; its
# input is saved in tests/fuzz/regress/TARGET/, which `meson test`
# replays (fuzz-regress-TARGET): fix the bug, keep the input. Prints one
# line per target: execs/s, corpus files, coverage, outcome; the logs are
# in build-fuzz/fuzz-logs/. Exit 1 when any target crashed.
set -uo pipefail
SECS=${1:-600}
shift || true
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
B=$SRC/build-fuzz
ALL=(image qcow2 vhd vhdx vmdk vault pack index point journal cache azure-list azure-batch http-header)
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=("${ALL[@]}")

. "$SRC/tools/deps.sh"
deps_install "${BUILD_DEPS[@]}" clang libclang-rt-14-dev qemu-utils python3 || exit 1
if [ ! -d "$B" ]; then
        CC=clang meson setup "$B" "$SRC" -Dfuzzing=true -Db_lundef=false >/dev/null || exit 1
fi
meson compile -C "$B" >/dev/null 2>&1 || { meson compile -C "$B"; echo "build-fuzz does not build"; exit 1; }
mkdir -p "$B/fuzz-logs"

seed() { # seed TARGET DIR
        local t=$1 d=$2
        case $t in
        image) FUZZ_SEED_DIR=$d bash "$HERE/run-image.sh" - ;;
        qcow2 | vhd | vhdx | vmdk) FUZZ_SEED_DIR=$d bash "$HERE/run-image.sh" - "$t" ;;
        vault) FUZZ_SEED_DIR=$d bash "$HERE/run-vault.sh" - "$B/cli/rpfs" ;;
        pack) FUZZ_SEED_DIR=$d bash "$HERE/run-pack.sh" - "$B/cli/rpfs" ;;
        index | point | cache) FUZZ_SEED_DIR=$d bash "$HERE/run-meta.sh" - "$B/cli/rpfs" "$t" ;;
        *) cp "$HERE/seeds/$t"/* "$d/" ;;
        esac
}

crashed=0
printf '%-12s %8s %8s %8s %8s  %s\n' target seconds exec/s corpus cov outcome
for t in "${TARGETS[@]}"; do
        bin=$B/tests/fuzz/fuzz-$t-libfuzzer corpus=$HERE/corpus/$t regress=$HERE/regress/$t
        log=$B/fuzz-logs/$t.log
        [ -x "$bin" ] || { echo "$t: no $bin"; crashed=1; continue; }
        mkdir -p "$corpus" "$regress"
        if [ -z "$(ls -A "$corpus")" ]; then
                seed "$t" "$corpus" || { echo "$t: no seeds"; crashed=1; continue; }
        fi
        start=$(date +%s)
        (cd "$B/fuzz-logs" && "$bin" -max_total_time="$SECS" -timeout=25 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$regress/" "$corpus" >"$log" 2>&1)
        rc=$?
        secs=$(($(date +%s) - start))
        last=$(grep -E '^#[0-9]+' "$log" | tail -1)
        execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
        cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
        outcome=ok
        if ((rc != 0)); then
                outcome="CRASH: $(grep -m1 -E 'ERROR: |SUMMARY: |deadly signal|timeout after' "$log" | cut -c1-100)"
                crashed=1
        fi
        printf '%-12s %8s %8s %8s %8s  %s\n' "$t" "$secs" "$((${execs:-0} / (secs > 0 ? secs : 1)))" \
                "$(ls "$corpus" | wc -l)" "${cov:-?}" "$outcome"
done
exit $crashed
