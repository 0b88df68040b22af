/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Garbage collection, the planning half: mark the live set, merge-join it
 * against the index for each pack's live and dead bytes, rewrite the
 * packs mostly dead, write merged segments of only live entries, and
 * condemn (gc/record.json) the packs and segments to delete. gc-sweep.c
 * deletes them once no writer session can still rely on them. The
 * protocol and its race analysis: docs/FORMAT.md "Garbage collection".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "gc_i.h"

/* ---- packs ---- */

static int cmp_pack(const void *a, const void *b) {
        uint64_t x = ((const struct gc_pack *)a)->id, y = ((const struct gc_pack *)b)->id;
        return x < y ? -1 : x > y;
}

static int pack_cb(void *ud, const char *name, uint64_t size) {
        struct gc_packs *p = ud;
        const char *base = strrchr(name, '/');
        char hex[17];
        uint8_t raw[8];

        base = base ? base + 1 : name;
        if (strlen(base) != 21 || strcmp(base + 16, ".pack") != 0)
                return 0;
        memcpy(hex, base, 16);
        hex[16] = 0;
        if (hex_decode(hex, raw, 8) < 0)
                return 0;
        if (array_reserve(&p->v, &p->cap, p->n + 1, sizeof *p->v) < 0)
                return -ENOMEM;
        p->v[p->n++] = (struct gc_pack){ .id = strtoull(base, NULL, 16), .size = size };
        return 0;
}

int gc_packs_list(struct store *s, struct gc_packs *ret) {
        int r;

        *ret = (struct gc_packs){ 0 };
        r = s->b->ops->list(s->b, "packs/", pack_cb, ret);
        if (r < 0) {
                free(ret->v);
                *ret = (struct gc_packs){ 0 };
                return r;
        }
        qsort(ret->v, ret->n, sizeof *ret->v, cmp_pack);
        return 0;
}

struct gc_pack *gc_packs_find(const struct gc_packs *p, uint64_t id) {
        struct gc_pack key = { .id = id };
        return p->n ? bsearch(&key, p->v, p->n, sizeof key, cmp_pack) : NULL;
}

int gc_snapshot(struct store *s, bool retired, struct segment **ret, size_t *ret_n, uint64_t *ret_bytes) {
        struct segment *v;
        size_t n = 0;
        uint64_t bytes = 0;

        pthread_rwlock_rdlock(&s->idx_lock);
        v = calloc(MAX(s->n_segs, 1), sizeof *v);
        for (size_t i = 0; v && i < s->n_segs; i++)
                if (s->segs[i].retired == retired) {
                        v[n++] = s->segs[i];
                        bytes += s->segs[i].map_len;
                }
        pthread_rwlock_unlock(&s->idx_lock);
        if (!v)
                return -ENOMEM;
        *ret = v;
        *ret_n = n;
        if (ret_bytes)
                *ret_bytes = bytes;
        return 0;
}

int gc_run_mark(struct store *s, store_gc_mark_fn mark, void *ud, bool lock_held, struct store_gc_mark **ret) {
        struct store_gc_mark *m;
        int r = store_gc_mark_new(s, &m);

        if (r < 0)
                return r;
        if (lock_held)
                store_gc_mark_renew_lock(m, s);
        r = mark(ud, m);
        if (r >= 0)
                r = store_gc_mark_finish(m);
        if (r < 0) {
                store_gc_mark_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

static _Thread_local double lock_renewed;

void gc_stage(struct store *s, const char *stage) {
        gc_crash_point(stage);
        (void)gc_holder_put(s, GC_LOCK_NAME, gc_session_ttl(), false, NULL);
        lock_renewed = now_monotonic();
}

void gc_lock_renew_due(struct store *s) {
        if (now_monotonic() - lock_renewed < gc_session_ttl() / 3.0)
                return;
        (void)gc_holder_put(s, GC_LOCK_NAME, gc_session_ttl(), false, NULL);
        lock_renewed = now_monotonic();
}

/* ---- the plan ---- */

struct plan {
        struct store *s;
        const struct store_gc_options *o;
        struct store_gc_report *rep;
        struct store_gc_mark *live;
        struct gc_packs packs;
        struct segment *segs;
        size_t n_segs;
        uint64_t seg_bytes, kept_entries;
        const struct gc_record *pending; /* a dry run's view of a pending GC */
        struct gc_segw segw;
};

static bool is_live(const struct plan *p, const struct hash128 *h) {
        return store_gc_mark_contains(p->live, h);
}

/* Pass 1: live bytes per pack (each live blob counted once, where GC
 * keeps it). */
static int count_cb(void *ud, const struct hash128 *h, const struct blob_loc *locs, size_t n) {
        struct plan *p = ud;
        const struct blob_loc *c = gc_choose(locs, n);
        struct gc_pack *pk;

        for (size_t i = 0; i < n; i++)
                if ((pk = gc_packs_find(&p->packs, locs[i].pack_id)))
                        pk->blob_bytes += locs[i].len;
        if (!is_live(p, h)) {
                p->rep->dead_blobs += n;
                for (size_t i = 0; i < n; i++)
                        p->rep->dead_bytes += locs[i].len;
                return 0;
        }
        p->rep->live_blobs++;
        p->rep->live_bytes += c->len;
        p->rep->dead_blobs += n - 1;
        for (size_t i = 0; i < n; i++)
                if (&locs[i] != c)
                        p->rep->dead_bytes += locs[i].len;
        pk = gc_packs_find(&p->packs, c->pack_id);
        if (pk) {
                pk->live_bytes += c->len;
                pk->live_blobs++;
        }
        return 0;
}

static void decide(struct plan *p) {
        for (size_t i = 0; i < p->packs.n; i++) {
                struct gc_pack *pk = &p->packs.v[i];
                /* the dead share of its blobs (the table and header are
                 * overhead, not garbage) */
                double dead = pk->blob_bytes ? (double)(pk->blob_bytes - MIN(pk->live_bytes, pk->blob_bytes)) /
                                                       (double)pk->blob_bytes
                                             : 0;
                uint64_t rewritten = PACK_HDR_SIZE + PACK_FOOTER_SIZE + pk->live_bytes +
                                     (uint64_t)PACK_ENTRY_SIZE * pk->live_blobs;

                p->rep->packs++;
                p->rep->pack_bytes += pk->size;
                if (p->pending && gc_u64_in(p->pending->condemned, p->pending->n_condemned, pk->id))
                        pk->fate = GC_DELETE;
                else if (pk->live_blobs == 0)
                        pk->fate = GC_DELETE;
                else if (dead > p->o->max_unused)
                        pk->fate = GC_REWRITE;
                else
                        pk->fate = GC_KEEP;
                if (pk->fate == GC_DELETE) {
                        p->rep->packs_deleted++;
                        p->rep->freed_bytes += pk->size;
                } else if (pk->fate == GC_REWRITE) {
                        p->rep->packs_rewritten++;
                        p->rep->bytes_copied += pk->live_bytes;
                        p->rep->freed_bytes += pk->size - MIN(rewritten, pk->size);
                } else
                        p->kept_entries += pk->live_blobs;
        }
}

/* Whether (pack, offset) is where GC keeps live blob h. */
static bool chosen_here(const struct plan *p, const struct hash128 *h, uint64_t pack, uint64_t off) {
        struct blob_loc best = { 0 };

        return gc_find_kept(p->segs, p->n_segs, h, &best) && best.pack_id == pack && best.offset == off;
}

/* Copy the live blobs of one pack into the writer. */
static int rewrite_pack(struct plan *p, struct store_writer *w, uint64_t id) {
        _cleanup_free_ char *data = NULL;
        struct pack_table t;
        size_t len;
        char name[64];
        int r;

        pack_name(id, name, sizeof name);
        r = p->s->b->ops->get(p->s->b, name, &data, &len);
        if (r < 0)
                return r;
        r = store_pack_table((const uint8_t *)data, len, &t);
        if (r < 0)
                return r;
        for (uint32_t i = 0; i < t.count; i++) {
                struct hash128 h;
                struct blob_loc loc;

                store_pack_entry(&t, i, &h, &loc);
                if (!is_live(p, &h) || !chosen_here(p, &h, id, loc.offset))
                        continue;
                r = store_writer_add_stored(w, &h, data + loc.offset, loc.len);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int rewrite(struct plan *p) {
        struct store_writer *w = NULL;
        int r = 0;

        if (p->rep->packs_rewritten == 0)
                return 0;
        r = store_writer_new(p->s, &w);
        for (size_t i = 0; r >= 0 && i < p->packs.n; i++)
                if (p->packs.v[i].fate == GC_REWRITE)
                        r = rewrite_pack(p, w, p->packs.v[i].id);
        if (r >= 0)
                r = store_writer_flush(w);
        store_writer_free(w);
        return r < 0 ? r : 0;
}

/* Pass 2: the merged segment, the live entries in packs that stay (the
 * rewritten ones are in the writer's own segment). */
static int merge_cb(void *ud, const struct hash128 *h, const struct blob_loc *locs, size_t n) {
        struct plan *p = ud;
        const struct blob_loc *c;
        struct gc_pack *pk;

        if (!is_live(p, h))
                return 0;
        c = gc_choose(locs, n);
        pk = gc_packs_find(&p->packs, c->pack_id);
        if (pk && pk->fate != GC_KEEP)
                return 0;
        return gc_segw_add(&p->segw, h, c);
}

static int condemn(struct plan *p) {
        struct gc_record rec = { .created = time(NULL) };
        _cleanup_free_ char **names = calloc(MAX(p->n_segs, 1), sizeof *names);
        _cleanup_free_ uint64_t *ids = calloc(MAX(p->packs.n, 1), sizeof *ids);

        if (!names || !ids)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_segs; i++)
                names[i] = p->segs[i].name;
        for (size_t i = 0; i < p->packs.n; i++)
                if (p->packs.v[i].fate != GC_KEEP)
                        ids[rec.n_condemned++] = p->packs.v[i].id;
        rec.retired = names;
        rec.n_retired = p->n_segs;
        rec.condemned = ids;
        return gc_record_save(p->s, &rec, true);
}

/* Whether there is anything worth doing: a pack to go, or many segments. */
static bool worth_it(const struct plan *p) {
        return p->rep->packs_deleted || p->rep->packs_rewritten || p->n_segs > 8;
}

/* A new collection: mark, count, decide; then (unless a dry run)
 * rewrite, merge, condemn. */
static int plan_run(struct plan *p, store_gc_mark_fn mark, void *ud) {
        uint64_t estimate;
        int r;

        r = gc_run_mark(p->s, mark, ud, !p->o->dry_run, &p->live);
        if (r < 0)
                return r;
        if (!p->o->dry_run)
                gc_stage(p->s, "marked");
        r = gc_packs_list(p->s, &p->packs);
        if (r < 0)
                return r;
        /* the segments as they are now (after the mark: its reads may
         * have reloaded the index) */
        r = store_reload_index(p->s, atomic_load(&p->s->reload_gen));
        if (r < 0)
                return r;
        r = gc_snapshot(p->s, false, &p->segs, &p->n_segs, &p->seg_bytes);
        if (r < 0)
                return r;
        p->rep->segments = p->n_segs;
        p->rep->segment_bytes = p->seg_bytes;
        r = gc_index_walk(p->segs, p->n_segs, count_cb, p);
        if (r < 0)
                return r;
        decide(p);
        estimate = (uint64_t)(IDX_HDR_SIZE + IDX_FANOUT_SIZE + IDX_FOOTER_SIZE) * 2 +
                   IDX_ENTRY_SIZE * (p->kept_entries + p->rep->live_blobs - p->kept_entries);
        if (!worth_it(p)) {
                p->rep->freed_bytes = 0;
                p->rep->segments_after = p->n_segs;
                return 0;
        }
        /* the segments merged, less the new ones' size */
        p->rep->freed_bytes += p->seg_bytes - MIN(estimate, p->seg_bytes);
        p->rep->segments_after = 1 + (p->rep->packs_rewritten > 0);
        if (p->o->dry_run)
                return 0;
        r = rewrite(p);
        if (r < 0)
                return r;
        gc_stage(p->s, "rewritten");
        r = gc_segw_init(&p->segw, p->s);
        if (r >= 0)
                r = gc_index_walk(p->segs, p->n_segs, merge_cb, p);
        if (r >= 0)
                r = gc_segw_finish(&p->segw);
        if (r < 0)
                return r;
        gc_stage(p->s, "merged");
        r = condemn(p);
        if (r < 0)
                return r;
        gc_stage(p->s, "condemned");
        return 1;
}

static void plan_free(struct plan *p) {
        store_gc_mark_free(p->live);
        free(p->packs.v);
        free(p->segs);
        gc_segw_done(&p->segw);
}

/* The vault's GC lock: 0 taken, -EBUSY another GC holds it. */
static int lock_take(struct store *s) {
        int r = gc_holder_put(s, GC_LOCK_NAME, gc_session_ttl(), true, NULL);

        if (r == -EEXIST) {
                int alive = gc_holder_alive(s, GC_LOCK_NAME, time(NULL), true);
                if (alive < 0)
                        return alive;
                if (alive)
                        return -EBUSY;
                log_info("gc: taking over the lock of a GC that ended");
                (void)store_delete_object(s, GC_LOCK_NAME);
                r = gc_holder_put(s, GC_LOCK_NAME, gc_session_ttl(), true, NULL);
                if (r == -EEXIST)
                        return -EBUSY;
        }
        return r;
}

/* Finish what a pending record condemned. 1 nothing pending any more,
 * 0 deferred, -errno. */
static int finish_pending(struct store *s, store_gc_mark_fn mark, void *ud, struct store_gc_report *rep) {
        struct gc_record rec;
        int r = gc_record_load(s, &rec);

        if (r == -ENOENT)
                return 1;
        if (r < 0)
                return r;
        r = gc_sweep(s, &rec, mark, ud, rep);
        gc_record_free(&rec);
        return r;
}

int store_gc(struct store *s, const struct store_gc_options *o, store_gc_mark_fn mark, void *userdata,
             struct store_gc_report *ret) {
        struct plan p = { .s = s, .o = o, .rep = ret, .segw = { .fd = -1 } };
        struct gc_record pending = { 0 };
        bool have_pending = false;
        int r;

        *ret = (struct store_gc_report){ 0 };
        if (o->dry_run) {
                r = gc_record_load(s, &pending);
                if (r < 0 && r != -ENOENT)
                        return r;
                have_pending = r == 0;
                p.pending = have_pending ? &pending : NULL;
                r = store_gc_state_load(s);
                if (r >= 0)
                        r = plan_run(&p, mark, userdata);
                plan_free(&p);
                gc_record_free(&pending);
                return r < 0 ? r : 0;
        }
        r = lock_take(s);
        if (r == -EBUSY) {
                ret->busy = true;
                return 0;
        }
        if (r < 0)
                return r;
        {
                /* a collection left pending by an earlier run first */
                struct store_gc_report sw = { 0 };
                r = finish_pending(s, mark, userdata, &sw);
                ret->refused = sw.refused;
        }
        if (r == 0)
                ret->deferred = true;
        else if (r > 0) {
                r = store_gc_state_load(s);
                if (r >= 0)
                        r = plan_run(&p, mark, userdata);
                if (r > 0) {
                        struct store_gc_report sw = { 0 };
                        r = finish_pending(s, mark, userdata, &sw);
                        ret->deferred = r == 0;
                        ret->refused += sw.refused;
                        if (r > 0)
                                ret->segments_after = sw.segments_after;
                }
        }
        plan_free(&p);
        (void)store_delete_object(s, GC_LOCK_NAME);
        return r < 0 ? r : 0;
}
