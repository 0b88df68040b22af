#!/usr/bin/env bash
# The mount and the manual failback on an Azure Blob vault (Azurite):
# every point reads back exactly, a seed limits fetches to the changed
# blocks, and cp into MNT/failback writes and fetches only those.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need python3 mkfs.ext4 qemu-img curl

need_azurite
export RPFS_AZURE_RETRY_SECONDS=20

BS=65536
V="azure://devstoreaccount1/rpfs-$(python3 -c 'import secrets; print(secrets.token_hex(6))')/mnt"
make_tree_image "$T/v1.raw" 48 24
cp "$T/v1.raw" "$T/v2.raw"
mapfile -t NZ < <(nonzero_blocks "$T/v1.raw" $BS)
CHANGED=()
for (( i = 5; i < ${#NZ[@]}; i += 53 )); do CHANGED+=("${NZ[$i]}"); done
overwrite_blocks "$T/v2.raw" $BS azmount "${CHANGED[@]}"
NCH=${#CHANGED[@]}
qemu-img convert -f raw -O qcow2 "$T/v2.raw" "$T/v2.qcow2"
SUM1=$(sum "$T/v1.raw") SUM2=$(sum "$T/v2.raw")

ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" vm --disk "$T/v1.raw" --time 20261122T100000Z -q
ok rpfs replicate "$V" vm --disk "$T/v2.qcow2" --app-consistent --time 20261122T101500Z -q

# Cold reads of every point from Azurite.
M=$T/mnt
mount_fg "$V" "$M" --cache "$T/cache1" --timeout 20
assert_file_sum "$M/vm/points/20261122T100000Z/disk0.raw" "$SUM1" "point 1 through an Azure mount"
assert_file_sum "$M/vm/latest-app/disk0.raw" "$SUM2" "point 2 through an Azure mount"
qemu-img compare -q -f vpc -F raw "$M/vm/latest/disk0.vhd" "$T/v2.raw" || fail ".vhd view differs"
stats "$M"
assert_eq "${ST[errors]}" 0 "read errors"
msg "cold: blocks_fetched=${ST[blocks_fetched]} bytes_fetched=${ST[bytes_fetched]}"
unmount_ok "$M"

# A seed (point 1's image): only the changed blocks come from Azure.
mount_fg "$V" "$M" --cache "$T/cache2" --seed vm/disk0="$T/v1.raw"
assert_file_sum "$M/vm/latest/disk0.raw" "$SUM2" "point 2 with a seed"
stats "$M"
msg "seeded: blocks_fetched=${ST[blocks_fetched]} for $NCH changed"
assert_le "${ST[blocks_fetched]}" $(( NCH + 2 )) "seeded read fetches only changed blocks"
assert_ge "${ST[blocks_fetched]}" "$NCH" "seeded read fetches the changed blocks"
unmount_ok "$M"

# Manual failback through the writable on-prem directory.
mkdir -p "$T/onprem"
cp --sparse=always "$T/v1.raw" "$T/onprem/vm.img"
mount_fg "$V" "$M" --cache "$T/cache3" --onprem "$T/onprem"
cp "$M/vm/latest/disk0.raw" "$M/failback/vm.img" || fail "cp failed"
assert_file_sum "$T/onprem/vm.img" "$SUM2" "failback target"
stats "$M"
msg "cp failback: blocks_written=${ST[blocks_written]} blocks_fetched=${ST[blocks_fetched]} for $NCH changed"
assert_eq "${ST[blocks_written]}" "$NCH" "blocks written"
assert_le "${ST[blocks_fetched]}" $(( NCH + 2 )) "blocks fetched"
unmount_ok "$M"
msg PASS
