/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * store: the vault's objects. Blocks are named by their XXH3-128 checksum,
 * compressed with zstd, and appended to immutable packs; an index maps a
 * checksum to (pack, offset, length). Index segments are immutable sorted
 * files that are memory-mapped, never loaded into the heap. Everything sits
 * behind a backend (a local directory, or an Azure Blob container for
 * "azure://ACCOUNT/CONTAINER[/PREFIX]" URLs) that offers
 * atomic whole-object puts, ranged gets and listing. docs/FORMAT.md is the
 * byte-level description of every object written here.
 *
 * Thread rule: struct store is internally locked; any thread may read blobs
 * and objects concurrently. struct store_writer is one per thread except
 * store_writer_known(), which may be called from any thread.
 * struct store_codec is one per thread; struct store_codec_pool is
 * internally locked.
 *
 * Errors: -ENOENT missing object or block, -EBADMSG corrupt data or a
 * checksum mismatch, -EMEDIUMTYPE not a vault, -EPROTONOSUPPORT a vault of a
 * newer format version, -EEXIST an object that exists (exclusive put),
 * -EIO backend I/O failure (for Azure: unreachable or failing after
 * retries), -EACCES credentials refused, -EPROTO a misbehaving remote,
 * -ENOKEY unusable credentials in the environment (or, for an encrypted
 * vault, no key given), -EKEYREJECTED no key slot opens with the key
 * given, -EOPNOTSUPP a vault using a feature this build does not know,
 * -ENOMEM.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Version 2: manifest chunk lists stored as trees (docs/FORMAT.md "Manifest
 * trees"); version-1 vaults are read and raised to 2 by their first new point. */
#define STORE_FORMAT_VERSION 2
#define STORE_HASH_SIZE 16
#define STORE_MIN_BLOCK_SIZE 4096u
#define STORE_MAX_BLOCK_SIZE (4u << 20)
#define STORE_DEFAULT_BLOCK_SIZE (64u << 10)
#define STORE_DEFAULT_LEVEL 1

/* An XXH3-128 checksum in canonical (big-endian) byte order. */
struct hash128 {
        uint8_t b[STORE_HASH_SIZE];
};

/* Kinds of blob kept in packs. */
enum store_kind {
        STORE_KIND_DATA = 0,     /* a disk block */
        STORE_KIND_MANIFEST = 1, /* a manifest chunk */
        STORE_KIND_TREE = 2,     /* a manifest tree node (format version 2) */
};

struct store;
struct store_writer;
struct store_codec;
struct store_codec_pool;

/* ---- checksums ----
 * All hashing in rpfs goes through store_hash() and store_hash64(). They
 * run XXH3 (seed 0, the default secret; the values libxxhash's XXH3_128bits
 * and XXH3_64bits give) compiled inline once per instruction set, with the
 * fastest variant this CPU runs chosen once, on first use: on x86_64
 * "avx512" (AVX-512F), else "avx2", else "sse2"; elsewhere the compiler's
 * default (for instance "neon") or "scalar". The environment variable
 * RPFS_HASH_IMPL=avx512|avx2|sse2|scalar (read once, at that first use)
 * forces one, for tests and benchmarks; a name this build lacks or this CPU
 * cannot run is logged as a warning and ignored. Any thread may call them;
 * they never fail. */
/* The XXH3-128 of p[0..len) into *ret, in canonical byte order. */
void store_hash(const void *p, size_t len, struct hash128 *ret);
/* The XXH3-64 of p[0..len), for short names and table checksums (the
 * value is the one XXH3_64bits returns; it names files on disk). */
uint64_t store_hash64(const void *p, size_t len);
/* The name of the variant the two above run ("avx2", ...). Static string. */
const char *store_hash_impl(void);
bool hash_is_zero(const struct hash128 *h);
/* In a table of entries of stride bytes sorted by the checksum each starts
 * with, entries [lo, hi): the first whose checksum is not below h (hi when
 * none). The one binary search over sorted checksums (index segments,
 * seed sums, failback's target index). */
uint64_t store_hash_lower_bound(const void *base, size_t stride, uint64_t lo, uint64_t hi, const struct hash128 *h);
/* 32 hex chars + NUL. */
void hash_to_hex(const struct hash128 *h, char out[static 2 * STORE_HASH_SIZE + 1]);

/* ---- vault ---- */
/* How a vault is reached; passed to store_open_with()/store_init_with().
 * A NULL options pointer, or a zeroed struct with retry_seconds < 0, means
 * the defaults. */
struct store_options {
        /* Azure: the Blob endpoint URL; overrides RPFS_AZURE_ENDPOINT and
         * the connection string's. NULL: from the environment. */
        const char *endpoint;
        /* How long one call retries transient failures (network errors,
         * throttling, 5xx), in seconds. < 0: the default (60, or
         * RPFS_AZURE_RETRY_SECONDS). */
        double retry_seconds;
        /* No call outlasts retry_seconds, whatever the remote does (an
         * endpoint that accepts connections and never answers, a body that
         * stops half-way): each attempt is cut off at the end of the window.
         * For a mount, whose every request must answer within its timeout.
         * false: an attempt runs until it stalls for RPFS_AZURE_TIMEOUT
         * seconds (default 30) or its size-based time is up. */
        bool bounded;
        /* store_init_with(): make an encrypted vault (docs/FORMAT.md
         * "Encrypted vaults"), its first key slot from key_file or the
         * key sources (see store_open_with). */
        bool encrypt;
        /* A key file that opens (or, for init, makes) a key slot; NULL:
         * RPFS_KEY_FILE, else RPFS_PASSPHRASE, else a prompt on the
         * controlling terminal. Ignored for a plain vault. */
        const char *key_file;
};
#define STORE_OPTIONS_DEFAULT ((struct store_options){ .retry_seconds = -1 })

/* Set the calling thread's deadline for its calls to bounded stores
 * (store_options.bounded), in now_monotonic() seconds, 0 for none: each
 * such call ends by then (or by the end of its retry window, whichever
 * comes first) with -EIO, whatever the remote does. Returns the previous
 * deadline, for the caller to restore. Per thread; no locking. */
double store_thread_deadline(double deadline);
/* Mark the calling thread's calls as background work (a lease keeper's):
 * their outcome does not change whether a remote store counts as up or
 * down for everyone else's calls (a keeper's small request that succeeds
 * against a failing remote must not make the mount's reads wait out their
 * retries again). Returns the previous setting. Per thread. */
bool store_thread_background(bool on);

/* Create a new vault at url (a directory that does not exist or is empty).
 * block_size: power of two in [STORE_MIN_BLOCK_SIZE, STORE_MAX_BLOCK_SIZE];
 * level: zstd level 1..19, 0 for no compression.
 * -EEXIST when url holds a vault or other files, -EINVAL bad parameters. */
int store_init(const char *url, uint32_t block_size, int level);
int store_init_with(const char *url, const struct store_options *o, uint32_t block_size, int level);
/* Open an existing vault. -ENOENT when the location itself (directory,
 * container) does not exist, -EMEDIUMTYPE when it holds no vault. An
 * encrypted vault is unlocked here, with the key from o->key_file, the
 * file RPFS_KEY_FILE names, the passphrase RPFS_PASSPHRASE holds, or a
 * prompt on the terminal, in that order: -ENOKEY none gave a key,
 * -EKEYREJECTED no slot opens with it, -EBADMSG its config's settings
 * were changed. */
int store_open(const char *url, struct store **ret);
/* The same, reached as o says (NULL: defaults). */
int store_open_with(const char *url, const struct store_options *o, struct store **ret);
/* An explanation of error r from a vault at url that is specific to the
 * vault's kind (for Azure: "authentication failed (check ...)",
 * "container not found ..."), or NULL when strerror(-r) says it. Static
 * string; never contains a secret. */
const char *store_error_hint(const char *url, int r);
void store_free(struct store *s);
uint32_t store_block_size(const struct store *s);
/* The vault's format version (config.json "version") as opened. */
uint32_t store_format_version(const struct store *s);
/* Raise config.json's "version" to version (> the current one, at most
 * STORE_FORMAT_VERSION); every other field is kept. A plain put: two
 * writers raising it at once write the same thing. 0 or -errno. */
int store_raise_version(struct store *s, uint32_t version);
int store_level(const struct store *s);
const char *store_url(const struct store *s);
/* Whether reads wait on a network (then more in flight than cores pay). */
bool store_remote(const struct store *s);

/* ---- encryption ---- */
/* Whether the vault is encrypted. */
bool store_encrypted(const struct store *s);
/* The name under which blob plain (its XXH3-128) is stored in pack
 * tables and the index: plain itself in a plain vault; in an encrypted
 * one a keyed BLAKE2b-128 of it, so that names say nothing about content
 * without the key. Any thread; plain and name may be the same. */
void store_blob_name(const struct store *s, const struct hash128 *plain, struct hash128 *name);
/* A key slot of an encrypted vault (rpfs key list). */
struct store_key_slot {
        char id[17];      /* 16 hex */
        char type[16];    /* "passphrase" or "key-file" */
        char created[21]; /* ISO 8601 */
        uint64_t opslimit, memlimit; /* Argon2id's, 0 for a key file */
        bool unlocked;    /* the slot this store was opened with */
};
/* Every slot, sorted by ID, into a malloc'd *ret. -EOPNOTSUPP plain vault. */
int store_key_list(struct store *s, struct store_key_slot **ret, size_t *ret_n);
/* Add a slot for the key in key_file, or else the passphrase in
 * RPFS_NEW_PASSPHRASE, or else one asked twice on the terminal; its ID
 * into ret_id. Rewrites nothing else. -ENOKEY no new key given,
 * -EOPNOTSUPP plain vault. */
int store_key_add(struct store *s, const char *key_file, char ret_id[17]);
/* Remove slot id. -ENOENT no such slot, -EBUSY it is the last one. */
int store_key_remove(struct store *s, const char *id);

/* ---- objects (small named things: points, config) ---- */
/* Names are relative '/'-separated paths of [A-Za-z0-9._-] components. */
/* In an encrypted vault, objects are sealed (authenticated encryption
 * bound to their name): a damaged or swapped one reads as -EBADMSG. */
int store_put_object(struct store *s, const char *name, const void *data, size_t len, bool exclusive);
/* *ret is malloc'd, NUL-terminated (for convenience), owned by the caller. */
int store_get_object(struct store *s, const char *name, char **ret, size_t *ret_len);
/* Remove object name (small named things: holds, leases, policies).
 * 0, -ENOENT when absent, -EINVAL bad name, or a backend error. */
int store_delete_object(struct store *s, const char *name);
/* Calls cb for every object whose name starts with prefix (a folder
 * "points/" or "points/web01/"), in no particular order. A negative return
 * from cb stops the listing and is returned. */
typedef int (*store_list_cb)(void *userdata, const char *name, uint64_t size);
int store_list(struct store *s, const char *prefix, store_list_cb cb, void *userdata);

/* ---- blocks ---- */
/* 0 when the vault holds the blob (or h is the zero hash), -ENOENT not. */
int store_has(struct store *s, const struct hash128 *h);
/* Read, decompress and verify one blob into buf (cap bytes). *ret_len gets
 * its length. -ENOENT unknown, -EBADMSG corrupt/mismatch, -ENOBUFS small. */
int store_read_blob(struct store *s, struct store_codec *c, const struct hash128 *h,
                    void *buf, size_t cap, size_t *ret_len);
/* The encoded (stored) length of blob h, from the index; no I/O.
 * 0, -ENOENT unknown (or h is the zero hash). */
int store_blob_stored_size(struct store *s, const struct hash128 *h, uint32_t *ret);
/* Bytes read from the vault by store_read_blob() and store_fetch_blocks()
 * since store_open() (merged ranges count whole, gaps included), and how
 * many ranged reads that took. Any thread. */
void store_read_stats(struct store *s, uint64_t *ret_bytes, uint64_t *ret_requests);
/* Re-scan the index (picks up segments written by other processes). */
int store_refresh(struct store *s);
/* What the mapped index segments list (rpfs status): segments, entries
 * (a blob in two segments counts twice), their encoded and decoded bytes.
 * No I/O; any thread. */
struct store_index_totals {
        uint64_t segments, blobs, stored_bytes, decoded_bytes;
};
void store_index_totals(struct store *s, struct store_index_totals *ret);
/* The vault's own clock, to compare with this host's: the Date header of
 * a reply (Azure), the mtime of a temporary object created and removed at
 * once (directory). 0, -EOPNOTSUPP, or the backend's error. */
int store_clock(struct store *s, time_t *ret);
/* This host's clock minus the vault's (store_clock), in seconds, into
 * *ret: measured at the first call and again once the last measure is
 * STORE_SKEW_AGE seconds old (one request then). What a time judged
 * against the vault's clock (ages, lease expiries) is corrected with, so
 * that a host with a wrong clock does not misjudge it. 0, or
 * store_clock's error. Internally locked; any thread. */
#define STORE_SKEW_AGE 60
int store_skew(struct store *s, long *ret);
/* The vault's clock now: this host's corrected by store_skew(). 0 or
 * store_skew's error. Any thread. */
int store_now(struct store *s, time_t *ret);

/* ---- the vault's structure checked (verify.c) ----
 * For rpfs check: every index segment maps and its checksum holds, every
 * pack an index entry names exists with a valid header, footer and table
 * (checksum and entry bounds). Reads headers, footers and tables only (a
 * pack: three ranged reads), never the blobs. One thread. */
struct store_verify;
/* A damaged object (an "index/..." or "packs/..." name) and what is wrong
 * (a static string). */
typedef void (*store_damage_cb)(void *userdata, const char *object, const char *problem);
/* Check the vault's segments and packs, calling cb (may be NULL) for each
 * damaged one. 0 (damage or not), or a vault error (-ENOMEM, the
 * backend's). Free *ret with store_verify_free(). */
int store_verify_new(struct store *s, store_damage_cb cb, void *userdata, struct store_verify **ret);
/* What the damage found does to block h (a static string: its index entry
 * is in a damaged segment, its pack is missing or damaged, its entry lies
 * outside its pack), or NULL when nothing found touches it. A block
 * outside the index is NULL here (store_has() tells). */
const char *store_verify_block(const struct store_verify *v, const struct hash128 *h);
/* Segments listed, packs named by the index, damaged objects. */
void store_verify_counts(const struct store_verify *v, uint64_t *ret_segments, uint64_t *ret_packs,
                         uint64_t *ret_damaged);
void store_verify_free(struct store_verify *v);

/* ---- codec: per-thread compression contexts ---- */
int store_codec_new(const struct store *s, struct store_codec **ret);
void store_codec_free(struct store_codec *c);
/*
 * Encode one blob for a pack: an 8-byte header plus zstd frame (or the
 * bytes stored as they are when compression does not pay). out must hold
 * store_encode_bound(len) bytes. Returns the encoded length or -errno.
 */
size_t store_encode_bound(size_t len);
long store_encode(struct store_codec *c, enum store_kind kind, const void *src, size_t len,
                  void *out, size_t cap);

/* ---- codec pool: codecs lent to threads for a while ----
 * For workers that each need a codec during one job: a get takes an idle
 * codec or makes one when none is idle (it never waits, so there are as
 * many as jobs at work at once); a put keeps up to cap of them idle for
 * the next gets and frees the others. Internally locked: any thread. */
/* A pool for codecs of vault s (which must outlive it). cap >= 1: how many
 * idle codecs it keeps. -EINVAL cap 0, -ENOMEM. */
int store_codec_pool_new(const struct store *s, size_t cap, struct store_codec_pool **ret);
/* A codec for the caller's use until it is put back; NULL when out of
 * memory (the caller reports -ENOMEM). */
struct store_codec *store_codec_pool_get(struct store_codec_pool *p);
/* Give back a codec from store_codec_pool_get(). NULL accepted. */
void store_codec_pool_put(struct store_codec_pool *p, struct store_codec *c);
/* Frees the pool and its idle codecs; every codec must be back. NULL
 * accepted. */
void store_codec_pool_free(struct store_codec_pool *p);

/* ---- writing ---- */
/* A writer appends encoded blobs to packs and publishes index segments.
 * Nothing it writes is referenced by a point until the caller commits one. */
int store_writer_new(struct store *s, struct store_writer **ret);
/* true when the blob is already in the vault or was added by this writer.
 * Any thread. */
bool store_writer_known(struct store_writer *w, const struct hash128 *h);
/* Append an encoded blob (from store_encode). Duplicates of blobs added by
 * this writer are dropped (return 0); returns 1 when stored. */
int store_writer_add(struct store_writer *w, const struct hash128 *h, const void *enc, size_t len);
/* The same for a blob already stored under name h (store_blob_name() of
 * its plain hash), copied as it is: a garbage collector's rewrite. */
int store_writer_add_stored(struct store_writer *w, const struct hash128 *h, const void *enc, size_t len);
/* Make everything added so far durable and findable (seal the open pack,
 * write the index segment). Must succeed before a point referencing these
 * blobs is committed. */
int store_writer_flush(struct store_writer *w);
/* Bytes of encoded blobs stored, and how many blobs. */
void store_writer_stats(const struct store_writer *w, uint64_t *ret_bytes, uint64_t *ret_blobs);
/* Frees; blobs not flushed are abandoned (garbage for a later GC). */
void store_writer_free(struct store_writer *w);
/* Whether the writer's session (docs/FORMAT.md "Garbage collection") is
 * still valid for long enough to commit a point naming its blobs: call it
 * after store_writer_flush() and right before the commit. 0, -ESTALE the
 * session lapsed or a GC ended it (do not commit: the blobs deduplicated
 * may be gone), or a vault error. */
int store_writer_check(struct store_writer *w);

/* ---- garbage collection (gc.c, gc-sweep.c, gc-mark.c) ----
 * Deletes packs no point needs, rewrites packs mostly dead, merges the
 * index segments, without blocking writers: docs/FORMAT.md "Garbage
 * collection" (condemn, wait for writer sessions, re-mark, delete).
 * The caller says what is live through a mark function. */
/* The live set (of store_blob_name()s): names added in any order and any number of times, kept
 * sorted and de-duplicated on disk (16 bytes per distinct name, plus a
 * 16 MiB buffer). One per thread. */
struct store_gc_mark;
int store_gc_mark_new(const struct store *s, struct store_gc_mark **ret);
/* Add the blob of checksum plain (the zero hash is ignored). */
int store_gc_mark_add(struct store_gc_mark *m, const struct hash128 *plain);
/* No more adds: sort and merge. */
int store_gc_mark_finish(struct store_gc_mark *m);
/* After finish: distinct names, and whether a (stored) name is in. */
uint64_t store_gc_mark_count(const struct store_gc_mark *m);
bool store_gc_mark_contains(const struct store_gc_mark *m, const struct hash128 *name);
void store_gc_mark_free(struct store_gc_mark *m);
/* Adds every live blob of the vault to m (retention's walk). */
typedef int (*store_gc_mark_fn)(void *userdata, struct store_gc_mark *m);

struct store_gc_options {
        double max_unused; /* a pack whose dead share exceeds this (0..1) is rewritten */
        bool dry_run;      /* plan and report, change nothing */
};
struct store_gc_report {
        uint64_t packs, pack_bytes;         /* before */
        uint64_t segments, segment_bytes;   /* before */
        uint64_t live_blobs, live_bytes, dead_blobs, dead_bytes;
        uint64_t packs_deleted, packs_rewritten, bytes_copied; /* (would be) */
        uint64_t segments_after;
        uint64_t freed_bytes;  /* removed minus written, or what would be */
        uint64_t refused;      /* deletes the store refused (immutability, legal hold): retried next time */
        bool deferred;         /* deletions wait for writer sessions: the next run finishes */
        bool busy;             /* another GC holds the vault's GC lock: nothing done */
};
/* Collect garbage: finish a pending collection whose writer sessions
 * have all ended, then (when none is left pending) plan a new one,
 * rewrite, write merged segments, condemn, and finish it at once when no
 * writer session is open. mark is called once or twice (each time a
 * fresh live set). Crash-safe at every step (a later run finishes).
 * 0 (see *ret for what happened), or -errno. */
int store_gc(struct store *s, const struct store_gc_options *o, store_gc_mark_fn mark, void *userdata,
             struct store_gc_report *ret);

/* ---- block cache ---- */
/*
 * A local, persistent, size-bounded cache of decoded blocks keyed by
 * checksum, shared by every point of every vault with this block size.
 * Two files in DIR: blocks-<bs>.data (fixed slots of block_size) and
 * blocks-<bs>.idx (a memory-mapped open-addressing table, checksum ->
 * slot). Eviction is CLOCK. Entries are verified against their checksum on
 * every hit, so a torn entry after a crash is a miss, never wrong data.
 * One process at a time holds a cache (flock); internally locked: any
 * thread may get and put concurrently; no lock is held across I/O.
 */
struct store_cache;
/* -EBUSY another process holds DIR; -EINVAL max_bytes < 16 blocks. */
int store_cache_open(const char *dir, uint32_t block_size, uint64_t max_bytes, struct store_cache **ret);
void store_cache_close(struct store_cache *c);
/* 0 and block_size bytes in buf on a verified hit, -ENOENT on a miss. */
int store_cache_get(struct store_cache *c, const struct hash128 *h, void *buf);
/* true when h is (probably) cached; no I/O. */
bool store_cache_contains(struct store_cache *c, const struct hash128 *h);
/* Insert a verified block (best effort: errors are not fatal to callers). */
int store_cache_put(struct store_cache *c, const struct hash128 *h, const void *buf);

/* ---- batched block fetches for readers ---- */
struct store_fetch {
        struct hash128 h;   /* in */
        void *buf;          /* in: block_size bytes */
        int result;         /* out: 0, -ENOENT, -EBADMSG, -EIO ... */
        uint64_t pack_id;   /* out: where it came from (for messages) */
        uint32_t stored;    /* out: bytes read from the vault */
};
/* Fetch, decode and verify n blocks, merging blobs that sit next to each
 * other in one pack into one ranged read. Returns 0 when every entry
 * was attempted (check each result), or -errno for a failure that stopped
 * the batch. */
int store_fetch_blocks(struct store *s, struct store_codec *c, struct store_fetch *v, size_t n);
/* The same; an entry whose buf is NULL is decoded into a buffer of the
 * codec's and handed to sink (when it verified), valid during the call. */
typedef void (*store_fetch_sink)(void *userdata, struct store_fetch *f, const void *data);
int store_fetch_blocks_sink(struct store *s, struct store_codec *c, struct store_fetch *v, size_t n,
                            store_fetch_sink sink, void *userdata);
/* "packs/ab/ab01...pack" for messages. */
void store_pack_name(uint64_t pack_id, char *buf, size_t len);
