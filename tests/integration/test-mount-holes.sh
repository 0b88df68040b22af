#!/usr/bin/env bash
# rpfs mount: holes that tools can see.  A point's DISK.raw and DISK.vhd
# answer SEEK_DATA/SEEK_HOLE from the manifest (zero blocks are holes) and
# report st_blocks as their non-zero blocks:
# - every SEEK_DATA/SEEK_HOLE answer (python3 os.lseek, from every block
#   boundary and from offsets inside blocks) equals the one computed from
#   the source's zero blocks; `qemu-img map` shows the same data extents;
# - st_blocks is the non-zero blocks' size;
# - `cp --sparse=always` of the point equals the source (sha256), and the
#   copy's allocated size is what the source's non-zero blocks take;
# - the VHD view: its padding is a hole, its footer data;
# - a 64 GiB point with 3 MiB of data copies with cp --sparse=always
#   reading only its data from the mount (bytes_vault of .rpfs/stats).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need python3 cp qemu-img

V=$(vault_path v)
ok rpfs init "$V" >/dev/null

# --- a disk with holes of every shape: odd size, data at both ends,
# unaligned bytes, a long hole spanning manifest chunks (512 blocks).
H="$T/holes.raw"
truncate -s $(( 80 * 1024 * 1024 + 1536 )) "$H"
make_random "$T/r" $(( 2 * 1024 * 1024 )) holes
dd if="$T/r" of="$H" bs=4096 count=1 conv=notrunc status=none
dd if="$T/r" of="$H" bs=1024 seek=$(( 10 * 1024 )) count=200 conv=notrunc status=none
printf 'unaligned' | dd of="$H" bs=1 seek=$(( 33 * 1024 * 1024 + 12345 )) conv=notrunc status=none
dd if="$T/r" of="$H" bs=65536 seek=$(( 40 * 16 )) count=5 conv=notrunc status=none
dd if="$T/r" of="$H" bs=512 seek=$(( $(file_size "$H") / 512 - 3 )) count=3 conv=notrunc status=none
ok rpfs replicate "$V" vm --disk disk0="$H" >/dev/null

# --- a large, mostly empty disk
BIG="$T/big.raw"
truncate -s 64G "$BIG"
dd if="$T/r" of="$BIG" bs=65536 count=16 conv=notrunc status=none
dd if="$T/r" of="$BIG" bs=65536 seek=$(( 300000 )) count=8 conv=notrunc status=none
dd if="$T/r" of="$BIG" bs=65536 seek=$(( 64 * 16384 - 24 )) count=24 conv=notrunc status=none
ok rpfs replicate "$V" big --disk disk0="$BIG" >/dev/null

M="$T/mnt"
mount_fg "$V" "$M"
P=$M/vm/latest/disk0.raw

# The expected answers, from the source's zero blocks (the source file's
# own holes are not used: they are filesystem-dependent).
check_seeks() {  # SOURCE VIEW [VHD]
    python3 - "$1" "$2" $BS "${3:-}" <<'PY'
import os, sys
src, view, bs, vhd = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "vhd"
size = os.path.getsize(src)
zero = bytes(bs)
data = []
with open(src, "rb") as f:
    i = 0
    while True:
        b = f.read(bs)
        if not b:
            break
        data.append(b != zero[:len(b)])
        i += 1
total = size
if vhd:
    padded = (size + 511) // 512 * 512
    total = padded + 512
def expect(off, whence):
    if off >= total:
        return "ENXIO"
    if off < size:
        for b in range(off // bs, len(data)):
            if data[b] == (whence == os.SEEK_DATA):
                return max(off, b * bs)
        off = size
    if off >= total:
        return "ENXIO" if whence == os.SEEK_DATA else total
    if vhd:
        padded = total - 512
        if off < padded:
            return padded if whence == os.SEEK_DATA else off
        return off if whence == os.SEEK_DATA else total
    return "ENXIO" if whence == os.SEEK_DATA else total
fd = os.open(view, os.O_RDONLY)
offs = set()
for b in range(len(data) + 1):
    offs.update([b * bs, b * bs + 1, b * bs + bs // 2, b * bs + bs - 1])
offs.update([size - 1, size, size + 1, total - 1, total, total + 100])
bad = n = 0
for off in sorted(o for o in offs if o >= 0):
    for w in (os.SEEK_DATA, os.SEEK_HOLE):
        try:
            got = os.lseek(fd, off, w)
        except OSError as e:
            got = "ENXIO" if e.errno == 6 else "errno %d" % e.errno
        want = expect(off, w)
        n += 1
        if got != want:
            bad += 1
            if bad < 10:
                print("lseek(%d, %s): got %s, want %s" % (off, "DATA" if w == os.SEEK_DATA else "HOLE", got, want))
print("%d lseek calls, %d wrong" % (n, bad), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}
check_seeks "$H" "$P" || fail "SEEK_DATA/SEEK_HOLE of disk0.raw"
check_seeks "$H" "$M/vm/latest/disk0.vhd" vhd || fail "SEEK_DATA/SEEK_HOLE of disk0.vhd"

# st_blocks: the non-zero blocks (the last, partial one counted whole, up
# to the size rounded to a sector).
NZ=$(nonzero_blocks "$H" $BS | wc -l)
LASTNZ=$(nonzero_blocks "$H" $BS | tail -1)
NBLK=$(( ($(file_size "$H") + BS - 1) / BS ))
WANT=$(( NZ * BS ))
(( LASTNZ == NBLK - 1 )) && WANT=$(( WANT - NBLK * BS + ($(file_size "$H") + 511) / 512 * 512 ))
assert_eq "$(stat -c %b "$P")" $(( WANT / 512 )) "st_blocks of disk0.raw"
assert_eq "$(stat -c %b "$M/vm/latest/disk0.vhd")" $(( WANT / 512 + 1 )) "st_blocks of disk0.vhd"

# qemu-img map: its data extents are the runs of non-zero blocks.
qemu-img map -f raw --output=json "$P" >"$T/map.json" || fail "qemu-img map of disk0.raw"
python3 "$(dirname "$0")/mount_helper.py" qemu-map "$H" $BS "$T/map.json" >/dev/null ||
    fail "qemu-img map of disk0.raw differs from the source's non-zero blocks"

# cp --sparse=always: equal, and as sparse as the data.
cp --sparse=always "$P" "$T/copy.raw"
assert_file_sum "$T/copy.raw" "$(sum "$H")" "cp --sparse=always of disk0.raw"
ALLOC=$(( $(stat -c %b "$T/copy.raw") * 512 ))
# (cp also punches the zero runs inside data blocks: the copy takes what
# the source, written with dd into a truncated file, takes.)
assert_le "$ALLOC" $(( NZ * BS )) "allocated size of the sparse copy"
SRCALLOC=$(( $(stat -c %b "$H") * 512 ))
assert_le "$ALLOC" $(( SRCALLOC + BS )) "allocated size of the sparse copy against the source's"
assert_ge "$ALLOC" $(( SRCALLOC - BS )) "allocated size of the sparse copy against the source's"
rm -f "$T/copy.raw"

# The big disk: only its data is read.
BP=$M/big/latest/disk0.raw
assert_eq "$(stat -c %b "$BP")" $(( 48 * BS / 512 )) "st_blocks of the 64 GiB point"
stats "$M"; before=${ST[bytes_zero]}
cp --sparse=always "$BP" "$T/bigcopy.raw"
stats "$M"
assert_le $(( ST[bytes_zero] - before )) $(( 4 * 1024 * 1024 )) "zero bytes read through the mount by cp --sparse=always"
# Equal: over the data extents of either file (both are sparse files
# here; outside those extents both read as zeros).
python3 - "$BIG" "$T/bigcopy.raw" <<'PY' || fail "the sparse copy of the 64 GiB point differs"
import os, sys
def extents(path):
    fd, out, off = os.open(path, os.O_RDONLY), [], 0
    size = os.fstat(fd).st_size
    while off < size:
        try:
            a = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        b = os.lseek(fd, a, os.SEEK_HOLE)
        out.append((a, b))
        off = b
    os.close(fd)
    return out, size
(ea, sa), (eb, sb) = extents(sys.argv[1]), extents(sys.argv[2])
assert sa == sb, "sizes %d %d" % (sa, sb)
with open(sys.argv[1], "rb") as fa, open(sys.argv[2], "rb") as fb:
    for a, b in ea + eb:
        fa.seek(a); fb.seek(a)
        assert fa.read(b - a) == fb.read(b - a), "bytes differ in [%d, %d)" % (a, b)
PY
assert_le $(( $(stat -c %b "$T/bigcopy.raw") * 512 )) $(( 48 * BS + 1024 * 1024 )) "allocated size of the big copy"
rm -f "$T/bigcopy.raw"

unmount "$M"
