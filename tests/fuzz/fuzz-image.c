/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Image headers and tables (raw, VHD, VHDX, QCOW2, VMDK): opening,
 * the allocation map and reads of damaged images must fail cleanly.
 * Built with -DFUZZ_KIND=FMT_QCOW2 (fuzz-qcow2, fuzz-vhd, fuzz-vhdx,
 * fuzz-vmdk) it only goes on with input detected as that kind, so that
 * libFuzzer spends its time in that format's tables (qcow2 L1/L2, VHD
 * BAT and sector bitmaps, VHDX BAT and metadata, VMDK descriptor and
 * grain tables). Overlays: a qcow2 whose backing file is FUZZ_BACKING
 * (run-image.sh's ov.qcow2 seed) is read through its chain, and its own
 * extents walked. */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "formats.h"
#include "fuzz.h"

/* Overlay seeds (run-image.sh) name this backing file: made once, 256 KiB
 * of zeros, so that inputs with a backing file reach the overlay's map. */
#define FUZZ_BACKING "/tmp/rpfs-fuzz-backing.raw"

static void make_backing(void) {
        static bool done;
        static uint8_t zeros[256 << 10];

        if (!done && access(FUZZ_BACKING, R_OK) != 0)
                (void)write_file_atomic(FUZZ_BACKING, zeros, sizeof zeros, false);
        done = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char path[64], err[256];
        struct fmt_image *img = NULL;
        static uint8_t buf[65536];
        int fd = memfd_create("fuzz-image", MFD_CLOEXEC);
        uint64_t off = 0;

        if (fd < 0)
                return 0;
        if (write(fd, data, size) != (ssize_t)size) {
                close(fd);
                return 0;
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        make_backing();
#ifdef FUZZ_KIND
        {
                enum fmt_kind k;
                if (fmt_detect(path, &k) < 0 || k != FUZZ_KIND) {
                        close(fd);
                        return 0;
                }
        }
#endif
        if (fmt_open(path, &img, err, sizeof err) >= 0) {
                uint64_t vsize = fmt_size(img);
                (void)fmt_read(img, buf, (size_t)MIN((uint64_t)sizeof buf, vsize), 0);
                /* Walk a bounded number of data extents, reading a piece of each. */
                for (int i = 0; i < 64 && off < vsize; i++) {
                        uint64_t s, e;
                        if (fmt_next_data(img, off, &s, &e) < 0 || e <= s || s < off)
                                break;
                        (void)fmt_read(img, buf, (size_t)MIN((uint64_t)sizeof buf, e - s), s);
                        off = e;
                }
                /* and the overlay's own extents (all of it without a backing file) */
                off = 0;
                for (int i = 0; i < 64 && off < vsize; i++) {
                        uint64_t s, e;
                        if (fmt_next_own(img, off, &s, &e) < 0 || e <= s || s < off)
                                break;
                        (void)fmt_read(img, buf, (size_t)MIN((uint64_t)sizeof buf, e - s), s);
                        off = e;
                }
                fmt_close(img);
        }
        close(fd);
        return 0;
}
