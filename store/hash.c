/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * XXH3, compiled inline from the system's xxhash.h once per instruction set,
 * and the one place that picks which of those copies runs.
 *
 * Why: the shared libxxhash is built for the baseline CPU, so on x86_64 it
 * runs XXH3 with SSE2 only, about a third of what AVX2 does on 64 KiB
 * blocks, and hashing every block is what replicate, failback and every
 * verified read spend their CPU on.
 *
 * How: store/meson.build compiles this file several times. Each build with
 * STORE_HASH_VARIANT_<NAME> defined is one variant: it fixes XXH_VECTOR, is
 * compiled with the matching -m flag, includes xxhash.h with XXH_INLINE_ALL
 * (every xxhash function becomes static to that object, so the copies do not
 * clash) and exports one struct store_hash_variant. The build without it is
 * the dispatcher: it asks the CPU once, on first use, which variants it
 * runs (libgcc's __builtin_cpu_supports, which also checks that the OS
 * saves the wider registers) and sends store_hash()/store_hash64() to the
 * fastest, or to the one RPFS_HASH_IMPL names. Off x86_64 there are two
 * variants: the compiler's default (NEON on aarch64) and scalar.
 *
 * All variants compute the same XXH3 (seed 0, default secret);
 * tests/unit/test-hash.c pins each to libxxhash.
 */
#include <string.h>

#include "store_i.h"

/* One per build of this file with STORE_HASH_VARIANT_<NAME>; which exist
 * depends on the host (store/meson.build). */
extern const struct store_hash_variant store_hash_scalar, store_hash_sse2, store_hash_avx2,
        store_hash_avx512, store_hash_native;

#if defined(STORE_HASH_VARIANT_SCALAR)
#  define XXH_VECTOR XXH_SCALAR
#  define VARIANT store_hash_scalar
#elif defined(STORE_HASH_VARIANT_SSE2)
#  define XXH_VECTOR XXH_SSE2
#  define VARIANT store_hash_sse2
#elif defined(STORE_HASH_VARIANT_AVX2)
#  ifndef __AVX2__
#    error "the avx2 variant needs -mavx2"
#  endif
#  define XXH_VECTOR XXH_AVX2
#  define VARIANT store_hash_avx2
#elif defined(STORE_HASH_VARIANT_AVX512)
#  ifndef __AVX512F__
#    error "the avx512 variant needs -mavx512f"
#  endif
#  define XXH_VECTOR XXH_AVX512
#  define VARIANT store_hash_avx512
#elif defined(STORE_HASH_VARIANT_NATIVE)
#  define VARIANT store_hash_native /* XXH_VECTOR as xxhash.h detects it */
#endif

#ifdef VARIANT
/* ---- one variant ---- */
#define XXH_INLINE_ALL
#include <xxhash.h>

#if XXH_VECTOR == XXH_AVX512
#  define VARIANT_NAME "avx512"
#elif XXH_VECTOR == XXH_AVX2
#  define VARIANT_NAME "avx2"
#elif XXH_VECTOR == XXH_SSE2
#  define VARIANT_NAME "sse2"
#elif XXH_VECTOR == XXH_NEON
#  define VARIANT_NAME "neon"
#elif XXH_VECTOR == XXH_VSX
#  define VARIANT_NAME "vsx"
#else
#  define VARIANT_NAME "scalar"
#endif

static void variant_hash128(const void *p, size_t len, struct hash128 *ret) {
        XXH128_canonical_t c;

        XXH128_canonicalFromHash(&c, XXH3_128bits(p, len));
        _Static_assert(sizeof c.digest == STORE_HASH_SIZE, "XXH3-128 digest size");
        memcpy(ret->b, c.digest, STORE_HASH_SIZE);
}

static uint64_t variant_hash64(const void *p, size_t len) {
        return XXH3_64bits(p, len);
}

const struct store_hash_variant VARIANT = {
        .name = VARIANT_NAME,
        .hash128 = variant_hash128,
        .hash64 = variant_hash64,
};

#else
/* ---- the dispatcher ---- */
#include <pthread.h>
#include <stdlib.h>

#include "common.h"

#ifdef STORE_HASH_X86
static bool cpu_avx512(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f");
}

static bool cpu_avx2(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2");
}
#endif

static bool cpu_any(void) { return true; }

/* Fastest first. */
static const struct {
        const struct store_hash_variant *impl;
        bool (*runs)(void);
} variants[] = {
#ifdef STORE_HASH_X86
        { &store_hash_avx512, cpu_avx512 },
        { &store_hash_avx2, cpu_avx2 },
        { &store_hash_sse2, cpu_any },
#else
        { &store_hash_native, cpu_any },
#endif
        { &store_hash_scalar, cpu_any },
};

size_t store_hash_variants(const struct store_hash_variant **ret, size_t n) {
        size_t k = 0;

        for (size_t i = 0; i < ELEMENTSOF(variants); i++)
                if (variants[i].runs()) {
                        if (k < n)
                                ret[k] = variants[i].impl;
                        k++;
                }
        return k;
}

/* Written once under impl_once, read only after pthread_once() returns. */
static const struct store_hash_variant *impl;
static pthread_once_t impl_once = PTHREAD_ONCE_INIT;

static void impl_choose(void) {
        const struct store_hash_variant *v[ELEMENTSOF(variants)];
        size_t n = store_hash_variants(v, ELEMENTSOF(v));
        const char *want = getenv("RPFS_HASH_IMPL");

        impl = v[0];
        if (!want || !*want)
                return;
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i]->name, want) == 0) {
                        impl = v[i];
                        return;
                }
        log_warn("RPFS_HASH_IMPL=%s: not a variant that this build has and this CPU runs; using %s", want,
                 impl->name);
}

static const struct store_hash_variant *hash_impl(void) {
        pthread_once(&impl_once, impl_choose);
        return impl;
}

void store_hash(const void *p, size_t len, struct hash128 *ret) {
        hash_impl()->hash128(p, len, ret);
}

uint64_t store_hash64(const void *p, size_t len) {
        return hash_impl()->hash64(p, len);
}

const char *store_hash_impl(void) {
        return hash_impl()->name;
}
#endif
