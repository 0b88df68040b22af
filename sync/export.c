/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Export: a point's disk as raw bytes. Blocks are fetched and verified by
 * the worker pool a batch at a time, and written in order by the caller.
 */
#include <string.h>

#include "common.h"
#include "sync.h"

#define EXP_BATCH_BYTES (4u << 20)
#define EXP_RING 6

struct exp;

struct ebatch {
        struct exp *x;
        uint64_t first;
        size_t n;
        struct hash128 *h;
        uint8_t *data;
        uint64_t bad_block;     /* the block that failed, with the batch's error */
};

struct exp {
        struct store *s;
        uint32_t bs;
        struct store_codec_pool *codecs; /* keeps EXP_RING idle */
        struct ring *ring;      /* EXP_RING struct ebatch */
};

static void ebatch_work(void *arg) {
        struct ebatch *b = arg;
        struct exp *x = b->x;
        struct store_codec *c = store_codec_pool_get(x->codecs);
        int err = c ? 0 : -ENOMEM;

        /* One batched fetch per batch: blobs next to each other in a pack
         * come with one ranged read (what makes remote vaults fast). */
        if (err == 0) {
                struct store_fetch *fv = malloc(MAX(b->n, 1) * sizeof *fv);
                size_t nf = 0;
                if (!fv)
                        err = -ENOMEM;
                for (size_t i = 0; err == 0 && i < b->n; i++)
                        if (!hash_is_zero(&b->h[i]))
                                fv[nf++] = (struct store_fetch){ .h = b->h[i], .buf = b->data + i * x->bs };
                if (err == 0 && nf > 0)
                        err = store_fetch_blocks(x->s, c, fv, nf);
                for (size_t k = 0; err == 0 && k < nf; k++)
                        if (fv[k].result < 0) {
                                err = fv[k].result;
                                b->bad_block = b->first + (size_t)((uint8_t *)fv[k].buf - b->data) / x->bs;
                        }
                free(fv);
        }
        store_codec_pool_put(x->codecs, c);
        ring_done(x->ring, b, err);
}

static int ebatch_write(struct exp *x, struct ebatch *b, const struct ret_disk *d, int fd, bool sparse,
                        struct sync_export_result *res) {
        static const uint8_t zeros[64 << 10];
        for (size_t i = 0; i < b->n; i++) {
                uint64_t off = (b->first + i) * x->bs;
                size_t len = (size_t)MIN((uint64_t)x->bs, d->size - off);
                int r;

                if (hash_is_zero(&b->h[i])) {
                        if (sparse)
                                continue;
                        for (size_t done = 0; done < len;) {
                                size_t n = MIN(len - done, sizeof zeros);
                                r = write_full(fd, zeros, n);
                                if (r < 0)
                                        return r;
                                done += n;
                        }
                        continue;
                }
                r = sparse ? pwrite_full(fd, b->data + i * x->bs, len, off) : write_full(fd, b->data + i * x->bs, len);
                if (r < 0)
                        return r;
                res->data_bytes += len;
        }
        return 0;
}

int sync_export(struct store *s, const struct ret_point *p, const struct ret_disk *d, int fd, bool sparse,
                bool progress, struct sync_export_result *res) {
        struct ret_manifest *m = NULL;
        struct pool *pool = NULL;
        struct progress *pg = NULL;
        struct exp x = { .s = s, .bs = p->block_size };
        size_t per;
        uint64_t next = 0;
        double t0 = now_monotonic();
        int r, err = 0;

        memset(res, 0, sizeof *res);
        res->bytes = d->size;
        if (x.bs != store_block_size(s))
                return -EBADMSG;
        err = store_codec_pool_new(s, EXP_RING, &x.codecs);
        if (err >= 0)
                err = ring_new(EXP_RING, sizeof(struct ebatch), &x.ring);
        if (err < 0)
                goto out;
        per = MAX(EXP_BATCH_BYTES / x.bs, 1u);
        for (unsigned i = 0; i < EXP_RING; i++) {
                struct ebatch *b = ring_slot(x.ring, i);
                b->x = &x;
                b->h = ring_own(x.ring, malloc(per * sizeof(struct hash128)));
                b->data = ring_own(x.ring, alloc_large(per * x.bs));
                if (!b->h || !b->data) {
                        err = -ENOMEM;
                        goto out;
                }
        }
        r = ret_manifest_open(s, d, &m);
        if (r < 0) {
                err = r;
                goto out;
        }
        r = pool_new(0, EXP_RING, &pool);
        if (r < 0) {
                err = r;
                goto out;
        }
        if (progress)
                pg = progress_new("export", d->size);

        /* A ring of batches, fetched by the pool, written in order. */
        for (;;) {
                struct ebatch *b;
                if (ring_full(x.ring) || next >= d->n_blocks || err < 0) {
                        int be;
                        b = ring_take(x.ring, &be);
                        if (!b)
                                break;
                        if (be < 0 && err == 0) {
                                err = be;
                                log_error_errno(err, "%s/%s %s: block %llu failed verification", p->vm, p->id,
                                                d->name, (unsigned long long)b->bad_block);
                        }
                        if (err == 0) {
                                err = ebatch_write(&x, b, d, fd, sparse, res);
                                if (err < 0)
                                        log_error_errno(err, "writing the export failed");
                        }
                        progress_update(pg, MIN(d->size, (b->first + b->n) * x.bs));
                        ring_release(x.ring, b);
                        continue;
                }
                b = ring_acquire(x.ring);
                b->first = next;
                b->n = (size_t)MIN((uint64_t)per, d->n_blocks - next);
                for (size_t i = 0; i < b->n; i++) {
                        r = ret_manifest_get(m, next + i, &b->h[i]);
                        if (r < 0) {
                                err = log_error_errno(r, "%s/%s %s: manifest unreadable", p->vm, p->id, d->name);
                                break;
                        }
                }
                if (err < 0)
                        continue;
                ring_submit(x.ring, b, pool, ebatch_work);
                next += b->n;
        }
        if (err == 0 && sparse && ftruncate(fd, (off_t)d->size) < 0)
                err = log_error_errno(-errno, "sizing the export failed");
        res->seconds = now_monotonic() - t0;
out:
        progress_free(pg);
        pool_free(pool);
        ret_manifest_free(m);
        ring_free(x.ring);
        store_codec_pool_free(x.codecs);
        return err;
}
