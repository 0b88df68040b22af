/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * formats: detection, sizes, reads and allocation maps of images made by
 * qemu-img from one raw file with holes, plus the refusals (backing file,
 * differencing disk, pending VHDX log) and corrupt images.
 * Exit 0 pass, 1 fail, 77 skip (no qemu-img).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats.h"

#define RAW_SIZE ((UINT64_C(8) << 20) + 1536) /* not a multiple of any cluster */

static int failures;
static char dir[] = "/tmp/test-formats.XXXXXX";
static uint8_t *raw; /* the reference disk */

#define CHECK(cond, ...)                                                                     \
        do {                                                                                 \
                if (!(cond)) {                                                               \
                        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
                        fprintf(stderr, __VA_ARGS__);                                        \
                        fputc('\n', stderr);                                                 \
                        failures++;                                                          \
                }                                                                            \
        } while (0)

static const char *p(const char *name) {
        static char buf[8][512];
        static int i;

        i = (i + 1) % 8;
        snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
        return buf[i];
}

/* Run a shell command quietly; true on exit status 0. */
static bool sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool sh(const char *fmt, ...) {
        char cmd[2048];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(cmd, sizeof(cmd) - 32, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(cmd) - 32)
                return false;
        strcat(cmd, " >/dev/null 2>&1");
        return system(cmd) == 0;
}

static uint64_t rng = 0x9e3779b97f4a7c15;
static uint8_t rnd8(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint8_t)(rng >> 24);
}

static int write_file(const char *path, const void *data, size_t len) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        const uint8_t *b = data;

        if (fd < 0)
                return -errno;
        while (len > 0) {
                ssize_t n = write(fd, b, len);

                if (n <= 0) {
                        close(fd);
                        return -EIO;
                }
                b += n;
                len -= (size_t)n;
        }
        return close(fd) < 0 ? -errno : 0;
}

static int read_file(const char *path, uint8_t **ret, size_t *ret_len) {
        struct stat st;
        uint8_t *b;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !(b = malloc((size_t)st.st_size + 1))) {
                close(fd);
                return -EIO;
        }
        if (pread(fd, b, (size_t)st.st_size, 0) != st.st_size) {
                free(b);
                close(fd);
                return -EIO;
        }
        close(fd);
        *ret = b;
        *ret_len = (size_t)st.st_size;
        return 0;
}

/* The reference: a sparse raw file with data at a few odd places. */
static int make_raw(const char *path) {
        static const struct { uint64_t off, len; } data[] = {
                { 0, 512 },                           /* boot sector */
                { 409600, 12288 },                    /* 4 KiB aligned */
                { (UINT64_C(1) << 20) - 3, 7 },       /* across 1 MiB */
                { 5046272, 327680 },                  /* 320 KiB */
                { RAW_SIZE - 1000, 1000 },            /* the tail, in a partial cluster */
        };
        int fd, r = 0;

        raw = calloc(1, RAW_SIZE);
        if (!raw)
                return -ENOMEM;
        for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++)
                for (uint64_t k = 0; k < data[i].len; k++)
                        raw[data[i].off + k] = rnd8() | 1;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t)RAW_SIZE) < 0)
                r = -errno;
        for (size_t i = 0; r == 0 && i < sizeof(data) / sizeof(data[0]); i++)
                if (pwrite(fd, raw + data[i].off, data[i].len, (off_t)data[i].off) != (ssize_t)data[i].len)
                        r = -EIO;
        close(fd);
        return r;
}

/* Read all of img in odd-sized pieces and compare with ref. */
static void check_read(struct fmt_image *img, const char *name, const uint8_t *ref, uint64_t size) {
        static const size_t pieces[] = { 1, 511, 4097, 65539, (1 << 20) + 17, 4 << 20, 3 };
        uint8_t *buf = malloc(4 << 20);
        uint64_t off = 0;
        size_t i = 0;
        int r;

        CHECK(buf, "out of memory");
        if (!buf)
                return;
        while (off < size) {
                size_t n = (size_t)(pieces[i++ % (sizeof(pieces) / sizeof(pieces[0]))]);

                if (n > size - off)
                        n = (size_t)(size - off);
                memset(buf, 0xaa, n);
                r = fmt_read(img, buf, n, off);
                CHECK(r == 0, "%s: read %zu at %" PRIu64 ": %d %s", name, n, off, r, fmt_last_error(img));
                if (r < 0)
                        break;
                if (memcmp(buf, ref + off, n) != 0) {
                        size_t k = 0;

                        while (buf[k] == ref[off + k])
                                k++;
                        CHECK(false, "%s: data differs at %" PRIu64, name, off + k);
                        break;
                }
                off += n;
        }
        /* Whole 4 MiB buffers, as the replication pipeline reads. */
        for (off = 0; off < size; off += 4 << 20) {
                size_t n = (size_t)(size - off < (4 << 20) ? size - off : (4 << 20));

                r = fmt_read(img, buf, n, off);
                CHECK(r == 0 && memcmp(buf, ref + off, n) == 0, "%s: 4 MiB read at %" PRIu64 ": %d", name, off, r);
        }
        CHECK(fmt_read(img, buf, 2, size - 1) < 0, "%s: read beyond the end succeeded", name);
        free(buf);
}

/* Walk fmt_next_data(): extents are ordered, inside the disk, and all bytes
 * outside them are zero in ref. Returns the bytes reported as data. */
static uint64_t check_map(struct fmt_image *img, const char *name, const uint8_t *ref, uint64_t size) {
        uint64_t off = 0, start, end, data = 0, zero_from = 0;
        int r, n = 0;

        for (;;) {
                r = fmt_next_data(img, off, &start, &end);
                if (r == -ENXIO)
                        break;
                CHECK(r == 0, "%s: next_data at %" PRIu64 ": %d %s", name, off, r, fmt_last_error(img));
                if (r < 0)
                        return size;
                CHECK(start >= off && start < end && end <= size, "%s: bad extent [%" PRIu64 ",%" PRIu64 ") from %" PRIu64,
                      name, start, end, off);
                if (!(start >= off && start < end && end <= size))
                        return size;
                for (uint64_t k = zero_from; k < start; k++)
                        if (ref[k]) {
                                CHECK(false, "%s: data at %" PRIu64 " outside the extents", name, k);
                                return size;
                        }
                data += end - start;
                zero_from = off = end;
                if (++n > 100000) {
                        CHECK(false, "%s: too many extents", name);
                        return size;
                }
        }
        for (uint64_t k = zero_from; k < size; k++)
                if (ref[k]) {
                        CHECK(false, "%s: data at %" PRIu64 " after the last extent", name, k);
                        break;
                }
        CHECK(fmt_next_data(img, size, &start, &end) == -ENXIO, "%s: next_data at the end", name);
        return data;
}

struct conv {
        const char *file;
        const char *args;      /* qemu-img convert options */
        enum fmt_kind kind;
        bool sparse_map;       /* fmt_next_data must skip the holes */
};

static const struct conv convs[] = {
        { "d.qcow2", "-O qcow2", FMT_QCOW2, true },
        { "d-v2.qcow2", "-O qcow2 -o compat=0.10", FMT_QCOW2, true },
        { "d-c.qcow2", "-O qcow2 -c", FMT_QCOW2, true },
        { "d-512.qcow2", "-O qcow2 -o cluster_size=512", FMT_QCOW2, true },
        { "d-2m.qcow2", "-O qcow2 -o cluster_size=2M", FMT_QCOW2, true },
        { "d.vhdx", "-O vhdx", FMT_VHDX, false },
        { "d-1m.vhdx", "-O vhdx -o block_size=1M", FMT_VHDX, true },
        { "d-fixed.vhdx", "-O vhdx -o subformat=fixed", FMT_VHDX, false },
        { "d.vmdk", "-O vmdk", FMT_VMDK, true },
        { "d-so.vmdk", "-O vmdk -o subformat=streamOptimized", FMT_VMDK, true },
        { "d-flat.vmdk", "-O vmdk -o subformat=monolithicFlat", FMT_VMDK, false },
        { "d-2gs.vmdk", "-O vmdk -o subformat=twoGbMaxExtentSparse", FMT_VMDK, true },
        { "d-2gf.vmdk", "-O vmdk -o subformat=twoGbMaxExtentFlat", FMT_VMDK, false },
        { "d-dyn.vhd", "-O vpc -o subformat=dynamic,force_size=on", FMT_VHD, true },
        { "d-fixed.vhd", "-O vpc -o subformat=fixed,force_size=on", FMT_VHD, false },
};

static void check_image(const char *path, const char *name, enum fmt_kind kind, const uint8_t *ref, uint64_t size,
                        bool sparse_map) {
        struct fmt_image *img = NULL;
        enum fmt_kind detected;
        char err[512] = "";
        uint64_t data;
        int r;

        r = fmt_detect(path, &detected);
        CHECK(r == 0 && detected == kind, "%s: detected %d as %s", name, r, r == 0 ? fmt_kind_name(detected) : "-");
        r = fmt_open(path, &img, err, sizeof(err));
        CHECK(r == 0, "%s: open: %d %s", name, r, err);
        if (r < 0)
                return;
        CHECK(fmt_kind(img) == kind, "%s: kind %s", name, fmt_kind_name(fmt_kind(img)));
        CHECK(fmt_size(img) == size, "%s: size %" PRIu64 " != %" PRIu64, name, fmt_size(img), size);
        if (fmt_size(img) == size) {
                check_read(img, name, ref, size);
                data = check_map(img, name, ref, size);
                if (sparse_map)
                        CHECK(data <= size / 8 * 5, "%s: %" PRIu64 " of %" PRIu64 " bytes reported as data", name, data, size);
                printf("ok %-12s %-8s %8" PRIu64 " KiB of %" PRIu64 " KiB mapped as data\n", name, fmt_kind_name(kind),
                       data >> 10, size >> 10);
        }
        fmt_close(img);
}

/* Open must fail with want; the explanation must not be empty. */
static void check_refused(const char *path, const char *name, int want) {
        struct fmt_image *img = NULL;
        char err[512] = "";
        int r;

        r = fmt_open(path, &img, err, sizeof(err));
        CHECK(r == want, "%s: open gave %d (%s), want %d", name, r, err, want);
        CHECK(err[0] != '\0' && !strchr(err, '\n'), "%s: explanation \"%s\"", name, err);
        if (r == 0)
                fmt_close(img);
        else
                printf("ok %-12s refused: %s\n", name, err);
}

/* Compare our reading of path with qemu-img's. */
static void check_against_qemu(const char *path, const char *name, enum fmt_kind kind, bool sparse_map) {
        uint8_t *ref = NULL;
        size_t len = 0;

        if (!sh("qemu-img convert -O raw '%s' '%s'", path, p("qemu.raw")) || read_file(p("qemu.raw"), &ref, &len) < 0) {
                CHECK(false, "%s: qemu-img convert -O raw failed", name);
                return;
        }
        check_image(path, name, kind, ref, len, sparse_map);
        free(ref);
}

static uint32_t crc32c(const uint8_t *b, size_t n) {
        uint32_t crc = 0xffffffff;

        while (n--) {
                crc ^= *b++;
                for (int k = 0; k < 8; k++)
                        crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78 : crc >> 1;
        }
        return crc ^ 0xffffffff;
}

static void put_be32(uint8_t *b, uint32_t v) {
        b[0] = (uint8_t)(v >> 24);
        b[1] = (uint8_t)(v >> 16);
        b[2] = (uint8_t)(v >> 8);
        b[3] = (uint8_t)v;
}

static void put_le32(uint8_t *b, uint32_t v) {
        b[0] = (uint8_t)v;
        b[1] = (uint8_t)(v >> 8);
        b[2] = (uint8_t)(v >> 16);
        b[3] = (uint8_t)(v >> 24);
}

/* Turn a dynamic VHD into a differencing one (disk type 4 in both footer
 * copies): qemu-img cannot create differencing VHD or VHDX images. */
static int make_differencing_vhd(const char *src, const char *dst) {
        uint8_t *b = NULL;
        size_t len = 0;
        int r = read_file(src, &b, &len);

        if (r < 0)
                return r;
        for (int i = 0; i < 2; i++) {
                uint8_t *f = i == 0 ? b : b + len - 512;
                uint32_t sum = 0;

                if (len < 1024 || memcmp(f, "conectix", 8) != 0) {
                        free(b);
                        return -EINVAL;
                }
                put_be32(f + 60, 4);
                memset(f + 64, 0, 4);
                for (int k = 0; k < 512; k++)
                        sum += f[k];
                put_be32(f + 64, ~sum);
        }
        r = write_file(dst, b, len);
        free(b);
        return r;
}

/* Give a VHDX a pending log: point its current header's log GUID at the
 * log entry qemu leaves in the log region. -ENOENT if there is none. */
static int make_pending_log_vhdx(const char *src, const char *dst) {
        uint8_t *b = NULL, *h = NULL, *entry = NULL;
        size_t len = 0;
        uint64_t log_off;
        int r = read_file(src, &b, &len);

        if (r < 0)
                return r;
        for (size_t o = 64 << 10; o <= (128 << 10); o += 64 << 10)
                if (len > o + 4096 && memcmp(b + o, "head", 4) == 0 &&
                    (!h || *(uint64_t *)(b + o + 8) > *(uint64_t *)(h + 8))) /* little endian host */
                        h = b + o;
        if (!h) {
                free(b);
                return -EINVAL;
        }
        log_off = *(uint64_t *)(h + 72);
        for (uint64_t o = log_off; o + 4096 <= len && o < log_off + (1 << 20); o += 4096)
                if (memcmp(b + o, "loge", 4) == 0) {
                        entry = b + o;
                        break;
                }
        if (!entry) {
                free(b);
                return -ENOENT;
        }
        memcpy(h + 48, entry + 32, 16);
        memset(h + 4, 0, 4);
        put_le32(h + 4, crc32c(h, 4096));
        r = write_file(dst, b, len);
        free(b);
        return r;
}

static void test_conversions(void) {
        for (size_t i = 0; i < sizeof(convs) / sizeof(convs[0]); i++) {
                const struct conv *c = &convs[i];

                if (!sh("qemu-img convert %s '%s' '%s'", c->args, p("raw.img"), p(c->file))) {
                        printf("skip %s: qemu-img convert %s failed\n", c->file, c->args);
                        continue;
                }
                check_image(p(c->file), c->file, c->kind, raw, RAW_SIZE, c->sparse_map);
        }
        check_image(p("raw.img"), "raw.img", FMT_RAW, raw, RAW_SIZE, false);

        /* A renamed monolithic sparse VMDK (its descriptor names d.vmdk). */
        if (sh("cp '%s' '%s'", p("d.vmdk"), p("renamed.vmdk")))
                check_image(p("renamed.vmdk"), "renamed.vmdk", FMT_VMDK, raw, RAW_SIZE, true);
}

/* qemu sets the qcow2 zero flag on discard and write-zeroes, and writes
 * zeroed-grain entries in VMDKs made with zeroed_grain=on; both read as
 * zeros (libqcow and libvmdk alone would return stale bytes). */
static void test_zero_entries(void) {
        if (!sh("qemu-io --version")) {
                printf("skip zero entries: no qemu-io\n");
                return;
        }
        if (sh("qemu-img convert -O qcow2 '%s' '%s'", p("raw.img"), p("z.qcow2")) &&
            sh("qemu-io -c 'discard 5046272 64k' -c 'write -z 5177344 64k' -c 'write -z 0 64k' '%s'", p("z.qcow2")))
                check_against_qemu(p("z.qcow2"), "zeroflag.qcow2", FMT_QCOW2, true);
        else
                printf("skip zero-flag qcow2: qemu-io failed\n");
        if (sh("qemu-img convert -O vmdk -o zeroed_grain=on '%s' '%s'", p("raw.img"), p("z.vmdk")) &&
            sh("qemu-io -c 'write -z 5046272 64k' -c 'write -z 0 64k' '%s'", p("z.vmdk")))
                check_against_qemu(p("z.vmdk"), "zerograin.vmdk", FMT_VMDK, true);
        else
                printf("skip zeroed-grain vmdk: qemu-img/qemu-io failed\n");
}

/* Cut the last cut bytes (holding data) off file; opening may fail with
 * -EBADMSG, but reading the whole disk must not succeed. */
static void check_cut_data(const char *file, enum fmt_kind kind, size_t cut) {
        char name[64], err[512] = "";
        struct fmt_image *img = NULL;
        uint64_t off, start = 0, end = 0, size;
        uint8_t *b = NULL, *buf;
        size_t len = 0;
        int r = 0;

        snprintf(name, sizeof(name), "cut-%s", file);
        if (read_file(p(file), &b, &len) < 0 || len < 2 * cut) {
                free(b);
                printf("skip %s: no %s\n", name, file);
                return;
        }
        CHECK(write_file(p(name), b, len - cut) == 0, "write %s", name);
        free(b);
        r = fmt_open(p(name), &img, err, sizeof(err));
        CHECK(r == 0 || r == -EBADMSG, "%s: open: %d %s", name, r, err);
        if (r < 0) {
                printf("ok %-12s refused: %s\n", name, err);
                return;
        }
        CHECK(fmt_kind(img) == kind, "%s: kind", name);
        size = fmt_size(img);
        buf = malloc(1 << 20);
        for (off = 0; buf && off < size; off = end) {
                r = fmt_next_data(img, off, &start, &end);
                if (r == -ENXIO)
                        break;
                if (r < 0)
                        break;
                for (uint64_t o = start; o < end && r == 0; o += 1 << 20)
                        r = fmt_read(img, buf, (size_t)(end - o < (1 << 20) ? end - o : (1 << 20)), o);
                if (r < 0)
                        break;
        }
        CHECK(r == -EBADMSG && fmt_last_error(img)[0], "%s: reading gave %d, want %d", name, r, -EBADMSG);
        if (r == -EBADMSG)
                printf("ok %-12s read: %s\n", name, fmt_last_error(img));
        free(buf);
        fmt_close(img);
}

static uint64_t get_be(const uint8_t *b, int n) {
        uint64_t v = 0;

        for (int i = 0; i < n; i++)
                v = v << 8 | b[i];
        return v;
}

/* In a dynamic VHD, sectors whose bit in the block's sector bitmap is clear
 * read as zeros. qemu sets every bit, so clear some: sector 0 and the eight
 * sectors at 409600. */
static void test_vhd_bitmap(void) {
        uint8_t *b = NULL, *ref = NULL;
        uint64_t dyn, bat, block0;
        size_t len = 0;

        if (read_file(p("d-dyn.vhd"), &b, &len) < 0) {
                printf("skip vhd bitmap: no dynamic vhd\n");
                return;
        }
        dyn = get_be(b + 16, 8);
        CHECK(dyn + 1024 <= len && memcmp(b + dyn, "cxsparse", 8) == 0, "d-dyn.vhd: no dynamic header");
        if (!(dyn + 1024 <= len && memcmp(b + dyn, "cxsparse", 8) == 0))
                goto out;
        bat = get_be(b + dyn + 16, 8);
        block0 = get_be(b + bat, 4) * 512;
        CHECK(get_be(b + bat, 4) != 0xffffffff && block0 + 512 <= len && b[block0] == 0xff, "d-dyn.vhd: block 0");
        if (!(get_be(b + bat, 4) != 0xffffffff && block0 + 512 <= len))
                goto out;
        b[block0] &= 0x7f;      /* sector 0 */
        b[block0 + 100] = 0;    /* sectors 800..807 */
        CHECK(write_file(p("bitmap.vhd"), b, len) == 0, "write bitmap.vhd");
        ref = malloc(RAW_SIZE);
        if (!ref)
                goto out;
        memcpy(ref, raw, RAW_SIZE);
        memset(ref, 0, 512);
        memset(ref + 800 * 512, 0, 8 * 512);
        check_image(p("bitmap.vhd"), "bitmap.vhd", FMT_VHD, ref, RAW_SIZE, true);
out:
        free(ref);
        free(b);
}

static void test_refusals(void) {
        struct fmt_image *img = NULL;
        enum fmt_kind kind;
        char err[512] = "";
        uint8_t *b = NULL;
        size_t len = 0;
        int r;

        /* Content, not the name, decides. */
        if (sh("cp '%s' '%s'", p("raw.img"), p("foo.qcow2")))
                check_image(p("foo.qcow2"), "foo.qcow2", FMT_RAW, raw, RAW_SIZE, false);

        r = fmt_open(p("missing.img"), &img, err, sizeof(err));
        CHECK(r == -ENOENT && err[0], "missing: %d %s", r, err);
        CHECK(fmt_detect(p("missing.img"), &kind) == -ENOENT, "missing: detect");

        /* Truncated and corrupt images. */
        if (read_file(p("d.qcow2"), &b, &len) == 0) {
                CHECK(write_file(p("t100.qcow2"), b, 100) == 0, "write t100.qcow2");
                check_refused(p("t100.qcow2"), "t100.qcow2", -EBADMSG);
                free(b);
                b = NULL;
        }
        if (read_file(p("d.vhdx"), &b, &len) == 0) {
                for (size_t i = 64 << 10; i < (320 << 10) && i < len; i++)
                        b[i] = rnd8();
                CHECK(write_file(p("garbage.vhdx"), b, len) == 0, "write garbage.vhdx");
                check_refused(p("garbage.vhdx"), "garbage.vhdx", -EBADMSG);
                free(b);
                b = NULL;
        }
        if (read_file(p("d-dyn.vhd"), &b, &len) == 0) {
                CHECK(write_file(p("cut.vhd"), b, len / 2) == 0, "write cut.vhd");
                check_refused(p("cut.vhd"), "cut.vhd", -EBADMSG);
                free(b);
                b = NULL;
        }
        /* Data cut off behind intact tables: reads fail, never read zeros. */
        check_cut_data("d.qcow2", FMT_QCOW2, 64 << 10);
        check_cut_data("d.vmdk", FMT_VMDK, 64 << 10);
        check_cut_data("d-1m.vhdx", FMT_VHDX, (1 << 20) + (64 << 10)); /* the last block, and more */

        /* Backing files and differencing disks. */
        if (sh("qemu-img create -f qcow2 -b '%s' -F qcow2 '%s' 8M", p("d.qcow2"), p("backed.qcow2")))
                check_against_qemu(p("backed.qcow2"), "backed.qcow2", FMT_QCOW2, false); /* read through its chain */
        else
                CHECK(false, "qemu-img could not create a qcow2 with a backing file");
        if (sh("qemu-img create -f vhdx -b '%s' -F vhdx '%s' 8M", p("d.vhdx"), p("diff.vhdx")))
                check_refused(p("diff.vhdx"), "diff.vhdx", -EOPNOTSUPP);
        else if (sh("qemu-img create -f vpc -b '%s' -F vpc '%s' 8M", p("d-dyn.vhd"), p("diff.vhd")))
                check_refused(p("diff.vhd"), "diff.vhd", -EOPNOTSUPP);
        else
                printf("skip qemu-made differencing image: qemu-img cannot create one\n");
        if (make_differencing_vhd(p("d-dyn.vhd"), p("diff-patched.vhd")) == 0)
                check_refused(p("diff-patched.vhd"), "diff-patched.vhd", -EOPNOTSUPP);

        if (sh("qemu-img convert --object secret,id=s0,data=pw -O qcow2 -o encrypt.format=luks,encrypt.key-secret=s0 "
               "'%s' '%s'", p("raw.img"), p("luks.qcow2")))
                check_refused(p("luks.qcow2"), "luks.qcow2", -EOPNOTSUPP);
        if (sh("qemu-img convert -O qcow2 -o compression_type=zstd -c '%s' '%s'", p("raw.img"), p("zstd.qcow2")))
                check_refused(p("zstd.qcow2"), "zstd.qcow2", -EOPNOTSUPP);

        /* A VHDX whose log was not replayed. */
        if (sh("qemu-img create -f vhdx -o block_size=1M '%s' 8M", p("log.vhdx")) &&
            sh("qemu-io -c 'write -P 0x55 0 1M' '%s'", p("log.vhdx"))) {
                r = make_pending_log_vhdx(p("log.vhdx"), p("pending-log.vhdx"));
                if (r == 0)
                        check_refused(p("pending-log.vhdx"), "pending-log.vhdx", -EOPNOTSUPP);
                else
                        printf("skip pending vhdx log: no log entry to point at (%d)\n", r);
        }
}

int main(void) {
        int r;

        if (!sh("qemu-img --version")) {
                printf("skip: qemu-img not found\n");
                return 77;
        }
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 1;
        }
        r = make_raw(p("raw.img"));
        CHECK(r == 0, "make raw: %d", r);
        if (r == 0) {
                test_conversions();
                test_zero_entries();
                test_vhd_bitmap();
                test_refusals();
        }
        sh("rm -rf '%s'", dir);
        free(raw);
        if (failures) {
                fprintf(stderr, "%d check(s) failed\n", failures);
                return 1;
        }
        printf("all formats checks passed\n");
        return 0;
}
