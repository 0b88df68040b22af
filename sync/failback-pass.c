/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the failback passes share: the run (threads, codecs, figures),
 * progress events, and the index of the target's blocks by checksum.
 * The passes themselves: failback-scan.c (checksum the target) and
 * failback-apply.c (write what differs), both on the delta engine
 * (delta-scan.c, delta-apply.c).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "failback_i.h"

/* ---- shared state ---- */

int fb_run_init(struct fb_run *r) {
        int e;

        pthread_mutex_init(&r->lock, NULL);
        /* At least 4 by default: the scan waits for the target's disk, and
         * fetches from a remote vault for the network, so more threads than
         * cores keep both busy (apply_init() picks its decoders). */
        r->threads = r->o->threads ? r->o->threads : MAX(cpu_count(), 4u);
        r->ring = MIN(2 * r->threads + 2, 16u);
        r->n = r->d->n_blocks;
        r->bw_t0 = r->last_save = now_monotonic();
        store_read_stats(r->s, &r->fetched_base, NULL);
        e = store_codec_pool_new(r->s, FB_CODECS, &r->codecs);
        if (e >= 0)
                e = pool_new(r->threads, r->ring, &r->pool);
        return e;
}

void fb_run_done(struct fb_run *r) {
        pool_free(r->pool);
        r->pool = NULL;
        store_codec_pool_free(r->codecs);
        r->codecs = NULL;
        free(r->idx.v);
        memset(&r->idx, 0, sizeof r->idx);
        free(r->diff);
        r->diff = NULL;
        pthread_mutex_destroy(&r->lock);
}

void fb_update_fetched(struct fb_run *r) {
        uint64_t b;
        if (r->dry_run) /* bytes_fetched is the estimate */
                return;
        store_read_stats(r->s, &b, NULL);
        r->st->bytes_fetched = b - r->fetched_base;
}

void fb_pass_begin(struct fb_run *r, const char *pass, uint64_t total) {
        char label[48];

        r->pass = pass;
        r->pass_total = total;
        r->pass_t0 = now_monotonic();
        r->last_event = 0;
        snprintf(label, sizeof label, "%s %s", r->t->disk, pass);
        progress_restart(r->pg, label, total);
        snprintf(r->t->j.pass, sizeof r->t->j.pass, "%s", pass);
}

void fb_event(struct fb_run *r, uint64_t done, bool force) {
        struct sync_fb_event e = { .type = "progress", .disk = r->t->disk, .target = r->t->path };
        double now = now_monotonic(), el = now - r->pass_t0;
        char a[24], b[24];

        fb_update_fetched(r);
        progress_note(r->pg, "fetched %s, written %s", format_bytes(r->st->bytes_fetched, a, sizeof a),
                      format_bytes(r->st->bytes_written, b, sizeof b));
        progress_update(r->pg, done);
        if (!r->o->on_event || (!force && now - r->last_event < 1.0))
                return;
        r->last_event = now;
        e.pass = r->pass;
        e.done = done;
        e.total = r->pass_total;
        e.rate = el > 0 ? (double)done / el : 0;
        e.eta = e.rate > 0 && done <= e.total ? (double)(e.total - done) / e.rate : -1;
        e.stats = r->st;
        r->o->on_event(r->o->userdata, &e);
}

/* Record the pass and its percentage (not the high-water mark) now and
 * then, for --status. */
void fb_note_progress(struct fb_run *r, uint64_t done) {
        double now = now_monotonic();
        if (r->dry_run || now - r->last_save < FB_CHECKPOINT_SECONDS)
                return;
        r->last_save = now;
        r->t->j.percent = r->pass_total ? (unsigned)(100 * MIN(done, r->pass_total) / r->pass_total) : 0;
        (void)fb_journal_save(&r->t->j);
}

/* Explain an error reading the manifest of disk d at block pos. */
int fb_manifest_error(struct fb_run *r, const struct ret_disk *d, int e, uint64_t pos) {
        const char *hint = store_error_hint(store_url(r->s), e);
        if (e == -ENOENT)
                log_error("disk %s: the manifest (block %llu on) is missing from the vault (damaged vault?)",
                          d->name, (unsigned long long)pos);
        else if (e == -EBADMSG)
                log_error("disk %s: the manifest (block %llu on) is corrupt in the vault", d->name,
                          (unsigned long long)pos);
        else
                log_error("disk %s: reading the manifest failed: %s", d->name, hint ? hint : strerror(-e));
        return e;
}

/* ---- the index ---- */

static int ient_cmp(const void *a, const void *b) {
        const struct fb_ient *x = a, *y = b;
        int c = memcmp(x->h.b, y->h.b, STORE_HASH_SIZE);
        if (c)
                return c;
        return x->pos < y->pos ? -1 : x->pos > y->pos;
}

int fb_index_add(struct fb_index *x, const struct hash128 *h, uint64_t pos) {
        if (h->b[15] & x->mask)
                return 0;
        if (x->n == x->cap) {
                if (x->cap >= FB_INDEX_MAX) {
                        /* Full: keep half of the checksums (by one more bit). */
                        size_t k = 0;
                        if (x->mask == 0xff)
                                return 0;
                        x->mask = (uint8_t)(x->mask << 1 | 1);
                        for (size_t i = 0; i < x->n; i++)
                                if (!(x->v[i].h.b[15] & x->mask))
                                        x->v[k++] = x->v[i];
                        x->n = k;
                        if (h->b[15] & x->mask)
                                return 0;
                } else {
                        size_t nc = MIN((size_t)FB_INDEX_MAX, x->cap ? 2 * x->cap : 4096);
                        struct fb_ient *nv = realloc(x->v, nc * sizeof *nv);
                        if (!nv)
                                return -ENOMEM;
                        x->v = nv;
                        x->cap = nc;
                }
        }
        x->v[x->n].h = *h;
        x->v[x->n++].pos = pos;
        return 0;
}

void fb_index_sort(struct fb_index *x) {
        if (x->n > 1)
                qsort(x->v, x->n, sizeof *x->v, ient_cmp);
}

size_t fb_index_find(const struct fb_index *x, const struct hash128 *h, size_t *ret_count) {
        size_t lo, k;

        *ret_count = 0;
        if (h->b[15] & x->mask)
                return 0;
        lo = (size_t)store_hash_lower_bound(x->v, sizeof *x->v, 0, x->n, h);
        for (k = lo; k < x->n && memcmp(x->v[k].h.b, h->b, STORE_HASH_SIZE) == 0; k++)
                ;
        *ret_count = k - lo;
        return lo;
}

int fb_index_manifest(struct fb_run *r, const struct ret_disk *d) {
        struct ret_manifest *m = NULL;
        struct hash128 h;
        int e;

        e = ret_manifest_open(r->s, d, &m);
        if (e < 0)
                return e;
        for (uint64_t i = 0; i < d->n_blocks; i++) {
                e = ret_manifest_get(m, i, &h);
                if (e < 0) {
                        fb_manifest_error(r, d, e, i);
                        break;
                }
                if (!hash_is_zero(&h))
                        e = fb_index_add(&r->idx, &h, i);
                if (e < 0)
                        break;
        }
        ret_manifest_free(m);
        fb_index_sort(&r->idx);
        return e < 0 ? e : 0;
}

