#!/usr/bin/env python3
"""Data-set helpers for the rpfs benchmarks (used by bench/lib.sh).

  select    pick a deterministic sample of real files from system folders
  mutate    make version 2 of an ext4 image and its file tree: the same
            content changes are applied inside the image (debugfs and
            in-place writes at the files' block offsets) and to the tree
  blockdiff count the 64 KiB blocks that differ between two images
  sparsecmp check a (sparse) export against a reference placed at offsets

Everything is deterministic for a given machine: the sample depends only on
the paths and sizes found, the changes only on the seed.
"""
import argparse
import os
import random
import re
import subprocess
import sys
import zlib

SAFE = re.compile(r'[A-Za-z0-9._+@/-]+')  # paths debugfs needs no quoting for
FIXED_TIME = '20261122101500'             # mtime of every changed file in v2
FIXED_EPOCH = 1795342500                  # the same instant as a Unix time


def die(msg):
    print('mkdata: error: ' + msg, file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------- select

def walk_files(roots, max_file):
    out = []
    for root in roots:
        root_dev = os.lstat(root).st_dev
        for dirpath, dirnames, filenames in os.walk(root):
            # stay on one filesystem, in a stable order
            dirnames[:] = sorted(d for d in dirnames
                                 if os.lstat(os.path.join(dirpath, d)).st_dev == root_dev)
            for name in sorted(filenames):
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if not (st.st_mode & 0o170000 == 0o100000):
                    continue  # regular files only
                if st.st_size == 0 or st.st_size > max_file:
                    continue
                if not os.access(p, os.R_OK):
                    continue
                out.append((p, st.st_size))
    return out


def cmd_select(a):
    files = walk_files(a.roots, a.max_file)
    total = sum(s for _, s in files)
    # Keep a file when a hash of its path falls under p: a spread-out sample
    # that stays the same from run to run on one machine.
    p = min(1.0, a.target / total) if total else 1.0
    chosen, rest, size = [], [], 0
    for path, sz in files:
        h = zlib.crc32(path.encode('utf-8', 'surrogateescape')) / 2**32
        (chosen if h < p else rest).append((path, sz))
    # Trim or top up to land close to the target.
    chosen.sort()
    size = sum(s for _, s in chosen)
    while size > a.target * 1.03 and chosen:
        i = zlib.crc32(str(len(chosen)).encode()) % len(chosen)
        size -= chosen[i][1]
        rest.append(chosen.pop(i))
    with open(a.out, 'wb') as f:
        for path, _ in chosen:
            f.write(path.lstrip('/').encode('utf-8', 'surrogateescape') + b'\0')
    rest.sort()
    with open(a.rest, 'wb') as f:
        for path, _ in rest:
            f.write(path.encode('utf-8', 'surrogateescape') + b'\0')
    print('%d %d' % (len(chosen), size))


# ---------------------------------------------------------------- mutate

class Debugfs:
    def __init__(self, img):
        self.img = img
        self.env = dict(os.environ, DEBUGFS_PAGER='__none__', PAGER='__none__',
                        E2FSPROGS_FAKE_TIME=str(FIXED_EPOCH))

    def run(self, cmds, write=False):
        """Run debugfs commands in one batch; return stdout."""
        args = ['debugfs'] + (['-w'] if write else []) + ['-f', '-', self.img]
        r = subprocess.run(args, input='\n'.join(cmds) + '\n', text=True,
                           capture_output=True, env=self.env)
        if r.returncode != 0:
            die('debugfs failed on %s: %s' % (self.img, r.stderr.strip()))
        # debugfs reports most command errors on stderr but exits 0
        bad = [l for l in r.stderr.splitlines()
               if l.strip() and not l.startswith('debugfs ')]
        if bad:
            die('debugfs on %s: %s' % (self.img, '; '.join(bad[:5])))
        return r.stdout

    def block_size(self):
        out = self.run(['stats'])
        m = re.search(r'^Block size:\s+(\d+)', out, re.M)
        if not m:
            die('cannot read the block size of ' + self.img)
        return int(m.group(1))

    def extents(self, paths):
        """Logical->physical extents of each file: {path: [(lblk, pblk, n)]}."""
        out = self.run(['stat /' + p for p in paths])
        parts = re.split(r'^debugfs: stat /(.*)$', out, flags=re.M)
        res = {}
        for i in range(1, len(parts), 2):
            path, text = parts[i], parts[i + 1]
            ext = []
            m = re.search(r'^EXTENTS:\n(.*?)(?:\n\n|\Z)', text, re.S | re.M)
            if m:
                for e in re.finditer(r'\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?',
                                     m.group(1)):
                    l0 = int(e.group(1))
                    l1 = int(e.group(2) or l0)
                    ext.append((l0, int(e.group(3)), l1 - l0 + 1))
            res[path] = ext
        return res


def text_bytes(rng, n):
    """n bytes of unique, compressible (hex text, about 2:1) content."""
    return rng.randbytes((n + 1) // 2).hex().encode()[:n]


def set_times(path):
    return ['set_inode_field /%s %s %s' % (path, f, FIXED_TIME)
            for f in ('mtime', 'ctime', 'atime', 'crtime')]


def cmd_mutate(a):
    rng = random.Random(a.seed)
    dfs = Debugfs(a.img)
    bs = dfs.block_size()
    img_size = os.path.getsize(a.img)
    files = []
    for dirpath, dirnames, filenames in os.walk(a.tree):
        dirnames.sort()
        for n in sorted(filenames):
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, a.tree)
            if SAFE.fullmatch(rel):
                files.append((rel, os.path.getsize(full)))
    files.sort()
    if len(files) < 1000:
        die('tree %s has too few files (%d)' % (a.tree, len(files)))

    # Budgets, as fractions of the image: bytes overwritten in place in
    # existing files, bytes of files rewritten with data appended, bytes of
    # new files. Inode, bitmap and directory updates add the rest.
    over_budget = int(img_size * a.overwrite)
    app_files = a.appends
    new_budget = int(img_size * a.new)

    big = [f for f in files if f[1] >= 16 * bs]
    rng.shuffle(big)
    ext = dfs.extents([p for p, _ in big[:4 * max(1, over_budget // (32 * bs))]])
    log = []
    used = set()
    over_files = []

    # 1. overwrite 64-256 KiB regions in place, inside mapped extents
    img = open(a.img, 'r+b')
    done = 0
    for path, size in big:
        if done >= over_budget:
            break
        if path not in ext:
            continue
        full_blocks = size // bs
        want = rng.choice((16, 24, 32, 48, 64)) * 4096 // bs
        cands = []
        for l0, p0, n in ext[path]:
            n = min(n, full_blocks - l0)
            if n >= want:
                cands.append((l0, p0, n))
        if not cands:
            continue
        l0, p0, n = rng.choice(cands)
        k = rng.randrange(0, n - want + 1)
        data = text_bytes(rng, want * bs)
        img.seek((p0 + k) * bs)
        img.write(data)
        with open(os.path.join(a.tree, path), 'r+b') as f:
            f.seek((l0 + k) * bs)
            f.write(data)
        used.add(path)
        over_files.append(path)
        done += len(data)
        log.append(('overwrite', path, (l0 + k) * bs, len(data)))
    img.close()

    cmds = []
    # 2. append 16-256 KiB to smaller files: rewritten whole, as editors do
    mid = [f for f in files if 8 * 1024 <= f[1] <= 512 * 1024 and f[0] not in used]
    rng.shuffle(mid)
    for path, size in mid[:app_files]:
        data = text_bytes(rng, rng.choice((16, 32, 64, 128, 256)) * 1024)
        with open(os.path.join(a.tree, path), 'ab') as f:
            f.write(data)
        cmds += ['rm /' + path,
                 'write %s /%s' % (os.path.join(a.tree, path), path)]
        used.add(path)
        log.append(('append', path, size, len(data)))

    # 3. new files: real files that are not in the tree, else text
    src = []
    if a.rest and os.path.exists(a.rest):
        with open(a.rest, 'rb') as f:
            src = [p.decode('utf-8', 'surrogateescape')
                   for p in f.read().split(b'\0') if p]
        src = [p for p in src if SAFE.fullmatch(p)]
        rng.shuffle(src)
    newdir = 'bench-v2'
    os.makedirs(os.path.join(a.tree, newdir), exist_ok=True)
    cmds.append('mkdir /' + newdir)
    made, i = 0, 0
    while made < new_budget:
        name = '%s/new-%03d' % (newdir, i)
        dst = os.path.join(a.tree, name)
        data = None
        while src and data is None:
            p = src.pop()
            try:
                if 64 * 1024 <= os.path.getsize(p) <= 8 * 2**20:
                    with open(p, 'rb') as f:
                        data = f.read()
            except OSError:
                pass
        if data is None:
            data = text_bytes(rng, 1 << 20)
        with open(dst, 'wb') as f:
            f.write(data)
        cmds.append('write %s /%s' % (dst, name))
        used.add(name)
        made += len(data)
        i += 1
        log.append(('new', name, 0, len(data)))

    # 4. delete a few files
    rest = [f for f in files if f[0] not in used]
    for path, size in rng.sample(rest, a.deletes):
        os.remove(os.path.join(a.tree, path))
        cmds.append('rm /' + path)
        log.append(('delete', path, size, 0))

    # fixed times on every changed inode, in the image and in the tree
    changed = over_files + [p for k, p, _, _ in log if k in ('append', 'new')]
    for p in changed:
        cmds += set_times(p)
        os.utime(os.path.join(a.tree, p), (FIXED_EPOCH, FIXED_EPOCH))
    cmds += set_times(newdir)
    dfs.run(cmds, write=True)

    with open(a.log, 'w') as f:
        for k, p, off, n in log:
            f.write('%s\t%s\t%d\t%d\n' % (k, p, off, n))
    tot = {}
    for k, _, _, n in log:
        c, b = tot.get(k, (0, 0))
        tot[k] = (c + 1, b + n)
    print(' '.join('%s=%d:%d' % (k, c, b) for k, (c, b) in sorted(tot.items())))


# ---------------------------------------------------------------- blockdiff

def cmd_blockdiff(a):
    bs = a.block
    zero = bytes(bs)
    total = differ = nonzero = 0
    with open(a.a, 'rb') as fa, open(a.b, 'rb') as fb:
        while True:
            x = fa.read(bs)
            y = fb.read(bs)
            if not x and not y:
                break
            total += 1
            if x != y:
                differ += 1
            if x != zero[:len(x)]:
                nonzero += 1
    print('%d %d %d' % (total, differ, nonzero))


# ---------------------------------------------------------------- sparsecmp

def data_extents(fd, size):
    off = 0
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            return
        h = os.lseek(fd, d, os.SEEK_HOLE)
        yield d, h
        off = h


def cmd_sparsecmp(a):
    """OUT must equal REF at each offset and be zero everywhere else."""
    ref_size = os.path.getsize(a.ref)
    out_size = os.path.getsize(a.out)
    if out_size != a.size:
        die('%s is %d bytes, expected %d' % (a.out, out_size, a.size))
    regions = sorted((o, o + ref_size) for o in a.offsets)
    chunk = 1 << 20
    with open(a.ref, 'rb') as fr, open(a.out, 'rb') as fo:
        fd = fo.fileno()
        # the reference regions, byte for byte
        for lo, hi in regions:
            fr.seek(0)
            fo.seek(lo)
            pos = lo
            while pos < hi:
                n = min(chunk, hi - pos)
                if fo.read(n) != fr.read(n):
                    die('%s differs from %s near offset %d' % (a.out, a.ref, pos))
                pos += n
        # everything else must read as zero (only data extents are read)
        zero = bytes(chunk)
        for d, h in data_extents(fd, out_size):
            pos = d
            while pos < h:
                inside = next(((lo, hi) for lo, hi in regions if lo <= pos < hi), None)
                if inside:
                    pos = inside[1]
                    continue
                nxt = min([lo for lo, _ in regions if lo > pos] + [h])
                n = min(chunk, nxt - pos)
                fo.seek(pos)
                if fo.read(n) != zero[:n]:
                    die('%s has data outside the reference regions near %d' % (a.out, pos))
                pos += n
    print('ok')


# ---------------------------------------------------------------- writefloor

def cmd_writefloor(a):
    """The disk's floor for a full restore: write SRC's non-zero blocks
    (runs of adjacent ones, up to 4 MiB a write) into the new file OUT with
    O_DIRECT on THREADS threads, then fsync. Timed without the set-up (the
    scan for zero blocks); prints the seconds."""
    import mmap
    import threading
    import time
    bs, cap = a.block, 4 << 20
    size = os.path.getsize(a.src)
    zero = bytes(bs)
    runs = []
    with open(a.src, 'rb') as f:
        src = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
    mv = memoryview(src)
    pos = 0
    while pos < size:
        n = min(bs, size - pos)
        if mv[pos:pos + n] != zero[:n]:
            if runs and runs[-1][1] == pos and pos - runs[-1][0] < cap and n == bs:
                runs[-1][1] = pos + n
            else:
                runs.append([pos, pos + n])
        pos += n
    # O_DIRECT wants whole, aligned sectors: the source is a whole number of
    # blocks, and mmap's memory is page-aligned
    if any((hi - lo) % 4096 for lo, hi in runs):
        die('%s: a data run is not a multiple of 4 KiB' % a.src)
    fd = os.open(a.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o644)
    errors = []

    def work(k):
        try:
            for lo, hi in runs[k::a.threads]:
                done = lo
                while done < hi:
                    done += os.pwrite(fd, mv[done:hi], done)
        except OSError as e:
            errors.append(e)
    t0 = time.perf_counter()
    os.ftruncate(fd, size)
    th = [threading.Thread(target=work, args=(k,)) for k in range(a.threads)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    os.fsync(fd)
    dt = time.perf_counter() - t0
    os.close(fd)
    if errors:
        die('%s: %s' % (a.out, errors[0]))
    print('%.3f' % dt)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('select')
    s.add_argument('--target', type=int, required=True)
    s.add_argument('--max-file', type=int, default=64 << 20)
    s.add_argument('--out', required=True)
    s.add_argument('--rest', required=True)
    s.add_argument('roots', nargs='+')
    s.set_defaults(fn=cmd_select)
    m = sub.add_parser('mutate')
    m.add_argument('--img', required=True)
    m.add_argument('--tree', required=True)
    m.add_argument('--rest')
    m.add_argument('--seed', type=int, default=20261122)
    m.add_argument('--overwrite', type=float, default=0.006)
    m.add_argument('--appends', type=int, default=12)
    m.add_argument('--new', type=float, default=0.002)
    m.add_argument('--deletes', type=int, default=16)
    m.add_argument('--log', required=True)
    m.set_defaults(fn=cmd_mutate)
    b = sub.add_parser('blockdiff')
    b.add_argument('--block', type=int, default=65536)
    b.add_argument('a')
    b.add_argument('b')
    b.set_defaults(fn=cmd_blockdiff)
    c = sub.add_parser('sparsecmp')
    c.add_argument('--size', type=int, required=True)
    c.add_argument('out')
    c.add_argument('ref')
    c.add_argument('offsets', type=int, nargs='+')
    c.set_defaults(fn=cmd_sparsecmp)
    w = sub.add_parser('writefloor')
    w.add_argument('--block', type=int, default=65536)
    w.add_argument('--threads', type=int, default=4)
    w.add_argument('src')
    w.add_argument('out')
    w.set_defaults(fn=cmd_writefloor)
    a = ap.parse_args()
    a.fn(a)


if __name__ == '__main__':
    main()
