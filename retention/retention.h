/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * retention: the points catalog. A recovery point is one immutable JSON
 * object "points/<vm>/<id>.json", created exclusively, so a point is
 * visible exactly when that object exists and two writers can never
 * replace each other's point. Each disk's manifest (its block checksums
 * in order) is stored as content-addressed manifest chunks in packs, so
 * consecutive points share the chunks that did not change.
 *
 * Thread rule: struct ret_point is plain data; struct ret_manifest_writer
 * and struct ret_manifest are one per thread.
 *
 * Errors: -ENOENT no such VM/point/disk, -EEXIST point exists, -EBADMSG a
 * point or manifest that does not parse, -EINVAL bad names.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "store.h"

#define RET_CHUNK_ENTRIES 512 /* block checksums per manifest chunk */

struct ret_disk {
        char name[65];
        char format[16];          /* source format, informational */
        uint64_t size;            /* virtual size in bytes */
        uint64_t n_blocks;
        uint64_t data_blocks;     /* non-zero blocks */
        size_t n_chunks;
        struct hash128 *chunks;   /* manifest chunk checksums, in order */
};

struct ret_point {
        char vm[65];
        char id[16 + 1];
        time_t time;
        bool app;                 /* app-consistent */
        char *group;              /* replication group or NULL */
        uint32_t block_size;
        size_t n_disks;
        struct ret_disk *disks;
};

void ret_point_free(struct ret_point *p);

/* Encode p and create its object exclusively: -EEXIST if that VM already
 * has a point with that ID. */
int ret_point_commit(struct store *s, const struct ret_point *p);
/* Parse a point object's text. -EBADMSG when it is not a valid point,
 * -EPROTONOSUPPORT a newer point format. */
int ret_point_parse(const char *text, struct ret_point **ret);
/* Load one point. -ENOENT if absent. *ret owned by the caller. */
int ret_point_load(struct store *s, const char *vm, const char *id, struct ret_point **ret);
/* All points (of vm, or of every VM when vm is NULL), sorted by VM then
 * ID. *ret is an array of *ret_n pointers; free with ret_points_free(). */
int ret_points_list(struct store *s, const char *vm, struct ret_point ***ret, size_t *ret_n);
void ret_points_free(struct ret_point **v, size_t n);
/* Resolve "latest", "latest-app" or an ID for vm. -ENOENT with nothing
 * matching (no point, no app-consistent point, unknown ID). */
int ret_point_resolve(struct store *s, const char *vm, const char *spec, struct ret_point **ret);
/* The disk named name in p, or NULL. */
const struct ret_disk *ret_point_disk(const struct ret_point *p, const char *name);

/* ---- manifests ---- */
struct ret_manifest_writer;
struct store_writer;
struct store_codec;
/* Collects block checksums in order and stores full chunks through w. */
int ret_manifest_writer_new(struct store_writer *w, struct store_codec *c, struct ret_manifest_writer **ret);
int ret_manifest_writer_add(struct ret_manifest_writer *m, const struct hash128 *h);
/* Store the last chunk; move the chunk list into d (n_chunks, chunks). */
int ret_manifest_writer_finish(struct ret_manifest_writer *m, struct ret_disk *d);
void ret_manifest_writer_free(struct ret_manifest_writer *m);

/* Reads a disk's manifest chunk by chunk (only one chunk in memory). */
struct ret_manifest;
int ret_manifest_open(struct store *s, const struct ret_disk *d, struct ret_manifest **ret);
/* Checksum of block i (zero hash for an all-zero block). -ENOENT past
 * the end, -EBADMSG damaged chunk. */
int ret_manifest_get(struct ret_manifest *m, uint64_t i, struct hash128 *ret);
void ret_manifest_free(struct ret_manifest *m);

/* ---- comparisons (diff.c) ---- */
/* Whether manifest chunk ci of d holds only zero blocks (true past the end). */
bool ret_chunk_is_zero(const struct ret_disk *d, size_t ci);
/* Called with each extent, in bytes, in order; non-zero stops the walk
 * and is returned. */
typedef int (*ret_extent_fn)(void *userdata, uint64_t start, uint64_t length);
/* The extents where disk b differs from disk a, at block granularity
 * (block_size bytes; the last one clipped to b's size), merged, in order.
 * a NULL (no earlier disk): b's non-zero blocks. Blocks past the end of a
 * disk count as zeros. Chunks with equal checksums are skipped without
 * being read. 0, -errno of reading a manifest chunk, or cb's value. */
int ret_disk_diff(struct store *s, const struct ret_disk *a, const struct ret_disk *b, uint32_t block_size,
                  ret_extent_fn cb, void *userdata);
/* ---- policy (policy.c) ----
 * How long points are kept and how they are thinned. Stored in the vault
 * as versioned objects: "policy/default.json" (the vault's default) and
 * "policy/vm/<vm>.json" (a VM's override, a whole policy). With none
 * stored, Site Recovery's defaults apply: retention 24 h, app-consistent
 * frequency 60 min, RPO threshold 15 min, site-recovery thinning. See
 * docs/FORMAT.md "Policy". */
#define RET_POLICY_FORMAT 1

enum ret_thin_kind {
        RET_THIN_SITE_RECOVERY = 0, /* the Site Recovery table, within the retention window */
        RET_THIN_KEEP = 1,          /* the keep_* calendar rules (UTC buckets, OR-ed) */
};

enum ret_policy_source {
        RET_POLICY_BUILTIN = 0, /* nothing stored: the defaults */
        RET_POLICY_VAULT = 1,   /* policy/default.json */
        RET_POLICY_VM = 2,      /* policy/vm/<vm>.json */
};

struct ret_policy {
        uint32_t retention;     /* seconds a point is kept (site-recovery thinning) */
        uint32_t app_frequency; /* seconds between app-consistent points */
        uint32_t rpo;           /* RPO threshold, seconds */
        enum ret_thin_kind thin;
        uint32_t keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly; /* RET_THIN_KEEP */
        char group[65];         /* reserved for group policies: "" */
        enum ret_policy_source source; /* out of ret_policy_get(): where it came from */
};

/* The built-in defaults (Site Recovery's) into *ret. Never fails. */
void ret_policy_default(struct ret_policy *ret);
/* The policy that applies to vm (NULL: the vault default): the VM's
 * override, else the vault default, else the built-in defaults (*ret's
 * source says which). 0, -EBADMSG a stored policy that does not parse,
 * -EPROTONOSUPPORT a newer policy format, -EINVAL bad VM name, or a
 * vault error. */
int ret_policy_get(struct store *s, const char *vm, struct ret_policy *ret);
/* The same for many VMs: vault_default is ret_policy_get(s, NULL, ...)
 * read once, so that each VM costs one read (its override) only. */
int ret_policy_get_with(struct store *s, const char *vm, const struct ret_policy *vault_default,
                        struct ret_policy *ret);
/* Store p as vm's override (vm NULL: the vault default). -EINVAL bad
 * values (retention 0, keep rules all 0), or a vault error. */
int ret_policy_set(struct store *s, const char *vm, const struct ret_policy *p);
/* p as a JSON text (malloc'd, the caller frees), the stored form. NULL
 * when out of memory. */
char *ret_policy_format(const struct ret_policy *p);
/* Parse a stored policy's text. -EBADMSG, -EPROTONOSUPPORT. */
int ret_policy_parse(const char *text, struct ret_policy *ret);

/* ---- thinning (thin.c) ----
 * Which of one VM's points a policy keeps at time now. Pure: no I/O, so
 * it is tested with synthetic timelines and a fake clock. */
enum {
        RET_KEEP_WINDOW = 1 << 0,  /* kept by the thinning table or a keep rule */
        RET_KEEP_NEWEST = 1 << 1,  /* the VM's newest point */
        RET_KEEP_NEWEST_APP = 1 << 2, /* the VM's newest app-consistent point */
        RET_KEEP_PINNED = 1 << 3,  /* held, leased or named by a failback journal */
        RET_KEEP_FUTURE = 1 << 4,  /* time after now (clock skew): never dropped */
};
struct ret_thin_point {
        time_t time;
        bool app;
        bool pinned;   /* in: held, leased, or named by a failback journal */
        unsigned keep; /* out: RET_KEEP_* bits; 0 = the point expires */
};
/* Decide keep for v[0..n), which must be sorted oldest first. The site-
 * recovery table: every point of the last 2 hours; beyond that, within
 * the retention window, the newest point of each UTC-aligned bucket of
 * 1 hour (retention up to 1 day), 2 hours (up to 7 days), or for longer
 * windows 2 hours for the first 7 days and 4 hours after; app-consistent
 * points are thinned the same way as a series of their own. The keep
 * rules: keep_last newest points, and the newest point of each of the
 * keep_hourly/daily/weekly (ISO weeks, Monday)/monthly newest UTC
 * buckets that have points, OR-ed (no retention window). Always kept:
 * the newest point, the newest app point, pinned points, points in the
 * future. */
void ret_thin(const struct ret_policy *p, struct ret_thin_point *v, size_t n, time_t now);
/* The bucket width in seconds the site-recovery table gives a point of
 * age seconds under retention (0: keep every point, UINT32_MAX: beyond
 * the window). Exposed for tests and `rpfs policy --show`. */
uint32_t ret_thin_bucket(uint32_t retention, int64_t age);

/* ---- holds and leases (hold.c) ----
 * A hold keeps a point whatever the policy, until released or until its
 * time: "holds/<vm>/<id>.json". A lease keeps a point while a reader (a
 * mount, a failback) uses it, and expires by itself when the holder stops
 * renewing it (a crashed holder pins nothing for longer than the ttl):
 * "leases/<vm>/<id>/<lease>.json". Times are the local clock's (UTC
 * seconds). See docs/FORMAT.md "Holds and leases". */
struct ret_hold {
        time_t until;      /* 0: until released */
        time_t created;
        char reason[256];
};
/* Hold point vm/id (which must exist: -ENOENT) until `until` (0: until
 * released), with a reason (NULL: none). Replaces an earlier hold. */
int ret_hold_set(struct store *s, const char *vm, const char *id, time_t until, const char *reason);
/* Release a hold. -ENOENT when the point has none. */
int ret_hold_release(struct store *s, const char *vm, const char *id);
/* The hold on vm/id into *ret. -ENOENT none, -EBADMSG unreadable. */
int ret_hold_get(struct store *s, const char *vm, const char *id, struct ret_hold *ret);
/* Whether a hold still holds at now. */
bool ret_hold_active(const struct ret_hold *h, time_t now);

#define RET_LEASE_ID_LEN 16
/* Take a lease on vm/id for ttl seconds (> 0); its ID (16 hex digits)
 * into lease_id. -ENOENT when the point does not exist (checked after the
 * lease is written, so a prune that does not see the lease cannot have
 * removed the point unseen; the lease is dropped again then). */
int ret_lease_take(struct store *s, const char *vm, const char *id, uint32_t ttl,
                   char lease_id[static RET_LEASE_ID_LEN + 1]);
/* Extend a lease to now + ttl. -ENOENT when it is gone or expired (the
 * holder must treat its point as unprotected). */
int ret_lease_renew(struct store *s, const char *vm, const char *id, const char *lease_id, uint32_t ttl);
/* Drop a lease (absent counts as dropped). */
int ret_lease_drop(struct store *s, const char *vm, const char *id, const char *lease_id);
/* Whether vm/id has a lease that has not expired at now: 1 yes, 0 no,
 * or a vault error. */
int ret_point_leased(struct store *s, const char *vm, const char *id, time_t now);

/* ---- prune of points (prune.c) ----
 * Drop the points the policy lets go. Per VM: its policy (ret_policy_get),
 * ret_thin() with held points pinned, then for every point to go: mark it
 * (gc/expiring/<vm>/<id>), look for an active lease (kept if one), remove
 * the point object, remove the mark. Only point objects are removed: the
 * blocks they named stay in the vault until garbage collection. */
struct ret_prune_item {
        const struct ret_point *point;
        unsigned keep;  /* RET_KEEP_* bits (RET_KEEP_PINNED also for a lease) */
        bool dropped;   /* removed (or, in a dry run, would be) */
};
/* Called once per point, in order; a negative return stops. */
typedef int (*ret_prune_cb)(void *userdata, const struct ret_prune_item *it);
/* Prune the VMs vms[0..n_vms) (n_vms 0: every VM) at time now. dry_run:
 * decide and report, remove nothing. *ret_dropped: points removed. 0, or
 * the first vault error (points already removed stay removed). */
int ret_prune_points(struct store *s, const char *const *vms, size_t n_vms, time_t now, bool dry_run,
                     ret_prune_cb cb, void *userdata, size_t *ret_dropped);
/* The same, then (gc not NULL) garbage collection of the whole vault
 * (ret_gc; a dry run's mark leaves out the points that would go) into
 * *gc_rep. */
int ret_prune(struct store *s, const char *const *vms, size_t n_vms, time_t now, bool dry_run, ret_prune_cb cb,
              void *userdata, size_t *ret_dropped, const struct store_gc_options *gc, struct store_gc_report *gc_rep);

/* ---- garbage collection (walk.c) ---- */
/* Call fn with the checksum of every metadata blob of disk d (in format
 * 1, its manifest chunks), in order; a negative return stops the walk
 * and is returned. The one way to enumerate them: a garbage collector
 * marks through this, never through the chunk list itself. */
int ret_disk_meta_walk(struct store *s, const struct ret_disk *d, int (*fn)(void *ud, const struct hash128 *h),
                       void *ud);
/* Collect the vault's garbage (store_gc): live are the metadata blobs and
 * non-zero blocks of every point of every VM, except the points skip[0..
 * n_skip) (a dry run's points that would go). A damaged manifest fails
 * the collection (nothing is deleted on doubt). 0 or -errno. */
int ret_gc(struct store *s, const struct store_gc_options *o, const struct ret_point *const *skip, size_t n_skip,
           struct store_gc_report *ret);
