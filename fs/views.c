/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the mount shows of a disk beyond its bytes, from its manifest:
 * where its holes are (zero blocks: SEEK_DATA/SEEK_HOLE, st_blocks, NBD
 * block status), and which extents changed since the previous point
 * (<disk>.changes). Manifest chunks that hold only zero blocks are skipped
 * whole, so a mostly empty 1 TiB disk is walked in its data blocks.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fs_i.h"

int fs_disk_next(struct fs *fs, const struct ret_disk *d, uint64_t from, uint64_t end, bool data, uint64_t *ret) {
        uint64_t bs = fs->bs, b;

        end = MIN(end, d->size);
        for (b = from / bs; b * bs < end;) {
                size_t ci = (size_t)(b / RET_CHUNK_ENTRIES);
                struct hash128 h;
                int r;

                if (data && ret_chunk_is_zero(d, ci)) {
                        b = (uint64_t)(ci + 1) * RET_CHUNK_ENTRIES;
                        continue;
                }
                r = fs_block_hash(fs, d, b, &h);
                if (r < 0)
                        return r;
                if (hash_is_zero(&h) != data) {
                        *ret = MAX(from, b * bs);
                        return 0;
                }
                b++;
        }
        *ret = end;
        return 0;
}

int fs_disk_data_bytes(struct fs *fs, const struct ret_disk *d, uint64_t start, uint64_t end, uint64_t *ret) {
        uint64_t total = 0, a = start, b;
        int r;

        end = MIN(end, d->size);
        while (a < end) {
                if ((r = fs_disk_next(fs, d, a, end, true, &a)) < 0)
                        return r;
                if (a >= end)
                        break;
                if ((r = fs_disk_next(fs, d, a, end, false, &b)) < 0)
                        return r;
                total += b - a;
                a = b;
        }
        *ret = total;
        return 0;
}

off_t fs_view_seek(struct fs *fs, const struct ret_disk *d, uint64_t base, uint64_t len, uint64_t data_end,
                   uint64_t total, uint64_t off, bool data) {
        uint64_t pos;
        int r;

        if (off >= total)
                return -ENXIO;
        if (off < data_end) {
                r = fs_disk_next(fs, d, base + off, base + data_end, data, &pos);
                if (r < 0)
                        return -EIO;
                pos -= base;
                if (pos < data_end)
                        return (off_t)pos;
                off = data_end;
        }
        if (off >= total)
                return data ? -ENXIO : (off_t)total;
        /* After the disk's bytes: zeros up to len, then data (a footer) to total. */
        if (off < len)
                return data ? (len < total ? (off_t)len : -ENXIO) : (off_t)off;
        return data ? (off_t)off : (off_t)total;
}

/* ---- <disk>.changes ---- */

struct text {
        char *p;
        size_t n, cap;
};

static int text_extent(void *userdata, uint64_t start, uint64_t length) {
        struct text *t = userdata;
        char line[48];
        int k = snprintf(line, sizeof line, "%" PRIu64 " %" PRIu64 "\n", start, length);

        if (t->n + (size_t)k + 1 > t->cap) {
                size_t ncap = MAX(2 * t->cap, (size_t)4096);
                char *np = realloc(t->p, ncap);
                if (!np)
                        return -ENOMEM;
                t->p = np;
                t->cap = ncap;
        }
        memcpy(t->p + t->n, line, (size_t)k + 1);
        t->n += (size_t)k;
        return 0;
}

/* The point of pt's VM just before it, referenced, or NULL. */
static struct fs_point *previous_point(struct fs *fs, struct fs_point *pt) {
        struct fs_point *prev = NULL;

        pthread_mutex_lock(&fs->cat_lock);
        for (size_t i = 0; i < fs->n_points; i++) {
                const struct ret_point *p = fs->points[i]->p;
                if (strcmp(p->vm, pt->p->vm) == 0 && strcmp(p->id, pt->p->id) < 0)
                        prev = fs->points[i];
        }
        if (prev)
                atomic_fetch_add(&prev->refs, 1);
        pthread_mutex_unlock(&fs->cat_lock);
        return prev;
}

static int changes_make(struct fs *fs, struct fs_point *pt, size_t disk, char **ret, size_t *ret_len) {
        struct fs_point *prev = previous_point(fs, pt);
        const struct ret_disk *a = prev ? ret_point_disk(prev->p, pt->p->disks[disk].name) : NULL;
        struct text t = { 0 };
        int r;

        r = ret_disk_diff(fs->s, a, &pt->p->disks[disk], fs->bs, text_extent, &t);
        fs_point_unref(prev);
        if (r < 0) {
                free(t.p);
                return log_error_errno(r, "%s/%s %s: cannot compare with the previous point", pt->p->vm, pt->p->id,
                                       pt->p->disks[disk].name);
        }
        if (!t.p && !(t.p = strdup("")))
                return -ENOMEM;
        *ret = t.p;
        *ret_len = t.n;
        return 0;
}

/* pt's per-disk views, allocated on first use; NULL without memory. */
struct fs_disk_views *fs_views_of(struct fs_point *pt, size_t disk) {
        struct fs_disk_views *v;

        pthread_mutex_lock(&pt->views_lock);
        if (!pt->views)
                pt->views = calloc(pt->p->n_disks, sizeof *pt->views);
        v = pt->views ? &pt->views[disk] : NULL;
        pthread_mutex_unlock(&pt->views_lock);
        return v;
}

void fs_views_free(struct fs_point *pt) {
        for (size_t i = 0; pt->views && i < pt->p->n_disks; i++) {
                free(pt->views[i].changes);
                free(pt->views[i].parts);
        }
        free(pt->views);
}

int fs_changes_text(struct fs *fs, struct fs_point *pt, size_t disk, char **ret, size_t *ret_len) {
        struct fs_disk_views *v = fs_views_of(pt, disk);
        char *text = NULL;
        size_t len = 0;
        int r;

        if (!v)
                return -ENOMEM;
        pthread_mutex_lock(&pt->views_lock);
        if (v->changes) {
                text = v->changes;
                len = v->changes_len;
        }
        pthread_mutex_unlock(&pt->views_lock);
        if (!text) {
                /* Made without the lock (it reads manifest chunks); the
                 * first to finish keeps its text. */
                r = changes_make(fs, pt, disk, &text, &len);
                if (r < 0)
                        return r;
                pthread_mutex_lock(&pt->views_lock);
                if (!v->changes) {
                        v->changes = text;
                        v->changes_len = len;
                } else
                        free(text);
                text = v->changes;
                len = v->changes_len;
                pthread_mutex_unlock(&pt->views_lock);
        }
        if (ret) {
                /* The cached text lives as long as pt; the caller gets a copy. */
                if (!(*ret = malloc(len + 1)))
                        return -ENOMEM;
                memcpy(*ret, text, len + 1);
        }
        *ret_len = len;
        return 0;
}
