/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * retention: the points catalog. A recovery point is one immutable JSON
 * object "points/<vm>/<id>.json", created exclusively, so a point is
 * visible exactly when that object exists and two writers can never
 * replace each other's point. Each disk's manifest (its block checksums
 * in order) is stored as content-addressed manifest chunks in packs, so
 * consecutive points share the chunks that did not change. From format
 * version 2 the chunk list itself is a tree of content-addressed nodes
 * (tree.c) and a point names only its root, so a point object stays small
 * and a new point stores only the nodes on the paths to changed chunks.
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
#define RET_TREE_FANOUT 256   /* child checksums per manifest tree node, as written */
#define RET_TREE_FANOUT_MAX 4096 /* the most a reader accepts */

struct ret_disk {
        char name[65];
        char format[16];          /* source format, informational */
        uint64_t size;            /* virtual size in bytes */
        uint64_t n_blocks;
        uint64_t data_blocks;     /* non-zero blocks */
        size_t n_chunks;
        /* Manifest chunk checksums, in order. NULL in a point summary (out
         * of ret_points_list() for a version-2 point): ret_manifest_*,
         * ret_disk_diff and ret_disk_meta_walk read the tree then. */
        struct hash128 *chunks;
        /* The chunk tree (version-2 points): levels 0 when there is none
         * (a version-1 point, or a disk without blocks). */
        struct hash128 tree;      /* root node's checksum */
        unsigned tree_levels;     /* 1: the root lists the chunks */
        unsigned tree_fanout;     /* children per node (the last of a level may have fewer) */
};

struct ret_point {
        char vm[65];
        char id[16 + 1];
        time_t time;
        bool app;                 /* app-consistent */
        char *group;              /* replication group or NULL */
        char *onprem_from;        /* reprotect lineage: the VM runs on-prem, failed back from this point; or NULL */
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
/* Load one point, its disks' chunk lists read (from their trees) into
 * chunks. A tree node missing from the vault or damaged does not fail the
 * load: the chunks under it read as missing (-ENOENT from
 * ret_manifest_get), as a missing chunk does. -ENOENT if absent, -EBADMSG.
 * *ret owned by the caller. */
int ret_point_load(struct store *s, const char *vm, const char *id, struct ret_point **ret);
/* Whether chunk checksum ch is what ret_point_load put for chunks under a
 * missing or damaged tree node: it will never be readable (a reader that
 * retries a missing chunk need not). */
bool ret_chunk_unreadable(const struct hash128 *ch);
/* All points (of vm, or of every VM when vm is NULL), sorted by VM then
 * ID, as summaries: one read per point object, no tree read, so a
 * version-2 point's disks have chunks NULL (see struct ret_disk). *ret is
 * an array of *ret_n pointers; free with ret_points_free(). */
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
/* Store the last chunk and the chunk tree's nodes; move the chunk list
 * into d (n_chunks, chunks) and set its tree (tree, tree_levels,
 * tree_fanout). */
int ret_manifest_writer_finish(struct ret_manifest_writer *m, struct ret_disk *d);
void ret_manifest_writer_free(struct ret_manifest_writer *m);

/* Reads a disk's manifest chunk by chunk (only one chunk, and for a disk
 * without its chunk list one tree node per level, in memory). */
struct ret_manifest;
int ret_manifest_open(struct store *s, const struct ret_disk *d, struct ret_manifest **ret);
/* Checksum of block i (zero hash for an all-zero block). -ENOENT past
 * the end or a missing chunk or tree node, -EBADMSG damaged chunk or
 * node. */
int ret_manifest_get(struct ret_manifest *m, uint64_t i, struct hash128 *ret);
void ret_manifest_free(struct ret_manifest *m);

/* ---- comparisons (diff.c) ---- */
/* Whether manifest chunk ci of d holds only zero blocks (true past the
 * end; false when d is a summary without its chunk list). */
bool ret_chunk_is_zero(const struct ret_disk *d, size_t ci);
/* Called with each extent, in bytes, in order; non-zero stops the walk
 * and is returned. */
typedef int (*ret_extent_fn)(void *userdata, uint64_t start, uint64_t length);
/* The extents where disk b differs from disk a, at block granularity
 * (block_size bytes; the last one clipped to b's size), merged, in order.
 * a NULL (no earlier disk): b's non-zero blocks. Blocks past the end of a
 * disk count as zeros. Chunks with equal checksums are skipped without
 * being read, and so are equal tree subtrees (two version-2 disks of one
 * shape): a diff reads only the nodes and chunks on changed paths. 0,
 * -errno of reading a manifest chunk or tree node, or cb's value. */
int ret_disk_diff(struct store *s, const struct ret_disk *a, const struct ret_disk *b, uint32_t block_size,
                  ret_extent_fn cb, void *userdata);
/* ---- manifest trees (tree.c) ----
 * Level 1 nodes list the chunk checksums, node j covering chunks
 * [j * fanout, (j + 1) * fanout); a level L + 1 node lists level L node
 * checksums the same way; the top level is one node, the root. Nodes are
 * blobs of kind STORE_KIND_TREE. */
/* Levels of a tree over n chunks (0 for n 0). */
unsigned ret_tree_levels(size_t n, unsigned fanout);
/* Store the tree over chunks[0..n) through w (nodes the vault has are
 * not stored again); root and levels out. 0 or -errno. */
int ret_tree_store(struct store_writer *w, struct store_codec *c, const struct hash128 *chunks, size_t n,
                   unsigned fanout, struct hash128 *ret_root, unsigned *ret_levels);
/* Read d's whole chunk list from its tree: *ret malloc'd, d->n_chunks
 * entries. -ENOENT missing node, -EBADMSG damaged or misshapen node. */
int ret_tree_load(struct store *s, const struct ret_disk *d, struct hash128 **ret);
/* The checksum of chunk ci of d, read through the tree (tree_levels
 * node reads). -ENOENT past the end or a missing node, -EBADMSG. */
int ret_tree_get(struct store *s, const struct ret_disk *d, size_t ci, struct hash128 *ret);

/* ---- metadata walk (walk.c) ----
 * Call fn with the checksum of every metadata blob d needs: its tree
 * nodes (each before its children) and its manifest chunks, in order; a
 * node equal to the one before it on its level is yielded without its
 * children again. Not data blocks, not the zero hash. 0, -errno of
 * reading a node, or fn's non-zero value (which stops the walk). */
int ret_disk_meta_walk(struct store *s, const struct ret_disk *d, int (*fn)(void *ud, const struct hash128 *h),
                       void *ud);

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
        RET_KEEP_GROUP = 1 << 5,   /* another member keeps its point of this group point */
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
 * "leases/<vm>/<id>/<lease>.json". Times are UTC seconds; a hold's are
 * the local clock's, a lease's expiry is written and judged on the
 * vault's clock (store_skew: the Date of Azure's replies, the mtime of a
 * fresh file in a directory vault), so a host with a skewed clock does
 * not expire another's lease early. See docs/FORMAT.md "Holds and leases". */
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
/* Whether vm/id has a lease that has not expired at now (this host's
 * clock, judged on the vault's: now - store_skew()): 1 yes, 0 no, or a
 * vault error. */
int ret_point_leased(struct store *s, const char *vm, const char *id, time_t now);

/* ---- lease keeper (keeper.c) ----
 * The leases one process holds. Every take, renew and drop runs on the
 * keeper's own thread (renewals every ttl/3), never in the caller's: a
 * caller does not wait on, or fail because of, the vault. A failed take
 * or renew is logged and tried again (a take every 10 s at most). Lock
 * order: the keeper's lock, then none (no vault I/O under it). */
#define RET_LEASE_TTL 300 /* seconds */
/* RET_LEASE_TTL, or RPFS_LEASE_TTL from the environment (seconds, 1 to
 * 86400; for tests). */
uint32_t ret_lease_ttl(void);
struct ret_keeper;
/* The thread starts with the first ret_keeper_add() (after a fork). */
int ret_keeper_new(struct store *s, struct ret_keeper **ret);
/* Hold a lease on vm/id from now on: the keeper's thread takes it as soon
 * as it can (nothing when already held). Does no I/O: 0, -EINVAL (bad
 * names), -ENOMEM, or the thread's creation error. A point found gone or
 * being pruned is logged and let go. Any thread. */
int ret_keeper_add(struct ret_keeper *k, const char *vm, const char *id);
/* ret_keeper_add(), then wait for the first take: 0 taken, -ENOENT the
 * point is gone or being pruned, or the take's error (the keeper keeps
 * trying). For a caller that may wait on the vault (a failback run). */
int ret_keeper_take(struct ret_keeper *k, const char *vm, const char *id);
/* Stop renewing, drop every lease, free. */
void ret_keeper_free(struct ret_keeper *k);

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

/* ---- replication groups (group.c) ----
 * Members in "groups/<g>/group.json"; a group point (one point of every
 * member, one ID) is visible when its commit object
 * "groups/<g>/points/<id>.json" exists, written after every member's
 * point. A group point is complete while every member's point exists. */
struct ret_group {
        char name[65];
        size_t n_members;
        char (*members)[65];  /* sorted */
};
struct ret_group_point {
        char group[65];
        char id[POINT_ID_LEN + 1];
        time_t time;
        bool app;
        size_t n_members;
        char (*members)[65];  /* sorted */
};
/* Record group with members vms[0..n). -EEXIST it exists, -EINVAL bad or
 * repeated names. */
int ret_group_create(struct store *s, const char *group, const char *const *vms, size_t n);
/* -ENOENT no such group, -EBADMSG, -EPROTONOSUPPORT. *ret: ret_group_free(). */
int ret_group_load(struct store *s, const char *group, struct ret_group **ret);
void ret_group_free(struct ret_group *g);
bool ret_group_has(const struct ret_group *g, const char *vm);
/* Every group's name, sorted; *ret malloc'd (may be NULL with none). */
int ret_groups_list(struct store *s, char (**ret)[65], size_t *ret_n);
/* Write the commit object of group point id (exclusive: -EEXIST). Call
 * only once every member's point with that ID is committed. */
int ret_group_point_commit(struct store *s, const struct ret_group *g, const char *id, time_t t, bool app);
/* g's commit objects, sorted by ID (complete or not); free with
 * ret_group_points_free(). */
int ret_group_points_list(struct store *s, const char *group, struct ret_group_point **ret, size_t *ret_n);
void ret_group_points_free(struct ret_group_point *v, size_t n);
/* One commit object into *ret (ret->members: free()). -ENOENT, -EBADMSG. */
int ret_group_point_load(struct store *s, const char *group, const char *id, struct ret_group_point *ret);
/* Whether every member of gp has its point in v[0..n) (ret_points_list order). */
bool ret_group_point_complete(const struct ret_group_point *gp, struct ret_point *const *v, size_t n);
/* The newest complete group point ("latest", NULL), the newest complete
 * app-consistent one ("latest-app") or the complete one with an ID.
 * -ENOENT none. ret->members: free() it. */
int ret_group_point_resolve(struct store *s, const char *group, const char *spec, struct ret_group_point *ret);

/* ---- notes of maintenance runs (notes.c) ----
 * "status/<what>.json" for what "prune" or "check": when it last ran and,
 * for check, whether it found damage. */
struct ret_note {
        time_t time;
        bool damaged;
        char summary[160];
};
/* -EINVAL unknown what, or a vault error. */
int ret_note_set(struct store *s, const char *what, const struct ret_note *n);
/* -ENOENT never recorded, -EBADMSG, -EPROTONOSUPPORT. */
int ret_note_get(struct store *s, const char *what, struct ret_note *ret);
/* The same, then (gc not NULL) garbage collection of the whole vault
 * (ret_gc; a dry run's mark leaves out the points that would go) into
 * *gc_rep. */
int ret_prune(struct store *s, const char *const *vms, size_t n_vms, time_t now, bool dry_run, ret_prune_cb cb,
              void *userdata, size_t *ret_dropped, const struct store_gc_options *gc, struct store_gc_report *gc_rep);

/* ---- garbage collection (walk.c) ----
 * A garbage collector marks metadata through ret_disk_meta_walk (above),
 * never through a disk's chunk list itself. */
/* Collect the vault's garbage (store_gc): live are the metadata blobs and
 * non-zero blocks of every point of every VM, except the points skip[0..
 * n_skip) (a dry run's points that would go). A damaged manifest fails
 * the collection (nothing is deleted on doubt). 0 or -errno. */
int ret_gc(struct store *s, const struct store_gc_options *o, const struct ret_point *const *skip, size_t n_skip,
           struct store_gc_report *ret);
