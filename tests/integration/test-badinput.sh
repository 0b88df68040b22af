#!/usr/bin/env bash
# Bad input: missing, truncated and corrupt images, a differencing image whose
# parent is missing, things that are not vaults, a vault of a newer format
# version, init on a non-empty directory, bad --block-size / --compression.
# Each case exits non-zero with one "rpfs: " line naming the file, and leaves
# the vault unchanged (every file's sha256 and the point list).
. "$(dirname "$0")/lib.sh"
need qemu-img python3

MB=$(( 1024 * 1024 ))
truncate -s $(( 16 * MB )) "$T/good.raw"
make_random "$T/r" $(( 3 * MB )) bad
dd if="$T/r" of="$T/good.raw" bs=1M seek=2 conv=notrunc status=none
GOOD_SUM=$(sum "$T/good.raw")

V=$(vault_path vault)
ok rpfs init "$V"
ok rpfs replicate "$V" vm1 --disk "$T/good.raw" --time 20261122T100000Z
STATE=$(vault_state "$V")

unchanged() {  # WHAT
    assert_eq "$(vault_state "$V")" "$STATE" "vault unchanged after: $1"
}
refused() {  # WHAT FILE-NAME-TO-MENTION CMD...: exit 1, message naming the file
    local what=$1 name=$2; shift 2
    expect_fail 1 "$@"
    expect_err_contains "$name"
    msg "$what: $ERR"
    unchanged "$what"
}

# --- images ----------------------------------------------------------------------
refused "missing image" missing.qcow2 \
    rpfs replicate "$V" vm1 --disk "$T/missing.qcow2" --time 20261122T110000Z
# a good disk and a missing one: nothing of the point may appear
refused "second disk missing" missing2.raw \
    rpfs replicate "$V" vm2 --disk "$T/good.raw" --disk "$T/missing2.raw" --time 20261122T110000Z

qemu-img convert -f raw -O qcow2 "$T/good.raw" "$T/good.qcow2"
head -c 100 "$T/good.qcow2" >"$T/trunc.qcow2"
refused "truncated qcow2 (100 bytes)" trunc.qcow2 \
    rpfs replicate "$V" vm1 --disk "$T/trunc.qcow2" --time 20261122T110000Z
# a qcow2 cut in the middle of its data clusters
head -c $(( $(file_size "$T/good.qcow2") / 2 )) "$T/good.qcow2" >"$T/half.qcow2"
refused "qcow2 cut in half" half.qcow2 \
    rpfs replicate "$V" vm1 --disk "$T/half.qcow2" --time 20261122T110000Z

# VHDX: keep the "vhdxfile" signature (so it is still recognised as VHDX) and
# overwrite both headers and both region tables (64 KiB .. 320 KiB).
qemu-img convert -f raw -O vhdx "$T/good.raw" "$T/corrupt.vhdx"
assert_eq "$(head -c 8 "$T/corrupt.vhdx")" vhdxfile "vhdx signature"
make_random "$T/junk" $(( 256 * 1024 )) junk
dd if="$T/junk" of="$T/corrupt.vhdx" bs=64K seek=1 count=4 conv=notrunc status=none
refused "corrupt vhdx headers" corrupt.vhdx \
    rpfs replicate "$V" vm1 --disk "$T/corrupt.vhdx" --time 20261122T110000Z

# VHD dynamic with a corrupt dynamic header (footer copy at 0 intact)
qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$T/good.raw" "$T/corrupt.vhd"
dd if="$T/junk" of="$T/corrupt.vhd" bs=512 seek=1 count=2 conv=notrunc status=none
refused "corrupt vhd dynamic header" corrupt.vhd \
    rpfs replicate "$V" vm1 --disk "$T/corrupt.vhd" --time 20261122T110000Z

# differencing qcow2 whose parent is gone
qemu-img create -q -f qcow2 "$T/base.qcow2" 16M
qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/diff.qcow2"
rm "$T/base.qcow2"
refused "qcow2 with a missing backing file" diff.qcow2 \
    rpfs replicate "$V" vm1 --disk "$T/diff.qcow2" --time 20261122T110000Z

# a directory and an unreadable-as-disk special file
mkdir "$T/adir"
refused "a directory as disk" adir \
    rpfs replicate "$V" vm1 --disk "$T/adir" --time 20261122T110000Z
if [[ $(id -u) != 0 ]]; then
    cp "$T/good.raw" "$T/noread.raw"; chmod 000 "$T/noread.raw"
    refused "an unreadable image" noread.raw \
        rpfs replicate "$V" vm1 --disk "$T/noread.raw" --time 20261122T110000Z
fi

# --- things that are not vaults ------------------------------------------------------
notvault() {  # DESC PATH
    local what=$1 p=$2 before
    before=$(cd "$(dirname "$p")" && find "$(basename "$p")" -print0 2>/dev/null | sort -z | xargs -0 sha256sum 2>/dev/null; true)
    expect_fail 1 rpfs points "$p"
    expect_err_contains "$(basename "$p")"
    msg "points on $what: $ERR"
    expect_fail 1 rpfs replicate "$p" vm1 --disk "$T/good.raw" --time 20261122T110000Z
    expect_err_contains "$(basename "$p")"
    expect_fail 1 rpfs export "$p" vm1 disk0 -o "$T/x.raw"
    expect_err_contains "$(basename "$p")"
    assert_eq "$(cd "$(dirname "$p")" && find "$(basename "$p")" -print0 2>/dev/null | sort -z | xargs -0 sha256sum 2>/dev/null; true)" \
        "$before" "$what left as it was"
}
mkdir "$T/emptydir"
notvault "an empty directory" "$T/emptydir"
[[ -z $(ls -A "$T/emptydir") ]] || fail "replicate into an empty directory created files there"
echo "hello" >"$T/afile"
notvault "a regular file" "$T/afile"
mkdir "$T/junkdir"
make_random "$T/junkdir/config.json" 1000 j1
make_random "$T/junkdir/data" 5000 j2
mkdir "$T/junkdir/sub"
notvault "a directory of random files" "$T/junkdir"
notvault "a missing path" "$T/nosuchvault"
[[ ! -e $T/nosuchvault ]] || fail "a command on a missing vault created it"
# a directory with a config.json that is valid JSON but not an rpfs config
mkdir "$T/otherjson"
echo '{"name": "something else"}' >"$T/otherjson/config.json"
notvault "a directory with a foreign config.json" "$T/otherjson"

# --- a vault of a newer format version ---------------------------------------------
vault_cat "$V" config.json >"$T/config.json" || fail "the vault has no config.json"
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["version"] == 2, c' "$T/config.json" ||
    fail "config.json has no top-level \"version\": 2: $(cat "$T/config.json")"
python3 - "$T/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["version"] = 99
json.dump(c, open(p, "w"))
EOF
NEWER=$(vault_path newer)
if [[ $TEST_VAULT == dir ]]; then
    cp -a "$V" "$NEWER"
    cp "$T/config.json" "$NEWER/config.json"
else  # a vault that is only a newer config.json
    python3 "$_AZ_HELPER" put "$_AZ_CONTAINER" "$(_az_prefix "$NEWER")/config.json" "$T/config.json"
fi
NSTATE=$(vault_objects "$NEWER")
expect_fail 1 rpfs points "$NEWER"
expect_err_contains version
msg "newer version: $ERR"
expect_fail 1 rpfs replicate "$NEWER" vm1 --disk "$T/good.raw" --time 20261122T110000Z
expect_err_contains version
expect_fail 1 rpfs export "$NEWER" vm1 disk0 -o "$T/x.raw"
expect_err_contains version
assert_eq "$(vault_objects "$NEWER")" "$NSTATE" "newer-version vault left as it was"

# --- init ------------------------------------------------------------------------------
mkdir "$T/nonempty"; echo keep >"$T/nonempty/file"
expect_fail any rpfs init "$T/nonempty"
expect_err_contains nonempty
assert_eq "$(ls -A "$T/nonempty")" file "init on a non-empty directory left it as it was"
assert_eq "$(cat "$T/nonempty/file")" keep "init on a non-empty directory left its file"
expect_fail any rpfs init "$V"              # an existing vault
unchanged "init on an existing vault"
expect_fail any rpfs init "$T/afile"        # a regular file
assert_eq "$(cat "$T/afile")" hello "init on a regular file left it"
mkdir "$T/emptyok"
ok rpfs init "$T/emptyok"                   # an empty directory is fine
[[ -f $T/emptyok/config.json ]] || fail "init of an empty directory made no config.json"

for bs in 3K 0 abc -64K 100000 1.5M; do
    expect_fail any rpfs init "$T/bs" --block-size "$bs"
    msg "--block-size $bs: $ERR"
    [[ ! -e $T/bs ]] || [[ -z $(ls -A "$T/bs") ]] || fail "init --block-size $bs left a vault behind"
    rm -rf "$T/bs"
done
for c in nosuch:1 zstd:99 zstd:abc; do
    expect_fail any rpfs init "$T/bc" --compression "$c"
    msg "--compression $c: $ERR"
    [[ ! -e $T/bc ]] || [[ -z $(ls -A "$T/bc") ]] || fail "init --compression $c left a vault behind"
    rm -rf "$T/bc"
done

# --- after all that, the vault still works ----------------------------------------------
unchanged "all bad-input cases"
export_check "$V" vm1 disk0 "$GOOD_SUM"
ok rpfs replicate "$V" vm1 --disk "$T/good.qcow2" --time 20261122T120000Z
export_check "$V" vm1 disk0 "$GOOD_SUM" --point 20261122T120000Z
