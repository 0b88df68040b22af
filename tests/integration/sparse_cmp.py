#!/usr/bin/env python3
"""sparse_cmp.py A B: exit 0 when files A and B hold the same bytes, read
through their data extents only (SEEK_DATA/SEEK_HOLE): a region that is a
hole in one file must read as zeros in the other. For comparing sparse
images of a TiB without reading its holes."""
import os
import sys


def extents(fd, size):
    off = 0
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            return
        h = os.lseek(fd, d, os.SEEK_HOLE)
        yield d, h
        off = h


def main():
    a, b = (os.open(p, os.O_RDONLY) for p in sys.argv[1:3])
    size = os.fstat(a).st_size
    if os.fstat(b).st_size != size:
        print("sizes differ", file=sys.stderr)
        return 1
    spans = sorted(list(extents(a, size)) + list(extents(b, size)))
    for start, end in spans:
        off = start
        while off < end:
            n = min(end - off, 1 << 20)
            if os.pread(a, n, off) != os.pread(b, n, off):
                print("differ in [%d, %d)" % (off, off + n), file=sys.stderr)
                return 1
            off += n
    return 0


sys.exit(main())
