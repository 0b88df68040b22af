#!/usr/bin/env bash
# replay.sh BIN DIR...: run fuzz target BIN (built plainly, tests/fuzz/fuzz.h)
# on every file in the DIRs (kept seeds, and the regression inputs that
# tests/fuzz/run-long.sh saved from crashes in regress/NAME/), each with
# its FUZZ_ROUNDS mutations. A missing or empty DIR is no input.
set -euo pipefail
BIN=$1
shift
files=()
for d in "$@"; do
        [ -d "$d" ] || continue
        for f in "$d"/*; do
                [ -f "$f" ] && files+=("$f")
        done
done
if ((${#files[@]} == 0)); then
        echo "no inputs in: $*"
        exit 0
fi
echo "${#files[@]} inputs"
exec "$BIN" "${files[@]}"
