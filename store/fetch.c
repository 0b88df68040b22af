/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Batched blob reads (store_fetch_blocks, store_fetch_blocks_sink): the
 * blobs a caller asks for, looked up, sorted by pack and offset, merged
 * into runs of ranged reads, read in rounds and decoded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "store_i.h"

void store_pack_name(uint64_t pack_id, char *buf, size_t len) {
        pack_name(pack_id, buf, len);
}

struct fetch_ref {
        struct blob_loc loc;
        size_t i; /* index into the caller's array */
};

static int cmp_fetch_ref(const void *a, const void *b) {
        const struct fetch_ref *x = a, *y = b;
        if (x->loc.pack_id != y->loc.pack_id)
                return x->loc.pack_id < y->loc.pack_id ? -1 : 1;
        return x->loc.offset < y->loc.offset ? -1 : x->loc.offset > y->loc.offset;
}

/* One ranged read: a run of blobs of one pack, each starting where the
 * last ended (or nearly: gaps under FETCH_GAP are read through), at most
 * one range buffer (s->buf_size) long. A call reads its runs in rounds of
 * up to one buffer and FETCH_ROUND_RUNS runs, all runs of a round at once
 * (in parallel on a remote backend). Large requests matter: a remote
 * store spends about as much on a request as on megabytes of data.
 *
 * Memory: a round reads into one of at most FETCH_BUFS page-aligned
 * buffers per store, made once and reused (a caller waits for one when
 * all are in use). Before, each call malloc'ed up to 16 MiB; every
 * thread's malloc arena kept such a range, and a mount's peak RSS grew to
 * well over 100 MiB. A round holds its buffer only while it reads and
 * decodes, never while it waits for anything else. */
#define FETCH_GAP (64u << 10)
#define FETCH_ROUND_RUNS 16
/* A codec keeps a scratch buffer up to this size between calls. */
#define SCRATCH_KEEP (2u << 20)

/* A range buffer of s->buf_size bytes: a free one, a new one while fewer
 * than FETCH_BUFS exist, else the next one returned. NULL: no memory. */
static uint8_t *fetch_buf_get(struct store *s) {
        uint8_t *p = NULL;
        bool make = false;

        pthread_mutex_lock(&s->buf_lock);
        while (s->n_free == 0 && s->n_made >= FETCH_BUFS)
                pthread_cond_wait(&s->buf_cond, &s->buf_lock);
        if (s->n_free > 0)
                p = s->bufs[--s->n_free];
        else {
                s->n_made++;
                make = true;
        }
        pthread_mutex_unlock(&s->buf_lock);
        if (make && !(p = alloc_large(s->buf_size))) {
                pthread_mutex_lock(&s->buf_lock);
                s->n_made--;
                pthread_cond_signal(&s->buf_cond);
                pthread_mutex_unlock(&s->buf_lock);
        }
        return p;
}

static void fetch_buf_put(struct store *s, uint8_t *p) {
        pthread_mutex_lock(&s->buf_lock);
        s->bufs[s->n_free++] = p;
        pthread_cond_signal(&s->buf_cond);
        pthread_mutex_unlock(&s->buf_lock);
}

struct fetch_run {
        size_t a, b;         /* refs[a, b) */
        uint64_t start, end; /* byte range in the pack */
};

/* One call's work: the entries, the blobs to read sorted by pack and
 * offset, and the runs they make. */
struct fetch_plan {
        struct store_fetch *v;
        struct fetch_ref *refs;
        size_t m;
        struct fetch_run *runs;
        size_t nr;
        store_fetch_sink sink;
        void *userdata;
        size_t span; /* the range buffer size: a run and a round at most */
};

/* Look every entry up: refs[0..return) gets the blobs to read; an entry
 * that cannot be read (unknown, an impossible index entry, no memory for
 * the codec's block) gets its result now, the others -EIO until read. */
static size_t fetch_lookup(struct store *s, struct store_codec *c, struct store_fetch *v, size_t n,
                           struct fetch_ref *refs, const bool *only) {
        size_t m = 0;

        for (size_t i = 0; i < n; i++) {
                if (only && !only[i])
                        continue;
                v[i].stored = 0;
                v[i].pack_id = 0;
                struct hash128 name;

                store_blob_name(s, &v[i].h, &name);
                v[i].result = store_lookup(s, &name, &refs[m].loc);
                if (v[i].result < 0)
                        continue;
                if (!store_blob_loc_sane(&refs[m].loc)) {
                        v[i].result = -EBADMSG;
                        continue;
                }
                if (!v[i].buf && !c->block && !(c->block = malloc(c->block_size))) {
                        v[i].result = -ENOMEM;
                        continue;
                }
                v[i].pack_id = refs[m].loc.pack_id;
                v[i].result = -EIO; /* until read and decoded */
                refs[m++].i = i;
        }
        return m;
}

/* Cut the sorted refs into runs: a run grows by the next blob of the same
 * pack that starts at or after its end, less than FETCH_GAP past it, while
 * the run stays within one range buffer. (A blob asked for twice starts
 * before the run's end, so it starts a run of its own.) */
static void fetch_coalesce(struct fetch_plan *p) {
        const struct fetch_ref *refs = p->refs;

        p->nr = 0;
        for (size_t a = 0; a < p->m;) {
                size_t b = a + 1;
                uint64_t start = refs[a].loc.offset, end = start + refs[a].loc.len;
                while (b < p->m && refs[b].loc.pack_id == refs[a].loc.pack_id && refs[b].loc.offset >= end &&
                       refs[b].loc.offset - end < FETCH_GAP &&
                       refs[b].loc.offset + refs[b].loc.len - start <= p->span) {
                        end = refs[b].loc.offset + refs[b].loc.len;
                        b++;
                }
                p->runs[p->nr++] = (struct fetch_run){ a, b, start, end };
                a = b;
        }
}

/* The end of the round that starts at run r0: up to FETCH_ROUND_RUNS runs
 * and p->span bytes (a first run larger than that alone: one blob larger
 * than a buffer). *ret_bytes gets the round's size. */
static size_t fetch_round_end(const struct fetch_plan *p, size_t r0, size_t *ret_bytes) {
        size_t r1 = r0, bytes = 0;

        while (r1 < p->nr && r1 - r0 < FETCH_ROUND_RUNS &&
               (r1 == r0 || bytes + (p->runs[r1].end - p->runs[r1].start) <= p->span)) {
                bytes += (size_t)(p->runs[r1].end - p->runs[r1].start);
                r1++;
        }
        *ret_bytes = bytes;
        return r1;
}

/* Decode and verify the blobs of a run that was read (q), into their
 * entries' buffers or the codec's block for the sink. */
static void fetch_deliver(struct store *s, struct store_codec *c, const struct fetch_plan *p,
                          const struct fetch_run *run, const struct backend_range *q) {
        for (size_t j = run->a; j < run->b; j++) {
                const struct blob_loc *loc = &p->refs[j].loc;
                struct store_fetch *f = &p->v[p->refs[j].i];

                if (q->result < 0) {
                        f->result = q->result;
                        continue;
                }
                f->stored = loc->len;
                f->result = store_decode(c, &f->h, (uint8_t *)q->buf + (loc->offset - run->start), loc->len,
                                         f->buf ? f->buf : c->block, s->block_size, NULL);
                if (f->result == 0 && !f->buf && p->sink)
                        p->sink(p->userdata, f, c->block);
        }
}

/* Read runs [r0, r1) (bytes in all) at once into a range buffer (the
 * codec's scratch buffer for a blob larger than one), then deliver their
 * blobs. 0, or -ENOMEM with nothing read. */
static int fetch_round(struct store *s, struct store_codec *c, const struct fetch_plan *p, size_t r0, size_t r1,
                       size_t bytes) {
        struct backend_range br[FETCH_ROUND_RUNS];
        char names[FETCH_ROUND_RUNS][64];
        uint8_t *buf = NULL;
        size_t pos = 0;
        int r;

        if (bytes <= s->buf_size) {
                if (!(buf = fetch_buf_get(s)))
                        return -ENOMEM;
        } else {
                r = store_codec_scratch(c, bytes);
                if (r < 0)
                        return r;
        }
        for (size_t k = r0; k < r1; k++) {
                const struct fetch_run *run = &p->runs[k];
                size_t len = (size_t)(run->end - run->start);

                pack_name(p->refs[run->a].loc.pack_id, names[k - r0], sizeof names[k - r0]);
                br[k - r0] = (struct backend_range){ .name = names[k - r0], .off = run->start,
                                                     .buf = (buf ? buf : c->scratch) + pos, .len = len };
                pos += len;
        }
        backend_get_ranges(s->b, br, r1 - r0);
        for (size_t k = r0; k < r1; k++) {
                if (br[k - r0].result >= 0)
                        store_count_read(s, br[k - r0].len);
                fetch_deliver(s, c, p, &p->runs[k], &br[k - r0]);
        }
        if (buf)
                fetch_buf_put(s, buf);
        return 0;
}

static int fetch_once(struct store *s, struct store_codec *c, struct store_fetch *v, size_t n,
                      store_fetch_sink sink, void *userdata, struct fetch_ref *refs, struct fetch_run *runs,
                      const bool *only) {
        struct fetch_plan p = { .v = v, .refs = refs, .runs = runs, .sink = sink, .userdata = userdata,
                                .span = s->buf_size };
        int err = 0;

        p.m = fetch_lookup(s, c, v, n, refs, only);
        qsort(refs, p.m, sizeof *refs, cmp_fetch_ref);
        fetch_coalesce(&p);
        for (size_t r0 = 0; r0 < p.nr && err == 0;) {
                size_t bytes, r1 = fetch_round_end(&p, r0, &bytes);

                err = fetch_round(s, c, &p, r0, r1, bytes);
                r0 = r1;
        }
        return err;
}

/* Entries whose block was not found (not in the index, or its pack gone
 * after a garbage collection) are tried once more after one reload of
 * the index. */
int store_fetch_blocks_sink(struct store *s, struct store_codec *c, struct store_fetch *v, size_t n,
                            store_fetch_sink sink, void *userdata) {
        _cleanup_free_ struct fetch_ref *refs = calloc(MAX(n, 1), sizeof *refs);
        _cleanup_free_ struct fetch_run *runs = calloc(MAX(n, 1), sizeof *runs);
        _cleanup_free_ bool *again = NULL;
        uint64_t gen = atomic_load(&s->reload_gen);
        size_t n_again = 0;
        int err;

        if (!refs || !runs)
                return -ENOMEM;
        err = fetch_once(s, c, v, n, sink, userdata, refs, runs, NULL);
        for (size_t i = 0; err == 0 && i < n; i++)
                if (v[i].result == -ENOENT && !hash_is_zero(&v[i].h)) {
                        if (!again && !(again = calloc(n, sizeof *again)))
                                break;
                        again[i] = true;
                        n_again++;
                }
        if (n_again && store_reload_index(s, gen) == 0)
                err = fetch_once(s, c, v, n, sink, userdata, refs, runs, again);
        if (c->scratch_cap > SCRATCH_KEEP) {
                free(c->scratch);
                c->scratch = NULL;
                c->scratch_cap = 0;
        }
        return err;
}

int store_fetch_blocks(struct store *s, struct store_codec *c, struct store_fetch *v, size_t n) {
        return store_fetch_blocks_sink(s, c, v, n, NULL, NULL);
}
