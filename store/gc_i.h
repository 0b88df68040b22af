/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private to the garbage collector (gc.c, gc-sweep.c, gc-mark.c,
 * gc-state.c). The protocol is docs/FORMAT.md "Garbage collection".
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store_i.h"

/* ---- the live set (gc-mark.c) ---- */
/* Sort n 16-byte names in place (memcmp order), no extra memory. */
void gc_sort16(uint8_t *v, size_t n);
/* Drop repeats from sorted v[0..n); the new count. */
size_t gc_unique16(uint8_t *v, size_t n);
/* Renew s's GC lock (gc_lock_renew_due) as names are added. */
void store_gc_mark_renew_lock(struct store_gc_mark *m, struct store *s);
/* The sorted, unique names of a finished mark (m->map), and how many. */
const uint8_t *gc_mark_names(const struct store_gc_mark *m, uint64_t *ret_n);

/* ---- a streamed index segment (gc-mark.c) ---- */
/* Entries appended in hash order go to a temporary file; finishing puts
 * the segment (durably) and starts a new one. At most GC_SEG_MAX entries
 * a segment. */
#define GC_SEG_MAX (1u << 22)
struct gc_segw {
        struct store *s;
        int fd;
        uint64_t count;
        uint32_t fan[256];
        uint8_t *buf;   /* entries waiting to be written */
        size_t n_buf;
        uint64_t written_bytes, segments;
        char **names;   /* segments written */
        size_t n_names;
};
int gc_segw_init(struct gc_segw *w, struct store *s);
int gc_segw_add(struct gc_segw *w, const struct hash128 *h, const struct blob_loc *loc);
/* Put what is pending as a segment (nothing when empty). */
int gc_segw_finish(struct gc_segw *w);
void gc_segw_done(struct gc_segw *w);

/* ---- a k-way merge of index segments (gc-mark.c) ---- */
/* Calls fn once per distinct hash of segs[0..n), in hash order, with
 * every location of it (one per segment that has it, at most n). A
 * negative return stops the walk and is returned. */
typedef int (*gc_walk_fn)(void *ud, const struct hash128 *h, const struct blob_loc *locs, size_t n_locs);
int gc_index_walk(const struct segment *segs, size_t n, gc_walk_fn fn, void *ud);
/* The location a GC keeps of a blob found at locs[0..n): the one with
 * the smallest (pack, offset). */
const struct blob_loc *gc_choose(const struct blob_loc *locs, size_t n);
/* The same rule over segs[0..n) for one blob h: false when none has it. */
bool gc_find_kept(const struct segment *segs, size_t n, const struct hash128 *h, struct blob_loc *ret);

/* ---- state shared with writers (gc-state.c) ---- */
/* The pending GC record ("gc/record.json"). */
struct gc_record {
        char **retired;        /* index segments to delete */
        size_t n_retired;
        uint64_t *condemned;   /* packs to delete, sorted */
        size_t n_condemned;
        char **sessions;       /* writer sessions to wait for */
        size_t n_sessions;
        bool sessions_known;   /* false: not listed yet */
        int64_t created;
};
#define GC_RECORD_NAME "gc/record.json"
#define GC_LOCK_NAME "gc/lock.json"
#define GC_SESSION_DIR "gc/sessions/"
void gc_record_free(struct gc_record *r);
/* -ENOENT none, -EBADMSG unreadable. */
int gc_record_load(struct store *s, struct gc_record *ret);
int gc_record_save(struct store *s, const struct gc_record *r, bool exclusive);
bool gc_u64_in(const uint64_t *v, size_t n, uint64_t x);
/* The index of x in sorted v[0..n), or n when it is not there. */
size_t gc_u64_find(const uint64_t *v, size_t n, uint64_t x);

/* A holder object (sessions, the GC lock): {"format":1, "expires":T,
 * "host":..., "pid":...}. */
int gc_holder_put(struct store *s, const char *name, uint32_t ttl, bool exclusive, int64_t *ret_expires);
/* Whether the holder stored at name still counts at now: 1 yes, 0 no
 * (absent, expired by more than the grace, or a dead process of this
 * host), or -errno. pid_keeps: a running process of this host counts
 * whatever its expiry (the lock: a long mark is not taken over). */
int gc_holder_alive(struct store *s, const char *name, time_t now, bool pid_keeps);
/* Renew the GC lock when a third of its time has passed since the last
 * renewal (from long loops: the mark). */
void gc_lock_renew_due(struct store *s);
/* Seconds a session or lock lives without renewal (RPFS_GC_SESSION_TTL). */
uint32_t gc_session_ttl(void);
/* RPFS_GC_CRASH_AT=stage: kill the process with SIGKILL at that stage. */
void gc_crash_point(const char *stage);

/* Load the pending record's retired segments and condemned packs into s
 * (what writers must not deduplicate against). Absent: none. */
int store_gc_state_load(struct store *s);

/* ---- shared by gc.c and gc-sweep.c ---- */
enum { GC_KEEP = 0, GC_DELETE = 1, GC_REWRITE = 2 };
struct gc_pack {
        uint64_t id, size, live_bytes, live_blobs;
        uint64_t blob_bytes; /* of every blob the index places in it */
        int fate;
        bool indexed;  /* named by a segment (sweep) */
};
struct gc_packs {
        struct gc_pack *v; /* sorted by id */
        size_t n, cap;
};
/* Every pack of the vault (a listing of packs/). */
int gc_packs_list(struct store *s, struct gc_packs *ret);
struct gc_pack *gc_packs_find(const struct gc_packs *p, uint64_t id);
/* Copies of the mapped segments whose retired flag is `retired` (valid
 * until the next reload), their total size. free() *ret. */
int gc_snapshot(struct store *s, bool retired, struct segment **ret, size_t *ret_n, uint64_t *ret_bytes);
/* A fresh live set through mark (lock_held: renewing the GC lock). */
int gc_run_mark(struct store *s, store_gc_mark_fn mark, void *ud, bool lock_held, struct store_gc_mark **ret);
/* A named stage: the crash hook, and the GC lock renewed. */
void gc_stage(struct store *s, const char *stage);
/* Finish the pending collection rec: 1 done, 0 deferred (a writer
 * session may still use what it condemned), or -errno. */
int gc_sweep(struct store *s, struct gc_record *rec, store_gc_mark_fn mark, void *ud, struct store_gc_report *rep);
