#!/usr/bin/env bash
# Faults during rpfs failback:
# - a corrupt block in the vault: exit 6 ("corrupt"), nothing wrong is
#   written, the journal says interrupted; with the pack repaired the rerun
#   finishes and the target equals the point;
# - a pack missing from the vault: exit 6 ("missing");
# - out of space (a small tmpfs; root only): the default retry profile waits
#   and retries, and succeeds once space is freed; --retry-profile none gives
#   up at once with exit 7, and the rerun resumes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-failback.sh"
dir_vault_only "corrupts and removes pack files in place"

fb_images 64 40
fb_vault
tgt=$T/target.img

# the pack written by the second replicate holds the changed blocks
newest_pack=$(find "$V/packs" -name '*.pack' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
[[ -n $newest_pack ]] || fail "no pack in the vault"
cp "$newest_pack" "$T/pack.orig"

# --- a corrupt block
cp --sparse=always "$T/v1.img" "$tgt"
chmod u+w "$newest_pack"
python3 - "$newest_pack" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(4096)
    b = f.read(64)
    f.seek(4096)
    f.write(bytes(x ^ 0x5a for x in b))
EOF
expect_fail 6 rpfs failback "$V" vm1 --target "disk0=$tgt"
expect_err_contains "corrupt"
assert_ne "$(sum "$tgt")" "$SUM2" "nothing pretends to be the point"
assert_contains "$(status_of "$tgt")" "interrupted" "status after a corrupt block"
cp "$T/pack.orig" "$newest_pack"
fb "$V" vm1 --target "disk0=$tgt"
assert_eq "$(sum "$tgt")" "$SUM2" "rerun with the vault repaired"

# --- a missing pack
cp --sparse=always "$T/v1.img" "$tgt"
mv "$newest_pack" "$T/pack.away"
expect_fail 6 rpfs failback "$V" vm1 --target "disk0=$tgt" --point $P2
expect_err_contains "missing"
mv "$T/pack.away" "$newest_pack"
fb "$V" vm1 --target "disk0=$tgt"
assert_eq "$(sum "$tgt")" "$SUM2" "rerun with the pack back"

# --- out of space: retried, then resumed
if (( $(id -u) != 0 )); then
    skip_part_facility "not root: the out-of-space part (needs a tmpfs)"
    exit 0
fi
mkdir -p "$T/small"
data=$(( NZ2 * BS ))
mount -t tmpfs -o size=$(( data + 8 * 1024 * 1024 )) tmpfs "$T/small" 2>/dev/null ||
    { skip_part_facility "cannot mount a tmpfs: the out-of-space part"; exit 0; }
at_exit "umount -l '$T/small' 2>/dev/null"
fill() {  # leave about half the data's size free
    rm -f "$T/small/filler"
    local free
    free=$(df -B1 --output=avail "$T/small" | tail -1)
    fallocate -l $(( free - data / 2 )) "$T/small/filler"
}
new=$T/small/new.img

fill
expect_fail 7 rpfs failback "$V" vm1 --target "disk0=$new" --create --retry-profile none
expect_err_contains "No space left"
assert_contains "$(status_of "$new")" "interrupted" "status after running out of space"
rm -f "$T/small/filler"
fb "$V" vm1 --target "disk0=$new" --create
assert_eq "$(sum "$new")" "$SUM2" "rerun once space is free"

rm -f "$new"
fill
( sleep 2.5; rm -f "$T/small/filler" ) &
track_pid $!
"$RPFS" failback "$V" vm1 --target "disk0=$new" --create >"$T/retry.out" 2>"$T/retry.err" ||
    { cat "$T/retry.err" >&2; fail "failback did not survive running out of space"; }
_check_sanitizer "$T/retry.err" "failback on a full file system"
grep -q "retrying in" "$T/retry.err" || { cat "$T/retry.err" >&2; fail "no retry was logged"; }
assert_eq "$(sum "$new")" "$SUM2" "retried until space was freed"
msg "retries: $(grep -c 'retrying in' "$T/retry.err")"
