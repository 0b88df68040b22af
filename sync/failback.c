/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Failback: journal states, steps, retries. See sync.h for the contract,
 * failback-plan.c for the plans, failback-scan.c and failback-apply.c for
 * the pipelines (on the delta engine, delta-scan.c and delta-apply.c).
 *
 * A target's journal says where it is: "syncing" (op, method, the point,
 * the high-water mark below which every block is at that point),
 * "consistent" (at a point, with a fingerprint of the target) or
 * "committed". Each run turns the journal and the request into steps:
 *   delta P from W   scan blocks [W, n) against P, write those that differ
 *   full P from W    write every block of P from W on
 *   diff B->P from W the target holds B: write blocks whose checksum
 *                    differs between B's and P's manifests (no scan)
 * An interrupted run continues from its high-water mark towards the point
 * it was syncing to; if a newer point was asked for meanwhile, a diff step
 * then takes the target on from there. A step records "syncing" before its
 * first write and "consistent" only after the final fsync, so the journal
 * never claims more than the target holds.
 *
 * Retries: a recoverable error (error_transient()) ends the attempt;
 * after the profile's delay everything is checked and planned again from
 * the journals, so the next attempt resumes where the last one got to.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "failback_i.h"

const char *const fb_step_names[] = { "delta", "full", "diff" };
static const char *const op_names[] = {
        [SYNC_FB_SYNC] = "sync", [SYNC_FB_PREPARE] = "prepare", [SYNC_FB_COMPLETE] = "complete",
        [SYNC_FB_COMMIT] = "commit", [SYNC_FB_DRY_RUN] = "sync",
};

int fb_fault(struct ctx *c, enum sync_fb_fault f, int r) {
        if (c->fault == SYNC_FB_OK)
                c->fault = f;
        return r;
}

/* The class of an error from the vault or the passes. */
enum sync_fb_fault fb_classify(int r) {
        switch (r) {
        case -EACCES:
        case -ENOKEY:
                return SYNC_FB_AUTH;
        case -EBADMSG:
        case -ENOENT:
        case -EMEDIUMTYPE:
        case -EPROTONOSUPPORT:
                return SYNC_FB_CORRUPT;
        default:
                return SYNC_FB_FAILED;
        }
}

bool fb_journal_matches(const struct ctx *c, const struct fb_target *t, bool check_bs) {
        const struct fb_journal *j = &t->j;
        return j->state != FB_J_NONE && strcmp(j->vault, c->o->vault) == 0 && strcmp(j->vm, c->o->vm) == 0 &&
               strcmp(j->disk, t->disk) == 0 && (!check_bs || j->block_size == c->bs);
}

/* ---- running a step ---- */

/* The points and disks a step goes from and to (*pp, *bp owned; NULL when
 * the point is c->p). */
static int step_disks(struct ctx *c, struct fb_target *t, const struct step *sp, struct ret_point **pp,
                      struct ret_point **bp, const struct ret_disk **d, const struct ret_disk **bd) {
        int r;

        r = fb_load_point(c, sp->point, pp);
        if (r < 0) {
                log_error("%s: reading point %s/%s failed: %s", c->o->vault, c->o->vm, sp->point, strerror(-r));
                return r;
        }
        *d = fb_point_disk(c, *pp ? *pp : c->p, t->disk);
        if (!*d)
                return -ENOENT;
        if (sp->kind != STEP_DIFF)
                return 0;
        r = fb_load_point(c, sp->base, bp);
        if (r < 0) {
                log_error("%s: reading point %s/%s failed: %s", c->o->vault, c->o->vm, sp->base, strerror(-r));
                return r;
        }
        *bd = fb_point_disk(c, *bp ? *bp : c->p, t->disk);
        return *bd ? 0 : -ENOENT;
}

/* Before the first write: the journal says "syncing"; then a missing
 * target is created. */
static int step_begin(struct ctx *c, struct fb_target *t, const struct step *sp, const struct ret_disk *d,
                      const char *point) {
        struct fb_journal *j = &t->j;
        int r;

        snprintf(j->vault, sizeof j->vault, "%s", c->o->vault);
        snprintf(j->vm, sizeof j->vm, "%s", c->o->vm);
        snprintf(j->disk, sizeof j->disk, "%s", t->disk);
        snprintf(j->op, sizeof j->op, "%s", op_names[c->o->action]);
        snprintf(j->method, sizeof j->method, "%s", fb_step_names[sp->kind]);
        snprintf(j->point, sizeof j->point, "%s", point);
        snprintf(j->base, sizeof j->base, "%s", sp->base);
        j->state = FB_J_SYNCING;
        j->block_size = c->bs;
        j->disk_size = d->size;
        j->n_blocks = d->n_blocks;
        j->done_blocks = sp->from;
        j->percent = 0;
        j->fp.valid = false;
        if (sp->fresh && sp->from == 0)
                j->created = true;
        else if (sp->kind != STEP_FULL)
                j->created = false;
        j->started = 0;
        r = fb_journal_save(j);
        if (r < 0)
                return log_error_errno(r, "journal %s: cannot write it", j->path);
        if (!t->exists) {
                r = fb_target_create(t, d->size);
                if (r < 0)
                        return fb_fault(c, SYNC_FB_BAD_TARGET, r);
        }
        return 0;
}

static int step_passes(struct fb_run *run, const struct step *sp) {
        int r;

        switch (sp->kind) {
        case STEP_DELTA:
                if (!run->t->exists) { /* dry run of a missing target */
                        run->fresh = true;
                        return fb_apply(run, FB_SRC_ALL, sp->from);
                }
                r = fb_scan(run, sp->from, false, NULL, NULL);
                run->use_diff = true;
                return r < 0 ? r : fb_apply(run, FB_SRC_DIFF, sp->from);
        case STEP_FULL:
                if (!run->t->exists)
                        run->fresh = true;
                return fb_apply(run, FB_SRC_ALL, sp->from);
        case STEP_DIFF:
                r = fb_index_manifest(run, run->base_d);
                return r < 0 ? r : fb_apply(run, FB_SRC_MANIFESTS, sp->from);
        }
        return -EINVAL;
}

/* --verify: re-read every block of the target and compare. */
static int verify_target(struct ctx *c, struct fb_run *run, const char *point) {
        uint64_t bad = 0, first_bad = 0;
        int r = fb_scan(run, 0, true, &bad, &first_bad);

        if (r < 0)
                return r;
        if (bad) {
                log_error("target %s: verification failed: %llu blocks differ from point %s (first: block %llu)",
                          run->t->path, (unsigned long long)bad, point, (unsigned long long)first_bad);
                return fb_fault(c, SYNC_FB_CORRUPT, -EBADMSG);
        }
        return 0;
}

/* After the last write: size, fsync, verify, fingerprint, "consistent". */
static int step_finish(struct ctx *c, struct fb_run *run, const char *point, bool last) {
        struct fb_target *t = run->t;
        struct fb_journal *j = &t->j;
        int r;

        if (!t->blockdev && t->size != run->d->size) {
                if (ftruncate(t->fd, (off_t)run->d->size) < 0)
                        return log_error_errno(-errno, "target %s: cannot set its size", t->path);
                t->size = run->d->size;
        }
        r = fb_target_sync(t, true);
        if (r < 0)
                return log_error_errno(r, "target %s: sync failed", t->path);
        if (last && c->o->verify) {
                r = verify_target(c, run, point);
                if (r < 0)
                        return r;
        }
        r = fb_fingerprint_take(t, c->bs, run->d->size, &j->fp);
        if (r < 0)
                return log_error_errno(r, "target %s: reading it failed", t->path);
        j->state = FB_J_CONSISTENT;
        j->done_blocks = run->d->n_blocks;
        j->percent = 100;
        j->pass[0] = 0;
        r = fb_journal_save(j);
        if (r < 0)
                return log_error_errno(r, "journal %s: cannot write it", j->path);
        return 0;
}

static int run_step(struct ctx *c, struct fb_target *t, const struct step *sp, bool last,
                    struct sync_fb_stats *st, struct progress *pg) {
        struct ret_point *pp = NULL, *bp = NULL;
        const struct ret_disk *d = NULL, *bd = NULL;
        struct fb_run run = { .s = c->s, .o = c->o, .t = t, .bs = c->bs, .st = st, .pg = pg, .cache = c->cache,
                              .dry_run = c->o->action == SYNC_FB_DRY_RUN, .fresh = sp->fresh };
        const char *point;
        bool run_ok = false;
        int r;

        r = step_disks(c, t, sp, &pp, &bp, &d, &bd);
        if (r < 0)
                goto out;
        point = pp ? pp->id : c->p->id;
        run.d = d;
        run.base_d = bd;
        st->method = fb_step_names[sp->kind];
        snprintf(st->point, sizeof st->point, "%s", point);
        snprintf(st->base, sizeof st->base, "%s", sp->base);
        st->disk_bytes = d->size;
        st->n_blocks = d->n_blocks;
        if (!run.dry_run) {
                r = step_begin(c, t, sp, d, point);
                if (r < 0)
                        goto out;
        }
        r = fb_run_init(&run);
        run_ok = true;
        if (r >= 0)
                r = step_passes(&run, sp);
        if (r >= 0 && !run.dry_run)
                r = step_finish(c, &run, point, last);
out:
        if (run_ok)
                fb_run_done(&run);
        ret_point_free(pp);
        ret_point_free(bp);
        return r;
}

/* ---- targets ---- */

/* Check one target and plan its steps; writes nothing. */
static int check_target(struct ctx *c, struct fb_target *t, struct tplan *pl) {
        const struct ret_disk *d;
        int r;

        memset(pl, 0, sizeof *pl);
        d = fb_point_disk(c, c->p, t->disk);
        if (!d)
                return -ENOENT;
        r = fb_journal_lock(&t->j);
        if (r == -EBUSY) {
                log_error("target %s: another rpfs failback is working on it", t->path);
                return fb_fault(c, SYNC_FB_BAD_TARGET, r);
        }
        if (r < 0) {
                log_error_errno(r, "journal %s", t->j.lock_path);
                return fb_fault(c, SYNC_FB_FAILED, r);
        }
        r = fb_journal_load(&t->j);
        if (r == -EBADMSG)
                log_warn("journal %s is unreadable: ignoring it", t->j.path);
        else if (r < 0 && r != -ENOENT)
                return fb_fault(c, SYNC_FB_FAILED, log_error_errno(r, "journal %s", t->j.path));
        if (!t->exists && !(c->o->create && c->o->action != SYNC_FB_COMPLETE)) {
                log_error("target %s does not exist (--create makes a new sparse file there)", t->path);
                return fb_fault(c, SYNC_FB_BAD_TARGET, -ENOENT);
        }
        if (t->exists) {
                r = fb_target_open(t, d->size);
                if (r < 0)
                        return fb_fault(c, SYNC_FB_BAD_TARGET, r);
        }
        if (c->o->action == SYNC_FB_COMPLETE)
                return fb_plan_complete(c, t, pl);
        return fb_plan_sync(c, t, d, pl);
}

static int run_target(struct ctx *c, size_t i, const struct tplan *pl) {
        struct fb_target *t = &c->t[i];
        struct sync_fb_stats *st = &c->res->targets[i];
        struct progress *pg = NULL;
        double t0 = now_monotonic();
        int r = 0;

        if (c->o->progress)
                pg = progress_new("failback", 0);
        st->resumed_from = pl->n_steps ? pl->steps[0].from : 0;
        st->method = "none";
        st->state = "unchanged";
        snprintf(st->point, sizeof st->point, "%s", c->p->id);
        for (size_t k = 0; k < pl->n_steps && r >= 0; k++)
                r = run_step(c, t, &pl->steps[k], k == pl->n_steps - 1, st, pg);
        if (r >= 0 && pl->n_steps == 0 && c->o->action != SYNC_FB_DRY_RUN) {
                const struct ret_disk *d = ret_point_disk(c->p, t->disk);
                st->disk_bytes = d->size;
                st->n_blocks = d->n_blocks;
                if (c->o->verify) {
                        struct fb_run run = { .s = c->s, .o = c->o, .t = t, .bs = c->bs, .st = st, .pg = pg,
                                              .d = d };
                        r = fb_run_init(&run);
                        if (r >= 0)
                                r = verify_target(c, &run, c->p->id);
                        fb_run_done(&run);
                }
                if (r >= 0 && pl->mark_op) {
                        /* A new prepare starts a new cycle, committed or not. */
                        snprintf(t->j.op, sizeof t->j.op, "%s", pl->mark_op);
                        t->j.state = FB_J_CONSISTENT;
                        r = fb_journal_save(&t->j);
                }
        }
        if (r >= 0 && c->o->action != SYNC_FB_DRY_RUN)
                st->state = t->j.state == FB_J_COMMITTED ? "committed" : "consistent";
        st->seconds += now_monotonic() - t0;
        progress_free(pg);
        return r;
}

static void close_targets(struct ctx *c) {
        for (size_t i = 0; i < c->o->n_targets; i++) {
                fb_target_close(&c->t[i]);
                fb_journal_close(&c->t[i].j);
        }
}

/* One attempt: check every target, then sync them one after the other. */
static int attempt(struct ctx *c) {
        _cleanup_free_ struct tplan *plans = calloc(c->o->n_targets, sizeof *plans);
        int r;

        if (!plans)
                return -ENOMEM;
        r = fb_resolve_point(c);
        if (r < 0)
                return r;
        for (size_t i = 0; i < c->o->n_targets; i++) {
                if (c->finished[i])
                        continue;
                r = check_target(c, &c->t[i], &plans[i]);
                if (r < 0)
                        goto out;
        }
        for (size_t i = 0; i < c->o->n_targets; i++) {
                if (c->finished[i])
                        continue;
                r = run_target(c, i, &plans[i]);
                if (r < 0)
                        goto out;
                c->finished[i] = true;
                fb_target_close(&c->t[i]);
                fb_journal_close(&c->t[i].j);
        }
out:
        close_targets(c);
        return r;
}

static uint64_t progress_mark(const struct ctx *c) {
        uint64_t v = 0;
        for (size_t i = 0; i < c->o->n_targets; i++)
                v += c->res->targets[i].blocks_written + c->finished[i];
        return v;
}

/* --commit: every target must be consistent (checked for all first). */
static int commit_targets(struct ctx *c) {
        int r;

        for (size_t i = 0; i < c->o->n_targets; i++) {
                struct fb_target *t = &c->t[i];
                struct fb_journal *j = &t->j;
                r = fb_journal_lock(j);
                if (r == -EBUSY) {
                        log_error("target %s: a failback is running on it", t->path);
                        return fb_fault(c, SYNC_FB_BAD_TARGET, r);
                }
                if (r < 0)
                        return fb_fault(c, SYNC_FB_FAILED, log_error_errno(r, "journal %s", j->lock_path));
                r = fb_journal_load(j);
                if (r == -ENOENT || r == -EBADMSG) {
                        log_error("target %s: no failback recorded, nothing to commit", t->path);
                        return fb_fault(c, SYNC_FB_BAD_TARGET, -ENOENT);
                }
                if (r < 0)
                        return fb_fault(c, SYNC_FB_FAILED, log_error_errno(r, "journal %s", j->path));
                if (!fb_journal_matches(c, t, false)) {
                        log_error("target %s was synced from VM %s disk %s (vault %s), not this one", t->path, j->vm,
                                  j->disk, j->vault);
                        return fb_fault(c, SYNC_FB_BAD_TARGET, -EINVAL);
                }
                if (j->state == FB_J_SYNCING) {
                        log_error("target %s: the failback did not finish (interrupted): rerun it before "
                                  "committing", t->path);
                        return fb_fault(c, SYNC_FB_BAD_TARGET, -EINPROGRESS);
                }
        }
        for (size_t i = 0; i < c->o->n_targets; i++) {
                struct fb_journal *j = &c->t[i].j;
                struct sync_fb_stats *st = &c->res->targets[i];
                if (j->state != FB_J_COMMITTED) {
                        j->state = FB_J_COMMITTED;
                        r = fb_journal_save(j);
                        if (r < 0)
                                return log_error_errno(r, "journal %s: cannot write it", j->path);
                }
                snprintf(st->point, sizeof st->point, "%s", j->point);
                snprintf(c->res->point, sizeof c->res->point, "%s", j->point);
                st->method = "none";
                st->state = "committed";
                st->disk_bytes = j->disk_size;
                st->n_blocks = j->n_blocks;
        }
        return 0;
}

/* Resolve every target's path and journal; refuse one given twice. */
static int setup_targets(struct ctx *c) {
        const struct sync_failback_opts *o = c->o;
        int r;

        for (size_t i = 0; i < o->n_targets; i++) {
                struct fb_target *t = &c->t[i];
                t->disk = o->targets[i].disk;
                t->path = o->targets[i].path;
                t->j.lock_fd = -1;
                r = fb_target_resolve(t);
                if (r < 0)
                        return fb_fault(c, SYNC_FB_BAD_TARGET, r);
                for (size_t k = 0; k < i; k++)
                        if (strcmp(c->t[k].real, t->real) == 0) {
                                log_error("target %s is given twice (disks %s and %s)", t->path, c->t[k].disk,
                                          t->disk);
                                return fb_fault(c, SYNC_FB_BAD_TARGET, -EINVAL);
                        }
                r = fb_journal_init(&t->j, o->state_dir, t->real);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The block cache, opened at its own size (another size would reset it). */
static void open_cache(struct ctx *c) {
        char path[PATH_MAX];
        struct stat st;
        int r;

        if (!c->o->cache_dir)
                return;
        snprintf(path, sizeof path, "%s/blocks-%u.data", c->o->cache_dir, c->bs);
        if (stat(path, &st) < 0 || st.st_size <= 0)
                return;
        r = store_cache_open(c->o->cache_dir, c->bs, (uint64_t)st.st_size, &c->cache);
        if (r < 0)
                log_debug("cache %s not used: %s", c->o->cache_dir, strerror(-r));
}

/* Attempts until one succeeds, fails for good, or the profile gives up. */
static int attempts(struct ctx *c) {
        const struct sync_failback_opts *o = c->o;
        uint64_t mark = 0;
        unsigned n = 0;

        for (;;) {
                struct timespec ts;
                double delay;
                int r = attempt(c);
                if (r >= 0 || c->fault != SYNC_FB_OK || !error_transient(r))
                        return r;
                if (progress_mark(c) != mark) /* it got somewhere: start the profile over */
                        n = 0;
                mark = progress_mark(c);
                delay = retry_delay(o->retry, ++n);
                if (delay < 0 || o->action == SYNC_FB_DRY_RUN) {
                        if (o->retry != RETRY_NONE && o->action != SYNC_FB_DRY_RUN)
                                log_error("giving up after %u attempts: %s; rerun to resume", n, strerror(-r));
                        return fb_fault(c, SYNC_FB_RETRIES, r);
                }
                log_warn("recoverable error (%s): retrying in %.0f s (attempt %u)", strerror(-r), delay, n + 1);
                if (o->on_event) {
                        struct sync_fb_event e = { .type = "retry", .error = r, .delay = delay, .attempt = n + 1 };
                        o->on_event(o->userdata, &e);
                }
                ts = (struct timespec){ (time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9) };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
                (void)store_refresh(c->s);
        }
}

int sync_failback(struct store *s, const struct sync_failback_opts *o, struct sync_failback_result *res) {
        struct ctx c = { .s = s, .o = o, .res = res };
        _cleanup_free_ struct fb_target *targets = calloc(MAX(o->n_targets, 1u), sizeof *targets);
        _cleanup_free_ bool *finished = calloc(MAX(o->n_targets, 1u), sizeof *finished);
        int r;

        res->fault = SYNC_FB_OK;
        res->point[0] = 0;
        memset(res->targets, 0, o->n_targets * sizeof *res->targets);
        if (!targets || !finished)
                return res->fault = SYNC_FB_FAILED, -ENOMEM;
        c.t = targets;
        c.finished = finished;
        for (size_t i = 0; i < o->n_targets; i++)
                targets[i].fd = targets[i].dfd = targets[i].j.lock_fd = -1;
        r = setup_targets(&c);
        if (r >= 0 && o->action == SYNC_FB_COMMIT)
                r = commit_targets(&c);
        else if (r >= 0) {
                c.bs = store_block_size(s);
                open_cache(&c);
                r = attempts(&c);
        }
        if (r < 0 && c.fault == SYNC_FB_OK)
                c.fault = error_transient(r) ? SYNC_FB_RETRIES : fb_classify(r);
        res->fault = r < 0 ? c.fault : SYNC_FB_OK;
        close_targets(&c);
        store_cache_close(c.cache);
        ret_keeper_free(c.lease);
        ret_point_free(c.p);
        return r;
}
