/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <pthread.h>
#include <stdatomic.h>

#include "backend_i.h"
#include "format_i.h"
#include "store.h"

/* A memory-mapped index segment. */
struct segment {
        char *name;
        uint8_t *map;
        size_t map_len;
        uint64_t count;
        const uint8_t *fanout;  /* 256 x u32: entries whose first byte <= i */
        const uint8_t *entries; /* count x IDX_ENTRY_SIZE, sorted by hash */
        bool retired;           /* merged by a pending GC (gc-state.c) */
};

/* Range buffers of batched fetches (fetch.c) per store. */
#define FETCH_BUFS 6

struct store {
        struct backend *b;
        char *url;
        uint32_t block_size;
        uint32_t version;      /* config.json "version" */
        int level;
        pthread_rwlock_t idx_lock; /* protects segs, n_segs */
        struct segment *segs;
        size_t n_segs;
        atomic_uint_fast64_t read_bytes;    /* blob bytes read from the backend */
        atomic_uint_fast64_t read_requests; /* ranged reads issued for blobs */
        /* Range buffers of batched fetches (store.c): at most FETCH_BUFS of
         * buf_size bytes, made on first use and reused, never freed before
         * store_free(). buf_lock protects bufs, n_free, n_made. */
        pthread_mutex_t buf_lock;
        pthread_cond_t buf_cond;
        uint8_t *bufs[8];
        size_t n_free, n_made, buf_size;
        /* The vault clock's skew (store_skew). clock_lock protects skew,
         * skew_at (CLOCK_MONOTONIC seconds, 0: never measured). */
        pthread_mutex_t clock_lock;
        long skew;
        int64_t skew_at;
        /* What a pending GC retired and condemned (gc-state.c): writers
         * do not deduplicate against them. Under idx_lock. */
        char **gc_retired;
        size_t n_gc_retired;
        uint64_t *gc_condemned; /* sorted */
        size_t n_gc_condemned;
        /* Index reloads after a missing pack (store_reload_index). */
        pthread_mutex_t reload_lock;
        atomic_uint_fast64_t reload_gen;
        /* Encrypted vaults (crypt_i.h): the unlocked keys, or NULL. */
        struct store_crypt *crypt;
        char id[33]; /* the vault's ID, from config.json */
};

/* A codec (store_codec_new): compression and decompression contexts and
 * the buffers of one thread's encodes and decodes. */
struct store_codec {
        struct ZSTD_CCtx_s *cctx; /* zstd.h's ZSTD_CCtx */
        struct ZSTD_DCtx_s *dctx;
        int level;
        uint8_t *scratch;
        size_t scratch_cap;
        uint8_t *block;        /* one decoded block, for store_fetch_blocks_sink() */
        uint32_t block_size;
        const struct store_crypt *crypt; /* the vault's keys, NULL: plain */
        uint8_t *plain;        /* an opened sealed payload, before zstd */
        size_t plain_cap;
};

/* Make c's scratch buffer at least len bytes (its contents not kept). */
int store_codec_scratch(struct store_codec *c, size_t len);
/* Count one ranged read of len blob bytes (store_read_stats). */
void store_count_read(struct store *s, uint64_t len);
/* Whether an index entry's lengths can be a blob's. */
bool store_blob_loc_sane(const struct blob_loc *l);

/* One copy of XXH3 built for one instruction set (store/hash.c). */
struct store_hash_variant {
        const char *name; /* "avx512", "avx2", "sse2", "neon", "vsx", "scalar" */
        void (*hash128)(const void *p, size_t len, struct hash128 *ret);
        uint64_t (*hash64)(const void *p, size_t len);
};
/* The variants this build has and this CPU runs, fastest first (the last is
 * "scalar"). Stores up to n of them in ret and returns how many there are.
 * The variants are static; any thread may call this. */
size_t store_hash_variants(const struct store_hash_variant **ret, size_t n);

/* ---- the index (index.c) ---- */
/* Look stored name h (store_blob_name() of a plain hash) up in the
 * mapped segments. 0 found, -ENOENT. */
int store_lookup(struct store *s, const struct hash128 *h, struct blob_loc *ret);
/* h's entry in one mapped segment, or NULL. */
const uint8_t *store_segment_find(const struct segment *seg, const struct hash128 *h);
/* The same, for a writer's deduplication: only segments no pending GC
 * retired, and only blobs in packs it did not condemn. */
int store_lookup_live(struct store *s, const struct hash128 *h, struct blob_loc *ret);
/* Bring the mapped segments in line with the vault: unmap those gone,
 * map new ones, load the GC state. gen is s->reload_gen as the caller
 * saw it before its failed read: when another thread reloaded since,
 * nothing is done. 0 or -errno. */
int store_reload_index(struct store *s, uint64_t gen);
/* Map segment `name` and add it to the store (no-op if present). */
int store_add_segment(struct store *s, const char *name);
/* Unmap every segment (store_free). */
void store_index_free(struct store *s);

/* Decode one encoded blob (header + payload) into out and verify it
 * against h. */
int store_decode(struct store_codec *c, const struct hash128 *h, const uint8_t *enc, size_t len,
                 void *out, size_t cap, size_t *ret_len);
