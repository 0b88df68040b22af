/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hashing: every XXH3 variant this CPU runs gives the values of the shared
 * libxxhash (XXH3_128bits, XXH3_64bits) for every length 0..4096, a spread
 * of lengths up to 256 KiB, unaligned inputs and inputs that end where
 * their allocation ends; RPFS_HASH_IMPL picks the variant store_hash()
 * runs, and an unknown or unrunnable name falls back to the fastest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "common.h"
#include "store_i.h"

#define MAX_LEN (256u << 10)
#define MAX_OFF 63u
#define BUF_SIZE (MAX_LEN + MAX_OFF + 1)

static int failures;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x); failures++; } } while (0)

static uint8_t *buf; /* BUF_SIZE bytes of pseudo-random data */

static void fill(uint8_t *p, size_t len) {
        uint64_t x = 0x9e3779b97f4a7c15u;

        for (size_t i = 0; i < len; i++) {
                /* splitmix64, one byte per step */
                uint64_t z = (x += 0x9e3779b97f4a7c15u);
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
                p[i] = (uint8_t)(z ^ (z >> 31));
        }
}

static void ref128(const void *p, size_t len, struct hash128 *ret) {
        XXH128_canonical_t c;

        XXH128_canonicalFromHash(&c, XXH3_128bits(p, len));
        memcpy(ret->b, c.digest, STORE_HASH_SIZE);
}

/* Compare variant v with libxxhash on p[0..len); report the first few
 * differences of each variant. */
static void check(const struct store_hash_variant *v, const uint8_t *p, size_t len) {
        static unsigned reported;
        struct hash128 got, want;
        uint64_t got64, want64;

        v->hash128(p, len, &got);
        ref128(p, len, &want);
        got64 = v->hash64(p, len);
        want64 = XXH3_64bits(p, len);
        if (memcmp(&got, &want, sizeof got) == 0 && got64 == want64)
                return;
        failures++;
        if (reported++ < 20)
                fprintf(stderr, "%s: length %zu at offset %zu: %s differs from libxxhash\n", v->name, len,
                        (size_t)(p - buf), memcmp(&got, &want, sizeof got) ? "XXH3-128" : "XXH3-64");
}

static void check_variant(const struct store_hash_variant *v) {
        int before = failures;
        unsigned n = 0;

        /* every short length, at a 64-byte aligned start and ending where
         * the allocation ends (a read past the end is a sanitizer error) */
        for (size_t len = 0; len <= 4096; len++, n += 2) {
                check(v, buf, len);
                check(v, buf + BUF_SIZE - len, len);
        }
        /* a spread up to 256 KiB, and each side of every 1 KiB step (XXH3's
         * block is 1 KiB with the default secret) */
        for (size_t len = 4097; len <= MAX_LEN; len += 1 + len / 29, n++)
                check(v, buf, len);
        for (size_t k = 5; k <= MAX_LEN / 1024; k++, n += 3)
                for (size_t len = 1024 * k - 1; len <= 1024 * k + 1 && len <= MAX_LEN; len++)
                        check(v, buf, len);
        /* unaligned: every offset 1..63 with each short-input path and a few
         * long ones */
        for (size_t off = 1; off <= MAX_OFF; off++) {
                static const size_t longs[] = { 1023, 1024, 1025, 4095, 4096, 65535, 65536, MAX_LEN };

                for (size_t len = 0; len <= 300; len++, n++)
                        check(v, buf + off, len);
                for (size_t i = 0; i < ELEMENTSOF(longs); i++, n++)
                        check(v, buf + off, longs[i]);
        }
        printf("%s: %u inputs %s\n", v->name, n, failures == before ? "match libxxhash" : "DIFFER");
}

/* In a child (the variant is chosen once per process): with RPFS_HASH_IMPL
 * set to name (NULL: unset), store_hash() runs variant `want` and gives
 * libxxhash's values. Must run before this process hashes through
 * store_hash(), so that the child chooses afresh. */
static void check_forced(const char *name, const char *want) {
        int status;
        pid_t pid = fork();

        if (pid < 0) {
                perror("fork");
                failures++;
                return;
        }
        if (pid == 0) {
                struct hash128 got, ref;
                bool ok;

                if (name)
                        setenv("RPFS_HASH_IMPL", name, 1);
                else
                        unsetenv("RPFS_HASH_IMPL");
                ok = strcmp(store_hash_impl(), want) == 0;
                if (!ok)
                        fprintf(stderr, "RPFS_HASH_IMPL=%s: runs %s, expected %s\n", name ? name : "(unset)",
                                store_hash_impl(), want);
                for (size_t len = 0; len <= 70000; len += 997) {
                        store_hash(buf + 1, len, &got);
                        ref128(buf + 1, len, &ref);
                        ok = ok && memcmp(&got, &ref, sizeof got) == 0 &&
                             store_hash64(buf + 1, len) == XXH3_64bits(buf + 1, len);
                }
                _exit(ok ? 0 : 1);
        }
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
        static const char *const names[] = { "avx512", "avx2", "sse2", "scalar" };
        const struct store_hash_variant *v[16];
        size_t n = store_hash_variants(v, ELEMENTSOF(v));

        CHECK(n >= 1 && n <= ELEMENTSOF(v));
        if (n < 1 || n > ELEMENTSOF(v))
                return 1;
        CHECK(strcmp(v[n - 1]->name, "scalar") == 0);
        buf = aligned_alloc(64, BUF_SIZE);
        if (!buf)
                return 1;
        fill(buf, BUF_SIZE);

        /* the choice, before anything here hashes through store_hash() */
        check_forced(NULL, v[0]->name);
        check_forced("", v[0]->name);
        check_forced("no-such-variant", v[0]->name);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                const char *want = v[0]->name;

                for (size_t k = 0; k < n; k++)
                        if (strcmp(v[k]->name, names[i]) == 0)
                                want = names[i];
                if (want != names[i])
                        printf("%s: not run (not built, or this CPU lacks it)\n", names[i]);
                check_forced(names[i], want);
        }

        for (size_t i = 0; i < n; i++)
                check_variant(v[i]);

        /* the dispatched entry points, in this process */
        CHECK(strcmp(store_hash_impl(), v[0]->name) == 0 || getenv("RPFS_HASH_IMPL"));
        for (size_t len = 0; len <= MAX_LEN; len = 2 * len + 1) {
                struct hash128 got, want;

                store_hash(buf, len, &got);
                ref128(buf, len, &want);
                CHECK(memcmp(&got, &want, sizeof got) == 0);
                CHECK(store_hash64(buf, len) == XXH3_64bits(buf, len));
        }

        free(buf);
        return failures ? 1 : 0;
}
