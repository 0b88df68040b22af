/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/floors: what reading and checksumming a warm file costs on this
 * host, on one thread, three ways, so that a benchmark's figures can be
 * read against the machine they came from (issue 15: mmap was 6-10x
 * slower than pread on a host whose page faults are expensive):
 *
 *   read          read() into one 128 KiB buffer, nothing else (cat)
 *   pread+xxh3    pread() of 256 KiB pieces into one reused buffer, then
 *                 store_hash() of each block (what the failback scan does)
 *   mmap+xxh3     4 MiB windows mapped, store_hash() of each block, unmapped
 *
 * Each figure is the median of BENCH_RUNS passes (default 3) over the whole
 * file, in GB/s (10^9 bytes per second of wall time). The file is read
 * once before, so it is in the page cache.
 *
 * Usage: bench-floors FILE [BLOCK_BYTES]   (default 65536)
 * Prints one line: "floors: read A GB/s, pread+xxh3 B GB/s, mmap+xxh3 C GB/s
 * (one thread, XXH3 impl)".
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "store.h"

#define MAX_RUNS 15
#define PIECE (256u << 10)
#define WINDOW (4u << 20)

static double pass_read(int fd, uint64_t size, size_t bs, uint8_t *buf) {
        double t0 = now_monotonic();
        ssize_t n;

        (void)size;
        (void)bs;
        lseek(fd, 0, SEEK_SET);
        while ((n = read(fd, buf, 128u << 10)) > 0)
                ;
        return now_monotonic() - t0;
}

static double pass_pread(int fd, uint64_t size, size_t bs, uint8_t *buf) {
        double t0 = now_monotonic();
        struct hash128 h;

        for (uint64_t off = 0; off < size; off += PIECE) {
                size_t len = (size_t)MIN((uint64_t)PIECE, size - off);
                if (pread_full(fd, buf, len, off) < 0)
                        return -1;
                for (size_t k = 0; k < len; k += bs)
                        store_hash(buf + k, MIN(bs, len - k), &h);
        }
        return now_monotonic() - t0;
}

static double pass_mmap(int fd, uint64_t size, size_t bs, uint8_t *buf) {
        double t0 = now_monotonic();
        struct hash128 h;

        (void)buf;
        for (uint64_t off = 0; off < size; off += WINDOW) {
                size_t len = (size_t)MIN((uint64_t)WINDOW, size - off);
                uint8_t *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);
                if (m == MAP_FAILED)
                        return -1;
                (void)madvise(m, len, MADV_SEQUENTIAL);
                for (size_t k = 0; k < len; k += bs)
                        store_hash(m + k, MIN(bs, len - k), &h);
                munmap(m, len);
        }
        return now_monotonic() - t0;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
        double (*pass[3])(int, uint64_t, size_t, uint8_t *) = { pass_read, pass_pread, pass_mmap };
        double t[3][MAX_RUNS], gbs[3];
        const char *e = getenv("BENCH_RUNS");
        int runs = e ? atoi(e) : 3, fd;
        size_t bs = argc > 2 ? strtoul(argv[2], NULL, 0) : 65536;
        uint8_t *buf;
        struct stat st;

        if (argc < 2 || bs == 0) {
                fprintf(stderr, "usage: bench-floors FILE [BLOCK_BYTES]\n");
                return 2;
        }
        runs = MAX(1, MIN(runs, MAX_RUNS));
        fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
                perror(argv[1]);
                return 1;
        }
        buf = alloc_large(MAX(PIECE, 128u << 10)); /* page-aligned, as rpfs reads */
        if (!buf)
                return 1;
        pass_read(fd, (uint64_t)st.st_size, bs, buf); /* warm */
        for (int r = 0; r < runs; r++)
                for (int k = 0; k < 3; k++) /* interleaved, run by run */
                        t[k][r] = pass[k](fd, (uint64_t)st.st_size, bs, buf);
        for (int k = 0; k < 3; k++) {
                qsort(t[k], (size_t)runs, sizeof t[k][0], cmp_double);
                gbs[k] = t[k][runs / 2] > 0 ? (double)st.st_size / t[k][runs / 2] / 1e9 : 0;
        }
        printf("floors: read %.2f GB/s, pread+xxh3 %.2f GB/s, mmap+xxh3 %.2f GB/s "
               "(one thread, warm %.0f MiB file, %zu-byte blocks, XXH3 %s; median of %d)\n",
               gbs[0], gbs[1], gbs[2], (double)st.st_size / 1048576, bs, store_hash_impl(), runs);
        free(buf);
        close(fd);
        return 0;
}
