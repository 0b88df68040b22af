/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs points: list recovery points.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "retention.h"

static const char points_help[] =
        "Usage: rpfs points VAULT [VM | --group G] [--json]\n"
        "\n"
        "List recovery points, oldest first, of one VM or of all.\n"
        "\n"
        "  --group G    only the member points of replication group G's complete group points\n"
        "  --json       one JSON array: vm, id, time, type, group, disks (name, size, format)\n"
        "  -h, --help   show this help\n";

static void print_json(struct ret_point **v, size_t n) {
        json_t *arr = json_array();

        for (size_t i = 0; i < n; i++) {
                json_t *disks = json_array(), *o;
                char when[21];
                for (size_t k = 0; k < v[i]->n_disks; k++)
                        json_array_append_new(disks, json_pack("{s:s, s:I, s:s}", "name", v[i]->disks[k].name,
                                                               "size", (json_int_t)v[i]->disks[k].size,
                                                               "format", v[i]->disks[k].format));
                time_format_iso(v[i]->time, when);
                o = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:o}", "vm", v[i]->vm, "id", v[i]->id, "time", when,
                              "type", v[i]->app ? "app" : "crash", "group", v[i]->group, "disks", disks);
                json_array_append_new(arr, o);
        }
        if (cli_json_print(arr, JSON_INDENT(2)) < 0)
                puts("[]");
}

/* Keep in v[0..*n) only the points of G's complete group points. */
static int filter_group(struct store *s, const char *group, struct ret_point **v, size_t *n) {
        _cleanup_free_ bool *in = calloc(MAX(*n, 1), sizeof *in);
        struct ret_group_point *gv = NULL;
        size_t gn = 0, k = 0;
        int r = in ? ret_group_points_list(s, group, &gv, &gn) : -ENOMEM;

        if (r < 0)
                return r;
        /* Decide first: the completeness check reads the whole list. */
        for (size_t i = 0; i < *n; i++)
                for (size_t g = 0; g < gn && !in[i]; g++)
                        if (strcmp(gv[g].id, v[i]->id) == 0 && ret_group_point_complete(&gv[g], v, *n))
                                for (size_t m = 0; m < gv[g].n_members && !in[i]; m++)
                                        in[i] = strcmp(gv[g].members[m], v[i]->vm) == 0;
        for (size_t i = 0; i < *n; i++) {
                if (in[i])
                        v[k++] = v[i];
                else
                        ret_point_free(v[i]);
        }
        *n = k;
        ret_group_points_free(gv, gn);
        return 0;
}

static void print_table(struct ret_point **v, size_t n) {
        printf("%-20s %-17s %-6s %-12s %s\n", "VM", "POINT", "TYPE", "GROUP", "DISKS");
        for (size_t i = 0; i < n; i++) {
                printf("%-20s %-17s %-6s %-12s", v[i]->vm, v[i]->id, v[i]->app ? "app" : "crash",
                       v[i]->group ? v[i]->group : "-");
                for (size_t k = 0; k < v[i]->n_disks; k++) {
                        char sz[24];
                        printf("%s%s:%s", k ? " " : " ", v[i]->disks[k].name,
                               format_bytes(v[i]->disks[k].size, sz, sizeof sz));
                }
                putchar('\n');
        }
}

int cmd_points(struct cli *cli, int argc, char **argv) {
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'J' },
                { "group", required_argument, NULL, 'g' },
                {}
        };
        const char *group = NULL;
        bool json = false;
        struct store *s = NULL;
        struct ret_point **v = NULL;
        const char *vm = NULL;
        size_t n = 0;
        int c, r;

        while ((c = cli_getopt(cli, argc, argv, "", opts, points_help)) >= 0) {
                switch (c) {
                case 'J':
                        json = true;
                        break;
                case 'g':
                        if (!name_is_valid(optarg))
                                return cli_usage_error("points", "invalid group name '%s'", optarg);
                        group = optarg;
                        break;
                default:
                        return cli->exit;
                }
        }
        if (argc - optind < 1 || argc - optind > 2)
                return cli_usage_error("points", "expected VAULT [VM]");
        if (argc - optind == 2) {
                vm = argv[optind + 1];
                if (!name_is_valid(vm))
                        return cli_usage_error("points", "invalid VM name '%s'", vm);
        }
        if (vm && group)
                return cli_usage_error("points", "VM and --group exclude each other");
        if (cli_open_vault(cli, argv[optind], &s) < 0)
                return 1;
        r = ret_points_list(s, vm, &v, &n);
        if (r >= 0 && group)
                r = filter_group(s, group, v, &n);
        if (r < 0) {
                log_error("%s: listing points failed: %s", argv[optind], cli_vault_strerror(argv[optind], r));
                store_free(s);
                return 1;
        }
        if (vm && n == 0 && !json) {
                log_error("%s: VM '%s' has no points", argv[optind], vm);
                store_free(s);
                return 1;
        }
        if (json)
                print_json(v, n);
        else
                print_table(v, n);
        ret_points_free(v, n);
        store_free(s);
        return 0;
}
