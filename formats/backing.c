/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Backing chains of overlay images (a qcow2 with a backing file): the
 * backing image is opened as its overlay names it, and map() answers
 * FMT_MAP_BACKING where the overlay has no cluster of its own. The
 * overlay's own extents (fmt_next_own) are what changed since the backing
 * file's state: rpfs replicate --base reads only those.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats_i.h"

const char *fmt_backing(const struct fmt_image *img) {
        return img && img->backing ? img->backing->path : NULL;
}

/* qemu takes "proto:..." (a ':' before any '/') and "json:{...}" as
 * protocols, not file names: refuse those, read local files only. */
static bool is_local_name(const char *name) {
        const char *colon = strchr(name, ':'), *slash = strchr(name, '/');
        return *name && (!colon || (slash && slash < colon));
}

int fmt_backing_open(struct fmt_image *img, const char *name, int want, char *err, size_t errlen) {
        char path[sizeof(img->path)], why[256] = "";
        const char *slash;
        int r;

        if (!is_local_name(name))
                return fmt_err(err, errlen, -EOPNOTSUPP, "backing file '%s' is not a local file name", name);
        if (img->depth + 1 >= FMT_BACKING_MAX)
                return fmt_err(err, errlen, -ELOOP, "backing chain deeper than %d images (a loop?) at '%s'",
                               FMT_BACKING_MAX, name);
        slash = strrchr(img->path, '/');
        if (name[0] == '/' || !slash)
                r = snprintf(path, sizeof path, "%s", name);
        else
                r = snprintf(path, sizeof path, "%.*s/%s", (int)(slash - img->path), img->path, name);
        if (r < 0 || (size_t)r >= sizeof path)
                return fmt_err(err, errlen, -ENAMETOOLONG, "backing file name too long");
        r = fmt_open_as(path, want, img->depth + 1, &img->backing, why, sizeof why);
        if (r < 0 && strncmp(why, "backing file ", 13) == 0)
                return fmt_err(err, errlen, r, "%s", why); /* deeper in the chain: that one's name */
        if (r < 0)
                return fmt_err(err, errlen, r, "backing file %s: %s", path, why);
        return 0;
}

/* One map() answer at off, clipped to the disk. Past the end of the
 * backing image the overlay's bytes are its own (zeros), as for qemu. */
static int own_map(struct fmt_image *img, uint64_t off, struct fmt_map *m) {
        uint64_t bsize = img->backing->size;
        int r;

        memset(m, 0, sizeof *m);
        r = img->ops->map(img, off, m);
        if (r < 0)
                return r;
        if (m->len == 0)
                return fmt_err(img->err, sizeof(img->err), -EIO, "internal error: empty map");
        m->len = MIN(m->len, img->size - off);
        if (m->kind == FMT_MAP_BACKING && off >= bsize)
                m->kind = FMT_MAP_ZERO;
        else if (m->kind == FMT_MAP_BACKING)
                m->len = MIN(m->len, bsize - off);
        return 0;
}

int fmt_next_own(struct fmt_image *img, uint64_t off, uint64_t *ret_start, uint64_t *ret_end) {
        struct fmt_map m;
        uint64_t start;
        int r;

        if (!img || !ret_start || !ret_end)
                return -EINVAL;
        if (off >= img->size)
                return -ENXIO;
        if (!img->backing || !img->ops || !img->ops->map) {
                *ret_start = off;
                *ret_end = img->size;
                return 0;
        }
        for (;;) {
                r = own_map(img, off, &m);
                if (r < 0)
                        return r;
                if (m.kind != FMT_MAP_BACKING)
                        break;
                off += m.len;
                if (off >= img->size)
                        return -ENXIO;
        }
        start = off;
        off += m.len;
        while (off < img->size) {
                r = own_map(img, off, &m);
                if (r < 0)
                        return r;
                if (m.kind == FMT_MAP_BACKING)
                        break;
                off += m.len;
        }
        *ret_start = start;
        *ret_end = off;
        return 0;
}
