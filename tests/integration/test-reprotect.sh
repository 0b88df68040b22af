#!/usr/bin/env bash
# rpfs reprotect after failback: a 64 MiB disk is replicated (P1), failed
# back to an on-prem target and committed; 1% of the target's blocks are
# changed (half random, half zeros: they compress), then reprotect:
# - the vault grows by at least the changed blocks' stored size (each one
#   zstd-compressed at the vault's level, plus its 8-byte blob header) and
#   at most 1.1x that: only what changed since P1 is sent;
# - the new point exports to the target's bytes (sha256), records its
#   lineage (runs on-prem, from P1) and rpfs status shows the direction;
# - reprotect --changed with a change tracker's ranges: reads only those,
#   the new point exact again, upload again within 1.1x;
# - refused: before --commit, a disk without a failback journal, another
#   VM's target (vault unchanged).
. "$(dirname "$0")/lib.sh"
need python3 zstd

MIB=$((1024 * 1024)) BS=65536
V=$(vault_path v)
ok rpfs init "$V" >/dev/null
LEVEL=$(vault_cat "$V" config.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["compression"]["level"])')
truncate -s $((64 * MIB)) "$T/src.raw"
make_random "$T/.r" $((48 * MIB)) src
dd if="$T/.r" of="$T/src.raw" bs=1M conv=notrunc status=none
rm -f "$T/.r"
P1=20261201T100000Z
ok rpfs replicate "$V" vm --disk disk0="$T/src.raw" --time $P1 >/dev/null
ok rpfs replicate "$V" other --disk disk0="$T/src.raw" --time $P1 >/dev/null
TG=$T/onprem.raw
ok rpfs failback "$V" vm --target disk0="$TG" --create >/dev/null
assert_file_sum "$TG" "$(sum "$T/src.raw")" "failback"

STATE=$(vault_state "$V")
expect_fail 1 rpfs reprotect "$V" vm --disk disk0="$TG"
expect_err_contains "not committed"
ok rpfs failback "$V" vm --target disk0="$TG" --commit >/dev/null
expect_fail 1 rpfs reprotect "$V" other --disk disk0="$TG"
expect_err_contains "failed back as vm/disk0"
expect_fail 1 rpfs reprotect "$V" vm --disk disk0="$T/src.raw"
expect_err_contains "no failback recorded"
assert_eq "$(vault_state "$V")" "$STATE" "refused reprotects left the vault unchanged"

# change BLOCK...: half random, half zero bytes into those blocks of the
# target; prints the bytes they take stored (zstd at the vault's level, or
# as is when that is not smaller, plus the blob header), added up.
change() {
    python3 - "$TG" "$BS" "$T" "$@" <<'PY'
import os, random, subprocess, sys
path, bs, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
level = os.environ["LEVEL"]
total = 0
with open(path, "r+b") as f:
    for b in map(int, sys.argv[4:]):
        data = random.Random("c%d" % b).randbytes(bs // 2) + bytes(bs // 2)
        f.seek(b * bs)
        f.write(data)
        z = subprocess.run(["zstd", "-q", "-c", "--no-check", "-" + level], input=data,
                           stdout=subprocess.PIPE, check=True).stdout
        total += min(len(z), bs) + 8
print(total)
PY
}
export LEVEL
# 1% of the 1024 blocks, spread over the disk (data and hole alike).
BLOCKS=(3 97 180 255 400 511 512 700 800 901 1023)
WANT=$(change "${BLOCKS[@]}")
B0=$(vault_bytes "$V")
OUT=$(ok rpfs reprotect "$V" vm --disk disk0="$TG")
ADDED=$(( $(vault_bytes "$V") - B0 ))
msg "reprotect: ${#BLOCKS[@]} changed blocks, $WANT bytes compressed; vault grew by $ADDED bytes"
assert_ge "$ADDED" "$WANT" "the changed blocks were stored"
assert_le $((ADDED * 10)) $((WANT * 11)) "reprotect sent at most 1.1x the changed blocks' compressed size"
ID=$(awk '{print $1}' <<<"$OUT"); ID=${ID#vm/}
assert_contains "$OUT" "failed back from $P1" "reprotect names its lineage"
export_check "$V" vm disk0 "$(sum "$TG")" --point "$ID"
vault_cat "$V" "points/vm/$ID.json" | python3 -c '
import json, sys
p = json.load(sys.stdin)
assert p["lineage"] == {"runs": "onprem", "from": sys.argv[1]}, p' $P1 || fail "the point's lineage"
assert_contains "$(rpfs status "$V" vm || true)" "runs on-prem, reprotected after failback from $P1" "status: direction"
rpfs status "$V" vm --json | python3 -c '
import json, sys
v = json.load(sys.stdin)["vms"][0]
assert v["direction"] == {"runs": "onprem", "failed_back_from": sys.argv[1]}, v' $P1 || fail "status --json direction"

# With a change tracker's ranges (all changes since the failback).
MORE=(50 150 250 350 450 600 650 750 850 1000 1020)
WANT2=$(change "${MORE[@]}")
for b in "${BLOCKS[@]}" "${MORE[@]}"; do echo "$((b * BS)) $BS"; done >"$T/extents"
B0=$(vault_bytes "$V")
OUT=$(ok rpfs reprotect "$V" vm --disk disk0="$TG" --changed "$T/extents" --time 20261207T000000Z)
ADDED=$(( $(vault_bytes "$V") - B0 ))
msg "reprotect --changed: ${#MORE[@]} new changed blocks, $WANT2 bytes compressed; vault grew by $ADDED bytes"
assert_ge "$ADDED" "$WANT2" "--changed: the new blocks were stored"
assert_le $((ADDED * 10)) $((WANT2 * 11)) "--changed: at most 1.1x"
export_check "$V" vm disk0 "$(sum "$TG")" --point 20261207T000000Z
exit 0
