#!/usr/bin/env bash
# Azure Blob vaults against Azurite (started by tests/run.sh, which exports
# RPFS_AZURITE_ENDPOINT and RPFS_AZURITE_CONNECTION_STRING; skip without it).
#
# - init in a fresh container (under a prefix), replicate real ext4 images
#   (qcow2 and raw) incrementally, points / --json, export == source (sha256);
# - two replicates of the same VM and time at once: exactly one wins;
# - a wrong key: "authentication failed" within a second, the key not shown;
#   a SAS whose signature is wrong: the same, the SAS not shown;
# - a missing container: "container not found";
# - a read-only SAS is enough for points and export; replicate is refused;
# - foreign blobs in the container (root, points/, points/VM/, index/) do not
#   confuse rpfs;
# - rclone, an independent client, through a SAS the helper made: lists the
#   vault's objects, reads a pack byte for byte, its uploads do not confuse
#   rpfs;
# - a replicate that fails after writing packs deletes them in one Blob
#   Batch request;
# - Azurite stopped with SIGTERM in the middle of a replicate (a private
#   instance on another loopback port): restarted within the retry window,
#   the replicate completes; not restarted, it fails cleanly; the vault never
#   lists a half point and the next replicate succeeds.
. "$(dirname "$0")/lib.sh"
need python3 mkfs.ext4 qemu-img curl

need_azurite

HELPER="$(dirname "$0")/azure_helper.py"
MB=$(( 1024 * 1024 ))
EP=$RPFS_AZURITE_ENDPOINT
DEV_KEY=${RPFS_AZURITE_CONNECTION_STRING#*AccountKey=}; DEV_KEY=${DEV_KEY%%;*}
export RPFS_CACHE_DIR="$T/cache"
export RPFS_AZURE_RETRY_SECONDS=20

rnd=$(python3 -c 'import secrets; print(secrets.token_hex(6))')
C="rpfs-$rnd"
V="azure://devstoreaccount1/$C/vaults/one"

# no_creds CMD...: run with no credential variable set at all
no_creds() { env -u AZURE_STORAGE_CONNECTION_STRING -u AZURE_STORAGE_KEY -u AZURE_STORAGE_SAS_TOKEN "$@"; }

# --- init, replicate, points, export ---------------------------------------------
ok rpfs init "$V"
expect_fail 1 rpfs init "$V"
expect_err_contains "not empty"

make_tree_image "$T/a.raw" 48 24
make_tree_image "$T/b.raw" 24 8
qemu-img convert -f raw -O qcow2 "$T/a.raw" "$T/a.qcow2"
SUM_A1=$(sum "$T/a.raw") SUM_B1=$(sum "$T/b.raw")

out=$(ok rpfs replicate "$V" vm1 --disk "$T/a.qcow2" --disk data="$T/b.raw" --time 20261122T100000Z)
msg "first: $out"
# ~1.5% of a's blocks change; the second point stores about that much
mapfile -t nz < <(nonzero_blocks "$T/a.raw" 65536)
overwrite_blocks "$T/a.raw" 65536 inc "${nz[@]:3:6}"
qemu-img convert -f raw -O qcow2 "$T/a.raw" "$T/a.qcow2"
SUM_A2=$(sum "$T/a.raw")
out=$(ok rpfs replicate "$V" vm1 --disk "$T/a.qcow2" --disk data="$T/b.raw" --time 20261122T110000Z --app-consistent)
msg "incremental: $out"
newblocks=$(sed -n 's/.*, \([0-9]*\) new blocks,.*/\1/p' <<<"$out")
assert_le "$newblocks" 12 "new blocks of the incremental point (6 changed blocks + manifest chunks)"

J=$(json_points "$V")
assert_eq "$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$J")" 2 "points --json count"
assert_eq "$(point_ids "$V" vm1 | tr '\n' ' ')" "20261122T100000Z 20261122T110000Z " "point IDs"
assert_contains "$(ok rpfs points "$V" vm1)" "app" "points table"
export_check "$V" vm1 disk0 "$SUM_A1" --point 20261122T100000Z
export_check "$V" vm1 disk0 "$SUM_A2" --point latest-app
export_check "$V" vm1 data "$SUM_B1"
export_check_stdout "$V" vm1 disk0 "$SUM_A2"

# --- exclusive point commit: two writers, one ID ------------------------------------
for round in 1 2; do
    id="20261122T12${round}000Z"
    "$RPFS" replicate "$V" vm2 --disk "$T/a.raw" --time "$id" >"$T/x.out" 2>"$T/x.err" & px=$!
    "$RPFS" replicate "$V" vm2 --disk "$T/b.raw" --time "$id" >"$T/y.out" 2>"$T/y.err" & py=$!
    track_pid "$px"; track_pid "$py"
    rx=0; wait "$px" || rx=$?
    ry=0; wait "$py" || ry=$?
    msg "round $round: exit codes $rx and $ry"
    (( (rx == 0) != (ry == 0) )) || { cat "$T/x.err" "$T/y.err" >&2; fail "not exactly one of two replicates of vm2/$id won"; }
    if (( rx == 0 )); then want=$(sum "$T/a.raw"); lerr=$T/y.err; rl=$ry; else want=$SUM_B1; lerr=$T/x.err; rl=$rx; fi
    (( rl == 1 )) || fail "the refused replicate exited $rl"
    grep -q "already exists" "$lerr" || fail "the refused replicate did not say why: $(cat "$lerr")"
    _check_sanitizer "$lerr" "concurrent replicate"
    assert_eq "$(point_ids "$V" vm2 | grep -cxF "$id")" 1 "point vm2/$id listed once"
    export_check "$V" vm2 disk0 "$want" --point "$id"
done

# --- credentials -----------------------------------------------------------------------
WRONG=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(64)).decode())')
start=$(date +%s.%N)
expect_fail 1 no_creds env AZURE_STORAGE_KEY="$WRONG" "$RPFS" --endpoint "$EP" points "$V"
elapsed=$(python3 -c "import sys; print(int((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" "$start" "$(date +%s.%N)")
expect_err_contains "authentication failed" AZURE_STORAGE_KEY
msg "wrong key (${elapsed} ms): $ERR"
assert_lt "$elapsed" 1000 "milliseconds until a wrong key is reported"
assert_not_contains "$ERR" "$WRONG" "error message"
assert_not_contains "$ERR" "${WRONG:0:12}" "error message"
expect_fail 1 no_creds env AZURE_STORAGE_KEY="$WRONG" "$RPFS" --endpoint "$EP" replicate "$V" vm1 --disk "$T/b.raw"
expect_err_contains "authentication failed"
assert_not_contains "$ERR" "${WRONG:0:12}" "error message"
# the same with -v: the debug lines must not show the key either
no_creds env AZURE_STORAGE_KEY="$WRONG" "$RPFS" -v --endpoint "$EP" points "$V" >/dev/null 2>"$T/v.err" || true
assert_not_contains "$(cat "$T/v.err")" "${WRONG:0:12}" "verbose log"
assert_not_contains "$(cat "$T/v.err")" "$DEV_KEY" "verbose log"

# a connection string with a wrong key
expect_fail 1 env AZURE_STORAGE_CONNECTION_STRING="AccountName=devstoreaccount1;AccountKey=$WRONG;BlobEndpoint=$EP" \
    "$RPFS" points "$V"
expect_err_contains "authentication failed"
assert_not_contains "$ERR" "${WRONG:0:12}" "error message"

# --- a missing container, a bad URL ----------------------------------------------------
expect_fail 1 rpfs points "azure://devstoreaccount1/nosuch-$rnd"
expect_err_contains "container not found"
expect_fail 1 rpfs export "azure://devstoreaccount1/nosuch-$rnd" vm1 disk0 -o "$T/x.raw"
expect_err_contains "container not found"
expect_fail 1 rpfs points "azure://devstoreaccount1/$C/vaults/none"
expect_err_contains "not an rpfs vault"
expect_fail 1 rpfs points "azure://devstoreaccount1/Bad_Name"
expect_err_contains "azure://ACCOUNT/CONTAINER"
expect_fail 2 rpfs --endpoint ftp://x points "$V"

# --- foreign blobs do not confuse rpfs ---------------------------------------------------
echo "not rpfs" >"$T/foreign.txt"
for b in random.txt vaults/random.txt vaults/one/random.txt vaults/one/points/random.txt \
         vaults/one/points/vm1/random.txt vaults/one/points/vm1/20261122T130000Z.txt \
         "vaults/one/points/vm1/odd name.json" vaults/one/index/random.txt vaults/one/packs/zz/random.txt; do
    python3 "$HELPER" put "$C" "$b" "$T/foreign.txt" || fail "helper upload of $b failed"
done
J2=$(json_points "$V")
assert_eq "$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$J2")" 4 "points with foreign blobs"
export_check "$V" vm1 disk0 "$SUM_A2"
ok rpfs replicate "$V" vm3 --disk "$T/b.raw" --time 20261122T130000Z >/dev/null
export_check "$V" vm3 disk0 "$SUM_B1"

# --- a read-only SAS is the only credential -----------------------------------------------
# RPFS_CMD: the binary with the environment of the case at hand
RPFS_CMD=("$RPFS")
xc() {  # VAULT VM DISK SHA [EXPORT-ARGS...]: export through RPFS_CMD, compare
    local vault=$1 vm=$2 disk=$3 want=$4; shift 4
    local out="$T/.xc.raw"
    rm -f -- "$out"
    ok "${RPFS_CMD[@]}" export "$vault" "$vm" "$disk" "$@" -o "$out"
    assert_file_sum "$out" "$want" "export $vault $vm/$disk $*"
    rm -f -- "$out"
}
ids() {  # VAULT VM: point IDs through RPFS_CMD
    "${RPFS_CMD[@]}" points "$1" --json | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["vm"] == sys.argv[1]:
        print(p["id"])' "$2"
}
sas_checks() {  # SAS SOURCE
    local sas=$1 what=$2 n
    RPFS_CMD=(env -u AZURE_STORAGE_CONNECTION_STRING RPFS_CACHE_DIR="$T/cache-$what"
              AZURE_STORAGE_SAS_TOKEN="$sas" "$RPFS" --endpoint "$EP")
    n=$(ids "$V" vm1 | wc -l)
    assert_eq "$n" 2 "points of vm1 listed with a read-only $what SAS"
    xc "$V" vm1 disk0 "$SUM_A1" --point 20261122T100000Z
    xc "$V" vm1 data "$SUM_B1"
    ok env -u AZURE_STORAGE_KEY AZURE_STORAGE_CONNECTION_STRING="BlobEndpoint=$EP;SharedAccessSignature=$sas" \
        "$RPFS" points "$V" vm1 >/dev/null
    expect_fail 1 "${RPFS_CMD[@]}" replicate "$V" vm4 --disk "$T/b.raw"
    msg "replicate with a read-only $what SAS: $ERR"
    assert_not_contains "$ERR" "sig=" "error message"
    assert_eq "$(ids "$V" vm4 | wc -l)" 0 "points of vm4 after a refused replicate"
    RPFS_CMD=("$RPFS")
}
SAS=$(python3 "$HELPER" sas "$C" rl) || fail "cannot make a SAS"
sas_checks "$SAS" helper
# a SAS with a wrong signature: refused, and not shown
BADSAS=${SAS/sig=/sig=AAAA}
expect_fail 1 no_creds env AZURE_STORAGE_SAS_TOKEN="$BADSAS" "$RPFS" --endpoint "$EP" points "$V"
expect_err_contains "authentication failed"
assert_not_contains "$ERR" "${SAS#*sig=}" "error message"

# --- rclone, an independent client (Go's Azure SDK), through a SAS URL ---------------------------
# (rclone's own endpoint option names a suffix of *.blob.core.windows.net
# only; a container SAS URL reaches any endpoint.)
if command -v rclone >/dev/null 2>&1; then
    RCSAS=$(python3 "$HELPER" sas "$C" rwl) || fail "cannot make a SAS for rclone"
    RC=(env RCLONE_CONFIG=/dev/null timeout 120 rclone --retries 1 --low-level-retries 1 --contimeout 10s --timeout 30s)
    RR=":azureblob,sas_url='$EP/$C?$RCSAS':$C"
    names=$("${RC[@]}" lsf -R --files-only "$RR/vaults/one") || fail "rclone lsf failed"
    grep -qxF config.json <<<"$names" || fail "rclone does not list config.json: $names"
    grep -qxF points/vm1/20261122T100000Z.json <<<"$names" || fail "rclone does not list the point"
    pack=$(grep -m1 '^packs/.*\.pack$' <<<"$names") || fail "rclone lists no pack"
    msg "rclone lists $(wc -l <<<"$names") objects of the vault"
    # the bytes rclone reads are the bytes the helper reads
    assert_eq "$("${RC[@]}" cat "$RR/vaults/one/$pack" | sum -)" \
              "$(python3 "$HELPER" get "$C" "vaults/one/$pack" | sum -)" "pack $pack read by rclone and by the helper"
    "${RC[@]}" copyto "$T/foreign.txt" "$RR/vaults/one/points/vm1/rclone.json" || fail "rclone copyto failed"
    assert_eq "$(point_ids "$V" vm1 | wc -l)" 2 "points of vm1 after an rclone upload"
else
    skip_part "rclone is not installed: the interoperability checks with it"
fi

# --- a failed replicate removes the packs it wrote, in one Blob Batch --------------------------
# 80 MiB of random data in a qcow2 that lacks its last MiB: several 16 MiB
# packs are uploaded before the read fails; the abandoned run deletes them
# with one batch request (POST ?comp=batch, 202), not one by one, and the
# vault is as it was.
VB="azure://devstoreaccount1/$C/vaults/batch"
ok rpfs init "$VB"
make_random "$T/rand.raw" $(( 80 * MB )) batch
qemu-img convert -f raw -O qcow2 "$T/rand.raw" "$T/rand.qcow2"
truncate -s $(( $(file_size "$T/rand.qcow2") - MB )) "$T/rand.qcow2"
before=$(python3 "$HELPER" list "$C" vaults/batch/ | sort)
rc=0
"$RPFS" -v replicate "$VB" vm --disk "$T/rand.qcow2" >/dev/null 2>"$T/batch.err" || rc=$?
_check_sanitizer "$T/batch.err" "replicate -v of a truncated qcow2"
BERR=$(grep -v 'debug:' "$T/batch.err" || true)
assert_eq "$rc" 1 "exit status of a replicate of a truncated qcow2 ($BERR)"
assert_contains "$BERR" "beyond the end" "the error message"
assert_eq "$(python3 "$HELPER" list "$C" vaults/batch/ | sort)" "$before" "the container after a failed replicate"
packs=$(grep -o 'azure: PUT vaults/batch/packs/[^ ]*' "$T/batch.err" | sort -u | wc -l)
assert_ge "$packs" 2 "packs uploaded before the failure"
grep -q 'azure: POST (container) -> 202' "$T/batch.err" ||
    fail "no Blob Batch request: $(grep -i 'delete\|batch' "$T/batch.err")"
grep -q "batch of $packs deletes: $packs done" "$T/batch.err" ||
    fail "the batch did not delete the $packs packs: $(grep -i 'batch' "$T/batch.err")"
assert_not_contains "$(cat "$T/batch.err")" "single deletes" "the batch was refused"
msg "failed replicate: $packs packs uploaded, then deleted by one batch"

rm -f "$T/rand.raw" "$T/rand.qcow2"

# --- Azurite stopped (SIGTERM) in the middle of a replicate ------------------------------------
if ! private_azurite; then
    skip_part "no Azurite binary to start a private instance: the SIGTERM checks"
    exit 0
fi
az2_start
V2="azure://devstoreaccount1/kill-$rnd"
RPFS_CMD=("$RPFS" --endpoint "$EP2")
ok "${RPFS_CMD[@]}" init "$V2"
ok "${RPFS_CMD[@]}" replicate "$V2" vm --disk "$T/b.raw" --time 20261122T090000Z >/dev/null
declare -A WANT=([20261122T090000Z]=$SUM_B1)
check_v2() {  # every listed point is complete and right; none was lost
    local id listed
    listed=$(ids "$V2" vm) || fail "points of $V2"
    for id in $listed; do
        [[ -n ${WANT[$id]:-} ]] || fail "listed point vm/$id was never completed (half point?)"
        xc "$V2" vm disk0 "${WANT[$id]}" --point "$id"
    done
    for id in "${!WANT[@]}"; do
        grep -qxF "$id" <<<"$listed" || fail "committed point vm/$id is no longer listed"
    done
}

n=0
for round in restart norestart; do
    n=$(( n + 1 ))
    make_random "$T/big.raw" $(( 96 * MB )) "big-$round"
    id=20261122T1${n}0000Z
    # the restart round's window outlasts a slow Azurite start on a loaded
    # machine (az2_start waits up to 60 s)
    window=$([[ $round == restart ]] && echo 90 || echo 3)
    RPFS_AZURE_RETRY_SECONDS=$window "${RPFS_CMD[@]}" replicate "$V2" vm --disk "$T/big.raw" \
        --time "$id" >"$T/k.out" 2>"$T/k.err" &
    pid=$!
    track_pid "$pid"
    sleep 0.7
    kill -0 "$pid" 2>/dev/null || msg "round $round: the replicate ended before Azurite was stopped"
    az2_stop
    msg "round $round: Azurite stopped with SIGTERM"
    if [[ $round == restart ]]; then
        sleep 2
        az2_start
        msg "round $round: Azurite restarted"
    fi
    rc=0; wait "$pid" || rc=$?
    _check_sanitizer "$T/k.err" "replicate while Azurite stops"
    [[ $round == norestart ]] && az2_start
    if (( rc == 0 )); then
        msg "round $round: replicate completed"
        WANT[$id]=$(sum "$T/big.raw")
    else
        (( rc == 1 )) || { cat "$T/k.err" >&2; fail "round $round: replicate exited $rc"; }
        (( $(wc -l <"$T/k.err") <= 1 )) || fail "round $round: more than one line of error: $(cat "$T/k.err")"
        msg "round $round: replicate failed cleanly: $(cat "$T/k.err")"
        [[ $round == norestart ]] ||
            fail "round $round: Azurite was back within the retry window, yet the replicate failed"
    fi
    check_v2
    # the next replicate succeeds
    ok "${RPFS_CMD[@]}" replicate "$V2" vm --disk "$T/a.raw" --time "20261122T2${n}0000Z" >/dev/null
    WANT[20261122T2${n}0000Z]=$SUM_A2
    check_v2
done
rm -f "$T/big.raw"
az2_stop
