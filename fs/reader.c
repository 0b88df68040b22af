/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One point's disk read without a mount (fs.h): the mount's struct fs,
 * set up as for a mount but never mounted, and one open file of it per
 * stream. Reads go through read.c as the mount's do.
 */
#include <stdio.h>
#include <string.h>

#include "fs_i.h"

struct fs_reader {
        struct fs *fs;
        struct fs_point *pt; /* referenced */
        size_t disk;
};

struct fs_reader_stream {
        struct fs_reader *r;
        struct fs_file f;
};

/* vm's point spec, referenced, or NULL. Before any thread runs. */
static struct fs_point *find_point(struct fs *fs, const char *vm, const char *spec) {
        struct fs_point *pt;

        pthread_mutex_lock(&fs->cat_lock);
        if (strcmp(spec, "latest") == 0 || strcmp(spec, "latest-app") == 0)
                pt = fs_catalog_latest_locked(fs, vm, spec[6] != 0);
        else
                pt = fs_catalog_find_locked(fs, vm, spec);
        if (pt)
                atomic_fetch_add(&pt->refs, 1);
        pthread_mutex_unlock(&fs->cat_lock);
        return pt;
}

int fs_reader_open(const struct fs_options *o, const char *vm, const char *point, const char *disk,
                   struct fs_reader **ret) {
        struct fs_reader *r = calloc(1, sizeof *r);
        int e;

        if (!r || !(r->fs = calloc(1, sizeof *r->fs))) {
                free(r);
                return -ENOMEM;
        }
        e = fs_setup(r->fs, o);
        if (e < 0)
                goto fail;
        r->pt = find_point(r->fs, vm, point);
        if (!r->pt) {
                e = log_error_errno(-ENOENT, "%s: VM '%s' has no point %s", o->vault, vm, point);
                goto fail;
        }
        for (r->disk = 0; r->disk < r->pt->p->n_disks; r->disk++)
                if (strcmp(r->pt->p->disks[r->disk].name, disk) == 0)
                        break;
        if (r->disk == r->pt->p->n_disks) {
                e = log_error_errno(-ENOENT, "%s: point %s/%s has no disk '%s'", o->vault, vm, r->pt->p->id, disk);
                goto fail;
        }
        *ret = r;
        return 0;
fail:
        fs_reader_free(r);
        return e;
}

int fs_reader_start(struct fs_reader *r) {
        return r->fs->ra_pool ? 0 : pool_new(4, 16, &r->fs->ra_pool);
}

void fs_reader_free(struct fs_reader *r) {
        if (!r)
                return;
        /* The readahead pool first (fs_free): its jobs hold the point. */
        fs_point_unref(r->pt);
        fs_free(r->fs);
        free(r);
}

uint64_t fs_reader_size(const struct fs_reader *r) { return r->pt->p->disks[r->disk].size; }

const char *fs_reader_point_id(const struct fs_reader *r) { return r->pt->p->id; }

int fs_reader_stream_new(struct fs_reader *r, struct fs_reader_stream **ret) {
        struct fs_reader_stream *st = calloc(1, sizeof *st);

        if (!st)
                return -ENOMEM;
        st->r = r;
        st->f.kind = FK_RAW;
        st->f.pt = r->pt;
        st->f.d = &r->pt->p->disks[r->disk];
        st->f.disk_index = r->disk;
        pthread_mutex_init(&st->f.lock, NULL);
        *ret = st;
        return 0;
}

void fs_reader_stream_free(struct fs_reader_stream *st) {
        if (!st)
                return;
        pthread_mutex_destroy(&st->f.lock);
        free(st);
}

int fs_reader_read(struct fs_reader_stream *st, void *buf, size_t len, uint64_t off) {
        struct fs *fs = st->r->fs;

        if (off >= st->f.d->size)
                return 0;
        len = (size_t)MIN((uint64_t)len, st->f.d->size - off);
        atomic_fetch_add(&fs->st.reads, 1);
        if (fs->ra_pool)
                fs_readahead(fs, &st->f, off, len);
        return fs_read_disk(fs, &st->f, buf, len, off);
}

int fs_reader_next(struct fs_reader *r, uint64_t off, uint64_t end, bool data, uint64_t *ret) {
        return fs_disk_next(r->fs, &r->pt->p->disks[r->disk], off, end, data, ret) < 0 ? -EIO : 0;
}
