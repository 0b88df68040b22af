/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * formats: qcow2 overlays (images with a backing file), made by qemu-img
 * and written by qemu-io. Each is read through its chain and must equal
 * `qemu-img convert -O raw`; fmt_next_own() must give exactly the extents
 * `qemu-img map` reports at depth 0 (the overlay's own clusters, zeroed
 * ones included). Chains of three, raw and qcow2 backing files, qcow2 v2,
 * 4 KiB clusters, compressed clusters, an overlay larger than its backing
 * file, and the refusals: missing backing file, a protocol name, a
 * declared format the file does not have, a loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "formats.h"
#include "unit.h"

static char pbuf[4][600];
static const char *P(int slot, const char *name) {
        snprintf(pbuf[slot], sizeof pbuf[slot], "%s/%s", unit_dir, name);
        return pbuf[slot];
}

static bool sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool sh(const char *fmt, ...) {
        char cmd[4096];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        strncat(cmd, " >/dev/null 2>&1", sizeof cmd - strlen(cmd) - 1);
        return system(cmd) == 0;
}

/* Depth-0 extents of qemu-img map (merged), into ext; their number. */
static size_t qemu_own(const char *img, uint64_t (*ext)[2], size_t max) {
        char cmd[1400], line[512];
        size_t n = 0;
        FILE *f;

        snprintf(cmd, sizeof cmd, "qemu-img map --output=json '%s'", img);
        f = popen(cmd, "r");
        if (!f)
                return 0;
        while (fgets(line, sizeof line, f)) {
                uint64_t s, l;
                int d;
                const char *p = strstr(line, "\"start\"");
                if (!p || sscanf(p, "\"start\": %" SCNu64 ", \"length\": %" SCNu64 ", \"depth\": %d", &s, &l, &d) != 3 ||
                    d != 0)
                        continue;
                if (n > 0 && ext[n - 1][0] + ext[n - 1][1] == s)
                        ext[n - 1][1] += l;
                else if (n < max) {
                        ext[n][0] = s;
                        ext[n][1] = l;
                        n++;
                }
        }
        pclose(f);
        return n;
}

static uint64_t own[4096][2], want[4096][2];

/* img reads as qemu-img convert gives it, and its own extents are qemu's
 * depth-0 ones. */
static void check_overlay(const char *name, const char *backing_tail) {
        const char *path = P(0, name), *ref = P(1, "ref.raw");
        struct fmt_image *img = NULL;
        _cleanup_free_ uint8_t *a = NULL, *b = NULL;
        char err[512] = "";
        uint64_t size, off = 0, s, e;
        size_t n = 0, nw;
        FILE *f;
        int r;

        CHECK(sh("qemu-img convert -O raw '%s' '%s'", path, ref));
        r = fmt_open(path, &img, err, sizeof err);
        if (r < 0) {
                fprintf(stderr, "%s: open: %d %s\n", name, r, err);
                CHECK(r == 0);
                return;
        }
        CHECK(fmt_backing(img) && strlen(fmt_backing(img)) >= strlen(backing_tail) &&
              strcmp(fmt_backing(img) + strlen(fmt_backing(img)) - strlen(backing_tail), backing_tail) == 0);
        size = fmt_size(img);
        a = malloc(size);
        b = malloc(size);
        f = fopen(ref, "rb");
        CHECK(a && b && f && fread(b, 1, size, f) == size);
        if (f)
                fclose(f);
        r = fmt_read(img, a, size, 0);
        if (r < 0)
                fprintf(stderr, "%s: read: %d %s\n", name, r, fmt_last_error(img));
        CHECK(r == 0);
        CHECK(memcmp(a, b, size) == 0);
        /* fmt_next_data through the chain: everything outside is zeros */
        for (uint64_t at = 0; at < size;) {
                r = fmt_next_data(img, at, &s, &e);
                if (r == -ENXIO) {
                        CHECK(mem_is_zero(b + at, size - at));
                        break;
                }
                CHECK(r == 0 && s >= at && e > s && e <= size);
                if (r < 0 || e <= s)
                        break;
                CHECK(mem_is_zero(b + at, s - at));
                at = e;
        }
        while ((r = fmt_next_own(img, off, &s, &e)) == 0 && n < 4096) {
                CHECK(s >= off && e > s && e <= size);
                if (n > 0 && own[n - 1][1] == s)
                        own[n - 1][1] = e;
                else {
                        own[n][0] = s;
                        own[n++][1] = e;
                }
                off = e;
        }
        CHECK(r == -ENXIO);
        nw = qemu_own(path, want, 4096);
        CHECK(n == nw);
        for (size_t i = 0; i < n && i < nw; i++)
                if (own[i][0] != want[i][0] || own[i][1] - own[i][0] != want[i][1]) {
                        fprintf(stderr, "%s: own extent %zu: %" PRIu64 "-%" PRIu64 ", qemu %" PRIu64 "+%" PRIu64 "\n", name,
                                i, own[i][0], own[i][1], want[i][0], want[i][1]);
                        CHECK(false);
                }
        printf("ok %-16s %zu own extents, reads equal qemu-img convert\n", name, n);
        fmt_close(img);
}

static void check_refused(const char *name, int want_r, const char *text) {
        struct fmt_image *img = NULL;
        char err[512] = "";
        int r = fmt_open(P(0, name), &img, err, sizeof err);

        if (r != want_r || !strstr(err, text))
                fprintf(stderr, "%s: open gave %d (%s), want %d and '%s'\n", name, r, err, want_r, text);
        CHECK(r == want_r && strstr(err, text));
        if (r == 0)
                fmt_close(img);
        else
                printf("ok %-16s refused: %s\n", name, err);
}

int main(void) {
        if (!sh("qemu-img --version") || !sh("qemu-io --version")) {
                printf("skip: qemu-img or qemu-io not found\n");
                return 77;
        }
        unit_tmpdir("overlay");
        /* a raw base with data and holes */
        CHECK(sh("truncate -s 24M '%s' && qemu-io -f raw -c 'write -P 0x11 0 3M' -c 'write -P 0x22 9M 1M' "
                 "-c 'write -P 0x33 23M 1M' '%s'", P(0, "base.raw"), P(0, "base.raw")));
        /* raw-backed, v3, 64 KiB clusters: data, unaligned, zeroed clusters */
        CHECK(sh("cd '%s' && qemu-img create -f qcow2 -b base.raw -F raw o1.qcow2 24M", unit_dir));
        CHECK(sh("qemu-io -c 'write -P 0x5a 1M 2M' -c 'write -P 0x5b 5000 3000' -c 'write -z 9M 512K' "
                 "-c 'write -P 0x5c 23M 4K' '%s'", P(0, "o1.qcow2")));
        check_overlay("o1.qcow2", "base.raw");
        /* a chain of three: o2 on o1 on base.raw, 4 KiB clusters, larger than o1 */
        CHECK(sh("cd '%s' && qemu-img create -f qcow2 -o cluster_size=4096 -b o1.qcow2 -F qcow2 o2.qcow2 40M", unit_dir));
        CHECK(sh("qemu-io -c 'write -P 0x66 2M 8K' -c 'write -P 0x67 30M 1M' -c 'write -z 100K 4K' '%s'", P(0, "o2.qcow2")));
        check_overlay("o2.qcow2", "o1.qcow2");
        /* qcow2 v2 (no zero flag) backed by qcow2, absolute backing name */
        CHECK(sh("qemu-img convert -O qcow2 '%s' '%s'", P(0, "base.raw"), P(1, "base.qcow2")));
        CHECK(sh("qemu-img create -f qcow2 -o compat=0.10 -b '%s' -F qcow2 '%s'", P(0, "base.qcow2"), P(1, "v2.qcow2")));
        CHECK(sh("qemu-io -c 'write -P 0x77 4M 1M' '%s'", P(0, "v2.qcow2")));
        check_overlay("v2.qcow2", "base.qcow2");
        /* a backing file declared raw is read raw, whatever it holds */
        CHECK(sh("cd '%s' && qemu-img create -f qcow2 -b base.qcow2 -F raw rawq.qcow2 24M", unit_dir));
        CHECK(sh("qemu-io -c 'write -P 0x78 0 64K' '%s'", P(0, "rawq.qcow2")));
        check_overlay("rawq.qcow2", "base.qcow2");
        /* compressed clusters in the overlay */
        CHECK(sh("cd '%s' && qemu-img convert -c -O qcow2 -B base.raw -F raw o1.qcow2 oc.qcow2", unit_dir));
        check_overlay("oc.qcow2", "base.raw");

        /* refusals */
        CHECK(sh("cd '%s' && qemu-img create -u -f qcow2 -b gone.raw -F raw missing.qcow2 24M", unit_dir));
        check_refused("missing.qcow2", -ENOENT, "gone.raw");
        CHECK(sh("cd '%s' && qemu-img create -u -f qcow2 -b nbd:127.0.0.1:1 -F raw proto.qcow2 24M", unit_dir));
        check_refused("proto.qcow2", -EOPNOTSUPP, "not a local file name");
        CHECK(sh("cd '%s' && qemu-img create -u -f qcow2 -b base.raw -F qcow2 lie.qcow2 24M", unit_dir));
        check_refused("lie.qcow2", -EBADMSG, "not the qcow2");
        CHECK(sh("cd '%s' && qemu-img create -u -f qcow2 -b loop2.qcow2 -F qcow2 loop.qcow2 24M && "
                 "qemu-img create -u -f qcow2 -b loop.qcow2 -F qcow2 loop2.qcow2 24M", unit_dir));
        check_refused("loop.qcow2", -ELOOP, "deeper than");
        CHECK(sh("cd '%s' && qemu-img create -u -f qcow2 -b base.raw -F vdi vdi.qcow2 24M", unit_dir));
        check_refused("vdi.qcow2", -EOPNOTSUPP, "'vdi' is not supported");
        return unit_exit();
}
