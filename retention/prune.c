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

/* One VM's points v[0..n) (sorted oldest first). */
static int prune_vm(struct store *s, struct ret_point **v, size_t n, time_t now, bool dry_run, ret_prune_cb cb,
                    void *userdata, size_t *dropped, bool *gone) {
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
        for (size_t i = 0; i < n; i++) {
                struct ret_prune_item it = { v[i], t[i].keep, false };

                if (!t[i].keep) {
                        r = dry_run ? 1 : drop_point(s, v[i], now);
                        if (r < 0)
                                return r;
                        it.dropped = r > 0;
                        gone[i] = it.dropped;
                        if (r == 0)
                                it.keep = RET_KEEP_PINNED;
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

static int prune_all(struct store *s, const char *const *vms, size_t n_vms, time_t now, bool dry_run,
                     ret_prune_cb cb, void *userdata, size_t *ret_dropped, const struct store_gc_options *gc,
                     struct store_gc_report *gc_rep) {
        _cleanup_free_ bool *gone = NULL;
        struct ret_point **v = NULL;
        size_t n = 0, dropped = 0;
        int r;

        r = ret_points_list(s, n_vms == 1 ? vms[0] : NULL, &v, &n);
        if (r < 0)
                return r;
        if (!(gone = calloc(MAX(n, 1), sizeof *gone))) {
                ret_points_free(v, n);
                return -ENOMEM;
        }
        for (size_t a = 0; a < n && r >= 0;) {
                size_t b = a + 1;
                while (b < n && strcmp(v[b]->vm, v[a]->vm) == 0)
                        b++;
                if (vm_selected(v[a]->vm, vms, n_vms))
                        r = prune_vm(s, v + a, b - a, now, dry_run, cb, userdata, &dropped, gone + a);
                a = b;
        }
        if (ret_dropped)
                *ret_dropped = dropped;
        if (r >= 0 && gc) {
                /* a dry run's points are still there: the mark skips the
                 * ones that would go */
                _cleanup_free_ const struct ret_point **skip = calloc(MAX(n, 1), sizeof *skip);
                size_t n_skip = 0;
                if (!skip)
                        r = -ENOMEM;
                for (size_t i = 0; r >= 0 && dry_run && i < n; i++)
                        if (gone[i])
                                skip[n_skip++] = v[i];
                if (r >= 0)
                        r = ret_gc(s, gc, skip, n_skip, gc_rep);
        }
        ret_points_free(v, n);
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
