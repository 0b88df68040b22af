/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Replication pipeline. The calling thread reads the source into a ring
 * of batches (BATCH_BLOCKS blocks each) and hands each batch to the worker
 * pool, which hashes every block, skips zero and already-stored blocks and
 * compresses the rest. The calling thread then collects batches in disk
 * order: the manifest gets every checksum, the store writer gets the new
 * blobs. The ring bounds memory: RING batches of data plus their encodings,
 * whatever the disk size.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "formats.h"
#include "replicate_i.h"
#include "sync.h"

#define BATCH_BYTES (4u << 20)
#define RING 8

enum { BLK_DATA = 0, BLK_HOLE, BLK_ZERO, BLK_KNOWN, BLK_NEW };

struct rep;

struct batch {
        struct rep *rep;
        uint64_t first;         /* first block number */
        size_t n;               /* blocks in this batch */
        uint8_t *data;          /* n * bs */
        uint8_t *kind;          /* BLK_* per block */
        struct hash128 *h;
        uint8_t *enc;           /* n * bound */
        uint32_t *enc_len;
};

struct rep {
        struct store *s;
        struct store_writer *w;
        uint32_t bs;
        size_t bound;           /* store_encode_bound(bs) */
        struct store_codec_pool *codecs; /* keeps RING idle */
        struct ring *ring;      /* RING struct batch */
        struct rep_changed *chg; /* --changed: which blocks to read, else NULL */
};

/* Worker: classify, hash and compress one batch. */
static void batch_work(void *arg) {
        struct batch *b = arg;
        struct rep *r = b->rep;
        struct store_codec *c = store_codec_pool_get(r->codecs);
        int err = c ? 0 : -ENOMEM;

        for (size_t i = 0; i < b->n && err == 0; i++) {
                const uint8_t *p = b->data + i * r->bs;
                long n;

                if (b->kind[i] == BLK_ZERO || b->kind[i] == BLK_KNOWN)
                        continue; /* settled from the base (--changed) */
                if (b->kind[i] == BLK_HOLE || mem_is_zero(p, r->bs)) {
                        b->kind[i] = BLK_ZERO;
                        memset(&b->h[i], 0, sizeof b->h[i]);
                        continue;
                }
                store_hash(p, r->bs, &b->h[i]);
                if (store_writer_known(r->w, &b->h[i])) {
                        b->kind[i] = BLK_KNOWN;
                        continue;
                }
                n = store_encode(c, STORE_KIND_DATA, p, r->bs, b->enc + i * r->bound, r->bound);
                if (n < 0)
                        err = (int)n;
                else {
                        b->enc_len[i] = (uint32_t)n;
                        b->kind[i] = BLK_NEW;
                }
        }
        store_codec_pool_put(r->codecs, c);
        ring_done(r->ring, b, err);
}

/* A batch of nothing but holes: no work for the pool. */
static void batch_holes(void *arg) {
        struct batch *b = arg;
        memset(b->h, 0, b->n * sizeof *b->h);
        memset(b->kind, BLK_ZERO, b->n);
        ring_done(b->rep->ring, b, 0);
}

/* A batch settled from the base alone (--changed): nothing to do. */
static void batch_settled(void *arg) {
        struct batch *b = arg;
        ring_done(b->rep->ring, b, 0);
}

/* Tail of a partial last block past size: zero it. */
static void batch_zero_tail(struct rep *r, struct batch *b, uint64_t size) {
        uint64_t boff = (b->first + b->n - 1) * r->bs;
        if (b->n > 0 && boff + r->bs > size && b->kind[b->n - 1] != BLK_HOLE)
                memset(b->data + (b->n - 1) * r->bs + (size - boff), 0, (size_t)(boff + r->bs - size));
}

/* --changed: read the runs of blocks touching changed ranges; take the
 * others' checksums from the base (BLK_ZERO or BLK_KNOWN). */
static int batch_fill_changed(struct rep *r, struct batch *b, struct fmt_image *img, uint64_t *read_bytes) {
        uint64_t size = fmt_size(img);
        int e;

        for (size_t k = 0; k < b->n; k++) {
                e = rep_changed_block(r->chg, b->first + k, &b->h[k]);
                if (e < 0)
                        return e;
                b->kind[k] = e ? BLK_DATA : mem_is_zero(&b->h[k], sizeof b->h[k]) ? BLK_ZERO : BLK_KNOWN;
        }
        for (size_t k = 0; k < b->n;) {
                size_t j = k;
                while (j < b->n && b->kind[j] == BLK_DATA)
                        j++;
                if (j > k) {
                        uint64_t off = (b->first + k) * r->bs, end = MIN(size, (b->first + j) * r->bs);
                        e = fmt_read(img, b->data + k * r->bs, (size_t)(end - off), off);
                        if (e < 0)
                                return e;
                        *read_bytes += end - off;
                }
                k = j + 1;
        }
        batch_zero_tail(r, b, size);
        return 0;
}

/* Fill batch b with blocks [first, first + n) of img, marking blocks that
 * lie wholly in unallocated regions as holes (not read at all). */
static int batch_fill(struct rep *r, struct batch *b, struct fmt_image *img, uint64_t first, size_t n,
                      uint64_t *read_bytes) {
        uint64_t size = fmt_size(img), off = first * r->bs, end = MIN(size, (first + n) * r->bs);
        int e;

        b->first = first;
        b->n = n;
        if (r->chg)
                return batch_fill_changed(r, b, img, read_bytes);
        memset(b->kind, BLK_HOLE, n);
        while (off < end) {
                uint64_t ds, de;
                e = fmt_next_data(img, off, &ds, &de);
                if (e == -ENXIO || (e >= 0 && ds >= end))
                        break;
                if (e < 0)
                        return e;
                de = MIN(de, end);
                /* Read whole blocks around [ds, de). */
                ds = ds / r->bs * r->bs;
                de = MIN(DIV_ROUND_UP(de, r->bs) * r->bs, end);
                if (ds < off)
                        ds = off;
                e = fmt_read(img, b->data + (ds - first * r->bs), (size_t)(de - ds), ds);
                if (e < 0)
                        return e;
                *read_bytes += de - ds;
                for (uint64_t k = (ds - first * r->bs) / r->bs; k < DIV_ROUND_UP(de - first * r->bs, r->bs); k++)
                        b->kind[k] = BLK_DATA;
                off = DIV_ROUND_UP(de, r->bs) * r->bs;
        }
        /* Zero the tail of a partial last block. Holes are never looked
         * at (the worker takes them as zero blocks): no need to clear them. */
        for (size_t k = 0; k < n; k++) {
                uint64_t boff = (first + k) * r->bs;
                if (b->kind[k] != BLK_HOLE && boff + r->bs > size)
                        memset(b->data + k * r->bs + (size - boff), 0, (size_t)(boff + r->bs - size));
        }
        return 0;
}

static int batch_collect(struct rep *r, struct batch *b, struct ret_manifest_writer *m,
                         struct ret_disk *d, struct sync_replicate_result *res) {
        int e;
        for (size_t i = 0; i < b->n; i++) {
                e = ret_manifest_writer_add(m, &b->h[i]);
                if (e < 0)
                        return e;
                if (b->kind[i] != BLK_ZERO)
                        d->data_blocks++;
                if (b->kind[i] == BLK_NEW) {
                        e = store_writer_add(r->w, &b->h[i], b->enc + i * r->bound, b->enc_len[i]);
                        if (e < 0)
                                return e;
                        if (e > 0)
                                res->new_blocks++;
                }
        }
        return 0;
}

static int replicate_disk(struct rep *r, struct pool *pool, struct fmt_image *img, struct ret_disk *d,
                          struct store_codec *mc, struct progress *pg, uint64_t *pg_base,
                          struct sync_replicate_result *res) {
        struct ret_manifest_writer *m = NULL;
        uint64_t size = fmt_size(img), n_blocks = DIV_ROUND_UP(size, r->bs);
        size_t per = MAX(BATCH_BYTES / r->bs, 1u);
        uint64_t next = 0;
        int e, err = 0;

        d->size = size;
        d->n_blocks = n_blocks;
        e = ret_manifest_writer_new(r->w, mc, &m);
        if (e < 0)
                return e;

        /* Ring: fill and submit batch after batch; while it is full (and
         * at the end, or after an error), collect the oldest: that keeps
         * disk order. */
        for (;;) {
                struct batch *b;
                if (ring_full(r->ring) || next >= n_blocks || err < 0) {
                        b = ring_take(r->ring, &e);
                        if (!b)
                                break;
                        if (e >= 0 && err == 0)
                                e = batch_collect(r, b, m, d, res);
                        if (e < 0 && err == 0)
                                err = e;
                        progress_update(pg, *pg_base + MIN(size, (b->first + b->n) * r->bs));
                        ring_release(r->ring, b);
                        continue;
                }
                b = ring_acquire(r->ring);
                size_t n = (size_t)MIN((uint64_t)per, n_blocks - next);
                e = batch_fill(r, b, img, next, n, &res->read_bytes);
                if (e < 0) {
                        err = e;
                        continue;
                }
                if (memchr(b->kind, BLK_DATA, n))
                        ring_submit(r->ring, b, pool, batch_work);
                else if (r->chg)
                        ring_submit(r->ring, b, NULL, batch_settled);
                else
                        ring_submit(r->ring, b, NULL, batch_holes); /* settled here */
                next += n;
        }
        if (err == 0)
                err = ret_manifest_writer_finish(m, d);
        ret_manifest_writer_free(m);
        *pg_base += size;
        return err;
}

/* Log a vault failure, with the vault kind's explanation when it has one. */
static int vault_error(struct store *s, int r, const char *what) {
        const char *hint = store_error_hint(store_url(s), r);
        if (hint)
                log_error("%s: %s: %s", store_url(s), what, hint);
        else
                log_error_errno(r, "%s: %s", store_url(s), what);
        return r;
}

static void rep_free(struct rep *r) {
        ring_free(r->ring);
        store_codec_pool_free(r->codecs);
}

static int rep_init(struct rep *r, struct store *s, struct store_writer *w) {
        size_t per;
        int e;

        memset(r, 0, sizeof *r);
        r->s = s;
        r->w = w;
        r->bs = store_block_size(s);
        r->bound = store_encode_bound(r->bs);
        e = store_codec_pool_new(s, RING, &r->codecs);
        if (e >= 0)
                e = ring_new(RING, sizeof(struct batch), &r->ring);
        if (e < 0)
                return e;
        per = MAX(BATCH_BYTES / r->bs, 1u);
        for (unsigned i = 0; i < RING; i++) {
                struct batch *b = ring_slot(r->ring, i);
                b->rep = r;
                b->data = ring_own(r->ring, alloc_large(per * r->bs));
                b->kind = ring_own(r->ring, malloc(per));
                b->h = ring_own(r->ring, malloc(per * sizeof *b->h));
                b->enc = ring_own(r->ring, alloc_large(per * r->bound));
                b->enc_len = ring_own(r->ring, malloc(per * sizeof *b->enc_len));
                if (!b->data || !b->kind || !b->h || !b->enc || !b->enc_len)
                        return -ENOMEM;
        }
        return 0;
}

/* Open every source image of o, and fill pt's disk list from them. */
static int open_images(const struct sync_replicate_opts *o, struct ret_point *pt, struct fmt_image ***imgsp,
                       uint64_t *disk_bytes) {
        struct fmt_image **imgs = calloc(o->n_disks, sizeof *imgs);
        int r;

        *imgsp = imgs;
        pt->disks = calloc(o->n_disks, sizeof *pt->disks);
        if (!imgs || !pt->disks)
                return -ENOMEM;
        for (size_t i = 0; i < o->n_disks; i++) {
                char why[256] = "";
                r = fmt_open(o->disks[i].path, &imgs[i], why, sizeof why);
                if (r < 0) {
                        log_error("%s: %s", o->disks[i].path, *why ? why : strerror(-r));
                        return r;
                }
                snprintf(pt->disks[i].name, sizeof pt->disks[i].name, "%s", o->disks[i].name);
                snprintf(pt->disks[i].format, sizeof pt->disks[i].format, "%s", fmt_kind_name(fmt_kind(imgs[i])));
                *disk_bytes += fmt_size(imgs[i]);
        }
        pt->n_disks = o->n_disks;
        return 0;
}

/* Flush the writer session and commit pt, refusing when the session
 * lapsed in between (the blocks it wrote may be gone). */
static int commit_point(struct store *s, struct store_writer *w, const struct ret_point *pt, double t0,
                        struct sync_replicate_result *res) {
        int r = store_writer_flush(w);
        log_debug("replicate: vault flushed after %.2fs", now_monotonic() - t0);
        if (r < 0)
                return vault_error(s, r, r == -ESTALE ? "the writer session lapsed (a garbage collection may have ended it); not committing"
                                                      : "writing to the vault failed");
        store_writer_stats(w, &res->stored_bytes, NULL);
        r = store_writer_check(w);
        if (r < 0)
                return vault_error(s, r, "the writer session lapsed (a garbage collection may have ended it); not committing");
        r = ret_point_commit(s, pt);
        if (r < 0 && r != -EEXIST) {
                char what[200];
                snprintf(what, sizeof what, "committing point %s/%s failed", pt->vm, pt->id);
                vault_error(s, r, what);
        }
        return r;
}

/* Replicate every disk of pt, in order, through one pipeline. */
static int replicate_disks(struct rep *rep, struct pool *pool, const struct sync_replicate_opts *o,
                           struct fmt_image **imgs, struct ret_point *pt, struct store_codec *mc,
                           struct progress *pg, struct sync_replicate_result *res) {
        uint64_t pg_base = 0;

        for (size_t i = 0; i < o->n_disks; i++) {
                int r = replicate_disk(rep, pool, imgs[i], &pt->disks[i], mc, pg, &pg_base, res);
                if (r < 0) {
                        const char *why = fmt_last_error(imgs[i]);
                        if (why && *why)
                                log_error("%s: %s", o->disks[i].path, why);
                        else
                                log_error_errno(r, "%s: replicating this disk failed", o->disks[i].path);
                        return r;
                }
                res->data_blocks += pt->disks[i].data_blocks;
        }
        return 0;
}

int sync_replicate(struct store *s, const struct sync_replicate_opts *o, struct sync_replicate_result *res) {
        struct fmt_image **imgs = NULL;
        struct ret_point pt = { 0 };
        struct ret_point *existing = NULL;
        struct store_writer *w = NULL;
        struct store_codec *mc = NULL;
        struct pool *pool = NULL;
        struct progress *pg = NULL;
        struct rep_changed *chg = NULL;
        struct rep rep;
        bool rep_ok = false;
        double t0 = now_monotonic();
        int r;

        memset(res, 0, sizeof *res);
        point_id_format(o->time, res->id);
        snprintf(pt.vm, sizeof pt.vm, "%s", o->vm);
        snprintf(pt.id, sizeof pt.id, "%s", res->id);
        pt.time = o->time;
        pt.app = o->app;
        pt.group = (char *)o->group;
        pt.onprem_from = (char *)o->onprem_from;
        pt.block_size = store_block_size(s);

        /* Refuse early: the ID is taken. (The exclusive commit below is
         * what makes this safe against a concurrent writer.) */
        r = ret_point_load(s, o->vm, res->id, &existing);
        if (r >= 0) {
                ret_point_free(existing);
                return -EEXIST;
        }

        /* Open every image before writing anything: bad input leaves the
         * vault untouched. */
        r = open_images(o, &pt, &imgs, &res->disk_bytes);
        if (r < 0)
                goto out;
        if (o->changed || o->base) { /* --changed, or an overlay with --base */
                r = rep_changed_open(s, o, imgs[0], &chg, &res->read_bytes);
                if (r < 0)
                        goto out;
        }

        r = store_writer_new(s, &w);
        if (r < 0) {
                vault_error(s, r, "starting a writer session failed");
                goto out;
        }
        r = store_codec_new(s, &mc);
        if (r < 0)
                goto out;
        r = rep_init(&rep, s, w);
        rep_ok = true;
        rep.chg = chg;
        if (r < 0)
                goto out;
        r = pool_new(o->threads, RING, &pool);
        if (r < 0)
                goto out;
        if (o->progress)
                pg = progress_new("replicate", res->disk_bytes);

        r = replicate_disks(&rep, pool, o, imgs, &pt, mc, pg, res);
        if (r < 0)
                goto out;
        progress_free(pg);
        pg = NULL;
        log_debug("replicate: pipeline done after %.2fs", now_monotonic() - t0);
        log_debug("replicate: read %" PRIu64 " bytes from the sources", res->read_bytes);

        r = commit_point(s, w, &pt, t0, res);
        if (r < 0)
                goto out;
        res->seconds = now_monotonic() - t0;
out:
        progress_free(pg);
        pool_free(pool);
        if (rep_ok)
                rep_free(&rep);
        store_codec_free(mc);
        store_writer_free(w);
        rep_changed_free(chg);
        for (size_t i = 0; imgs && i < o->n_disks; i++)
                fmt_close(imgs[i]);
        free(imgs);
        pt.group = NULL;
        pt.onprem_from = NULL;
        for (size_t i = 0; i < pt.n_disks; i++)
                free(pt.disks[i].chunks);
        free(pt.disks);
        return r;
}
