#!/usr/bin/env bash
# run-meta.sh BIN RPFS KIND: seeds for fuzz-index, fuzz-point and fuzz-cache
# made from what rpfs writes, then the target replays them with their
# mutations. KIND:
#   index   the vault's index segment, once as is (byte 0 even) and once to
#           be made right by the target (byte 0 odd; see fuzz-index.c)
#   point   the vault's point object
#   cache   a block cache's index (five of its 32 entries in use) and
#           the data of those five slots, written here by python3 (byte 0
#           even and odd; see fuzz-cache.c)
# FUZZ_SEED_DIR: copy the seeds there, run nothing (tests/fuzz/run-long.sh).
set -euo pipefail
BIN=$1 RPFS=$2 KIND=$3
. "$(dirname "$0")/lib-seed.sh"
mkdir "$T/s"
case $KIND in
index)
        seed_vault "$T/v" --block-size 4K
        { printf '\0'; cat "$T"/v/index/*.idx; } >"$T/s/idx-0"
        { printf '\1'; cat "$T"/v/index/*.idx; } >"$T/s/idx-1"
        ;;
point)
        seed_vault "$T/v"
        cp "$T"/v/points/vm/*.json "$T/s/point.json"
        ;;
cache)
        # header, 32 entries of which 5 name slots 1..5, and those 5 blocks
        python3 - "$T/s" <<'PY'
import struct, sys, random
random.seed(7)
for flag in (0, 1):
    hdr = b"RPFSCACH" + struct.pack("<IIQQ", 1, 4096, 16, 32) + bytes(32)
    tab = bytearray(32 * 24)
    for i in range(5):
        pos = random.randrange(32)
        tab[pos * 24:pos * 24 + 16] = random.randbytes(16)
        tab[pos * 24 + 16:pos * 24 + 20] = struct.pack("<I", i + 1)
    data = b"".join(bytes([i]) * 4096 for i in range(5))
    open(f"{sys.argv[1]}/cache-{flag}", "wb").write(bytes([flag]) + hdr + tab + data)
PY
        ;;
*) echo "unknown kind $KIND"; exit 2 ;;
esac
if [ -n "${FUZZ_SEED_DIR:-}" ]; then
        cp "$T"/s/* "$FUZZ_SEED_DIR/"
        exit 0
fi
"$BIN" "$T"/s/*
