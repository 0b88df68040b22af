/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What points use, for garbage collection: the metadata blobs of a disk
 * (ret_disk_meta_walk, the one place that knows how a disk's manifest is
 * stored) and every blob of every point (ret_gc's mark).
 */
#include <string.h>

#include "common.h"
#include "retention.h"

int ret_disk_meta_walk(struct store *s, const struct ret_disk *d, int (*fn)(void *ud, const struct hash128 *h),
                       void *ud) {
        (void)s; /* format 1: the chunk list is in the point */
        for (size_t i = 0; i < d->n_chunks; i++) {
                int r = fn(ud, &d->chunks[i]);
                if (r < 0)
                        return r;
        }
        return 0;
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
