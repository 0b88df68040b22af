/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * MOUNT/groups: the complete points of replication groups.
 *   groups/<g>/<id>/<vm> -> ../../../<vm>/points/<id>
 *   groups/<g>/latest, latest-app -> <id>
 * A group point is shown while its commit object and every member's point
 * are in the catalog (catalog.c lists both). A VM named "groups" is hidden
 * while the vault has group points.
 */
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fuse.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_i.h"

static int cmp_gp(const void *a, const void *b) {
        const struct ret_group_point *x = a, *y = b;
        int c = strcmp(x->group, y->group);
        return c ? c : strcmp(x->id, y->id);
}

void fs_groups_free(struct ret_group_point *v, size_t n) { ret_group_points_free(v, n); }

struct gnames {
        struct ret_group_point *v; /* group and id only */
        size_t n, cap;
};

/* groups/<g>/points/<id>.json */
static int collect_gp(void *userdata, const char *name, uint64_t size) {
        struct gnames *c = userdata;
        const char *g = name + strlen("groups/"), *slash = strchr(g, '/');
        struct ret_group_point gp = { 0 };

        (void)size;
        if (!slash || (size_t)(slash - g) > 64 || strncmp(slash, "/points/", 8) != 0 ||
            strlen(slash + 8) != POINT_ID_LEN + 5 || strcmp(slash + 8 + POINT_ID_LEN, ".json") != 0)
                return 0;
        memcpy(gp.group, g, (size_t)(slash - g));
        memcpy(gp.id, slash + 8, POINT_ID_LEN);
        if (!name_is_valid(gp.group) || !name_is_valid(gp.id))
                return 0;
        if (array_reserve(&c->v, &c->cap, c->n + 1, sizeof *c->v) < 0)
                return -ENOMEM;
        c->v[c->n++] = gp;
        return 0;
}

int fs_groups_load(struct fs *fs, struct ret_group_point **ret, size_t *ret_n) {
        struct gnames c = { 0 };
        size_t n = 0;
        int r = store_list(fs->s, "groups/", collect_gp, &c);

        for (size_t i = 0; r >= 0 && i < c.n; i++) {
                struct ret_group_point *old;
                char group[65], id[POINT_ID_LEN + 1];

                snprintf(group, sizeof group, "%s", c.v[i].group);
                snprintf(id, sizeof id, "%s", c.v[i].id);
                /* Commit objects are immutable: reuse the one loaded before. */
                pthread_mutex_lock(&fs->cat_lock);
                old = fs->n_gpoints ? bsearch(&c.v[i], fs->gpoints, fs->n_gpoints, sizeof *fs->gpoints, cmp_gp) : NULL;
                if (old) {
                        c.v[n] = *old;
                        c.v[n].members = calloc(MAX(old->n_members, 1), sizeof *old->members);
                        if (c.v[n].members)
                                memcpy(c.v[n].members, old->members, old->n_members * sizeof *old->members);
                        else
                                r = -ENOMEM;
                }
                pthread_mutex_unlock(&fs->cat_lock);
                if (!old) {
                        r = ret_group_point_load(fs->s, group, id, &c.v[n]);
                        if (r == -ENOENT || r == -EBADMSG || r == -EPROTONOSUPPORT) {
                                memset(&c.v[n], 0, sizeof c.v[n]);
                                r = 0;
                                continue;
                        }
                }
                if (r >= 0)
                        n++;
        }
        if (r < 0) {
                ret_group_points_free(c.v, n);
                return r;
        }
        if (n > 1)
                qsort(c.v, n, sizeof *c.v, cmp_gp);
        *ret = c.v;
        *ret_n = n;
        return 0;
}

/* Under cat_lock: is group point gp complete in the catalog? */
static bool complete_locked(struct fs *fs, const struct ret_group_point *gp) {
        for (size_t i = 0; i < gp->n_members; i++)
                if (!fs_catalog_find_locked(fs, gp->members[i], gp->id))
                        return false;
        return gp->n_members > 0;
}

bool fs_groups_path(struct fs *fs, const char *path, const char **rel) {
        bool any = false;

        if (strncmp(path, "/groups", 7) != 0 || (path[7] && path[7] != '/'))
                return false;
        pthread_mutex_lock(&fs->cat_lock);
        for (size_t i = 0; i < fs->n_gpoints && !any; i++)
                any = complete_locked(fs, &fs->gpoints[i]);
        pthread_mutex_unlock(&fs->cat_lock);
        *rel = path[7] ? path + 8 : "";
        return any;
}

/* What rel names, under cat_lock. */
enum gnode { G_ROOT, G_GROUP, G_POINT, G_MEMBER, G_LATEST, G_LATEST_APP };
struct gres {
        enum gnode t;
        const struct ret_group_point *gp; /* G_POINT, G_MEMBER, G_LATEST* */
        char group[65];
        const char *member;
};

/* The newest complete (app: app-consistent) point of group, or NULL. */
static const struct ret_group_point *latest_locked(struct fs *fs, const char *group, bool app) {
        for (size_t i = fs->n_gpoints; i-- > 0;)
                if (strcmp(fs->gpoints[i].group, group) == 0 && (!app || fs->gpoints[i].app) &&
                    complete_locked(fs, &fs->gpoints[i]))
                        return &fs->gpoints[i];
        return NULL;
}

static int resolve_locked(struct fs *fs, const char *rel, struct gres *g) {
        char buf[256], *comp[4], *save = NULL, *t;
        size_t nc = 0;

        memset(g, 0, sizeof *g);
        if (strlen(rel) >= sizeof buf)
                return -ENAMETOOLONG;
        strcpy(buf, rel);
        for (t = strtok_r(buf, "/", &save); t && nc < ELEMENTSOF(comp); t = strtok_r(NULL, "/", &save))
                comp[nc++] = t;
        if (t || nc > 3)
                return -ENOENT;
        if (nc == 0)
                return 0;
        snprintf(g->group, sizeof g->group, "%s", comp[0]);
        if (!latest_locked(fs, g->group, false))
                return -ENOENT;
        g->t = G_GROUP;
        if (nc == 1)
                return 0;
        if (nc == 2 && (strcmp(comp[1], "latest") == 0 || strcmp(comp[1], "latest-app") == 0)) {
                g->t = comp[1][6] ? G_LATEST_APP : G_LATEST;
                g->gp = latest_locked(fs, g->group, g->t == G_LATEST_APP);
                return g->gp ? 0 : -ENOENT;
        }
        for (size_t i = 0; i < fs->n_gpoints && !g->gp; i++)
                if (strcmp(fs->gpoints[i].group, g->group) == 0 && strcmp(fs->gpoints[i].id, comp[1]) == 0 &&
                    complete_locked(fs, &fs->gpoints[i]))
                        g->gp = &fs->gpoints[i];
        if (!g->gp)
                return -ENOENT;
        g->t = G_POINT;
        if (nc == 2)
                return 0;
        for (size_t i = 0; i < g->gp->n_members; i++)
                if (strcmp(g->gp->members[i], comp[2]) == 0) {
                        g->t = G_MEMBER;
                        g->member = g->gp->members[i];
                        return 0;
                }
        return -ENOENT;
}

static void link_text(const struct gres *g, char *buf, size_t size) {
        if (g->t == G_MEMBER)
                snprintf(buf, size, "../../../%s/points/%s", g->member, g->gp->id);
        else
                snprintf(buf, size, "%s", g->gp->id);
}

int fs_groups_getattr(struct fs *fs, const char *rel, struct stat *st) {
        struct gres g;
        char target[256];
        int r;

        fs_catalog_lock_fresh(fs, false);
        r = resolve_locked(fs, rel, &g);
        memset(st, 0, sizeof *st);
        st->st_uid = getuid();
        st->st_gid = getgid();
        st->st_nlink = 1;
        st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = g.gp ? g.gp->time : fs->started;
        if (r == 0 && (g.t == G_MEMBER || g.t == G_LATEST || g.t == G_LATEST_APP)) {
                link_text(&g, target, sizeof target);
                st->st_mode = S_IFLNK | 0777;
                st->st_size = (off_t)strlen(target);
        } else if (r == 0) {
                st->st_mode = S_IFDIR | 0555;
                st->st_nlink = 2;
        }
        pthread_mutex_unlock(&fs->cat_lock);
        return r;
}

int fs_groups_readlink(struct fs *fs, const char *rel, char *buf, size_t size) {
        struct gres g;
        int r;

        pthread_mutex_lock(&fs->cat_lock);
        r = resolve_locked(fs, rel, &g);
        if (r == 0 && g.t != G_MEMBER && g.t != G_LATEST && g.t != G_LATEST_APP)
                r = -EINVAL;
        if (r == 0)
                link_text(&g, buf, size);
        pthread_mutex_unlock(&fs->cat_lock);
        return r;
}

int fs_groups_readdir(struct fs *fs, const char *rel, void *buf, void *filler) {
        fuse_fill_dir_t fuse_fill = (fuse_fill_dir_t)filler;
        const char *last = NULL;
        struct gres g;
        int r;

#define fill(b, name) fuse_fill(b, name, NULL, 0, 0)

        fs_catalog_lock_fresh(fs, false);
        r = resolve_locked(fs, rel, &g);
        if (r == 0 && g.t != G_ROOT && g.t != G_GROUP && g.t != G_POINT)
                r = -ENOTDIR;
        if (r == 0) {
                fill(buf, ".");
                fill(buf, "..");
        }
        for (size_t i = 0; r == 0 && g.t != G_POINT && i < fs->n_gpoints; i++) {
                const struct ret_group_point *p = &fs->gpoints[i];
                if (!complete_locked(fs, p))
                        continue;
                if (g.t == G_ROOT && (!last || strcmp(last, p->group) != 0)) {
                        fill(buf, p->group);
                        last = p->group;
                }
                else if (g.t == G_GROUP && strcmp(p->group, g.group) == 0)
                        fill(buf, p->id);
        }
        if (r == 0 && g.t == G_GROUP) {
                fill(buf, "latest");
                if (latest_locked(fs, g.group, true))
                        fill(buf, "latest-app");
        }
        for (size_t i = 0; r == 0 && g.t == G_POINT && i < g.gp->n_members; i++)
                fill(buf, g.gp->members[i]);
#undef fill
        pthread_mutex_unlock(&fs->cat_lock);
        return r;
}
