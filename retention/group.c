/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Replication groups. A group's members are recorded once, in
 * "groups/<g>/group.json" (created exclusively). A group point is one
 * point of every member with one ID; it becomes visible when its commit
 * object "groups/<g>/points/<id>.json" exists, which is written
 * exclusively after every member's point object: a crash in between
 * leaves member points that are plain points of their VMs, and no group
 * point. See docs/FORMAT.md "Replication groups".
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "retention.h"
#include "retention_i.h"

#define GROUP_FORMAT 1

void ret_group_free(struct ret_group *g) {
        if (!g)
                return;
        free(g->members);
        free(g);
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

/* members (a JSON array of names) into *ret_v, *ret_n, sorted. */
static int members_from_json(json_t *a, char (**ret_v)[65], size_t *ret_n) {
        char(*v)[65];
        json_t *m;
        size_t i;

        if (!json_is_array(a) || json_array_size(a) == 0)
                return -EBADMSG;
        v = calloc(json_array_size(a), sizeof *v);
        if (!v)
                return -ENOMEM;
        json_array_foreach(a, i, m) {
                if (!json_is_string(m) || !name_is_valid(json_string_value(m))) {
                        free(v);
                        return -EBADMSG;
                }
                snprintf(v[i], sizeof v[i], "%s", json_string_value(m));
        }
        qsort(v, json_array_size(a), sizeof *v, cmp_name);
        *ret_v = v;
        *ret_n = json_array_size(a);
        return 0;
}

static json_t *members_to_json(char (*v)[65], size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_string(v[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

int ret_group_create(struct store *s, const char *group, const char *const *vms, size_t n) {
        _cleanup_free_ char(*v)[65] = NULL;
        char name[128], created[21];

        if (!name_is_valid(group) || n == 0)
                return -EINVAL;
        v = calloc(n, sizeof *v);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (!name_is_valid(vms[i]))
                        return -EINVAL;
                snprintf(v[i], sizeof v[i], "%s", vms[i]);
        }
        qsort(v, n, sizeof *v, cmp_name);
        for (size_t i = 1; i < n; i++)
                if (strcmp(v[i], v[i - 1]) == 0)
                        return -EINVAL;
        time_format_iso(time(NULL), created);
        snprintf(name, sizeof name, "groups/%s/group.json", group);
        return ret_put_json(s, name,
                            json_pack("{s:i, s:s, s:o, s:s}", "format", GROUP_FORMAT, "group", group, "members",
                                      members_to_json(v, n), "created", created),
                            true);
}

int ret_group_load(struct store *s, const char *group, struct ret_group **ret) {
        _cleanup_free_ char *text = NULL;
        struct ret_group *g;
        json_t *o, *members;
        json_int_t fmt;
        char name[128];
        int r;

        if (!name_is_valid(group))
                return -ENOENT;
        snprintf(name, sizeof name, "groups/%s/group.json", group);
        r = store_get_object(s, name, &text, NULL);
        if (r < 0)
                return r == -ENOTDIR ? -ENOENT : r;
        o = json_loads(text, 0, NULL);
        if (!o || json_unpack(o, "{s:I, s:o}", "format", &fmt, "members", &members) < 0) {
                json_decref(o);
                return -EBADMSG;
        }
        g = calloc(1, sizeof *g);
        r = !g ? -ENOMEM : fmt > GROUP_FORMAT ? -EPROTONOSUPPORT : members_from_json(members, &g->members, &g->n_members);
        json_decref(o);
        if (r < 0) {
                ret_group_free(g);
                return r;
        }
        snprintf(g->name, sizeof g->name, "%s", group);
        *ret = g;
        return 0;
}

bool ret_group_has(const struct ret_group *g, const char *vm) {
        return bsearch(vm, g->members, g->n_members, sizeof *g->members, cmp_name) != NULL;
}

struct names_ctx {
        char (*v)[65];
        size_t n, cap;
        const char *suffix; /* what follows the name: "/group.json" or ".json" */
        size_t len;         /* the name's exact length, 0: any valid name */
};

static int names_cb(void *userdata, const char *name, uint64_t size) {
        struct names_ctx *c = userdata;
        const char *p = strrchr(name, '/');
        size_t sl = strlen(c->suffix), l;

        (void)size;
        /* groups/<g>/group.json: take <g>; groups/<g>/points/<id>.json: <id>. */
        l = strlen(name);
        if (l < sl || strcmp(name + l - sl, c->suffix) != 0)
                return 0;
        if (c->suffix[0] == '/') {
                const char *g = name + strlen("groups/");
                p = strchr(g, '/');
                if (!p || p != name + l - sl)
                        return 0;
                l = (size_t)(p - g);
                p = g;
        } else {
                p = p ? p + 1 : name;
                l = strlen(p) - sl;
        }
        if (l == 0 || l > 64 || (c->len && l != c->len))
                return 0;
        if (array_reserve(&c->v, &c->cap, c->n + 1, sizeof *c->v) < 0)
                return -ENOMEM;
        memcpy(c->v[c->n], p, l);
        c->v[c->n][l] = 0;
        if (name_is_valid(c->v[c->n]))
                c->n++;
        return 0;
}

int ret_groups_list(struct store *s, char (**ret)[65], size_t *ret_n) {
        struct names_ctx c = { .suffix = "/group.json" };
        int r = store_list(s, "groups/", names_cb, &c);

        if (r < 0) {
                free(c.v);
                return r;
        }
        if (c.n > 1)
                qsort(c.v, c.n, sizeof *c.v, cmp_name);
        *ret = c.v;
        *ret_n = c.n;
        return 0;
}

int ret_group_point_commit(struct store *s, const struct ret_group *g, const char *id, time_t t, bool app) {
        char name[160], when[21], created[21];

        if (strlen(id) != POINT_ID_LEN || !name_is_valid(id))
                return -EINVAL;
        time_format_iso(t, when);
        time_format_iso(time(NULL), created);
        snprintf(name, sizeof name, "groups/%s/points/%s.json", g->name, id);
        return ret_put_json(s, name,
                            json_pack("{s:i, s:s, s:s, s:s, s:s, s:o, s:s}", "format", GROUP_FORMAT, "group", g->name,
                                      "id", id, "time", when, "type", app ? "app" : "crash", "members",
                                      members_to_json(g->members, g->n_members), "created", created),
                            true);
}

void ret_group_points_free(struct ret_group_point *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i].members);
        free(v);
}

int ret_group_point_load(struct store *s, const char *group, const char *id, struct ret_group_point *gp) {
        _cleanup_free_ char *text = NULL;
        const char *type, *jid;
        json_t *o, *members;
        json_int_t fmt;
        char name[160];
        int r;

        snprintf(name, sizeof name, "groups/%s/points/%s.json", group, id);
        r = store_get_object(s, name, &text, NULL);
        if (r < 0)
                return r == -ENOTDIR ? -ENOENT : r;
        o = json_loads(text, 0, NULL);
        if (!o || json_unpack(o, "{s:I, s:s, s:s, s:o}", "format", &fmt, "id", &jid, "type", &type, "members",
                              &members) < 0 || strcmp(jid, id) != 0 || point_id_parse(id, &gp->time) < 0) {
                json_decref(o);
                return -EBADMSG;
        }
        r = fmt > GROUP_FORMAT ? -EPROTONOSUPPORT : members_from_json(members, &gp->members, &gp->n_members);
        gp->app = strcmp(type, "app") == 0;
        snprintf(gp->group, sizeof gp->group, "%s", group);
        snprintf(gp->id, sizeof gp->id, "%s", id);
        json_decref(o);
        return r;
}

int ret_group_points_list(struct store *s, const char *group, struct ret_group_point **ret, size_t *ret_n) {
        struct names_ctx c = { .suffix = ".json", .len = POINT_ID_LEN };
        struct ret_group_point *v = NULL;
        char prefix[128];
        size_t n = 0;
        int r;

        if (!name_is_valid(group))
                return -EINVAL;
        snprintf(prefix, sizeof prefix, "groups/%s/points/", group);
        r = store_list(s, prefix, names_cb, &c);
        if (r >= 0 && c.n > 1)
                qsort(c.v, c.n, sizeof *c.v, cmp_name);
        if (r >= 0 && !(v = calloc(MAX(c.n, 1), sizeof *v)))
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < c.n; i++) {
                r = ret_group_point_load(s, group, c.v[i], &v[n]);
                if (r == -ENOENT || r == -EBADMSG) {
                        if (r == -EBADMSG)
                                log_warn("groups/%s/points/%s.json: does not parse; ignored", group, c.v[i]);
                        free(v[n].members);
                        memset(&v[n], 0, sizeof v[n]);
                        r = 0;
                        continue;
                }
                n++;
        }
        free(c.v);
        if (r < 0) {
                ret_group_points_free(v, n);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

/* Is vm/id in v[0..n) (sorted by VM then ID)? */
static bool point_listed(struct ret_point *const *v, size_t n, const char *vm, const char *id) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int c = strcmp(v[mid]->vm, vm);
                if (c == 0)
                        c = strcmp(v[mid]->id, id);
                if (c == 0)
                        return true;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return false;
}

bool ret_group_point_complete(const struct ret_group_point *gp, struct ret_point *const *v, size_t n) {
        for (size_t i = 0; i < gp->n_members; i++)
                if (!point_listed(v, n, gp->members[i], gp->id))
                        return false;
        return gp->n_members > 0;
}

int ret_group_point_resolve(struct store *s, const char *group, const char *spec, struct ret_group_point *ret) {
        struct ret_group_point *gv = NULL;
        struct ret_point **v = NULL;
        size_t gn = 0, n = 0;
        bool app = spec && strcmp(spec, "latest-app") == 0, latest = !spec || strcmp(spec, "latest") == 0;
        int r;

        r = ret_group_points_list(s, group, &gv, &gn);
        if (r < 0)
                return r;
        r = ret_points_list(s, NULL, &v, &n);
        if (r < 0)
                goto out;
        r = -ENOENT;
        for (size_t i = gn; i-- > 0;) {
                if (!(app || latest) && strcmp(gv[i].id, spec) != 0)
                        continue;
                if ((app && !gv[i].app) || !ret_group_point_complete(&gv[i], v, n))
                        continue;
                *ret = gv[i];
                memset(&gv[i], 0, sizeof gv[i]);
                r = 0;
                break;
        }
out:
        ret_points_free(v, n);
        ret_group_points_free(gv, gn);
        return r;
}
