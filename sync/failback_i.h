/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Failback internals, shared by failback.c (plans, retries, results),
 * failback-plan.c (plans), failback-pass.c, failback-scan.c and
 * failback-apply.c (the scan and write pipelines), journal.c (journals,
 * fingerprints) and target.c (opening and checking targets).
 * Not to be included outside sync/.
 */
#pragma once

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common.h"
#include "sync.h"

#define FB_SAMPLES 64                 /* blocks checksummed into a fingerprint */
#define FB_CHECKPOINT_BYTES (256u << 20) /* written bytes between checkpoints */
#define FB_CHECKPOINT_SECONDS 2.0     /* ... or this much time */
#define FB_INDEX_MAX (2u << 20)       /* entries of the target block index (48 MiB) */
#define FB_CODECS 64                  /* idle codecs kept by a run */

/* A target's identity and a sample of its content, taken after a sync, to
 * tell later whether anything wrote to it (see journal.c). */
struct fb_fingerprint {
        bool valid, blockdev;
        uint64_t dev, ino, rdev, size;
        int64_t mtime_ns, ctime_ns;
        char boot_id[40];
        bool have_sectors;
        uint64_t sectors_written;
        size_t n;
        uint64_t blk[FB_SAMPLES];
        struct hash128 h[FB_SAMPLES];
};

enum fb_jstate { FB_J_NONE = 0, FB_J_SYNCING, FB_J_CONSISTENT, FB_J_COMMITTED };

/* The journal of one target: STATE_DIR/<xxh64 of the target's path>.json,
 * replaced atomically; STATE_DIR/<same>.lock is flock'ed by the process at
 * work on the target. */
struct fb_journal {
        char path[PATH_MAX], lock_path[PATH_MAX];
        int lock_fd;
        /* recorded */
        char target[PATH_MAX];
        char vault[1024], vm[65], disk[65];
        enum fb_jstate state;
        char op[16];            /* "sync", "prepare", "complete", "commit" */
        char method[8];         /* "delta", "full", "diff" */
        char pass[8];           /* "scan", "write", "verify", "" */
        char point[POINT_ID_LEN + 1], base[POINT_ID_LEN + 1];
        bool created;           /* rpfs created the target (sparse, --create) */
        uint32_t block_size;
        uint64_t disk_size, n_blocks;
        uint64_t done_blocks;   /* every block below is at `point` (durable) */
        unsigned percent;       /* of the current pass (informational) */
        struct fb_fingerprint fp;
        time_t started, updated;
};

int fb_journal_init(struct fb_journal *j, const char *state_dir, const char *target_real);
/* Take the target's lock for this process: -EBUSY when another holds it. */
int fb_journal_lock(struct fb_journal *j);
/* true when another process holds the lock (a failback is running). */
bool fb_journal_busy(const struct fb_journal *j);
/* -ENOENT no journal (j->state FB_J_NONE), -EBADMSG unreadable. */
int fb_journal_load(struct fb_journal *j);
int fb_journal_save(struct fb_journal *j);
void fb_journal_close(struct fb_journal *j);
const char *fb_jstate_name(enum fb_jstate s);

struct fb_target {
        const char *disk, *path;
        char real[PATH_MAX];    /* absolute path (of the would-be file if missing) */
        bool exists, blockdev;
        int fd;
        int dfd;                /* the same, O_DIRECT, for aligned writes; -1 none */
        uint64_t size;          /* file size or device size */
        struct stat st;
        struct fb_journal j;
};

/* Fill t->real and t->exists. Logs. */
int fb_target_resolve(struct fb_target *t);
/* Check and open an existing target for writing: regular file or block
 * device, not busy, writable, at least disk_size bytes. Logs the reason:
 * -ENOENT missing, -EINVAL wrong type, -EBUSY busy, -EROFS read-only,
 * -EFBIG smaller than the disk. */
int fb_target_open(struct fb_target *t, uint64_t disk_size);
/* Create the missing target as a sparse file of disk_size bytes (an
 * existing file made by an interrupted run is reused). Logs. */
int fb_target_create(struct fb_target *t, uint64_t disk_size);
void fb_target_close(struct fb_target *t);
/* Open t->dfd if the target takes O_DIRECT writes of 4 KiB multiples. */
void fb_target_open_direct(struct fb_target *t);
/* Make the target durable: fdatasync (full fsync when final). */
int fb_target_sync(struct fb_target *t, bool final);

int fb_fingerprint_take(struct fb_target *t, uint32_t bs, uint64_t disk_size, struct fb_fingerprint *ret);
/* 0 same, -ESTALE different (why says what differs). */
int fb_fingerprint_check(const struct fb_fingerprint *old, const struct fb_fingerprint *now, char *why,
                         size_t len);

/* ---- the passes (failback-pass.c, failback-scan.c, failback-apply.c) ---- */

/* Blocks of the target, by checksum: a sorted array, subsampled by
 * checksum bits when it would outgrow FB_INDEX_MAX. */
struct fb_ient {
        struct hash128 h;
        uint64_t pos;
};
struct fb_index {
        struct fb_ient *v;
        size_t n, cap;
        uint8_t mask;           /* entries kept: (h.b[15] & mask) == 0 */
};

enum fb_source {
        FB_SRC_DIFF = 0,        /* blocks marked in the diff bitmap (delta) */
        FB_SRC_ALL,             /* every block (full) */
        FB_SRC_MANIFESTS,       /* blocks whose checksum differs between base_d and d */
};

struct fb_run {
        struct store *s;
        const struct sync_failback_opts *o;
        struct fb_target *t;
        uint32_t bs;
        const struct ret_disk *d;       /* the disk at the point synced to */
        const struct ret_disk *base_d;  /* FB_SRC_MANIFESTS: the disk the target holds */
        uint64_t n;                     /* blocks of d */
        unsigned threads, ring;
        struct pool *pool;
        struct store_cache *cache;
        struct fb_index idx;
        uint64_t *diff;                 /* bitmap of n bits (delta) */
        bool use_diff;                  /* diff is valid: blocks not marked equal the point */
        struct sync_fb_stats *st;
        struct progress *pg;
        bool dry_run;
        bool fresh;                     /* target holds zeros from `from` on (new sparse file) */
        struct store_codec_pool *codecs; /* keeps FB_CODECS idle */
        pthread_mutex_t lock;           /* protects bw_* */
        double bw_t0;
        uint64_t bw_bytes;
        double pass_t0, last_event, last_save;
        const char *pass;
        uint64_t pass_total;
        uint64_t fetched_base;          /* store_read_stats() at the start */
};

int fb_run_init(struct fb_run *r);
void fb_run_done(struct fb_run *r);
/* Checksum target blocks [from, n) against d: marks differing blocks in
 * r->diff and indexes the target's non-zero blocks. verify: count
 * mismatches into *ret_bad instead (no index). */
int fb_scan(struct fb_run *r, uint64_t from, bool verify, uint64_t *ret_bad, uint64_t *ret_first_bad);
/* Compare a sample of target blocks with d: the fraction of the point's
 * non-zero blocks that differ. */
int fb_sample(struct fb_run *r, double *ret_fraction);
/* Index d's non-zero blocks (the target holds base_d: --complete). */
int fb_index_manifest(struct fb_run *r, const struct ret_disk *d);
/* Write the blocks chosen by src from block `from` on, in increasing
 * order, checkpointing the journal. Dry run: count only. */
int fb_apply(struct fb_run *r, enum fb_source src, uint64_t from);
/* A progress event (rate-limited unless force). */
void fb_event(struct fb_run *r, uint64_t done, bool force);

/* Shared by the passes (failback-pass.c). */
static inline bool fb_bit_get(const uint64_t *v, uint64_t i) { return v[i / 64] >> (i % 64) & 1; }
static inline void fb_bit_set(uint64_t *v, uint64_t i) { v[i / 64] |= 1ull << (i % 64); }
/* Bytes of block pos of the disk (the last one may be short). */
static inline size_t fb_block_len(const struct fb_run *r, uint64_t pos) {
        return (size_t)MIN((uint64_t)r->bs, r->d->size - pos * r->bs);
}
/* bytes_fetched from the store's figures (not in a dry run). */
void fb_update_fetched(struct fb_run *r);
/* A pass begins: progress line, journal's pass name. */
void fb_pass_begin(struct fb_run *r, const char *pass, uint64_t total);
/* Record the pass's percentage in the journal now and then. */
void fb_note_progress(struct fb_run *r, uint64_t done);
/* Log what reading the manifest of d at block pos failed with; returns e. */
int fb_manifest_error(struct fb_run *r, const struct ret_disk *d, int e, uint64_t pos);
/* Add a target block to the index (subsampled when full); -ENOMEM. */
int fb_index_add(struct fb_index *x, const struct hash128 *h, uint64_t pos);
void fb_index_sort(struct fb_index *x);
/* First entry with checksum h, and how many there are (store_hash_lower_bound). */
size_t fb_index_find(const struct fb_index *x, const struct hash128 *h, size_t *ret_count);

/* ---- plans (failback.c runs them, failback-plan.c makes them) ---- */
/* A run of sync_failback(): one per call (failback.c). */
enum step_kind { STEP_DELTA, STEP_FULL, STEP_DIFF };
extern const char *const fb_step_names[];

struct step {
        enum step_kind kind;
        char point[POINT_ID_LEN + 1];
        char base[POINT_ID_LEN + 1];
        uint64_t from;
        bool fresh;             /* full into a new sparse file */
};

struct tplan {
        struct step steps[2];
        size_t n_steps;
        bool create;            /* the target must be created first */
        const char *mark_op;    /* nothing to write; record this op ("prepare", "complete") */
};

struct ctx {
        struct store *s;
        const struct sync_failback_opts *o;
        struct sync_failback_result *res;
        struct fb_target *t;
        bool *finished;
        struct ret_point *p;    /* the point asked for */
        struct ret_keeper *lease; /* a lease on p while the run lasts */
        struct store_cache *cache;
        uint32_t bs;
        enum sync_fb_fault fault;
};

/* Record f as the run's fault (the first one counts); returns r. */
int fb_fault(struct ctx *c, enum sync_fb_fault f, int r);
/* The class of an error from the vault or the passes. */
enum sync_fb_fault fb_classify(int r);
/* The journal is of this vault, VM and disk (and block size). */
bool fb_journal_matches(const struct ctx *c, const struct fb_target *t, bool check_bs);
/* c->p: the point asked for (failback-plan.c, as below). Logs. */
int fb_resolve_point(struct ctx *c);
const struct ret_disk *fb_point_disk(struct ctx *c, const struct ret_point *p, const char *disk);
int fb_load_point(struct ctx *c, const char *id, struct ret_point **ret);
/* The steps that take t to the point (sync/prepare; complete). Log. */
int fb_plan_sync(struct ctx *c, struct fb_target *t, const struct ret_disk *d, struct tplan *pl);
int fb_plan_complete(struct ctx *c, struct fb_target *t, struct tplan *pl);
