/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QCOW2 images. libqcow validates the image at open and reads compressed
 * clusters; everything else is mapped from the L1/L2 tables here and read
 * with pread. This is not only faster: libqcow 20201213 ignores the zero
 * flag of L2 entries (which qemu sets on discard and write-zeroes) and
 * returns stale bytes from host offset 1 where qemu reads zeros.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libqcow.h>

#include "formats_i.h"

#define QCOW2_HEADER_V2 72
#define QCOW2_HEADER_V3 104
#define QCOW2_MAX_L1_BYTES (UINT64_C(32) << 20) /* qemu's QCOW_MAX_L1_SIZE */
#define QCOW2_BACKING_MAX 1023 /* qemu's limit on the backing file name */
#define QCOW2_EXT_BACKING_FORMAT UINT32_C(0xe2792aca)

#define L1E_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define L2E_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define L2E_COMPRESSED (UINT64_C(1) << 62)
#define L2E_ZERO UINT64_C(1)

#define INCOMPAT_DIRTY (UINT64_C(1) << 0)
#define INCOMPAT_CORRUPT (UINT64_C(1) << 1)
#define INCOMPAT_DATA_FILE (UINT64_C(1) << 2)
#define INCOMPAT_COMPRESSION (UINT64_C(1) << 3)
#define INCOMPAT_EXTL2 (UINT64_C(1) << 4)

struct qcow2 {
        libqcow_file_t *file;
        libqcow_file_t *self_parent; /* overlays: see lib_parent() */
        unsigned cluster_bits;
        unsigned l2_bits;  /* log2 of entries per L2 table */
        uint64_t *l1;      /* host byte order, l1_len entries */
        uint64_t l1_len;   /* entries needed for the virtual size */
        uint64_t l2_off;   /* host offset of the cached L2 table, 0 = none */
        uint64_t *l2;      /* cached L2 table, host byte order */
        bool has_backing;  /* unallocated clusters come from img->backing */
        int backing_kind;  /* declared backing format, -1: not declared */
        char backing[QCOW2_BACKING_MAX + 1];
};

static void qerr_freep(libqcow_error_t **e) {
        if (*e)
                libqcow_error_free(e);
}

/* Condense and free *e into buf. */
static void qerr_text(libqcow_error_t **e, const char *path, char *buf, size_t len) {
        char text[4096] = "";

        if (*e) {
                libqcow_error_backtrace_sprint(*e, text, sizeof(text));
                libqcow_error_free(e);
        }
        fmt_yal_condense(text, path, buf, len);
}

static void qcow2_free(struct qcow2 *q) {
        _cleanup_(qerr_freep) libqcow_error_t *e = NULL;

        if (!q)
                return;
        if (q->file) {
                libqcow_file_close(q->file, &e);
                qerr_freep(&e);
                libqcow_file_free(&q->file, &e);
                qerr_freep(&e);
        }
        if (q->self_parent) {
                libqcow_file_close(q->self_parent, &e);
                qerr_freep(&e);
                libqcow_file_free(&q->self_parent, &e);
        }
        free(q->l1);
        free(q->l2);
        free(q);
}

static void qcow2_close(struct fmt_image *img) {
        qcow2_free(img->priv);
        img->priv = NULL;
}

static int qcow2_lib_read(struct fmt_image *img, void *buf, size_t len, uint64_t off) {
        _cleanup_(qerr_freep) libqcow_error_t *e = NULL;
        struct qcow2 *q = img->priv;
        char msg[400];
        uint8_t *p = buf;
        ssize_t n;

        while (len > 0) {
                n = libqcow_file_read_buffer_at_offset(q->file, p, len, (off64_t)off, &e);
                if (n <= 0) {
                        qerr_text(&e, img->path, msg, sizeof(msg));
                        return fmt_err(img->err, sizeof(img->err), n < 0 ? -EIO : -EBADMSG,
                                       "cannot read qcow2 image at %" PRIu64 ": %s", off,
                                       n < 0 ? msg : "unexpected end of data");
                }
                p += n;
                len -= (size_t)n;
                off += (uint64_t)n;
        }
        return 0;
}

static int load_l2(struct fmt_image *img, struct qcow2 *q, uint64_t l2_off) {
        uint64_t csize = UINT64_C(1) << q->cluster_bits, n = csize / 8;
        int r;

        if (q->l2_off == l2_off)
                return 0;
        if (l2_off & (csize - 1))
                return fmt_err(img->err, sizeof(img->err), -EBADMSG,
                               "corrupt qcow2 image: misaligned L2 table at %" PRIu64, l2_off);
        q->l2_off = 0;
        r = fmt_pread_host(img->fd, img->file_size, q->l2, csize, l2_off);
        if (r == -EBADMSG)
                return fmt_err(img->err, sizeof(img->err), r,
                               "corrupt or truncated qcow2 image: L2 table at %" PRIu64 " beyond the end of the file",
                               l2_off);
        if (r < 0)
                return fmt_err(img->err, sizeof(img->err), r, "cannot read qcow2 L2 table: %s", strerror(-r));
        for (uint64_t i = 0; i < n; i++)
                q->l2[i] = get_be64((const uint8_t *)&q->l2[i]);
        q->l2_off = l2_off;
        return 0;
}

/* Classify one L2 entry; host is the cluster's offset for FMT_MAP_HOST. */
static int classify(struct fmt_image *img, struct qcow2 *q, uint64_t entry, enum fmt_map_kind *kind,
                    uint64_t *host) {
        uint64_t csize = UINT64_C(1) << q->cluster_bits;

        *host = 0;
        if (entry & L2E_COMPRESSED) {
                *kind = FMT_MAP_LIB;
                return 0;
        }
        *host = entry & L2E_OFFSET_MASK;
        if (entry & L2E_ZERO) {
                *kind = FMT_MAP_ZERO;
                return 0;
        }
        if (*host == 0) {
                /* unallocated: the backing file's bytes, or zeros */
                *kind = q->has_backing ? FMT_MAP_BACKING : FMT_MAP_ZERO;
                return 0;
        }
        if (*host & (csize - 1))
                return fmt_err(img->err, sizeof(img->err), -EBADMSG,
                               "corrupt qcow2 image: misaligned data cluster at %" PRIu64, *host);
        *kind = FMT_MAP_HOST;
        return 0;
}

static int qcow2_map(struct fmt_image *img, uint64_t off, struct fmt_map *m) {
        struct qcow2 *q = img->priv;
        uint64_t csize = UINT64_C(1) << q->cluster_bits;
        unsigned span_bits = q->cluster_bits + q->l2_bits;
        uint64_t l1i = off >> span_bits, span_end, l2_off, host, next_host, i, n;
        enum fmt_map_kind kind = FMT_MAP_ZERO, next_kind = FMT_MAP_ZERO;
        int r;

        if (l1i >= q->l1_len)
                return fmt_err(img->err, sizeof(img->err), -EIO, "internal error: offset beyond the L1 table");
        span_end = MIN((l1i + 1) << span_bits, img->size);
        l2_off = q->l1[l1i] & L1E_OFFSET_MASK;
        if (l2_off == 0) {
                m->kind = q->has_backing ? FMT_MAP_BACKING : FMT_MAP_ZERO;
                m->len = span_end - off;
                return 0;
        }
        r = load_l2(img, q, l2_off);
        if (r < 0)
                return r;

        i = (off >> q->cluster_bits) & ((UINT64_C(1) << q->l2_bits) - 1);
        r = classify(img, q, q->l2[i], &kind, &host);
        if (r < 0)
                return r;
        m->kind = kind;
        m->len = csize - (off & (csize - 1));
        if (kind == FMT_MAP_HOST) {
                m->fd = img->fd;
                m->host = host + (off & (csize - 1));
                m->host_size = img->file_size;
        }
        /* Extend over following clusters mapped alike (contiguous on disk
         * for FMT_MAP_HOST) within this L2 table. */
        n = UINT64_C(1) << q->l2_bits;
        for (i++; i < n && off + m->len < span_end; i++) {
                r = classify(img, q, q->l2[i], &next_kind, &next_host);
                if (r < 0)
                        return r;
                if (next_kind != kind || (kind == FMT_MAP_HOST && next_host != host + (m->len + (off & (csize - 1)))))
                        break;
                m->len += csize;
        }
        m->len = MIN(m->len, span_end - off);
        return 0;
}

static const struct fmt_ops qcow2_ops = {
        .map = qcow2_map,
        .lib_read = qcow2_lib_read,
        .close = qcow2_close,
};

/* The kind a backing format name declares, -1 for one we cannot read. */
static int backing_kind(const char *f) {
        static const struct {
                const char *name;
                enum fmt_kind kind;
        } k[] = { { "raw", FMT_RAW }, { "qcow2", FMT_QCOW2 }, { "vpc", FMT_VHD }, { "vhdx", FMT_VHDX },
                  { "vmdk", FMT_VMDK } };
        for (size_t i = 0; i < ELEMENTSOF(k); i++)
                if (strcmp(f, k[i].name) == 0)
                        return (int)k[i].kind;
        return -1;
}

/* The backing format header extension (after the header, within the
 * first cluster, before the backing file name): the declared kind, -1 when
 * there is none, or -errno. */
static int backing_format(struct fmt_image *img, struct qcow2 *q, uint64_t name_off, uint32_t header_len,
                          char *err, size_t errlen) {
        uint64_t off = header_len, end = MIN(MIN(img->file_size, UINT64_C(1) << q->cluster_bits), name_off);
        uint8_t eh[8];
        char f[32];
        int r;

        while (off + 8 <= end) {
                uint32_t type, len;
                r = pread_full(img->fd, eh, 8, off);
                if (r < 0)
                        return fmt_err(err, errlen, r, "cannot read qcow2 header extensions: %s", strerror(-r));
                type = get_be32(eh);
                len = get_be32(eh + 4);
                if (type == 0)
                        break;
                if (len > end - off - 8)
                        return fmt_err(err, errlen, -EBADMSG, "corrupt qcow2 image: header extension past its area");
                if (type == QCOW2_EXT_BACKING_FORMAT) {
                        if (len == 0 || len >= sizeof f)
                                return fmt_err(err, errlen, -EOPNOTSUPP, "qcow2 backing format name of %" PRIu32
                                               " bytes is not supported", len);
                        r = pread_full(img->fd, f, len, off + 8);
                        if (r < 0)
                                return fmt_err(err, errlen, r, "cannot read qcow2 backing format: %s", strerror(-r));
                        f[len] = 0;
                        if (backing_kind(f) < 0 || strlen(f) != len)
                                return fmt_err(err, errlen, -EOPNOTSUPP, "qcow2 backing file of format '%.*s' is not supported",
                                               (int)strcspn(f, "\n"), f);
                        return backing_kind(f);
                }
                off += 8 + (((uint64_t)len + 7) & ~UINT64_C(7));
        }
        return -1;
}

/* Read the backing file name and its declared format into q. */
static int backing_name(struct fmt_image *img, struct qcow2 *q, uint64_t off, uint32_t len, uint32_t header_len,
                        char *err, size_t errlen) {
        int r;

        if (len == 0 || len > QCOW2_BACKING_MAX)
                return fmt_err(err, errlen, -EBADMSG, "corrupt qcow2 image: backing file name of %" PRIu32 " bytes", len);
        if (off < header_len || off > img->file_size || len > img->file_size - off)
                return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated qcow2 image: backing file name beyond the end of the file");
        r = pread_full(img->fd, q->backing, len, off);
        if (r < 0)
                return fmt_err(err, errlen, r, "cannot read the qcow2 backing file name: %s", strerror(-r));
        q->backing[len] = 0;
        if (strlen(q->backing) != len)
                return fmt_err(err, errlen, -EBADMSG, "corrupt qcow2 image: NUL in the backing file name");
        r = backing_format(img, q, off, header_len, err, errlen);
        if (r < -1)
                return r;
        q->backing_kind = r;
        q->has_backing = true;
        return 0;
}

/* Check the header for what we cannot read. -EOPNOTSUPP or -EBADMSG with a
 * message, or 0 with the geometry filled in. */
static int parse_header(struct fmt_image *img, struct qcow2 *q, uint64_t *ret_size, uint64_t *ret_l1_off,
                        char *err, size_t errlen) {
        uint8_t h[QCOW2_HEADER_V3 + 8] = { 0 };
        uint64_t backing_off, incompat = 0, size, l1_off, span;
        uint32_t version, backing_len, header_len = QCOW2_HEADER_V2, l1_size;
        size_t n = (size_t)MIN(img->file_size, (uint64_t)sizeof(h));
        int r;

        r = pread_full(img->fd, h, n, 0);
        if (r < 0)
                return fmt_err(err, errlen, r, "cannot read qcow2 header: %s", strerror(-r));
        version = get_be32(h + 4);
        if (version == 1)
                return fmt_err(err, errlen, -EOPNOTSUPP, "QCOW version 1 images are not supported");
        if (version != 2 && version != 3)
                return fmt_err(err, errlen, -EOPNOTSUPP, "unsupported qcow2 version %" PRIu32, version);
        if (version == 3)
                header_len = get_be32(h + 100);
        if (n < QCOW2_HEADER_V2 || (version == 3 && (n < QCOW2_HEADER_V3 || header_len < QCOW2_HEADER_V3)))
                return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated qcow2 image: header truncated");
        if (version == 3)
                incompat = get_be64(h + 72);

        if (incompat & INCOMPAT_DATA_FILE)
                return fmt_err(err, errlen, -EOPNOTSUPP, "qcow2 image with an external data file is not supported");
        if (incompat & INCOMPAT_EXTL2)
                return fmt_err(err, errlen, -EOPNOTSUPP, "qcow2 image with extended L2 entries (subclusters) is not supported");
        if (incompat & INCOMPAT_COMPRESSION)
                return fmt_err(err, errlen, -EOPNOTSUPP,
                               "qcow2 image with zstd compression is not supported (convert it with compression_type=zlib)");
        if (incompat & ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT))
                return fmt_err(err, errlen, -EOPNOTSUPP, "qcow2 image with unknown incompatible features 0x%" PRIx64,
                               incompat);
        if (incompat & INCOMPAT_CORRUPT)
                return fmt_err(err, errlen, -EBADMSG,
                               "qcow2 image is marked corrupt (repair it with qemu-img check -r all)");

        backing_off = get_be64(h + 8);
        backing_len = get_be32(h + 16);
        if (get_be32(h + 32) != 0)
                return fmt_err(err, errlen, -EOPNOTSUPP, "encrypted qcow2 image (%s) is not supported",
                               get_be32(h + 32) == 1 ? "AES" : get_be32(h + 32) == 2 ? "LUKS" : "unknown method");

        q->cluster_bits = get_be32(h + 20);
        if (q->cluster_bits < 9 || q->cluster_bits > 21)
                return fmt_err(err, errlen, -EBADMSG, "corrupt qcow2 image: cluster bits %u out of range",
                               q->cluster_bits);
        q->l2_bits = q->cluster_bits - 3;
        if (backing_off != 0) {
                r = backing_name(img, q, backing_off, backing_len, header_len, err, errlen);
                if (r < 0)
                        return r;
        }
        size = get_be64(h + 24);
        l1_size = get_be32(h + 36);
        l1_off = get_be64(h + 40);
        span = UINT64_C(1) << (q->cluster_bits + q->l2_bits);
        if (size > (UINT64_C(1) << 62))
                return fmt_err(err, errlen, -EBADMSG, "corrupt qcow2 image: virtual size out of range");
        q->l1_len = DIV_ROUND_UP(size, span);
        if (l1_size < q->l1_len || q->l1_len * 8 > QCOW2_MAX_L1_BYTES)
                return fmt_err(err, errlen, -EBADMSG, "corrupt qcow2 image: L1 table too small (%" PRIu32
                               " entries) for the virtual size", l1_size);
        if (q->l1_len > 0 && ((l1_off & ((UINT64_C(1) << q->cluster_bits) - 1)) || l1_off > img->file_size ||
                              q->l1_len * 8 > img->file_size - l1_off))
                return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated qcow2 image: L1 table beyond the end of the file");
        *ret_size = size;
        *ret_l1_off = l1_off;
        return 0;
}

static int load_tables(struct fmt_image *img, struct qcow2 *q, uint64_t l1_off, char *err, size_t errlen) {
        int r;

        q->l2 = malloc((size_t)1 << q->cluster_bits);
        q->l1 = malloc(MAX(q->l1_len, (uint64_t)1) * 8);
        if (!q->l1 || !q->l2)
                return fmt_err(err, errlen, -ENOMEM, "out of memory");
        r = pread_full(img->fd, q->l1, q->l1_len * 8, l1_off);
        if (r < 0)
                return fmt_err(err, errlen, r, "cannot read qcow2 L1 table: %s", strerror(-r));
        for (uint64_t i = 0; i < q->l1_len; i++)
                q->l1[i] = get_be64((const uint8_t *)&q->l1[i]);
        return 0;
}

/* libqcow refuses every read of an image with a backing file until it is
 * given a parent, and takes only a qcow2 one. It is asked for compressed
 * clusters only (map() answers the rest, the backing image included), so
 * it never reads from the parent: give it a second handle of the overlay
 * itself, whatever the backing file's format. */
static int lib_parent(struct fmt_image *img, struct qcow2 *q, char *err, size_t errlen) {
        _cleanup_(qerr_freep) libqcow_error_t *e = NULL;
        char msg[400];

        if (libqcow_file_initialize(&q->self_parent, &e) != 1 ||
            libqcow_file_open(q->self_parent, img->path, LIBQCOW_OPEN_READ, &e) != 1 ||
            libqcow_file_set_parent_file(q->file, q->self_parent, &e) != 1) {
                qerr_text(&e, img->path, msg, sizeof(msg));
                return fmt_err(err, errlen, -EIO, "cannot open the qcow2 overlay with libqcow: %s", msg);
        }
        return 0;
}

int fmt_qcow2_open(struct fmt_image *img, char *err, size_t errlen) {
        _cleanup_(qerr_freep) libqcow_error_t *e = NULL;
        struct qcow2 *q;
        uint64_t size = 0, l1_off = 0;
        size64_t media_size = 0;
        char msg[400];
        int r;

        q = calloc(1, sizeof(*q));
        if (!q)
                return fmt_err(err, errlen, -ENOMEM, "out of memory");
        if (libqcow_file_initialize(&q->file, &e) != 1) {
                qerr_text(&e, img->path, msg, sizeof(msg));
                r = fmt_err(err, errlen, -ENOMEM, "cannot initialize libqcow: %s", msg);
                goto fail;
        }
        if (libqcow_file_open(q->file, img->path, LIBQCOW_OPEN_READ, &e) != 1) {
                qerr_text(&e, img->path, msg, sizeof(msg));
                libqcow_file_free(&q->file, &e);
                qerr_freep(&e);
                /* Prefer our explanation when the header shows an
                 * unsupported feature libqcow merely choked on. */
                r = parse_header(img, q, &size, &l1_off, err, errlen);
                if (r != -EOPNOTSUPP)
                        r = fmt_err(err, errlen, -EBADMSG, "corrupt or truncated qcow2 image: %s", msg);
                goto fail;
        }
        r = parse_header(img, q, &size, &l1_off, err, errlen);
        if (r < 0)
                goto fail;
        if (libqcow_file_get_media_size(q->file, &media_size, &e) != 1) {
                qerr_text(&e, img->path, msg, sizeof(msg));
                r = fmt_err(err, errlen, -EBADMSG, "corrupt qcow2 image: %s", msg);
                goto fail;
        }
        if (media_size != size) {
                r = fmt_err(err, errlen, -EBADMSG, "corrupt qcow2 image: size %" PRIu64 " disagrees with libqcow's %" PRIu64,
                            size, (uint64_t)media_size);
                goto fail;
        }
        r = load_tables(img, q, l1_off, err, errlen);
        if (r < 0)
                goto fail;
        if (q->has_backing) {
                r = fmt_backing_open(img, q->backing, q->backing_kind, err, errlen);
                if (r >= 0)
                        r = lib_parent(img, q, err, errlen);
                if (r < 0)
                        goto fail;
        }

        img->size = size;
        img->priv = q;
        img->ops = &qcow2_ops;
        return 0;
fail:
        qcow2_free(q);
        return r;
}
