/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a unit test program needs around its checks: CHECK(x) reports a
 * failed check with its place and counts it; unit_tmpdir() makes the
 * test's temporary directory and unit_exit() removes it and turns the
 * count into the exit status (0 pass, 1 fail). One test program per file
 * includes this once.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int unit_failures;
static char unit_dir[64];

#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x)) {                                                                        \
                        fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x);      \
                        unit_failures++;                                                           \
                }                                                                                  \
        } while (0)

/* A fresh directory /tmp/rpfs-test-NAME-XXXXXX; exits 1 when none can be
 * made. */
static inline const char *unit_tmpdir(const char *name) {
        snprintf(unit_dir, sizeof unit_dir, "/tmp/rpfs-test-%s-XXXXXX", name);
        if (!mkdtemp(unit_dir)) {
                perror("mkdtemp");
                exit(1);
        }
        return unit_dir;
}

/* n pseudo-random bytes at p, the same for the same seed (xorshift64). */
static inline void unit_fill(void *p, size_t n, unsigned seed) {
        uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
        for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((uint8_t *)p)[i] = (uint8_t)x;
        }
}

/* Remove the temporary directory (if any) and give main's return value. */
static inline int unit_exit(void) {
        if (*unit_dir) {
                char cmd[96];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", unit_dir);
                CHECK(system(cmd) == 0);
        }
        if (unit_failures)
                fprintf(stderr, "%d check(s) failed\n", unit_failures);
        return unit_failures ? 1 : 0;
}
