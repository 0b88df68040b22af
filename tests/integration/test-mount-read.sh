#!/usr/bin/env bash
# rpfs mount: every disk of every point reads back byte for byte.
#
# A vault with two VMs: "web" (three points of an ext4 disk with real files,
# changed a little each time, the third replicated from a qcow2 and with named
# disks, plus a raw disk with holes and an odd size) and "db" (an ext4 disk,
# then three disks: the ext4, a 1000-byte disk and an all-zero one).  Mounted
# with -f in the background:
# - the layout: VMs, points, disk files, point.json, latest and latest-app;
# - sha256 of every DISK.raw equals its source, DISK.vhd is the same bytes
#   plus a fixed-VHD footer (`qemu-img compare -f vpc` with the source);
# - files are read-only; cp, dd and rsync copy them exactly;
# - the cache is shared by all points: the vault blocks fetched are exactly
#   the distinct non-zero blocks of all the sources, each fetched once even
#   when a reader races readahead;
# - a point replicated while mounted shows up within 5 s, fetching only its
#   changed blocks; `rpfs stats` works; fusermount3 -u makes the daemon exit 0
#   with no sanitizer report.
# Then a background mount (no -f) of the same cache: ready when it returns,
# -o allow_other, --log; reads come from the cache.  And --cache-size bounds
# the cache.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need mkfs.ext4 qemu-img python3 rsync

ok rpfs mount --help >/dev/null

# --- sources ---------------------------------------------------------------------
make_tree_image "$T/a1.raw" 80 48
mapfile -t NZ < <(nonzero_blocks "$T/a1.raw" $BS)
CHG=8
pick() {  # SEED: CHG scattered non-zero blocks of a1
    printf '%s\n' "${NZ[@]}" | python3 -c '
import random, sys
b = sys.stdin.read().split()
print(" ".join(sorted(random.Random(sys.argv[1]).sample(b, int(sys.argv[2])), key=int)))' "$1" $CHG
}
cp "$T/a1.raw" "$T/a2.raw"
# shellcheck disable=SC2046
overwrite_blocks "$T/a2.raw" $BS web2 $(pick 2)
cp "$T/a2.raw" "$T/a3.raw"
# shellcheck disable=SC2046
overwrite_blocks "$T/a3.raw" $BS web3 $(pick 3)
qemu-img convert -f raw -O qcow2 "$T/a3.raw" "$T/a3.qcow2" || fail "qemu-img convert"
cp "$T/a3.raw" "$T/a4.raw"
# shellcheck disable=SC2046
overwrite_blocks "$T/a4.raw" $BS web4 $(pick 4)

H="$T/holes.raw"                          # 50 MiB + 1536: odd, holes
truncate -s $(( 50 * 1024 * 1024 + 3 * 512 )) "$H"
make_random "$T/r1" $(( 256 * 1024 )) holes1
dd if="$T/r1" of="$H" bs=4096 count=1 conv=notrunc status=none
dd if="$T/r1" of="$H" bs=1024 seek=$(( 10 * 1024 )) count=130 conv=notrunc status=none
printf 'unaligned bytes in the middle of a block' |
    dd of="$H" bs=1 seek=$(( 33 * 1024 * 1024 + 12345 )) conv=notrunc status=none
dd if="$T/r1" of="$H" bs=512 seek=$(( $(file_size "$H") / 512 - 3 )) count=3 conv=notrunc status=none

make_tree "$T/treeb" 24
make_random "$T/treeb/random.bin" $(( 4 * 1024 * 1024 )) dbrandom
make_ext4_image "$T/b.raw" 48 "$T/treeb"
rm -rf "$T/treeb"
head -c 1000 "$T/r1" >"$T/tiny.raw"
truncate -s 8M "$T/zero.raw"
rm -f "$T/r1"

# --- vault ------------------------------------------------------------------------
V=$(vault_path vault)
P1=20261122T100000Z P2=20261122T101500Z P3=20261122T103000Z P4=20261122T120000Z
D1=20261122T100500Z D2=20261122T110000Z
ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" web --disk "$T/a1.raw" --disk "$H" --time $P1 -q
ok rpfs replicate "$V" web --disk "$T/a2.raw" --disk "$H" --time $P2 --app-consistent --group g1 -q
ok rpfs replicate "$V" web --disk "sys=$T/a3.qcow2" --disk "data=$H" --time $P3 -q
ok rpfs replicate "$V" db --disk "$T/b.raw" --time $D1 -q
ok rpfs replicate "$V" db --disk "$T/b.raw" --disk "$T/tiny.raw" --disk "$T/zero.raw" --time $D2 --group g2 -q

# vm id disk source
EXPECT=(
    "web $P1 disk0 a1.raw"  "web $P1 disk1 holes.raw"
    "web $P2 disk0 a2.raw"  "web $P2 disk1 holes.raw"
    "web $P3 sys a3.raw"    "web $P3 data holes.raw"
    "db $D1 disk0 b.raw"
    "db $D2 disk0 b.raw"    "db $D2 disk1 tiny.raw"   "db $D2 disk2 zero.raw"
)
declare -A SUMS=()
for f in a1 a2 a3 a4 holes b tiny zero; do SUMS[$f.raw]=$(sum "$T/$f.raw"); done

# --- mount -------------------------------------------------------------------------
M="$T/mnt"
C="$T/cache"
mount_fg "$V" "$M" --cache "$C"
DPID=$MPID

assert_eq "$(ls "$M" | tr '\n' ' ')" "db web " "VMs at the top of the mount"
assert_eq "$(ls "$M/web/points" | tr '\n' ' ')" "$P1 $P2 $P3 " "points of web"
assert_eq "$(ls "$M/db/points" | tr '\n' ' ')" "$D1 $D2 " "points of db"
assert_eq "$(ls "$M/web/points/$P3" | tr '\n' ' ')" "data.changes data.raw data.vhd point.json sys.changes sys.raw sys.vhd " \
    "files of a point with disks named sys and data"
assert_eq "$(ls "$M/db/points/$D2" | tr '\n' ' ')" \
    "disk0.changes disk0.raw disk0.vhd disk1.changes disk1.raw disk1.vhd disk2.changes disk2.raw disk2.vhd point.json " "files of db's second point"

# --- every disk of every point -------------------------------------------------
TOTAL=0
for e in "${EXPECT[@]}"; do
    read -r vm id disk src <<<"$e"
    f="$M/$vm/points/$id/$disk"
    size=$(file_size "$T/$src")
    assert_eq "$(file_size "$f.raw")" "$size" "size of $vm/$id/$disk.raw"
    assert_eq "$(msum "$f.raw")" "${SUMS[$src]}" "sha256 of $vm/$id/$disk.raw (source $src)"
    TOTAL=$(( TOTAL + size ))
    # A VHD holds whole sectors: a disk whose size is not a multiple of 512
    # (the 1000-byte one) is padded with zeros to the next sector.
    vsrc="$T/$src" vsize=$(( (size + 511) / 512 * 512 ))
    if (( vsize != size )); then
        vsrc="$T/padded.raw"
        cp "$T/$src" "$vsrc"
        truncate -s "$vsize" "$vsrc"
    fi
    mh vhd-footer "$f.vhd" "$vsize"
    timeout 120 qemu-img compare -f vpc -F raw "$f.vhd" "$vsrc" >"$T/cmp.out" 2>&1 ||
        { cat "$T/cmp.out" >&2; fail "qemu-img compare -f vpc $vm/$id/$disk.vhd $src"; }
    qsize=$(qemu-img info -f vpc --output=json "$f.vhd" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
    assert_eq "$qsize" "$vsize" "virtual size of $vm/$id/$disk.vhd as qemu-img sees it"
    rm -f "$T/padded.raw"
done
msg "all ${#EXPECT[@]} disks read back exactly (.raw and .vhd)"

# --- point.json ----------------------------------------------------------------------
"$RPFS" points "$V" --json >"$T/points.json"
for vm_id in "web $P1" "web $P2" "web $P3" "db $D1" "db $D2"; do
    read -r vm id <<<"$vm_id"
    python3 -c '
import json, sys
for p in json.load(open(sys.argv[1])):
    if p["vm"] == sys.argv[2] and p["id"] == sys.argv[3]:
        json.dump(p, open(sys.argv[4], "w"))' "$T/points.json" "$vm" "$id" "$T/ref.json"
    mh point-json "$M/$vm/points/$id/point.json" "$T/ref.json"
done
python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))
assert p["type"] == "app" and p["group"] == "g1", p
' "$M/web/points/$P2/point.json" || fail "point.json of web $P2: type app, group g1"

# --- latest, latest-app ------------------------------------------------------------
assert_eq "$(readlink "$M/web/latest")" "points/$P3" "web/latest"
assert_eq "$(readlink "$M/web/latest-app")" "points/$P2" "web/latest-app"
assert_eq "$(readlink "$M/db/latest")" "points/$D2" "db/latest"
[[ ! -e $M/db/latest-app && ! -L $M/db/latest-app ]] || fail "db has no app-consistent point, yet latest-app exists"
assert_eq "$(msum "$M/web/latest/sys.raw")" "${SUMS[a3.raw]}" "web/latest/sys.raw"
assert_eq "$(msum "$M/web/latest-app/disk0.raw")" "${SUMS[a2.raw]}" "web/latest-app/disk0.raw"

# --- read-only --------------------------------------------------------------------------
if ( : >>"$M/web/points/$P1/disk0.raw" ) 2>/dev/null; then fail "disk0.raw opened for writing"; fi
if ( : >"$M/web/newfile" ) 2>/dev/null; then fail "created a file in the mount"; fi
if mkdir "$M/web/newdir" 2>/dev/null; then fail "created a directory in the mount"; fi
if rm -f "$M/web/points/$P1/point.json" 2>/dev/null && [[ ! -e $M/web/points/$P1/point.json ]]; then
    fail "removed point.json from the mount"
fi

# --- cp, dd, rsync ------------------------------------------------------------------------
timeout 120 cp "$M/web/latest/sys.raw" "$T/cp.raw" || fail "cp failed"
assert_file_sum "$T/cp.raw" "${SUMS[a3.raw]}" "cp of web/latest/sys.raw"
rm -f "$T/cp.raw"
timeout 120 dd if="$M/web/points/$P1/disk1.raw" of="$T/dd.raw" bs=1M status=none || fail "dd failed"
assert_file_sum "$T/dd.raw" "${SUMS[holes.raw]}" "dd of web/$P1/disk1.raw"
rm -f "$T/dd.raw"
timeout 120 rsync -a "$M/db/points/$D2/" "$T/rs/" || fail "rsync failed"
assert_file_sum "$T/rs/disk0.raw" "${SUMS[b.raw]}" "rsync of db/$D2/disk0.raw"
assert_file_sum "$T/rs/disk1.raw" "${SUMS[tiny.raw]}" "rsync of db/$D2/disk1.raw"
assert_file_sum "$T/rs/disk2.raw" "${SUMS[zero.raw]}" "rsync of db/$D2/disk2.raw"
cmp -s "$T/rs/point.json" "$M/db/points/$D2/point.json" || fail "rsync of point.json differs"
rm -rf "$T/rs"

# --- stats: one cache for all points ------------------------------------------------------
stats "$M"
msg "stats after reading everything: $(stats_line)"
DISTINCT=$(mh distinct-blocks $BS "$T"/{a1,a2,a3,holes,b,tiny,zero}.raw)
CHUNKS=$(vault_files "$V" | awk '$2 ~ /^points\/.*\.json$/ {print $2}' |
    while read -r n; do vault_cat "$V" "$n"; done | mh chunks -)
PACKS=$(vault_files "$V" | awk '$2 ~ /^packs\/.*\.pack$/ {s += $1} END {printf "%.0f\n", s}')
msg "sources: $DISTINCT distinct non-zero blocks, $CHUNKS manifest chunks, $PACKS bytes of packs"
assert_eq "${ST[errors]}" 0 "stats errors"
assert_eq "${ST[bytes_seed]}" 0 "stats bytes_seed without seeds"
assert_gt "${ST[bytes_vault]}" 0 "stats bytes_vault"
assert_gt "${ST[bytes_zero]}" 0 "stats bytes_zero (disks with holes were read)"
SERVED=$(( ST[bytes_zero] + ST[bytes_cache] + ST[bytes_seed] + ST[bytes_vault] ))
assert_ge "$SERVED" "$TOTAL" "bytes served (zero + cache + seed + vault) >= the bytes of every .raw read once"
# Manifest chunks are not counted as blocks: every distinct block once,
# for all points and all readers (a reader racing readahead included).
assert_eq "${ST[blocks_fetched]}" "$DISTINCT" "blocks fetched = distinct non-zero blocks read (each fetched once)"
assert_le "${ST[bytes_fetched]}" "$PACKS" "bytes fetched <= the packs' total size"

out=$("$RPFS" stats "$M" 2>"$T/stats.err") || { cat "$T/stats.err" >&2; fail "rpfs stats $M failed"; }
[[ -n $out ]] || fail "rpfs stats $M printed nothing"
"$RPFS" stats "$M" --json >"$T/stats.json" 2>"$T/stats.err" ||
    { cat "$T/stats.err" >&2; fail "rpfs stats $M --json failed"; }
mh stats-check "$T/stats.json"
python3 -c '
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2] + "/.rpfs/stats"))
for k in ("blocks_fetched", "bytes_fetched", "errors"):
    assert a[k] == b[k], (k, a[k], b[k])
' "$T/stats.json" "$M" || fail "rpfs stats --json disagrees with $M/.rpfs/stats"
expect_fail any "$RPFS" stats "$T"
msg "rpfs stats of a directory that is no mount: $ERR"

# --- a point replicated while mounted ----------------------------------------------------
FETCHED0=${ST[blocks_fetched]}
ok rpfs replicate "$V" web --disk "$T/a4.raw" --time $P4 --app-consistent -q
t0=$EPOCHREALTIME
while :; do
    if [[ -e $M/web/points/$P4/disk0.raw && $(readlink "$M/web/latest") == "points/$P4" &&
          $(readlink "$M/web/latest-app") == "points/$P4" ]]; then
        break
    fi
    dt=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}')
    awk -v d="$dt" 'BEGIN {exit !(d > 5)}' &&
        fail "point $P4 replicated while mounted: not visible (with latest and latest-app) after 5 s: $(ls "$M/web/points"), latest -> $(readlink "$M/web/latest")"
    sleep 0.1
done
msg "new point visible after $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}') s"
assert_eq "$(msum "$M/web/latest/disk0.raw")" "${SUMS[a4.raw]}" "the new point's disk0.raw"
stats "$M"
assert_eq $(( ST[blocks_fetched] - FETCHED0 )) "$CHG" "the new point fetched only its $CHG changed blocks"

# --- unmount: the daemon exits 0 ---------------------------------------------------------
unmount_ok "$M"
msg "daemon $DPID exited 0 after fusermount3 -u"

# --- the same cache in a background mount -------------------------------------------------
M2="$T/mnt2"
mount_bg "$V" "$M2" --cache "$C" -o allow_other --log "$T/bg.log"
[[ -d $M2/web/points/$P4 ]] || fail "background mount not serving when rpfs mount returned"
findmnt -rn -M "$M2" -o OPTIONS | grep -q allow_other ||
    fail "-o allow_other not in the mount options: $(findmnt -rn -M "$M2" -o OPTIONS)"
assert_eq "$(msum "$M2/web/latest/disk0.raw")" "${SUMS[a4.raw]}" "disk0.raw through the background mount"
stats "$M2"
msg "second mount, same cache: $(stats_line)"
assert_eq "${ST[blocks_fetched]}" 0 "blocks fetched again with a persistent cache"
assert_gt "${ST[bytes_cache]}" 0 "bytes served from the cache"
unmount "$M2"
[[ -f $T/bg.log ]] || fail "--log $T/bg.log was not created"
_check_sanitizer "$T/bg.log" "background daemon's --log"

# --- --cache-size bounds the cache ----------------------------------------------------------
M3="$T/mnt3"
mount_fg "$V" "$M3" --cache "$T/cache3" --cache-size 8M
assert_eq "$(msum "$M3/web/points/$P1/disk0.raw")" "${SUMS[a1.raw]}" "disk0.raw with an 8 MiB cache"
assert_eq "$(msum "$M3/web/points/$P2/disk0.raw")" "${SUMS[a2.raw]}" "disk0.raw of P2 with an 8 MiB cache"
used=$(du -sb "$T/cache3" | cut -f1)
msg "cache after reading 2 x 80 MiB with --cache-size 8M: $used bytes"
assert_le "$used" $(( 10 * 1024 * 1024 + 1024 * 1024 )) "cache stays within --cache-size 8M (+25% + 1 MiB)"
unmount_ok "$M3"
