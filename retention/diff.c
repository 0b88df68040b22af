/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Read-only comparisons of manifests: which chunks hold only zero blocks,
 * and where two disks differ. Equal manifest chunk checksums mean 512
 * equal blocks, so a diff reads only the chunks that differ: a diff of
 * two points of a 1 TiB disk with little change reads a few chunks.
 * Equal tree nodes mean equal chunk lists below them, so two version-2
 * disks of one shape are compared from their roots down, reading only
 * the nodes on paths to changed chunks (and no whole chunk list).
 */
#include <pthread.h>
#include <string.h>

#include "common.h"
#include "retention.h"

static struct hash128 zero_chunk;
static pthread_once_t zero_chunk_once = PTHREAD_ONCE_INIT;

static void zero_chunk_init(void) {
        static const struct hash128 zeros[RET_CHUNK_ENTRIES];
        store_hash(zeros, sizeof zeros, &zero_chunk);
}

bool ret_chunk_is_zero(const struct ret_disk *d, size_t ci) {
        uint64_t n;
        struct hash128 h;

        if (ci >= d->n_chunks)
                return true;
        if (!d->chunks)
                return false; /* a summary: not known here */
        n = MIN((uint64_t)RET_CHUNK_ENTRIES, d->n_blocks - (uint64_t)ci * RET_CHUNK_ENTRIES);
        if (n == RET_CHUNK_ENTRIES) {
                pthread_once(&zero_chunk_once, zero_chunk_init);
                return memcmp(&d->chunks[ci], &zero_chunk, sizeof zero_chunk) == 0;
        }
        {
                static const struct hash128 zeros[RET_CHUNK_ENTRIES];
                store_hash(zeros, (size_t)n * sizeof *zeros, &h);
        }
        return memcmp(&d->chunks[ci], &h, sizeof h) == 0;
}

/* Collects block runs and hands them to the callback merged, in bytes. */
struct runs {
        uint64_t bs, size;        /* size: bytes of the disk extents are clipped to */
        uint64_t start, end;      /* the run being built, in blocks; start == end: none */
        ret_extent_fn cb;
        void *userdata;
};

static int runs_flush(struct runs *x) {
        uint64_t a = x->start * x->bs, b = MIN(x->end * x->bs, x->size);
        int r = 0;

        if (x->end > x->start && b > a)
                r = x->cb(x->userdata, a, b - a);
        x->start = x->end = 0;
        return r;
}

static int runs_add(struct runs *x, uint64_t block) {
        int r;
        if (x->end > x->start && x->end == block) {
                x->end++;
                return 0;
        }
        r = runs_flush(x);
        x->start = block;
        x->end = block + 1;
        return r;
}

struct diff {
        struct store *s;
        struct store_codec *c;
        const struct ret_disk *a, *b;
        struct runs x;
        struct hash128 ea[RET_CHUNK_ENTRIES], eb[RET_CHUNK_ENTRIES];
};

/* Entries of chunk ci of d (checksum h, NULL: none) into e, zeros past its
 * end or for an absent chunk. */
static int chunk_entries(struct diff *df, const struct ret_disk *d, size_t ci, const struct hash128 *h,
                         struct hash128 *e) {
        size_t len = 0, want;
        int r;

        memset(e, 0, RET_CHUNK_ENTRIES * sizeof *e);
        if (!d || !h || ci >= d->n_chunks)
                return 0;
        want = (size_t)MIN((uint64_t)RET_CHUNK_ENTRIES, d->n_blocks - (uint64_t)ci * RET_CHUNK_ENTRIES);
        r = store_read_blob(df->s, df->c, h, e, RET_CHUNK_ENTRIES * sizeof *e, &len);
        if (r == -ENOBUFS || (r >= 0 && len != want * sizeof *e))
                return -EBADMSG;
        return r;
}

/* Compare chunk ci of a (checksum ha) and b (hb), block by block. */
static int diff_chunk(struct diff *df, size_t ci, const struct hash128 *ha, const struct hash128 *hb) {
        uint64_t first = (uint64_t)ci * RET_CHUNK_ENTRIES, last = MIN(first + RET_CHUNK_ENTRIES, df->b->n_blocks);
        int r;

        if (ha && hb && memcmp(ha, hb, sizeof *ha) == 0)
                return 0; /* the same 512 blocks */
        if ((r = chunk_entries(df, df->a, ci, ha, df->ea)) < 0 || (r = chunk_entries(df, df->b, ci, hb, df->eb)) < 0)
                return r;
        for (uint64_t i = first; i < last; i++)
                if (memcmp(&df->ea[i - first], &df->eb[i - first], sizeof df->ea[0]) != 0 &&
                    (r = runs_add(&df->x, i)) < 0)
                        return r;
        return 0;
}

/* Both disks' chunk lists in memory (version 1, or loaded). */
static int diff_lists(struct diff *df) {
        const struct ret_disk *a = df->a, *b = df->b;
        size_t n_chunks = MAX(a ? a->n_chunks : 0, b->n_chunks);
        int r;

        for (size_t ci = 0; ci < n_chunks && (uint64_t)ci * RET_CHUNK_ENTRIES < b->n_blocks; ci++) {
                bool in_a = a && ci < a->n_chunks, in_b = ci < b->n_chunks;
                if ((!in_a || ret_chunk_is_zero(a, ci)) && (!in_b || ret_chunk_is_zero(b, ci)))
                        continue; /* zeros on both sides */
                r = diff_chunk(df, ci, in_a ? &a->chunks[ci] : NULL, in_b ? &b->chunks[ci] : NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Nodes ha (of a) and hb (of b) at level l, listing the entries of level
 * l - 1 from first on. Equal nodes are skipped unread. */
static int diff_nodes(struct diff *df, const struct hash128 *ha, const struct hash128 *hb, unsigned l,
                      uint64_t first) {
        unsigned f = df->b->tree_fanout;
        uint64_t below = df->b->n_chunks;
        _cleanup_free_ struct hash128 *na = NULL, *nb = NULL;
        size_t n;
        int r;

        if (memcmp(ha, hb, sizeof *ha) == 0)
                return 0;
        for (unsigned i = 0; i + 1 < l; i++)
                below = DIV_ROUND_UP(below, f);   /* entries of level l - 1 */
        n = (size_t)MIN((uint64_t)f, below - first);
        na = malloc((size_t)f * sizeof *na);
        nb = malloc((size_t)f * sizeof *nb);
        if (!na || !nb)
                return -ENOMEM;
        size_t la = 0, lb = 0;
        if ((r = store_read_blob(df->s, df->c, ha, na, (size_t)f * sizeof *na, &la)) < 0 ||
            (r = store_read_blob(df->s, df->c, hb, nb, (size_t)f * sizeof *nb, &lb)) < 0)
                return r == -ENOBUFS ? -EBADMSG : r;
        if (la != n * sizeof *na || lb != n * sizeof *nb)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++) {
                r = l == 1 ? diff_chunk(df, (size_t)(first + i), &na[i], &nb[i])
                           : diff_nodes(df, &na[i], &nb[i], l - 1, (first + i) * f);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool same_shape(const struct ret_disk *a, const struct ret_disk *b) {
        return a && a->tree_levels > 0 && a->tree_levels == b->tree_levels && a->tree_fanout == b->tree_fanout &&
               a->n_chunks == b->n_chunks && a->n_blocks == b->n_blocks;
}

int ret_disk_diff(struct store *s, const struct ret_disk *a, const struct ret_disk *b, uint32_t block_size,
                  ret_extent_fn cb, void *userdata) {
        _cleanup_free_ struct diff *df = calloc(1, sizeof *df);
        _cleanup_free_ struct hash128 *la = NULL, *lb = NULL;
        struct ret_disk ca, cb2;
        int r;

        if (!df)
                return -ENOMEM;
        *df = (struct diff){ .s = s, .a = a, .b = b,
                             .x = { .bs = block_size, .size = b->size, .cb = cb, .userdata = userdata } };
        r = store_codec_new(s, &df->c);
        if (r < 0)
                return r;
        if (same_shape(a, b)) {
                r = diff_nodes(df, &a->tree, &b->tree, b->tree_levels, 0);
        } else {
                /* Different shapes (a resize, a version-1 side): whole lists. */
                if (a && !a->chunks && a->n_chunks > 0 && (r = ret_tree_load(s, a, &la)) >= 0) {
                        ca = *a;
                        ca.chunks = la;
                        df->a = &ca;
                }
                if (r >= 0 && !b->chunks && b->n_chunks > 0 && (r = ret_tree_load(s, b, &lb)) >= 0) {
                        cb2 = *b;
                        cb2.chunks = lb;
                        df->b = &cb2;
                }
                if (r >= 0)
                        r = diff_lists(df);
        }
        if (r >= 0)
                r = runs_flush(&df->x);
        store_codec_free(df->c);
        return r;
}
