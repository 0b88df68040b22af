#!/usr/bin/env bash
# Seeds for fuzz-vault from a real vault: its config, an index segment and a
# point object, each prefixed with the byte that tells the target which
# object the input replaces.
set -euo pipefail
BIN=$1 RPFS=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/rpfs-fuzz-vault.XXXXXX")
trap 'rm -rf "$T"' EXIT
truncate -s 4M "$T/d.raw"
head -c 300000 /dev/zero | tr '\0' 'x' | dd of="$T/d.raw" bs=1 seek=100000 conv=notrunc status=none
"$RPFS" -q init "$T/v"
"$RPFS" -q replicate "$T/v" vm --disk "$T/d.raw" --group g --time 20261122T100000Z
{ printf '\0'; cat "$T/v/config.json"; } >"$T/s-config"
{ printf '\1'; cat "$T"/v/index/*.idx; } >"$T/s-index"
{ printf '\2'; cat "$T"/v/points/vm/*.json; } >"$T/s-point"
"$BIN" "$T/s-config" "$T/s-index" "$T/s-point"
