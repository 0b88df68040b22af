/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Failback plans: the point asked for, and the steps (delta, full, diff)
 * that take a target there from what its journal says (see failback.c).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "failback_i.h"

/* ---- the point ---- */

int fb_resolve_point(struct ctx *c) {
        const char *spec = c->o->point ? c->o->point : "latest";
        struct ret_point **v = NULL;
        size_t n = 0;
        int r;

        if (c->p)
                return 0;
        r = ret_point_resolve(c->s, c->o->vm, spec, &c->p);
        if (r == -ENOENT) {
                if (strcmp(spec, "latest") == 0)
                        log_error("%s: VM '%s' has no recovery points", c->o->vault, c->o->vm);
                else if (strcmp(spec, "latest-app") == 0)
                        log_error("%s: VM '%s' has no app-consistent recovery point", c->o->vault, c->o->vm);
                else {
                        /* Someone else's point? */
                        const char *owner = NULL;
                        if (ret_points_list(c->s, NULL, &v, &n) >= 0)
                                for (size_t i = 0; i < n && !owner; i++)
                                        if (strcmp(v[i]->id, spec) == 0)
                                                owner = v[i]->vm;
                        if (owner)
                                log_error("%s: point %s belongs to VM '%s', not to '%s'", c->o->vault, spec, owner,
                                          c->o->vm);
                        else
                                log_error("%s: VM '%s' has no point %s", c->o->vault, c->o->vm, spec);
                        ret_points_free(v, n);
                }
                return fb_fault(c, SYNC_FB_NOT_FOUND, r);
        }
        if (r < 0) {
                const char *hint = store_error_hint(c->o->vault, r);
                log_error("%s: reading the points of '%s' failed: %s", c->o->vault, c->o->vm,
                          hint ? hint : strerror(-r));
                return error_transient(r) ? r : fb_fault(c, fb_classify(r), r);
        }
        if (c->p->block_size != c->bs) {
                log_error("%s: point %s/%s has block size %u, the vault %u: damaged point", c->o->vault, c->o->vm,
                          c->p->id, c->p->block_size, c->bs);
                return fb_fault(c, SYNC_FB_CORRUPT, -EBADMSG);
        }
        /* Leased for the run, so that a prune does not take it away. */
        if (!c->lease && ret_keeper_new(c->s, &c->lease) == 0 &&
            ret_keeper_take(c->lease, c->o->vm, c->p->id) == -ENOENT) {
                log_error("%s: point %s/%s is being pruned", c->o->vault, c->o->vm, c->p->id);
                return fb_fault(c, SYNC_FB_NOT_FOUND, -ENOENT);
        }
        snprintf(c->res->point, sizeof c->res->point, "%s", c->p->id);
        return 0;
}

const struct ret_disk *fb_point_disk(struct ctx *c, const struct ret_point *p, const char *disk) {
        const struct ret_disk *d = ret_point_disk(p, disk);
        char names[512] = "";

        if (d)
                return d;
        for (size_t i = 0; i < p->n_disks; i++) {
                size_t l = strlen(names);
                snprintf(names + l, sizeof names - l, "%s%s", i ? ", " : "", p->disks[i].name);
        }
        log_error("point %s/%s has no disk '%s' (it has: %s)", p->vm, p->id, disk, names);
        fb_fault(c, SYNC_FB_NOT_FOUND, -ENOENT);
        return NULL;
}

/* Load point id of the VM (NULL when it is gone: pruned). */
int fb_load_point(struct ctx *c, const char *id, struct ret_point **ret) {
        int r;
        if (strcmp(id, c->p->id) == 0) {
                *ret = NULL;
                return 0;
        }
        r = ret_point_load(c->s, c->o->vm, id, ret);
        if (r == -ENOENT) {
                *ret = NULL;
                return -ENOENT;
        }
        return r;
}

/* ---- plans ---- */

static void add_step(struct tplan *pl, enum step_kind k, const char *point, const char *base, uint64_t from) {
        struct step *s = &pl->steps[pl->n_steps++];
        memset(s, 0, sizeof *s);
        s->kind = k;
        snprintf(s->point, sizeof s->point, "%s", point);
        snprintf(s->base, sizeof s->base, "%s", base ? base : "");
        s->from = from;
}

static bool point_exists(struct ctx *c, const char *id) {
        struct ret_point *p = NULL;
        if (strcmp(id, c->p->id) == 0)
                return true;
        if (ret_point_load(c->s, c->o->vm, id, &p) < 0)
                return false;
        ret_point_free(p);
        return true;
}

/* Does the target still hold exactly what the journal recorded? */
static int target_unchanged(struct ctx *c, struct fb_target *t, char *why, size_t len) {
        struct fb_fingerprint now;
        int r = fb_fingerprint_take(t, c->bs, t->j.disk_size, &now);
        if (r < 0)
                return log_error_errno(r, "target %s: reading it failed", t->path);
        return fb_fingerprint_check(&t->j.fp, &now, why, len);
}

static int choose_mode(struct ctx *c, struct fb_target *t, const struct ret_disk *d, enum step_kind *ret) {
        struct sync_fb_stats scratch = { 0 };
        struct fb_run run = { .s = c->s, .o = c->o, .t = t, .bs = c->bs, .d = d, .st = &scratch };
        double frac;
        int r;

        if (c->o->mode != SYNC_FB_AUTO) {
                *ret = c->o->mode == SYNC_FB_FULL ? STEP_FULL : STEP_DELTA;
                return 0;
        }
        run.n = d->n_blocks;
        r = fb_sample(&run, &frac);
        if (r < 0)
                return r;
        *ret = frac > 0.5 ? STEP_FULL : STEP_DELTA;
        log_debug("target %s: %.0f%% of the sampled blocks differ: %s", t->path, 100 * frac, fb_step_names[*ret]);
        return 0;
}

int fb_plan_sync(struct ctx *c, struct fb_target *t, const struct ret_disk *d, struct tplan *pl) {
        struct fb_journal *j = &t->j;
        bool matches = fb_journal_matches(c, t, true);
        enum step_kind k = STEP_DELTA;
        char why[256];
        int r;

        if (!t->exists) {
                pl->create = true;
                add_step(pl, STEP_FULL, c->p->id, NULL, 0);
                pl->steps[0].fresh = true;
                return 0;
        }
        if (matches && j->state == FB_J_SYNCING) {
                uint64_t w = MIN(j->done_blocks, d->n_blocks);
                bool same = strcmp(j->point, c->p->id) == 0;
                if (!same && !point_exists(c, j->point)) {
                        log_info("target %s: the interrupted sync was to point %s, which is gone; rescanning",
                                 t->path, j->point);
                        add_step(pl, STEP_DELTA, c->p->id, NULL, 0);
                        return 0;
                }
                if (!same)
                        w = MIN(j->done_blocks, j->n_blocks);
                if (strcmp(j->method, "diff") == 0 && *j->base && point_exists(c, j->base))
                        add_step(pl, STEP_DIFF, j->point, j->base, w);
                else if (c->o->mode == SYNC_FB_FULL || (c->o->mode == SYNC_FB_AUTO && strcmp(j->method, "full") == 0)) {
                        add_step(pl, STEP_FULL, j->point, NULL, w);
                        pl->steps[0].fresh = j->created && strcmp(j->method, "full") == 0;
                } else
                        add_step(pl, STEP_DELTA, j->point, NULL, w);
                if (!same)
                        add_step(pl, STEP_DIFF, c->p->id, j->point, 0);
                log_info("target %s: resuming the interrupted %s to point %s at block %llu of %llu", t->path,
                         j->op, j->point, (unsigned long long)w, (unsigned long long)j->n_blocks);
                return 0;
        }
        if (c->o->resume) {
                log_error("target %s: no interrupted failback to resume", t->path);
                return fb_fault(c, SYNC_FB_BAD_TARGET, -ENOENT);
        }
        if (matches && (j->state == FB_J_CONSISTENT || j->state == FB_J_COMMITTED) &&
            strcmp(j->point, c->p->id) == 0) {
                r = target_unchanged(c, t, why, sizeof why);
                if (r == 0) {
                        pl->mark_op = c->o->action == SYNC_FB_PREPARE ? "prepare" : NULL;
                        return 0; /* nothing to do */
                }
                if (r != -ESTALE)
                        return fb_fault(c, SYNC_FB_BAD_TARGET, r);
                log_debug("target %s was at point %s, but %s since: rescanning", t->path, j->point, why);
        } else if (j->state != FB_J_NONE && !matches)
                log_debug("target %s: replacing the record of an earlier failback (VM %s, disk %s)", t->path, j->vm,
                         j->disk);
        r = choose_mode(c, t, d, &k);
        if (r < 0)
                return r; /* classified by its errno */
        add_step(pl, k, c->p->id, NULL, 0);
        return 0;
}

int fb_plan_complete(struct ctx *c, struct fb_target *t, struct tplan *pl) {
        struct fb_journal *j = &t->j;
        char why[256];
        int r;

        if (j->state == FB_J_NONE) {
                log_error("target %s was not prepared: run --prepare first", t->path);
                return fb_fault(c, SYNC_FB_BAD_TARGET, -ENOENT);
        }
        if (!fb_journal_matches(c, t, true)) {
                log_error("target %s was prepared from VM %s disk %s (vault %s), not this one", t->path, j->vm,
                          j->disk, j->vault);
                return fb_fault(c, SYNC_FB_BAD_TARGET, -EINVAL);
        }
        if (j->state == FB_J_COMMITTED) {
                log_error("target %s is already committed at point %s", t->path, j->point);
                return fb_fault(c, SYNC_FB_BAD_TARGET, -EALREADY);
        }
        if (j->state == FB_J_SYNCING) {
                if (strcmp(j->op, "complete") != 0) {
                        log_error("target %s: the %s did not finish (interrupted): rerun --prepare first", t->path,
                                  j->op);
                        return fb_fault(c, SYNC_FB_BAD_TARGET, -EINPROGRESS);
                }
                /* An interrupted complete: go on (the fingerprint was
                 * spent when it began writing). */
                if (strcmp(j->method, "diff") == 0 && *j->base && point_exists(c, j->base))
                        add_step(pl, STEP_DIFF, j->point, j->base, MIN(j->done_blocks, j->n_blocks));
                else
                        add_step(pl, STEP_DELTA, j->point, NULL, MIN(j->done_blocks, j->n_blocks));
                if (strcmp(j->point, c->p->id) != 0)
                        add_step(pl, STEP_DIFF, c->p->id, j->point, 0);
                log_info("target %s: resuming the interrupted complete to point %s", t->path, j->point);
                return 0;
        }
        r = target_unchanged(c, t, why, sizeof why);
        if (r == -ESTALE) {
                log_error("target %s changed since it was prepared: %s; run --prepare again, then --complete",
                          t->path, why);
                return fb_fault(c, SYNC_FB_BAD_TARGET, r);
        }
        if (r < 0)
                return fb_fault(c, SYNC_FB_BAD_TARGET, r);
        if (!point_exists(c, j->point)) {
                log_error("target %s: its prepared point %s is gone from the vault: run --prepare again", t->path,
                          j->point);
                return fb_fault(c, SYNC_FB_NOT_FOUND, -ENOENT);
        }
        if (strcmp(j->point, c->p->id) != 0)
                add_step(pl, STEP_DIFF, c->p->id, j->point, 0);
        else
                pl->mark_op = "complete";
        return 0;
}

