/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What points use. The metadata blobs a disk needs (ret_disk_meta_walk,
 * the one place that knows how a disk's manifest is stored): for a
 * version-2 disk its tree nodes, depth first (each node before its
 * children), then at level 1 the manifest chunks it lists; for a
 * version-1 disk its chunk list. Equal neighbours (the zero-chunk runs of
 * a sparse disk) are read once. And every blob of every point, for the
 * garbage collector's mark (ret_gc).
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

static int add_meta(void *ud, const struct hash128 *h) {
        return store_gc_mark_add(ud, h);
}

/* Every blob of one disk into m: its metadata, its non-zero blocks. */
static int mark_disk(struct store *s, const struct ret_disk *d, struct store_gc_mark *m) {
        struct ret_manifest *man = NULL;
        int r;

        r = ret_disk_meta_walk(s, d, add_meta, m);
        if (r < 0)
                return r;
        r = ret_manifest_open(s, d, &man);
        if (r < 0)
                return r;
        for (uint64_t i = 0; i < d->n_blocks && r >= 0; i++) {
                struct hash128 h;
                r = ret_manifest_get(man, i, &h);
                if (r >= 0)
                        r = store_gc_mark_add(m, &h);
        }
        ret_manifest_free(man);
        return r < 0 ? r : 0;
}

struct mark_ctx {
        struct store *s;
        const struct ret_point *const *skip;
        size_t n_skip;
};

static bool skipped(const struct mark_ctx *c, const struct ret_point *p) {
        for (size_t i = 0; i < c->n_skip; i++)
                if (strcmp(c->skip[i]->vm, p->vm) == 0 && strcmp(c->skip[i]->id, p->id) == 0)
                        return true;
        return false;
}

static int mark_all(void *ud, struct store_gc_mark *m) {
        struct mark_ctx *c = ud;
        struct ret_point **v = NULL;
        size_t n = 0;
        int r;

        r = ret_points_list(c->s, NULL, &v, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (skipped(c, v[i]))
                        continue;
                for (size_t k = 0; r >= 0 && k < v[i]->n_disks; k++) {
                        r = mark_disk(c->s, &v[i]->disks[k], m);
                        if (r < 0)
                                log_error_errno(r, "gc: reading the manifest of %s/%s %s failed", v[i]->vm,
                                                v[i]->id, v[i]->disks[k].name);
                }
        }
        ret_points_free(v, n);
        return r < 0 ? r : 0;
}

int ret_gc(struct store *s, const struct store_gc_options *o, const struct ret_point *const *skip, size_t n_skip,
           struct store_gc_report *ret) {
        struct mark_ctx c = { s, skip, n_skip };
        return store_gc(s, o, mark_all, &c, ret);
}
