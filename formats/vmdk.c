/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VMDK images. libvmdk validates the image and parses the descriptor (the
 * list of extents); the extents are then mapped here:
 *  - ZERO extents read as zeros;
 *  - FLAT extents are plain bytes of their file (libvmdk 20200926 takes
 *    the descriptor's extent offset as bytes rather than sectors);
 *  - hosted sparse extents ("KDMV": monolithicSparse, twoGbMaxExtentSparse,
 *    streamOptimized) are mapped through their grain directory and grain
 *    tables: unallocated and zeroed grains (which libvmdk misreads as data
 *    at sector 1) read as zeros, plain grains are read with pread, and only
 *    compressed grains go through libvmdk;
 *  - anything else (ESX "COWD" sparse) is read through libvmdk.
 * libvmdk finds extent files by the names in the descriptor, in the image's
 * directory; a monolithic file is read without libvmdk unless it holds
 * compressed grains, so renaming it does not matter then.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Debian's libvmdk-dev turns LIBVMDK_HAVE_BFIO on unconditionally, so
 * libvmdk.h includes <libbfio.h>, which the package does not pull in. We
 * use no bfio API: skip libvmdk/features.h when libbfio.h is missing. */
#if defined(__has_include)
#if !__has_include(<libbfio.h>)
#define _LIBVMDK_FEATURES_H
#endif
#endif
#include <libvmdk.h>

#include "formats_i.h"

#define KDMV_HEADER 512
#define KDMV_FLAG_ZERO_GRAIN (UINT32_C(1) << 2)
#define KDMV_FLAG_COMPRESSED (UINT32_C(1) << 16)
#define KDMV_GD_AT_END UINT64_C(0xffffffffffffffff)
#define VMDK_NO_PARENT UINT32_C(0xffffffff)

struct extent {
        int type;              /* LIBVMDK_EXTENT_TYPE_* */
        uint64_t start, len;   /* virtual range, bytes */
        enum fmt_map_kind kind; /* of the whole extent, unless sparse */
        int fd;                /* FLAT or sparse: the extent's file */
        bool own_fd;           /* fd is ours to close (not img->fd) */
        uint64_t file_size;
        uint64_t flat_off;     /* FLAT: byte offset of the extent in its file */
        bool sparse;           /* mapped through grain tables */
        bool compressed;
        bool zero_grain;       /* grain table entry 1 = zeroed grain */
        uint64_t grain;        /* bytes per grain */
        uint32_t gtes;         /* entries per grain table */
        uint64_t gd_len;
        uint32_t *gd;          /* grain directory: grain table sectors */
        uint64_t gt_sector;    /* sector of the cached grain table, 0 = none */
        uint32_t *gt;
};

struct vmdk {
        libvmdk_handle_t *h;
        int n;
        struct extent *ext;
        int last;              /* extent of the last lookup */
};

static void merr_freep(libvmdk_error_t **e) {
        if (*e)
                libvmdk_error_free(e);
}

static void merr_text(libvmdk_error_t **e, const char *path, char *buf, size_t len) {
        char text[4096] = "";

        if (*e) {
                libvmdk_error_backtrace_sprint(*e, text, sizeof(text));
                libvmdk_error_free(e);
        }
        fmt_yal_condense(text, path, buf, len);
}

static void vmdk_free(struct vmdk *v) {
        _cleanup_(merr_freep) libvmdk_error_t *e = NULL;

        if (!v)
                return;
        for (int i = 0; i < v->n; i++) {
                if (v->ext[i].own_fd && v->ext[i].fd >= 0)
                        close(v->ext[i].fd);
                free(v->ext[i].gd);
                free(v->ext[i].gt);
        }
        free(v->ext);
        if (v->h) {
                libvmdk_handle_close(v->h, &e);
                merr_freep(&e);
                libvmdk_handle_free(&v->h, &e);
        }
        free(v);
}

static void vmdk_close(struct fmt_image *img) {
        vmdk_free(img->priv);
        img->priv = NULL;
}

static int vmdk_lib_read(struct fmt_image *img, void *buf, size_t len, uint64_t off) {
        _cleanup_(merr_freep) libvmdk_error_t *e = NULL;
        struct vmdk *v = img->priv;
        char msg[400];
        uint8_t *p = buf;
        ssize_t n;

        while (len > 0) {
                n = libvmdk_handle_read_buffer_at_offset(v->h, p, len, (off64_t)off, &e);
                if (n <= 0) {
                        merr_text(&e, img->path, msg, sizeof(msg));
                        return fmt_err(img->err, sizeof(img->err), n < 0 ? -EIO : -EBADMSG,
                                       "cannot read vmdk image at %" PRIu64 ": %s", off,
                                       n < 0 ? msg : "unexpected end of data");
                }
                p += n;
                len -= (size_t)n;
                off += (uint64_t)n;
        }
        return 0;
}

static int load_gt(struct fmt_image *img, struct extent *x, uint64_t sector) {
        size_t n = (size_t)x->gtes * 4;
        int r;

        if (x->gt_sector == sector)
                return 0;
        x->gt_sector = 0;
        r = fmt_pread_host(x->fd, x->file_size, x->gt, n, sector * 512);
        if (r < 0)
                return fmt_err(img->err, sizeof(img->err), r == -EBADMSG ? r : -EIO,
                               "cannot read a vmdk grain table: %s",
                               r == -EBADMSG ? "beyond the end of the file" : strerror(-r));
        for (uint32_t i = 0; i < x->gtes; i++)
                x->gt[i] = get_le32((const uint8_t *)&x->gt[i]);
        x->gt_sector = sector;
        return 0;
}

static void classify(const struct extent *x, uint32_t gte, enum fmt_map_kind *kind, uint64_t *host) {
        *host = (uint64_t)gte * 512;
        if (gte == 0 || (gte == 1 && x->zero_grain))
                *kind = FMT_MAP_ZERO;
        else if (x->compressed)
                *kind = FMT_MAP_LIB;
        else
                *kind = FMT_MAP_HOST;
}

static int map_sparse(struct fmt_image *img, struct extent *x, uint64_t in, struct fmt_map *m) {
        uint64_t span = x->grain * x->gtes, g = in / x->grain, gdi = g / x->gtes, gti = g % x->gtes;
        uint64_t span_left = span - in % span, gin = in % x->grain, host, next_host;
        enum fmt_map_kind kind = FMT_MAP_ZERO, next_kind = FMT_MAP_ZERO;
        int r;

        if (gdi >= x->gd_len)
                return fmt_err(img->err, sizeof(img->err), -EIO, "internal error: offset beyond the grain directory");
        if (x->gd[gdi] == 0) {
                m->kind = FMT_MAP_ZERO;
                m->len = span_left;
                return 0;
        }
        r = load_gt(img, x, x->gd[gdi]);
        if (r < 0)
                return r;
        classify(x, x->gt[gti], &kind, &host);
        m->kind = kind;
        m->len = x->grain - gin;
        if (kind == FMT_MAP_HOST) {
                m->fd = x->fd;
                m->host = host + gin;
                m->host_size = x->file_size;
        }
        for (gti++; gti < x->gtes && m->len < span_left; gti++) {
                classify(x, x->gt[gti], &next_kind, &next_host);
                if (next_kind != kind || (kind == FMT_MAP_HOST && next_host != host + gin + m->len))
                        break;
                m->len += x->grain;
        }
        return 0;
}

static int vmdk_map(struct fmt_image *img, uint64_t off, struct fmt_map *m) {
        struct vmdk *v = img->priv;
        struct extent *x;
        uint64_t in;
        int i = v->last, r;

        if (off < v->ext[i].start || off - v->ext[i].start >= v->ext[i].len)
                for (i = 0; i < v->n; i++)
                        if (off >= v->ext[i].start && off - v->ext[i].start < v->ext[i].len)
                                break;
        if (i >= v->n)
                return fmt_err(img->err, sizeof(img->err), -EIO, "internal error: offset beyond the extents");
        v->last = i;
        x = &v->ext[i];
        in = off - x->start;
        if (x->sparse) {
                r = map_sparse(img, x, in, m);
                if (r < 0)
                        return r;
        } else {
                m->kind = x->kind;
                m->len = x->len - in;
                if (x->kind == FMT_MAP_HOST) {
                        m->fd = x->fd;
                        m->host = x->flat_off + in;
                        m->host_size = x->file_size;
                }
        }
        m->len = MIN(m->len, x->len - in);
        return 0;
}

static const struct fmt_ops vmdk_ops = {
        .map = vmdk_map,
        .lib_read = vmdk_lib_read,
        .close = vmdk_close,
};

/* Read the hosted sparse header of extent x; -ENOMSG if it is not "KDMV". */
static int parse_sparse(struct extent *x, char *err, size_t errlen) {
        uint8_t h[KDMV_HEADER];
        uint64_t capacity, grain, gd_off, gd_bytes;
        uint32_t flags;
        int r;

        if (x->file_size < KDMV_HEADER)
                return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated vmdk image: sparse extent too short");
        r = pread_full(x->fd, h, sizeof(h), 0);
        if (r < 0)
                return fmt_err(err, errlen, r, "cannot read a vmdk extent: %s", strerror(-r));
        if (memcmp(h, "KDMV", 4) != 0)
                return -ENOMSG;
        if (get_le64(h + 56) == KDMV_GD_AT_END) {
                /* streamOptimized: the real header is the footer, 1 KiB from the end. */
                if (x->file_size < 3 * KDMV_HEADER)
                        return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated vmdk image: no footer");
                r = pread_full(x->fd, h, sizeof(h), x->file_size - 2 * KDMV_HEADER);
                if (r < 0)
                        return fmt_err(err, errlen, r, "cannot read a vmdk extent: %s", strerror(-r));
                if (memcmp(h, "KDMV", 4) != 0 || get_le64(h + 56) == KDMV_GD_AT_END)
                        return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated vmdk image: bad footer");
        }
        flags = get_le32(h + 8);
        capacity = get_le64(h + 12);
        grain = get_le64(h + 20);
        x->gtes = get_le32(h + 44);
        gd_off = get_le64(h + 56);
        x->zero_grain = flags & KDMV_FLAG_ZERO_GRAIN;
        x->compressed = flags & KDMV_FLAG_COMPRESSED;
        if (x->compressed && get_le16(h + 77) != 1)
                return fmt_err(err, errlen, -EOPNOTSUPP, "vmdk compression method %u is not supported", get_le16(h + 77));
        if (grain == 0 || grain > 131072 || x->gtes == 0 || x->gtes > 4096)
                return fmt_err(err, errlen, -EBADMSG, "corrupt vmdk image: grain size %" PRIu64 ", %" PRIu32
                               " grain table entries", grain, x->gtes);
        if (capacity > (UINT64_C(1) << 53) || capacity * 512 < x->len)
                return fmt_err(err, errlen, -EBADMSG, "corrupt vmdk image: sparse extent smaller than described");
        x->grain = grain * 512;
        x->gd_len = DIV_ROUND_UP(x->len, x->grain * x->gtes);
        gd_bytes = x->gd_len * 4;
        if (gd_off > x->file_size / 512 || gd_bytes > x->file_size - gd_off * 512)
                return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated vmdk image: grain directory beyond the end of the file");
        x->gd = malloc(MAX(gd_bytes, (uint64_t)4));
        x->gt = malloc((size_t)x->gtes * 4);
        if (!x->gd || !x->gt)
                return fmt_err(err, errlen, -ENOMEM, "out of memory");
        r = pread_full(x->fd, x->gd, gd_bytes, gd_off * 512);
        if (r < 0)
                return fmt_err(err, errlen, r, "cannot read the vmdk grain directory: %s", strerror(-r));
        for (uint64_t i = 0; i < x->gd_len; i++)
                x->gd[i] = get_le32((const uint8_t *)&x->gd[i]);
        x->sparse = true;
        return 0;
}

static int open_extent_file(struct fmt_image *img, struct extent *x, const char *name, char *err, size_t errlen) {
        char path[sizeof(img->path) + 256];
        const char *slash = strrchr(img->path, '/');
        struct stat st;

        if (slash)
                snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - img->path), img->path, name);
        else
                snprintf(path, sizeof(path), "%s", name);
        x->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (x->fd < 0)
                return fmt_err(err, errlen, errno == ENOENT ? -EBADMSG : -errno, "cannot open vmdk extent file %s: %m",
                               name);
        x->own_fd = true;
        if (fstat(x->fd, &st) < 0)
                return fmt_err(err, errlen, -errno, "cannot stat vmdk extent file %s: %m", name);
        x->file_size = (uint64_t)st.st_size;
        return 0;
}

/* Set up extent x (descriptor d; single: the image's only one). *need_lib
 * is set when libvmdk must open the extent files to read it. */
static int setup_extent(struct fmt_image *img, bool single, struct extent *x, libvmdk_extent_descriptor_t *d,
                        bool *need_lib, char *err, size_t errlen) {
        _cleanup_(merr_freep) libvmdk_error_t *e = NULL;
        char name[256] = "", msg[400];
        off64_t offset = 0;
        size64_t size = 0;
        size_t name_size = 0;
        int r;

        if (libvmdk_extent_descriptor_get_type(d, &x->type, &e) != 1 ||
            libvmdk_extent_descriptor_get_range(d, &offset, &size, &e) != 1) {
                merr_text(&e, img->path, msg, sizeof(msg));
                return fmt_err(err, errlen, -EBADMSG, "corrupt vmdk image: %s", msg);
        }
        x->len = size;
        x->fd = -1;
        if (x->type == LIBVMDK_EXTENT_TYPE_ZERO) {
                x->kind = FMT_MAP_ZERO;
                return 0;
        }
        if (libvmdk_extent_descriptor_get_utf8_filename_size(d, &name_size, &e) != 1 || name_size > sizeof(name) ||
            libvmdk_extent_descriptor_get_utf8_filename(d, (uint8_t *)name, sizeof(name), &e) != 1) {
                merr_text(&e, img->path, msg, sizeof(msg));
                return fmt_err(err, errlen, -EBADMSG, "corrupt vmdk image: bad extent file name: %s", msg);
        }
        if (name[0] == '\0' || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return fmt_err(err, errlen, -EOPNOTSUPP,
                               "vmdk extent file \"%s\" is not a plain name in the image's directory", name);

        switch (x->type) {
        case LIBVMDK_EXTENT_TYPE_FLAT:
        case LIBVMDK_EXTENT_TYPE_VMFS_FLAT:
                r = open_extent_file(img, x, name, err, errlen);
                if (r < 0)
                        return r;
                if ((uint64_t)offset > (UINT64_C(1) << 53))
                        return fmt_err(err, errlen, -EBADMSG, "corrupt vmdk image: extent offset out of range");
                x->flat_off = (uint64_t)offset * 512;
                if (x->flat_off > x->file_size || x->len > x->file_size - x->flat_off)
                        return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated vmdk image: extent file %s too short",
                                       name);
                x->kind = FMT_MAP_HOST;
                return 0;
        case LIBVMDK_EXTENT_TYPE_SPARSE:
        case LIBVMDK_EXTENT_TYPE_VMFS_SPARSE:
                if (single && img->file_size >= 4) {
                        uint8_t magic[4];

                        /* A monolithic file is its own (only) extent, whatever its name. */
                        if (pread_full(img->fd, magic, 4, 0) == 0 && memcmp(magic, "KDMV", 4) == 0) {
                                x->fd = img->fd;
                                x->file_size = img->file_size;
                        }
                }
                if (x->fd < 0) {
                        r = open_extent_file(img, x, name, err, errlen);
                        if (r < 0)
                                return r;
                }
                r = parse_sparse(x, err, errlen);
                if (r == -ENOMSG) {
                        /* ESX COWD sparse: libvmdk reads it. */
                        x->kind = FMT_MAP_LIB;
                        *need_lib = true;
                        return 0;
                }
                if (r < 0)
                        return r;
                if (x->compressed) {
                        *need_lib = true;
                        if (x->fd == img->fd) {
                                const char *base = strrchr(img->path, '/');

                                base = base ? base + 1 : img->path;
                                if (strcmp(base, name) != 0)
                                        return fmt_err(err, errlen, -EOPNOTSUPP,
                                                       "compressed (streamOptimized) vmdk was renamed from \"%s\"; "
                                                       "libvmdk finds it only by that name", name);
                        }
                }
                return 0;
        default:
                return fmt_err(err, errlen, -EOPNOTSUPP, "vmdk extent type %d (raw device mapping) is not supported",
                               x->type);
        }
}

static int check_parent(struct fmt_image *img, struct vmdk *v, char *err, size_t errlen) {
        _cleanup_(merr_freep) libvmdk_error_t *e = NULL;
        char parent[256] = "";
        uint32_t cid = VMDK_NO_PARENT;
        size_t n = 0;
        int r;

        r = libvmdk_handle_get_utf8_parent_filename_size(v->h, &n, &e);
        merr_freep(&e);
        if (r == 1 && n > 1) {
                if (n <= sizeof(parent) &&
                    libvmdk_handle_get_utf8_parent_filename(v->h, (uint8_t *)parent, sizeof(parent), &e) != 1)
                        parent[0] = '\0';
                return fmt_err(err, errlen, -EOPNOTSUPP, "vmdk delta disk (snapshot) needs its parent image%s%s%s",
                               parent[0] ? " (" : "", parent, parent[0] ? ")" : "");
        }
        merr_freep(&e);
        if (libvmdk_handle_get_parent_content_identifier(v->h, &cid, &e) == 1 && cid != VMDK_NO_PARENT)
                return fmt_err(err, errlen, -EOPNOTSUPP, "vmdk delta disk (snapshot) needs its parent image");
        (void)img;
        return 0;
}

static int setup_extents(struct fmt_image *img, struct vmdk *v, bool *need_lib, char *err, size_t errlen) {
        _cleanup_(merr_freep) libvmdk_error_t *e = NULL;
        libvmdk_extent_descriptor_t *d = NULL;
        uint64_t start = 0;
        char msg[400];
        int n = 0, r;

        if (libvmdk_handle_get_number_of_extents(v->h, &n, &e) != 1 || n <= 0) {
                merr_text(&e, img->path, msg, sizeof(msg));
                return fmt_err(err, errlen, -EBADMSG, "corrupt vmdk image: no extents: %s", msg);
        }
        v->ext = calloc((size_t)n, sizeof(*v->ext));
        if (!v->ext)
                return fmt_err(err, errlen, -ENOMEM, "out of memory");
        for (int i = 0; i < n; i++) {
                v->ext[i].fd = -1;
                v->n = i + 1;
                if (libvmdk_handle_get_extent_descriptor(v->h, i, &d, &e) != 1) {
                        merr_text(&e, img->path, msg, sizeof(msg));
                        return fmt_err(err, errlen, -EBADMSG, "corrupt vmdk image: %s", msg);
                }
                v->ext[i].start = start;
                r = setup_extent(img, n == 1, &v->ext[i], d, need_lib, err, errlen);
                libvmdk_extent_descriptor_free(&d, &e);
                merr_freep(&e);
                if (r < 0)
                        return r;
                start += v->ext[i].len;
        }
        img->size = start;
        return 0;
}

int fmt_vmdk_open(struct fmt_image *img, char *err, size_t errlen) {
        _cleanup_(merr_freep) libvmdk_error_t *e = NULL;
        bool need_lib = false;
        size64_t media_size = 0;
        struct vmdk *v;
        char msg[400];
        int r;

        v = calloc(1, sizeof(*v));
        if (!v)
                return fmt_err(err, errlen, -ENOMEM, "out of memory");
        if (libvmdk_handle_initialize(&v->h, &e) != 1) {
                merr_text(&e, img->path, msg, sizeof(msg));
                r = fmt_err(err, errlen, -ENOMEM, "cannot initialize libvmdk: %s", msg);
                goto fail;
        }
        if (libvmdk_handle_open(v->h, img->path, LIBVMDK_OPEN_READ, &e) != 1) {
                merr_text(&e, img->path, msg, sizeof(msg));
                libvmdk_handle_free(&v->h, &e);
                r = fmt_err(err, errlen, -EBADMSG, "corrupt or truncated vmdk image: %s", msg);
                goto fail;
        }
        r = check_parent(img, v, err, errlen);
        if (r < 0)
                goto fail;
        r = setup_extents(img, v, &need_lib, err, errlen);
        if (r < 0)
                goto fail;
        if (need_lib) {
                const char *slash = strrchr(img->path, '/');
                const char *dir = slash ? img->path : ".";
                size_t dir_len = slash ? (size_t)(slash - img->path) : 1;

                if (dir_len == 0) {
                        dir = "/";
                        dir_len = 1;
                }
                if (libvmdk_handle_set_extent_data_files_path(v->h, dir, dir_len, &e) != 1 ||
                    libvmdk_handle_open_extent_data_files(v->h, &e) != 1) {
                        merr_text(&e, img->path, msg, sizeof(msg));
                        r = fmt_err(err, errlen, -EBADMSG, "corrupt or incomplete vmdk image: %s", msg);
                        goto fail;
                }
        }
        if (libvmdk_handle_get_media_size(v->h, &media_size, &e) != 1) {
                merr_text(&e, img->path, msg, sizeof(msg));
                r = fmt_err(err, errlen, -EBADMSG, "corrupt vmdk image: %s", msg);
                goto fail;
        }
        if (media_size != img->size) {
                r = fmt_err(err, errlen, -EBADMSG, "corrupt vmdk image: extents cover %" PRIu64 " bytes, libvmdk says %" PRIu64,
                            img->size, (uint64_t)media_size);
                goto fail;
        }
        img->priv = v;
        img->ops = &vmdk_ops;
        return 0;
fail:
        vmdk_free(v);
        return r;
}
