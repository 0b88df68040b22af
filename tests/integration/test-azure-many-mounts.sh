#!/usr/bin/env bash
# Many readers, one vault: 8 `rpfs mount` processes, each with its own
# cache, mount one Azurite vault at once and read different points of one
# disk concurrently (a DR site's recovery hosts). Every file read through
# every mount matches its point's source image by sha256, a second round
# (each mount reads another point, while the others still read) too; every
# mount served its reads from the vault with no errors; at the end every
# mount is gone and every daemon has exited 0.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need python3 mkfs.ext4 qemu-img curl sha256sum

need_azurite
export RPFS_AZURE_RETRY_SECONDS=20

N=8          # mounts and points
MB=40        # disk size, MiB
C=rpfs-many-$(python3 -c 'import secrets; print(secrets.token_hex(6))')
V=azure://devstoreaccount1/$C/many
at_exit "python3 '$_AZ_HELPER' delete-container '$C' >/dev/null 2>&1 || true"

# Point 1: an ext4 image of real files. Point k+1: point k with a few
# dozen of its non-zero blocks overwritten and a new run of blocks written
# into its free space, so every point differs from every other one.
make_tree_image "$T/disk.raw" "$MB" 20
mapfile -t NZ < <(nonzero_blocks "$T/disk.raw" $BS)
NBLK=$(( MB * 1048576 / BS ))
ok rpfs init "$V" >/dev/null
declare -a PT=() SUM=()
for (( k = 0; k < N; k++ )); do
    if (( k > 0 )); then
        CH=()
        for (( i = k; i < ${#NZ[@]}; i += 29 + k )); do CH+=("${NZ[$i]}"); done
        for (( i = 0; i < 8; i++ )); do CH+=($(( NBLK - 1 - k * 8 - i ))); done
        overwrite_blocks "$T/disk.raw" $BS "many$k" "${CH[@]}"
    fi
    PT[k]=$(printf '20261122T%02d%02d00Z' $(( 10 + k / 4 )) $(( k % 4 * 15 )))
    SUM[k]=$(sum "$T/disk.raw")
    if (( k == N - 1 )); then
        # the last point from a qcow2 image, as a hypervisor would hand it over
        qemu-img convert -f raw -O qcow2 "$T/disk.raw" "$T/disk.qcow2"
        ok rpfs replicate "$V" vm --disk "$T/disk.qcow2" --time "${PT[k]}" -q
        rm -f "$T/disk.qcow2"
    else
        ok rpfs replicate "$V" vm --disk "$T/disk.raw" --time "${PT[k]}" -q
    fi
done
rm -f "$T/disk.raw"
for (( k = 1; k < N; k++ )); do
    assert_ne "${SUM[k]}" "${SUM[k-1]}" "point $k differs from point $(( k - 1 ))"
done
assert_eq "$(point_ids "$V" vm | wc -l)" "$N" "points in the vault"

# N mounts, separate processes, each with its own cache.
declare -a MP=() PIDS=()
for (( m = 0; m < N; m++ )); do
    MP[m]=$T/mnt$m
    mount_fg "$V" "${MP[m]}" --cache "$T/cache$m" --timeout 60
    PIDS[m]=$MPID
done
assert_eq "$(printf '%s\n' "${PIDS[@]}" | sort -u | wc -l)" "$N" "distinct daemon processes"

# read_round SHIFT: mount m reads point (m + SHIFT) % N, all at once; each
# reader writes its sha256 to a file; every one must match the source.
read_round() {
    local shift=$1 m k pids=()
    for (( m = 0; m < N; m++ )); do
        k=$(( (m + shift) % N ))
        ( msum "${MP[m]}/vm/points/${PT[k]}/disk0.raw" >"$T/sum.$m" ) &
        pids+=($!)
    done
    for (( m = 0; m < N; m++ )); do
        wait "${pids[m]}" || fail "reader of mount $m failed (round $shift)"
    done
    for (( m = 0; m < N; m++ )); do
        k=$(( (m + shift) % N ))
        assert_eq "$(cat "$T/sum.$m")" "${SUM[k]}" "mount $m, point ${PT[k]} (round $shift)"
    done
}
read_round 0
for (( m = 0; m < N; m++ )); do
    stats "${MP[m]}"
    assert_eq "${ST[errors]}" 0 "read errors of mount $m"
    assert_gt "${ST[blocks_fetched]}" 0 "mount $m fetched from the vault"
    msg "mount $m: $(stats_line)"
done
# Round 2: each mount another point; what it shares with the first one
# comes from its own cache, the rest from the vault.
read_round 3
# The .vhd view of the newest point through one mount, the listing through all.
qemu-img compare -q -f vpc -F raw "${MP[0]}/vm/latest/disk0.vhd" "${MP[N-1]}/vm/points/${PT[N-1]}/disk0.raw" ||
    fail ".vhd view of the newest point differs from its .raw"
for (( m = 0; m < N; m++ )); do
    assert_eq "$(ls "${MP[m]}/vm/points" | wc -l)" "$N" "points listed by mount $m"
    stats "${MP[m]}"
    assert_eq "${ST[errors]}" 0 "read errors of mount $m after round 2"
done

# Every mount unmounted, every daemon exited 0, no mount left under $T.
for (( m = 0; m < N; m++ )); do
    unmount_ok "${MP[m]}"
    _alive "${PIDS[m]}" && fail "daemon ${PIDS[m]} of mount $m still running"
done
left=$(findmnt -rn -o TARGET | grep -c -F "$T/" || true)
assert_eq "$left" 0 "mounts left under $T"
