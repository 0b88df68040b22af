/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The vault's structure checked (rpfs check): every index segment listed
 * maps (header, size) and its XXH3-64 checksum holds; every pack an index
 * entry names exists, and its header, footer and table (checksum, entry
 * bounds) hold (docs/FORMAT.md "Packs", "Index segments"). Only headers,
 * footers and tables are read, never the blobs: a pack costs three ranged
 * reads. What is damaged is then asked per block (store_verify_block), so
 * that the caller can name the points a damaged object breaks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "format_i.h"
#include "store_i.h"

struct vpack {
        uint64_t id, size;      /* size: 0 until listed */
        uint64_t table_off;     /* 0: unknown (missing or damaged) */
        const char *problem;    /* NULL: whole */
        bool listed, named;
};

struct store_verify {
        struct store *s;
        struct vpack *packs;    /* open addressing on id (id 0 never used: slot free) */
        size_t cap, n;
        size_t *bad_segs;       /* indices into s->segs (only ever appended to) */
        size_t n_bad_segs;
        uint64_t segments, n_packs, damaged;
};

static struct vpack *pack_slot(struct store_verify *v, uint64_t id) {
        size_t i = (size_t)(id * 0x9E3779B97F4A7C15ull) & (v->cap - 1);

        while (v->packs[i].id && v->packs[i].id != id)
                i = (i + 1) & (v->cap - 1);
        return &v->packs[i];
}

/* The pack id's record, made when new (NULL: out of memory). */
static struct vpack *pack_get(struct store_verify *v, uint64_t id) {
        struct vpack *p;

        if (id == 0)
                id = ~0ull; /* not a pack ID a writer makes; kept apart from "free" */
        if ((v->n + 1) * 2 > v->cap) {
                struct vpack *old = v->packs;
                size_t ocap = v->cap;

                v->cap = MAX(v->cap * 2, (size_t)1024);
                v->packs = calloc(v->cap, sizeof *v->packs);
                if (!v->packs) {
                        v->packs = old;
                        v->cap = ocap;
                        return NULL;
                }
                for (size_t i = 0; i < ocap; i++)
                        if (old[i].id)
                                *pack_slot(v, old[i].id) = old[i];
                free(old);
        }
        p = pack_slot(v, id);
        if (!p->id) {
                p->id = id;
                v->n++;
        }
        return p;
}

static const struct vpack *pack_find(const struct store_verify *v, uint64_t id) {
        size_t i;

        if (!v->cap)
                return NULL;
        if (id == 0)
                id = ~0ull;
        i = (size_t)(id * 0x9E3779B97F4A7C15ull) & (v->cap - 1);
        while (v->packs[i].id && v->packs[i].id != id)
                i = (i + 1) & (v->cap - 1);
        return v->packs[i].id ? &v->packs[i] : NULL;
}

struct list_ctx {
        struct store_verify *v;
        store_damage_cb cb;
        void *userdata;
        int err;
};

static void damage(struct list_ctx *c, const char *object, const char *problem) {
        c->v->damaged++;
        if (c->cb)
                c->cb(c->userdata, object, problem);
}

/* "packs/ab/<16 hex>.pack" into its ID. */
static bool pack_id_of(const char *name, uint64_t *ret) {
        const char *b = strrchr(name, '/');
        char *end;

        if (!b || strncmp(name, "packs/", 6) != 0 || strlen(b + 1) != 21 || strcmp(b + 17, ".pack") != 0)
                return false;
        *ret = strtoull(b + 1, &end, 16);
        return end == b + 17;
}

static int list_pack_cb(void *userdata, const char *name, uint64_t size) {
        struct list_ctx *c = userdata;
        struct vpack *p;
        uint64_t id;

        if (!pack_id_of(name, &id))
                return 0;
        p = pack_get(c->v, id);
        if (!p)
                return -ENOMEM;
        p->listed = true;
        p->size = size;
        return 0;
}

/* Whether the mapped segment's checksum holds. */
static bool segment_sum_ok(const struct segment *seg) {
        const uint8_t *f = seg->map + seg->map_len - IDX_FOOTER_SIZE;
        return store_hash64(seg->map, seg->map_len - IDX_FOOTER_SIZE) == get_le64(f);
}

static int list_segment_cb(void *userdata, const char *name, uint64_t size) {
        struct list_ctx *c = userdata;
        struct store *s = c->v->s;
        size_t n = strlen(name), i;
        int r;

        (void)size;
        if (n < 4 || strcmp(name + n - 4, ".idx") != 0)
                return 0;
        c->v->segments++;
        r = store_add_segment(s, name);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                damage(c, name, r == -EBADMSG ? "index segment truncated or damaged (header, size or footer)"
                                              : "index segment unreadable");
                return 0;
        }
        pthread_rwlock_rdlock(&s->idx_lock);
        for (i = 0; i < s->n_segs && strcmp(s->segs[i].name, name) != 0; i++)
                ;
        r = i < s->n_segs && !segment_sum_ok(&s->segs[i]);
        pthread_rwlock_unlock(&s->idx_lock);
        if (r) {
                size_t *nb = realloc(c->v->bad_segs, (c->v->n_bad_segs + 1) * sizeof *nb);
                if (!nb)
                        return -ENOMEM;
                c->v->bad_segs = nb;
                nb[c->v->n_bad_segs++] = i;
                damage(c, name, "index segment checksum mismatch");
        }
        return 0;
}

/* Every pack the (good) segments name. */
static int packs_named(struct store_verify *v) {
        struct store *s = v->s;
        int r = 0;

        pthread_rwlock_rdlock(&s->idx_lock);
        for (size_t i = 0; r == 0 && i < s->n_segs; i++) {
                const struct segment *seg = &s->segs[i];
                bool bad = false;

                for (size_t k = 0; k < v->n_bad_segs; k++)
                        bad |= v->bad_segs[k] == i;
                for (uint64_t e = 0; !bad && e < seg->count; e++) {
                        struct blob_loc loc;
                        struct vpack *p;

                        idx_entry_decode(seg->entries + e * IDX_ENTRY_SIZE, &loc);
                        p = pack_get(v, loc.pack_id);
                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        p->named = true;
                }
        }
        pthread_rwlock_unlock(&s->idx_lock);
        return r;
}

/* Read and check one pack's header, footer and table. 0, or a vault
 * error other than damage (the pack is then left unjudged). */
static int pack_check(struct list_ctx *c, struct vpack *p) {
        struct backend *b = c->v->s->b;
        _cleanup_free_ uint8_t *tail = NULL;
        uint8_t hdr[PACK_HDR_SIZE], foot[PACK_FOOTER_SIZE];
        struct pack_table t;
        char name[64];
        size_t tlen;
        int r;

        pack_name(p->id, name, sizeof name);
        if (!p->listed) {
                p->problem = "pack missing";
                damage(c, name, p->problem);
                return 0;
        }
        p->problem = "pack header, footer or table damaged";
        if (p->size < PACK_HDR_SIZE + PACK_FOOTER_SIZE) {
                damage(c, name, p->problem);
                return 0;
        }
        r = b->ops->get_range(b, name, 0, hdr, sizeof hdr);
        if (r >= 0)
                r = b->ops->get_range(b, name, p->size - PACK_FOOTER_SIZE, foot, sizeof foot);
        if (r >= 0)
                r = store_pack_tail(hdr, foot, sizeof foot, p->size, &t);
        if (r >= 0) {
                tlen = (size_t)(p->size - t.table_off);
                tail = malloc(tlen);
                if (!tail)
                        return -ENOMEM;
                r = b->ops->get_range(b, name, t.table_off, tail, tlen);
                if (r >= 0)
                        r = store_pack_tail(hdr, tail, tlen, p->size, &t);
        }
        if (r == -EBADMSG) {
                damage(c, name, p->problem);
                return 0;
        }
        if (r < 0)
                return r == -ENOENT ? (damage(c, name, p->problem = "pack missing"), 0) : r;
        p->problem = NULL;
        p->table_off = t.table_off;
        return 0;
}

int store_verify_new(struct store *s, store_damage_cb cb, void *userdata, struct store_verify **ret) {
        struct store_verify *v = calloc(1, sizeof *v);
        struct list_ctx c = { v, cb, userdata, 0 };
        int r;

        if (!v)
                return -ENOMEM;
        v->s = s;
        r = store_list(s, "index/", list_segment_cb, &c);
        if (r >= 0)
                r = store_list(s, "packs/", list_pack_cb, &c);
        if (r >= 0)
                r = packs_named(v);
        for (size_t i = 0; r >= 0 && i < v->cap; i++)
                if (v->packs[i].id && v->packs[i].named) {
                        v->n_packs++;
                        r = pack_check(&c, &v->packs[i]);
                }
        if (r < 0) {
                store_verify_free(v);
                return r;
        }
        *ret = v;
        return 0;
}

const char *store_verify_block(const struct store_verify *v, const struct hash128 *h) {
        struct store *s = v->s;
        const struct vpack *p;
        struct hash128 name;
        struct blob_loc loc;
        bool in_bad = false;

        store_blob_name(s, h, &name);
        pthread_rwlock_rdlock(&s->idx_lock);
        for (size_t k = 0; k < v->n_bad_segs; k++)
                in_bad |= store_segment_find(&s->segs[v->bad_segs[k]], &name) != NULL;
        pthread_rwlock_unlock(&s->idx_lock);
        if (in_bad)
                return "index entry in a damaged segment";
        if (store_lookup(s, &name, &loc) < 0)
                return NULL; /* the caller reports blocks outside the index */
        p = pack_find(v, loc.pack_id);
        if (!p)
                return NULL;
        if (p->problem)
                return p->problem;
        if (p->table_off && (loc.offset < PACK_HDR_SIZE || loc.offset > p->table_off ||
                             loc.len > p->table_off - loc.offset))
                return "index entry outside its pack";
        return NULL;
}

void store_verify_counts(const struct store_verify *v, uint64_t *ret_segments, uint64_t *ret_packs,
                         uint64_t *ret_damaged) {
        *ret_segments = v->segments;
        *ret_packs = v->n_packs;
        *ret_damaged = v->damaged;
}

void store_verify_free(struct store_verify *v) {
        if (!v)
                return;
        free(v->packs);
        free(v->bad_segs);
        free(v);
}
