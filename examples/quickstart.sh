#!/usr/bin/env bash
# rpfs quick start: install what is missing, build, make two sample VM disks
# with real tools, replicate two recovery points into a local vault, list
# them, export one and verify it byte for byte.
#
#   examples/quickstart.sh [WORKDIR]      (default: a new temp directory)
set -euo pipefail

cd "$(dirname "$0")/.."
SRC=$PWD
WORK=${1:-$(mktemp -d "${TMPDIR:-/tmp}/rpfs-quickstart.XXXXXX")}
mkdir -p "$WORK"
step() { printf '\n== %s\n' "$*"; }

. tools/deps.sh
step "checking dependencies"
deps_install "${BUILD_DEPS[@]}" qemu-utils e2fsprogs

step "building rpfs"
if [[ -f build/meson-private/coredata.dat ]]; then meson setup --reconfigure build >/dev/null
else meson setup build >/dev/null; fi
meson compile -C build >/dev/null
RPFS=$SRC/build/cli/rpfs
"$RPFS" --version

step "making sample disks in $WORK"
# web01: an ext4 filesystem with real files, converted to QCOW2 by qemu-img;
# a second, raw data disk with holes.
mkdir -p "$WORK/files/etc" "$WORK/files/docs"
cp -r /etc/apt /etc/ssl "$WORK/files/etc/" 2>/dev/null || true
cp -r /usr/share/doc/bash /usr/share/doc/coreutils "$WORK/files/docs/" 2>/dev/null || true
echo "hello from web01, point 1" > "$WORK/files/motd"
mkfs.ext4 -q -F -d "$WORK/files" "$WORK/web01-root.raw" 64M
qemu-img convert -O qcow2 "$WORK/web01-root.raw" "$WORK/web01-root.qcow2"
truncate -s 32M "$WORK/web01-data.raw"
head -c 1M /dev/urandom | dd of="$WORK/web01-data.raw" bs=1M seek=8 conv=notrunc status=none
ls -lsh "$WORK"/web01-*

step "rpfs init"
"$RPFS" init "$WORK/vault"

step "rpfs replicate: point 1 (app-consistent)"
"$RPFS" replicate "$WORK/vault" web01 --disk "$WORK/web01-root.qcow2" --disk data="$WORK/web01-data.raw" \
    --app-consistent --time 20261122T100000Z

sum1=$(sha256sum "$WORK/web01-root.raw" | cut -d' ' -f1)

step "changing a file inside the disk, then rpfs replicate: point 2 (crash-consistent, incremental)"
echo "hello from web01, point 2" > "$WORK/motd2"
debugfs -w -R "rm /motd" "$WORK/web01-root.raw" >/dev/null 2>&1
debugfs -w -R "write $WORK/motd2 /motd" "$WORK/web01-root.raw" >/dev/null 2>&1
qemu-img convert -O qcow2 "$WORK/web01-root.raw" "$WORK/web01-root.qcow2"
du -sh "$WORK/vault"
"$RPFS" replicate "$WORK/vault" web01 --disk "$WORK/web01-root.qcow2" --disk data="$WORK/web01-data.raw" \
    --time 20261122T101500Z
du -sh "$WORK/vault"

step "rpfs points"
"$RPFS" points "$WORK/vault"

step "rpfs export: disk0 of the latest app-consistent point (point 1)"
"$RPFS" export "$WORK/vault" web01 disk0 --point latest-app -o "$WORK/restored.raw"
debugfs -R "cat /motd" "$WORK/restored.raw" 2>/dev/null

step "verifying by sha256: each export equals its source disk at that point"
sha() { sha256sum "$1" | cut -d' ' -f1; }
[[ $(sha "$WORK/restored.raw") == "$sum1" ]] || { echo "MISMATCH: point 1 disk0"; exit 1; }
echo "point 1 disk0 matches the disk as it was at point 1"
"$RPFS" export "$WORK/vault" web01 disk0 --point latest -o "$WORK/latest.raw"
[[ $(sha "$WORK/latest.raw") == $(sha "$WORK/web01-root.raw") ]] || { echo "MISMATCH: point 2 disk0"; exit 1; }
echo "point 2 disk0 matches web01-root.raw"
debugfs -R "cat /motd" "$WORK/latest.raw" 2>/dev/null
"$RPFS" export "$WORK/vault" web01 data -o - | cmp - "$WORK/web01-data.raw" || { echo "MISMATCH: data"; exit 1; }
echo "point 2 data matches web01-data.raw (streamed through stdout)"

step "rpfs mount: every VM, point and disk as a file"
mkdir -p "$WORK/mnt"
# The on-prem side: a stale copy of web01's disk as it was at point 1.
mkdir -p "$WORK/onprem"
cp --sparse=always "$WORK/restored.raw" "$WORK/onprem/web01-root.img"
if [[ -c /dev/fuse ]] && command -v fusermount3 >/dev/null &&
   "$RPFS" mount "$WORK/vault" "$WORK/mnt" --cache "$WORK/cache" --onprem "$WORK/onprem"; then
    trap 'fusermount3 -u "$WORK/mnt" 2>/dev/null || true' EXIT
    ls -l "$WORK/mnt/web01" "$WORK/mnt/web01/points/20261122T100000Z"
    step "a file from inside point 1, read through the mount (blocks fetched lazily)"
    debugfs -R "cat /motd" "$WORK/mnt/web01/latest-app/disk0.raw" 2>/dev/null
    if [[ $(id -u) == 0 ]]; then
        mkdir -p "$WORK/inside"
        if mount -o loop,ro "$WORK/mnt/web01/latest/disk0.raw" "$WORK/inside" 2>/dev/null; then
            echo "loop-mounted the latest point read-only at $WORK/inside:"
            ls "$WORK/inside" | head
            cat "$WORK/inside/motd"
            umount "$WORK/inside"
        fi
    fi
    [[ $(sha "$WORK/mnt/web01/points/20261122T100000Z/disk0.raw") == "$sum1" ]] ||
        { echo "MISMATCH: point 1 disk0 through the mount"; exit 1; }
    echo "point 1 disk0 read through the mount matches (sha256)"
    step "failback by hand: cp the latest point onto the stale on-prem disk"
    # cp reaches rpfs as copy_file_range: only blocks that differ are
    # fetched and written.
    cp "$WORK/mnt/web01/latest/disk0.raw" "$WORK/mnt/failback/web01-root.img"
    [[ $(sha "$WORK/onprem/web01-root.img") == $(sha "$WORK/web01-root.raw") ]] ||
        { echo "MISMATCH: failback target"; exit 1; }
    echo "on-prem disk now equals the latest point (sha256)"
    debugfs -R "cat /motd" "$WORK/onprem/web01-root.img" 2>/dev/null
    "$RPFS" stats "$WORK/mnt"
    step "unmount"
    fusermount3 -u "$WORK/mnt"
    trap - EXIT
else
    echo "(skipped: FUSE is not usable here)"
fi

step "done; everything is in $WORK"
