/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "common.h"
#include "formats.h"
#include "fs.h"
#include "retention.h"
#include "store.h"
#include "sync.h"

#define CHUNK_SLOTS 1024
#define CHUNK_LOCKS 16
#define CODEC_POOL 64
#define CATALOG_TTL 2.0
#define FL_CAP 8192 /* in-flight fetch table; > all fetches that can be under way */
#define FL_CONDS 64 /* stripes of fl_cond */

/* A point held by the catalog and by open files. */
struct fs_point {
        atomic_int refs;
        struct ret_point *p;
        struct sync_seed **seeds; /* per disk, NULL when none */
        /* views.c: what is made of each disk on first use (partitions,
         * changes); views_lock (zeroed by calloc, a default mutex)
         * protects views and the pointers in it */
        pthread_mutex_t views_lock;
        struct fs_disk_views *views;
};

/* A partition of a disk, as parts.c found it. */
struct fs_part {
        unsigned number;          /* <disk>.p<number>.raw */
        uint64_t start, size;     /* bytes of the disk */
        uint64_t data_bytes;      /* of non-zero blocks within it */
        char type[40];            /* GPT type GUID or MBR type (0x83) */
        char name[80];            /* GPT partition name */
        char part_uuid[40];       /* GPT partition GUID, MBR disk id-number */
        char fs_type[32], fs_label[80], fs_uuid[40]; /* the filesystem found in it (libblkid) */
};

struct fs_disk_views {
        char *changes;            /* <disk>.changes, once made */
        size_t changes_len;
        bool parts_done;          /* parts, n_parts, table are known */
        char table[8];            /* "gpt", "dos" or "" */
        struct fs_part *parts;
        size_t n_parts;
};

struct chunk_slot {
        struct hash128 h;
        bool valid;
        uint32_t n;
        struct hash128 e[RET_CHUNK_ENTRIES];
};

struct fs_stats {
        atomic_uint_least64_t blocks_compared, blocks_skipped, blocks_written, bytes_written;
        atomic_uint_least64_t bytes_zero, bytes_cache, bytes_seed, bytes_vault;
        atomic_uint_least64_t blocks_fetched, bytes_fetched, blocks_prefetched;
        atomic_uint_least64_t errors, reads, retries;
};

struct fs_seed {
        char vm[65], disk[65];
        struct sync_seed *seed;
};

struct fs {
        struct fs_options o;
        struct store *s;
        struct store_cache *cache;
        uint32_t bs;
        time_t started;

        /* catalog.c. cat_lock protects points, n_points and the cat_
         * fields after it; lock order: cat_lock before chunk locks. */
        pthread_mutex_t cat_lock;
        struct fs_point **points;  /* sorted by vm, id */
        size_t n_points;
        struct ret_group_point *gpoints; /* group points' commit objects, sorted by group, id */
        size_t n_gpoints;
        pthread_cond_t cat_cond;   /* a refresh was asked for, ended, or stop */
        double cat_time;           /* when the last refresh ended */
        double cat_started;        /* when the current refresh was asked for */
        int cat_error;             /* the last refresh: 0 or -errno */
        bool cat_want, cat_refreshing, cat_stop;
        bool cat_running;          /* cat_tid runs */
        pthread_t cat_tid;

        pthread_mutex_t chunk_lock[CHUNK_LOCKS]; /* slot i uses lock i % CHUNK_LOCKS */
        struct chunk_slot *chunks;

        struct store_codec_pool *codecs; /* keeps CODEC_POOL idle */

        /* Leases on the points whose files were opened: taken at the
         * first open of a point's disk file, kept while mounted (a closed
         * file may be opened again), dropped at unmount (fs_free). */
        struct ret_keeper *leases;

        struct fs_seed *seeds;
        size_t n_seeds;

        pthread_mutex_t fl_lock;    /* protects fl, fl_n */
        /* Broadcast when a fetch completes, one per stripe of blocks: a
         * completed block wakes only the readers of its stripe, not every
         * waiting reader (a sequential read completes thousands). */
        pthread_cond_t fl_cond[FL_CONDS];
        struct hash128 *fl;         /* blocks being fetched: open addressing, FL_CAP */
        bool *fl_used;
        size_t fl_n;

        struct pool *ra_pool;       /* readahead */
        struct pool *cmp_pool;      /* copy_file_range into MOUNT/failback: target checksums */
        pthread_mutex_t ra_lock;    /* protects ra_inflight */
        unsigned ra_inflight;

        int onprem_fd;              /* O_RDONLY|O_DIRECTORY of onprem_dir, or -1 */
        struct fs_verified *verified; /* verified.c, with onprem_fd; internally locked */

        pthread_mutex_t files_lock; /* protects files: open files, freed at exit
                                     * when a lazy unmount skipped their release */
        struct fs_file *files;

        /* read.c: reads try once, briefly, until then (ms of
         * now_monotonic()): the vault was just found unreachable */
        atomic_uint_least64_t unreachable_until_ms;

        struct fs_stats st;
};

/* A file opened through the mount. */
enum fs_file_kind { FK_RAW, FK_VHD, FK_TEXT, FK_ONPREM, FK_PART };

struct fs_file {
        struct fs_file *prev, *next;   /* fs->files, under files_lock */
        enum fs_file_kind kind;
        struct fs_point *pt;           /* FK_RAW, FK_VHD */
        const struct ret_disk *d;
        size_t disk_index;
        uint64_t vhd_data;             /* FK_VHD: bytes before the footer */
        uint64_t part_start, part_size; /* FK_PART: the partition's bytes of the disk */
        uint8_t footer[FMT_VHD_FOOTER_SIZE];
        int fd;                        /* FK_ONPREM */
        pid_t tgid;                    /* the opening process, 0 unknown */
        /* FK_RAW, FK_VHD: 1 + a read-only descriptor of the file in
         * MOUNT/failback that the same process opened for writing after
         * this one (dd if=<point disk> of=MOUNT/failback/<file>): blocks
         * that match there at the same offset are read from it, verified,
         * instead of fetched. 0: none. Set once, under files_lock. */
        atomic_int onprem_seed;
        uint64_t seed_dev, seed_ino;   /* of onprem_seed, set before it */
        uint64_t dev, ino;             /* FK_ONPREM: of fd */
        struct fs_verified *verified;  /* FK_ONPREM: fs->verified */
        bool trunc_pending;            /* opened with O_TRUNC: truncation deferred to flush */
        uint64_t logical_end;          /* size the file will have */
        uint64_t (*covered)[2];        /* written ranges since open, sorted, merged */
        size_t n_covered, cap_covered;
        char *text;                    /* FK_TEXT */
        size_t text_len;
        pthread_mutex_t lock;          /* protects next_off, ra_end, ra_win */
        uint64_t next_off, ra_end;
        uint64_t ra_win;               /* readahead window: grows while the reader stays sequential */
        uint64_t seq_bytes;            /* read by the current sequential stream */
};

/* onprem.c: MOUNT/failback, the writable on-prem directory. rel is the
 * path below it ("." for the directory itself). */
#define FS_ONPREM_NAME "failback"
bool fs_onprem_path(const struct fs *fs, const char *path, const char **rel);
int onprem_getattr(struct fs *fs, const char *rel, struct stat *st);
int onprem_readdir(struct fs *fs, const char *rel, void *buf, void *filler);
int onprem_open(struct fs *fs, const char *rel, int flags, mode_t mode, bool create, struct fs_file **ret);
int onprem_write(struct fs *fs, struct fs_file *f, const char *buf, size_t size, uint64_t off);
int onprem_truncate(struct fs_file *f, uint64_t size);
int onprem_flush(struct fs_file *f);
void onprem_close(struct fs_file *f);
ssize_t onprem_copy_from_point(struct fs *fs, struct fs_file *src, uint64_t off_in, struct fs_file *dst,
                               uint64_t off_out, size_t len);
char *onprem_stats_extra(struct fs *fs);

void fs_file_track(struct fs *fs, struct fs_file *f);
/* The process that made the current FUSE request (its thread group), 0 if
 * unknown. */
pid_t fs_caller_tgid(void);
/* A file of MOUNT/failback (rel) was opened for writing by process tgid:
 * make it the on-prem seed of the point disk that process opened last. */
void fs_onprem_seed_attach(struct fs *fs, const char *rel, pid_t tgid);
void fs_file_untrack(struct fs *fs, struct fs_file *f);

/* Is the block at [off, off + len) of fd (len <= bs; short reads count as
 * zeros) the block with checksum h? buf (bs bytes) receives it, padded. */
/* An on-prem seed: a descriptor of the file (not owned), its device and
 * inode, and the size of the disk it seeds. */
struct fs_onprem_ref {
        int fd;
        uint64_t dev, ino, size;
};
/* Whether block b of the disk (checksum h) is at the same offset of the
 * on-prem seed op: read into buf (bs bytes) and verified; a match is
 * noted (verified.c) for the writes that follow. */
bool fs_onprem_seed_block(struct fs *fs, const struct fs_onprem_ref *op, uint64_t b, const struct hash128 *h,
                          uint8_t *buf);

/* verified.c: notes of blocks of on-prem files verified by the read path,
 * consulted by writes (see there). Internally locked; NULL v: no-ops
 * (forget) or allocation (new). */
struct fs_verified;
struct fs_verified_mark {
        uint32_t wgen, epoch;
};
int fs_verified_new(struct fs_verified **ret);
void fs_verified_free(struct fs_verified *v);
/* Before reading block of (dev, ino): what a later note must still see. */
void fs_verified_sample(struct fs_verified *v, uint64_t dev, uint64_t ino, uint64_t block,
                        struct fs_verified_mark *ret);
/* The block held checksum h: kept unless the file changed since m. */
void fs_verified_note(struct fs_verified *v, uint64_t dev, uint64_t ino, uint64_t block, const struct hash128 *h,
                      const struct fs_verified_mark *m);
/* Whether a note says the block holds checksum h. */
bool fs_verified_holds(struct fs_verified *v, uint64_t dev, uint64_t ino, uint64_t block, const struct hash128 *h);
/* Blocks [first, end) were written, after the write. */
void fs_verified_forget(struct fs_verified *v, uint64_t dev, uint64_t ino, uint64_t first, uint64_t end);
/* Any file may have changed as a whole (truncation, hole, unlink, rename). */
void fs_verified_forget_all(struct fs_verified *v);

/* read.c */
/* Checksum of block i of disk d, through the shared chunk cache. */
int fs_block_hash(struct fs *fs, const struct ret_disk *d, uint64_t i, struct hash128 *ret);
/* Read [off, off + len) of disk d of point pt into buf (len may cross
 * blocks; off + len <= d->size). Returns bytes read or -EIO. */
int fs_read_disk(struct fs *fs, struct fs_file *f, char *buf, size_t len, uint64_t off);
/* Fetch into the cache, as one batch, those of blocks[0..n) of f's disk
 * that are not zero, cached, seeded nor being fetched. Best effort: a
 * block that fails is fetched (and its error reported) by the read that
 * needs it. */
void fs_fetch_into_cache(struct fs *fs, struct fs_file *f, const uint64_t *blocks, size_t n);
char *fs_stats_json(struct fs *fs);
/* Called when a read of [off, off + len) of f arrives, before it is
 * served: a reader that keeps going forward gets the next window fetched
 * in the background. */
void fs_readahead(struct fs *fs, struct fs_file *f, uint64_t off, size_t len);
/* o as indented JSON text with a final newline (malloc'd, or NULL); takes
 * the reference to o. */
struct json_t;
char *fs_json_text(struct json_t *o);
void fs_point_unref(struct fs_point *pt);

/* views.c */
/* The first offset in [from, end) of disk d (end clipped to its size) in
 * a data block (data) or a zero block (!data), or end when none, into
 * *ret. 0 or -errno of reading the manifest. */
int fs_disk_next(struct fs *fs, const struct ret_disk *d, uint64_t from, uint64_t end, bool data, uint64_t *ret);
/* Bytes of non-zero blocks of d within [start, end). */
int fs_disk_data_bytes(struct fs *fs, const struct ret_disk *d, uint64_t start, uint64_t end, uint64_t *ret);
/* lseek(SEEK_DATA or SEEK_HOLE) in a view of total bytes: [0, data_end)
 * are disk d's bytes from base, [data_end, len) zeros, [len, total) data
 * (a footer). The offset, -ENXIO past the end or without data after off,
 * -EIO when the manifest cannot be read. */
off_t fs_view_seek(struct fs *fs, const struct ret_disk *d, uint64_t base, uint64_t len, uint64_t data_end,
                   uint64_t total, uint64_t off, bool data);
/* <disk>.changes of disk (index) of pt: one "OFFSET LENGTH" line per
 * extent that differs from the previous point of its VM (all data extents
 * for the first point). Made once per point and kept. *ret (a malloc'd
 * copy; NULL: only the length) and *ret_len. 0 or -errno, logged. */
int fs_changes_text(struct fs *fs, struct fs_point *pt, size_t disk, char **ret, size_t *ret_len);
/* pt's views of disk, allocated on first use; NULL without memory. */
struct fs_disk_views *fs_views_of(struct fs_point *pt, size_t disk);
void fs_views_free(struct fs_point *pt);

/* parts.c */
/* The partitions of disk (index) of pt, found with libblkid on first use
 * and kept: *ret points into pt's views (valid while pt is referenced).
 * 0 or -errno (-EIO: the disk's first or last MiB could not be read). */
int fs_parts_get(struct fs *fs, struct fs_point *pt, size_t disk, const struct fs_disk_views **ret);

/* files.c */
void fs_file_free(struct fs_file *f);

/* groups.c: MOUNT/groups (see the file). */
/* The vault's group commit objects, sorted (those already in fs->gpoints
 * reused). 0 or the listing's -errno. */
int fs_groups_load(struct fs *fs, struct ret_group_point **ret, size_t *ret_n);
void fs_groups_free(struct ret_group_point *v, size_t n);
/* Whether path is below MOUNT/groups (while the vault has a complete
 * group point); *rel: the rest ("" for the directory itself). */
bool fs_groups_path(struct fs *fs, const char *path, const char **rel);
int fs_groups_getattr(struct fs *fs, const char *rel, struct stat *st);
int fs_groups_readlink(struct fs *fs, const char *rel, char *buf, size_t size);
/* filler: a fuse_fill_dir_t. */
int fs_groups_readdir(struct fs *fs, const char *rel, void *buf, void *filler);

/* ops.c: the FUSE operations, for fuse_new() (include fuse.h first). */
#ifdef FUSE_USE_VERSION
extern const struct fuse_operations fs_fuse_ops;
#endif

/* catalog.c: the vault's points as the mount shows them (see the file). */
/* The first listing; before threads start. -errno when it fails. */
int fs_catalog_start(struct fs *fs);
/* Start the refresh thread (after daemonizing). */
int fs_catalog_run(struct fs *fs);
/* Stop the refresh thread and drop the catalog. */
void fs_catalog_stop(struct fs *fs);
/* Take cat_lock, with the catalog refreshed first when it is older than
 * CATALOG_TTL (waiting at most the mount's timeout; the last listing
 * otherwise). While the vault cannot be listed (the last refresh failed),
 * asks for a refresh and returns false at once, unless
 * even_if_unreachable. The caller unlocks cat_lock. */
bool fs_catalog_lock_fresh(struct fs *fs, bool even_if_unreachable);
/* Under cat_lock: the point, or NULL (not referenced). */
struct fs_point *fs_catalog_find_locked(struct fs *fs, const char *vm, const char *id);
/* Under cat_lock: the newest point of vm (app-consistent only if app), or NULL. */
struct fs_point *fs_catalog_latest_locked(struct fs *fs, const char *vm, bool app);
bool fs_catalog_vm_exists_locked(struct fs *fs, const char *vm);

/* inflight.c: the blocks being fetched. A block is fetched once: whoever
 * finds it in flight waits for it (a reader) or leaves it (readahead). */
enum fs_claim { FS_CLAIM_MINE, FS_CLAIM_OTHERS, FS_CLAIM_CACHED };
/* Claim h for fetching, after the caller missed it in the cache:
 * FS_CLAIM_OTHERS when someone is fetching it; FS_CLAIM_CACHED when a fetch
 * ended between that lookup and this claim; else FS_CLAIM_MINE, with
 * *claimed false when the table is full (fetch it unclaimed). */
enum fs_claim fs_claim_block(struct fs *fs, const struct hash128 *h, bool *claimed);
/* Release a claim (after the block went into the cache, or failed). */
void fs_fl_release(struct fs *fs, const struct hash128 *h);
/* Wait until nobody fetches h. */
void fs_fl_wait(struct fs *fs, const struct hash128 *h);

/* paths.c: what a path of the mount names. */
enum fs_node_type {
        N_ROOT, N_META, N_STATS, N_VM, N_POINTS, N_POINT, N_RAW, N_VHD, N_JSON, N_LATEST, N_LATEST_APP,
        N_CHANGES, N_PART,
};

struct fs_node {
        enum fs_node_type t;
        char vm[65];
        struct fs_point *pt; /* referenced: N_POINT, N_RAW, N_VHD, N_JSON, N_LATEST*, N_CHANGES, N_PART */
        size_t disk;
        unsigned part_no;           /* N_PART: <disk>.p<part_no>.raw */
        const struct fs_part *part; /* N_PART, in pt's views */
};

/* Resolve path against the catalog into n (n->pt referenced, dropped with
 * fs_point_unref): 0, or -ENOENT, -ENAMETOOLONG. */
int fs_resolve(struct fs *fs, const char *path, struct fs_node *n);
/* point.json of pt, in a malloc'ed string of *ret_len bytes; NULL on ENOMEM. */
char *fs_point_json(struct fs *fs, struct fs_point *pt, size_t *ret_len);
/* st_blocks of disk d's raw view. */
blkcnt_t fs_disk_sectors(struct fs *fs, const struct ret_disk *d);
/* The data part of disk d's VHD view: its size rounded up to a sector. */
static inline uint64_t fs_vhd_data_size(const struct ret_disk *d) { return DIV_ROUND_UP(d->size, 512) * 512; }

/* mount.c: set fs (zeroed) up as o says: vault, cache, seeds, catalog;
 * -errno, logged. fs_free() undoes it, also after a failure, and frees fs. */
int fs_setup(struct fs *fs, const struct fs_options *o);
void fs_free(struct fs *fs);

/* loop.c */
struct fuse_session;
/* Serve SE on up to MAX_WORKERS threads until the session ends (the
 * connection ended, or a signal handler of fuse_set_signal_handlers ended
 * it); returns once every worker has returned: 0, or the first negative
 * error a worker's read of /dev/fuse failed with (-ECONNABORTED when the
 * kernel's teardown raced a read). */
int fs_loop_run(struct fuse_session *se, unsigned max_workers);
