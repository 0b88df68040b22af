#!/bin/bash
# Linux integration: `mount -t fuse.rpfs VAULT DIR -o ...` and an /etc/fstab
# line (mount -T FILE) through mount.fuse3; rpfs mount -o options; the
# examples/systemd units pass `systemd-analyze verify`; the man page
# renders without warnings; `meson install` installs the man page and the
# bash completion, which completes commands, options, VMs and points.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need python3 groff

V=$(vault_path v)
ok rpfs init "$V" -q
truncate -s 4M "$T/d.img"
dd if=/dev/urandom of="$T/d.img" bs=64K count=16 conv=notrunc status=none
ok rpfs replicate "$V" web01 --disk "$T/d.img" --time 20261122T100000Z -q
ok rpfs replicate "$V" web01 --disk "$T/d.img" --time 20261122T101500Z --app-consistent -q
want=$(sum "$T/d.img")

# ---- the man page and the bash completion ----
groff -man -Tutf8 -ww -z "$SRCDIR/docs/rpfs.1" 2>"$T/groff.err" || fail "groff: $(cat "$T/groff.err")"
[[ -s $T/groff.err ]] && fail "man page warnings: $(cat "$T/groff.err")"
BUILD=$(dirname "$(dirname "$RPFS")")
meson install -C "$BUILD" --no-rebuild --destdir "$T/inst" >"$T/install.log" 2>&1 ||
    fail "meson install: $(tail -5 "$T/install.log")"
[[ -n $(find "$T/inst" -path '*/man1/rpfs.1*') ]] || fail "meson install did not install man1/rpfs.1"
COMP=$(find "$T/inst" -path '*/bash-completion/completions/rpfs')
[[ -n $COMP ]] || fail "meson install did not install the bash completion"
complete_words() {  # WORDS...: what completing the last word offers
    bash -c '
        PATH=$1:$PATH; . "$2"; shift 2
        COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _rpfs; printf "%s\n" "${COMPREPLY[@]}"' \
        _ "$(dirname "$RPFS")" "$COMP" "$@"
}
assert_contains "$(complete_words rpfs sta)" "status" "completes commands"
assert_contains "$(complete_words rpfs sta)" "stats" "completes commands"
assert_contains "$(complete_words rpfs replicate "$V" web01 --ho)" "--hook" "completes options"
assert_eq "$(complete_words rpfs points "$V" we)" "web01" "completes VMs from the vault"
assert_eq "$(complete_words rpfs export "$V" web01 disk0 --point 2026 | sort | tr '\n' ' ')" \
    "20261122T100000Z 20261122T101500Z " "completes points"

# ---- systemd units ----
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$T/units"
    for f in "$SRCDIR"/examples/systemd/*@.*; do
        b=$(basename "$f")
        sed "s|/usr/local/bin/rpfs|$RPFS|" "$f" >"$T/units/${b/@./@web01.}"
    done
    SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$T"/units/* >"$T/verify.out" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$T/verify.out")"
    grep -v -e 'Failed to' -e 'cgroup' "$T/verify.out" | grep -q . && fail "systemd-analyze verify warns: $(cat "$T/verify.out")"
    msg "systemd-analyze verify: $(ls "$T/units" | wc -l) units clean"
else
    skip_part_facility "systemd is not installed: the units' verification"
fi

# ---- rpfs mount -o ----
expect_fail 2 rpfs mount "$V" "$T" -o bogus
assert_contains "$ERR" "unsupported -o 'bogus'" "bad -o named"
expect_fail 2 rpfs mount "$V" "$T" -o timeout=x

# ---- mount -t fuse.rpfs and /etc/fstab, through mount.fuse3 ----
need_fuse
[[ $(id -u) == 0 ]] || { skip_part_facility "not root: mount -t fuse.rpfs"; exit 0; }
need mount umount mount.fuse3
if [[ $TEST_VAULT != dir ]]; then
    msg "mount -t fuse.rpfs is checked with a directory vault (an fstab mount has no Azure credentials in its environment)"
    exit 0
fi
# mount(8) runs its helpers with PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# and mount.fuse3 runs `rpfs` from it: where `meson install` puts rpfs. This
# build's binary is linked there for the test, unless an rpfs is there already.
HELPER_LINK=/usr/local/sbin/rpfs
if [[ -e $HELPER_LINK || -L $HELPER_LINK ]]; then
    [[ $(readlink -f "$HELPER_LINK") == "$(readlink -f "$RPFS")" ]] ||
        skip_part_facility "$HELPER_LINK is another rpfs: mount -t fuse.rpfs would run that one"
    [[ $(readlink -f "$HELPER_LINK") == "$(readlink -f "$RPFS")" ]] || exit 0
else
    mkdir -p /usr/local/sbin
    ln -s "$RPFS" "$HELPER_LINK"
    at_exit "rm -f '$HELPER_LINK'"
fi
M=$T/mnt
mkdir -p "$M" "$T/cache"
_register_mount "$M" "" "" 0
mount -t fuse.rpfs "$V" "$M" -o "cache=$T/cache,cache-size=1G,allow_other,noatime,timeout=20,log=$T/m.log" \
    2>"$T/mount.err" || { _skip_if_unprivileged "$T/mount.err"; fail "mount -t fuse.rpfs: $(cat "$T/mount.err")"; }
mounted "$M" || fail "mount -t fuse.rpfs returned 0 but $M is not mounted"
assert_eq "$(findmnt -rn -M "$M" -o FSTYPE)" fuse.rpfs "the mount's type"
findmnt -rn -M "$M" -o OPTIONS | grep -q allow_other || fail "allow_other not applied: $(findmnt -rn -M "$M")"
assert_eq "$(sum "$M/web01/latest/disk0.raw")" "$want" "read through mount -t fuse.rpfs"
[[ -n $(ls "$T/cache") ]] || fail "cache= was not used"
umount "$M" || fail "umount $M"
for _ in $(seq 50); do mounted "$M" || break; sleep 0.1; done
mounted "$M" && fail "still mounted after umount"

printf '%s %s fuse.rpfs cache=%s,allow_other,_netdev,nofail,noauto 0 0\n' "$V" "$M" "$T/cache" >"$T/fstab"
mount -T "$T/fstab" "$M" 2>"$T/mount.err" || fail "mount from an fstab line: $(cat "$T/mount.err")"
mounted "$M" || fail "the fstab line did not mount $M"
assert_eq "$(sum "$M/web01/points/20261122T100000Z/disk0.raw")" "$want" "read through the fstab mount"
unmount "$M"
msg "mount -t fuse.rpfs and an fstab line work through mount.fuse3"
