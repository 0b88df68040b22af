/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * formats internals, shared by formats.c (detection, raw files, the generic
 * read and allocation-map loops) and one file per image family:
 * qcow2.c (libqcow), vhd.c (libvhdi: VHD and VHDX), vmdk.c (libvmdk).
 *
 * Each family may describe its virtual disk through map(): for an offset it
 * says how the bytes there are stored (zeros, plain bytes at an offset of a
 * file we hold open, or "ask the library"). fmt_read() and fmt_next_data()
 * are then generic loops over map(). Reading plain bytes ourselves is both
 * faster than going through libyal's caches and lets us fix libyal's
 * mistakes (libqcow ignores the qcow2 zero flag, libvmdk ignores zeroed-grain
 * entries; both then return stale bytes where qemu reads zeros).
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "formats.h"

enum fmt_map_kind {
        FMT_MAP_ZERO, /* reads as zeros */
        FMT_MAP_HOST, /* plain bytes at host in file fd */
        FMT_MAP_LIB,  /* read through the library (compressed data, ...) */
        FMT_MAP_BACKING, /* the same offset of img->backing (zeros past its end) */
};

struct fmt_map {
        enum fmt_map_kind kind;
        uint64_t len;  /* > 0: bytes from the queried offset mapped alike */
        int fd;        /* FMT_MAP_HOST only */
        uint64_t host; /* FMT_MAP_HOST only: where the queried byte is */
        uint64_t host_size; /* FMT_MAP_HOST only: size of fd's file */
};

struct fmt_ops {
        /* Describe the bytes at off (< size). NULL: everything is FMT_MAP_LIB
         * (then lib_read must be set).
         * 0 or -errno (-EBADMSG for corrupt tables, -EIO). */
        int (*map)(struct fmt_image *img, uint64_t off, struct fmt_map *ret);
        /* Read exactly len bytes at off through the library; NULL when map
         * never answers FMT_MAP_LIB. */
        int (*lib_read)(struct fmt_image *img, void *buf, size_t len, uint64_t off);
        void (*close)(struct fmt_image *img);
};

struct fmt_image {
        enum fmt_kind kind;
        uint64_t size;          /* virtual size */
        int fd;                 /* the image file (or device) itself */
        uint64_t file_size;     /* size of fd's file at open */
        bool raw_layout;        /* fd holds the disk at offset 0 (raw, device, fixed VHD) */
        bool seek_data;         /* SEEK_DATA/SEEK_HOLE are meaningful on fd */
        const struct fmt_ops *ops; /* NULL for raw_layout */
        void *priv;             /* owned by ops->close */
        struct fmt_image *backing; /* a qcow2 overlay's backing image, else NULL; owned */
        unsigned depth;         /* backing chain depth of this image (0: the one opened) */
        char path[4096];        /* as given to fmt_open */
        char err[512];          /* explanation of the last failure */
};

/* Write a formatted message to err (if given) and return r. */
int fmt_err(char *err, size_t errlen, int r, const char *fmt, ...) _printf_(4, 5);

/* Turn a libyal error backtrace (one "function: message." per line,
 * innermost first) into one line, outermost first, without function names
 * and without lines naming path. */
void fmt_yal_condense(const char *text, const char *path, char *out, size_t outlen);

/* Read len bytes at off of a file of size file_size (checked again with
 * fstat if the range does not fit): -EBADMSG when part of the range lies
 * beyond the end of the file (truncated image; qemu would read zeros
 * there, but a backup should not copy a truncated image silently), else 0
 * or -errno. */
int fmt_pread_host(int fd, uint64_t file_size, void *buf, size_t len, uint64_t off);

/* fmt_open() of a backing image: want is the kind its overlay declares
 * (FMT_RAW: opened raw whatever its content) or -1 to detect it; depth
 * its place in the chain. */
int fmt_open_as(const char *path, int want, unsigned depth, struct fmt_image **ret, char *err, size_t errlen);

/* Open the backing image name of img (relative names are relative to
 * img's directory; fmt_backing.c). want: the kind the image header
 * declares, or -1 to detect it (a raw backing is never probed for a
 * format: a declared "raw" is opened raw). Sets img->backing. 0 or -errno
 * with a one-line explanation in err. */
int fmt_backing_open(struct fmt_image *img, const char *name, int want, char *err, size_t errlen);

/* Family openers: img->fd, file_size, path and kind are set. They set size,
 * ops, priv (and raw_layout/seek_data for a fixed VHD). 0 or -errno with a
 * one-line explanation in err. On failure they free what they allocated. */
int fmt_qcow2_open(struct fmt_image *img, char *err, size_t errlen);
int fmt_vhd_open(struct fmt_image *img, char *err, size_t errlen);  /* VHD and VHDX */
int fmt_vmdk_open(struct fmt_image *img, char *err, size_t errlen);
