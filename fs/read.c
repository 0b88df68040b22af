/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The read path. For each block a read touches: zero -> zeros; in the
 * cache -> there; in a seed -> read locally; else fetched from the vault,
 * adjacent blobs of one pack merged into one ranged read. Every block is
 * verified (by the cache, the seed and the store). Vault errors that may
 * pass (I/O, a pack that is missing right now) are retried with backoff
 * for up to the mount's timeout; a checksum mismatch fails at once.
 * Sequential readers trigger readahead into the cache on a worker pool.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs_i.h"

/* Readahead of a sequential reader: the window starts at RA_WINDOW_MIN
 * and doubles each time the reader comes within half a window of its end,
 * up to RA_WINDOW_MAX. It goes out as jobs of up to RA_JOB bytes of disk,
 * each one batched fetch (few, large ranged reads: a remote store spends
 * as much on a request as on megabytes). */
#define RA_WINDOW_MIN (16u << 20)
#define RA_WINDOW_MAX (128u << 20)
#define RA_JOB (32u << 20)
#define RA_MAX_INFLIGHT 6
/* A read continues a stream when it starts at most RA_GAP after the
 * stream's head or at most RA_NEAR before it: the kernel sends several
 * reads at once, and they arrive in any order. */
#define RA_GAP (128u << 10)
#define RA_NEAR (4u << 20)
/* Readahead starts once a stream has read this much in a row: scattered
 * small reads (a filesystem's metadata, random I/O) get none. */
#define RA_MIN_STREAM (512u << 10)

/* Wait before retry number attempt + 1, no later than deadline. */
static void sleep_backoff(unsigned attempt, double deadline) {
        double s = MIN(0.05 * (double)(1u << MIN(attempt, 5u)), 1.0), left = deadline - now_monotonic();
        struct timespec ts;

        s = MIN(s, MAX(left, 0.0));
        ts.tv_sec = (time_t)s;
        ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
        nanosleep(&ts, NULL);
}

/* What a read retries until its deadline: the transient errors, and a
 * block the vault cannot find (-ENOENT): its pack may be unreachable for a
 * while (a directory vault moved away and back), or in an index segment
 * written since the mount looked. */
static bool transient(int r) {
        return error_transient(r) || r == -ENOENT;
}

/* How long a read may wait for the vault. A read that failed because the
 * vault could not be reached is retried by the kernel at once (a failed
 * readahead, then the page itself): for a second after such a failure,
 * reads try once, briefly, so that the whole system call fails within
 * the timeout instead of twice the timeout. */
#define FAIL_FAST_WINDOW 1.0
#define FAIL_FAST_WAIT 0.5

static double read_deadline(struct fs *fs) {
        double now = now_monotonic();
        uint64_t until_ms = atomic_load(&fs->unreachable_until_ms);
        if (until_ms && now * 1000 < (double)until_ms)
                return now + MIN(FAIL_FAST_WAIT, (double)fs->o.timeout);
        return now + fs->o.timeout;
}

static void note_unreachable(struct fs *fs) {
        atomic_store(&fs->unreachable_until_ms, (uint64_t)((now_monotonic() + FAIL_FAST_WINDOW) * 1000));
}

int fs_block_hash(struct fs *fs, const struct ret_disk *d, uint64_t i, struct hash128 *ret) {
        size_t ci = (size_t)(i / RET_CHUNK_ENTRIES), slot;
        const struct hash128 *ch = &d->chunks[ci];
        uint32_t expect = (uint32_t)MIN((uint64_t)RET_CHUNK_ENTRIES, d->n_blocks - (uint64_t)ci * RET_CHUNK_ENTRIES);
        struct chunk_slot *cs;
        _cleanup_free_ struct hash128 *tmp = NULL;
        struct store_codec *c;
        double deadline = read_deadline(fs);
        size_t len = 0;
        uint64_t v;
        int r;

        memcpy(&v, ch->b, sizeof v);
        slot = (size_t)(v % CHUNK_SLOTS);
        cs = &fs->chunks[slot];
        pthread_mutex_lock(&fs->chunk_lock[slot % CHUNK_LOCKS]);
        if (cs->valid && memcmp(&cs->h, ch, sizeof *ch) == 0) {
                *ret = cs->e[i % RET_CHUNK_ENTRIES];
                pthread_mutex_unlock(&fs->chunk_lock[slot % CHUNK_LOCKS]);
                return 0;
        }
        pthread_mutex_unlock(&fs->chunk_lock[slot % CHUNK_LOCKS]);

        tmp = malloc(RET_CHUNK_ENTRIES * sizeof *tmp);
        c = store_codec_pool_get(fs->codecs);
        if (!tmp || !c) {
                store_codec_pool_put(fs->codecs, c);
                return -ENOMEM;
        }
        double prev_deadline = store_thread_deadline(deadline);
        for (unsigned attempt = 0;; attempt++) {
                if (ret_chunk_unreadable(ch)) { /* under a damaged tree node: no retry brings it */
                        r = -ENOENT;
                        break;
                }
                r = store_read_blob(fs->s, c, ch, tmp, RET_CHUNK_ENTRIES * sizeof *tmp, &len);
                if (r == -ENOENT && attempt == 0)
                        (void)store_refresh(fs->s);
                if (r >= 0 || !transient(r) || now_monotonic() > deadline)
                        break;
                atomic_fetch_add(&fs->st.retries, 1);
                sleep_backoff(attempt, deadline);
        }
        store_thread_deadline(prev_deadline);
        store_codec_pool_put(fs->codecs, c);
        if (r >= 0 && len != expect * sizeof *tmp)
                r = -EBADMSG;
        if (r < 0)
                return r;
        pthread_mutex_lock(&fs->chunk_lock[slot % CHUNK_LOCKS]);
        cs->h = *ch;
        cs->n = expect;
        memcpy(cs->e, tmp, len);
        cs->valid = true;
        *ret = cs->e[i % RET_CHUNK_ENTRIES];
        pthread_mutex_unlock(&fs->chunk_lock[slot % CHUNK_LOCKS]);
        return 0;
}

struct sink_ctx {
        struct fs *fs;
        bool release; /* a readahead job: readers wait for each block, not the job */
};

static void to_cache(void *userdata, struct store_fetch *f, const void *data) {
        struct sink_ctx *x = userdata;
        (void)store_cache_put(x->fs->cache, &f->h, data);
        if (x->release)
                fs_fl_release(x->fs, &f->h);
}

/* Fetch v[0..n) from the vault, retrying what may pass until deadline
 * (one attempt at least); fills results, puts good blocks into the cache.
 * Entries without a buffer (readahead: prefetch) go only there, and each
 * one's claim is released as soon as it is cached: the entries whose
 * result is 0 are released, the others are still claimed. */
static void fetch_blocks(struct fs *fs, struct store_fetch *v, size_t n, bool prefetch, double deadline) {
        struct store_codec *c = store_codec_pool_get(fs->codecs);
        struct sink_ctx sx = { fs, prefetch };
        bool refreshed = false;
        double prev_deadline;

        if (!c) {
                for (size_t k = 0; k < n; k++)
                        v[k].result = -ENOMEM;
                return;
        }
        for (size_t k = 0; k < n; k++)
                v[k].result = -EAGAIN;
        /* No store call outlasts the deadline, whatever the remote does. */
        prev_deadline = store_thread_deadline(deadline);
        for (unsigned attempt = 0;; attempt++) {
                _cleanup_free_ struct store_fetch *todo = malloc(MAX(n, 1) * sizeof *todo);
                _cleanup_free_ size_t *map = malloc(MAX(n, 1) * sizeof *map);
                size_t m = 0;
                bool again = false;
                int r;

                if (!todo || !map)
                        break;
                for (size_t k = 0; k < n; k++)
                        if (v[k].result != 0 && (v[k].result == -EAGAIN || transient(v[k].result))) {
                                todo[m] = v[k];
                                map[m++] = k;
                        }
                if (m == 0)
                        break;
                r = store_fetch_blocks_sink(fs->s, c, todo, m, to_cache, &sx);
                for (size_t k = 0; k < m; k++) {
                        struct store_fetch *f = &todo[k];
                        if (r < 0 && f->result != 0) /* blocks done before the failure stay done */
                                f->result = r;
                        v[map[k]] = *f;
                        if (f->result == 0) {
                                if (f->buf)
                                        (void)store_cache_put(fs->cache, &f->h, f->buf);
                                atomic_fetch_add(&fs->st.blocks_fetched, 1);
                                atomic_fetch_add(&fs->st.bytes_fetched, f->stored);
                                if (prefetch)
                                        atomic_fetch_add(&fs->st.blocks_prefetched, 1);
                        } else if (transient(f->result))
                                again = true;
                }
                if (!again)
                        break;
                /* A block the index does not know may be in a segment
                 * written since we looked: refresh once. */
                if (!refreshed) {
                        (void)store_refresh(fs->s);
                        refreshed = true;
                }
                if (now_monotonic() > deadline)
                        break;
                atomic_fetch_add(&fs->st.retries, 1);
                sleep_backoff(attempt, deadline);
        }
        store_thread_deadline(prev_deadline);
        store_codec_pool_put(fs->codecs, c);
}

/* Log each failed fetch in v[from, to) (block numbers first + k[j]);
 * -EIO if any failed. */
static struct sync_seed *file_seed(struct fs_file *f) {
        return f->pt->seeds ? f->pt->seeds[f->disk_index] : NULL;
}

/* Block b of f's disk from f's on-prem seed (the same offset of the file
 * its process is writing in MOUNT/failback) into buf, when it has
 * checksum h there. */
static bool onprem_ref(const struct fs_file *f, struct fs_onprem_ref *ret) {
        int sfd = atomic_load(&f->onprem_seed);

        if (sfd <= 0)
                return false;
        *ret = (struct fs_onprem_ref){ .fd = sfd - 1, .dev = f->seed_dev, .ino = f->seed_ino, .size = f->d->size };
        return true;
}

static bool onprem_seed_read(struct fs *fs, struct fs_file *f, uint64_t b, const struct hash128 *h, void *buf) {
        struct fs_onprem_ref r;
        return onprem_ref(f, &r) && fs_onprem_seed_block(fs, &r, b, h, buf);
}

/* Where a block of a read comes from. */
enum block_src { SRC_ZERO, SRC_CACHE, SRC_SEED, SRC_VAULT };

/* One read's plan: for each block it touches, its source and, for blocks
 * that go to the vault, the fetch (own[]: claimed here; waits[]: another
 * thread was fetching it). */
struct read_plan {
        struct fs *fs;
        struct fs_file *f;
        uint64_t off, first, n;
        size_t len;
        uint8_t *src;            /* per block: enum block_src */
        uint8_t *tmp;            /* the first and last block, when the read covers them in part */
        struct store_fetch *fv;  /* the vault fetches, in the store's form */
        struct plan_fetch {
                size_t k;        /* the block's index in the read */
                bool claimed;    /* this read holds the block's fetch claim */
        } *fk;
        size_t nf;
        struct plan_wait {
                struct hash128 h;
                uint8_t *dst;
                size_t k;
        } *waits;
        size_t nw;
};

static void plan_free(struct read_plan *p) {
        free(p->src);
        free(p->tmp);
        free(p->fv);
        free(p->fk);
        free(p->waits);
}

static int plan_alloc(struct read_plan *p) {
        size_t n = (size_t)p->n;
        p->tmp = malloc(2 * (size_t)p->fs->bs);
        p->src = malloc(n);
        p->fv = malloc(n * sizeof *p->fv);
        p->fk = malloc(n * sizeof *p->fk);
        p->waits = malloc(n * sizeof *p->waits);
        return p->tmp && p->src && p->fv && p->fk && p->waits ? 0 : -ENOMEM;
}

static void plan_fetch_add(struct read_plan *p, const struct hash128 *h, uint8_t *dst, size_t k, bool claimed) {
        p->fv[p->nf] = (struct store_fetch){ .h = *h, .buf = dst };
        p->fk[p->nf++] = (struct plan_fetch){ .k = k, .claimed = claimed };
}

/* Find block k's source, reading it into dst when that is local. */
static int plan_block(struct read_plan *p, struct sync_seed *seed, size_t k, uint8_t *dst) {
        struct fs *fs = p->fs;
        uint64_t block = p->first + k;
        struct hash128 h;
        bool claimed = false;
        int r = fs_block_hash(fs, p->f->d, block, &h);

        if (r < 0) {
                if (transient(r))
                        note_unreachable(fs);
                log_error_errno(r, "%s/%s %s: manifest chunk for block %" PRIu64 " unreadable", p->f->pt->p->vm,
                                p->f->pt->p->id, p->f->d->name, block);
                return -EIO;
        }
        if (hash_is_zero(&h)) {
                p->src[k] = SRC_ZERO;
                return 0;
        }
        p->src[k] = SRC_CACHE;
        if (store_cache_get(fs->cache, &h, dst) == 0)
                return 0;
        p->src[k] = SRC_SEED;
        if ((seed && sync_seed_read(seed, block, &h, dst) == 0) || onprem_seed_read(fs, p->f, block, &h, dst))
                return 0;
        p->src[k] = SRC_VAULT;
        switch (fs_claim_block(fs, &h, &claimed)) {
        case FS_CLAIM_OTHERS:
                p->waits[p->nw++] = (struct plan_wait){ .h = h, .dst = dst, .k = k };
                return 0;
        case FS_CLAIM_CACHED:
                if (store_cache_get(fs->cache, &h, dst) == 0) {
                        p->src[k] = SRC_CACHE;
                        return 0;
                }
                break; /* evicted since: fetch it unclaimed */
        case FS_CLAIM_MINE:
                break;
        }
        plan_fetch_add(p, &h, dst, k, claimed);
        return 0;
}

static int plan_report(struct read_plan *p, size_t from) {
        int err = 0;
        for (size_t j = from; j < p->nf; j++) {
                const struct store_fetch *v = &p->fv[j];
                char pack[64] = "?";
                if (v->result == 0)
                        continue;
                if (v->pack_id)
                        store_pack_name(v->pack_id, pack, sizeof pack);
                if (v->result == -EBADMSG)
                        log_error("%s/%s %s: block %" PRIu64 " failed checksum verification (pack %s)", p->f->pt->p->vm,
                                  p->f->pt->p->id, p->f->d->name, p->first + p->fk[j].k, pack);
                else
                        log_error_errno(v->result, "%s/%s %s: block %" PRIu64 " could not be fetched (pack %s)",
                                        p->f->pt->p->vm, p->f->pt->p->id, p->f->d->name, p->first + p->fk[j].k, pack);
                err = -EIO;
        }
        return err;
}

/* Fetch the plan's vault blocks: this read's own claims first (a block can
 * repeat within one read, and its second copy waits for the first; claims
 * are always released), then the blocks another thread was fetching, from
 * the cache once that fetch ended, or fetched here if it failed. One
 * deadline for the whole read, waits included. */
static int plan_fetch(struct read_plan *p, double deadline) {
        struct fs *fs = p->fs;
        size_t own = p->nf;
        int err = 0;

        if (own > 0)
                fetch_blocks(fs, p->fv, own, false, deadline);
        for (size_t j = 0; j < own; j++)
                if (p->fk[j].claimed)
                        fs_fl_release(fs, &p->fv[j].h);
        if (own > 0)
                err = plan_report(p, 0);
        for (size_t j = 0; err == 0 && j < p->nw; j++) {
                struct plan_wait *w = &p->waits[j];
                fs_fl_wait(fs, &w->h);
                if (store_cache_get(fs->cache, &w->h, w->dst) == 0)
                        p->src[w->k] = SRC_CACHE;
                else
                        plan_fetch_add(p, &w->h, w->dst, w->k, false);
        }
        if (err == 0 && p->nf > own) {
                fetch_blocks(fs, p->fv + own, p->nf - own, false, deadline);
                err = plan_report(p, own);
        }
        if (err < 0) {
                for (size_t j = 0; j < p->nf; j++)
                        if (p->fv[j].result != 0 && transient(p->fv[j].result)) {
                                note_unreachable(fs);
                                break;
                        }
        }
        return err;
}

/* Zeros and the partial first and last blocks into buf; count the bytes
 * by source. */
static void plan_finish(struct read_plan *p, char *buf) {
        struct fs *fs = p->fs;
        uint32_t bs = fs->bs;

        for (uint64_t k = 0; k < p->n; k++) {
                uint64_t bstart = (p->first + k) * bs;
                uint64_t a = MAX(p->off, bstart), b = MIN(p->off + p->len, bstart + bs);
                size_t cnt = (size_t)(b - a);
                if (p->src[k] == SRC_ZERO)
                        memset(buf + (a - p->off), 0, cnt);
                else if (cnt != bs)
                        memcpy(buf + (a - p->off), p->tmp + (k == 0 ? 0 : bs) + (a - bstart), cnt);
                switch (p->src[k]) {
                case SRC_ZERO: atomic_fetch_add(&fs->st.bytes_zero, cnt); break;
                case SRC_CACHE: atomic_fetch_add(&fs->st.bytes_cache, cnt); break;
                case SRC_SEED: atomic_fetch_add(&fs->st.bytes_seed, cnt); break;
                default: atomic_fetch_add(&fs->st.bytes_vault, cnt); break;
                }
        }
}

int fs_read_disk(struct fs *fs, struct fs_file *f, char *buf, size_t len, uint64_t off) {
        const struct ret_disk *d = f->d;
        uint32_t bs = fs->bs;
        struct read_plan p = { .fs = fs, .f = f, .off = off };
        struct sync_seed *seed = file_seed(f);
        /* One timeout for the whole read, waits for others' fetches included. */
        double deadline = read_deadline(fs);
        int err = 0;

        if (off >= d->size || len == 0)
                return 0;
        p.len = len = (size_t)MIN((uint64_t)len, d->size - off);
        p.first = off / bs;
        p.n = (off + len - 1) / bs - p.first + 1;
        if (plan_alloc(&p) < 0) {
                plan_free(&p);
                return -ENOMEM;
        }
        for (uint64_t k = 0; k < p.n && err == 0; k++) {
                uint64_t bstart = (p.first + k) * bs;
                /* A block the read covers whole is produced in place. */
                bool whole = bstart >= off && bstart + bs <= off + len;
                err = plan_block(&p, seed, (size_t)k, whole ? (uint8_t *)buf + (bstart - off) : p.tmp + (k == 0 ? 0 : bs));
        }
        if (err < 0) {
                /* Release the claims taken before the failing block. */
                for (size_t j = 0; j < p.nf; j++)
                        if (p.fk[j].claimed)
                                fs_fl_release(fs, &p.fv[j].h);
        } else
                err = plan_fetch(&p, deadline);
        if (err < 0)
                atomic_fetch_add(&fs->st.errors, 1);
        else
                plan_finish(&p, buf);
        plan_free(&p);
        return err < 0 ? err : (int)len;
}

/* ---- readahead ---- */

struct ra_job {
        struct fs *fs;
        struct fs_point *pt; /* referenced: keeps the disk alive */
        size_t n;
        struct store_fetch *v; /* claimed blocks, buf NULL: fetched into the cache */
        double deadline;       /* from submission: a job that waited out an outage in the queue tries once */
        /* A file with an on-prem seed: blocks [first, end) of d are
         * checked there and claimed by the job itself, on the pool
         * (reading and checksumming them would hold up the read that
         * started the job); op.fd is the job's own descriptor. */
        bool deferred;
        const struct ret_disk *d;
        uint64_t first, end;
        struct fs_onprem_ref op;
};

/* Release the claims of v[0..n) whose fetch failed (fetched ones were
 * released when cached). */
static void release_failed(struct fs *fs, const struct store_fetch *v, size_t n) {
        for (size_t k = 0; k < n; k++)
                if (v[k].result != 0)
                        fs_fl_release(fs, &v[k].h);
}

static void ra_job_free(struct ra_job *j) {
        struct fs *fs = j->fs;
        release_failed(fs, j->v, j->n);
        pthread_mutex_lock(&fs->ra_lock);
        fs->ra_inflight--;
        pthread_mutex_unlock(&fs->ra_lock);
        fs_point_unref(j->pt);
        if (j->deferred)
                close(j->op.fd);
        free(j->v);
        free(j);
}

static size_t claim_fetchable(struct fs *fs, const struct ret_disk *d, struct sync_seed *seed,
                              const struct fs_onprem_ref *op, const uint64_t *blocks, uint64_t first, size_t n,
                              struct store_fetch *v);

static void ra_work(void *arg) {
        struct ra_job *j = arg;
        if (j->deferred)
                j->n = claim_fetchable(j->fs, j->d, NULL, &j->op, NULL, j->first, (size_t)(j->end - j->first), j->v);
        if (j->n > 0)
                fetch_blocks(j->fs, j->v, j->n, true, j->deadline);
        ra_job_free(j);
}

/* Claim, into v, the blocks of disk d to fetch among blocks[0..n) (or
 * first + k when blocks is NULL): those not zero, cached, in seed nor at
 * the same offset of the on-prem seed op (when not NULL), nor being
 * fetched. Claimed before they are fetched, so that readers arriving
 * meanwhile wait for this fetch instead of fetching the same blocks in
 * small pieces. Stops early when the table of fetches is full. Returns
 * how many were claimed. */
static size_t claim_fetchable(struct fs *fs, const struct ret_disk *d, struct sync_seed *seed,
                              const struct fs_onprem_ref *op, const uint64_t *blocks, uint64_t first, size_t n,
                              struct store_fetch *v) {
        /* The on-prem seed has no index: its blocks are read and checked
         * here, and again (verified) by the read that serves them. */
        _cleanup_free_ uint8_t *tmp = op ? malloc(fs->bs) : NULL;
        size_t m = 0;
        bool claimed;

        for (size_t k = 0; k < n; k++) {
                uint64_t b = blocks ? blocks[k] : first + k;
                struct hash128 h;
                if (fs_block_hash(fs, d, b, &h) < 0)
                        break;
                if (hash_is_zero(&h) || store_cache_contains(fs->cache, &h) || (seed && sync_seed_has(seed, b, &h)) ||
                    (tmp && fs_onprem_seed_block(fs, op, b, &h, tmp)))
                        continue;
                if (fs_claim_block(fs, &h, &claimed) != FS_CLAIM_MINE)
                        continue; /* being fetched, or just cached */
                if (!claimed)     /* table full: the reader fetches the rest */
                        break;
                v[m++] = (struct store_fetch){ .h = h };
        }
        return m;
}

/* A job for blocks [first, end) of f's disk; NULL when there is nothing
 * to fetch (or no memory). */
static struct ra_job *ra_job_make(struct fs *fs, struct fs_file *f, uint64_t first, uint64_t end) {
        struct ra_job *j = calloc(1, sizeof *j);
        struct fs_onprem_ref op;

        if (!j || !(j->v = calloc(end - first, sizeof *j->v))) {
                free(j);
                return NULL;
        }
        j->fs = fs;
        if (onprem_ref(f, &op) && (op.fd = fcntl(op.fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
                j->deferred = true;
                j->op = op;
                j->d = f->d;
                j->first = first;
                j->end = end;
        } else {
                j->n = claim_fetchable(fs, f->d, file_seed(f), NULL, NULL, first, (size_t)(end - first), j->v);
                if (j->n == 0) {
                        free(j->v);
                        free(j);
                        return NULL;
                }
        }
        j->pt = f->pt;
        j->deadline = now_monotonic() + fs->o.timeout;
        atomic_fetch_add(&f->pt->refs, 1);
        return j;
}

void fs_fetch_into_cache(struct fs *fs, struct fs_file *f, const uint64_t *blocks, size_t n) {
        _cleanup_free_ struct store_fetch *v = calloc(MAX(n, 1), sizeof *v);
        size_t m;

        if (!v)
                return;
        m = claim_fetchable(fs, f->d, file_seed(f), NULL, blocks, 0, n, v); /* the blocks differ on-prem */
        if (m == 0)
                return;
        fetch_blocks(fs, v, m, true, now_monotonic() + fs->o.timeout);
        release_failed(fs, v, m);
}

/* Called when a read of [off, off + len) arrives, before it is served: a
 * reader that keeps going forward gets the next window fetched in the
 * background, claimed before this read's own fetch. */
void fs_readahead(struct fs *fs, struct fs_file *f, uint64_t off, size_t len);
void fs_readahead(struct fs *fs, struct fs_file *f, uint64_t off, size_t len) {
        uint64_t end = off + len, start, stop;
        bool seq;

        pthread_mutex_lock(&f->lock);
        seq = off <= f->next_off + RA_GAP && off + RA_NEAR >= f->next_off;
        f->next_off = seq ? MAX(f->next_off, end) : end;
        f->seq_bytes = seq ? f->seq_bytes + len : len;
        if (!seq) {
                f->ra_win = 0;
                f->ra_end = 0;
        }
        end = f->next_off;
        if (f->seq_bytes < RA_MIN_STREAM || (f->ra_win && end + f->ra_win / 2 < f->ra_end) || end >= f->d->size) {
                pthread_mutex_unlock(&f->lock);
                return;
        }
        f->ra_win = f->ra_win ? MIN(2 * f->ra_win, (uint64_t)RA_WINDOW_MAX) : RA_WINDOW_MIN;
        start = MAX(end, f->ra_end);
        stop = MIN(end + f->ra_win, f->d->size);
        if (stop <= start) {
                pthread_mutex_unlock(&f->lock);
                return;
        }
        f->ra_end = stop;
        pthread_mutex_unlock(&f->lock);

        for (uint64_t a = start; a < stop; a += RA_JOB) {
                uint64_t first = a / fs->bs, last = DIV_ROUND_UP(MIN(a + RA_JOB, stop), fs->bs);
                struct ra_job *j;

                pthread_mutex_lock(&fs->ra_lock);
                if (fs->ra_inflight >= RA_MAX_INFLIGHT) {
                        pthread_mutex_unlock(&fs->ra_lock);
                        pthread_mutex_lock(&f->lock);
                        if (f->ra_end > a)
                                f->ra_end = a; /* the rest next time */
                        pthread_mutex_unlock(&f->lock);
                        return;
                }
                fs->ra_inflight++;
                pthread_mutex_unlock(&fs->ra_lock);

                j = ra_job_make(fs, f, first, last);
                if (!j) {
                        pthread_mutex_lock(&fs->ra_lock);
                        fs->ra_inflight--;
                        pthread_mutex_unlock(&fs->ra_lock);
                        continue;
                }
                pool_submit(fs->ra_pool, ra_work, j);
        }
}

char *fs_stats_json(struct fs *fs) {
        json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                              "bytes_zero", (json_int_t)atomic_load(&fs->st.bytes_zero),
                              "bytes_cache", (json_int_t)atomic_load(&fs->st.bytes_cache),
                              "bytes_seed", (json_int_t)atomic_load(&fs->st.bytes_seed),
                              "bytes_vault", (json_int_t)atomic_load(&fs->st.bytes_vault),
                              "blocks_fetched", (json_int_t)atomic_load(&fs->st.blocks_fetched),
                              "bytes_fetched", (json_int_t)atomic_load(&fs->st.bytes_fetched),
                              "blocks_prefetched", (json_int_t)atomic_load(&fs->st.blocks_prefetched),
                              "errors", (json_int_t)atomic_load(&fs->st.errors),
                              "reads", (json_int_t)atomic_load(&fs->st.reads),
                              "retries", (json_int_t)atomic_load(&fs->st.retries),
                              "blocks_compared", (json_int_t)atomic_load(&fs->st.blocks_compared),
                              "blocks_skipped", (json_int_t)atomic_load(&fs->st.blocks_skipped),
                              "blocks_written", (json_int_t)atomic_load(&fs->st.blocks_written),
                              "bytes_written", (json_int_t)atomic_load(&fs->st.bytes_written));
        return fs_json_text(o);
}

char *fs_json_text(json_t *o) {
        char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (text) {
                size_t n = strlen(text);
                char *t = realloc(text, n + 2);
                if (!t) {
                        free(text);
                        return NULL;
                }
                t[n] = '\n';
                t[n + 1] = 0;
                text = t;
        }
        return text;
}
