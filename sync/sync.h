/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sync: moving disk data in and out of the vault.
 *   sync_replicate(): read source images, hash every block (XXH3-128),
 *     compress and store only blocks the vault lacks, commit a point.
 *   sync_export(): write a point's disk out as raw bytes, verifying every
 *     block against its checksum.
 *   sync_failback(): bring on-prem targets to a point (delta, full, two
 *     phases, journaled and resumable); see the failback section below.
 *
 * Thread rule: each call is self-contained; it runs its own worker pool.
 * Errors: as store.h and formats.h; -EEXIST the point already exists,
 * -ENOENT unknown VM/point/disk. Functions log the explanation of image
 * errors themselves (they know the file name), and return the code.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "retention.h"
#include "store.h"

struct sync_disk_spec {
        const char *name; /* "disk0" ... */
        const char *path;
};

struct sync_replicate_opts {
        const char *vm;
        const struct sync_disk_spec *disks;
        size_t n_disks;
        bool app;
        const char *group;   /* NULL: none */
        time_t time;         /* point time (the ID) */
        unsigned threads;    /* 0: one per CPU */
        bool progress;       /* draw a progress line if stderr is a tty */
        /* Change-tracked replicate (replicate-changed.c): with changed set,
         * one disk; only blocks touching the extents file's ranges are
         * read, the others' checksums come from point base (of this VM,
         * same disk name and size). verify_base: that many random blocks
         * outside the ranges are read and compared with the base. */
        const char *base;    /* "latest", "latest-app" or an ID; without
                              * changed, the disk is an overlay whose own
                              * clusters are the changed ranges */
        const char *changed; /* extents file (sync_extents_load) */
        unsigned verify_base;
        const char *onprem_from; /* reprotect: lineage recorded in the point (NULL: none) */
        uint64_t changed_block_size; /* thin_delta XML block size (bytes), 0: from the XML */
};

struct sync_replicate_result {
        char id[POINT_ID_LEN + 1];
        uint64_t disk_bytes;   /* virtual sizes added up */
        uint64_t read_bytes;   /* bytes read from sources */
        uint64_t data_blocks;  /* non-zero blocks */
        uint64_t new_blocks;   /* blocks stored by this run */
        uint64_t stored_bytes; /* encoded bytes written to packs */
        double seconds;
};

int sync_replicate(struct store *s, const struct sync_replicate_opts *o, struct sync_replicate_result *ret);

/* ---- reprotect after failback (reprotect.c) ---- */
struct sync_reprotect_opts {
        const struct sync_replicate_opts *rep; /* vm, disks (their on-prem paths), changed, ... */
        const char *vault;     /* the vault's URL as journals record it (NULL: not compared) */
        const char *state_dir; /* failback journals */
};
/* Replicate the on-prem disks of a VM failed back and committed from one
 * point P (every disk's journal says so; P still in the vault), recording
 * lineage (the point's onprem_from = P, *from). With rep->changed, P is
 * the base (only those ranges are read). -ENOENT no failback recorded or
 * P gone, -EINVAL not committed / another VM, disk, vault or point; else
 * sync_replicate()'s errors. Logs why. */
int sync_reprotect(struct store *s, const struct sync_reprotect_opts *o, struct sync_replicate_result *ret,
                   char from[static POINT_ID_LEN + 1]);

/* ---- replication groups (group.c) ---- */
struct sync_group_member {
        const char *vm;
        const struct sync_disk_spec *disks;
        size_t n_disks;
};
/* One point of every member m[0..n) with one ID (common->time; common's
 * vm, disks and group are replaced), then the group point's commit
 * object. The group's members are recorded at its first replicate; later
 * the members given must be exactly its members. Checked before anything
 * is written: members, free IDs (-EEXIST), readable disks. ret: n results.
 * Logs what went wrong. */
int sync_replicate_group(struct store *s, const char *group, const struct sync_group_member *m, size_t n,
                         const struct sync_replicate_opts *common, struct sync_replicate_result *ret);

/* A changed byte range (extents.c). */
struct sync_extent {
        uint64_t start, length;
};
/* Load an extents file: "OFFSET LENGTH" lines (decimal, '#' comments) or
 * a JSON array of {"start", "length"}; sorted, merged, empty ranges
 * dropped. -EINVAL bad syntax, -ERANGE a range past size; why explains
 * (with the line number). *ret malloc'd (NULL with none). */
int sync_extents_load(const char *path, uint64_t size, struct sync_extent **ret, size_t *ret_n, char *why,
                      size_t why_len);
/* The same, also reading LVM thin's thin_delta XML (thin-delta.c):
 * its different, left_only and right_only ranges. block_size: the pool's
 * data block size in bytes, or 0 to take it from the XML's
 * data_block_size; must be 0 for the other forms. */
int sync_extents_load_bs(const char *path, uint64_t size, uint64_t block_size, struct sync_extent **ret,
                         size_t *ret_n, char *why, size_t why_len);

struct fmt_image;
/* The extents an overlay image defines itself (fmt_next_own: its own
 * clusters, not its backing file's), merged. -errno as fmt_next_own
 * (fmt_last_error(img) explains). *ret malloc'd (NULL with none). */
int sync_extents_overlay(struct fmt_image *img, struct sync_extent **ret, size_t *ret_n);

struct sync_export_result {
        uint64_t bytes;        /* disk size */
        uint64_t data_bytes;   /* bytes of non-zero blocks written */
        double seconds;
};

/* Write disk d of point p to fd. sparse: skip zero blocks with lseek (fd
 * must be a regular file, truncated to the size at the end); otherwise
 * write zeros. */
int sync_export(struct store *s, const struct ret_point *p, const struct ret_disk *d, int fd, bool sparse,
                bool progress, struct sync_export_result *ret);

/* ---- seeds ---- */
/*
 * A seed is a local image (usually the stale on-prem disk) whose blocks are
 * read instead of fetched when their checksum matches. Its checksums are
 * computed once (at disk speed) and kept in CACHE_DIR/seeds/, recomputed
 * when the seed's size, mtime or inode change. Seed bytes are re-verified
 * on every use, so a seed that changes under a reader is caught.
 * Internally locked: any thread may call sync_seed_read().
 */
struct sync_seed;
/* Open the seed at path (any supported format) for blocks of bs bytes.
 * Logs what is wrong with path itself (it knows the name). */
int sync_seed_open(const char *path, uint32_t bs, const char *cache_dir, bool progress, struct sync_seed **ret);
void sync_seed_free(struct sync_seed *s);
const char *sync_seed_path(const struct sync_seed *s);
/* Produce the block with checksum h, preferring seed block index i, else
 * any seed block with that checksum; verified. 0 found (buf filled),
 * -ENOENT not in the seed (or the seed changed). */
int sync_seed_read(struct sync_seed *s, uint64_t i, const struct hash128 *h, void *buf);
/* true when the seed (probably) holds a block with checksum h, at index i
 * or elsewhere; no I/O. */
bool sync_seed_has(struct sync_seed *s, uint64_t i, const struct hash128 *h);

/* ---- failback ---- */
/*
 * sync_failback(): bring on-prem targets (raw image files or block
 * devices) to a recovery point, as Site Recovery's failback does.
 *   delta: checksum every target block (all cores), compare with the
 *     point's manifest, fetch and write only the blocks that differ; a
 *     needed block found elsewhere on the target or in the block cache is
 *     copied locally instead of fetched.
 *   full: no checksums: every non-zero block is fetched and written.
 *   two phases: SYNC_FB_PREPARE syncs and records the target's
 *     fingerprint; SYNC_FB_COMPLETE later applies only the manifest
 *     difference between the prepared point and the newer one (no rescan),
 *     refusing a target changed since; SYNC_FB_COMMIT records it as done.
 * Every target has a journal in state_dir: which point, how far (a
 * high-water mark checkpointed after fdatasync of the target). An
 * interrupted run (kill -9 included) resumes from it when run again.
 *
 * Thread rule: each call is self-contained (it runs its own worker pool);
 * two processes never work on one target at once (the journal is locked).
 * Errors: -errno as store.h; the function logs what went wrong (it knows
 * the target, point and disk), and sets ret->fault to the class of the
 * failure, which is what a caller should act on.
 */
enum sync_fb_mode {
        SYNC_FB_AUTO = 0,       /* delta, unless a sample shows most blocks differ */
        SYNC_FB_DELTA,
        SYNC_FB_FULL,
};

enum sync_fb_action {
        SYNC_FB_SYNC = 0,       /* one-shot sync to the point */
        SYNC_FB_PREPARE,        /* phase 1: sync, record the target's fingerprint */
        SYNC_FB_COMPLETE,       /* phase 2: prepared point -> newer point by manifest difference */
        SYNC_FB_COMMIT,         /* record a consistent target as committed (no vault access) */
        SYNC_FB_DRY_RUN,        /* count what a sync would fetch and write; writes nothing */
};

/* What kind of failure stopped a failback (and the CLI's exit status). */
enum sync_fb_fault {
        SYNC_FB_OK = 0,
        SYNC_FB_FAILED,         /* anything not below */
        SYNC_FB_BAD_TARGET,     /* missing, wrong type, smaller than the disk, busy, read-only,
                                 * changed since prepare, wrong state for the action */
        SYNC_FB_NOT_FOUND,      /* no such VM, point or disk (or the point is another VM's) */
        SYNC_FB_AUTH,           /* the vault refused the credentials */
        SYNC_FB_CORRUPT,        /* vault data that fails its checksum or does not parse;
                                 * a block the point needs is missing; --verify mismatch */
        SYNC_FB_RETRIES,        /* a recoverable error outlasted the retry profile */
};

struct sync_fb_target {
        const char *disk;       /* disk name in the point */
        const char *path;       /* file or block device */
};

/* Figures of one target. In a dry run, what would be fetched/written. */
struct sync_fb_stats {
        char point[POINT_ID_LEN + 1];   /* the point the target is at (or would be) */
        char base[POINT_ID_LEN + 1];    /* complete: the prepared point; else "" */
        const char *method;             /* "delta", "full", "diff", "none" (static) */
        const char *state;              /* "consistent", "committed", "unchanged" (static) */
        uint64_t disk_bytes, n_blocks;
        uint64_t resumed_from;          /* first block of this run (> 0: resumed) */
        uint64_t blocks_scanned, bytes_scanned;
        uint64_t blocks_differing;      /* delta/diff: blocks that needed a write */
        uint64_t blocks_fetched;        /* from the vault */
        uint64_t bytes_fetched;         /* read from the vault: blocks and manifest chunks */
        uint64_t blocks_local;          /* copied from elsewhere on the target */
        uint64_t blocks_cached;         /* copied from the block cache */
        uint64_t blocks_zeroed;         /* holes punched or zeros written */
        uint64_t blocks_written;        /* blocks changed on the target (data + zeroed) */
        uint64_t bytes_written;         /* bytes of data written (zeroing excluded) */
        uint64_t blocks_verified;       /* --verify */
        double seconds;
};

/* Progress reports, for a machine-readable stream (at most about one per
 * second per target, plus one at the end of each pass). */
struct sync_fb_event {
        const char *type;       /* "progress" or "retry" */
        const char *disk, *target;
        const char *pass;       /* "scan", "write", "verify" */
        uint64_t done, total;   /* bytes of the disk covered by this pass */
        double rate, eta;       /* bytes/s of the pass, seconds left (-1 unknown) */
        const struct sync_fb_stats *stats;
        int error;              /* "retry": the error, the delay in seconds, the attempt */
        double delay;
        unsigned attempt;
};

struct sync_failback_opts {
        const char *vault;      /* the vault's URL as given: recorded in journals */
        const char *vm;
        const char *point;      /* "latest" (NULL), "latest-app" or an ID */
        const struct sync_fb_target *targets;
        size_t n_targets;
        enum sync_fb_mode mode;
        enum sync_fb_action action;
        bool create;            /* create a missing target as a sparse file */
        bool resume;            /* only continue interrupted runs */
        bool verify;            /* re-read every block afterwards */
        unsigned threads;       /* 0: one per CPU, at least 4 */
        uint64_t bwlimit;       /* bytes per second fetched from the vault; 0: none */
        const char *cache_dir;  /* block cache to copy blocks from; NULL: none */
        const char *state_dir;  /* journals */
        enum retry_profile retry;
        bool progress;          /* a progress line when stderr is a terminal */
        void (*on_event)(void *userdata, const struct sync_fb_event *e);
        void *userdata;
};

struct sync_failback_result {
        enum sync_fb_fault fault;
        char point[POINT_ID_LEN + 1];   /* the point synced to */
        struct sync_fb_stats *targets;  /* n_targets entries, owned by the caller */
};

/* Run o->action on every target. All targets are checked (existence,
 * size, busy, read-only, disk names, point) before anything is written.
 * ret->targets must point to o->n_targets entries. SYNC_FB_COMMIT does
 * not use s (may be NULL). */
int sync_failback(struct store *s, const struct sync_failback_opts *o, struct sync_failback_result *ret);

/* The recorded state of one target, from its journal (no vault access). */
enum sync_fb_state {
        SYNC_FB_STATE_NONE = 0,         /* no journal */
        SYNC_FB_STATE_RUNNING,          /* a failback is at work on it now */
        SYNC_FB_STATE_INTERRUPTED,      /* stopped midway: rerun to finish */
        SYNC_FB_STATE_CONSISTENT,       /* equals point */
        SYNC_FB_STATE_COMMITTED,        /* equals point, committed */
};

struct sync_fb_status {
        enum sync_fb_state state;
        char vault[1024];
        char vm[65], disk[65];
        char point[POINT_ID_LEN + 1];   /* the point synced to (or being synced to) */
        char base[POINT_ID_LEN + 1];
        char op[16];                    /* "sync", "prepare", "complete" */
        char method[8];                 /* "delta", "full", "diff" */
        char pass[8];                   /* "scan", "write", "verify" while running */
        unsigned percent;               /* of the current pass */
        uint64_t done_blocks, n_blocks; /* durable high-water mark */
        time_t updated;
};

/* Read target's journal in state_dir. -ENOENT none (state NONE filled in),
 * -EBADMSG unreadable journal. */
int sync_failback_status(const char *state_dir, const char *target, struct sync_fb_status *ret);
/* "consistent at point ID", "in progress N%", "interrupted: rerun to
 * finish", "no failback recorded"... into buf. */
const char *sync_fb_status_text(const struct sync_fb_status *st, char *buf, size_t len);

/* ---- status: RPO health of a vault's VMs (rpfs status) ----
 * Per VM: the newest point and its age against the RPO thresholds, the
 * newest app-consistent point against the app-consistent frequency, the
 * number of points and the oldest against the retention window, and the
 * failbacks recorded in a journal directory for this vault. Vault: stored,
 * logical and decoded bytes, packs and index segments, and the store's
 * clock. Ages are measured on the store's clock when it could be read. */
enum sync_status_level {
        SYNC_STATUS_OK = 0,
        SYNC_STATUS_WARNING = 1,  /* past the RPO, a late app point, skewed clock, interrupted failback */
        SYNC_STATUS_CRITICAL = 2, /* past the critical threshold (2x RPO), no point at all, or the
                                   * last rpfs check found damage */
        SYNC_STATUS_UNKNOWN = 3,  /* the vault could not be read */
};

/* Seconds; 0 in sync_status_opts means "the policy's". */
struct sync_status_thresholds {
        long rpo;       /* RPO threshold (default 15 min) */
        long warning;   /* newest point older than this: WARNING (default rpo) */
        long critical;  /* older than this: CRITICAL (default 2 x rpo) */
        long app;       /* app-consistent frequency (default 60 min) */
        long retention; /* retention window (default 24 h) */
};

struct sync_status_opts {
        const char *const *vms;  /* NULL: every VM with a point */
        size_t n_vms;
        const char *vault;       /* the vault's URL as given: matched against journals */
        const char *state_dir;   /* failback journals (NULL: none looked at) */
        struct sync_status_thresholds override; /* --warning, --critical */
};

struct sync_status_vm {
        char vm[65];
        enum sync_status_level level;
        struct sync_status_thresholds th;
        size_t n_points, n_past_retention;
        char newest[POINT_ID_LEN + 1], newest_app[POINT_ID_LEN + 1], oldest[POINT_ID_LEN + 1]; /* "" none */
        long age, app_age, oldest_age; /* seconds, -1 with no such point */
        size_t fb_interrupted, fb_running, fb_prepared; /* journals of this vault and VM */
        char onprem_from[POINT_ID_LEN + 1]; /* newest point's lineage: runs on-prem, failed back from; "" none */
        char why[192];                 /* what set the level, for a person */
};

struct sync_status {
        enum sync_status_level level;
        time_t now;           /* the clock ages are measured with */
        bool have_clock;      /* the store's clock was read */
        long skew;            /* this host's clock minus the store's, seconds */
        uint64_t packs, pack_bytes;      /* pack objects listed, their bytes (stored) */
        uint64_t logical_bytes;          /* non-zero block bytes of every point's disks */
        struct store_index_totals index; /* segments, blobs, encoded and decoded bytes */
        size_t n_points;
        size_t n_vms;
        struct sync_status_vm *vms;
        struct ret_note last_prune, last_check; /* time 0: never recorded (retention notes) */
};

/* Gather the status of o->vms (or of all VMs) in s into *ret (free with
 * sync_status_free()). A VM given that has no point is CRITICAL. Errors:
 * those of listing or reading points (the vault cannot be read: UNKNOWN
 * for the caller), -ENOMEM. */
int sync_status_get(struct store *s, const struct sync_status_opts *o, struct sync_status **ret);
void sync_status_free(struct sync_status *st);
/* "OK", "WARNING", "CRITICAL", "UNKNOWN". */
const char *sync_status_level_name(enum sync_status_level l);

/* ---- hooks: app-consistent points from a quiesced guest ----
 * sync_replicate_hooked() runs sync_replicate() between the phases of a
 * hook program, called as `SCRIPT PHASE` with RPFS_VM, RPFS_POINT (the
 * point's ID), RPFS_DISKS ("NAME=PATH ..." space-separated) and
 * RPFS_PHASE in its environment:
 *   freeze    quiesce the guest; the point is app-consistent only when it
 *             succeeds (and o->app asked for it)
 *   snapshot  take a snapshot; each line printed "NAME=PATH" (or a lone
 *             PATH, for the first disk) is read instead of that live disk
 *   thaw      resume the guest: always runs once freeze ran
 *   done      after the point is committed
 *   failed    after any failure: always runs when done does not
 * A phase fails when the program exits non-zero (or is killed). */
struct sync_hook_opts {
        const char *script;
        bool required;  /* --app-consistent=required: a failed freeze fails */
};
/* sync_replicate() with hook h around it (h->script NULL: none). -EPERM
 * when freeze failed and was required, -ECANCELED when snapshot failed
 * (nothing was written in either case). *ret_app: whether the point was
 * stored as app-consistent. */
int sync_replicate_hooked(struct store *s, const struct sync_replicate_opts *o, const struct sync_hook_opts *h,
                          struct sync_replicate_result *ret, bool *ret_app);

/* ---- the delta engine (delta-scan.c, delta-apply.c) ---- */
/*
 * Compare a target's blocks with a point's and write what differs: the one
 * engine under sync_failback() and the writable mount's copies from a point
 * (fs/onprem.c). A block's checksum is XXH3-128 of its bs bytes, zero
 * padded past the disk's end; an all-zero block has the zero checksum.
 * Thread rule: the functions keep no state of their own but the learned
 * flags of a struct sync_delta_target (atomic); any thread may call them.
 */
struct pool;

/* The pieces the target is read in: pread into a reused, page-aligned
 * buffer of this size (see delta-scan.c). */
#define SYNC_DELTA_PIECE_BYTES (256u << 10)
/* Writes at least this long go through the target's O_DIRECT twin. */
#define SYNC_DELTA_DIRECT_MIN (1u << 20)

/* A target read for checksums. */
struct sync_delta_src {
        int fd;
        uint32_t bs;            /* block size */
        uint64_t end;           /* bytes at or past end read as zeros, unread (the disk's end) */
        bool eof_zero;          /* a file ending before end reads as zeros; else -EIO */
};

/* Checksum n blocks of src, block k at byte off + k * bs, into got[k].
 * hole (NULL: none) marks blocks known to hold no data: not read, zero
 * checksum. buf: a page-aligned buffer of buf_len (>= bs) bytes, reused
 * (alloc_large()). 0, -EIO (short read), -errno of pread, -EINVAL. */
int sync_delta_hash(const struct sync_delta_src *src, uint64_t off, size_t n, const uint8_t *hole, void *buf,
                    size_t buf_len, struct hash128 *got);
/* The same, split over pool's threads (NULL: this thread only), each with
 * a buffer of its own kept for the thread's life; waits for all. */
int sync_delta_hash_parallel(struct pool *pool, const struct sync_delta_src *src, uint64_t off, size_t n,
                             const uint8_t *hole, struct hash128 *got);
/* The checksum of one block of bs bytes in memory (zero for zeros). */
void sync_delta_hash_block(const void *p, size_t bs, struct hash128 *ret);
/* Is [off, off + len) of fd (len <= bs; past its end reads as zeros) the
 * block with checksum h? buf (bs bytes, any alignment) receives it, padded. */
bool sync_delta_block_is(int fd, uint32_t bs, uint64_t off, size_t len, const struct hash128 *h, void *buf);
/* same[k] = want[k] equals got[k]; returns how many differ. */
size_t sync_delta_mark(const struct hash128 *want, const struct hash128 *got, size_t n, bool *same);

/* A target being written. */
struct sync_delta_target {
        int fd;                 /* buffered writes, holes */
        int dfd;                /* the same file opened O_DIRECT, or -1 */
        bool blockdev;          /* zeros by FALLOC_FL_ZERO_RANGE rather than a hole */
        bool zero_fallback;     /* learned: zeroing unsupported, zeros are written */
        bool no_direct;         /* learned: O_DIRECT writes refused */
};
void sync_delta_target_init(struct sync_delta_target *t, int fd, int dfd, bool blockdev);
/* Write len bytes of p at off: through dfd when long and aligned. -errno. */
int sync_delta_write(struct sync_delta_target *t, const void *p, size_t len, uint64_t off);
/* Make [off, off + len) read as zeros: a hole (zeroed range on a device),
 * or zeros written where that is unsupported (then len is added to
 * *ret_written, if not NULL). -errno. */
int sync_delta_zero(struct sync_delta_target *t, uint64_t off, uint64_t len, uint64_t *ret_written);
/* Fetch, decode and verify v[0..n) from the vault with a codec of codecs
 * (merged ranged reads). On failure *ret_bad is the entry that failed
 * (0 when the batch failed as a whole). Errors as store_fetch_blocks(). */
int sync_delta_fetch(struct store *s, struct store_codec_pool *codecs, struct store_fetch *v, size_t n,
                     size_t *ret_bad);
