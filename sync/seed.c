/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Seeds. The checksum file CACHE_DIR/seeds/<xxh64 of the real path>.sums:
 *   header 64 bytes: "RPFSSEED", version u32, block_size u32, size u64,
 *                    mtime_ns u64, inode u64, n_blocks u64, n_sorted u64
 *   positional      n_blocks x hash[16]  (zero hash for zero blocks; the
 *                   file is sparse where those are)
 *   sorted          n_sorted x (hash[16], block u64), by hash
 * It is written to a temp file and renamed, then memory-mapped.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "common.h"
#include "formats.h"
#include "sync.h"

#define SEED_MAGIC "RPFSSEED"
#define SEED_VERSION 1
#define SEED_HDR 64
#define SEED_SORTED_ENTRY 24
#define SEED_HANDLES 4

struct sync_seed {
        char *path;
        uint32_t bs;
        uint64_t size, n_blocks, n_sorted;
        uint8_t *map;
        size_t map_len;
        const uint8_t *pos;     /* positional hashes */
        const uint8_t *sorted;
        pthread_mutex_t lock;   /* protects free handles */
        struct fmt_image *handles[SEED_HANDLES];
        unsigned n_free;
        pthread_cond_t cond;
};


const char *sync_seed_path(const struct sync_seed *s) { return s->path; }

static int cmp_sorted(const void *a, const void *b) { return memcmp(a, b, SEED_SORTED_ENTRY); }

static void header_encode(uint8_t *h, uint32_t bs, uint64_t size, const struct stat *st, uint64_t n_blocks,
                          uint64_t n_sorted) {
        memset(h, 0, SEED_HDR);
        memcpy(h, SEED_MAGIC, 8);
        put_le32(h + 8, SEED_VERSION);
        put_le32(h + 12, bs);
        put_le64(h + 16, size);
        put_le64(h + 24, (uint64_t)st->st_mtim.tv_sec * 1000000000ull + (uint64_t)st->st_mtim.tv_nsec);
        put_le64(h + 32, (uint64_t)st->st_ino);
        put_le64(h + 40, n_blocks);
        put_le64(h + 48, n_sorted);
}

/* Hash every block of img and write the .sums file at path. */
static int compute_sums(struct fmt_image *img, uint32_t bs, const struct stat *st, const char *path,
                        bool progress) {
        uint64_t size = fmt_size(img), n_blocks = DIV_ROUND_UP(size, bs), off = 0;
        size_t batch = MAX((4u << 20) / bs, 1u) * bs;
        _cleanup_free_ uint8_t *buf = malloc(batch);
        _cleanup_free_ uint8_t *sorted = NULL;
        size_t n_sorted = 0, cap_sorted = 0;
        struct tmpfile t;
        uint8_t hdr[SEED_HDR];
        struct progress *pg;
        int fd, r = 0;

        if (!buf)
                return -ENOMEM;
        r = tmpfile_open(&t, path, 0600);
        if (r < 0)
                return r;
        fd = t.fd;
        pg = progress ? progress_new("seed checksums", size) : NULL;
        if (ftruncate(fd, (off_t)(SEED_HDR + n_blocks * STORE_HASH_SIZE)) < 0) {
                r = -errno;
                goto out;
        }
        while (off < size) {
                uint64_t ds, de;
                r = fmt_next_data(img, off, &ds, &de);
                if (r == -ENXIO) {
                        r = 0;
                        break;
                }
                if (r < 0)
                        goto out;
                /* Whole blocks covering the data extent. */
                off = ds / bs * bs;
                de = MIN(DIV_ROUND_UP(de, bs) * bs, DIV_ROUND_UP(size, bs) * bs);
                while (off < de) {
                        size_t len = (size_t)MIN((uint64_t)batch, de - off);
                        size_t avail = (size_t)MIN((uint64_t)len, size - off);
                        r = fmt_read(img, buf, avail, off);
                        if (r < 0)
                                goto out;
                        memset(buf + avail, 0, len - avail);
                        for (size_t k = 0; k < len; k += bs) {
                                struct hash128 h;
                                uint64_t blk = (off + k) / bs;
                                if (mem_is_zero(buf + k, bs))
                                        continue;
                                store_hash(buf + k, bs, &h);
                                r = pwrite_full(fd, h.b, STORE_HASH_SIZE, SEED_HDR + blk * STORE_HASH_SIZE);
                                if (r < 0)
                                        goto out;
                                if (n_sorted == cap_sorted) {
                                        size_t nc = cap_sorted ? 2 * cap_sorted : 4096;
                                        uint8_t *ns = realloc(sorted, nc * SEED_SORTED_ENTRY);
                                        if (!ns) {
                                                r = -ENOMEM;
                                                goto out;
                                        }
                                        sorted = ns;
                                        cap_sorted = nc;
                                }
                                memcpy(sorted + n_sorted * SEED_SORTED_ENTRY, h.b, STORE_HASH_SIZE);
                                put_le64(sorted + n_sorted * SEED_SORTED_ENTRY + 16, blk);
                                n_sorted++;
                        }
                        off += len;
                        progress_update(pg, MIN(off, size));
                }
        }
        if (n_sorted)
                qsort(sorted, n_sorted, SEED_SORTED_ENTRY, cmp_sorted);
        r = pwrite_full(fd, sorted ? sorted : buf, n_sorted * SEED_SORTED_ENTRY,
                        SEED_HDR + n_blocks * STORE_HASH_SIZE);
        if (r < 0)
                goto out;
        header_encode(hdr, bs, size, st, n_blocks, n_sorted);
        r = pwrite_full(fd, hdr, SEED_HDR, 0);
        if (r < 0)
                goto out;
        r = tmpfile_commit(&t, 0);
out:
        progress_free(pg);
        if (r < 0)
                tmpfile_abort(&t);
        return r;
}

/* Map path if it describes this seed as it is now. */
static int map_sums(struct sync_seed *s, const char *path, const struct stat *st) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat fst;
        uint8_t want[SEED_HDR];
        uint8_t *m;
        uint64_t n_blocks, n_sorted;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &fst) < 0)
                return -errno;
        if ((uint64_t)fst.st_size < SEED_HDR)
                return -EBADMSG;
        m = mmap(NULL, (size_t)fst.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
                return -errno;
        n_blocks = get_le64(m + 40);
        n_sorted = get_le64(m + 48);
        header_encode(want, s->bs, s->size, st, n_blocks, n_sorted);
        if (memcmp(m, want, SEED_HDR) != 0 || n_blocks != DIV_ROUND_UP(s->size, s->bs) ||
            (uint64_t)fst.st_size != SEED_HDR + n_blocks * STORE_HASH_SIZE + n_sorted * SEED_SORTED_ENTRY) {
                munmap(m, (size_t)fst.st_size);
                return -ESTALE;
        }
        s->map = m;
        s->map_len = (size_t)fst.st_size;
        s->n_blocks = n_blocks;
        s->n_sorted = n_sorted;
        s->pos = m + SEED_HDR;
        s->sorted = s->pos + n_blocks * STORE_HASH_SIZE;
        return 0;
}

int sync_seed_open(const char *path, uint32_t bs, const char *cache_dir, bool progress, struct sync_seed **ret) {
        char real[PATH_MAX], dir[PATH_MAX], sums[PATH_MAX], why[256] = "";
        struct sync_seed *s;
        struct stat st;
        int r;

        if (!realpath(path, real) || stat(real, &st) < 0) {
                r = -errno;
                log_error_errno(r, "seed %s", path);
                return r;
        }
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        s->bs = bs;
        s->path = strdup(path);
        if (!s->path) {
                r = -ENOMEM;
                goto fail;
        }
        for (unsigned i = 0; i < SEED_HANDLES; i++) {
                r = fmt_open(real, &s->handles[i], why, sizeof why);
                if (r < 0) {
                        log_error("seed %s: %s", path, *why ? why : strerror(-r));
                        goto fail;
                }
                s->n_free++;
        }
        s->size = fmt_size(s->handles[0]);

        if (snprintf(dir, sizeof dir, "%s/seeds", cache_dir) >= (int)sizeof dir) {
                r = -ENAMETOOLONG;
                goto fail;
        }
        r = mkdir_p(dir, 0700);
        if (r < 0) {
                log_error_errno(r, "%s", dir);
                goto fail;
        }
        if (snprintf(sums, sizeof sums, "%s/%016llx-%u.sums", dir,
                     (unsigned long long)store_hash64(real, strlen(real)), bs) >= (int)sizeof sums) {
                r = -ENAMETOOLONG;
                goto fail;
        }
        if (map_sums(s, sums, &st) < 0) {
                log_info("computing checksums of seed %s", path);
                r = compute_sums(s->handles[0], bs, &st, sums, progress);
                if (r < 0) {
                        log_error_errno(r, "seed %s: computing checksums failed", path);
                        goto fail;
                }
                r = map_sums(s, sums, &st);
                if (r < 0) {
                        log_error_errno(r, "seed %s: checksum file %s unusable", path, sums);
                        goto fail;
                }
        }
        *ret = s;
        return 0;
fail:
        sync_seed_free(s);
        return r;
}

void sync_seed_free(struct sync_seed *s) {
        if (!s)
                return;
        for (unsigned i = 0; i < SEED_HANDLES; i++)
                fmt_close(s->handles[i]);
        if (s->map)
                munmap(s->map, s->map_len);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        free(s->path);
        free(s);
}

static int read_block(struct sync_seed *s, uint64_t blk, const struct hash128 *h, void *buf) {
        struct fmt_image *img;
        uint64_t off = blk * s->bs;
        size_t len = (size_t)MIN((uint64_t)s->bs, s->size - off);
        struct hash128 got;
        int r;

        pthread_mutex_lock(&s->lock);
        while (s->n_free == 0)
                pthread_cond_wait(&s->cond, &s->lock);
        img = s->handles[--s->n_free];
        pthread_mutex_unlock(&s->lock);

        r = fmt_read(img, buf, len, off);

        pthread_mutex_lock(&s->lock);
        s->handles[s->n_free++] = img;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        if (r < 0)
                return r;
        memset((uint8_t *)buf + len, 0, s->bs - len);
        store_hash(buf, s->bs, &got);
        return memcmp(&got, h, sizeof got) == 0 ? 0 : -ESTALE;
}

int sync_seed_read(struct sync_seed *s, uint64_t i, const struct hash128 *h, void *buf) {
        uint64_t lo = 0, hi = s->n_sorted;

        if (i < s->n_blocks && memcmp(s->pos + i * STORE_HASH_SIZE, h->b, STORE_HASH_SIZE) == 0 &&
            read_block(s, i, h, buf) == 0)
                return 0;
        /* Equal checksums may repeat: take the first copy that still
         * verifies. */
        for (uint64_t k = store_hash_lower_bound(s->sorted, SEED_SORTED_ENTRY, lo, hi, h); k < hi; k++) {
                const uint8_t *e = s->sorted + k * SEED_SORTED_ENTRY;
                uint64_t blk;
                if (memcmp(e, h->b, STORE_HASH_SIZE) != 0)
                        break;
                blk = get_le64(e + 16);
                if (blk != i && blk < s->n_blocks && read_block(s, blk, h, buf) == 0)
                        return 0;
        }
        return -ENOENT;
}

bool sync_seed_has(struct sync_seed *s, uint64_t i, const struct hash128 *h) {
        uint64_t lo = 0, hi = s->n_sorted;

        if (i < s->n_blocks && memcmp(s->pos + i * STORE_HASH_SIZE, h->b, STORE_HASH_SIZE) == 0)
                return true;
        lo = store_hash_lower_bound(s->sorted, SEED_SORTED_ENTRY, lo, hi, h);
        return lo < hi && memcmp(s->sorted + lo * SEED_SORTED_ENTRY, h->b, STORE_HASH_SIZE) == 0;
}
