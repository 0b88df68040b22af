/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The two failback pipelines.
 *
 * Scan (delta, --verify): the calling thread walks the target in batches
 * of SCAN_BATCH_BYTES, finds holes with SEEK_DATA (hole-only batches are
 * settled on the spot, without a read), loads the manifest checksums, and
 * hands each batch to the worker pool, which reads its data runs with
 * pread into a small reused buffer and hashes every block. Batches are collected in order: a
 * block whose checksum differs from the point's is marked in a bitmap (one
 * bit per block), and every non-zero block goes into an index (checksum ->
 * block) of what the target holds.
 *
 * Apply (every kind): the calling thread produces the blocks to change, in
 * increasing order (bits of the bitmap, every block, or the blocks whose
 * checksum differs between two manifests), in batches of up to
 * APPLY_BATCH_BYTES of data blocks. A decoder thread produces each block's
 * bytes: from elsewhere on the target (index), from the block cache, or
 * from the vault (one store_fetch_blocks() per batch: merged ranged reads);
 * a writer thread then writes the batch (pwrite per run of adjacent blocks;
 * zero blocks become holes, or zeros on a device). Several batches are in
 * flight. Collected in order, they move the journal's high-water mark,
 * after fdatasync, every FB_CHECKPOINT_BYTES or FB_CHECKPOINT_SECONDS.
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

#define SCAN_BATCH_BYTES (4u << 20)
/* Large batches, several in flight: a full restore into a new 2 GiB file
 * took 1.92 s with 4 MiB batches (10 in flight), 1.57 s with 16 MiB (6 in
 * flight), on 2 cores and a virtual disk; the in-flight memory is bounded
 * by APPLY_INFLIGHT_BYTES rather than by the thread count. */
#define APPLY_BATCH_BYTES (16u << 20)
#define APPLY_INFLIGHT_BYTES (96u << 20)
#define APPLY_WRITERS 2
#define APPLY_BATCH_ITEMS 2048
#define LOCAL_TRIES 4

static inline bool bit_get(const uint64_t *v, uint64_t i) { return v[i / 64] >> (i % 64) & 1; }
static inline void bit_set(uint64_t *v, uint64_t i) { v[i / 64] |= 1ull << (i % 64); }

static size_t block_len(const struct fb_run *r, uint64_t pos) {
        return (size_t)MIN((uint64_t)r->bs, r->d->size - pos * r->bs);
}

/* ---- shared state ---- */

int fb_run_init(struct fb_run *r) {
        int e;

        pthread_mutex_init(&r->lock, NULL);
        /* At least 4 by default: the scan waits for the target's disk, and
         * fetches from a remote vault for the network, so more threads than
         * cores keep both busy (apply_init() picks its decoders). */
        r->threads = r->o->threads ? r->o->threads : MAX(cpu_count(), 4u);
        r->ring = MIN(2 * r->threads + 2, 16u);
        r->n = r->d->n_blocks;
        r->bw_t0 = r->last_save = now_monotonic();
        store_read_stats(r->s, &r->fetched_base, NULL);
        e = store_codec_pool_new(r->s, FB_CODECS, &r->codecs);
        if (e >= 0)
                e = pool_new(r->threads, r->ring, &r->pool);
        return e;
}

void fb_run_done(struct fb_run *r) {
        pool_free(r->pool);
        r->pool = NULL;
        store_codec_pool_free(r->codecs);
        r->codecs = NULL;
        free(r->idx.v);
        memset(&r->idx, 0, sizeof r->idx);
        free(r->diff);
        r->diff = NULL;
        pthread_mutex_destroy(&r->lock);
}

static void update_fetched(struct fb_run *r) {
        uint64_t b;
        if (r->dry_run) /* bytes_fetched is the estimate */
                return;
        store_read_stats(r->s, &b, NULL);
        r->st->bytes_fetched = b - r->fetched_base;
}

static void pass_begin(struct fb_run *r, const char *pass, uint64_t total) {
        char label[48];

        r->pass = pass;
        r->pass_total = total;
        r->pass_t0 = now_monotonic();
        r->last_event = 0;
        snprintf(label, sizeof label, "%s %s", r->t->disk, pass);
        progress_restart(r->pg, label, total);
        snprintf(r->t->j.pass, sizeof r->t->j.pass, "%s", pass);
}

void fb_event(struct fb_run *r, uint64_t done, bool force) {
        struct sync_fb_event e = { .type = "progress", .disk = r->t->disk, .target = r->t->path };
        double now = now_monotonic(), el = now - r->pass_t0;
        char a[24], b[24];

        update_fetched(r);
        progress_note(r->pg, "fetched %s, written %s", format_bytes(r->st->bytes_fetched, a, sizeof a),
                      format_bytes(r->st->bytes_written, b, sizeof b));
        progress_update(r->pg, done);
        if (!r->o->on_event || (!force && now - r->last_event < 1.0))
                return;
        r->last_event = now;
        e.pass = r->pass;
        e.done = done;
        e.total = r->pass_total;
        e.rate = el > 0 ? (double)done / el : 0;
        e.eta = e.rate > 0 && done <= e.total ? (double)(e.total - done) / e.rate : -1;
        e.stats = r->st;
        r->o->on_event(r->o->userdata, &e);
}

/* Record the pass and its percentage (not the high-water mark) now and
 * then, for --status. */
static void note_progress(struct fb_run *r, uint64_t done) {
        double now = now_monotonic();
        if (r->dry_run || now - r->last_save < FB_CHECKPOINT_SECONDS)
                return;
        r->last_save = now;
        r->t->j.percent = r->pass_total ? (unsigned)(100 * MIN(done, r->pass_total) / r->pass_total) : 0;
        (void)fb_journal_save(&r->t->j);
}

/* Explain an error reading the manifest of disk d at block pos. */
static int manifest_error(struct fb_run *r, const struct ret_disk *d, int e, uint64_t pos) {
        const char *hint = store_error_hint(store_url(r->s), e);
        if (e == -ENOENT)
                log_error("disk %s: the manifest (block %llu on) is missing from the vault (damaged vault?)",
                          d->name, (unsigned long long)pos);
        else if (e == -EBADMSG)
                log_error("disk %s: the manifest (block %llu on) is corrupt in the vault", d->name,
                          (unsigned long long)pos);
        else
                log_error("disk %s: reading the manifest failed: %s", d->name, hint ? hint : strerror(-e));
        return e;
}

/* ---- the index ---- */

static int ient_cmp(const void *a, const void *b) {
        const struct fb_ient *x = a, *y = b;
        int c = memcmp(x->h.b, y->h.b, STORE_HASH_SIZE);
        if (c)
                return c;
        return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int index_add(struct fb_index *x, const struct hash128 *h, uint64_t pos) {
        if (h->b[15] & x->mask)
                return 0;
        if (x->n == x->cap) {
                if (x->cap >= FB_INDEX_MAX) {
                        /* Full: keep half of the checksums (by one more bit). */
                        size_t k = 0;
                        if (x->mask == 0xff)
                                return 0;
                        x->mask = (uint8_t)(x->mask << 1 | 1);
                        for (size_t i = 0; i < x->n; i++)
                                if (!(x->v[i].h.b[15] & x->mask))
                                        x->v[k++] = x->v[i];
                        x->n = k;
                        if (h->b[15] & x->mask)
                                return 0;
                } else {
                        size_t nc = MIN((size_t)FB_INDEX_MAX, x->cap ? 2 * x->cap : 4096);
                        struct fb_ient *nv = realloc(x->v, nc * sizeof *nv);
                        if (!nv)
                                return -ENOMEM;
                        x->v = nv;
                        x->cap = nc;
                }
        }
        x->v[x->n].h = *h;
        x->v[x->n++].pos = pos;
        return 0;
}

static void index_sort(struct fb_index *x) {
        if (x->n > 1)
                qsort(x->v, x->n, sizeof *x->v, ient_cmp);
}

/* First entry with checksum h, and how many there are. */
static size_t index_find(const struct fb_index *x, const struct hash128 *h, size_t *ret_count) {
        size_t lo = 0, hi = x->n, k;

        *ret_count = 0;
        if (h->b[15] & x->mask)
                return 0;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (memcmp(x->v[mid].h.b, h->b, STORE_HASH_SIZE) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (k = lo; k < x->n && memcmp(x->v[k].h.b, h->b, STORE_HASH_SIZE) == 0; k++)
                ;
        *ret_count = k - lo;
        return lo;
}

int fb_index_manifest(struct fb_run *r, const struct ret_disk *d) {
        struct ret_manifest *m = NULL;
        struct hash128 h;
        int e;

        e = ret_manifest_open(r->s, d, &m);
        if (e < 0)
                return e;
        for (uint64_t i = 0; i < d->n_blocks; i++) {
                e = ret_manifest_get(m, i, &h);
                if (e < 0) {
                        manifest_error(r, d, e, i);
                        break;
                }
                if (!hash_is_zero(&h))
                        e = index_add(&r->idx, &h, i);
                if (e < 0)
                        break;
        }
        ret_manifest_free(m);
        index_sort(&r->idx);
        return e < 0 ? e : 0;
}

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

static void hash_block(const uint8_t *p, size_t bs, struct hash128 *ret) {
        if (mem_is_zero(p, bs))
                memset(ret, 0, sizeof *ret);
        else
                store_hash(p, bs, ret);
}

/*
 * The scan reads the target with pread into SCAN_PIECE_BYTES of the
 * batch's buffer, reused piece after piece so that it stays in the CPU's
 * cache while it is hashed. A mapping of the file (no copy) was faster on
 * one host and 6-10x slower on another, where the first touch of each
 * mapped page and the TLB shootdowns of munmap cost more than the hashing
 * (issue 15: 4 MiB mmap windows + XXH3 1.0-1.8 s, pread + XXH3 0.17 s, cat
 * 0.13 s, for one warm 2 GiB file); pread is never slow.
 */
#define SCAN_PIECE_BYTES (256u << 10)

/* Read and hash blocks [k, e) of b, a run of data blocks, piece by piece. */
static int hash_run(struct fb_run *r, struct sbatch *b, size_t k, size_t e) {
        size_t per = MAX(SCAN_PIECE_BYTES / r->bs, 1u);

        while (k < e) {
                size_t m = MIN(per, e - k);
                uint64_t off = (b->first + k) * r->bs, end = MIN(r->d->size, (b->first + k + m) * r->bs);
                size_t len = (size_t)(end - off);
                int err = pread_full(r->t->fd, b->data, len, off);
                if (err < 0)
                        return err; /* -EIO also when the target shrank under us */
                if (len < m * r->bs) /* a partial last block: pad */
                        memset(b->data + len, 0, m * r->bs - len);
                for (size_t i = 0; i < m; i++)
                        hash_block(b->data + i * r->bs, r->bs, &b->got[k + i]);
                k += m;
        }
        return 0;
}

static void sbatch_work(void *arg) {
        struct sbatch *b = arg;
        struct fb_run *r = b->r;
        int err = 0;

        for (size_t k = 0; k < b->n && err == 0;) {
                size_t e = k;
                if (b->hole[k]) {
                        memset(&b->got[k], 0, sizeof b->got[k]);
                        k++;
                        continue;
                }
                while (e < b->n && !b->hole[e])
                        e++;
                err = hash_run(r, b, k, e);
                k = e;
        }
        ring_done(b->ring, b, err);
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
                        bit_set(r->diff, pos);
                        r->st->blocks_differing++;
                }
                if (!hash_is_zero(&b->got[k])) {
                        int e = index_add(&r->idx, &b->got[k], pos);
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
        size_t piece = MIN(per, MAX(SCAN_PIECE_BYTES / r->bs, 1u)); /* blocks */
        int e = ring_new(r->ring, sizeof(struct sbatch), ret);
        if (e < 0)
                return e;
        for (unsigned i = 0; i < r->ring; i++) {
                struct sbatch *b = ring_slot(*ret, i);
                b->r = r;
                b->ring = *ret;
                /* one piece, page-aligned: pread into a misaligned buffer runs
                 * 3-5x slower on some hosts (AMD EPYC VM: 1-2 against 5.5 GB/s) */
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
                        return manifest_error(r, r->d, e, next + k);
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
        pass_begin(r, verify ? "verify" : "scan", r->d->size - base);
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
                        note_progress(r, done);
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
                        index_sort(&r->idx);
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
        _cleanup_free_ uint8_t *buf = malloc(r->bs);
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
                size_t len = block_len(r, pos);
                e = ret_manifest_get(m, pos, &want);
                if (e < 0) {
                        manifest_error(r, r->d, e, pos);
                        break;
                }
                if (hash_is_zero(&want))
                        continue;
                e = pread_full(r->t->fd, buf, len, pos * r->bs);
                if (e < 0) {
                        log_error_errno(e, "target %s: reading block %llu failed", r->t->path,
                                        (unsigned long long)pos);
                        break;
                }
                memset(buf + len, 0, r->bs - len);
                hash_block(buf, r->bs, &got);
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

struct apply {
        struct ring *ring;      /* of struct abatch */
        struct pool *decoders;  /* resolve batches */
        struct pool *writers;   /* write resolved batches */
        size_t per;             /* data blocks per batch */
        bool zero_fallback;     /* punching/zeroing unsupported: write zeros */
        bool no_direct;         /* O_DIRECT writes refused: buffered only */
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
                        return manifest_error(r, r->d, e, pos);
                if (p->src == FB_SRC_ALL && r->fresh && hash_is_zero(&h))
                        continue;
                if (p->src == FB_SRC_MANIFESTS && pos < r->base_d->n_blocks) {
                        e = ret_manifest_get(p->mb, pos, &hb);
                        if (e < 0)
                                return manifest_error(r, r->base_d, e, pos);
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
        size_t count, first = index_find(&r->idx, &it->h, &count);
        unsigned tries = 0;

        /* Round 0: blocks nobody writes, or not written before this batch
         * is collected. Round 1: the others (they may have been
         * overwritten: verification tells). */
        for (int round = 0; round < 2; round++)
                for (size_t k = first; k < first + count && tries < LOCAL_TRIES; k++) {
                        uint64_t j = r->idx.v[k].pos;
                        bool stable = (r->use_diff && !bit_get(r->diff, j)) || j >= b->first;
                        struct hash128 got;
                        size_t len;
                        if (j == it->pos || j >= r->n || stable != (round == 0))
                                continue;
                        tries++;
                        len = block_len(r, j);
                        if (pread_full(r->t->fd, buf, len, j * r->bs) < 0)
                                continue;
                        memset(buf + len, 0, r->bs - len);
                        store_hash(buf, r->bs, &got);
                        if (memcmp(&got, &it->h, sizeof got) == 0)
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
                size_t m = MIN(step, nf - a);
                struct store_codec *c = store_codec_pool_get(r->codecs);
                if (!c)
                        return -ENOMEM;
                e = store_fetch_blocks(r->s, c, b->f + a, m);
                store_codec_pool_put(r->codecs, c);
                if (e < 0) {
                        b->bad_pos = b->it[b->f_item[a]].pos;
                        return e;
                }
                stored = 0;
                for (size_t i = a; i < a + m; i++) {
                        if (b->f[i].result < 0) {
                                b->bad_pos = b->it[b->f_item[i]].pos;
                                return b->f[i].result;
                        }
                        stored += b->f[i].stored;
                }
                b->fetched += m;
                bw_wait(r, stored);
        }
        return 0;
}

static int zero_range(struct fb_run *r, struct apply *ap, uint64_t off, uint64_t len, uint64_t *bytes) {
        static const uint8_t zeros[64 << 10];
        int mode = r->t->blockdev ? FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
                                  : FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

        if (!__atomic_load_n(&ap->zero_fallback, __ATOMIC_RELAXED)) {
                if (fallocate(r->t->fd, mode, (off_t)off, (off_t)len) == 0)
                        return 0;
                if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENOTTY)
                        return -errno;
                __atomic_store_n(&ap->zero_fallback, true, __ATOMIC_RELAXED);
        }
        for (uint64_t done = 0; done < len;) {
                size_t n = (size_t)MIN(len - done, sizeof zeros);
                int e = pwrite_full(r->t->fd, zeros, n, off + done);
                if (e < 0)
                        return e;
                done += n;
        }
        *bytes += len;
        return 0;
}

/* Long runs (a full sync) go around the page cache; short scattered ones
 * (a delta) are cheaper buffered: one sync then writes them all, merged
 * and queued deep, instead of one synchronous device write each. */
#define DIRECT_MIN (1u << 20)

static int write_data(struct fb_run *r, struct apply *ap, const uint8_t *p, size_t len, uint64_t off) {
        if (r->t->dfd >= 0 && len >= DIRECT_MIN && !__atomic_load_n(&ap->no_direct, __ATOMIC_RELAXED) &&
            off % 4096 == 0 && len % 4096 == 0) {
                int e = pwrite_full(r->t->dfd, p, len, off);
                if (e != -EINVAL)
                        return e;
                __atomic_store_n(&ap->no_direct, true, __ATOMIC_RELAXED);
        }
        return pwrite_full(r->t->fd, p, len, off);
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
                        err = zero_range(r, b->ap, off, end - off, &b->bytes);
                        b->zeroed += e - k;
                } else {
                        err = write_data(r, b->ap, b->data + (size_t)it->slot * r->bs, (size_t)(end - off), off);
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
        if (e < 0)
                return e;
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

/* In order: stats, high-water mark, checkpoints. */
static int abatch_collect(struct fb_run *r, struct abatch *b, uint64_t *since_bytes, double *since_t) {
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
                e = fb_target_sync(r->t, false);
                if (e < 0)
                        return log_error_errno(e, "target %s: sync failed", r->t->path);
                r->t->j.done_blocks = b->last + 1;
                r->t->j.percent = (unsigned)(100 * (b->last + 1) / MAX(r->n, 1u));
                e = fb_journal_save(&r->t->j);
                if (e < 0)
                        return log_error_errno(e, "journal %s: cannot record progress", r->t->j.path);
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
                r->st->bytes_written += block_len(r, it.pos);
                for (size_t k = index_find(&r->idx, &it.h, &count), e2 = k + count; k < e2; k++)
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
        int err = 0;

        pass_begin(r, "write", todo ? todo * r->bs : r->d->size - base);
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
                                err = abatch_collect(r, b, &since_bytes, &since_t);
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
        fb_target_open_direct(r->t);
        err = apply_run(r, &ap, &p, src, from);
out:
        ret_manifest_free(p.m);
        ret_manifest_free(p.mb);
        apply_free(&ap);
        update_fetched(r);
        return err;
}
