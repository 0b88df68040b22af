/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * formats: read-only access to VM disk images of every supported kind,
 * detected from content (never from the file name):
 *   raw files and block devices (SEEK_DATA/SEEK_HOLE allocation map),
 *   VHD fixed/dynamic and VHDX (libvhdi), QCOW2 (libqcow), VMDK (libvmdk).
 * The size reported is the format's virtual size, exactly.
 *
 * Thread rule: one struct fmt_image per thread (libyal handles are not
 * shared); open the same path twice for two readers.
 *
 * Errors: -ENOENT missing file, -EACCES permission, -EBADMSG corrupt or
 * truncated image, -EOPNOTSUPP unsupported feature (differencing image
 * without its parent, encrypted qcow2, ...), -EIO read failure.
 * Nothing here logs: fmt_open() writes a one-line explanation into its
 * err buffer, and fmt_last_error() explains the last failed fmt_read() or
 * fmt_next_data() of an image.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum fmt_kind {
        FMT_RAW,      /* regular file */
        FMT_BLOCKDEV, /* block device, read raw */
        FMT_VHD,      /* VHD fixed or dynamic */
        FMT_VHDX,
        FMT_QCOW2,
        FMT_VMDK,
};

struct fmt_image;

/* Detect the kind of image at path from its content. 0 or -errno. */
int fmt_detect(const char *path, enum fmt_kind *ret);

/* Open path read-only, detect its format. On failure returns -errno and,
 * if err/errlen is given, writes a one-line human explanation (without the
 * path) such as "differencing VHDX needs its parent image". */
int fmt_open(const char *path, struct fmt_image **ret, char *err, size_t errlen);
void fmt_close(struct fmt_image *img); /* NULL accepted */

/* Virtual disk size in bytes. */
uint64_t fmt_size(const struct fmt_image *img);
enum fmt_kind fmt_kind(const struct fmt_image *img);
/* "raw", "blockdev", "vhd", "vhdx", "qcow2", "vmdk". */
const char *fmt_kind_name(enum fmt_kind k);

/* Read exactly len bytes at off (off + len <= size). 0 or -errno. Bytes of
 * unallocated regions read as zeros. */
int fmt_read(struct fmt_image *img, void *buf, size_t len, uint64_t off);

/*
 * Allocation map: find the first possibly-allocated extent at or after
 * off. Returns 0 and [*ret_start, *ret_end) (end <= size), -ENXIO when
 * nothing at or after off holds data. Formats that cannot tell report the
 * whole remainder [off, size) as data. Everything outside the reported
 * extents reads as zeros.
 */
int fmt_next_data(struct fmt_image *img, uint64_t off, uint64_t *ret_start, uint64_t *ret_end);

/*
 * Overlays. A qcow2 image with a backing file (qemu external snapshots,
 * virsh backup-begin push mode) is read through its chain: fmt_read() and
 * fmt_next_data() give the bytes qemu would see. fmt_backing() names the
 * backing image (the resolved path), NULL for an image without one.
 * fmt_next_own() finds the first extent at or after off that the image
 * itself defines (its own allocated or zeroed clusters, not taken from the
 * backing): 0 and [*ret_start, *ret_end), -ENXIO when none is left. For an
 * image without a backing file that is [off, size). Chains are at most
 * FMT_BACKING_MAX deep.
 */
#define FMT_BACKING_MAX 16
const char *fmt_backing(const struct fmt_image *img);
int fmt_next_own(struct fmt_image *img, uint64_t off, uint64_t *ret_start, uint64_t *ret_end);

/* One-line explanation (without the path) of the last failed fmt_read() or
 * fmt_next_data() on img, "" if none. Owned by img; valid until the next
 * call on img. */
const char *fmt_last_error(const struct fmt_image *img);

/* ---- exports ---- */
#define FMT_VHD_FOOTER_SIZE 512
/*
 * The 512-byte footer that turns size bytes of raw disk into a fixed VHD
 * (creator "win ", so Hyper-V and qemu take the size from the footer, not
 * from the CHS geometry). size must be a multiple of 512. uid identifies
 * the disk; t is the creation time.
 */
void fmt_vhd_footer(uint64_t size, const uint8_t uid[16], time_t t, uint8_t out[FMT_VHD_FOOTER_SIZE]);
