/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Garbage collection, the deleting half: a pending record's condemned
 * packs and retired segments go once every writer session listed when
 * it was written has ended or expired, after a fresh mark: a blob that
 * became live meanwhile (a point committed by such a session) and is
 * indexed only by a retired segment is carried into a new segment, and
 * its pack stays. Order: carry segment durable, then retired segments
 * deleted, then packs, then the record (docs/FORMAT.md).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "gc_i.h"

#define DEL_BATCH 256

struct sweep {
        struct store *s;
        struct gc_record *rec;
        bool *keep;              /* per condemned pack: it stays */
        const uint8_t *live;
        uint64_t n_live, at;
        struct segment *retired;
        size_t n_retired;
        struct gc_segw segw;
        uint64_t carried, missing;
};

static int session_cb(void *ud, const char *name, uint64_t size) {
        struct gc_record *rec = ud;
        size_t n = strlen(name);
        char **nv;

        if (n < 5 || strcmp(name + n - 5, ".json") != 0)
                return 0;
        nv = realloc(rec->sessions, (rec->n_sessions + 1) * sizeof *nv);
        if (!nv)
                return -ENOMEM;
        rec->sessions = nv;
        if (!(nv[rec->n_sessions] = strdup(name)))
                return -ENOMEM;
        rec->n_sessions++;
        return 0;
}

/* 1 when every session the record waits for has ended (those that
 * expired or whose process died are removed, so that their writers
 * abort), 0 when one is alive. */
static int sessions_ended(struct store *s, struct gc_record *rec) {
        time_t now = time(NULL);
        int r;

        if (!rec->sessions_known) {
                r = store_list(s, GC_SESSION_DIR, session_cb, rec);
                if (r < 0)
                        return r;
                rec->sessions_known = true;
                r = gc_record_save(s, rec, false);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < rec->n_sessions; i++) {
                r = gc_holder_alive(s, rec->sessions[i], now, false);
                if (r < 0)
                        return r;
                if (r > 0) {
                        log_debug("gc: deletions wait for writer session %s", rec->sessions[i]);
                        return 0;
                }
        }
        for (size_t i = 0; i < rec->n_sessions; i++) {
                r = store_delete_object(s, rec->sessions[i]);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        return 1;
}

static void uncondemn(struct sweep *w, uint64_t pack) {
        size_t i = gc_u64_find(w->rec->condemned, w->rec->n_condemned, pack);

        if (i < w->rec->n_condemned)
                w->keep[i] = true;
}

/* A live blob that no segment that stays names: from a retired one. */
static int carry(struct sweep *w, const uint8_t *name) {
        struct hash128 h;
        struct blob_loc best = { 0 };

        memcpy(h.b, name, 16);
        if (!gc_find_kept(w->retired, w->n_retired, &h, &best)) {
                w->missing++; /* not in the vault at all: not ours to fix (rpfs check) */
                return 0;
        }
        uncondemn(w, best.pack_id);
        w->carried++;
        return gc_segw_add(&w->segw, &h, &best);
}

static int join_cb(void *ud, const struct hash128 *h, const struct blob_loc *locs, size_t n) {
        struct sweep *w = ud;
        int r;

        /* a pack a segment that stays names is not garbage */
        for (size_t i = 0; i < n; i++)
                uncondemn(w, locs[i].pack_id);
        while (w->at < w->n_live && memcmp(w->live + w->at * 16, h->b, 16) < 0) {
                r = carry(w, w->live + w->at * 16);
                if (r < 0)
                        return r;
                w->at++;
        }
        if (w->at < w->n_live && memcmp(w->live + w->at * 16, h->b, 16) == 0)
                w->at++;
        return 0;
}

static int delete_segments(struct sweep *w) {
        for (size_t at = 0; at < w->rec->n_retired; at += DEL_BATCH) {
                size_t m = MIN(w->rec->n_retired - at, (size_t)DEL_BATCH);
                int r = backend_del_many(w->s->b, (const char *const *)w->rec->retired + at, m);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool refusal(int r) {
        return r == -EEXIST || r == -EACCES || r == -EPERM || r == -EBUSY;
}

/* Delete the packs that stay condemned; the ones the store refuses
 * (immutability policy, legal hold: 409) go back into the record. */
static int delete_packs(struct sweep *w, uint64_t *ret_deleted) {
        struct gc_record *rec = w->rec;
        char (*names)[64] = malloc(DEL_BATCH * sizeof *names);
        const char *v[DEL_BATCH];
        uint64_t ids[DEL_BATCH];
        size_t n_refused = 0;
        int r = 0;

        if (!names)
                return -ENOMEM;
        for (size_t i = 0; i < rec->n_condemned && r >= 0;) {
                size_t m = 0;
                for (; i < rec->n_condemned && m < DEL_BATCH; i++)
                        if (!w->keep[i]) {
                                ids[m] = rec->condemned[i];
                                pack_name(ids[m], names[m], sizeof names[m]);
                                v[m] = names[m];
                                m++;
                        }
                if (m == 0)
                        break;
                r = backend_del_many(w->s->b, v, m);
                if (r < 0) {
                        /* find out which: one by one */
                        r = 0;
                        for (size_t k = 0; k < m && r >= 0; k++) {
                                int d = w->s->b->ops->del(w->s->b, v[k]);
                                if (d == -ENOENT || d == 0)
                                        (*ret_deleted)++;
                                else if (refusal(d)) {
                                        log_warn("gc: the vault refused to delete %s (%s): retried next time", v[k],
                                                 strerror(-d));
                                        rec->condemned[n_refused++] = ids[k];
                                } else
                                        r = d;
                        }
                } else
                        *ret_deleted += m;
                gc_stage(w->s, "deleting");
        }
        free(names);
        if (r < 0)
                return r;
        for (size_t i = 0; i < rec->n_retired; i++)
                free(rec->retired[i]);
        rec->n_retired = 0;
        for (size_t i = 0; i < rec->n_sessions; i++)
                free(rec->sessions[i]);
        rec->n_sessions = 0;
        rec->n_condemned = n_refused;
        return (int)MIN(n_refused, (size_t)INT32_MAX);
}

int gc_sweep(struct store *s, struct gc_record *rec, store_gc_mark_fn mark, void *ud, struct store_gc_report *rep) {
        struct sweep w = { .s = s, .rec = rec, .segw = { .fd = -1 } };
        struct store_gc_mark *live = NULL;
        struct segment *keep_segs = NULL;
        size_t n_keep = 0;
        uint64_t deleted = 0;
        int r;

        r = sessions_ended(s, rec);
        if (r <= 0)
                return r;
        gc_stage(s, "sessions");
        r = gc_run_mark(s, mark, ud, true, &live);
        if (r < 0)
                return r;
        w.live = gc_mark_names(live, &w.n_live);
        w.keep = calloc(MAX(rec->n_condemned, 1), sizeof *w.keep);
        r = w.keep ? 0 : -ENOMEM;
        if (r >= 0)
                r = store_reload_index(s, atomic_load(&s->reload_gen));
        if (r >= 0)
                r = store_gc_state_load(s);
        if (r >= 0)
                r = gc_snapshot(s, false, &keep_segs, &n_keep, NULL);
        if (r >= 0)
                r = gc_snapshot(s, true, &w.retired, &w.n_retired, NULL);
        if (r >= 0)
                r = gc_segw_init(&w.segw, s);
        if (r >= 0)
                r = gc_index_walk(keep_segs, n_keep, join_cb, &w);
        for (; r >= 0 && w.at < w.n_live; w.at++)
                r = carry(&w, w.live + w.at * 16);
        if (r >= 0)
                r = gc_segw_finish(&w.segw);
        if (r < 0)
                goto out;
        if (w.carried)
                log_info("gc: %llu blob(s) that became live again kept", (unsigned long long)w.carried);
        gc_stage(s, "carried");
        r = delete_segments(&w);
        if (r < 0)
                goto out;
        gc_stage(s, "segments-deleted");
        r = delete_packs(&w, &deleted);
        if (r < 0)
                goto out;
        rep->refused = (uint64_t)r;
        r = r > 0 ? gc_record_save(s, rec, false) : store_delete_object(s, GC_RECORD_NAME);
        if (r == -ENOENT)
                r = 0;
        if (r >= 0) {
                r = store_reload_index(s, atomic_load(&s->reload_gen));
                rep->segments_after = s->n_segs;
        }
        r = r < 0 ? r : 1;
out:
        store_gc_mark_free(live);
        free(w.keep);
        free(keep_segs);
        free(w.retired);
        gc_segw_done(&w.segw);
        return r;
}
