/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The writer: appends encoded blobs to a pack buffer, seals packs of about
 * PACK_TARGET_SIZE, and publishes what it stored as an index segment.
 *
 * Durability order: packs are put without fsync; store_writer_flush()
 * syncs the backend once, then writes the index segment durably. A segment
 * therefore never names a pack that could be lost, and a crash before the
 * segment leaves only unreferenced packs (garbage, never damage).
 *
 * Blobs added since the last segment are kept in an open-addressing hash
 * table (at most PENDING_MAX entries, then a segment is written), so the
 * writer's memory does not grow with the disk.
 *
 * Each writer holds a session (gc/sessions/<id>.json, docs/FORMAT.md
 * "Garbage collection"), renewed as it works; a GC deletes no pack a
 * live session could have deduplicated against, and a writer whose
 * session lapsed refuses to commit (store_writer_check).
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "common.h"
#include "gc_i.h"

#define PENDING_MAX (1u << 18)
#define TAB_MIN 4096

struct pending {
        struct hash128 h;
        struct blob_loc loc;
        bool used;
};

struct store_writer {
        struct store *s;

        pthread_mutex_t lock;   /* protects tab, tab_n */
        struct pending *tab;
        size_t tab_cap, tab_n;

        /* The open pack; touched only by the adding thread. */
        uint64_t pack_id;
        uint8_t *pack;
        size_t pack_len, pack_cap;
        uint8_t *ptab;          /* pack table entries */
        size_t ptab_n, ptab_cap; /* entries */

        bool unsynced;          /* sealed packs not yet synced */
        uint64_t *unpublished;  /* sealed packs no segment names yet */
        size_t n_unpublished, cap_unpublished;
        uint64_t bytes, blobs;

        /* The session: renewed by whichever thread finds it due (from
         * store_writer_known too: a run that stores nothing still works
         * for its point). */
        char session[64];       /* gc/sessions/<id>.json */
        _Atomic int64_t expires;    /* of the session, this host's clock */
        _Atomic int64_t renewed_ms; /* now_monotonic() of the last renewal, ms */
        atomic_bool lost;       /* the session lapsed or was removed */
        atomic_bool renewing;   /* a thread is renewing it */
};

static size_t slot_of(const struct hash128 *h, size_t cap) {
        uint64_t v;
        memcpy(&v, h->b + 8, sizeof v);
        return (size_t)(v & (cap - 1));
}

static struct pending *tab_find(struct store_writer *w, const struct hash128 *h) {
        for (size_t i = slot_of(h, w->tab_cap);; i = (i + 1) & (w->tab_cap - 1)) {
                struct pending *p = &w->tab[i];
                if (!p->used || memcmp(&p->h, h, sizeof *h) == 0)
                        return p;
        }
}

/* Open the session, then read what a pending GC condemned: a GC that
 * condemned before it listed sessions is seen here, one that listed them
 * first waits for this session (docs/FORMAT.md). */
static int session_open(struct store_writer *w) {
        uint64_t id;
        int r;

        if (getrandom(&id, sizeof id, 0) != sizeof id)
                return -errno;
        snprintf(w->session, sizeof w->session, GC_SESSION_DIR "%016llx.json", (unsigned long long)id);
        int64_t expires;

        r = gc_holder_put(w->s, w->session, gc_session_ttl(), true, &expires);
        if (r < 0) {
                w->session[0] = 0;
                return r;
        }
        atomic_store(&w->expires, expires);
        atomic_store(&w->renewed_ms, (int64_t)(now_monotonic() * 1000));
        return store_gc_state_load(w->s);
}

/* Renew the session when a third of its time is gone: only while it is
 * still there and not expired by this host's clock. */
static void session_renew(struct store_writer *w, bool force) {
        uint32_t ttl = gc_session_ttl();
        _cleanup_free_ char *text = NULL;
        int64_t expires;
        int r;

        if (atomic_load(&w->lost) || !w->session[0] ||
            (!force && now_monotonic() * 1000 - (double)atomic_load(&w->renewed_ms) < ttl * 1000 / 3.0))
                return;
        if (atomic_exchange(&w->renewing, true))
                return; /* another thread is at it */
        r = store_get_object(w->s, w->session, &text, NULL);
        if (r == -ENOENT || (int64_t)time(NULL) >= atomic_load(&w->expires)) {
                log_warn("writer session %s lapsed", w->session);
                atomic_store(&w->lost, true);
        } else if (r == 0 && gc_holder_put(w->s, w->session, ttl, false, &expires) == 0) {
                atomic_store(&w->expires, expires);
                atomic_store(&w->renewed_ms, (int64_t)(now_monotonic() * 1000));
        }
        atomic_store(&w->renewing, false);
}

int store_writer_check(struct store_writer *w) {
        uint32_t margin = MIN(gc_session_ttl() / 4, 30u);

        session_renew(w, false);
        if (!w->lost && w->session[0]) {
                _cleanup_free_ char *text = NULL;
                int r = store_get_object(w->s, w->session, &text, NULL);
                if (r == -ENOENT)
                        atomic_store(&w->lost, true);
                else if (r < 0)
                        return r;
        }
        if (w->lost || (int64_t)time(NULL) + margin > w->expires)
                return -ESTALE;
        return 0;
}

int store_writer_new(struct store *s, struct store_writer **ret) {
        struct store_writer *w = calloc(1, sizeof *w);
        int r;

        if (!w)
                return -ENOMEM;
        w->s = s;
        pthread_mutex_init(&w->lock, NULL);
        w->tab_cap = TAB_MIN;
        w->tab = calloc(w->tab_cap, sizeof *w->tab);
        if (!w->tab) {
                free(w);
                return -ENOMEM;
        }
        r = session_open(w);
        if (r < 0) {
                store_writer_free(w);
                return r;
        }
        *ret = w;
        return 0;
}

void store_writer_free(struct store_writer *w) {
        if (!w)
                return;
        /* Packs that no index segment names are invisible to every reader
         * and every other writer: an abandoned run removes them, so failed
         * runs leave the vault as it was. */
        for (size_t at = 0; at < w->n_unpublished;) {
                char names[256][64];
                const char *v[256];
                size_t m = MIN(w->n_unpublished - at, ELEMENTSOF(v));
                for (size_t i = 0; i < m; i++) {
                        pack_name(w->unpublished[at + i], names[i], sizeof names[i]);
                        v[i] = names[i];
                }
                (void)backend_del_many(w->s->b, v, m);
                at += m;
        }
        free(w->unpublished);
        if (w->session[0])
                (void)store_delete_object(w->s, w->session);
        pthread_mutex_destroy(&w->lock);
        free(w->tab);
        free(w->pack);
        free(w->ptab);
        free(w);
}

bool store_writer_known(struct store_writer *w, const struct hash128 *h) {
        struct hash128 name;
        bool found;

        session_renew(w, false);
        if (hash_is_zero(h))
                return true;
        store_blob_name(w->s, h, &name);
        if (store_lookup_live(w->s, &name, NULL) == 0)
                return true;
        pthread_mutex_lock(&w->lock);
        found = tab_find(w, &name)->used;
        pthread_mutex_unlock(&w->lock);
        return found;
}

/* Room for need bytes in the pack buffer, keeping its pack_len bytes. The
 * buffer is tens of MiB, touched once per pack: from alloc_large (huge
 * pages), a few page faults instead of thousands. */
static int pack_reserve(struct store_writer *w, size_t need) {
        size_t n;
        uint8_t *nb;

        if (need <= w->pack_cap)
                return 0;
        n = MAX(need, w->pack_cap * 2);
        nb = alloc_large(n);
        if (!nb)
                return -ENOMEM;
        if (w->pack_len)
                memcpy(nb, w->pack, w->pack_len);
        free(w->pack);
        w->pack = nb;
        w->pack_cap = n;
        return 0;
}

static int pack_start(struct store_writer *w) {
        int r;

        if (getrandom(&w->pack_id, sizeof w->pack_id, 0) != sizeof w->pack_id)
                return -errno;
        r = pack_reserve(w, PACK_TARGET_SIZE + (1u << 20));
        if (r < 0)
                return r;
        pack_header_encode(w->pack);
        w->pack_len = PACK_HDR_SIZE;
        w->ptab_n = 0;
        return 0;
}

static int pack_seal(struct store_writer *w) {
        size_t tlen = w->ptab_n * PACK_ENTRY_SIZE;
        uint64_t table_off = w->pack_len;
        char name[64];
        int r;

        if (w->pack_len == 0)
                return 0;
        r = pack_reserve(w, w->pack_len + tlen + PACK_FOOTER_SIZE);
        if (r < 0)
                return r;
        memcpy(w->pack + w->pack_len, w->ptab, tlen);
        w->pack_len += tlen;
        pack_footer_encode(w->pack + w->pack_len, table_off, (uint32_t)w->ptab_n, store_hash64(w->ptab, tlen));
        w->pack_len += PACK_FOOTER_SIZE;

        if (w->n_unpublished == w->cap_unpublished) {
                size_t ncap = w->cap_unpublished ? 2 * w->cap_unpublished : 16;
                uint64_t *n = realloc(w->unpublished, ncap * sizeof *n);
                if (!n)
                        return -ENOMEM;
                w->unpublished = n;
                w->cap_unpublished = ncap;
        }
        pack_name(w->pack_id, name, sizeof name);
        r = w->s->b->ops->put(w->s->b, name, w->pack, w->pack_len, BACKEND_PUT_NOSYNC | BACKEND_PUT_EXCLUSIVE);
        if (r < 0)
                return r;
        w->unpublished[w->n_unpublished++] = w->pack_id;
        w->unsynced = true;
        w->pack_len = 0;
        w->ptab_n = 0;
        return 0;
}

/* Double the table when half full (lock held). The table starts small so
 * that a run storing little touches little memory. */
static int tab_grow(struct store_writer *w) {
        struct pending *old = w->tab, *nt;
        size_t old_cap = w->tab_cap;

        if (2 * (w->tab_n + 1) < w->tab_cap)
                return 0;
        nt = calloc(2 * old_cap, sizeof *nt);
        if (!nt)
                return -ENOMEM;
        w->tab = nt;
        w->tab_cap = 2 * old_cap;
        for (size_t i = 0; i < old_cap; i++)
                if (old[i].used)
                        *tab_find(w, &old[i].h) = old[i];
        free(old);
        return 0;
}

int store_writer_add(struct store_writer *w, const struct hash128 *plain, const void *enc, size_t len) {
        struct hash128 name; /* what pack tables and the index list */

        store_blob_name(w->s, plain, &name);
        return store_writer_add_stored(w, &name, enc, len);
}

int store_writer_add_stored(struct store_writer *w, const struct hash128 *h, const void *enc, size_t len) {
        struct pending *p;
        uint8_t *e;
        int r;

        if (len < BLOB_HDR_SIZE || len > UINT32_MAX)
                return -EINVAL;
        pthread_mutex_lock(&w->lock);
        r = tab_grow(w);
        if (r < 0) {
                pthread_mutex_unlock(&w->lock);
                return r;
        }
        p = tab_find(w, h);
        pthread_mutex_unlock(&w->lock);
        if (p->used)
                return 0;

        if (w->pack_len == 0) {
                r = pack_start(w);
                if (r < 0)
                        return r;
        }
        r = pack_reserve(w, w->pack_len + len);
        if (r < 0)
                return r;
        r = array_reserve(&w->ptab, &w->ptab_cap, w->ptab_n + 1, PACK_ENTRY_SIZE);
        if (r < 0)
                return r;

        e = w->ptab + w->ptab_n++ * PACK_ENTRY_SIZE;
        pack_entry_encode(e, h, w->pack_len, (uint32_t)len, get_le32((const uint8_t *)enc + 4));

        pthread_mutex_lock(&w->lock);
        p->h = *h;
        p->loc = (struct blob_loc){ w->pack_id, w->pack_len, (uint32_t)len, get_le32((const uint8_t *)enc + 4) };
        p->used = true;
        w->tab_n++;
        pthread_mutex_unlock(&w->lock);

        memcpy(w->pack + w->pack_len, enc, len);
        w->pack_len += len;
        w->bytes += len;
        w->blobs++;

        if (w->pack_len >= PACK_TARGET_SIZE) {
                session_renew(w, false);
                r = pack_seal(w);
                if (r < 0)
                        return r;
        }
        if (w->tab_n >= PENDING_MAX) {
                r = store_writer_flush(w);
                if (r < 0)
                        return r;
        }
        return 1;
}

static int cmp_pending(const void *a, const void *b) {
        return memcmp(((const struct pending *)a)->h.b, ((const struct pending *)b)->h.b, STORE_HASH_SIZE);
}

/* Write the pending entries as one sorted segment. */
static int write_segment(struct store_writer *w) {
        _cleanup_free_ struct pending *v = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t n = 0, len;
        uint32_t fan[256] = { 0 };
        uint64_t id;
        char name[64];
        uint8_t *p;
        int r;

        pthread_mutex_lock(&w->lock);
        v = malloc(MAX(w->tab_n, 1) * sizeof *v);
        if (v)
                for (size_t i = 0; i < w->tab_cap; i++)
                        if (w->tab[i].used)
                                v[n++] = w->tab[i];
        pthread_mutex_unlock(&w->lock);
        if (!v)
                return -ENOMEM;
        if (n == 0) {
                w->n_unpublished = 0;
                return 0;
        }
        qsort(v, n, sizeof *v, cmp_pending);

        len = IDX_HDR_SIZE + IDX_FANOUT_SIZE + n * IDX_ENTRY_SIZE + IDX_FOOTER_SIZE;
        buf = calloc(1, len);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, IDX_MAGIC, 8);
        put_le32(buf + 8, IDX_VERSION);
        put_le32(buf + 12, IDX_ENTRY_SIZE);
        put_le64(buf + 16, n);
        p = buf + IDX_HDR_SIZE + IDX_FANOUT_SIZE;
        for (size_t i = 0; i < n; i++, p += IDX_ENTRY_SIZE) {
                idx_entry_encode(p, &v[i].h, &v[i].loc);
                fan[v[i].h.b[0]]++;
        }
        for (unsigned i = 0, sum = 0; i < 256; i++) {
                sum += fan[i];
                put_le32(buf + IDX_HDR_SIZE + 4 * i, sum);
        }
        put_le64(p, store_hash64(buf, (size_t)(p - buf)));
        memcpy(p + 8, IDX_END_MAGIC, 8);

        if (getrandom(&id, sizeof id, 0) != sizeof id)
                return -errno;
        snprintf(name, sizeof name, "index/%016llx.idx", (unsigned long long)id);
        r = w->s->b->ops->put(w->s->b, name, buf, len, BACKEND_PUT_EXCLUSIVE);
        if (r < 0)
                return r;
        w->n_unpublished = 0;
        r = store_add_segment(w->s, name);
        if (r < 0)
                return r;

        pthread_mutex_lock(&w->lock);
        {
                struct pending *nt = calloc(TAB_MIN, sizeof *nt);
                if (nt) {
                        free(w->tab);
                        w->tab = nt;
                        w->tab_cap = TAB_MIN;
                } else
                        memset(w->tab, 0, w->tab_cap * sizeof *w->tab);
        }
        w->tab_n = 0;
        pthread_mutex_unlock(&w->lock);
        return 0;
}

int store_writer_flush(struct store_writer *w) {
        int r;

        session_renew(w, false);
        if (w->lost)
                return -ESTALE;
        r = pack_seal(w);
        if (r < 0)
                return r;
        if (w->unsynced) {
                r = w->s->b->ops->sync(w->s->b);
                if (r < 0)
                        return r;
                w->unsynced = false;
        }
        return write_segment(w);
}

void store_writer_stats(const struct store_writer *w, uint64_t *ret_bytes, uint64_t *ret_blobs) {
        if (ret_bytes)
                *ret_bytes = w->bytes;
        if (ret_blobs)
                *ret_blobs = w->blobs;
}
