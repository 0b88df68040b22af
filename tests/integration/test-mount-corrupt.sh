#!/usr/bin/env bash
# A corrupt stored block fails with EIO, never with wrong bytes, and only it.
#
# One byte is flipped in the middle of one stored data block (a blob found by
# reading the packs' tables, preferably stored uncompressed and occurring once
# on the disk).  With a fresh cache, the disk is read block by block (64 KiB):
# exactly the blocks holding that content fail with EIO; every other block
# equals the source; the daemon's log names the point, the disk, the block
# and the pack; stats count the errors; the bad block fails again when read
# again (also through the .vhd view) and the mount keeps serving the rest.
# The same with a background mount logging to --log FILE.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
dir_vault_only "corrupts pack files in place"
need_fuse
need mkfs.ext4 python3

make_tree "$T/tree" 24
make_random "$T/tree/random.bin" $(( 3 * 1024 * 1024 )) corrupt  # stored uncompressed
make_ext4_image "$T/d.raw" 40 "$T/tree"
rm -rf "$T/tree"
SUM=$(sum "$T/d.raw")

V=$(vault_path vault)
P1=20261122T100000Z
ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" vm --disk "$T/d.raw" --time $P1 -q
ok rpfs export "$V" vm disk0 -o "$T/before.raw"
assert_file_sum "$T/before.raw" "$SUM" "export before the corruption"
rm -f "$T/before.raw"

c=$(mh corrupt "$V" "$T/d.raw" $BS)
read -r PACK HASH BLOBOFF WANT_EIO <<<"$c"
read -ra WANT_EIO <<<"$WANT_EIO"
[[ -n $PACK && ${#WANT_EIO[@]} -gt 0 ]] || fail "no block corrupted: $c"
msg "flipped a byte of blob $HASH at offset $BLOBOFF of pack $PACK: disk blocks ${WANT_EIO[*]} hold it"

M="$T/mnt"
mount_fg "$V" "$M" --cache "$T/cache1"
F="$M/vm/points/$P1/disk0.raw"
out=$(timeout 120 "${MH[@]}" blockscan "$F" "$T/d.raw" $BS) ||
    { printf '%s\n' "$out" >&2; fail "reading the disk block by block: wrong bytes or errors other than EIO"; }
GOT_EIO=$(awk '$1 == "eio" {printf "%s ", $2}' <<<"$out")
assert_eq "$GOT_EIO" "${WANT_EIO[*]} " "blocks failing with EIO (those holding the corrupt blob)"
msg "EIO exactly on block(s) ${GOT_EIO}; every other block equals the source"

# the log names point, disk, block and pack
check_log() {  # LOGFILE
    local lines line
    lines=$(grep -F "$PACK" "$1" || true)
    [[ -n $lines ]] || { cat "$1" >&2; fail "no log line names pack $PACK"; }
    line=$(head -1 <<<"$lines")
    msg "log: $line ($(wc -l <<<"$lines") line(s) name the pack)"
    assert_contains "$line" "$P1" "the log line names the point"
    assert_contains "$line" disk0 "the log line names the disk"
    local b ok=0 w
    for b in "${WANT_EIO[@]}"; do
        for w in "$b" $(( b * BS )) "$(printf '0x%x' $(( b * BS )))" "$HASH"; do
            if grep -qiwF -- "$w" <<<"$line"; then ok=1; fi
        done
    done
    (( ok )) || fail "the log line names the block neither by index (${WANT_EIO[*]}), offset nor hash $HASH: $line"
}
check_log "$MLOG"

stats "$M"
msg "stats: $(stats_line)"
assert_gt "${ST[errors]}" 0 "stats errors after EIO reads"

# the mount keeps serving; the bad block keeps failing
bad=${WANT_EIO[0]}
r=$(timeout 60 "${MH[@]}" timed-read "$F" $(( bad * BS )) $BS "$T/d.raw")
assert_eq "${r%% *}" EIO "block $bad read again"
r=$(timeout 60 "${MH[@]}" timed-read "$F" $(( bad * BS + 100 )) 10 "$T/d.raw")
assert_eq "${r%% *}" EIO "10 bytes inside block $bad"
r=$(timeout 60 "${MH[@]}" timed-read "$M/vm/points/$P1/disk0.vhd" $(( bad * BS )) 4096 "$T/d.raw")
assert_eq "${r%% *}" EIO "block $bad through disk0.vhd"
good=$(( bad > 0 ? bad - 1 : bad + 1 ))     # a neighbour that holds other data
while [[ " ${WANT_EIO[*]} " == *" $good "* ]]; do good=$(( good + 1 )); done
r=$(timeout 60 "${MH[@]}" timed-read "$F" $(( good * BS )) $BS "$T/d.raw")
assert_eq "${r%% *}" ok "block $good next to the bad one"
if timeout 120 cat "$F" >/dev/null 2>"$T/cat.err"; then
    fail "cat of the whole disk succeeded despite a corrupt block"
fi
grep -qi 'input/output error' "$T/cat.err" || fail "cat: expected an I/O error, got: $(cat "$T/cat.err")"
r=$(timeout 60 "${MH[@]}" timed-read "$F" $(( good * BS )) $BS "$T/d.raw")
assert_eq "${r%% *}" ok "block $good after all those errors"
assert_eq "$(msum "$M/vm/points/$P1/point.json" | wc -c)" 65 "point.json still readable"
unmount_ok "$M"

# the same with a background mount logging to a file
mount_bg "$V" "$M" --cache "$T/cache2" --log "$T/bg.log"
r=$(timeout 60 "${MH[@]}" timed-read "$M/vm/latest/disk0.raw" $(( bad * BS )) $BS "$T/d.raw")
assert_eq "${r%% *}" EIO "block $bad through a background mount"
r=$(timeout 60 "${MH[@]}" timed-read "$M/vm/latest/disk0.raw" $(( good * BS )) $BS "$T/d.raw")
assert_eq "${r%% *}" ok "block $good through a background mount"
unmount "$M"
check_log "$T/bg.log"
_check_sanitizer "$T/bg.log" "background daemon's --log"
