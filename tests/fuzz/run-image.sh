#!/usr/bin/env bash
# Seeds for fuzz-image made with qemu-img (no binary files in the tree):
# small images of every supported format holding a little data, then the
# target replays them and their mutations. With a second argument KIND
# (qcow2, vhd, vhdx, vmdk) only the seeds of that kind, for fuzz-KIND.
# With FUZZ_SEED_DIR set, the seeds are copied there instead (the corpus
# of tests/fuzz/run-long.sh) and nothing runs.
set -euo pipefail
BIN=$1 KIND=${2:-}
T=$(mktemp -d "${TMPDIR:-/tmp}/rpfs-fuzz-image.XXXXXX")
trap 'rm -rf "$T"' EXIT
command -v qemu-img >/dev/null || { echo "qemu-img missing"; exit 77; }
truncate -s 1M "$T/raw"
printf 'rpfs fuzz seed %.0s' {1..300} | dd of="$T/raw" bs=1 seek=70000 conv=notrunc status=none
qemu-img convert -O qcow2 -o cluster_size=4096 "$T/raw" "$T/a.qcow2"
# an overlay on the backing file fuzz-image.c makes (256 KiB of zeros)
[ -e /tmp/rpfs-fuzz-backing.raw ] || { truncate -s 256K "$T/bk" && mv "$T/bk" /tmp/rpfs-fuzz-backing.raw; }
qemu-img create -q -f qcow2 -o cluster_size=4096 -b /tmp/rpfs-fuzz-backing.raw -F raw "$T/ov.qcow2"
qemu-io -c 'write -P 0x5a 8192 12288' -c 'write -z 65536 4096' -c 'write -P 0x11 200000 1000' "$T/ov.qcow2" >/dev/null
qemu-img convert -O vpc -o subformat=dynamic,force_size=on "$T/raw" "$T/a.vhd"
qemu-img convert -O vpc -o subformat=fixed,force_size=on "$T/raw" "$T/f.vhd"
qemu-img convert -O vmdk "$T/raw" "$T/a.vmdk"
qemu-img convert -O vhdx -o block_size=1M "$T/raw" "$T/a.vhdx"
if [ -n "${FUZZ_SEED_DIR:-}" ]; then
        case $KIND in
        "") cp "$T"/a.* "$T/f.vhd" "$T/ov.qcow2" "$FUZZ_SEED_DIR/" ;;
        qcow2) cp "$T/a.qcow2" "$T/ov.qcow2" "$FUZZ_SEED_DIR/" ;;
        vhd) cp "$T/a.vhd" "$T/f.vhd" "$FUZZ_SEED_DIR/" ;;
        *) cp "$T/a.$KIND" "$FUZZ_SEED_DIR/" ;;
        esac
        exit 0
fi
case $KIND in
vhd) exec env FUZZ_ROUNDS=${FUZZ_ROUNDS:-300} "$BIN" "$T/a.vhd" "$T/f.vhd" ;;
qcow2) exec env FUZZ_ROUNDS=${FUZZ_ROUNDS:-300} "$BIN" "$T/a.qcow2" "$T/ov.qcow2" ;;
?*) exec env FUZZ_ROUNDS=${FUZZ_ROUNDS:-300} "$BIN" "$T/a.$KIND" ;;
esac
# fewer rounds for the larger seeds keep the run short
FUZZ_ROUNDS=${FUZZ_ROUNDS:-300} "$BIN" "$T/a.qcow2" "$T/ov.qcow2" "$T/a.vhd" "$T/a.vmdk"
FUZZ_ROUNDS=${FUZZ_ROUNDS_BIG:-40} "$BIN" "$T/f.vhd" "$T/a.vhdx" "$T/raw"
