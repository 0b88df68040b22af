/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs failback --group G: every member of a replication group to one
 * group point, by the per-VM failback (failback_run()) member after
 * member. Everything that can be checked is checked first, before any
 * member's target is written: the group point exists and is complete (a
 * point of every member), every member has a target and every target is a
 * member's, every point has the disks named, every target exists (unless
 * --create). Site Recovery: a recovery plan cannot fail back unless all
 * its VMs have a point.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd-failback_i.h"
#include "retention.h"

struct gtarget {
        char vm[65];
        struct sync_fb_target t;
        char disk[65];
};

/* VM/DISK=PATH into *g. 0 or an exit status. */
static int gtarget_parse(const char *arg, struct gtarget *g) {
        const char *slash = strchr(arg, '/'), *eq = strchr(arg, '=');

        if (!slash || !eq || eq < slash || (size_t)(slash - arg) >= sizeof g->vm ||
            (size_t)(eq - slash - 1) >= sizeof g->disk || !eq[1])
                return cli_usage_error("failback", "invalid --target '%s': expected VM/DISK=PATH with --group", arg);
        memcpy(g->vm, arg, (size_t)(slash - arg));
        g->vm[slash - arg] = 0;
        memcpy(g->disk, slash + 1, (size_t)(eq - slash - 1));
        g->disk[eq - slash - 1] = 0;
        if (!name_is_valid(g->vm) || !name_is_valid(g->disk))
                return cli_usage_error("failback", "invalid VM or disk name in --target '%s'", arg);
        g->t.disk = g->disk;
        g->t.path = eq + 1;
        return 0;
}

/* The group point to go to, into *gp (spec: --point; for --complete the
 * newest). 0 or an exit status, said why. */
static int group_point(struct store *s, const struct failback_args *a, const struct ret_group *g,
                       struct ret_group_point *gp) {
        const char *spec = a->o.action == SYNC_FB_COMPLETE ? "latest" : a->o.point;
        int r = ret_group_point_resolve(s, g->name, spec, gp);

        if (r >= 0)
                return 0;
        if (r != -ENOENT)
                return log_error_errno(r, "group %s: reading its points failed", g->name), 1;
        if (spec && strcmp(spec, "latest") != 0 && strcmp(spec, "latest-app") != 0) {
                char missing[512] = "";
                size_t at = 0;
                for (size_t i = 0; i < g->n_members && at < sizeof missing; i++) {
                        struct ret_point *p;
                        if (ret_point_load(s, g->members[i], spec, &p) >= 0) {
                                ret_point_free(p);
                                continue;
                        }
                        at += (size_t)snprintf(missing + at, sizeof missing - at, "%s%s", at ? ", " : "",
                                               g->members[i]);
                }
                log_error("group %s: %s is not a group point common to every member (%s: no such point); "
                          "nothing written", g->name, spec, *missing ? missing : "no commit object");
        } else
                log_error("group %s: no%s group point common to every member; nothing written", g->name,
                          spec && strcmp(spec, "latest-app") == 0 ? " app-consistent" : "");
        return 4;
}

/* Every member has a target, every target is a member's disk of the point
 * and exists. 0 or an exit status. */
static int group_check(struct store *s, const struct failback_args *a, const struct ret_group *g,
                       const struct ret_group_point *gp, const struct gtarget *t, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!ret_group_has(g, t[i].vm)) {
                        log_error("--target %s/%s: %s is not a member of group %s; nothing written", t[i].vm,
                                  t[i].disk, t[i].vm, g->name);
                        return 2;
                }
        for (size_t m = 0; m < g->n_members; m++) {
                struct ret_point *p = NULL;
                size_t k = 0;
                int r = gp ? ret_point_load(s, g->members[m], gp->id, &p) : 0;

                if (r < 0) {
                        log_error("group %s: member %s has no point %s; nothing written", g->name, g->members[m],
                                  gp->id);
                        return 4;
                }
                for (size_t i = 0; i < n; i++) {
                        struct stat st;
                        if (strcmp(t[i].vm, g->members[m]) != 0)
                                continue;
                        k++;
                        if (p && !ret_point_disk(p, t[i].disk)) {
                                log_error("point %s/%s has no disk %s; nothing written", p->vm, p->id, t[i].disk);
                                ret_point_free(p);
                                return 4;
                        }
                        if (stat(t[i].t.path, &st) < 0 && !a->o.create) {
                                log_error("target %s (%s/%s) is missing; nothing written", t[i].t.path, t[i].vm,
                                          t[i].disk);
                                ret_point_free(p);
                                return 3;
                        }
                }
                ret_point_free(p);
                if (k == 0) {
                        log_error("group %s: member %s has no --target %s/DISK=PATH; nothing written", g->name,
                                  g->members[m], g->members[m]);
                        return 3;
                }
        }
        return 0;
}

/* Run the action for every member in turn (its targets only). */
static int group_run(const struct cli *cli, struct failback_args *a, const struct ret_group *g, const char *id,
                     const struct gtarget *t, size_t n) {
        _cleanup_free_ struct sync_fb_target *mt = calloc(MAX(n, 1), sizeof *mt);
        int code = 0;

        if (!mt)
                return 1;
        for (size_t m = 0; m < g->n_members && code == 0; m++) {
                struct sync_failback_opts o = a->o;
                size_t k = 0;

                for (size_t i = 0; i < n; i++)
                        if (strcmp(t[i].vm, g->members[m]) == 0)
                                mt[k++] = t[i].t;
                o.vm = g->members[m];
                o.targets = mt;
                o.n_targets = k;
                if (id)
                        o.point = id;
                if (!cli->quiet && !a->json && !a->status)
                        printf("%s:\n", o.vm);
                code = a->status ? failback_status(&o, a->json) : failback_run(cli, &o, a->json);
                if (code != 0 && m > 0)
                        log_error("group %s: stopped at member %s; the members before it are done", g->name, o.vm);
        }
        return code;
}

int failback_group(const struct cli *cli, char **argv, struct failback_args *a) {
        _cleanup_free_ struct gtarget *t = calloc(MAX(a->n_g, 1), sizeof *t);
        struct ret_group_point gp = { 0 };
        struct ret_group *g = NULL;
        struct store *s = NULL;
        bool need_point = a->o.action != SYNC_FB_COMMIT && !a->status;
        int code;

        if (!t)
                return 1;
        for (size_t i = 0; i < a->n_g; i++) {
                code = gtarget_parse(a->gtargets[i], &t[i]);
                if (code)
                        return code;
        }
        if (cli_open_vault(cli, argv[optind], &s) < 0)
                return 4;
        code = ret_group_load(s, a->group, &g);
        if (code < 0) {
                if (code == -ENOENT)
                        log_error("no group %s in %s", a->group, argv[optind]);
                else
                        log_error_errno(code, "group %s: reading it failed", a->group);
                store_free(s);
                return 4;
        }
        code = need_point ? group_point(s, a, g, &gp) : 0;
        if (code == 0)
                code = group_check(s, a, g, need_point ? &gp : NULL, t, a->n_g);
        store_free(s);
        if (code == 0 && need_point && !cli->quiet && !a->json)
                printf("group %s: point %s (%s)\n", g->name, gp.id, gp.app ? "app" : "crash");
        if (code == 0)
                code = group_run(cli, a, g, need_point ? gp.id : NULL, t, a->n_g);
        free(gp.members);
        ret_group_free(g);
        return code;
}
