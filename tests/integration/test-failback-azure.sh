#!/usr/bin/env bash
# rpfs failback from an Azure Blob vault (Azurite; tests/run.sh starts it and
# sets RPFS_AZURITE_ENDPOINT; skip without it):
# - delta (fetches exactly the changed blocks), full into a new file, two
#   phases: the target equals the point;
# - a wrong account key: exit 5, "authentication failed", the key not shown,
#   the target untouched;
# - an unreachable endpoint with --retry-profile none: exit 7 at once;
# - Azurite stopped (SIGTERM) in the middle of a failback and started again
#   a few seconds later (a private instance): the failback retries, resumes
#   and ends with the target equal to the point.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-failback.sh"
need python3 mkfs.ext4 curl

need_azurite

EP=$RPFS_AZURITE_ENDPOINT
export RPFS_AZURE_RETRY_SECONDS=10
rnd=$(python3 -c 'import secrets; print(secrets.token_hex(6))')
V="azure://devstoreaccount1/fb-$rnd/vault"

fb_images 48 32
fb_vault
STORED=$(( N_CHG * (BS + 8) ))
tgt=$T/target.img

# --- delta, full into a new file, two phases
cp --sparse=always "$T/v1.img" "$tgt"
fb "$V" vm1 --target "disk0=$tgt"
assert_eq "$(sum "$tgt")" "$SUM2" "delta from Azure"
assert_eq "$(jf blocks_fetched)" "$N_CHG" "delta from Azure fetches the changed blocks"
assert_le "$(jf bytes_fetched)" $(( STORED * 11 / 10 )) "bytes fetched from Azure"
fb "$V" vm1 --target "disk0=$T/new.img" --create
assert_eq "$(sum "$T/new.img")" "$SUM2" "full download from Azure into a new file"
cp --sparse=always "$T/v1.img" "$tgt"
fb "$V" vm1 --target "disk0=$tgt" --prepare --point $P1
fb "$V" vm1 --target "disk0=$tgt" --complete
assert_eq "$(sum "$tgt")" "$SUM2" "two phases from Azure"
assert_eq "$(jf blocks_fetched)" "$N_CHG" "complete fetches the manifest difference"

# --- a wrong key: exit 5, and nothing written
cp --sparse=always "$T/v1.img" "$tgt"
before=$(sum "$tgt")
wrong=$(printf 'not-the-key-%s' "$rnd" | base64)
expect_fail 5 env -u AZURE_STORAGE_CONNECTION_STRING AZURE_STORAGE_KEY="$wrong" \
    "$RPFS" --endpoint "$EP" failback "$V" vm1 --target "disk0=$tgt"
expect_err_contains "authentication failed"
assert_not_contains "$ERR" "$wrong" "the key is not shown"
assert_eq "$(sum "$tgt")" "$before" "a refused failback writes nothing"

# --- unreachable, no retries: exit 7
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_fail 7 env RPFS_AZURE_RETRY_SECONDS=1 "$RPFS" --endpoint "http://127.0.0.1:$port/devstoreaccount1" \
    failback "$V" vm1 --target "disk0=$tgt" --retry-profile none
assert_eq "$(sum "$tgt")" "$before" "an unreachable vault writes nothing"

# --- Azurite stopped and restarted during a failback (a private instance)
if ! private_azurite; then
    skip_part "no Azurite binary to start a private instance: the outage"
    exit 0
fi
az2_start
V2="azure://devstoreaccount1/outage-$rnd"
ok rpfs --endpoint "$EP2" init "$V2" >/dev/null
ok rpfs --endpoint "$EP2" replicate "$V2" vm1 --disk "$T/v2.img" --time $P2 -q
rm -f "$T/out.img"
RPFS_AZURE_RETRY_SECONDS=2 "$RPFS" --endpoint "$EP2" failback "$V2" vm1 --target "disk0=$T/out.img" --create \
    --bwlimit 2M >"$T/out.log" 2>"$T/out.err" &
pid=$!
track_pid "$pid"
sleep 1.5
kill -0 "$pid" 2>/dev/null || msg "the failback ended before Azurite was stopped"
az2_stop
msg "Azurite stopped"
sleep 4
az2_start
msg "Azurite restarted"
rc=0; wait "$pid" || rc=$?
_check_sanitizer "$T/out.err" "failback while Azurite stops"
(( rc == 0 )) || { cat "$T/out.err" >&2; fail "the failback did not survive the outage (exit $rc)"; }
grep -q "retrying in" "$T/out.err" || msg "no retry was needed (the outage fell between requests)"
assert_eq "$(sum "$T/out.img")" "$SUM2" "failback across an Azurite outage"
