/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs group: replication groups (multi-VM consistency). The records and
 * group points are retention/group.c's; group replicate and failback are
 * options of rpfs replicate and rpfs failback.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "retention.h"

static const char group_help[] =
        "Usage: rpfs group VAULT create G VM [VM ...]\n"
        "       rpfs group VAULT list [--json]\n"
        "       rpfs group VAULT show G [--json]\n"
        "\n"
        "A replication group is a set of VMs replicated together: one replicate of the\n"
        "group (rpfs replicate VAULT --group G --vm VM --disk ... --vm ...) stores a\n"
        "point of every member with one ID, visible as a group point once every member's\n"
        "point is stored. rpfs failback --group G brings every member to the newest\n"
        "group point. The first group replicate records the members when 'create' was\n"
        "not run.\n"
        "\n"
        "  create G VM...   record group G with these members\n"
        "  list             the groups and their members\n"
        "  show G           members and complete group points (newest last)\n"
        "  --json           JSON output\n"
        "  -h, --help       show this help\n";

static json_t *members_json(char (*v)[65], size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
}

static void members_print(const char *name, char (*v)[65], size_t n) {
        printf("%s:", name);
        for (size_t i = 0; i < n; i++)
                printf(" %s", v[i]);
        printf("\n");
}

static int group_list(struct store *s, bool json) {
        _cleanup_free_ char(*names)[65] = NULL;
        json_t *out = json_array();
        size_t n = 0;
        int r = ret_groups_list(s, &names, &n);

        for (size_t i = 0; r >= 0 && i < n; i++) {
                struct ret_group *g;
                r = ret_group_load(s, names[i], &g);
                if (r < 0)
                        break;
                if (json)
                        json_array_append_new(out, json_pack("{s:s, s:o}", "group", g->name, "members",
                                                             members_json(g->members, g->n_members)));
                else
                        members_print(g->name, g->members, g->n_members);
                ret_group_free(g);
        }
        if (r >= 0 && json)
                cli_json_print(out, JSON_INDENT(2));
        else
                json_decref(out);
        return r < 0 ? log_error_errno(r, "listing groups failed"), 1 : 0;
}

static int group_show(struct store *s, const char *name, bool json) {
        struct ret_group *g = NULL;
        struct ret_group_point *gv = NULL;
        struct ret_point **v = NULL;
        size_t gn = 0, n = 0;
        json_t *pts = json_array();
        int r = ret_group_load(s, name, &g);

        if (r == -ENOENT) {
                log_error("no group %s", name);
                json_decref(pts);
                return 4;
        }
        if (r >= 0)
                r = ret_group_points_list(s, name, &gv, &gn);
        if (r >= 0)
                r = ret_points_list(s, NULL, &v, &n);
        if (r >= 0 && !json)
                members_print(g->name, g->members, g->n_members);
        for (size_t i = 0; r >= 0 && i < gn; i++) {
                if (!ret_group_point_complete(&gv[i], v, n))
                        continue;
                if (json)
                        json_array_append_new(pts, json_pack("{s:s, s:s, s:o}", "id", gv[i].id, "type",
                                                             gv[i].app ? "app" : "crash", "members",
                                                             members_json(gv[i].members, gv[i].n_members)));
                else
                        printf("%s %s\n", gv[i].id, gv[i].app ? "app" : "crash");
        }
        if (r >= 0 && json)
                cli_json_print(json_pack("{s:s, s:o, s:O}", "group", g->name, "members",
                                         members_json(g->members, g->n_members), "points", pts), JSON_INDENT(2));
        json_decref(pts);
        ret_points_free(v, n);
        ret_group_points_free(gv, gn);
        ret_group_free(g);
        return r < 0 ? log_error_errno(r, "reading group %s failed", name), 1 : 0;
}

int cmd_group(struct cli *cli, int argc, char **argv) {
        static const struct option opts[] = { { "json", no_argument, NULL, 'J' }, {} };
        struct store *s = NULL;
        const char *verb;
        bool json = false;
        int c, r;

        while ((c = cli_getopt(cli, argc, argv, "", opts, group_help)) >= 0) {
                if (c != 'J')
                        return cli->exit;
                json = true;
        }
        if (argc - optind < 2)
                return cli_usage_error("group", "expected VAULT and create, list or show");
        verb = argv[optind + 1];
        if (strcmp(verb, "create") == 0) {
                if (argc - optind < 4)
                        return cli_usage_error("group", "create: expected G and at least one VM");
                for (int i = optind + 2; i < argc; i++)
                        if (!name_is_valid(argv[i]))
                                return cli_usage_error("group", "invalid name '%s'", argv[i]);
        } else if (strcmp(verb, "show") == 0) {
                if (argc - optind != 3 || !name_is_valid(argv[optind + 2]))
                        return cli_usage_error("group", "show: expected one group name");
        } else if (strcmp(verb, "list") != 0 || argc - optind != 2)
                return cli_usage_error("group", "expected create G VM..., list or show G");
        if (cli_open_vault(cli, argv[optind], &s) < 0)
                return 1;
        if (strcmp(verb, "create") == 0) {
                r = ret_group_create(s, argv[optind + 2], (const char *const *)argv + optind + 3,
                                     (size_t)(argc - optind - 3));
                if (r == -EEXIST)
                        log_error("group %s exists", argv[optind + 2]);
                else if (r == -EINVAL)
                        log_error("group %s: a member is given twice", argv[optind + 2]);
                else if (r < 0)
                        log_error_errno(r, "recording group %s failed", argv[optind + 2]);
                r = r < 0 ? 1 : 0;
        } else if (strcmp(verb, "list") == 0)
                r = group_list(s, json);
        else
                r = group_show(s, argv[optind + 2], json);
        store_free(s);
        return r;
}
