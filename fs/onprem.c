/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MOUNT/failback: the on-prem directory, passed through and writable.
 *
 * A write compares each block with the bytes already on disk and writes
 * only the blocks that differ (or every block with failback_full); zero
 * blocks past the end of a file are not written at all, so new files stay
 * sparse. copy_file_range from a point file (what cp does) is a delta sync:
 * for each block, the target's checksum is compared with the point's
 * manifest; equal blocks are neither fetched nor written, the others are
 * fetched through the normal read path (cache, seed, vault) and written.
 *
 * Opening an existing file with O_TRUNC (cp, dd without conv=notrunc) would
 * destroy what there is to compare with, so the truncation is deferred: the
 * file is opened as it is, the written ranges are recorded, and at flush
 * (the close(2) of the writer) ranges never written are punched out and the
 * file is cut to its new size. The result is what O_TRUNC plus the writes
 * would have left, with only the differing blocks written.
 */
#define FUSE_USE_VERSION 314
#include <dirent.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_i.h"

/* A copy from a point goes window by window: compare, then fetch and
 * write what differs. */
#define COPY_WINDOW (32u << 20)
#define COPY_MAX_CALL (1ull << 30)

bool fs_onprem_path(const struct fs *fs, const char *path, const char **rel) {
        size_t n = strlen(FS_ONPREM_NAME);
        if (fs->onprem_fd < 0 || path[0] != '/' || strncmp(path + 1, FS_ONPREM_NAME, n) != 0)
                return false;
        if (path[1 + n] == 0) {
                *rel = ".";
                return true;
        }
        if (path[1 + n] != '/')
                return false;
        *rel = path + 2 + n;
        if (!**rel)
                *rel = ".";
        return true;
}

int onprem_getattr(struct fs *fs, const char *rel, struct stat *st) {
        if (fstatat(fs->onprem_fd, rel, st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        return 0;
}

int onprem_readdir(struct fs *fs, const char *rel, void *buf, void *filler) {
        fuse_fill_dir_t fill = (fuse_fill_dir_t)filler;
        int fd = openat(fs->onprem_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct dirent *de;
        DIR *d;

        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        while ((de = readdir(d)))
                fill(buf, de->d_name, NULL, 0, 0);
        closedir(d);
        return 0;
}

int onprem_open(struct fs *fs, const char *rel, int flags, mode_t mode, bool create, struct fs_file **ret) {
        struct fs_file *f;
        struct stat st;
        int fd;

        bool trunc = (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY;

        /* O_TRUNC is deferred (see the top of this file). */
        flags &= ~(O_NOFOLLOW | O_CREAT | O_EXCL | O_TRUNC);
        /* Comparing needs to read what is there: a write-only open becomes
         * read-write where the permissions allow. */
        fd = -1;
        if ((flags & O_ACCMODE) == O_WRONLY)
                fd = openat(fs->onprem_fd, rel, (flags & ~O_ACCMODE) | O_RDWR | O_CLOEXEC |
                            (create ? O_CREAT | O_EXCL : 0), mode);
        if (fd < 0)
                fd = openat(fs->onprem_fd, rel, flags | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), mode);
        if (fd < 0)
                return -errno;
        f = calloc(1, sizeof *f);
        if (!f) {
                close(fd);
                return -ENOMEM;
        }
        pthread_mutex_init(&f->lock, NULL);
        f->kind = FK_ONPREM;
        f->fd = fd;
        f->verified = fs->verified;
        if (fstat(fd, &st) == 0) {
                f->dev = (uint64_t)st.st_dev;
                f->ino = (uint64_t)st.st_ino;
        }
        if (create) /* its inode number may be one an unlinked file had */
                fs_verified_forget_all(fs->verified);
        if (!create && trunc) {
                if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
                        f->trunc_pending = true;
        }
        *ret = f;
        return 0;
}

/* Record [a, b) as written (trunc_pending files only). */
static int cover(struct fs_file *f, uint64_t a, uint64_t b) {
        size_t i, j;

        if (!f->trunc_pending || a >= b)
                return 0;
        pthread_mutex_lock(&f->lock);
        f->logical_end = MAX(f->logical_end, b);
        /* Find the first range ending at or after a, merge all that touch. */
        for (i = 0; i < f->n_covered && f->covered[i][1] < a; i++)
                ;
        for (j = i; j < f->n_covered && f->covered[j][0] <= b; j++) {
                a = MIN(a, f->covered[j][0]);
                b = MAX(b, f->covered[j][1]);
        }
        if (j == i) { /* insert at i */
                if (f->n_covered == f->cap_covered) {
                        size_t nc = f->cap_covered ? 2 * f->cap_covered : 16;
                        void *nv = realloc(f->covered, nc * sizeof *f->covered);
                        if (!nv) {
                                pthread_mutex_unlock(&f->lock);
                                return -ENOMEM;
                        }
                        f->covered = nv;
                        f->cap_covered = nc;
                }
                memmove(f->covered + i + 1, f->covered + i, (f->n_covered - i) * sizeof *f->covered);
                f->n_covered++;
        } else if (j > i + 1) { /* ranges i..j-1 become one */
                memmove(f->covered + i + 1, f->covered + j, (f->n_covered - j) * sizeof *f->covered);
                f->n_covered -= j - i - 1;
        }
        f->covered[i][0] = a;
        f->covered[i][1] = b;
        pthread_mutex_unlock(&f->lock);
        return 0;
}

int onprem_truncate(struct fs_file *f, uint64_t size) {
        if (!f->trunc_pending) {
                int r = ftruncate(f->fd, (off_t)size) < 0 ? -errno : 0;
                fs_verified_forget_all(f->verified);
                return r;
        }
        pthread_mutex_lock(&f->lock);
        /* Bytes past size are gone; below it, unwritten bytes read as zero. */
        while (f->n_covered > 0 && f->covered[f->n_covered - 1][0] >= size)
                f->n_covered--;
        if (f->n_covered > 0 && f->covered[f->n_covered - 1][1] > size)
                f->covered[f->n_covered - 1][1] = size;
        f->logical_end = size;
        pthread_mutex_unlock(&f->lock);
        return 0;
}

static int zero_range(int fd, uint64_t a, uint64_t b) {
        struct sync_delta_target t;
        sync_delta_target_init(&t, fd, -1, false);
        return sync_delta_zero(&t, a, b - a, NULL);
}

static int finalize(struct fs_file *f) {
        struct stat st;
        uint64_t pos = 0;
        int r = 0;

        if (!f->trunc_pending)
                return 0;
        if (fstat(f->fd, &st) < 0)
                return -errno;
        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i <= f->n_covered && r == 0; i++) {
                uint64_t gap_end = i < f->n_covered ? f->covered[i][0] : f->logical_end;
                gap_end = MIN(gap_end, MIN(f->logical_end, (uint64_t)st.st_size));
                if (pos < gap_end)
                        r = zero_range(f->fd, pos, gap_end);
                if (i < f->n_covered)
                        pos = MAX(pos, f->covered[i][1]);
        }
        if (r == 0 && (uint64_t)st.st_size != f->logical_end && ftruncate(f->fd, (off_t)f->logical_end) < 0)
                r = -errno;
        pthread_mutex_unlock(&f->lock);
        fs_verified_forget_all(f->verified); /* holes punched, the size cut */
        return r;
}

/* flush comes with every close(2) of a descriptor of the file, dup()s
 * included (dd closes its first descriptor before writing through the
 * dup): finalize only once something was written; release always does. */
int onprem_flush(struct fs_file *f) {
        bool written;
        pthread_mutex_lock(&f->lock);
        written = f->n_covered > 0 || f->logical_end > 0;
        pthread_mutex_unlock(&f->lock);
        return written ? finalize(f) : 0;
}

void onprem_close(struct fs_file *f) {
        (void)finalize(f);
        close(f->fd);
        free(f->covered);
}

/* Whether piece [a, a + n) of a write, bytes p, is what f holds there
 * (fsize: f's size; hole: the piece is a hole of f). A whole block the
 * read path has just verified is compared by checksum (verified.c);
 * otherwise it is read back, a block at a time (cur, bs bytes), and
 * compared. */
static bool piece_same(struct fs *fs, struct fs_file *f, const char *p, size_t n, uint64_t a, uint64_t fsize,
                       bool hole, char *cur) {
        struct hash128 h;

        if (fs->o.failback_full)
                return false;
        if (a >= fsize || hole) /* a hole, also past EOF, reads as zeros */
                return mem_is_zero(p, n);
        if (n == fs->bs && fs->verified) {
                store_hash(p, n, &h);
                if (fs_verified_holds(fs->verified, f->dev, f->ino, a / fs->bs, &h))
                        return true;
        }
        /* cannot read it: not the same, write it */
        return pread(f->fd, cur, n, (off_t)a) == (ssize_t)n && memcmp(cur, p, n) == 0;
}

/* Which blocks of [off, end) are holes of f (below fsize), into hole[]
 * (block k: the one at off / bs + k). */
static void write_holes(const struct fs *fs, const struct fs_file *f, uint64_t off, uint64_t end, uint64_t fsize,
                        uint8_t *hole, size_t n) {
        uint64_t a = off / fs->bs * fs->bs, b = MIN(end, fsize);

        memset(hole, 0, n);
        if (!fs->o.failback_full && a < b)
                (void)fd_map_holes(f->fd, a, b, fs->bs, hole, NULL);
}

/* Write [off, off + size) of buf to f, piece by piece along block
 * boundaries, skipping pieces equal to what is on disk (read back a block
 * at a time: a block-sized buffer comes from the heap, where one as large
 * as the request, up to 1 MiB, could be a fresh mapping each time). */
int onprem_write(struct fs *fs, struct fs_file *f, const char *buf, size_t size, uint64_t off) {
        _cleanup_free_ char *cur = NULL;
        _cleanup_free_ uint8_t *hole = NULL;
        uint32_t bs = fs->bs;
        struct stat st;
        uint64_t fsize, end = off + size;
        size_t nb = (size_t)(DIV_ROUND_UP(end, bs) - off / bs);

        if (size == 0)
                return 0;
        hole = malloc(nb);
        if (!hole || cover(f, off, off + size) < 0)
                return -ENOMEM;
        if (fstat(f->fd, &st) < 0)
                return -errno;
        fsize = (uint64_t)st.st_size;
        if (!fs->o.failback_full && off < fsize) {
                cur = malloc(bs);
                if (!cur)
                        return -ENOMEM;
        }
        write_holes(fs, f, off, end, fsize, hole, nb);
        for (uint64_t a = off; a < end;) {
                uint64_t b = MIN(end, (a / bs + 1) * bs);
                size_t n = (size_t)(b - a);
                const char *p = buf + (a - off);

                atomic_fetch_add(&fs->st.blocks_compared, 1);
                if (piece_same(fs, f, p, n, a, fsize, hole[a / bs - off / bs], cur))
                        atomic_fetch_add(&fs->st.blocks_skipped, 1);
                else {
                        int r = pwrite_full(f->fd, p, n, a);
                        fs_verified_forget(f->verified, f->dev, f->ino, a / bs, a / bs + 1);
                        if (r < 0)
                                return r;
                        atomic_fetch_add(&fs->st.blocks_written, 1);
                        atomic_fetch_add(&fs->st.bytes_written, n);
                }
                a = b;
        }
        /* Zero pieces past EOF were skipped: the size must still grow. A
         * file with a deferred truncation gets its size at flush. */
        if (!f->trunc_pending && end > fsize && fstat(f->fd, &st) == 0 && (uint64_t)st.st_size < end &&
            ftruncate(f->fd, (off_t)end) < 0)
                return -errno;
        return (int)size;
}

bool fs_onprem_seed_block(struct fs *fs, const struct fs_onprem_ref *op, uint64_t b, const struct hash128 *h,
                          uint8_t *buf) {
        uint64_t off = b * fs->bs, len = MIN((uint64_t)fs->bs, op->size - off);
        struct fs_verified_mark m;

        if (fs->verified)
                fs_verified_sample(fs->verified, op->dev, op->ino, b, &m);
        if (!sync_delta_block_is(op->fd, fs->bs, off, (size_t)len, h, buf))
                return false;
        /* A whole block: what a write of the same bytes is compared with. */
        if (fs->verified && len == fs->bs && !hash_is_zero(h))
                fs_verified_note(fs->verified, op->dev, op->ino, b, h, &m);
        return true;
}

/* One window of a copy from a point: its pieces along the source's block
 * boundaries, compared with the target by the delta engine. */
struct copy_win {
        struct fs *fs;
        const struct ret_disk *d;
        struct fs_file *dst;
        int fd;
        uint64_t fsize;
        uint64_t off_in, off_out; /* where the copy starts: source and target */
        uint64_t a, end;          /* the window: source bytes [a, end) */
        size_t n;                 /* pieces */
        bool *same;               /* per piece */
        uint8_t *hole;            /* per piece: the target holds no data there */
        struct hash128 *want, *got; /* per piece: the point's and the target's checksums */
        struct sync_delta_target dt;
};

/* Piece k of the window: source bytes [*p, *q). */
static void piece(const struct copy_win *w, size_t k, uint64_t *p, uint64_t *q) {
        uint32_t bs = w->fs->bs;
        uint64_t b0 = w->a / bs;
        *p = k == 0 ? w->a : (b0 + k) * bs;
        *q = MIN(w->end, (b0 + k + 1) * bs);
}

/* Fill w->same. Whole, aligned blocks are compared by checksum without
 * fetching; partial ones are fetched: only when source and target share
 * block boundaries, and then pieces [k0, k1) are target blocks in a row
 * (a partial first piece and a partial last one, short of the disk's
 * end, are not compared). Holes read as zeros: not read. */
static int compare_window(struct copy_win *w) {
        struct fs *fs = w->fs;
        uint32_t bs = fs->bs;
        struct sync_delta_src src = { .fd = w->fd, .bs = bs, .eof_zero = true };
        size_t k0 = w->a % bs != 0, k1 = w->n;
        uint64_t p, q, t0;
        int r;

        memset(w->same, 0, w->n * sizeof *w->same);
        if (w->off_in % bs != w->off_out % bs)
                return 0;
        piece(w, k1 - 1, &p, &q);
        if (q - p != bs && q != w->d->size)
                k1--;
        if (k0 >= k1)
                return 0;
        piece(w, k0, &p, &q);
        t0 = w->off_out + (p - w->off_in);
        src.end = w->off_out + (w->d->size - w->off_in);
        (void)fd_map_holes(w->fd, t0, t0 + (uint64_t)(k1 - k0) * bs, bs, w->hole + k0, NULL);
        for (size_t k = k0; k < k1; k++) {
                piece(w, k, &p, &q);
                if (fs_block_hash(fs, w->d, p / bs, &w->want[k]) < 0)
                        return -EIO;
                if (t0 + (uint64_t)(k - k0) * bs >= w->fsize) /* reads as zeros */
                        w->hole[k] = 1;
        }
        r = sync_delta_hash_parallel(fs->cmp_pool, &src, t0, k1 - k0, w->hole + k0, w->got + k0);
        if (r < 0)
                return r;
        (void)sync_delta_mark(w->want + k0, w->got + k0, k1 - k0, w->same + k0);
        return 0;
}

/* Copy source bytes [p, q) of the window to the target. */
static int copy_run(struct copy_win *w, struct fs_file *src, char *buf, uint64_t p, uint64_t q) {
        uint64_t o = w->off_out + (p - w->off_in), bs = w->fs->bs;
        int r = fs_read_disk(w->fs, src, buf, (size_t)(q - p), p);

        if (r < 0)
                return r;
        r = sync_delta_write(&w->dt, buf, (size_t)(q - p), o);
        fs_verified_forget(w->fs->verified, w->dst->dev, w->dst->ino, o / bs, DIV_ROUND_UP(o + (q - p), bs));
        return r;
}

ssize_t onprem_copy_from_point(struct fs *fs, struct fs_file *src, uint64_t off_in, struct fs_file *dst,
                               uint64_t off_out, size_t len) {
        uint32_t bs = fs->bs;
        const struct ret_disk *d = src->d;
        size_t max_pieces = COPY_WINDOW / bs + 1;
        _cleanup_free_ char *buf = malloc(COPY_WINDOW);
        _cleanup_free_ bool *same = malloc(max_pieces * sizeof *same);
        _cleanup_free_ uint8_t *hole = malloc(max_pieces);
        _cleanup_free_ uint64_t *fetch = malloc(max_pieces * sizeof *fetch);
        _cleanup_free_ struct hash128 *want = malloc(max_pieces * sizeof *want);
        _cleanup_free_ struct hash128 *got = malloc(max_pieces * sizeof *got);
        struct copy_win w = { .fs = fs, .d = d, .dst = dst, .fd = dst->fd, .off_in = off_in, .off_out = off_out, .same = same,
                              .hole = hole, .want = want, .got = got };
        struct stat st;
        uint64_t done = 0;
        int r = 0;

        if (!buf || !same || !hole || !fetch || !want || !got)
                return -ENOMEM;
        if (off_in >= d->size)
                return 0;
        /* The reply's count is 32 bits: a longer copy is cut short, and
         * the caller (cp) goes on from where this one ended. */
        len = (size_t)MIN((uint64_t)len, MIN(d->size - off_in, (uint64_t)COPY_MAX_CALL));
        if (cover(dst, off_out, off_out + len) < 0)
                return -ENOMEM;
        if (fstat(dst->fd, &st) < 0)
                return -errno;
        w.fsize = (uint64_t)st.st_size;
        sync_delta_target_init(&w.dt, dst->fd, -1, false);

        while (done < len && r == 0) {
                size_t nfetch = 0, runs = 0;

                /* One window, along the source's block boundaries. */
                w.a = off_in + done;
                w.end = MIN(off_in + len, (w.a / bs) * bs + COPY_WINDOW);
                w.n = (size_t)(DIV_ROUND_UP(w.end, bs) - w.a / bs);
                if (fs->o.failback_full)
                        memset(same, 0, w.n * sizeof *same);
                else if ((r = compare_window(&w)) < 0)
                        break;
                for (size_t k = 0; k < w.n; k++) {
                        uint64_t p, q;
                        piece(&w, k, &p, &q);
                        atomic_fetch_add(&fs->st.blocks_compared, 1);
                        if (same[k]) {
                                atomic_fetch_add(&fs->st.blocks_skipped, 1);
                                continue;
                        }
                        atomic_fetch_add(&fs->st.blocks_written, 1);
                        atomic_fetch_add(&fs->st.bytes_written, q - p);
                        fetch[nfetch++] = p / bs;
                        if (k == 0 || same[k - 1])
                                runs++;
                }
                /* Scattered changed blocks: fetch them all as one batch
                 * first (merged ranged reads), so each run below finds its
                 * blocks in the cache instead of asking the vault alone. */
                if (runs > 1)
                        fs_fetch_into_cache(fs, src, fetch, nfetch);
                for (size_t k = 0, e; k < w.n && r == 0; k = e) {
                        uint64_t p, q, unused;
                        for (e = k + 1; e < w.n && same[e] == same[k]; e++)
                                ;
                        if (same[k])
                                continue;
                        piece(&w, k, &p, &unused);
                        piece(&w, e - 1, &unused, &q);
                        r = copy_run(&w, src, buf, p, q); /* the run of pieces [k, e) */
                }
                done = w.end - off_in;
        }
        if (r < 0)
                return r;
        if (!dst->trunc_pending && off_out + len > w.fsize && fstat(dst->fd, &st) == 0 &&
            (uint64_t)st.st_size < off_out + len && ftruncate(dst->fd, (off_t)(off_out + len)) < 0)
                return -errno;
        return (ssize_t)len;
}
