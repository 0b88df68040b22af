/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The catalog: which points the vault holds, as the mount shows them.
 *
 * The vault is re-listed at most every CATALOG_TTL seconds, on access, by a
 * thread of its own, never on a FUSE request's thread: a vault that hangs
 * (an endpoint that accepts connections and never answers) cannot hold a
 * lookup longer than the mount's --timeout. A lookup that finds the catalog
 * stale asks for a refresh and waits for it, at most until --timeout after
 * the refresh started; when the refresh fails, or is still running by
 * then, the lookup answers from the last listing the mount read. While the
 * vault is unreachable, lookups do not wait at all (the last refresh
 * failed), and a refresh is tried again every CATALOG_TTL seconds.
 *
 * The last listing is never replaced by a listing that failed, partly or
 * whole: a vault that vanished (a directory moved away, a container that
 * cannot be listed) keeps showing what it held, and reads of what it can
 * no longer serve fail with EIO. Never an empty tree: backup tools that
 * mirror the mount (rsync --delete) act on what it lists.
 *
 * Points are immutable: one loaded stays loaded; a new listing loads only
 * the new ones and drops those that are gone.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fs_i.h"

void fs_point_unref(struct fs_point *pt) {
        if (!pt || atomic_fetch_sub(&pt->refs, 1) != 1)
                return;
        fs_views_free(pt);
        ret_point_free(pt->p);
        free(pt->seeds);
        free(pt);
}

static int cmp_fs_point(const void *a, const void *b) {
        const struct fs_point *x = *(struct fs_point *const *)a, *y = *(struct fs_point *const *)b;
        int c = strcmp(x->p->vm, y->p->vm);
        return c ? c : strcmp(x->p->id, y->p->id);
}

static struct fs_point *point_new(struct fs *fs, struct ret_point *p) {
        struct fs_point *pt = calloc(1, sizeof *pt);
        if (!pt)
                return NULL;
        atomic_init(&pt->refs, 1);
        pt->p = p;
        for (size_t k = 0; k < fs->n_seeds; k++) {
                if (strcmp(fs->seeds[k].vm, p->vm) != 0)
                        continue;
                for (size_t i = 0; i < p->n_disks; i++) {
                        if (strcmp(fs->seeds[k].disk, p->disks[i].name) != 0)
                                continue;
                        if (!pt->seeds && !(pt->seeds = calloc(p->n_disks, sizeof *pt->seeds)))
                                break;
                        pt->seeds[i] = fs->seeds[k].seed;
                }
        }
        return pt;
}

struct names {
        char (*v)[2][65];
        size_t n, cap;
};

static int collect_name(void *userdata, const char *name, uint64_t size) {
        struct names *c = userdata;
        const char *p = name + strlen("points/"), *slash = strchr(p, '/');

        (void)size;
        if (!slash || (size_t)(slash - p) > 64 || strlen(slash + 1) != POINT_ID_LEN + 5 ||
            strcmp(slash + 1 + POINT_ID_LEN, ".json") != 0)
                return 0;
        if (array_reserve(&c->v, &c->cap, c->n + 1, sizeof *c->v) < 0)
                return -ENOMEM;
        memcpy(c->v[c->n][0], p, (size_t)(slash - p));
        c->v[c->n][0][slash - p] = 0;
        memcpy(c->v[c->n][1], slash + 1, POINT_ID_LEN);
        c->v[c->n][1][POINT_ID_LEN] = 0;
        c->n++;
        return 0;
}

struct fs_point *fs_catalog_find_locked(struct fs *fs, const char *vm, const char *id) {
        size_t lo = 0, hi = fs->n_points;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                const struct ret_point *p = fs->points[mid]->p;
                int c = strcmp(p->vm, vm);
                if (c == 0)
                        c = strcmp(p->id, id);
                if (c == 0)
                        return fs->points[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

struct fs_point *fs_catalog_latest_locked(struct fs *fs, const char *vm, bool app) {
        struct fs_point *best = NULL;
        for (size_t i = 0; i < fs->n_points; i++)
                if (strcmp(fs->points[i]->p->vm, vm) == 0 && (!app || fs->points[i]->p->app))
                        best = fs->points[i];
        return best;
}

bool fs_catalog_vm_exists_locked(struct fs *fs, const char *vm) {
        for (size_t i = 0; i < fs->n_points; i++)
                if (strcmp(fs->points[i]->p->vm, vm) == 0)
                        return true;
        return false;
}

/* List the vault and load the points not yet loaded; on success the new
 * catalog replaces the old one. A point that vanished between the listing
 * and its load (-ENOENT) is left out; any other failure fails the whole
 * refresh and keeps the old catalog. */
static int catalog_load(struct fs *fs) {
        struct names nm = { 0 };
        struct fs_point **nv = NULL, **old = NULL;
        struct ret_group_point *gv = NULL;
        size_t n = 0, n_old = 0, gn = 0;
        int r;

        r = store_list(fs->s, "points/", collect_name, &nm);
        if (r >= 0)
                r = fs_groups_load(fs, &gv, &gn);
        if (r < 0)
                goto out;
        (void)store_refresh(fs->s);
        nv = calloc(MAX(nm.n, 1), sizeof *nv);
        if (!nv) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < nm.n; i++) {
                struct fs_point *pt;
                struct ret_point *p;

                pthread_mutex_lock(&fs->cat_lock);
                pt = fs_catalog_find_locked(fs, nm.v[i][0], nm.v[i][1]);
                if (pt)
                        atomic_fetch_add(&pt->refs, 1);
                pthread_mutex_unlock(&fs->cat_lock);
                if (!pt) {
                        r = ret_point_load(fs->s, nm.v[i][0], nm.v[i][1], &p);
                        if (r == -ENOENT)
                                continue;
                        if (r < 0) {
                                if (r == -EBADMSG || r == -EPROTONOSUPPORT) {
                                        /* This point can never be shown; the others can. */
                                        log_warn("points/%s/%s.json: %s; not shown", nm.v[i][0], nm.v[i][1],
                                                 strerror(-r));
                                        continue;
                                }
                                goto out;
                        }
                        if (p->block_size != fs->bs || !(pt = point_new(fs, p))) {
                                ret_point_free(p);
                                continue;
                        }
                }
                nv[n++] = pt;
        }
        r = 0;
        qsort(nv, n, sizeof *nv, cmp_fs_point);
        pthread_mutex_lock(&fs->cat_lock);
        old = fs->points;
        n_old = fs->n_points;
        fs->points = nv;
        fs->n_points = n;
        {
                struct ret_group_point *gt = fs->gpoints;
                size_t gnt = fs->n_gpoints;
                fs->gpoints = gv;
                fs->n_gpoints = gn;
                gv = gt; /* the old list, freed below */
                gn = gnt;
        }
        pthread_mutex_unlock(&fs->cat_lock);
        nv = NULL;
        n = 0;
out:
        for (size_t i = 0; i < n; i++)
                fs_point_unref(nv[i]);
        free(nv);
        for (size_t i = 0; i < n_old; i++)
                fs_point_unref(old[i]);
        free(old);
        free(nm.v);
        fs_groups_free(gv, gn);
        return r;
}

static void *catalog_thread(void *arg) {
        struct fs *fs = arg;
        int r, last = 0;

        pthread_mutex_lock(&fs->cat_lock);
        for (;;) {
                while (!fs->cat_want && !fs->cat_stop)
                        pthread_cond_wait(&fs->cat_cond, &fs->cat_lock);
                if (fs->cat_stop)
                        break;
                fs->cat_want = false;
                fs->cat_refreshing = true;
                fs->cat_started = now_monotonic();
                pthread_mutex_unlock(&fs->cat_lock);

                r = catalog_load(fs);
                if (r < 0 && last >= 0)
                        log_warn("%s: the vault cannot be listed (%s); showing the points listed before",
                                 store_url(fs->s), strerror(-r));
                else if (r >= 0 && last < 0)
                        log_info("%s: the vault can be listed again", store_url(fs->s));
                last = r;

                pthread_mutex_lock(&fs->cat_lock);
                fs->cat_refreshing = false;
                fs->cat_error = r;
                fs->cat_time = now_monotonic();
                pthread_cond_broadcast(&fs->cat_cond);
        }
        pthread_mutex_unlock(&fs->cat_lock);
        return NULL;
}

int fs_catalog_start(struct fs *fs) {
        int r;

        pthread_mutex_init(&fs->cat_lock, NULL);
        pthread_cond_init(&fs->cat_cond, NULL);
        /* The first listing decides whether the mount can serve at all. */
        r = catalog_load(fs);
        if (r < 0)
                return r;
        fs->cat_time = now_monotonic();
        return 0;
}

int fs_catalog_run(struct fs *fs) {
        int r = -pthread_create(&fs->cat_tid, NULL, catalog_thread, fs);
        if (r == 0)
                fs->cat_running = true;
        return r;
}

void fs_catalog_stop(struct fs *fs) {
        if (fs->cat_running) {
                pthread_mutex_lock(&fs->cat_lock);
                fs->cat_stop = true;
                pthread_cond_broadcast(&fs->cat_cond);
                pthread_mutex_unlock(&fs->cat_lock);
                /* A refresh under way ends within the store's time bound. */
                pthread_join(fs->cat_tid, NULL);
                fs->cat_running = false;
        }
        for (size_t i = 0; i < fs->n_points; i++)
                fs_point_unref(fs->points[i]);
        free(fs->points);
        fs->points = NULL;
        fs->n_points = 0;
        fs_groups_free(fs->gpoints, fs->n_gpoints);
        fs->gpoints = NULL;
        fs->n_gpoints = 0;
}

bool fs_catalog_lock_fresh(struct fs *fs, bool even_if_unreachable) {
        double now = now_monotonic(), until;

        pthread_mutex_lock(&fs->cat_lock);
        if (!fs->cat_running || now - fs->cat_time < CATALOG_TTL)
                return true;
        if (!fs->cat_refreshing && !fs->cat_want) {
                fs->cat_want = true;
                fs->cat_started = now;
                pthread_cond_broadcast(&fs->cat_cond);
        }
        /* While the vault cannot be listed, answer at once from the last
         * listing; otherwise wait for the refresh, within the timeout. */
        if (fs->cat_error < 0 && !even_if_unreachable)
                return false;
        until = fs->cat_started + MAX(fs->o.timeout, 1u);
        while ((fs->cat_refreshing || fs->cat_want) && !fs->cat_stop) {
                struct timespec ts;
                double left = until - now_monotonic(), t;

                if (left <= 0)
                        break;
                clock_gettime(CLOCK_REALTIME, &ts);
                t = (double)ts.tv_sec + ts.tv_nsec / 1e9 + left;
                ts.tv_sec = (time_t)t;
                ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
                pthread_cond_timedwait(&fs->cat_cond, &fs->cat_lock, &ts);
        }
        return true;
}
