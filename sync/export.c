/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Export: a point's disk as raw bytes. Blocks are fetched and verified by
 * the worker pool a batch at a time, and written in order by the caller.
 */
#include <pthread.h>
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
        bool busy, done;
        int err;
        uint64_t bad_block;
};

struct exp {
        struct store *s;
        uint32_t bs;
        pthread_mutex_t lock;   /* protects busy/done/err of batches, codecs */
        pthread_cond_t cond;
        struct store_codec *codecs[EXP_RING];
        size_t n_codecs;
        struct ebatch ring[EXP_RING];
};

static void ebatch_work(void *arg) {
        struct ebatch *b = arg;
        struct exp *x = b->x;
        struct store_codec *c = NULL;
        int err = 0;

        pthread_mutex_lock(&x->lock);
        if (x->n_codecs > 0)
                c = x->codecs[--x->n_codecs];
        pthread_mutex_unlock(&x->lock);
        if (!c && store_codec_new(x->s, &c) < 0)
                err = -ENOMEM;

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
        pthread_mutex_lock(&x->lock);
        if (c && x->n_codecs < EXP_RING)
                x->codecs[x->n_codecs++] = c;
        else
                store_codec_free(c);
        b->err = err;
        b->done = true;
        pthread_cond_broadcast(&x->cond);
        pthread_mutex_unlock(&x->lock);
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
        unsigned slot = 0;
        double t0 = now_monotonic();
        int r, err = 0;

        memset(res, 0, sizeof *res);
        res->bytes = d->size;
        if (x.bs != store_block_size(s))
                return -EBADMSG;
        pthread_mutex_init(&x.lock, NULL);
        pthread_cond_init(&x.cond, NULL);
        per = MAX(EXP_BATCH_BYTES / x.bs, 1u);
        for (unsigned i = 0; i < EXP_RING; i++) {
                x.ring[i].x = &x;
                x.ring[i].h = malloc(per * sizeof(struct hash128));
                x.ring[i].data = malloc(per * x.bs);
                if (!x.ring[i].h || !x.ring[i].data) {
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

        for (;;) {
                struct ebatch *b = &x.ring[slot];
                if (b->busy) {
                        pthread_mutex_lock(&x.lock);
                        while (!b->done)
                                pthread_cond_wait(&x.cond, &x.lock);
                        b->busy = false;
                        pthread_mutex_unlock(&x.lock);
                        if (b->err < 0 && err == 0) {
                                err = b->err;
                                log_error_errno(err, "%s/%s %s: block %llu failed verification", p->vm, p->id,
                                                d->name, (unsigned long long)b->bad_block);
                        }
                        if (err == 0) {
                                err = ebatch_write(&x, b, d, fd, sparse, res);
                                if (err < 0)
                                        log_error_errno(err, "writing the export failed");
                        }
                        progress_update(pg, MIN(d->size, (b->first + b->n) * x.bs));
                }
                if (next >= d->n_blocks || err < 0) {
                        bool any = false;
                        for (unsigned k = 0; k < EXP_RING; k++)
                                any |= x.ring[k].busy;
                        if (!any)
                                break;
                        slot = (slot + 1) % EXP_RING;
                        continue;
                }
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
                b->busy = true;
                b->done = false;
                pool_submit(pool, ebatch_work, b);
                next += b->n;
                slot = (slot + 1) % EXP_RING;
        }
        if (err == 0 && sparse && ftruncate(fd, (off_t)d->size) < 0)
                err = log_error_errno(-errno, "sizing the export failed");
        res->seconds = now_monotonic() - t0;
out:
        progress_free(pg);
        pool_free(pool);
        ret_manifest_free(m);
        for (unsigned i = 0; i < EXP_RING; i++) {
                free(x.ring[i].h);
                free(x.ring[i].data);
        }
        for (size_t i = 0; i < x.n_codecs; i++)
                store_codec_free(x.codecs[i]);
        pthread_mutex_destroy(&x.lock);
        pthread_cond_destroy(&x.cond);
        return err;
}
