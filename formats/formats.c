/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * formats: detection from content, raw files and block devices, and the
 * generic read / allocation-map loops over a family's map() (formats_i.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats_i.h"

/* fmt_next_data() stops extending an extent of a mapped format here, so one
 * call never walks a whole huge table; the caller just asks again. */
#define FMT_EXTENT_MAX (UINT64_C(1) << 30)

#define PROBE_HEAD 1024

int fmt_err(char *err, size_t errlen, int r, const char *fmt, ...) {
        va_list ap;

        if (err && errlen > 0) {
                va_start(ap, fmt);
                vsnprintf(err, errlen, fmt, ap);
                va_end(ap);
        }
        return r;
}

static bool is_ident_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Append one backtrace line (without its "function: " prefix and trailing
 * dot) to out, unless it is empty, names path or repeats the last one. */
static void condense_line(const char *line, size_t n, const char *path, char *out, size_t outlen,
                          char *last, size_t lastlen) {
        size_t i = 0, used;

        while (i < n && is_ident_char(line[i]))
                i++;
        if (i > 0 && i + 1 < n && line[i] == ':' && line[i + 1] == ' ') {
                line += i + 2;
                n -= i + 2;
        }
        while (n > 0 && (line[n - 1] == '.' || line[n - 1] == ' ' || line[n - 1] == '\r'))
                n--;
        if (n == 0 || n >= lastlen)
                return;
        if (path && *path && memmem(line, n, path, strlen(path)))
                return;
        if (strlen(last) == n && memcmp(last, line, n) == 0)
                return;
        memcpy(last, line, n);
        last[n] = '\0';
        used = strlen(out);
        if (used + 1 >= outlen)
                return;
        snprintf(out + used, outlen - used, "%s%s", used > 0 ? ": " : "", last);
}

void fmt_yal_condense(const char *text, const char *path, char *out, size_t outlen) {
        char last[512] = "";
        const char *end;

        if (outlen == 0)
                return;
        out[0] = '\0';
        if (!text)
                text = "";
        /* Lines are innermost first; emit them outermost first. */
        end = text + strlen(text);
        while (end > text) {
                const char *start = end;

                while (start > text && start[-1] != '\n')
                        start--;
                condense_line(start, (size_t)(end - start), path, out, outlen, last, sizeof(last));
                end = start > text ? start - 1 : text;
        }
        if (out[0] == '\0')
                snprintf(out, outlen, "unknown error");
}

int fmt_pread_host(int fd, uint64_t file_size, void *buf, size_t len, uint64_t off) {
        struct stat st;

        if (len == 0)
                return 0;
        if (off > file_size || len > file_size - off) {
                /* The file may have grown since it was opened. */
                if (fstat(fd, &st) < 0)
                        return -errno;
                if (off > (uint64_t)st.st_size || len > (uint64_t)st.st_size - off)
                        return -EBADMSG;
        }
        return pread_full(fd, buf, len, off);
}

const char *fmt_kind_name(enum fmt_kind k) {
        switch (k) {
        case FMT_RAW:
                return "raw";
        case FMT_BLOCKDEV:
                return "blockdev";
        case FMT_VHD:
                return "vhd";
        case FMT_VHDX:
                return "vhdx";
        case FMT_QCOW2:
                return "qcow2";
        case FMT_VMDK:
                return "vmdk";
        }
        return "unknown";
}

/* Detect the kind of the open file fd (stat in st). */
static int probe(int fd, const struct stat *st, enum fmt_kind *ret, char *err, size_t errlen) {
        uint8_t head[PROBE_HEAD], tail[512];
        size_t n;
        ssize_t k;
        int r;

        if (S_ISBLK(st->st_mode)) {
                *ret = FMT_BLOCKDEV;
                return 0;
        }
        if (S_ISDIR(st->st_mode))
                return fmt_err(err, errlen, -EISDIR, "is a directory");
        if (!S_ISREG(st->st_mode))
                return fmt_err(err, errlen, -EINVAL, "not a regular file or block device");

        memset(head, 0, sizeof(head));
        n = (size_t)MIN((uint64_t)st->st_size, (uint64_t)sizeof(head));
        r = pread_full(fd, head, n, 0);
        if (r < 0)
                return fmt_err(err, errlen, r, "cannot read: %s", strerror(-r));

        if (n >= 4 && memcmp(head, "QFI\xfb", 4) == 0)
                *ret = FMT_QCOW2;
        else if (n >= 8 && memcmp(head, "vhdxfile", 8) == 0)
                *ret = FMT_VHDX;
        else if (n >= 4 && (memcmp(head, "KDMV", 4) == 0 || memcmp(head, "COWD", 4) == 0))
                *ret = FMT_VMDK;
        else if (memmem(head, n, "# Disk DescriptorFile", 21))
                *ret = FMT_VMDK;
        else if (n >= 8 && memcmp(head, "conectix", 8) == 0)
                *ret = FMT_VHD; /* dynamic (or differencing) VHD: footer copy at 0 */
        else {
                *ret = FMT_RAW;
                if (st->st_size >= 512) {
                        k = pread(fd, tail, sizeof(tail), st->st_size - (off_t)sizeof(tail));
                        if (k < 0)
                                return fmt_err(err, errlen, -errno, "cannot read: %m");
                        if (k == (ssize_t)sizeof(tail) && memcmp(tail, "conectix", 8) == 0)
                                *ret = FMT_VHD; /* fixed VHD: footer only at the end */
                }
        }
        return 0;
}

static int open_fd(const char *path, int *ret_fd, struct stat *st, char *err, size_t errlen) {
        _cleanup_close_ int fd = -1;

        /* O_NONBLOCK so that a FIFO does not hang us; dropped below. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return fmt_err(err, errlen, -errno, "cannot open: %m");
        if (fstat(fd, st) < 0)
                return fmt_err(err, errlen, -errno, "cannot stat: %m");
        if (fcntl(fd, F_SETFL, 0) < 0)
                return fmt_err(err, errlen, -errno, "cannot clear O_NONBLOCK: %m");
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int fmt_detect(const char *path, enum fmt_kind *ret) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        if (!path || !ret)
                return -EINVAL;
        r = open_fd(path, &fd, &st, NULL, 0);
        if (r < 0)
                return r;
        return probe(fd, &st, ret, NULL, 0);
}

static int raw_open(struct fmt_image *img, const struct stat *st, char *err, size_t errlen) {
        uint64_t size;

        img->raw_layout = true;
        if (img->kind == FMT_BLOCKDEV) {
                if (ioctl(img->fd, BLKGETSIZE64, &size) < 0)
                        return fmt_err(err, errlen, -errno, "cannot get the block device size: %m");
                img->size = size;
                img->file_size = size;
                img->seek_data = false;
        } else {
                img->size = (uint64_t)st->st_size;
                img->seek_data = true;
        }
        return 0;
}

int fmt_open(const char *path, struct fmt_image **ret, char *err, size_t errlen) {
        return fmt_open_as(path, -1, 0, ret, err, errlen);
}

int fmt_open_as(const char *path, int want, unsigned depth, struct fmt_image **ret, char *err, size_t errlen) {
        _cleanup_close_ int fd = -1;
        struct fmt_image *img;
        struct stat st;
        enum fmt_kind kind;
        int r;

        if (err && errlen > 0)
                err[0] = '\0';
        if (!path || !ret)
                return fmt_err(err, errlen, -EINVAL, "invalid argument");
        if (strlen(path) >= sizeof(img->path))
                return fmt_err(err, errlen, -ENAMETOOLONG, "path too long");

        r = open_fd(path, &fd, &st, err, errlen);
        if (r < 0)
                return r;
        r = probe(fd, &st, &kind, err, errlen);
        if (r < 0)
                return r;
        if (want == FMT_RAW && kind != FMT_BLOCKDEV)
                kind = FMT_RAW; /* declared raw: never probed for a format */
        else if (want >= 0 && (enum fmt_kind)want != kind && !(want == FMT_RAW && kind == FMT_BLOCKDEV))
                return fmt_err(err, errlen, -EBADMSG, "is %s, not the %s its overlay declares", fmt_kind_name(kind),
                               fmt_kind_name((enum fmt_kind)want));

        img = calloc(1, sizeof(*img));
        if (!img)
                return fmt_err(err, errlen, -ENOMEM, "out of memory");
        img->kind = kind;
        img->fd = TAKE_FD(fd);
        img->file_size = (uint64_t)st.st_size;
        img->depth = depth;
        strcpy(img->path, path);

        switch (kind) {
        case FMT_RAW:
        case FMT_BLOCKDEV:
                r = raw_open(img, &st, err, errlen);
                break;
        case FMT_QCOW2:
                r = fmt_qcow2_open(img, err, errlen);
                break;
        case FMT_VHD:
        case FMT_VHDX:
                r = fmt_vhd_open(img, err, errlen);
                break;
        case FMT_VMDK:
                r = fmt_vmdk_open(img, err, errlen);
                break;
        default:
                r = fmt_err(err, errlen, -EOPNOTSUPP, "unknown image format");
        }
        if (r < 0) {
                /* The family opener already freed its own state. */
                img->ops = NULL;
                fmt_close(img);
                return r;
        }
        (void)posix_fadvise(img->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        *ret = img;
        return 0;
}

void fmt_close(struct fmt_image *img) {
        if (!img)
                return;
        if (img->ops && img->ops->close)
                img->ops->close(img);
        fmt_close(img->backing);
        if (img->fd >= 0)
                close(img->fd);
        free(img);
}

uint64_t fmt_size(const struct fmt_image *img) {
        return img->size;
}

enum fmt_kind fmt_kind(const struct fmt_image *img) {
        return img->kind;
}

const char *fmt_last_error(const struct fmt_image *img) {
        return img->err;
}

/* Bytes [off, off + len) of img's backing image, zeros past its end. */
static int read_backing(struct fmt_image *img, uint8_t *buf, size_t len, uint64_t off) {
        struct fmt_image *b = img->backing;
        size_t n;
        int r;

        if (!b)
                return fmt_err(img->err, sizeof(img->err), -EIO, "internal error: no backing image");
        n = off >= b->size ? 0 : (size_t)MIN((uint64_t)len, b->size - off);
        memset(buf + n, 0, len - n);
        if (n == 0)
                return 0;
        r = fmt_read(b, buf, n, off);
        if (r < 0)
                fmt_err(img->err, sizeof(img->err), r, "backing file %s: %s", b->path, b->err);
        return r;
}

static int read_mapped(struct fmt_image *img, uint8_t *buf, size_t len, uint64_t off) {
        struct fmt_map m;
        size_t n;
        int r;

        while (len > 0) {
                memset(&m, 0, sizeof(m));
                r = img->ops->map(img, off, &m);
                if (r < 0)
                        return r;
                if (m.len == 0)
                        return fmt_err(img->err, sizeof(img->err), -EIO, "internal error: empty map");
                n = (size_t)MIN((uint64_t)len, m.len);
                switch (m.kind) {
                case FMT_MAP_ZERO:
                        memset(buf, 0, n);
                        r = 0;
                        break;
                case FMT_MAP_HOST:
                        r = fmt_pread_host(m.fd, m.host_size, buf, n, m.host);
                        if (r == -EBADMSG)
                                fmt_err(img->err, sizeof(img->err), r,
                                        "corrupt or truncated %s image: data at %" PRIu64 " lies beyond the end of the file",
                                        fmt_kind_name(img->kind), m.host);
                        else if (r < 0)
                                fmt_err(img->err, sizeof(img->err), r, "read error: %s", strerror(-r));
                        break;
                case FMT_MAP_BACKING:
                        r = read_backing(img, buf, n, off);
                        break;
                case FMT_MAP_LIB:
                        r = img->ops->lib_read ? img->ops->lib_read(img, buf, n, off)
                                               : fmt_err(img->err, sizeof(img->err), -EIO, "internal error: no library reader");
                        break;
                default:
                        r = fmt_err(img->err, sizeof(img->err), -EIO, "internal error: bad map");
                }
                if (r < 0)
                        return r;
                buf += n;
                len -= n;
                off += n;
        }
        return 0;
}

int fmt_read(struct fmt_image *img, void *buf, size_t len, uint64_t off) {
        int r;

        if (!img || (!buf && len > 0))
                return -EINVAL;
        if (off > img->size || len > img->size - off)
                return fmt_err(img->err, sizeof(img->err), -EINVAL, "read beyond the end of the disk");
        if (len == 0)
                return 0;
        if (img->raw_layout) {
                r = pread_full(img->fd, buf, len, off);
                if (r < 0)
                        fmt_err(img->err, sizeof(img->err), r, "read error: %s", strerror(-r));
                return r;
        }
        if (!img->ops->map)
                return img->ops->lib_read(img, buf, len, off);
        return read_mapped(img, buf, len, off);
}

static int next_data_raw(struct fmt_image *img, uint64_t off, uint64_t *ret_start, uint64_t *ret_end) {
        off_t d, h;

        if (!img->seek_data)
                goto whole;
        d = lseek(img->fd, (off_t)off, SEEK_DATA);
        if (d < 0) {
                if (errno == ENXIO)
                        return -ENXIO;
                goto whole; /* SEEK_DATA not supported */
        }
        if ((uint64_t)d >= img->size)
                return -ENXIO; /* only the VHD footer is left */
        h = lseek(img->fd, d, SEEK_HOLE);
        *ret_start = (uint64_t)d;
        *ret_end = h < 0 ? img->size : MIN((uint64_t)h, img->size);
        if (*ret_end <= *ret_start)
                *ret_end = img->size;
        return 0;
whole:
        *ret_start = off;
        *ret_end = img->size;
        return 0;
}

/* Narrow a FMT_MAP_HOST mapping m to the data of its host file: *skip
 * bytes of hole come first, then *len bytes of data (0: none in m). */
static void host_data(const struct fmt_map *m, uint64_t *skip, uint64_t *len) {
        off_t d, h;

        if (m->host >= m->host_size || m->len > m->host_size - m->host) {
                /* Partly beyond the end of the file: report it, so that
                 * reading it tells about the truncated image. */
                *skip = 0;
                *len = m->len;
                return;
        }
        d = lseek(m->fd, (off_t)m->host, SEEK_DATA);
        if (d < 0) {
                *skip = errno == ENXIO ? m->len : 0; /* ENXIO: only a hole up to the end */
                *len = m->len - *skip;
                return;
        }
        if ((uint64_t)d < m->host || (uint64_t)d - m->host >= m->len) {
                *skip = m->len;
                *len = 0;
                return;
        }
        *skip = (uint64_t)d - m->host;
        h = lseek(m->fd, d, SEEK_HOLE);
        if (h < d || (uint64_t)h - m->host >= m->len)
                *len = m->len - *skip;
        else
                *len = (uint64_t)(h - d);
}

/* The backing image's first data extent in [off, off + len): 0, or -ENXIO
 * when it has none there. */
static int next_data_backing(struct fmt_image *img, uint64_t off, uint64_t len, uint64_t *ret_start,
                             uint64_t *ret_end) {
        uint64_t s, e;
        int r;

        if (!img->backing)
                return fmt_err(img->err, sizeof(img->err), -EIO, "internal error: no backing image");
        r = fmt_next_data(img->backing, off, &s, &e);
        if (r == -ENXIO || (r >= 0 && s >= off + len))
                return -ENXIO;
        if (r < 0)
                return fmt_err(img->err, sizeof(img->err), r, "backing file %s: %s", img->backing->path,
                               img->backing->err);
        *ret_start = MAX(s, off);
        *ret_end = MIN(e, off + len);
        return 0;
}

int fmt_next_data(struct fmt_image *img, uint64_t off, uint64_t *ret_start, uint64_t *ret_end) {
        struct fmt_map m;
        uint64_t start, end, skip = 0, len = 0;
        bool more;
        int r;

        if (!img || !ret_start || !ret_end)
                return -EINVAL;
        if (off >= img->size)
                return -ENXIO;
        if (img->raw_layout)
                return next_data_raw(img, off, ret_start, ret_end);
        if (!img->ops->map) {
                *ret_start = off;
                *ret_end = img->size;
                return 0;
        }
        /* Skip what reads as zeros: unallocated, and holes of host files. */
        for (;;) {
                r = img->ops->map(img, off, &m);
                if (r < 0)
                        return r;
                if (m.len == 0)
                        return fmt_err(img->err, sizeof(img->err), -EIO, "internal error: empty map");
                m.len = MIN(m.len, img->size - off);
                skip = len = 0;
                if (m.kind == FMT_MAP_BACKING) {
                        r = next_data_backing(img, off, m.len, ret_start, ret_end);
                        if (r != -ENXIO)
                                return r;
                }
                if (m.kind == FMT_MAP_HOST)
                        host_data(&m, &skip, &len);
                if (m.kind == FMT_MAP_LIB || (m.kind == FMT_MAP_HOST && len > 0))
                        break;
                off += m.len;
                if (off >= img->size)
                        return -ENXIO;
        }
        start = off + skip;
        end = m.kind == FMT_MAP_HOST ? start + len : off + m.len;
        more = end == off + m.len;
        /* Extend over following data. */
        while (more && end < img->size && end - start < FMT_EXTENT_MAX) {
                r = img->ops->map(img, end, &m);
                if (r < 0)
                        return r;
                if (m.len == 0)
                        return fmt_err(img->err, sizeof(img->err), -EIO, "internal error: empty map");
                m.len = MIN(m.len, img->size - end);
                if (m.kind == FMT_MAP_ZERO || m.kind == FMT_MAP_BACKING)
                        break; /* the caller asks again from end */
                if (m.kind == FMT_MAP_HOST) {
                        host_data(&m, &skip, &len);
                        if (skip > 0 || len == 0)
                                break;
                        more = len == m.len;
                        end += len;
                } else
                        end += m.len;
        }
        *ret_start = start;
        *ret_end = end;
        return 0;
}
