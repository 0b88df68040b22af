#!/usr/bin/env bash
# Who may read a mount (docs/SECURITY.md), tested as an unprivileged user
# this test creates (useradd; removed at the end) against a mount made by
# root:
#   - without -o allow_other the user cannot enter the mount at all;
#   - with -o allow_other the point files are readable (right bytes) and
#     read-only, and MOUNT/failback/ shows the on-prem directory with its
#     owners and modes, the kernel checking them (default_permissions): the
#     user cannot read a file of DIR it may not read, nor write, truncate,
#     remove, rename or chmod one it may not; it may write its own; what it
#     creates there is its own, as if made in DIR directly;
#   - the block cache directory is 0700 and its files 0600, a failback
#     journal and its directory 0600 / 0700, whatever the umask.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need useradd userdel runuser python3
[[ $(id -u) == 0 ]] || skip_facility "needs root (creates a user, mounts for others)"

U=rpfs-t$$
useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group "$U" ||
    fail "useradd $U failed"
at_exit "userdel $U >/dev/null 2>&1 || true; groupdel $U >/dev/null 2>&1 || true"
as_user() { runuser -u "$U" -- "$@"; }
# the user must reach $T (mktemp makes it 0700)
chmod 0755 "$T"

umask 022
make_random "$T/d.raw" $((3 * BS + 1234)) access
SUM=$(sum "$T/d.raw")
V=$(vault_path vault)
ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" vm --disk "$T/d.raw" --time 20261122T100000Z -q

# --- without allow_other: nobody but root gets in
M=$T/mnt
mount_fg "$V" "$M" --cache "$T/cache"
[[ -r $M/vm/latest/disk0.raw ]] || fail "root cannot read its own mount"
as_user ls "$M" >/dev/null 2>&1 && fail "another user can list a mount made without -o allow_other"
as_user cat "$M/vm/latest/disk0.raw" >/dev/null 2>&1 &&
    fail "another user can read a point file of a mount made without -o allow_other"
msg "without allow_other: the user cannot enter the mount"

# the block cache the mount made: 0700, its files 0600
assert_eq "$(stat -c %a "$T/cache")" 700 "cache directory mode"
n=0
while IFS= read -r f; do
    assert_eq "$(stat -c %a "$f")" 600 "cache file $(basename "$f") mode"
    n=$((n + 1))
done < <(find "$T/cache" -type f)
assert_gt "$n" 0 "the mount made cache files"
unmount "$M"

# --- with allow_other and an on-prem directory
ONP=$T/onprem
mkdir -p "$ONP/rootdir" "$ONP/userdir"
chown "$U:$U" "$ONP/userdir"
printf 'root file\n' >"$ONP/root.txt"                       # root 0644: readable, not writable
printf 'secret\n' >"$ONP/secret.txt"; chmod 0600 "$ONP/secret.txt"
printf 'mine\n' >"$ONP/userdir/own.txt"; chown "$U:$U" "$ONP/userdir/own.txt"
mkdir -p "$ONP/shared"; chgrp "$U" "$ONP/shared"; chmod 2775 "$ONP/shared"   # set-group-ID
ROOTSUM=$(sum "$ONP/root.txt")
mount_fg "$V" "$M" --cache "$T/cache" --onprem "$ONP" -o allow_other

# point files: readable, the right bytes, read-only
assert_eq "$(as_user sha256sum "$M/vm/latest/disk0.raw" | cut -d' ' -f1)" "$SUM" \
    "the user reads the point's bytes"
as_user sh -c "printf x | dd of='$M/vm/latest/disk0.raw' conv=notrunc status=none" 2>/dev/null &&
    fail "the user wrote to a point file"
as_user touch "$M/vm/new" 2>/dev/null && fail "the user created a file among the points"
assert_eq "$(sum "$T/d.raw")" "$SUM" "source unchanged"

# failback/: owners and modes as in DIR
assert_eq "$(stat -c '%U %a' "$M/failback/root.txt")" "root 644" "owner and mode of root.txt"
assert_eq "$(stat -c '%U %a' "$M/failback/userdir/own.txt")" "$U 644" "owner and mode of own.txt"
assert_eq "$(as_user cat "$M/failback/root.txt")" "root file" "the user reads a world-readable file"
as_user cat "$M/failback/secret.txt" >/dev/null 2>&1 && fail "the user read a 0600 root file"
as_user sh -c "printf bad >'$M/failback/root.txt'" 2>/dev/null && fail "the user wrote a root file"
as_user sh -c "printf bad | dd of='$M/failback/root.txt' conv=notrunc status=none" 2>/dev/null &&
    fail "the user wrote a root file (dd conv=notrunc)"
as_user truncate -s 0 "$M/failback/root.txt" 2>/dev/null && fail "the user truncated a root file"
as_user chmod 0666 "$M/failback/root.txt" 2>/dev/null && fail "the user chmod'ed a root file"
as_user rm -f "$M/failback/root.txt" 2>/dev/null && fail "the user removed a file of a root directory"
as_user mv "$M/failback/root.txt" "$M/failback/userdir/x" 2>/dev/null && fail "the user moved a root file"
as_user touch "$M/failback/rootdir/new" 2>/dev/null && fail "the user created a file in a root directory"
assert_eq "$(sum "$ONP/root.txt")" "$ROOTSUM" "root.txt unchanged"
assert_eq "$(stat -c '%U %a' "$ONP/root.txt")" "root 644" "root.txt owner and mode unchanged"
[[ -e $ONP/rootdir/new ]] && fail "rootdir/new exists"
msg "allow_other: point files read-only; the on-prem permissions hold through the mount"

# what the user may do, it does, and what it creates is its own
as_user sh -c "printf 'mine, changed\n' >'$M/failback/userdir/own.txt'" || fail "the user cannot write its file"
assert_eq "$(cat "$ONP/userdir/own.txt")" "mine, changed" "the user's write reached DIR"
as_user cp "$M/vm/latest/disk0.raw" "$M/failback/userdir/restored.raw" || fail "the user cannot restore into its dir"
assert_eq "$(sum "$ONP/userdir/restored.raw")" "$SUM" "restored file equals the point"
as_user mkdir "$M/failback/userdir/sub" || fail "the user cannot mkdir in its dir"
as_user ln -s own.txt "$M/failback/userdir/link" || fail "the user cannot make a symlink in its dir"
for f in restored.raw sub link; do
    assert_eq "$(stat -c '%U:%G' "$ONP/userdir/$f")" "$U:$U" "owner of the user's new $f in DIR"
done
as_user touch "$M/failback/shared/g" || fail "the user cannot create in the set-group-ID dir"
assert_eq "$(stat -c '%U:%G' "$ONP/shared/g")" "$U:$U" "set-group-ID dir: new file's owner and group"
chgrp root "$ONP/shared"; chmod 2777 "$ONP/shared"
as_user touch "$M/failback/shared/h" || fail "the user cannot create in the root-group set-group-ID dir"
assert_eq "$(stat -c '%U:%G' "$ONP/shared/h")" "$U:root" "set-group-ID dir of group root: the group stays"
# root creating through the mount makes root's files
touch "$M/failback/rootmade"
assert_eq "$(stat -c '%U:%G' "$ONP/rootmade")" "root:root" "root's new file"
unmount "$M"

# --- failback journals: 0600 in a 0700 directory
export RPFS_STATE_DIR=$T/state/deeper
truncate -s $((3 * BS + 1234)) "$T/target.raw"
ok rpfs failback "$V" vm --target "disk0=$T/target.raw" -q
assert_eq "$(sum "$T/target.raw")" "$SUM" "failback target equals the point"
assert_eq "$(stat -c %a "$T/state/deeper")" 700 "journal directory mode"
n=0
while IFS= read -r f; do
    assert_eq "$(stat -c %a "$f")" 600 "journal file $(basename "$f") mode"
    n=$((n + 1))
done < <(find "$T/state/deeper" -type f)
assert_gt "$n" 0 "failback left a journal"
msg "cache and journals are private to their owner"
