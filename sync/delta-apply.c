/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The delta engine, its apply half: fetch the blocks that differ from the
 * vault and write them, zero blocks as holes (zeros on a device). Used by
 * `rpfs failback` (failback-apply.c) and by the writable mount's copies
 * from a point (fs/onprem.c).
 */
#include <fcntl.h>
#include <string.h>

#include "common.h"
#include "sync.h"

void sync_delta_target_init(struct sync_delta_target *t, int fd, int dfd, bool blockdev) {
        memset(t, 0, sizeof *t);
        t->fd = fd;
        t->dfd = dfd;
        t->blockdev = blockdev;
}

int sync_delta_zero(struct sync_delta_target *t, uint64_t off, uint64_t len, uint64_t *ret_written) {
        static const uint8_t zeros[64 << 10];
        int mode = t->blockdev ? FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

        if (len == 0)
                return 0;
        if (!__atomic_load_n(&t->zero_fallback, __ATOMIC_RELAXED)) {
                if (fallocate(t->fd, mode, (off_t)off, (off_t)len) == 0)
                        return 0;
                if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENOTTY)
                        return -errno;
                __atomic_store_n(&t->zero_fallback, true, __ATOMIC_RELAXED);
        }
        for (uint64_t done = 0; done < len;) {
                size_t n = (size_t)MIN(len - done, sizeof zeros);
                int e = pwrite_full(t->fd, zeros, n, off + done);
                if (e < 0)
                        return e;
                done += n;
        }
        if (ret_written)
                *ret_written += len;
        return 0;
}

int sync_delta_write(struct sync_delta_target *t, const void *p, size_t len, uint64_t off) {
        if (t->dfd >= 0 && len >= SYNC_DELTA_DIRECT_MIN && !__atomic_load_n(&t->no_direct, __ATOMIC_RELAXED) &&
            off % 4096 == 0 && len % 4096 == 0 && (uintptr_t)p % 4096 == 0) {
                int e = pwrite_full(t->dfd, p, len, off);
                if (e != -EINVAL)
                        return e;
                __atomic_store_n(&t->no_direct, true, __ATOMIC_RELAXED);
        }
        return pwrite_full(t->fd, p, len, off);
}

int sync_delta_fetch(struct store *s, struct store_codec_pool *codecs, struct store_fetch *v, size_t n,
                     size_t *ret_bad) {
        struct store_codec *c;
        int e;

        *ret_bad = 0;
        if (n == 0)
                return 0;
        c = store_codec_pool_get(codecs);
        if (!c)
                return -ENOMEM;
        e = store_fetch_blocks_sink(s, c, v, n, NULL, NULL);
        store_codec_pool_put(codecs, c);
        if (e < 0)
                return e; /* the first block stands for the batch */
        for (size_t i = 0; i < n; i++)
                if (v[i].result < 0) {
                        *ret_bad = i;
                        return v[i].result;
                }
        return 0;
}
