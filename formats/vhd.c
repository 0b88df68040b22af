/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VHD and VHDX images. libvhdi validates the image at open and tells the
 * disk type and size; the data is then mapped here from the block
 * allocation table (BAT) and read with pread:
 *  - fixed VHD: the disk is the file's first size bytes (footer after it),
 *    read like a raw file (SEEK_DATA works);
 *  - dynamic VHD: blocks without a BAT entry read as zeros; in allocated
 *    blocks, sectors whose bit in the block's sector bitmap is clear read
 *    as zeros (as the VHD specification says). libvhdi 20210425 gets the
 *    bitmap bits wrong (a shift without a mask) and splits every block into
 *    thousands of ranges, which makes it read at ~60 MiB/s;
 *  - VHDX: fully present payload blocks are plain bytes, blocks in the
 *    other non-differencing states read as zeros.
 * VHDX images whose log was not replayed (not closed cleanly) are refused:
 * libvhdi does not replay the log either, and would return stale data.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvhdi.h>

#include "formats_i.h"

#define VHD_FOOTER 512
#define VHD_DYN_HEADER 1024
#define VHD_BAT_UNUSED UINT32_C(0xffffffff)

#define VHDX_HEADER_1 (UINT64_C(64) << 10)
#define VHDX_HEADER_2 (UINT64_C(128) << 10)
#define VHDX_HEADER_SIZE 4096
#define VHDX_REGION_1 (UINT64_C(192) << 10)
#define VHDX_REGION_2 (UINT64_C(256) << 10)
#define VHDX_REGION_SIZE (64 << 10)
#define VHDX_METADATA_TABLE_SIZE (64 << 10)
#define VHDX_LOG_MAX (UINT64_C(64) << 20)

#define VHDX_BLOCK_UNMAPPED 3 /* 0..3 read as zeros without a parent */
#define VHDX_BLOCK_FULLY_PRESENT 6

#define BAT_WINDOW 65536 /* BAT entries cached at a time */

/* GUIDs as stored on disk (first three fields little endian). */
static const uint8_t guid_bat[16] = { 0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42,
                                      0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08 };
static const uint8_t guid_metadata[16] = { 0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,
                                           0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e };
static const uint8_t guid_file_params[16] = { 0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d,
                                              0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b };
static const uint8_t guid_disk_size[16] = { 0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48,
                                            0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8 };
static const uint8_t guid_sector_size[16] = { 0x1d, 0xbf, 0x41, 0x81, 0x6f, 0xa9, 0x09, 0x47,
                                              0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f };

struct vhd {
        libvhdi_file_t *file;
        bool vhdx;
        uint64_t block_size;
        uint64_t n_blocks;     /* payload blocks covering the virtual size */
        uint64_t bat_off;      /* file offset of the BAT */
        uint64_t bat_entries;  /* raw entries in the BAT region (VHDX: with bitmap entries) */
        uint64_t chunk_ratio;  /* VHDX: payload blocks per sector bitmap block */
        uint64_t bitmap_size;  /* VHD: bytes of sector bitmap before each block */
        uint64_t bm_block;     /* VHD: block whose bitmap is cached, UINT64_MAX = none */
        uint8_t *bitmap;       /* VHD: that bitmap */
        uint64_t win_start;    /* first raw entry in win */
        uint64_t win_len;      /* 0 = window empty */
        uint64_t *win;         /* cached raw BAT entries, host order */
};

static void verr_freep(libvhdi_error_t **e) {
        if (*e)
                libvhdi_error_free(e);
}

static void verr_text(libvhdi_error_t **e, const char *path, char *buf, size_t len) {
        char text[4096] = "";

        if (*e) {
                libvhdi_error_backtrace_sprint(*e, text, sizeof(text));
                libvhdi_error_free(e);
        }
        fmt_yal_condense(text, path, buf, len);
}

static void vhd_free(struct vhd *v) {
        _cleanup_(verr_freep) libvhdi_error_t *e = NULL;

        if (!v)
                return;
        if (v->file) {
                libvhdi_file_close(v->file, &e);
                verr_freep(&e);
                libvhdi_file_free(&v->file, &e);
        }
        free(v->win);
        free(v->bitmap);
        free(v);
}

static void vhd_close(struct fmt_image *img) {
        vhd_free(img->priv);
        img->priv = NULL;
}

/* Raw BAT entry i (VHD: sector number, VHDX: state and offset). */
static int bat_get(struct fmt_image *img, struct vhd *v, uint64_t i, uint64_t *ret) {
        size_t esize = v->vhdx ? 8 : 4;
        uint64_t n;
        int r;

        if (v->win_len == 0 || i < v->win_start || i >= v->win_start + v->win_len) {
                v->win_len = 0;
                n = MIN((uint64_t)BAT_WINDOW, v->bat_entries - i);
                r = fmt_pread_host(img->fd, img->file_size, v->win, n * esize, v->bat_off + i * esize);
                if (r < 0)
                        return fmt_err(img->err, sizeof(img->err), r == -EBADMSG ? r : -EIO,
                                       "cannot read the %s block allocation table: %s", fmt_kind_name(img->kind),
                                       r == -EBADMSG ? "beyond the end of the file" : strerror(-r));
                /* Decode in place, backwards: 4-byte entries widen to 8. */
                for (uint64_t k = n; k-- > 0;)
                        v->win[k] = v->vhdx ? get_le64((const uint8_t *)v->win + 8 * k)
                                            : get_be32((const uint8_t *)v->win + 4 * k);
                v->win_start = i;
                v->win_len = n;
        }
        *ret = v->win[i - v->win_start];
        return 0;
}

/* Classify VHDX payload block b: kind, and for FMT_MAP_HOST its offset. */
static int vhdx_classify(struct fmt_image *img, struct vhd *v, uint64_t b, enum fmt_map_kind *kind, uint64_t *host) {
        uint64_t e = 0, state;
        int r;

        *host = 0;
        r = bat_get(img, v, b + b / v->chunk_ratio, &e);
        if (r < 0)
                return r;
        state = e & 7;
        if (state <= VHDX_BLOCK_UNMAPPED) {
                *kind = FMT_MAP_ZERO;
                return 0;
        }
        *host = (e >> 20) << 20;
        if (state != VHDX_BLOCK_FULLY_PRESENT || *host == 0)
                return fmt_err(img->err, sizeof(img->err), -EBADMSG,
                               "corrupt vhdx image: block %" PRIu64 " has state %" PRIu64 " at %" PRIu64, b, state,
                               *host);
        *kind = FMT_MAP_HOST;
        return 0;
}

static int vhdx_map(struct fmt_image *img, struct vhd *v, uint64_t off, struct fmt_map *m) {
        uint64_t b = off / v->block_size, in = off % v->block_size, host, next_host;
        enum fmt_map_kind kind = FMT_MAP_ZERO, next_kind = FMT_MAP_ZERO;
        int r;

        r = vhdx_classify(img, v, b, &kind, &host);
        if (r < 0)
                return r;
        m->kind = kind;
        m->len = v->block_size - in;
        if (kind == FMT_MAP_HOST) {
                m->fd = img->fd;
                m->host = host + in;
                m->host_size = img->file_size;
        }
        /* Extend over following blocks mapped alike, at most 1 GiB. */
        for (b++; b < v->n_blocks && off + m->len < img->size && m->len < (UINT64_C(1) << 30); b++) {
                r = vhdx_classify(img, v, b, &next_kind, &next_host);
                if (r < 0)
                        return r;
                if (next_kind != kind || (kind == FMT_MAP_HOST && next_host != host + in + m->len))
                        break;
                m->len += v->block_size;
        }
        m->len = MIN(m->len, img->size - off);
        return 0;
}

static int load_bitmap(struct fmt_image *img, struct vhd *v, uint64_t b, uint64_t sector) {
        int r;

        if (v->bm_block == b)
                return 0;
        v->bm_block = UINT64_MAX;
        r = fmt_pread_host(img->fd, img->file_size, v->bitmap, v->bitmap_size, sector * 512);
        if (r < 0)
                return fmt_err(img->err, sizeof(img->err), r == -EBADMSG ? r : -EIO,
                               "cannot read a vhd sector bitmap: %s",
                               r == -EBADMSG ? "beyond the end of the file" : strerror(-r));
        v->bm_block = b;
        return 0;
}

static bool bitmap_bit(const uint8_t *bm, uint64_t s) {
        return (bm[s >> 3] >> (7 - (s & 7))) & 1;
}

static int vhd_dyn_map(struct fmt_image *img, struct vhd *v, uint64_t off, struct fmt_map *m) {
        uint64_t b = off / v->block_size, in = off % v->block_size, spb = v->block_size / 512, e = 0, s, t;
        bool bit;
        int r;

        r = bat_get(img, v, b, &e);
        if (r < 0)
                return r;
        if (e == VHD_BAT_UNUSED) {
                m->kind = FMT_MAP_ZERO;
                m->len = v->block_size - in;
                for (b++; b < v->n_blocks && m->len < (UINT64_C(1) << 30); b++) {
                        r = bat_get(img, v, b, &e);
                        if (r < 0)
                                return r;
                        if (e != VHD_BAT_UNUSED)
                                break;
                        m->len += v->block_size;
                }
                return 0;
        }
        r = load_bitmap(img, v, b, e);
        if (r < 0)
                return r;
        s = in / 512;
        bit = bitmap_bit(v->bitmap, s);
        for (t = s + 1; t < spb && bitmap_bit(v->bitmap, t) == bit; t++)
                ;
        m->kind = bit ? FMT_MAP_HOST : FMT_MAP_ZERO;
        m->len = t * 512 - in;
        if (bit) {
                m->fd = img->fd;
                m->host = e * 512 + v->bitmap_size + in;
                m->host_size = img->file_size;
        }
        return 0;
}

static int vhd_map(struct fmt_image *img, uint64_t off, struct fmt_map *m) {
        struct vhd *v = img->priv;
        int r;

        r = v->vhdx ? vhdx_map(img, v, off, m) : vhd_dyn_map(img, v, off, m);
        if (r < 0)
                return r;
        m->len = MIN(m->len, img->size - off);
        return 0;
}

static const struct fmt_ops vhd_ops = {
        .map = vhd_map,
        .close = vhd_close,
};

/* ---- VHD ---------------------------------------------------------------- */

static int vhd_parse(struct fmt_image *img, struct vhd *v, char *err, size_t errlen) {
        uint8_t f[VHD_FOOTER], h[VHD_DYN_HEADER];
        uint64_t dyn_off, max_entries;
        int r;

        /* The footer at the end is authoritative; dynamic disks keep a copy at 0. */
        r = pread_full(img->fd, f, sizeof(f), img->file_size - VHD_FOOTER);
        if (r < 0 || memcmp(f, "conectix", 8) != 0)
                r = pread_full(img->fd, f, sizeof(f), 0);
        if (r < 0 || memcmp(f, "conectix", 8) != 0)
                return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated vhd image: no footer");
        dyn_off = get_be64(f + 16);
        if (dyn_off > img->file_size || img->file_size - dyn_off < VHD_DYN_HEADER)
                return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated vhd image: dynamic header beyond the end of the file");
        r = pread_full(img->fd, h, sizeof(h), dyn_off);
        if (r < 0)
                return fmt_err(err, errlen, r, "cannot read the vhd dynamic header: %s", strerror(-r));
        if (memcmp(h, "cxsparse", 8) != 0)
                return fmt_err(err, errlen, -EBADMSG, "corrupt vhd image: bad dynamic header");
        v->bat_off = get_be64(h + 16);
        max_entries = get_be32(h + 28);
        v->block_size = get_be32(h + 32);
        if (v->block_size < 512 || v->block_size % 512 != 0 || v->block_size > (UINT64_C(256) << 20))
                return fmt_err(err, errlen, -EBADMSG, "corrupt vhd image: block size %" PRIu64, v->block_size);
        v->n_blocks = DIV_ROUND_UP(img->size, v->block_size);
        v->bat_entries = v->n_blocks;
        v->bitmap_size = DIV_ROUND_UP(DIV_ROUND_UP(v->block_size / 512, 8), 512) * 512;
        v->bm_block = UINT64_MAX;
        v->bitmap = malloc(v->bitmap_size);
        if (!v->bitmap)
                return fmt_err(err, errlen, -ENOMEM, "out of memory");
        if (max_entries < v->n_blocks)
                return fmt_err(err, errlen, -EBADMSG, "corrupt vhd image: block table too small for the disk size");
        if (v->bat_off > img->file_size || v->n_blocks * 4 > img->file_size - v->bat_off)
                return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated vhd image: block table beyond the end of the file");
        return 0;
}

/* ---- VHDX --------------------------------------------------------------- */

static uint32_t crc32c(const uint8_t *p, size_t n) {
        static uint32_t table[256];
        uint32_t crc = 0xffffffff;

        if (table[1] == 0)
                for (uint32_t i = 0; i < 256; i++) {
                        uint32_t c = i;

                        for (int k = 0; k < 8; k++)
                                c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
                        table[i] = c;
                }
        while (n--)
                crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return crc ^ 0xffffffff;
}

/* Checksum of a VHDX structure whose CRC32C sits at offset 4. */
static bool vhdx_checksum_ok(uint8_t *p, size_t n) {
        uint32_t want = get_le32(p + 4), got;

        memset(p + 4, 0, 4);
        got = crc32c(p, n);
        p[4] = (uint8_t)want;
        p[5] = (uint8_t)(want >> 8);
        p[6] = (uint8_t)(want >> 16);
        p[7] = (uint8_t)(want >> 24);
        return got == want;
}

/* Refuse an image whose current header names a log with entries. */
static int vhdx_check_log(struct fmt_image *img, char *err, size_t errlen) {
        static const uint8_t zero[16];
        _cleanup_free_ uint8_t *log = NULL;
        uint8_t h[2][VHDX_HEADER_SIZE];
        const uint8_t *cur = NULL;
        uint64_t log_off, log_len;
        int r;

        for (int i = 0; i < 2; i++) {
                r = pread_full(img->fd, h[i], VHDX_HEADER_SIZE, i == 0 ? VHDX_HEADER_1 : VHDX_HEADER_2);
                if (r < 0 || memcmp(h[i], "head", 4) != 0 || !vhdx_checksum_ok(h[i], VHDX_HEADER_SIZE))
                        continue;
                if (!cur || get_le64(h[i] + 8) > get_le64(cur + 8))
                        cur = h[i];
        }
        if (!cur)
                return fmt_err(err, errlen, -EBADMSG, "corrupt vhdx image: no valid header");
        if (memcmp(cur + 48, zero, 16) == 0)
                return 0;

        /* A log GUID is set: refuse if any log entry carries it. */
        log_len = get_le32(cur + 68);
        log_off = get_le64(cur + 72);
        if (log_len == 0 || log_len > VHDX_LOG_MAX || log_off > img->file_size || log_len > img->file_size - log_off)
                return fmt_err(err, errlen, -EBADMSG, "corrupt vhdx image: bad log location");
        log = malloc(log_len);
        if (!log)
                return fmt_err(err, errlen, -ENOMEM, "out of memory");
        r = pread_full(img->fd, log, log_len, log_off);
        if (r < 0)
                return fmt_err(err, errlen, r, "cannot read the vhdx log: %s", strerror(-r));
        for (uint64_t o = 0; o + 64 <= log_len; o += 4096)
                if (memcmp(log + o, "loge", 4) == 0 && memcmp(log + o + 32, cur + 48, 16) == 0)
                        return fmt_err(err, errlen, -EOPNOTSUPP,
                                       "vhdx image has a log that needs to be replayed (it was not closed cleanly, "
                                       "or is in use); open it once read-write in Hyper-V or with qemu-img check -r all");
        return 0;
}

/* Find the BAT and metadata regions in the region table. */
static int vhdx_regions(struct fmt_image *img, uint64_t *bat_off, uint64_t *bat_len, uint64_t *meta_off,
                        uint64_t *meta_len, char *err, size_t errlen) {
        _cleanup_free_ uint8_t *t = malloc(VHDX_REGION_SIZE);
        uint32_t count;
        int r;

        if (!t)
                return fmt_err(err, errlen, -ENOMEM, "out of memory");
        for (int i = 0; i < 2; i++) {
                r = pread_full(img->fd, t, VHDX_REGION_SIZE, i == 0 ? VHDX_REGION_1 : VHDX_REGION_2);
                if (r < 0 || memcmp(t, "regi", 4) != 0 || !vhdx_checksum_ok(t, VHDX_REGION_SIZE))
                        continue;
                count = get_le32(t + 8);
                if (count > (VHDX_REGION_SIZE - 16) / 32)
                        continue;
                *bat_len = *meta_len = 0;
                for (uint32_t k = 0; k < count; k++) {
                        const uint8_t *en = t + 16 + 32 * k;

                        if (memcmp(en, guid_bat, 16) == 0) {
                                *bat_off = get_le64(en + 16);
                                *bat_len = get_le32(en + 24);
                        } else if (memcmp(en, guid_metadata, 16) == 0) {
                                *meta_off = get_le64(en + 16);
                                *meta_len = get_le32(en + 24);
                        }
                }
                if (*bat_len == 0 || *meta_len == 0)
                        return fmt_err(err, errlen, -EBADMSG, "corrupt vhdx image: missing BAT or metadata region");
                return 0;
        }
        return fmt_err(err, errlen, -EBADMSG, "corrupt vhdx image: no valid region table");
}

/* Read block size and logical sector size from the metadata region; check
 * the virtual size against img->size. */
static int vhdx_metadata(struct fmt_image *img, uint64_t meta_off, uint64_t meta_len, uint32_t *ret_block,
                         uint32_t *ret_sector, char *err, size_t errlen) {
        _cleanup_free_ uint8_t *t = NULL;
        uint32_t block = 0, sector = 0;
        uint64_t vsize = 0;
        uint16_t count;
        int r;

        if (meta_len < VHDX_METADATA_TABLE_SIZE || meta_off > img->file_size || meta_len > img->file_size - meta_off ||
            meta_len > (UINT64_C(64) << 20))
                return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated vhdx image: bad metadata region");
        t = malloc(meta_len);
        if (!t)
                return fmt_err(err, errlen, -ENOMEM, "out of memory");
        r = pread_full(img->fd, t, meta_len, meta_off);
        if (r < 0)
                return fmt_err(err, errlen, r, "cannot read the vhdx metadata: %s", strerror(-r));
        if (memcmp(t, "metadata", 8) != 0)
                return fmt_err(err, errlen, -EBADMSG, "corrupt vhdx image: bad metadata table");
        count = get_le16(t + 10);
        if (count > 2047)
                return fmt_err(err, errlen, -EBADMSG, "corrupt vhdx image: bad metadata table");
        for (uint16_t k = 0; k < count; k++) {
                const uint8_t *en = t + 32 + 32 * k;
                uint32_t o = get_le32(en + 16), len = get_le32(en + 20);

                if (o > meta_len || len > meta_len - o)
                        return fmt_err(err, errlen, -EBADMSG, "corrupt vhdx image: metadata item out of bounds");
                if (memcmp(en, guid_file_params, 16) == 0 && len >= 8) {
                        block = get_le32(t + o);
                        if (get_le32(t + o + 4) & 2)
                                return fmt_err(err, errlen, -EOPNOTSUPP,
                                               "differencing VHDX (a Hyper-V checkpoint) is not supported: only qcow2 overlays "
                                               "are read through their backing file; merge it into its parent first (Merge-VHD)");
                } else if (memcmp(en, guid_disk_size, 16) == 0 && len >= 8)
                        vsize = get_le64(t + o);
                else if (memcmp(en, guid_sector_size, 16) == 0 && len >= 4)
                        sector = get_le32(t + o);
        }
        if (block < (UINT32_C(1) << 20) || block > (UINT32_C(256) << 20) || (block & (block - 1)) ||
            (sector != 512 && sector != 4096))
                return fmt_err(err, errlen, -EBADMSG, "corrupt vhdx image: block size %" PRIu32 ", sector size %" PRIu32,
                               block, sector);
        if (vsize != img->size)
                return fmt_err(err, errlen, -EBADMSG, "corrupt vhdx image: size %" PRIu64 " disagrees with libvhdi's %" PRIu64,
                               vsize, img->size);
        *ret_block = block;
        *ret_sector = sector;
        return 0;
}

static int vhdx_parse(struct fmt_image *img, struct vhd *v, char *err, size_t errlen) {
        uint64_t bat_off = 0, bat_len = 0, meta_off = 0, meta_len = 0, need;
        uint32_t block = 0, sector = 0;
        int r;

        r = vhdx_check_log(img, err, errlen);
        if (r < 0)
                return r;
        r = vhdx_regions(img, &bat_off, &bat_len, &meta_off, &meta_len, err, errlen);
        if (r < 0)
                return r;
        r = vhdx_metadata(img, meta_off, meta_len, &block, &sector, err, errlen);
        if (r < 0)
                return r;
        v->block_size = block;
        v->chunk_ratio = (UINT64_C(1) << 23) * sector / block;
        v->n_blocks = DIV_ROUND_UP(img->size, v->block_size);
        need = v->n_blocks == 0 ? 0 : v->n_blocks + (v->n_blocks - 1) / v->chunk_ratio;
        if (bat_len / 8 < need)
                return fmt_err(err, errlen, -EBADMSG, "corrupt vhdx image: BAT too small for the disk size");
        if (bat_off > img->file_size || bat_len > img->file_size - bat_off)
                return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated vhdx image: BAT beyond the end of the file");
        v->bat_off = bat_off;
        v->bat_entries = need;
        return 0;
}

/* ---- open ------------------------------------------------------------- */

static int lib_open(struct fmt_image *img, struct vhd *v, uint32_t *ret_type, char *err, size_t errlen) {
        _cleanup_(verr_freep) libvhdi_error_t *e = NULL;
        const char *name = fmt_kind_name(img->kind);
        size64_t media_size = 0;
        int file_type = 0;
        char msg[400];

        if (libvhdi_file_initialize(&v->file, &e) != 1) {
                verr_text(&e, img->path, msg, sizeof(msg));
                return fmt_err(err, errlen, -ENOMEM, "cannot initialize libvhdi: %s", msg);
        }
        if (libvhdi_file_open(v->file, img->path, LIBVHDI_OPEN_READ, &e) != 1) {
                verr_text(&e, img->path, msg, sizeof(msg));
                libvhdi_file_free(&v->file, &e);
                return fmt_err(err, errlen, -EBADMSG, "corrupt or truncated %s image: %s", name, msg);
        }
        if (libvhdi_file_get_file_type(v->file, &file_type, &e) != 1 ||
            libvhdi_file_get_disk_type(v->file, ret_type, &e) != 1 ||
            libvhdi_file_get_media_size(v->file, &media_size, &e) != 1) {
                verr_text(&e, img->path, msg, sizeof(msg));
                return fmt_err(err, errlen, -EBADMSG, "corrupt %s image: %s", name, msg);
        }
        if (file_type != (img->kind == FMT_VHDX ? LIBVHDI_FILE_TYPE_VHDX : LIBVHDI_FILE_TYPE_VHD))
                return fmt_err(err, errlen, -EBADMSG, "corrupt %s image: libvhdi sees another file type", name);
        img->size = media_size;
        return 0;
}

static int differencing_error(struct fmt_image *img, struct vhd *v, char *err, size_t errlen) {
        _cleanup_(verr_freep) libvhdi_error_t *e = NULL;
        char parent[256] = "";
        size_t n = 0;

        if (libvhdi_file_get_utf8_parent_filename_size(v->file, &n, &e) == 1 && n > 1 && n <= sizeof(parent) &&
            libvhdi_file_get_utf8_parent_filename(v->file, (uint8_t *)parent, sizeof(parent), &e) == 1)
                return fmt_err(err, errlen, -EOPNOTSUPP,
                               "differencing %s (a Hyper-V checkpoint, parent %s) is not supported: only qcow2 "
                               "overlays are read through their backing file; merge it into its parent first (Merge-VHD)",
                               img->kind == FMT_VHDX ? "VHDX" : "VHD", parent);
        return fmt_err(err, errlen, -EOPNOTSUPP,
                       "differencing %s (a Hyper-V checkpoint) is not supported: only qcow2 overlays are read "
                       "through their backing file; merge it into its parent first (Merge-VHD)",
                       img->kind == FMT_VHDX ? "VHDX" : "VHD");
}

int fmt_vhd_open(struct fmt_image *img, char *err, size_t errlen) {
        uint32_t disk_type = 0;
        struct vhd *v;
        int r;

        v = calloc(1, sizeof(*v));
        if (!v)
                return fmt_err(err, errlen, -ENOMEM, "out of memory");
        v->vhdx = img->kind == FMT_VHDX;
        r = lib_open(img, v, &disk_type, err, errlen);
        if (r < 0)
                goto fail;
        if (disk_type == LIBVHDI_DISK_TYPE_DIFFERENTIAL) {
                r = differencing_error(img, v, err, errlen);
                goto fail;
        }
        if (!v->vhdx && disk_type == LIBVHDI_DISK_TYPE_FIXED) {
                /* The disk is the file's first size bytes. */
                if (img->file_size < img->size + VHD_FOOTER) {
                        r = fmt_err(err, errlen, -EBADMSG, "corrupt or truncated vhd image: file shorter than the disk");
                        goto fail;
                }
                vhd_free(v);
                img->raw_layout = true;
                img->seek_data = true;
                return 0;
        }
        if (disk_type != LIBVHDI_DISK_TYPE_DYNAMIC && disk_type != LIBVHDI_DISK_TYPE_FIXED) {
                r = fmt_err(err, errlen, -EOPNOTSUPP, "%s image of unknown disk type %" PRIu32, fmt_kind_name(img->kind),
                            disk_type);
                goto fail;
        }
        r = v->vhdx ? vhdx_parse(img, v, err, errlen) : vhd_parse(img, v, err, errlen);
        if (r < 0)
                goto fail;
        v->win = malloc(BAT_WINDOW * sizeof(uint64_t));
        if (!v->win) {
                r = fmt_err(err, errlen, -ENOMEM, "out of memory");
                goto fail;
        }
        img->priv = v;
        img->ops = &vhd_ops;
        return 0;
fail:
        vhd_free(v);
        return r;
}
