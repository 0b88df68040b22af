/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The failback apply (every kind): the calling thread produces the blocks
 * to change, in increasing order (bits of the bitmap, every block, or the
 * blocks whose checksum differs between two manifests), in batches of up
 * to APPLY_BATCH_BYTES of data blocks. A decoder thread produces each
 * block's bytes: from elsewhere on the target (index), from the block
 * cache, or from the vault (sync_delta_fetch(): merged ranged reads); a
 * writer thread then writes the batch with the delta engine
 * (sync_delta_write per run of adjacent blocks; zero blocks become holes,
 * or zeros on a device). Several batches are in flight. Collected in
 * order, they move the journal's high-water mark, after fdatasync, every
 * FB_CHECKPOINT_BYTES or FB_CHECKPOINT_SECONDS: on a thread of its own
 * (a checkpoint), so that the sync (2-100 ms) never holds the ring up. A
 * checkpoint records only blocks collected before its sync began, i.e.
 * written; one still running when the next is due makes that one wait
 * for a later batch.
 *
 * Local copies and ordering: a worker reads a block from elsewhere on the
 * target while other batches are being written. Candidates that no batch
 * writes (not in the bitmap) or that lie at or after the worker's own
 * batch (written only once this batch is collected... or by a later
 * batch's worker) are tried first; whatever is read is hashed and used only
 * if it matches, so a block overwritten meanwhile falls back to the cache or
 * the vault. Correctness never depends on the index, only efficiency does.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "failback_i.h"

/* Large batches, several in flight: a full restore into a new 2 GiB file
 * took 1.92 s with 4 MiB batches (10 in flight), 1.57 s with 16 MiB (6 in
 * flight), on 2 cores and a virtual disk; the in-flight memory is bounded
 * by APPLY_INFLIGHT_BYTES rather than by the thread count. The batches'
 * buffers are allocated once, but their first touch costs: the kernel
 * zeroes each fresh 2 MiB page (15% of a --create's samples with 96 MiB
 * in flight, on a host whose page faults are expensive). 64 MiB (one
 * batch per decoder and writer on 2 cores) keeps the pipeline full. */
#define APPLY_BATCH_BYTES (16u << 20)
#define APPLY_INFLIGHT_BYTES (64u << 20)
#define APPLY_WRITERS 2
#define APPLY_BATCH_ITEMS 2048
#define LOCAL_TRIES 4

/* ---- apply ---- */

enum { SRC_ZERO, SRC_FETCH, SRC_LOCAL, SRC_CACHE };

struct aitem {
        uint64_t pos;
        struct hash128 h;
        int32_t slot;           /* data slot, -1 for a zero block */
        uint8_t src;
};

struct apply;

struct abatch {
        struct fb_run *r;
        struct apply *ap;
        struct aitem *it;
        size_t n, n_data;
        uint8_t *data;
        struct store_fetch *f;
        size_t *f_item;
        uint64_t first, last;
        uint64_t local, cached, fetched, zeroed, written, bytes;
        uint64_t bad_pos;       /* where the batch's error happened */
        bool bad_target;        /* the error came from writing the target */
};

/* The checkpoint in progress: mark and percent set by the collecting
 * thread while idle is false, read and cleared by the checkpoint job. */
struct checkpoint {
        struct fb_run *r;
        uint64_t mark;          /* blocks [0, mark) are written */
        unsigned percent;
        int err;                /* first failure, set by the job */
        bool busy;              /* atomic */
};

struct apply {
        struct ring *ring;      /* of struct abatch */
        struct pool *syncer;    /* one thread: checkpoints */
        struct checkpoint ck;
        struct pool *decoders;  /* resolve batches */
        struct pool *writers;   /* write resolved batches */
        size_t per;             /* data blocks per batch */
        struct sync_delta_target dt; /* the target, as the delta engine writes it */
};

/* Produces the blocks to write, in increasing order. */
struct producer {
        enum fb_source src;
        struct ret_manifest *m, *mb;
        uint64_t next;
        struct aitem pending;   /* produced, not yet in a batch */
        bool have_pending, eof;
};

static int produce(struct fb_run *r, struct producer *p, struct aitem *it, bool *eof) {
        struct hash128 h, hb;
        int e;

        for (;;) {
                uint64_t pos = p->next;
                if (pos >= r->n) {
                        *eof = true;
                        return 0;
                }
                if (p->src == FB_SRC_DIFF) {
                        uint64_t w = r->diff[pos / 64] >> (pos % 64);
                        if (!w) {
                                p->next = (pos / 64 + 1) * 64;
                                continue;
                        }
                        pos += (uint64_t)__builtin_ctzll(w);
                        if (pos >= r->n) {
                                *eof = true;
                                return 0;
                        }
                }
                p->next = pos + 1;
                e = ret_manifest_get(p->m, pos, &h);
                if (e < 0)
                        return fb_manifest_error(r, r->d, e, pos);
                if (p->src == FB_SRC_ALL && r->fresh && hash_is_zero(&h))
                        continue;
                if (p->src == FB_SRC_MANIFESTS && pos < r->base_d->n_blocks) {
                        e = ret_manifest_get(p->mb, pos, &hb);
                        if (e < 0)
                                return fb_manifest_error(r, r->base_d, e, pos);
                        if (memcmp(&h, &hb, sizeof h) == 0)
                                continue;
                }
                it->pos = pos;
                it->h = h;
                it->slot = -1;
                it->src = hash_is_zero(&h) ? SRC_ZERO : SRC_FETCH;
                *eof = false;
                return 1;
        }
}

/* Copy block h from elsewhere on the target into buf; verified. */
static int local_copy(struct fb_run *r, const struct abatch *b, const struct aitem *it, uint8_t *buf) {
        size_t count, first = fb_index_find(&r->idx, &it->h, &count);
        unsigned tries = 0;

        /* Round 0: blocks nobody writes, or not written before this batch
         * is collected. Round 1: the others (they may have been
         * overwritten: verification tells). */
        for (int round = 0; round < 2; round++)
                for (size_t k = first; k < first + count && tries < LOCAL_TRIES; k++) {
                        uint64_t j = r->idx.v[k].pos;
                        bool stable = (r->use_diff && !fb_bit_get(r->diff, j)) || j >= b->first;
                        if (j == it->pos || j >= r->n || stable != (round == 0))
                                continue;
                        tries++;
                        if (sync_delta_block_is(r->t->fd, r->bs, j * r->bs, fb_block_len(r, j), &it->h, buf))
                                return 0;
                }
        return -ENOENT;
}

static void bw_wait(struct fb_run *r, uint64_t bytes) {
        double due, wait;

        if (!r->o->bwlimit || !bytes)
                return;
        pthread_mutex_lock(&r->lock);
        r->bw_bytes += bytes;
        due = r->bw_t0 + (double)r->bw_bytes / (double)r->o->bwlimit;
        pthread_mutex_unlock(&r->lock);
        wait = due - now_monotonic();
        if (wait > 0) {
                struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
        }
}

static int resolve(struct fb_run *r, struct abatch *b) {
        size_t nf = 0, step;
        uint64_t stored;
        int e;

        for (size_t k = 0; k < b->n; k++) {
                struct aitem *it = &b->it[k];
                uint8_t *buf;
                if (it->src == SRC_ZERO)
                        continue;
                buf = b->data + (size_t)it->slot * r->bs;
                if (r->idx.n && local_copy(r, b, it, buf) == 0) {
                        it->src = SRC_LOCAL;
                        b->local++;
                        continue;
                }
                if (r->cache && store_cache_get(r->cache, &it->h, buf) == 0) {
                        it->src = SRC_CACHE;
                        b->cached++;
                        continue;
                }
                b->f[nf] = (struct store_fetch){ .h = it->h, .buf = buf };
                b->f_item[nf++] = k;
        }
        if (nf == 0)
                return 0;
        /* With a bandwidth limit, fetch in pieces of about 1/8 s each. */
        step = r->o->bwlimit ? (size_t)MAX(1u, r->o->bwlimit / 8 / r->bs) : nf;
        for (size_t a = 0; a < nf; a += step) {
                size_t m = MIN(step, nf - a), bad;
                e = sync_delta_fetch(r->s, r->codecs, b->f + a, m, &bad);
                if (e < 0) {
                        b->bad_pos = b->it[b->f_item[a + bad]].pos;
                        return e;
                }
                stored = 0;
                for (size_t i = a; i < a + m; i++)
                        stored += b->f[i].stored;
                b->fetched += m;
                bw_wait(r, stored);
        }
        return 0;
}

/* Write b's blocks, a run of adjacent ones at a time. */
static int write_batch(struct fb_run *r, struct abatch *b) {
        for (size_t k = 0; k < b->n;) {
                struct aitem *it = &b->it[k];
                bool zero = it->src == SRC_ZERO;
                size_t e = k + 1;
                uint64_t off = it->pos * r->bs, end;
                int err;
                while (e < b->n && b->it[e].pos == b->it[e - 1].pos + 1 && (b->it[e].src == SRC_ZERO) == zero &&
                       (zero || b->it[e].slot == b->it[e - 1].slot + 1))
                        e++;
                end = MIN(r->d->size, (b->it[e - 1].pos + 1) * r->bs);
                if (zero) {
                        err = sync_delta_zero(&b->ap->dt, off, end - off, &b->bytes);
                        b->zeroed += e - k;
                } else {
                        err = sync_delta_write(&b->ap->dt, b->data + (size_t)it->slot * r->bs, (size_t)(end - off), off);
                        b->bytes += end - off;
                }
                if (err < 0) {
                        b->bad_pos = it->pos;
                        b->bad_target = true;
                        return err;
                }
                b->written += e - k;
                k = e;
        }
        return 0;
}

static void abatch_write(void *arg) {
        struct abatch *b = arg;
        ring_done(b->ap->ring, b, write_batch(b->r, b));
}

/* Resolve (fetch, decompress, verify) on the decoders, then hand the
 * batch to the writers. */
static void abatch_work(void *arg) {
        struct abatch *b = arg;
        int err = resolve(b->r, b);

        if (err == 0 && pool_submit(b->ap->writers, abatch_write, b) == 0)
                return;
        if (err == 0)
                err = write_batch(b->r, b);
        ring_done(b->ap->ring, b, err);
}

static void apply_free(struct apply *ap) {
        pool_free(ap->decoders); /* nothing is in flight by now */
        pool_free(ap->writers);
        pool_free(ap->syncer);
        ring_free(ap->ring);
}

static int apply_init(struct fb_run *r, struct apply *ap) {
        /* Decoding is CPU work: one decoder per core, unless fetches wait
         * on a network (or --jobs says). Writes wait on the disk: they
         * have threads of their own, so that a decoder never waits for a
         * write and the disk never waits for a decoder. */
        unsigned decoders = r->o->threads || store_remote(r->s) ? r->threads : cpu_count(), n_ring;
        int e;

        e = pool_new(decoders, r->ring, &ap->decoders);
        if (e >= 0)
                e = pool_new(APPLY_WRITERS, r->ring, &ap->writers);
        if (e >= 0)
                e = pool_new(1, 1, &ap->syncer);
        if (e < 0)
                return e;
        ap->ck.r = r;
        ap->per = MAX(APPLY_BATCH_BYTES / r->bs, 1u);
        /* A bandwidth limit makes batches slow: keep them to about half a
         * second, so that checkpoints (and progress) stay frequent. */
        if (r->o->bwlimit)
                ap->per = (size_t)MAX(1u, MIN((uint64_t)ap->per, r->o->bwlimit / 2 / r->bs));
        n_ring = (unsigned)MIN((size_t)r->ring, MAX((size_t)decoders + APPLY_WRITERS, APPLY_INFLIGHT_BYTES / (ap->per * r->bs)));
        e = ring_new(n_ring, sizeof(struct abatch), &ap->ring);
        if (e < 0)
                return e;
        for (unsigned i = 0; i < n_ring; i++) {
                struct abatch *b = ring_slot(ap->ring, i);
                b->r = r;
                b->ap = ap;
                b->it = ring_own(ap->ring, malloc(APPLY_BATCH_ITEMS * sizeof *b->it));
                /* On huge pages: a direct write from 4 KiB pages reaches
                 * the disk in requests of at most 254 pages (~1 MiB), from
                 * 2 MiB pages in requests of up to 4 MiB. A full --create
                 * of 2 GiB: 1040 -> 521 write requests, 1.25 -> 1.06 s. */
                b->data = ring_own(ap->ring, alloc_large(ap->per * r->bs));
                b->f = ring_own(ap->ring, malloc(ap->per * sizeof *b->f));
                b->f_item = ring_own(ap->ring, malloc(ap->per * sizeof *b->f_item));
                if (!b->it || !b->data || !b->f || !b->f_item)
                        return -ENOMEM;
        }
        return 0;
}

/* Explain err, the failure of batch b. */
static int apply_error(struct fb_run *r, struct abatch *b, int err) {
        if (b->bad_target)
                return log_error_errno(err, "target %s: writing block %llu failed", r->t->path,
                                       (unsigned long long)b->bad_pos);
        if (err == -ENOENT)
                log_error("disk %s: block %llu is missing from the vault (damaged vault?)", r->t->disk,
                          (unsigned long long)b->bad_pos);
        else if (err == -EBADMSG)
                log_error("disk %s: block %llu failed verification: the vault's copy is corrupt", r->t->disk,
                          (unsigned long long)b->bad_pos);
        else {
                const char *hint = store_error_hint(store_url(r->s), err);
                log_error("disk %s: fetching block %llu failed: %s", r->t->disk, (unsigned long long)b->bad_pos,
                          hint ? hint : strerror(-err));
        }
        return err;
}

/* Sync the target, then record ck's mark: on the syncer thread. */
static void checkpoint_job(void *arg) {
        struct checkpoint *ck = arg;
        struct fb_target *t = ck->r->t;
        int e = fb_target_sync(t, false);

        if (e < 0)
                log_error_errno(e, "target %s: sync failed", t->path);
        else {
                t->j.done_blocks = ck->mark;
                t->j.percent = ck->percent;
                e = fb_journal_save(&t->j);
                if (e < 0)
                        log_error_errno(e, "journal %s: cannot record progress", t->j.path);
        }
        if (e < 0 && ck->err == 0)
                ck->err = e;
        __atomic_store_n(&ck->busy, false, __ATOMIC_RELEASE);
}

/* Wait for the checkpoint in progress, if any: its error, or 0. */
static int checkpoint_wait(struct apply *ap) {
        if (ap->syncer)
                pool_wait(ap->syncer);
        return ap->ck.err;
}

/* Start a checkpoint at mark, unless one is running: 1 started, 0 not,
 * or the error of an earlier one. */
static int checkpoint_start(struct fb_run *r, struct apply *ap, uint64_t mark) {
        struct checkpoint *ck = &ap->ck;

        if (__atomic_load_n(&ck->busy, __ATOMIC_ACQUIRE))
                return 0;
        if (ck->err < 0)
                return ck->err;
        ck->mark = mark;
        ck->percent = (unsigned)(100 * mark / MAX(r->n, 1u));
        ck->busy = true;
        if (pool_submit(ap->syncer, checkpoint_job, ck) < 0)
                checkpoint_job(ck); /* no thread: here, then */
        return 1;
}

/* In order: stats, high-water mark, checkpoints. */
static int abatch_collect(struct fb_run *r, struct apply *ap, struct abatch *b, uint64_t *since_bytes,
                          double *since_t) {
        struct sync_fb_stats *st = r->st;
        int e;

        st->blocks_local += b->local;
        st->blocks_cached += b->cached;
        st->blocks_fetched += b->fetched;
        st->blocks_zeroed += b->zeroed;
        st->blocks_written += b->written;
        st->bytes_written += b->bytes;
        if (!r->use_diff)
                st->blocks_differing += b->n;
        *since_bytes += b->written * r->bs;
        if (*since_bytes >= FB_CHECKPOINT_BYTES || now_monotonic() - *since_t >= FB_CHECKPOINT_SECONDS) {
                e = checkpoint_start(r, ap, b->last + 1);
                if (e <= 0)
                        return e;
                r->last_save = now_monotonic();
                *since_bytes = 0;
                *since_t = now_monotonic();
        }
        return 0;
}

/* Dry run: what each block would cost, without reading or writing. */
static int estimate(struct fb_run *r, struct producer *p) {
        struct aitem it;
        bool eof = false;
        int e;

        for (;;) {
                size_t count;
                uint32_t stored;
                bool local = false;
                e = produce(r, p, &it, &eof);
                if (e <= 0)
                        return e;
                r->st->blocks_written++;
                if (!r->use_diff)
                        r->st->blocks_differing++;
                if (it.src == SRC_ZERO) {
                        r->st->blocks_zeroed++;
                        continue;
                }
                r->st->bytes_written += fb_block_len(r, it.pos);
                for (size_t k = fb_index_find(&r->idx, &it.h, &count), e2 = k + count; k < e2; k++)
                        if (r->idx.v[k].pos != it.pos) {
                                local = true;
                                break;
                        }
                if (local) {
                        r->st->blocks_local++;
                        continue;
                }
                if (r->cache && store_cache_contains(r->cache, &it.h)) {
                        r->st->blocks_cached++;
                        continue;
                }
                e = store_blob_stored_size(r->s, &it.h, &stored);
                if (e < 0) {
                        log_error("disk %s: block %llu is missing from the vault (damaged vault?)", r->t->disk,
                                  (unsigned long long)it.pos);
                        return e;
                }
                r->st->blocks_fetched++;
                r->st->bytes_fetched += stored;
        }
}

/* The next blocks into b: 1 filled, 0 none left, -errno. */
static int abatch_fill(struct fb_run *r, struct apply *ap, struct abatch *b, struct producer *p) {
        int e;

        b->n = b->n_data = 0;
        b->local = b->cached = b->fetched = b->zeroed = b->written = b->bytes = 0;
        b->bad_target = false;
        while (b->n < APPLY_BATCH_ITEMS && b->n_data < ap->per) {
                struct aitem *it = &b->it[b->n];
                if (p->have_pending) {
                        *it = p->pending;
                        p->have_pending = false;
                } else {
                        e = produce(r, p, it, &p->eof);
                        if (e < 0)
                                return e;
                        if (e == 0)
                                break;
                }
                if (it->src != SRC_ZERO)
                        it->slot = (int32_t)b->n_data++;
                b->n++;
        }
        if (b->n == 0)
                return 0;
        /* Peek, so that the end is known before the next wait. */
        if (!p->eof) {
                e = produce(r, p, &p->pending, &p->eof);
                if (e < 0)
                        return e;
                p->have_pending = e > 0;
        }
        b->first = b->it[0].pos;
        b->last = b->it[b->n - 1].pos;
        return 1;
}

/* Blocks to write, for progress, when their number is known (delta: the
 * scan counted them; full: about the point's data blocks, or every block
 * over an old target); 0 for "by position" (diff). */
static uint64_t write_todo(const struct fb_run *r, enum fb_source src, uint64_t from) {
        uint64_t left = r->n - MIN(from, r->n);
        if (src == FB_SRC_DIFF)
                return r->st->blocks_differing;
        if (src == FB_SRC_ALL)
                return r->fresh ? r->d->data_blocks * left / MAX(r->n, 1u) : left;
        return 0;
}

static int apply_run(struct fb_run *r, struct apply *ap, struct producer *p, enum fb_source src, uint64_t from) {
        uint64_t todo = write_todo(r, src, from), written0 = r->st->blocks_written, since_bytes = 0;
        uint64_t base = MIN(r->d->size, from * r->bs);
        double since_t = now_monotonic();
        int err = 0, e;

        fb_pass_begin(r, "write", todo ? todo * r->bs : r->d->size - base);
        /* A ring of batches: filled in order, written by the workers,
         * collected in order (that moves the high-water mark) while it is
         * full, and at the end or after an error. */
        for (;;) {
                struct abatch *b;
                if (ring_full(ap->ring) || p->eof || err < 0) {
                        int be;
                        b = ring_take(ap->ring, &be);
                        if (!b)
                                break;
                        if (be < 0 && err == 0)
                                err = apply_error(r, b, be);
                        if (err == 0)
                                err = abatch_collect(r, ap, b, &since_bytes, &since_t);
                        fb_event(r, todo ? MIN(todo, r->st->blocks_written - written0) * r->bs :
                                           MIN(r->d->size, (b->last + 1) * r->bs) - base, false);
                        ring_release(ap->ring, b);
                        continue;
                }
                b = ring_acquire(ap->ring);
                err = abatch_fill(r, ap, b, p);
                if (err <= 0)
                        continue;
                err = 0;
                ring_submit(ap->ring, b, ap->decoders, abatch_work);
        }
        /* The caller records the end in the journal: not while a
         * checkpoint still writes it. */
        e = checkpoint_wait(ap);
        if (err == 0)
                err = e;
        if (err == 0)
                fb_event(r, r->pass_total, true);
        return err;
}

int fb_apply(struct fb_run *r, enum fb_source src, uint64_t from) {
        struct apply ap = { 0 };
        struct producer p = { .src = src, .next = from };
        int err;

        err = ret_manifest_open(r->s, r->d, &p.m);
        if (err >= 0 && src == FB_SRC_MANIFESTS)
                err = ret_manifest_open(r->s, r->base_d, &p.mb);
        if (err < 0)
                goto out;
        if (r->dry_run) {
                err = estimate(r, &p);
                goto out;
        }
        err = apply_init(r, &ap);
        if (err < 0)
                goto out;
        /* Long runs (a full sync) go around the page cache; short
         * scattered ones (a delta) are cheaper buffered: one sync then
         * writes them all, merged and queued deep, instead of one
         * synchronous device write each (SYNC_DELTA_DIRECT_MIN). */
        fb_target_open_direct(r->t);
        sync_delta_target_init(&ap.dt, r->t->fd, r->t->dfd, r->t->blockdev);
        err = apply_run(r, &ap, &p, src, from);
out:
        ret_manifest_free(p.m);
        ret_manifest_free(p.mb);
        apply_free(&ap);
        fb_update_fetched(r);
        return err;
}
