/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/hash: XXH3-128 throughput of every variant store_hash() can run on
 * this CPU, beside the shared libxxhash (what rpfs linked before), on one
 * thread. Two cases per variant: one block hashed over and over (in L1/L2:
 * the hash alone) and a 256 MiB buffer walked block by block (from memory,
 * already touched, as a replicate sees data). Each figure is the median of
 * BENCH_RUNS runs (default 5) of ~0.25 s, the variants interleaved run by
 * run; GB/s are 10^9 bytes per second of this thread's CPU time (on a
 * shared machine wall time mostly measures the neighbours).
 *
 * Usage: bench-hash [BLOCK_BYTES]   (default 65536)
 * Exit status: 0, or 1 when a variant's value differs from libxxhash's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "common.h"
#include "store_i.h"

#define WALK_SIZE (256u << 20)
#define RUN_SECONDS 0.25
#define MAX_RUNS 99

struct row {
        const char *name;
        void (*hash128)(const void *p, size_t len, struct hash128 *ret);
        double hot[MAX_RUNS], walk[MAX_RUNS];
};

static void lib_hash128(const void *p, size_t len, struct hash128 *ret) {
        XXH128_canonical_t c;

        XXH128_canonicalFromHash(&c, XXH3_128bits(p, len));
        memcpy(ret->b, c.digest, STORE_HASH_SIZE);
}

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* GB/s of hashing p[0..size) in bs-byte blocks, round after round, for
 * about RUN_SECONDS of CPU time. */
static double measure(const struct row *r, const uint8_t *p, size_t size, size_t bs) {
        static volatile uint8_t sink;
        double t0 = now(), t;
        uint64_t bytes = 0;
        struct hash128 h;

        do {
                /* at least 64 MiB between clock reads (a system call) */
                uint64_t done = 0;

                while (done < (64u << 20))
                        for (size_t off = 0; off + bs <= size; off += bs, done += bs) {
                                r->hash128(p + off, bs, &h);
                                sink ^= h.b[0];
                        }
                bytes += done;
                t = now() - t0;
        } while (t < RUN_SECONDS);
        return (double)bytes / t / 1e9;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

static double median(double *v, int n) {
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
        const struct store_hash_variant *v[16];
        size_t nv = store_hash_variants(v, ELEMENTSOF(v)), bs = argc > 1 ? strtoul(argv[1], NULL, 0) : 65536;
        const char *env = getenv("BENCH_RUNS");
        int runs = env ? atoi(env) : 5, bad = 0;
        struct row rows[1 + ELEMENTSOF(v)] = { { .name = "libxxhash", .hash128 = lib_hash128 } };
        size_t nr = 1;
        uint8_t *buf;

        if (nv > ELEMENTSOF(v) || runs < 1 || runs > MAX_RUNS || bs < 1 || bs > WALK_SIZE) {
                fprintf(stderr, "usage: bench-hash [BLOCK_BYTES <= %u], BENCH_RUNS 1..%d\n", WALK_SIZE, MAX_RUNS);
                return 1;
        }
        buf = malloc(WALK_SIZE);
        if (!buf)
                return 1;
        for (size_t i = 0; i < WALK_SIZE; i++)
                buf[i] = (uint8_t)(i * 2654435761u >> 13);

        for (size_t i = 0; i < nv; i++) {
                struct hash128 a, b;

                rows[nr++] = (struct row){ .name = v[i]->name, .hash128 = v[i]->hash128 };
                v[i]->hash128(buf + 1, bs, &a);
                lib_hash128(buf + 1, bs, &b);
                if (memcmp(&a, &b, sizeof a) != 0) {
                        fprintf(stderr, "%s: differs from libxxhash\n", v[i]->name);
                        bad = 1;
                }
        }
        for (int k = 0; k < runs; k++)
                for (size_t i = 0; i < nr; i++) {
                        rows[i].hot[k] = measure(&rows[i], buf, bs, bs);
                        rows[i].walk[k] = measure(&rows[i], buf, WALK_SIZE, bs);
                }

        printf("XXH3-128, %zu-byte blocks, one thread, GB/s of CPU time, median of %d runs; store_hash() runs %s\n", bs,
               runs, store_hash_impl());
        printf("%-10s %10s %8s %12s %8s\n", "variant", "one block", "ratio", "256 MiB walk", "ratio");
        double hot0 = median(rows[0].hot, runs), walk0 = median(rows[0].walk, runs);
        for (size_t i = 0; i < nr; i++) {
                double hot = median(rows[i].hot, runs), walk = median(rows[i].walk, runs);
                printf("%-10s %10.1f %7.2fx %12.1f %7.2fx\n", rows[i].name, hot, hot / hot0, walk, walk / walk0);
        }
        printf("ratio: against libxxhash %d.%d.%d (shared)\n", XXH_versionNumber() / 10000,
               XXH_versionNumber() / 100 % 100, XXH_versionNumber() % 100);
        free(buf);
        return bad;
}
