#!/usr/bin/env bash
# Bad input to rpfs failback: each case fails with a one-line message that
# says what is wrong, with its documented exit status, before anything is
# written (the target's sha256 is the same before and after).
#
#   3  target missing (no --create), a directory, smaller than the disk,
#      read-only, busy (attached to a loop device, locked by another program,
#      another failback at work on it), --complete / --commit / --resume in
#      the wrong state
#   4  no such VM, point or disk; a point of another VM
#   2  usage errors
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-failback.sh"

fb_images 64 40
fb_vault
ok rpfs replicate "$V" vm2 --disk "$T/v1.img" --time $P3 -q
tgt=$T/target.img
cp --sparse=always "$T/v1.img" "$tgt"

# refused CODE TEXT... -- ARGS...: the failback fails with CODE and a message
# containing each TEXT, and every file of $WATCH that ARGS name is unchanged
WATCH=("$tgt")
refused() {
    local code=$1 texts=() f; shift
    while [[ $1 != -- ]]; do texts+=("$1"); shift; done
    shift
    local -A before=()
    local named=() args=" $* "
    for f in "${WATCH[@]}"; do  # the watched files this command names
        [[ -e $f && $args == *"=$f "* ]] && named+=("$f")
    done
    for f in "${named[@]}"; do before[$f]=$(sum "$f"); done
    expect_fail "$code" rpfs failback "$@"
    expect_err_contains "${texts[@]}"
    for f in "${named[@]}"; do
        assert_eq "$(sum "$f")" "${before[$f]}" "$f unchanged after: failback $*"
    done
    msg "refused ($RC): $ERR"
}

# --- the target
truncate -s $(( SIZE - BS )) "$T/small.img"
WATCH+=("$T/small.img")
refused 3 "smaller than disk disk0" -- "$V" vm1 --target "disk0=$T/small.img"
refused 3 "does not exist" "--create" -- "$V" vm1 --target "disk0=$T/missing.img"
[[ ! -e $T/missing.img ]] || fail "a refused failback created the target"
mkdir "$T/dir"
refused 3 "is a directory" -- "$V" vm1 --target "disk0=$T/dir"
refused 3 "directory" -- "$V" vm1 --target "disk0=$T/nodir/x.img" --create

# read-only: chmod for a user, the immutable attribute for root
if (( $(id -u) == 0 )); then
    cp --sparse=always "$T/v1.img" "$T/ro.img"
    if chattr +i "$T/ro.img" 2>/dev/null; then
        at_exit "chattr -i '$T/ro.img' 2>/dev/null"
        WATCH+=("$T/ro.img")
        refused 3 "read-only" -- "$V" vm1 --target "disk0=$T/ro.img"
        chattr -i "$T/ro.img"
    else
        skip_part_facility "no chattr +i on this file system: the read-only file"
    fi
else
    cp --sparse=always "$T/v1.img" "$T/ro.img"
    chmod 444 "$T/ro.img"
    WATCH+=("$T/ro.img")
    refused 3 "read-only" -- "$V" vm1 --target "disk0=$T/ro.img"
fi

# busy: locked by another program (as QEMU locks its images)
python3 - "$tgt" "$T/locked" <<'EOF' &
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_RDLCK, 0, 100, 1, 0))
open(sys.argv[2], "w").close()
time.sleep(60)
EOF
lockpid=$!
track_pid "$lockpid"
for _ in $(seq 100); do [[ -e $T/locked ]] && break; sleep 0.1; done
refused 3 "locked by another program" -- "$V" vm1 --target "disk0=$tgt"
kill "$lockpid"; wait "$lockpid" 2>/dev/null || true

# busy: attached to a loop device (root only)
if (( $(id -u) == 0 )) && command -v losetup >/dev/null; then
    if dev=$(losetup -f --show "$tgt" 2>/dev/null); then
        track_loop "$dev"
        refused 3 "attached to $dev" -- "$V" vm1 --target "disk0=$tgt"
        losetup -d "$dev"
    else
        skip_part_facility "losetup refused: the attached file"
    fi
fi

# busy: another failback at work on the same target
cp --sparse=always "$T/v1.img" "$T/slow.img"
"$RPFS" failback "$V" vm1 --target "disk0=$T/slow.img" --mode full --bwlimit 64K -q 2>"$T/slow.err" &
slowpid=$!
track_pid "$slowpid"
for _ in $(seq 100); do
    [[ $(status_of "$T/slow.img") == *"in progress"* ]] && break
    sleep 0.1
done
expect_fail 3 rpfs failback "$V" vm1 --target "disk0=$T/slow.img"
expect_err_contains "another rpfs failback"
kill -9 "$slowpid"; wait "$slowpid" 2>/dev/null || true

# --- the point and the disk
refused 4 "no disk 'data'" "disk0" -- "$V" vm1 --target "data=$tgt"
refused 4 "belongs to VM 'vm2'" -- "$V" vm1 --target "disk0=$tgt" --point $P3
refused 4 "no point 20261122T235900Z" -- "$V" vm1 --target "disk0=$tgt" --point 20261122T235900Z
refused 4 "no recovery points" -- "$V" nosuchvm --target "disk0=$tgt"
refused 4 "no app-consistent" -- "$V" vm1 --target "disk0=$tgt" --point latest-app
refused 4 "no such vault" -- "$T/novault" vm1 --target "disk0=$tgt"

# several targets: the second is bad, so the first is not written either
cp --sparse=always "$T/v1.img" "$T/first.img"
WATCH+=("$T/first.img")
ok rpfs replicate "$V" vm3 --disk "disk0=$T/v2.img" --disk "disk1=$T/v2.img" --time $P1 -q
refused 3 "smaller than disk disk1" -- "$V" vm3 --target "disk0=$T/first.img" --target "disk1=$T/small.img"
refused 4 "no disk 'disk7'" -- "$V" vm3 --target "disk0=$T/first.img" --target "disk7=$tgt"
refused 3 "given twice" -- "$V" vm3 --target "disk0=$T/first.img" --target "disk1=$T/first.img"

# --- the state of the target
refused 3 "not prepared" "--prepare" -- "$V" vm1 --target "disk0=$tgt" --complete
refused 3 "nothing to commit" -- "$V" vm1 --target "disk0=$tgt" --commit
refused 3 "no interrupted failback" -- "$V" vm1 --target "disk0=$tgt" --resume
# committing an interrupted target
cp --sparse=always "$T/v1.img" "$T/int.img"
"$RPFS" failback "$V" vm1 --target "disk0=$T/int.img" --mode full --bwlimit 64K -q 2>/dev/null &
pid=$!
track_pid "$pid"
sleep 1
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
WATCH+=("$T/int.img")
refused 3 "did not finish" -- "$V" vm1 --target "disk0=$T/int.img" --commit
refused 3 "did not finish" "--prepare" -- "$V" vm1 --target "disk0=$T/int.img" --complete
# prepared from another VM
fb "$V" vm1 --target "disk0=$tgt" --prepare
refused 3 "prepared from VM vm1" -- "$V" vm2 --target "disk0=$tgt" --complete

# --- usage errors
expect_fail 2 rpfs failback "$V" vm1
expect_err_contains "--target"
expect_fail 2 rpfs failback "$V" vm1 --target "$tgt"
expect_err_contains "DISK=PATH"
expect_fail 2 rpfs failback "$V" vm1 --target "disk0=$tgt" --mode fast
expect_err_contains "--mode"
expect_fail 2 rpfs failback "$V" vm1 --target "disk0=$tgt" --prepare --complete
expect_err_contains "exclude each other"
expect_fail 2 rpfs failback "$V" vm1 --target "disk0=$tgt" --point yesterday
expect_err_contains "--point"
expect_fail 2 rpfs failback "$V" vm1 --target "disk0=$tgt" --target "disk0=$T/x.img"
expect_err_contains "given twice"
expect_fail 2 rpfs failback "$V" vm1 --target "disk0=$tgt" --bwlimit fast
expect_err_contains "--bwlimit"
expect_fail 2 rpfs failback "$V" vm1 --target "disk0=$tgt" --retry-profile forever
expect_err_contains "--retry-profile"
expect_fail 2 rpfs failback "$V" vm1 --target "disk0=$tgt" --jobs 0
expect_err_contains "--jobs"
expect_fail 2 rpfs failback "$V" vm1 --target "disk0=$tgt" --complete --create
expect_err_contains "--create"
expect_fail 2 rpfs failback "$V" vm1 --target "disk0=$tgt" --frobnicate
expect_err_contains "unknown option"
out=$("$RPFS" failback --help)
assert_contains "$out" "Exit status" "--help documents the exit statuses"

# A journal left by a failback of a bigger disk to the same path (a vault
# made again under the same name, the target replaced by a smaller file):
# the old journal names more blocks than the new file has. The failback
# reads past the file's end as zeros for the fingerprint, sees the target
# changed, and syncs it; it used to stop with "reading it failed: EIO".
# (Directory vault only: the journal logic is the same for every backend.)
if [[ $TEST_VAULT == dir ]]; then
    V2=$(vault_path vault-again)
    ok rpfs init "$V2" -q
    truncate -s 8M "$T/big.img"
    make_random "$T/r" $(( 2 * 1024 * 1024 )) again
    dd if="$T/r" of="$T/big.img" bs=1M seek=1 conv=notrunc status=none
    ok rpfs replicate "$V2" vmx --disk "$T/big.img" --time $P3 -q
    rm -f "$T/again.img"
    ok rpfs failback "$V2" vmx --target "disk0=$T/again.img" --create -q
    rm -rf "$V2"
    ok rpfs init "$V2" -q
    truncate -s 4M "$T/small2.img"
    dd if="$T/r" of="$T/small2.img" bs=1M count=2 seek=1 conv=notrunc status=none
    ok rpfs replicate "$V2" vmx --disk "$T/small2.img" --time $P3 -q
    rm -f "$T/again.img"
    truncate -s 4M "$T/again.img"
    ok rpfs failback "$V2" vmx --target "disk0=$T/again.img" -q
    assert_file_sum "$T/again.img" "$(sum "$T/small2.img")" "failback over a stale journal of a bigger disk"
fi
