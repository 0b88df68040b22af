/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Prune of points: the policy decides, holds and leases protect. The
 * mark-then-check order against leases is in docs/FORMAT.md "Holds and
 * leases".
 */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "retention.h"

/* Remove one point unless a lease appeared: 1 removed, 0 kept (leased). */
static int drop_point(struct store *s, const struct ret_point *p, time_t now) {
        char mark[256], name[256];
        int r, leased;

        snprintf(mark, sizeof mark, "gc/expiring/%s/%s", p->vm, p->id);
        snprintf(name, sizeof name, "points/%s/%s.json", p->vm, p->id);
        r = store_put_object(s, mark, "", 0, false);
        if (r < 0)
                return r;
        leased = ret_point_leased(s, p->vm, p->id, now);
        if (leased == 0) {
                r = store_delete_object(s, name);
                if (r == -ENOENT)
                        r = 0;
        } else
                r = leased;
        if (r >= 0 || leased != 0)
                (void)store_delete_object(s, mark);
        if (r < 0)
                return r;
        return leased ? 0 : 1;
}

/* What the policy, holds and leases keep of one VM's points v[0..n)
 * (sorted oldest first): the RET_KEEP_* bits into keep[0..n). */
static int decide_vm(struct store *s, struct ret_point *const *v, size_t n, time_t now, unsigned *keep) {
        _cleanup_free_ struct ret_thin_point *t = calloc(MAX(n, 1), sizeof *t);
        struct ret_policy pol;
        int r;

        if (!t)
                return -ENOMEM;
        r = ret_policy_get(s, v[0]->vm, &pol);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                struct ret_hold h;

                t[i].time = v[i]->time;
                t[i].app = v[i]->app;
                r = ret_hold_get(s, v[i]->vm, v[i]->id, &h);
                if (r < 0 && r != -ENOENT && r != -EBADMSG)
                        return r;
                /* An unreadable hold still holds: never drop on doubt. */
                t[i].pinned = r == -EBADMSG || (r == 0 && ret_hold_active(&h, now));
                if (!t[i].pinned) {
                        r = ret_point_leased(s, v[i]->vm, v[i]->id, now);
                        if (r < 0)
                                return r;
                        t[i].pinned = r > 0;
                }
        }
        ret_thin(&pol, t, n, now);
        for (size_t i = 0; i < n; i++)
                keep[i] = t[i].keep;
        return 0;
}

/* One VM's points v[0..n), keep decided. */
static int prune_vm(struct store *s, struct ret_point **v, size_t n, const unsigned *keep, time_t now, bool dry_run,
                    ret_prune_cb cb, void *userdata, size_t *dropped, bool *gone) {
        int r;

        for (size_t i = 0; i < n; i++) {
                struct ret_prune_item it = { v[i], keep[i], false };

                if (!keep[i]) {
                        r = dry_run ? 1 : drop_point(s, v[i], now);
                        if (r < 0)
                                return r;
                        it.dropped = r > 0;
                        if (r == 0)
                                it.keep = RET_KEEP_PINNED;
                        gone[i] = it.dropped;
                        *dropped += it.dropped;
                }
                if (cb && (r = cb(userdata, &it)) < 0)
                        return r;
        }
        return 0;
}

static bool vm_selected(const char *vm, const char *const *vms, size_t n_vms) {
        if (n_vms == 0)
                return true;
        for (size_t i = 0; i < n_vms; i++)
                if (strcmp(vms[i], vm) == 0)
                        return true;
        return false;
}

/* Group points kept whole: the decisions of every VM of v[0..n) (sorted
 * by VM then ID), made lazily (decided[first point of the VM]), and the
 * complete group points of the vault. */
struct prune_sel {
        struct store *s;
        struct ret_point **v;
        size_t n;
        time_t now;
        unsigned *keep;
        bool *decided;
        struct ret_group_point *gp;
        size_t n_gp;
};

/* The range [*a, *b) of vm's points in sel->v; false when it has none. */
static bool vm_range(const struct prune_sel *sel, const char *vm, size_t *a, size_t *b) {
        size_t i = 0;
        while (i < sel->n && strcmp(sel->v[i]->vm, vm) != 0)
                i++;
        if (i == sel->n)
                return false;
        *a = i;
        while (i < sel->n && strcmp(sel->v[i]->vm, vm) == 0)
                i++;
        *b = i;
        return true;
}

static int sel_decide(struct prune_sel *sel, size_t a, size_t b) {
        int r = 0;
        if (!sel->decided[a]) {
                r = decide_vm(sel->s, sel->v + a, b - a, sel->now, sel->keep + a);
                sel->decided[a] = r >= 0;
        }
        return r;
}

/* Load every group's complete group points into sel. */
static int sel_groups(struct prune_sel *sel) {
        _cleanup_free_ char(*g)[65] = NULL;
        size_t ng = 0;
        int r = ret_groups_list(sel->s, &g, &ng);

        for (size_t k = 0; r >= 0 && k < ng; k++) {
                struct ret_group_point *v = NULL;
                size_t n = 0;
                r = ret_group_points_list(sel->s, g[k], &v, &n);
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        void *nv;
                        if (!ret_group_point_complete(&v[i], sel->v, sel->n))
                                continue;
                        nv = realloc(sel->gp, (sel->n_gp + 1) * sizeof *sel->gp);
                        if (!nv) {
                                r = -ENOMEM;
                                break;
                        }
                        sel->gp = nv;
                        sel->gp[sel->n_gp++] = v[i];
                        memset(&v[i], 0, sizeof v[i]);
                }
                ret_group_points_free(v, n);
        }
        return r;
}

/* For each point of [a, b) that its VM lets go: kept (RET_KEEP_GROUP)
 * when it belongs to a complete group point that another member keeps. */
static int sel_group_keep(struct prune_sel *sel, size_t a, size_t b) {
        for (size_t i = a; i < b; i++) {
                const struct ret_point *p = sel->v[i];
                if (sel->keep[i] || !p->group)
                        continue;
                for (size_t g = 0; g < sel->n_gp && !sel->keep[i]; g++) {
                        const struct ret_group_point *gp = &sel->gp[g];
                        if (strcmp(gp->group, p->group) != 0 || strcmp(gp->id, p->id) != 0)
                                continue;
                        for (size_t m = 0; m < gp->n_members; m++) {
                                size_t ma, mb;
                                int r;
                                if (strcmp(gp->members[m], p->vm) == 0 || !vm_range(sel, gp->members[m], &ma, &mb))
                                        continue;
                                r = sel_decide(sel, ma, mb);
                                if (r < 0)
                                        return r;
                                for (size_t j = ma; j < mb; j++)
                                        if (strcmp(sel->v[j]->id, p->id) == 0 && sel->keep[j] & ~RET_KEEP_GROUP)
                                                sel->keep[i] |= RET_KEEP_GROUP;
                        }
                }
        }
        return 0;
}

static int prune_all(struct store *s, const char *const *vms, size_t n_vms, time_t now, bool dry_run,
                     ret_prune_cb cb, void *userdata, size_t *ret_dropped, const struct store_gc_options *gc,
                     struct store_gc_report *gc_rep) {
        struct prune_sel sel = { .s = s, .now = now };
        _cleanup_free_ bool *gone = NULL;
        size_t dropped = 0;
        int r;

        /* Every VM's points: a member of a group may keep another's. */
        r = ret_points_list(s, NULL, &sel.v, &sel.n);
        if (r < 0)
                return r;
        sel.keep = calloc(MAX(sel.n, 1), sizeof *sel.keep);
        sel.decided = calloc(MAX(sel.n, 1), sizeof *sel.decided);
        gone = calloc(MAX(sel.n, 1), sizeof *gone);
        r = !sel.keep || !sel.decided || !gone ? -ENOMEM : sel_groups(&sel);
        for (size_t a = 0; a < sel.n && r >= 0;) {
                size_t b = a + 1;
                while (b < sel.n && strcmp(sel.v[b]->vm, sel.v[a]->vm) == 0)
                        b++;
                if (vm_selected(sel.v[a]->vm, vms, n_vms)) {
                        r = sel_decide(&sel, a, b);
                        if (r >= 0)
                                r = sel_group_keep(&sel, a, b);
                        if (r >= 0)
                                r = prune_vm(s, sel.v + a, b - a, sel.keep + a, now, dry_run, cb, userdata, &dropped,
                                             gone + a);
                }
                a = b;
        }
        if (ret_dropped)
                *ret_dropped = dropped;
        if (r >= 0 && gc) {
                /* a dry run's points are still there: the mark skips the
                 * ones that would go */
                _cleanup_free_ const struct ret_point **skip = calloc(MAX(sel.n, 1), sizeof *skip);
                size_t n_skip = 0;
                if (!skip)
                        r = -ENOMEM;
                for (size_t i = 0; r >= 0 && dry_run && i < sel.n; i++)
                        if (gone[i])
                                skip[n_skip++] = sel.v[i];
                if (r >= 0)
                        r = ret_gc(s, gc, skip, n_skip, gc_rep);
        }
        ret_points_free(sel.v, sel.n);
        ret_group_points_free(sel.gp, sel.n_gp);
        free(sel.keep);
        free(sel.decided);
        return r < 0 ? r : 0;
}

int ret_prune_points(struct store *s, const char *const *vms, size_t n_vms, time_t now, bool dry_run,
                     ret_prune_cb cb, void *userdata, size_t *ret_dropped) {
        return prune_all(s, vms, n_vms, now, dry_run, cb, userdata, ret_dropped, NULL, NULL);
}

int ret_prune(struct store *s, const char *const *vms, size_t n_vms, time_t now, bool dry_run, ret_prune_cb cb,
              void *userdata, size_t *ret_dropped, const struct store_gc_options *gc, struct store_gc_report *gc_rep) {
        return prune_all(s, vms, n_vms, now, dry_run, cb, userdata, ret_dropped, gc, gc_rep);
}
