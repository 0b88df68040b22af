/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs stats: what a mount has served (MOUNTPOINT/.rpfs/stats).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char stats_help[] =
        "Usage: rpfs stats MOUNTPOINT [--json]\n"
        "\n"
        "Print what a mount has served: bytes from zero blocks, the cache, seeds and\n"
        "the vault, blocks and bytes fetched, errors.\n"
        "\n"
        "  --json       the raw JSON object\n"
        "  -h, --help   show this help\n";

int cmd_stats(struct cli *cli, int argc, char **argv) {
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'J' },
                {}
        };
        _cleanup_free_ char *text = NULL;
        char path[4200];
        bool json = false;
        const char *key;
        json_t *o, *v;
        json_error_t err;
        int c, r;

        while ((c = cli_getopt(cli, argc, argv, "", opts, stats_help)) >= 0) {
                switch (c) {
                case 'J':
                        json = true;
                        break;
                default:
                        return cli->exit;
                }
        }
        if (argc - optind != 1)
                return cli_usage_error("stats", "expected MOUNTPOINT");
        snprintf(path, sizeof path, "%s/.rpfs/stats", argv[optind]);
        r = read_file_all(path, &text, NULL);
        if (r < 0) {
                log_error("%s: not an rpfs mount (%s)", argv[optind], strerror(-r));
                return 1;
        }
        if (json) {
                fputs(text, stdout);
                return 0;
        }
        o = json_loads(text, 0, &err);
        if (!o) {
                log_error("%s: unreadable stats", path);
                return 1;
        }
        json_object_foreach(o, key, v) {
                char b[24];
                if (strncmp(key, "bytes_", 6) == 0)
                        printf("%-18s %s\n", key, format_bytes((uint64_t)json_integer_value(v), b, sizeof b));
                else
                        printf("%-18s %lld\n", key, (long long)json_integer_value(v));
        }
        json_decref(o);
        return 0;
}
