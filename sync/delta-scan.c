/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The delta engine, its compare half: checksums of a target's blocks, for
 * `rpfs failback` (the scan, the sample, --verify, local copies) and for
 * the writable mount (a copy from a point compared window by window).
 *
 * A target is read with pread into a page-aligned buffer that is reused
 * piece after piece, so that it stays in the CPU's cache while it is
 * hashed. A mapping of the file (no copy) was faster on one host and 6-10x
 * slower on another, where the first touch of each mapped page and the TLB
 * shootdowns of munmap cost more than the hashing (issue 15: 4 MiB mmap
 * windows + XXH3 1.0-1.8 s, pread + XXH3 0.17 s, cat 0.13 s, for one warm
 * 2 GiB file); pread is never slow. A misaligned buffer runs 3-5x slower
 * on some hosts (AMD EPYC VM: 1-2 against 5.5 GB/s). Blocks the caller
 * knows to be holes are not read at all: reading one would only fill the
 * page cache with zeroed pages.
 */
#include <pthread.h>
#include <string.h>

#include "common.h"
#include "sync.h"

/* Each pool thread keeps one buffer for sync_delta_hash_parallel(). */
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;

static void buf_key_init(void) {
        (void)pthread_key_create(&buf_key, free);
}

static void *thread_buf(void) {
        void *p;

        pthread_once(&buf_once, buf_key_init);
        p = pthread_getspecific(buf_key);
        if (!p) {
                p = alloc_large(SYNC_DELTA_PIECE_BYTES);
                if (p && pthread_setspecific(buf_key, p) != 0) {
                        free(p);
                        p = NULL;
                }
        }
        return p;
}

void sync_delta_hash_block(const void *p, size_t bs, struct hash128 *ret) {
        if (mem_is_zero(p, bs))
                memset(ret, 0, sizeof *ret);
        else
                store_hash(p, bs, ret);
}

/* len bytes of the target at off into buf, then zeros up to want bytes:
 * bytes at or past src->end are not read; a short read is zeros or -EIO. */
static int read_piece(const struct sync_delta_src *src, uint8_t *buf, uint64_t off, size_t want) {
        size_t len = (size_t)MIN((uint64_t)want, src->end - off), got = 0;

        while (got < len) {
                ssize_t r = pread(src->fd, buf + got, len - got, (off_t)(off + got));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0) {
                        if (!src->eof_zero)
                                return -EIO; /* the target shrank under us */
                        break;
                }
                got += (size_t)r;
        }
        if (got < want)
                memset(buf + got, 0, want - got);
        return 0;
}

static bool no_data(const struct sync_delta_src *src, uint64_t off, const uint8_t *hole, size_t k) {
        return (hole && hole[k]) || off + (uint64_t)k * src->bs >= src->end;
}

int sync_delta_hash(const struct sync_delta_src *src, uint64_t off, size_t n, const uint8_t *hole, void *buf,
                    size_t buf_len, struct hash128 *got) {
        uint32_t bs = src->bs;
        size_t per = buf_len / bs;

        if (per == 0)
                return -EINVAL;
        for (size_t k = 0; k < n;) {
                size_t e = k + 1;
                int r;
                if (no_data(src, off, hole, k)) {
                        memset(&got[k], 0, sizeof got[k]);
                        k++;
                        continue;
                }
                while (e < n && e - k < per && !no_data(src, off, hole, e))
                        e++;
                r = read_piece(src, buf, off + (uint64_t)k * bs, (e - k) * bs);
                if (r < 0)
                        return r;
                for (size_t i = k; i < e; i++)
                        sync_delta_hash_block((uint8_t *)buf + (i - k) * bs, bs, &got[i]);
                k = e;
        }
        return 0;
}

/* ---- on a pool ---- */

struct hash_job {
        const struct sync_delta_src *src;
        uint64_t off;
        size_t n;
        const uint8_t *hole;
        struct hash128 *got;
        int *err;
        unsigned *pending;
        pthread_mutex_t *lock;
        pthread_cond_t *done;
};

static void hash_job_run(void *arg) {
        struct hash_job *j = arg;
        void *buf = thread_buf();
        int r = buf ? sync_delta_hash(j->src, j->off, j->n, j->hole, buf, SYNC_DELTA_PIECE_BYTES, j->got) : -ENOMEM;

        pthread_mutex_lock(j->lock);
        if (r < 0 && *j->err == 0)
                *j->err = r;
        if (--*j->pending == 0)
                pthread_cond_signal(j->done);
        pthread_mutex_unlock(j->lock);
}

#define MAX_SLICES 16

int sync_delta_hash_parallel(struct pool *pool, const struct sync_delta_src *src, uint64_t off, size_t n,
                             const uint8_t *hole, struct hash128 *got) {
        pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        pthread_cond_t done = PTHREAD_COND_INITIALIZER;
        struct hash_job jobs[MAX_SLICES];
        unsigned t = pool ? MIN(pool_threads(pool), (unsigned)MAX_SLICES) : 1, m = 0, pending;
        size_t per;
        int err = 0;

        /* Reading and hashing the target is the work: one slice per
         * thread, unless the range is too small to be worth it. */
        if (t <= 1 || n < 4u * t) {
                void *buf = thread_buf();
                return buf ? sync_delta_hash(src, off, n, hole, buf, SYNC_DELTA_PIECE_BYTES, got) : -ENOMEM;
        }
        per = DIV_ROUND_UP(n, t);
        for (size_t k = 0; k < n; k += per)
                jobs[m++] = (struct hash_job){ src, off + (uint64_t)k * src->bs, MIN(per, n - k), hole ? hole + k : NULL,
                                               got + k, &err, &pending, &lock, &done };
        pending = m;
        for (unsigned i = 0; i < m; i++)
                if (pool_submit(pool, hash_job_run, &jobs[i]) < 0)
                        hash_job_run(&jobs[i]); /* cannot queue: do it here */
        pthread_mutex_lock(&lock);
        while (pending > 0)
                pthread_cond_wait(&done, &lock);
        pthread_mutex_unlock(&lock);
        return err;
}

bool sync_delta_block_is(int fd, uint32_t bs, uint64_t off, size_t len, const struct hash128 *h, void *buf) {
        struct sync_delta_src src = { .fd = fd, .bs = bs, .end = off + len, .eof_zero = true };
        struct hash128 got;

        if (read_piece(&src, buf, off, bs) < 0)
                return false;
        if (hash_is_zero(h))
                return mem_is_zero(buf, bs);
        store_hash(buf, bs, &got);
        return memcmp(&got, h, sizeof got) == 0;
}

size_t sync_delta_mark(const struct hash128 *want, const struct hash128 *got, size_t n, bool *same) {
        size_t differ = 0;

        for (size_t k = 0; k < n; k++) {
                same[k] = memcmp(&want[k], &got[k], sizeof want[k]) == 0;
                differ += !same[k];
        }
        return differ;
}
