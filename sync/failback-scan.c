/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The failback scan (delta, --verify): the calling thread walks the target
 * in batches of SCAN_BATCH_BYTES, finds holes with SEEK_DATA (hole-only
 * batches are settled on the spot, without a read), loads the manifest
 * checksums, and hands each batch to the worker pool, which checksums its
 * blocks with the delta engine (sync_delta_hash: pread into the batch's
 * reused, page-aligned buffer; holes not read). Batches are collected in
 * order: a block whose checksum differs from the point's is marked in a
 * bitmap (one bit per block), and every non-zero block goes into an index
 * (checksum -> block) of what the target holds.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "failback_i.h"

#define SCAN_BATCH_BYTES (4u << 20)

/* ---- scan ---- */

struct sbatch {
        struct fb_run *r;
        struct ring *ring;      /* the scan's, of struct sbatch */
        uint64_t first;
        size_t n;
        uint8_t *data;
        uint8_t *hole;
        struct hash128 *want, *got;
};

/* Checksum b's blocks with the delta engine (holes unread). */
static void sbatch_work(void *arg) {
        struct sbatch *b = arg;
        struct fb_run *r = b->r;
        struct sync_delta_src src = { .fd = r->t->fd, .bs = r->bs, .end = r->d->size };
        size_t piece = MIN(b->n, MAX(SYNC_DELTA_PIECE_BYTES / r->bs, 1u));

        ring_done(b->ring, b, sync_delta_hash(&src, b->first * r->bs, b->n, b->hole, b->data, piece * r->bs, b->got));
}

/* A batch with nothing to read: settled on the spot. */
static void sbatch_holes(void *arg) {
        struct sbatch *b = arg;
        memset(b->got, 0, b->n * sizeof *b->got);
        ring_done(b->ring, b, 0);
}

/* Mark the blocks of b that hold no data at all; true when the whole
 * batch is a hole. */
static bool map_holes(struct fb_run *r, struct sbatch *b, uint64_t *hole_until) {
        return fd_map_holes(r->t->fd, b->first * r->bs, MIN(r->d->size, (b->first + b->n) * r->bs), r->bs, b->hole,
                            hole_until);
}

struct scan_out {
        bool verify;
        uint64_t bad, first_bad;
};

static int sbatch_collect(struct fb_run *r, struct sbatch *b, struct scan_out *out) {
        for (size_t k = 0; k < b->n; k++) {
                uint64_t pos = b->first + k;
                bool same = memcmp(&b->got[k], &b->want[k], sizeof b->got[k]) == 0;
                if (out->verify) {
                        if (!same && out->bad++ == 0)
                                out->first_bad = pos;
                        continue;
                }
                if (!same) {
                        fb_bit_set(r->diff, pos);
                        r->st->blocks_differing++;
                }
                if (!hash_is_zero(&b->got[k])) {
                        int e = fb_index_add(&r->idx, &b->got[k], pos);
                        if (e < 0)
                                return e;
                }
        }
        if (out->verify)
                r->st->blocks_verified += b->n;
        else {
                r->st->blocks_scanned += b->n;
                r->st->bytes_scanned += MIN(r->d->size, (b->first + b->n) * r->bs) - b->first * r->bs;
        }
        return 0;
}

static int scan_init(struct fb_run *r, struct ring **ret, size_t per) {
        size_t piece = MIN(per, MAX(SYNC_DELTA_PIECE_BYTES / r->bs, 1u)); /* blocks */
        int e = ring_new(r->ring, sizeof(struct sbatch), ret);
        if (e < 0)
                return e;
        for (unsigned i = 0; i < r->ring; i++) {
                struct sbatch *b = ring_slot(*ret, i);
                b->r = r;
                b->ring = *ret;
                /* one piece, page-aligned (see delta-scan.c) */
                b->data = ring_own(*ret, alloc_large(piece * r->bs));
                b->hole = ring_own(*ret, malloc(per));
                b->want = ring_own(*ret, malloc(per * sizeof *b->want));
                b->got = ring_own(*ret, malloc(per * sizeof *b->got));
                if (!b->data || !b->hole || !b->want || !b->got)
                        return -ENOMEM;
        }
        return 0;
}

/* Collect b, taken with its job's result be; keeps the first error in *err. */
static void sbatch_finish(struct fb_run *r, struct sbatch *b, int be, struct scan_out *out, int *err) {
        if (be < 0 && *err == 0)
                *err = log_error_errno(be, "target %s: reading block %llu failed", r->t->path,
                                       (unsigned long long)b->first);
        if (*err == 0)
                *err = sbatch_collect(r, b, out);
}

/* Blocks [next, next + n) into b, with the point's checksums. */
static int sbatch_fill(struct fb_run *r, struct sbatch *b, struct ret_manifest *m, uint64_t next, size_t n) {
        b->first = next;
        b->n = n;
        for (size_t k = 0; k < n; k++) {
                int e = ret_manifest_get(m, next + k, &b->want[k]);
                if (e < 0)
                        return fb_manifest_error(r, r->d, e, next + k);
        }
        return 0;
}

int fb_scan(struct fb_run *r, uint64_t from, bool verify, uint64_t *ret_bad, uint64_t *ret_first_bad) {
        struct ring *ring = NULL;
        struct ret_manifest *m = NULL;
        struct scan_out out = { .verify = verify };
        size_t per = MAX(SCAN_BATCH_BYTES / r->bs, 1u);
        uint64_t next = from, hole_until = 0, base = MIN(r->d->size, from * r->bs);
        int err = 0;

        if (!verify && !r->diff) {
                r->diff = calloc(DIV_ROUND_UP(r->n, 64) + 1, sizeof *r->diff);
                if (!r->diff)
                        return -ENOMEM;
        }
        err = scan_init(r, &ring, per);
        if (err >= 0)
                err = ret_manifest_open(r->s, r->d, &m);
        if (err < 0)
                goto out;
        fb_pass_begin(r, verify ? "verify" : "scan", r->d->size - base);
        /* A ring of batches, collected in order while it is full (and at
         * the end, or after an error). */
        for (;;) {
                struct sbatch *b;
                if (ring_full(ring) || next >= r->n || err < 0) {
                        int be;
                        uint64_t done;
                        b = ring_take(ring, &be);
                        if (!b)
                                break;
                        done = MIN(r->d->size, (b->first + b->n) * r->bs) - base;
                        sbatch_finish(r, b, be, &out, &err);
                        fb_event(r, done, false);
                        fb_note_progress(r, done);
                        ring_release(ring, b);
                        continue;
                }
                b = ring_acquire(ring);
                err = sbatch_fill(r, b, m, next, (size_t)MIN((uint64_t)per, r->n - next));
                if (err < 0)
                        continue;
                next += b->n;
                /* Nothing to read: settled here, collected in its turn. */
                if (map_holes(r, b, &hole_until))
                        ring_submit(ring, b, NULL, sbatch_holes);
                else
                        ring_submit(ring, b, r->pool, sbatch_work);
        }
        if (err == 0) {
                fb_event(r, r->pass_total, true);
                if (!verify)
                        fb_index_sort(&r->idx);
        }
out:
        ret_manifest_free(m);
        ring_free(ring);
        if (ret_bad)
                *ret_bad = out.bad;
        if (ret_first_bad)
                *ret_first_bad = out.first_bad;
        return err;
}

int fb_sample(struct fb_run *r, double *ret_fraction) {
        struct ret_manifest *m = NULL;
        _cleanup_free_ uint8_t *buf = alloc_large(r->bs);
        struct sync_delta_src src = { .fd = r->t->fd, .bs = r->bs, .end = r->d->size };
        uint64_t samples = MIN(r->n, 256u), data = 0, differ = 0;
        int e;

        *ret_fraction = 0;
        if (!buf)
                return -ENOMEM;
        e = ret_manifest_open(r->s, r->d, &m);
        if (e < 0)
                return e;
        for (uint64_t i = 0; i < samples; i++) {
                uint64_t pos = i * r->n / samples;
                struct hash128 want, got;
                e = ret_manifest_get(m, pos, &want);
                if (e < 0) {
                        fb_manifest_error(r, r->d, e, pos);
                        break;
                }
                if (hash_is_zero(&want))
                        continue;
                e = sync_delta_hash(&src, pos * r->bs, 1, NULL, buf, r->bs, &got);
                if (e < 0) {
                        log_error_errno(e, "target %s: reading block %llu failed", r->t->path,
                                        (unsigned long long)pos);
                        break;
                }
                data++;
                differ += memcmp(&got, &want, sizeof got) != 0;
        }
        ret_manifest_free(m);
        if (e < 0)
                return e;
        *ret_fraction = data ? (double)differ / (double)data : 0;
        log_debug("target %s: %llu of %llu sampled data blocks differ", r->t->path, (unsigned long long)differ,
                  (unsigned long long)data);
        return 0;
}

