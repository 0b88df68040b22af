#!/usr/bin/env bash
# rpfs replicate --disk disk0=OVERLAY --base B: a qcow2 overlay (qemu's
# external snapshot) whose backing file holds point B's state is read only
# where the overlay has clusters of its own; every other block comes from
# B's manifest.
# - a 256 MiB ext4 image (raw, and converted to qcow2), replicated; an
#   overlay on each (-F raw, -F qcow2) written by qemu-io (data, unaligned,
#   zeroes); replicate --base latest: the point exports byte-identical to
#   `qemu-img convert -O raw OVERLAY`, its manifest equals a full replicate
#   of the overlay (read through its chain, no --base), and the bytes read
#   from the source are those of the overlay's own clusters (qemu-img map,
#   depth 0) rounded to blocks, not the disk;
# - --verify-base passes on the right base and refuses a wrong one of the
#   same size (vault unchanged); without it a wrong base is silently wrong,
#   as the README says;
# - a base of another size or VM, or without the disk, a non-overlay with
#   --base and no --changed, a missing backing file: refused, vault unchanged.
. "$(dirname "$0")/lib.sh"
need python3
need qemu-img
need qemu-io
need mkfs.ext4

MIB=$((1024 * 1024))
SIZE=$((256 * MIB))
V=$(vault_path v)
ok rpfs init "$V" >/dev/null

make_tree "$T/tree" 40
truncate -s $SIZE "$T/base.raw"
mkfs.ext4 -q -F -d "$T/tree" "$T/base.raw" || fail "mkfs.ext4 -d failed"
rm -rf "$T/tree"
ok qemu-img convert -f raw -O qcow2 "$T/base.raw" "$T/base.qcow2"
ok rpfs replicate "$V" vm --disk disk0="$T/base.raw" --time 20261122T100000Z >/dev/null
ok rpfs replicate "$V" vmq --disk disk0="$T/base.qcow2" --time 20261122T100000Z >/dev/null
P1=20261122T100000Z

# write_overlay OVERLAY: data at aligned and unaligned places, a zeroed range.
write_overlay() {
    ok qemu-io -c "write -P 0x5a $((8 * MIB)) $((3 * MIB))" \
        -c "write -P 0x5b 5000 3000" \
        -c "write -P 0x5c $((100 * MIB + 12345)) 70000" \
        -c "write -z $((150 * MIB)) $MIB" \
        -c "write -P 0x5d $((SIZE - 4096)) 4096" "$1" >/dev/null
}

# own_bytes OVERLAY: bytes of the blocks (64 KiB) that the overlay's own
# extents (qemu-img map depth 0) touch.
own_bytes() {
    qemu-img map --output=json "$1" | python3 -c '
import json, sys
bs, blocks = 65536, set()
for e in json.load(sys.stdin):
    if e["depth"] == 0:
        blocks.update(range(e["start"] // bs, (e["start"] + e["length"] + bs - 1) // bs))
print(len(blocks) * bs)'
}

# rep_v ARGS...: rpfs -v replicate ARGS, which must succeed; its log in rep.log.
rep_v() {
    rpfs -v replicate "$@" 2>"$T/rep.log" >/dev/null || { cat "$T/rep.log" >&2; fail "rpfs replicate $*"; }
    _check_sanitizer "$T/rep.log" "rpfs replicate $*"
}

# read_bytes: what the last rep_v logged as read from the sources.
read_bytes() { sed -n 's/.*replicate: read \([0-9]*\) bytes from the sources.*/\1/p' "$T/rep.log"; }

point_disks() {  # VM ID: the disks of the point object (its manifest), less their source format
    vault_cat "$V" "points/$1/$2.json" | python3 -c 'import json, sys
d = json.load(sys.stdin)["disks"]
for x in d: x.pop("format", None)
print(json.dumps(d, sort_keys=True))'
}

for fmt in raw qcow2; do
    vm=vm; [[ $fmt == qcow2 ]] && vm=vmq
    ov="$T/ov-$fmt.qcow2"
    ok qemu-img create -q -f qcow2 -b "base.$fmt" -F $fmt "$ov"
    write_overlay "$ov"
    ok qemu-img convert -O raw "$ov" "$T/ref.raw"
    REF=$(sum "$T/ref.raw")
    ok rpfs replicate "$V" ref-$fmt --disk disk0="$T/ref.raw" --time 20261122T101500Z >/dev/null
    rm -f "$T/ref.raw"
    OWN=$(own_bytes "$ov")

    rep_v "$V" $vm --disk disk0="$ov" --base latest --time 20261122T101500Z
    READ=$(read_bytes)
    msg "$fmt-backed overlay: read $READ bytes from the source; own clusters: $OWN bytes of $SIZE"
    assert_gt "$READ" 0 "bytes read"
    assert_le "$READ" "$OWN" "--base read only the overlay's own clusters"
    assert_lt "$READ" $((SIZE / 16)) "--base did not read the disk"
    export_check "$V" $vm disk0 "$REF" --point 20261122T101500Z

    # the same overlay without --base: read through its chain
    rep_v "$V" $vm --disk disk0="$ov" --time 20261122T103000Z
    assert_gt "$(read_bytes)" $((20 * MIB)) "without --base the chain is read"
    export_check "$V" $vm disk0 "$REF" --point 20261122T103000Z
    assert_eq "$(point_disks $vm 20261122T101500Z)" "$(point_disks $vm 20261122T103000Z)" \
        "$fmt: --base manifest = a full replicate's"
    assert_eq "$(point_disks $vm 20261122T101500Z)" "$(point_disks ref-$fmt 20261122T101500Z)" \
        "$fmt: --base manifest = a full replicate of qemu-img convert's raw"
    assert_ne "$(point_disks $vm $P1)" "$(point_disks $vm 20261122T103000Z)" "the base's manifest differs"

    # --verify-base on the right base: passes, reads the samples too
    ok rpfs replicate "$V" $vm --disk disk0="$ov" --base $P1 --verify-base 32 --time 20261122T104500Z >/dev/null
    export_check "$V" $vm disk0 "$REF" --point 20261122T104500Z
done

# A wrong base of the same size: a point of other data.
cp "$T/base.raw" "$T/other.raw"
make_random "$T/r" $((128 * MIB)) other
dd if="$T/r" of="$T/other.raw" bs=1M seek=64 conv=notrunc status=none
rm -f "$T/r"
ok rpfs replicate "$V" vm --disk disk0="$T/other.raw" --time 20261122T110000Z >/dev/null
ov="$T/ov-raw.qcow2"
BEFORE=$(vault_state "$V")
RPFS_VERIFY_SEED=1 expect_fail 1 rpfs replicate "$V" vm --disk disk0="$ov" --base latest --verify-base 32 \
    --time 20261122T111500Z
expect_err_contains "verify-base" "differs from base point vm/20261122T110000Z"
assert_eq "$(vault_state "$V")" "$BEFORE" "vault unchanged after --verify-base refused"
ok rpfs replicate "$V" vm --disk disk0="$ov" --base latest --time 20261122T111500Z >/dev/null
rm -f "$T/wrong.raw"
ok rpfs export "$V" vm disk0 --point 20261122T111500Z -o "$T/wrong.raw"
ok qemu-img convert -O raw "$ov" "$T/ref.raw"
assert_ne "$(sum "$T/wrong.raw")" "$(sum "$T/ref.raw")" "without --verify-base a wrong base is silently wrong"
rm -f "$T/wrong.raw" "$T/ref.raw"

# Refused: vault unchanged.
BEFORE=$(vault_state "$V")
truncate -s $((SIZE + MIB)) "$T/big.raw"
ok qemu-img create -q -f qcow2 -b big.raw -F raw "$T/ov-big.qcow2"
expect_fail 1 rpfs replicate "$V" vm --disk disk0="$T/ov-big.qcow2" --base latest
expect_err_contains "$SIZE bytes" "$((SIZE + MIB))" "not the disk"
ok rpfs replicate "$V" other --disk disk0="$T/base.raw" --time 20261122T120000Z >/dev/null
BEFORE=$(vault_state "$V")
expect_fail 1 rpfs replicate "$V" vm --disk disk0="$ov" --base 20261122T120000Z
expect_err_contains "VM vm has no such point"
expect_fail 1 rpfs replicate "$V" vm --disk data="$ov" --base latest
expect_err_contains "has no disk data"
expect_fail 1 rpfs replicate "$V" vm --disk disk0="$T/base.raw" --base latest
expect_err_contains "base.raw" "is not an overlay"
ok qemu-img create -q -f qcow2 -b gone.raw -F raw -u "$T/ov-gone.qcow2" $SIZE
expect_fail 1 rpfs replicate "$V" vm --disk disk0="$T/ov-gone.qcow2" --base latest
expect_err_contains "ov-gone.qcow2" "backing file" "gone.raw"
expect_fail 2 rpfs replicate "$V" vm --disk disk0="$ov" --disk disk1="$ov" --base latest
expect_err_contains "--base needs exactly one --disk"
expect_fail 2 rpfs replicate "$V" vm --disk disk0="$ov" --verify-base 3
expect_err_contains "--verify-base needs --base"
assert_eq "$(vault_state "$V")" "$BEFORE" "vault unchanged after refused input"
msg "ok"
