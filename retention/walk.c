/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The metadata blobs a disk needs: for a version-2 disk its tree nodes,
 * depth first (each node before its children), then at level 1 the
 * manifest chunks it lists; for a version-1 disk its chunk list. Equal
 * neighbours (the zero-chunk runs of a sparse disk) are read once.
 */
#include <string.h>

#include "common.h"
#include "retention.h"
#include "retention_i.h"

struct walk {
        struct store *s;
        struct store_codec *c;
        const struct ret_disk *d;
        int (*fn)(void *ud, const struct hash128 *h);
        void *ud;
        struct hash128 *buf;      /* tree_levels nodes of tree_fanout entries */
        struct hash128 *last;     /* per level: the last node walked */
        bool *have_last;
};

/* Yield chunks[0..n) skipping runs of one checksum. */
static int yield_chunks(struct walk *w, const struct hash128 *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (i > 0 && memcmp(&v[i], &v[i - 1], sizeof v[i]) == 0)
                        continue;
                int r = w->fn(w->ud, &v[i]);
                if (r)
                        return r;
        }
        return 0;
}

/* Node h of level l: it lists entries [first, first + fanout) (clipped
 * to n_below) of level l - 1. */
static int walk_node(struct walk *w, const struct hash128 *h, unsigned l, uint64_t n_below, uint64_t first) {
        unsigned f = w->d->tree_fanout;
        struct hash128 *node = w->buf + (size_t)(l - 1) * f;
        size_t n = (size_t)MIN((uint64_t)f, n_below - first);
        int r;

        r = w->fn(w->ud, h);
        if (r)
                return r;
        if (w->have_last[l] && memcmp(&w->last[l], h, sizeof *h) == 0)
                return 0; /* the same subtree as the one before: walked already */
        w->last[l] = *h;
        w->have_last[l] = true;
        size_t len = 0;
        r = store_read_blob(w->s, w->c, h, node, n * sizeof *node, &len);
        if (r == -ENOBUFS || (r >= 0 && len != n * sizeof *node))
                r = -EBADMSG;
        if (r < 0)
                return r;
        if (l == 1)
                return yield_chunks(w, node, n);
        /* What the children list: the entries of level l - 2. */
        uint64_t below = w->d->n_chunks;
        for (unsigned i = 0; i < l - 2; i++)
                below = DIV_ROUND_UP(below, f);
        for (size_t i = 0; i < n; i++) {
                r = walk_node(w, &node[i], l - 1, below, (first + i) * f);
                if (r)
                        return r;
        }
        return 0;
}

int ret_disk_meta_walk(struct store *s, const struct ret_disk *d, int (*fn)(void *ud, const struct hash128 *h),
                       void *ud) {
        struct walk w = { .s = s, .d = d, .fn = fn, .ud = ud };
        int r;

        if (d->tree_levels == 0)
                return d->chunks ? yield_chunks(&w, d->chunks, d->n_chunks) : 0;
        if (d->tree_fanout < 2 || d->tree_fanout > RET_TREE_FANOUT_MAX ||
            d->tree_levels != ret_tree_levels(d->n_chunks, d->tree_fanout))
                return -EBADMSG;
        w.buf = malloc((size_t)d->tree_levels * d->tree_fanout * sizeof *w.buf);
        w.last = calloc(d->tree_levels + 1, sizeof *w.last);
        w.have_last = calloc(d->tree_levels + 1, sizeof *w.have_last);
        r = w.buf && w.last && w.have_last ? store_codec_new(s, &w.c) : -ENOMEM;
        if (r >= 0) {
                uint64_t below = d->n_chunks; /* entries on level tree_levels - 1 */
                for (unsigned l = 1; l < d->tree_levels; l++)
                        below = DIV_ROUND_UP(below, d->tree_fanout);
                r = walk_node(&w, &d->tree, d->tree_levels, below, 0);
        }
        store_codec_free(w.c);
        free(w.buf);
        free(w.last);
        free(w.have_last);
        return r;
}
