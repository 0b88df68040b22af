#!/usr/bin/env python3
"""Checks for the `rpfs mount` integration tests (used by lib-mount.sh).

Each subcommand prints what the shell needs and exits 0, or prints one line
starting with "error:" and exits 1 when what it checks is wrong.

  stats-sh MNT                  MNT/.rpfs/stats as ST[key]=value lines
  stats-check FILE|-            the stats JSON has every required field
  vhd-footer FILE SIZE          FILE = SIZE bytes + a valid fixed-VHD footer
  point-json FILE VAULT_POINTS  point.json agrees with `rpfs points --json`
  distinct-blocks BS FILE...    number of distinct non-zero blocks
  chunks VAULT|-                number of distinct manifest chunks (-: point objects on stdin)
  nonzero-blocks BS FILE        indexes of the non-zero blocks
  concurrent ...                many threads reading at random ranges
  randread MFILE SRC N SEED BS  N random aligned 4 KiB reads, one per block
  blockscan MFILE SRC BS        read block by block: EIO blocks, mismatches
  timed-read MFILE OFF LEN [SRC]  "ok|EIO|ERR:<name>|MISMATCH SECONDS"
  slowread MFILE SRC DELAY      read it all slowly: "ok|EIO|ERR:<name> BYTES"
  corrupt VAULT SRC BS          flip one byte of a stored data block
  pack-of VAULT SRC BS BLOCK    the pack ID holding that source block
  qemu-map SRC BS MAPJSON       `qemu-img map --output=json` data extents are
                                exactly SRC's runs of non-zero BS blocks
"""
import errno
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import threading
import time

STATS_KEYS = ("bytes_zero", "bytes_cache", "bytes_seed", "bytes_vault",
              "blocks_fetched", "bytes_fetched", "errors")


def die(msg):
    print("error: " + msg)
    sys.exit(1)


# ------------------------------------------------------------------ stats

def check_stats(text, where):
    try:
        d = json.loads(text)
    except ValueError as e:
        die("%s is not JSON (%s): %r" % (where, e, text[:200]))
    if not isinstance(d, dict):
        die("%s is not a JSON object: %r" % (where, text[:200]))
    for k in STATS_KEYS:
        v = d.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            die("%s: field %s missing or not a non-negative integer: %r" % (where, k, d))
    return d


def cmd_stats_sh(a):
    path = os.path.join(a[0], ".rpfs", "stats")
    try:
        with open(path, "rb") as f:
            text = f.read().decode()
    except OSError as e:
        die("cannot read %s: %s" % (path, e))
    d = check_stats(text, path)
    for k, v in sorted(d.items()):
        if isinstance(v, int) and k.replace("_", "").isalnum():
            print("ST[%s]=%d" % (k, v))


def cmd_stats_check(a):
    text = sys.stdin.read() if a[0] == "-" else open(a[0]).read()
    check_stats(text, a[0])


# ------------------------------------------------------------------ views

def cmd_vhd_footer(a):
    path, size = a[0], int(a[1])
    st = os.stat(path)
    if st.st_size != size + 512:
        die("%s is %d bytes, expected %d + 512" % (path, st.st_size, size))
    with open(path, "rb") as f:
        f.seek(size)
        ft = f.read(512)
    if len(ft) != 512:
        die("short read of the footer: %d bytes" % len(ft))
    if ft[0:8] != b"conectix":
        die("footer cookie %r, expected b'conectix'" % ft[0:8])
    creator = ft[28:32]
    if creator != b"win ":
        die("footer creator application %r, expected b'win '" % creator)
    data_offset = struct.unpack(">Q", ft[16:24])[0]
    if data_offset != 0xFFFFFFFFFFFFFFFF:
        die("footer data offset %#x, expected all ones (fixed disk)" % data_offset)
    orig, cur = struct.unpack(">QQ", ft[40:56])
    if cur != size or orig != size:
        die("footer sizes original %d current %d, expected %d" % (orig, cur, size))
    dtype = struct.unpack(">I", ft[60:64])[0]
    if dtype != 2:
        die("footer disk type %d, expected 2 (fixed)" % dtype)
    csum = struct.unpack(">I", ft[64:68])[0]
    calc = (~(sum(ft[:64]) + sum(ft[68:]))) & 0xFFFFFFFF
    if csum != calc:
        die("footer checksum %#x, computed %#x" % (csum, calc))


def cmd_point_json(a):
    path, ref_path = a[0], a[1]
    try:
        with open(path) as f:
            p = json.load(f)
    except (OSError, ValueError) as e:
        die("%s: %s" % (path, e))
    ref = json.load(open(ref_path))
    for k in ("vm", "id", "time", "type", "group"):
        if k not in p:
            die("%s has no field %s: %r" % (path, k, p))
        if p[k] != ref[k]:
            die("%s: %s is %r, expected %r" % (path, k, p[k], ref[k]))
    disks = p.get("disks")
    if not isinstance(disks, list):
        die("%s: disks is not a list: %r" % (path, p))
    got = [(d.get("name"), d.get("size")) for d in disks]
    want = [(d["name"], d["size"]) for d in ref["disks"]]
    if got != want:
        die("%s: disks (name, size) %r, expected %r" % (path, got, want))


# ------------------------------------------------------------------ blocks

def blocks(path, bs):
    with open(path, "rb") as f:
        while True:
            b = f.read(bs)
            if not b:
                return
            yield b


def cmd_distinct_blocks(a):
    bs = int(a[0])
    zero = bytes(bs)
    seen = set()
    for path in a[1:]:
        for b in blocks(path, bs):
            b = b + bytes(bs - len(b))
            if b != zero:
                seen.add(hashlib.sha256(b).digest())
    print(len(seen))


def cmd_nonzero_blocks(a):
    bs, path = int(a[0]), a[1]
    zero = bytes(bs)
    for i, b in enumerate(blocks(path, bs)):
        if b != zero[:len(b)]:
            print(i)


def cmd_chunks(a):
    seen = set()
    if a[0] == "-":  # point objects on stdin, one after the other
        text, dec, pos = sys.stdin.read(), json.JSONDecoder(), 0
        points = []
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos >= len(text):
                break
            p, pos = dec.raw_decode(text, pos)
            points.append(p)
    else:
        root = os.path.join(a[0], "points")
        points = [json.load(open(os.path.join(root, vm, name)))
                  for vm in os.listdir(root) for name in os.listdir(os.path.join(root, vm))
                  if name.endswith(".json") and not name.startswith(".")]
    for p in points:
        for d in p["disks"]:
            seen.update(d.get("chunks", []))
    print(len(seen))


# ------------------------------------------------------------------ reads

def pread_all(fd, n, off):
    """One pread: a short read before the end of file is reported as is."""
    return os.pread(fd, n, off)


def cmd_concurrent(a):
    """concurrent THREADS READS SEED MFILE:SRC [MFILE:SRC ...]

    THREADS threads start together; each does READS reads of a random kind
    from a random pair, comparing the mount file with the source.
    """
    nthreads, nreads, seed = int(a[0]), int(a[1]), a[2]
    pairs = [p.split(":", 1) for p in a[3:]]
    bs = 65536
    mib = 1 << 20
    barrier = threading.Barrier(nthreads)
    problems = []
    counts = {}
    lock = threading.Lock()

    def one(tid):
        r = random.Random("%s-%d" % (seed, tid))
        fds = [(os.open(m, os.O_RDONLY), os.open(s, os.O_RDONLY), os.path.getsize(s), m)
               for m, s in pairs]
        barrier.wait()
        try:
            for _ in range(nreads):
                mfd, sfd, size, name = r.choice(fds)
                kind = r.choice(("block", "tiny", "unaligned", "cross", "large",
                                 "end", "past", "page"))
                if kind == "block":        # one whole aligned block
                    off, n = r.randrange(size // bs) * bs, bs
                elif kind == "tiny":       # 1 to 16 bytes anywhere
                    off, n = r.randrange(size), r.randint(1, 16)
                elif kind == "unaligned":  # odd offset and length
                    off, n = r.randrange(size), r.randint(1, 3 * bs)
                elif kind == "cross":      # across one or more block boundaries
                    k = r.randrange(1, size // bs)
                    off = k * bs - r.randint(1, 8192)
                    n = r.randint(8193, 2 * mib)
                elif kind == "large":      # 1-2 MiB
                    off, n = r.randrange(size), r.randint(mib, 2 * mib)
                elif kind == "end":        # across the end of the disk
                    off = size - r.randint(1, 3 * bs)
                    n = r.randint(1, 2 * mib)
                elif kind == "past":       # at or past the end
                    off, n = size + r.randint(0, 3 * bs), r.randint(1, bs)
                else:                      # aligned 4 KiB
                    off, n = r.randrange(size // 4096) * 4096, 4096
                try:
                    got = pread_all(mfd, n, off)
                except OSError as e:
                    with lock:
                        problems.append("%s: pread(%d, %d) failed: %s" % (name, off, n, e))
                    continue
                want = os.pread(sfd, n, off)
                if got != want:
                    with lock:
                        problems.append("%s: pread(%d, %d) [%s] returned %d bytes, differing from the source "
                                        "(source %d bytes)" % (name, off, n, kind, len(got), len(want)))
                with lock:
                    counts[kind] = counts.get(kind, 0) + 1
        finally:
            for mfd, sfd, _, _ in fds:
                os.close(mfd)
                os.close(sfd)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(nthreads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.monotonic() - t0
    if problems:
        for p in problems[:20]:
            print("error: " + p)
        print("error: %d of %d reads wrong" % (len(problems), nthreads * nreads))
        sys.exit(1)
    print("%d reads by %d threads in %.1f s, all equal to the source (%s)" % (
        nthreads * nreads, nthreads, dt,
        ", ".join("%s %d" % kv for kv in sorted(counts.items()))))


def cmd_randread(a):
    """randread MFILE SRC N SEED BS: N aligned 4 KiB reads, each in another
    non-zero block of the source."""
    mfile, src, n, seed, bs = a[0], a[1], int(a[2]), a[3], int(a[4])
    zero = bytes(bs)
    nz = [i for i, b in enumerate(blocks(src, bs)) if b != zero[:len(b)]]
    if len(nz) < n:
        die("only %d non-zero blocks" % len(nz))
    r = random.Random(seed)
    picks = r.sample(nz, n)
    size = os.path.getsize(src)
    mfd = os.open(mfile, os.O_RDONLY)
    sfd = os.open(src, os.O_RDONLY)
    t0 = time.monotonic()
    for b in picks:
        off = b * bs + r.randrange(bs // 4096) * 4096
        if off >= size:
            off = b * bs
        got = os.pread(mfd, 4096, off)
        if got != os.pread(sfd, 4096, off):
            die("4 KiB read at %d differs from the source" % off)
    print("%d random 4 KiB reads in %.2f s" % (n, time.monotonic() - t0))


def cmd_blockscan(a):
    """blockscan MFILE SRC BS: read every block; print "eio I" for each block
    that fails with EIO; any other error or any wrong byte is an error."""
    mfile, src, bs = a[0], a[1], int(a[2])
    size = os.path.getsize(src)
    mfd = os.open(mfile, os.O_RDONLY)
    sfd = os.open(src, os.O_RDONLY)
    bad = []
    for i in range((size + bs - 1) // bs):
        off = i * bs
        try:
            got = os.pread(mfd, bs, off)
        except OSError as e:
            if e.errno == errno.EIO:
                print("eio %d" % i)
                continue
            bad.append("block %d: %s" % (i, e))
            continue
        if got != os.pread(sfd, bs, off):
            bad.append("block %d: %d bytes read, differing from the source" % (i, len(got)))
    for b in bad[:20]:
        print("error: " + b)
    if bad:
        print("error: %d blocks wrong (not EIO)" % len(bad))
        sys.exit(1)


def cmd_timed_read(a):
    mfile, off, n = a[0], int(a[1]), int(a[2])
    src = a[3] if len(a) > 3 else None
    t0 = time.monotonic()
    try:
        fd = os.open(mfile, os.O_RDONLY)
        try:
            got = os.pread(fd, n, off)
        finally:
            os.close(fd)
    except OSError as e:
        dt = time.monotonic() - t0
        print("%s %.2f" % ("EIO" if e.errno == errno.EIO else "ERR:" + errno.errorcode.get(e.errno, str(e.errno)), dt))
        return
    dt = time.monotonic() - t0
    if src is not None:
        with open(src, "rb") as f:
            f.seek(off)
            if f.read(n) != got:
                print("MISMATCH %.2f" % dt)
                return
    print("ok %.2f" % dt)


def cmd_slowread(a):
    """slowread MFILE SRC DELAY: read the whole file 64 KiB at a time, DELAY
    seconds between reads; print "ok N" or "EIO N" / "ERR:<name> N" (N =
    bytes read until then); wrong bytes are an error."""
    mfile, src, delay = a[0], a[1], float(a[2])
    bs = 65536
    off = 0
    try:
        fd = os.open(mfile, os.O_RDONLY)
        with open(src, "rb") as s:
            while True:
                got = os.pread(fd, bs, off)
                want = s.read(bs)
                if got != want:
                    die("%d bytes at %d differ from the source" % (len(got), off))
                if not got:
                    break
                off += len(got)
                time.sleep(delay)
        os.close(fd)
    except OSError as e:
        print("%s %d" % ("EIO" if e.errno == errno.EIO else "ERR:" + errno.errorcode.get(e.errno, str(e.errno)), off))
        return
    print("ok %d" % off)


# ------------------------------------------------------------------ packs

def read_pack_table(path):
    with open(path, "rb") as f:
        d = f.read()
    if d[:8] != b"RPFSPACK" or d[-8:] != b"RPFSPEND":
        die("%s is not a pack" % path)
    toff, n = struct.unpack("<QI", d[-32:-20])
    out = []
    for i in range(n):
        h, off, ln, dl = struct.unpack("<16sQII", d[toff + 32 * i:toff + 32 * i + 32])
        codec, kind = d[off], d[off + 1]
        out.append(dict(hash=h.hex(), off=off, len=ln, dlen=dl, codec=codec, kind=kind,
                        payload=d[off + 8:off + ln]))
    return out


def packs(vault):
    root = os.path.join(vault, "packs")
    for d in sorted(os.listdir(root)):
        for name in sorted(os.listdir(os.path.join(root, d))):
            if name.endswith(".pack") and not name.startswith("."):
                yield os.path.join(root, d, name)


def decode(blob):
    if blob["codec"] == 0:
        return blob["payload"]
    r = subprocess.run(["zstd", "-d", "-c", "-q"], input=blob["payload"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return r.stdout if r.returncode == 0 else None


def source_index(src, bs):
    idx = {}
    for i, b in enumerate(blocks(src, bs)):
        b = b + bytes(bs - len(b))
        idx.setdefault(hashlib.sha256(b).digest(), []).append(i)
    return idx


def cmd_corrupt(a):
    """corrupt VAULT SRC BS: flip one byte in the middle of a stored data
    block (preferring one stored uncompressed whose content occurs once in
    SRC).  Prints: PACK_ID HASH BLOB_OFFSET BLOCK [BLOCK ...] -- the blocks of
    SRC holding that content, which must now fail."""
    vault, src, bs = a[0], a[1], int(a[2])
    idx = source_index(src, bs)
    blobs = [(path, b) for path in packs(vault) for b in read_pack_table(path) if b["kind"] == 0]
    cands = []
    # blobs stored as is first (no decompression needed), then compressed ones
    for want_codec in (0, 1):
        for path, b in blobs:
            if (b["codec"] != 0) != bool(want_codec):
                continue
            data = decode(b)
            if data is None:
                continue
            where = idx.get(hashlib.sha256(data + bytes(bs - len(data))).digest(), [])
            if where:
                cands.append((len(where) != 1, path, b, where))
        if any(not c[0] for c in cands):
            break
    if not cands:
        die("no data block of %s found in the packs" % src)
    cands.sort(key=lambda c: c[0])
    _, path, b, where = cands[len([c for c in cands if not c[0]]) // 2]
    pos = b["off"] + 8 + len(b["payload"]) // 2
    mode = os.stat(path).st_mode
    os.chmod(path, mode | 0o200)
    with open(path, "r+b") as f:
        f.seek(pos)
        c = f.read(1)
        f.seek(pos)
        f.write(bytes([c[0] ^ 0xFF]))
    os.chmod(path, mode)
    print(os.path.basename(path)[:-len(".pack")], b["hash"], b["off"], *where)


def cmd_pack_of(a):
    vault, src, bs, block = a[0], a[1], int(a[2]), int(a[3])
    with open(src, "rb") as f:
        f.seek(block * bs)
        want = f.read(bs)
    want += bytes(bs - len(want))
    for path in packs(vault):
        for b in read_pack_table(path):
            if b["kind"] == 0 and decode(b) == want:
                print(os.path.basename(path)[:-len(".pack")])
                return
    die("block %d of %s is in no pack" % (block, src))


def cmd_qemu_map(a):
    src, bs, mp = a[0], int(a[1]), a[2]
    with open(src, "rb") as f:
        data = f.read()
    size, runs = len(data), []
    for b in range(0, (size + bs - 1) // bs):
        if data[b * bs:(b + 1) * bs].strip(b"\0"):
            lo, hi = b * bs, min((b + 1) * bs, size)
            if runs and runs[-1][1] == lo:
                runs[-1][1] = hi
            else:
                runs.append([lo, hi])
    m = json.load(open(mp))
    got = []
    for x in m:
        if x["data"]:
            lo, hi = x["start"], x["start"] + x["length"]
            if got and got[-1][1] == lo:
                got[-1][1] = hi
            else:
                got.append([lo, hi])
    if got != runs:
        die("qemu-img map: %s want: %s" % (got[:8], runs[:8]))
    holes = sum(x["length"] for x in m if not x["data"] and x["zero"])
    print("%d data extents, %d bytes of holes" % (len(got), holes))


CMDS = {
    "stats-sh": cmd_stats_sh, "stats-check": cmd_stats_check,
    "vhd-footer": cmd_vhd_footer, "point-json": cmd_point_json,
    "distinct-blocks": cmd_distinct_blocks, "nonzero-blocks": cmd_nonzero_blocks,
    "chunks": cmd_chunks, "concurrent": cmd_concurrent, "randread": cmd_randread,
    "blockscan": cmd_blockscan, "timed-read": cmd_timed_read, "slowread": cmd_slowread,
    "corrupt": cmd_corrupt, "pack-of": cmd_pack_of, "qemu-map": cmd_qemu_map,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in CMDS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    CMDS[sys.argv[1]](sys.argv[2:])
