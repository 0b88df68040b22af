# Sourced by run-vault.sh and run-pack.sh (bash, set -euo pipefail): a
# temporary directory $T, removed on exit, and seed_vault VAULT
# [INIT-OPTIONS...], which makes a vault with rpfs ($RPFS) holding one
# point (vm, 20261122T100000Z) of a small disk with a little data.
T=$(mktemp -d "${TMPDIR:-/tmp}/rpfs-fuzz.XXXXXX")
trap 'rm -rf "$T"' EXIT

seed_vault() {
        local v=$1
        shift
        if [ ! -e "$T/d.raw" ]; then
                truncate -s 4M "$T/d.raw"
                head -c 300000 /dev/zero | tr '\0' 'x' | dd of="$T/d.raw" bs=1 seek=100000 conv=notrunc status=none
                seq 1 20000 | dd of="$T/d.raw" bs=1 seek=600000 conv=notrunc status=none
        fi
        "$RPFS" -q init "$v" "$@"
        "$RPFS" -q replicate "$v" vm --disk "$T/d.raw" --group g --time 20261122T100000Z
}
