#!/usr/bin/env bash
# Seeds for fuzz-pack from real vaults: the packs rpfs writes for a small
# disk, compressed (zstd:1) and stored as is (none), each once as it is
# (byte 0 even) and once with the table checksum made right after
# mutation (byte 0 odd; see fuzz-pack.c). FUZZ_SEED_DIR: copy the seeds
# there, run nothing (tests/fuzz/run-long.sh).
set -euo pipefail
BIN=$1 RPFS=$2
. "$(dirname "$0")/lib-seed.sh"
for c in zstd:1 none; do
        seed_vault "$T/v-${c%%:*}" --block-size 16K --compression "$c"
        for p in "$T/v-${c%%:*}"/packs/*/*.pack; do
                { printf '\0'; cat "$p"; } >"$T/s-${c%%:*}-$(basename "$p")-0"
                { printf '\1'; cat "$p"; } >"$T/s-${c%%:*}-$(basename "$p")-1"
        done
done
if [ -n "${FUZZ_SEED_DIR:-}" ]; then
        cp "$T"/s-* "$FUZZ_SEED_DIR/"
        exit 0
fi
# the stored-as-is packs are larger: fewer rounds
FUZZ_ROUNDS=${FUZZ_ROUNDS:-300} "$BIN" "$T"/s-zstd-*
FUZZ_ROUNDS=${FUZZ_ROUNDS_BIG:-100} "$BIN" "$T"/s-none-*
