#!/usr/bin/env bash
# Seeds for fuzz-vault from a real vault: its config, an index segment and a
# point object, each prefixed with the byte that tells the target which
# object the input replaces. FUZZ_SEED_DIR: copy the seeds there, run
# nothing (tests/fuzz/run-long.sh).
set -euo pipefail
BIN=$1 RPFS=$2
. "$(dirname "$0")/lib-seed.sh"
seed_vault "$T/v"
{ printf '\0'; cat "$T/v/config.json"; } >"$T/s-config"
{ printf '\1'; cat "$T"/v/index/*.idx; } >"$T/s-index"
{ printf '\2'; cat "$T"/v/points/vm/*.json; } >"$T/s-point"
if [ -n "${FUZZ_SEED_DIR:-}" ]; then
        cp "$T/s-config" "$T/s-index" "$T/s-point" "$FUZZ_SEED_DIR/"
        exit 0
fi
"$BIN" "$T/s-config" "$T/s-index" "$T/s-point"
