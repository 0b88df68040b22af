/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs hold / rpfs release: keep a point whatever the retention policy.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "retention.h"

static const char hold_help[] =
        "Usage: rpfs hold VAULT VM POINT [--until TIME] [--reason TEXT]\n"
        "\n"
        "Keep a recovery point whatever the retention policy, until 'rpfs release'\n"
        "or until TIME. POINT is an ID, latest or latest-app.\n"
        "\n"
        "  --until TIME    2026-12-31T00:00:00Z, a point ID (20261231T000000Z), or a\n"
        "                  duration from now (90m, 48h, 30d)\n"
        "  --reason TEXT   why (shown with the hold)\n"
        "  -h, --help      show this help\n";

static const char release_help[] =
        "Usage: rpfs release VAULT VM POINT\n"
        "\n"
        "Remove the hold on a point (rpfs hold); the retention policy applies to it again.\n"
        "\n"
        "  -h, --help   show this help\n";

/* --until: ISO time, a point ID, or a duration from now. 0 or -EINVAL. */
static int parse_until(const char *s, time_t *ret) {
        struct tm tm = { 0 };
        const char *e = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
        char *end;
        long long v;

        if (e && !*e) {
                *ret = timegm(&tm);
                return 0;
        }
        if (point_id_parse(s, ret) == 0)
                return 0;
        v = strtoll(s, &end, 10);
        if (end == s || v <= 0)
                return -EINVAL;
        if (strcmp(end, "m") == 0)
                v *= 60;
        else if (strcmp(end, "h") == 0)
                v *= 3600;
        else if (strcmp(end, "d") == 0)
                v *= 86400;
        else if (*end && strcmp(end, "s") != 0)
                return -EINVAL;
        *ret = time(NULL) + (time_t)v;
        return 0;
}

static int hold_or_release(struct cli *cli, int argc, char **argv, bool hold) {
        static const struct option opts[] = {
                { "until", required_argument, NULL, 'u' },
                { "reason", required_argument, NULL, 'r' },
                {}
        };
        const char *cmd = hold ? "hold" : "release", *reason = NULL, *url, *vm;
        struct ret_point *p = NULL;
        struct store *s = NULL;
        time_t until = 0;
        int c, r;

        while ((c = cli_getopt(cli, argc, argv, "", hold ? opts : NULL, hold ? hold_help : release_help)) >= 0) {
                switch (c) {
                case 'u':
                        if (parse_until(optarg, &until) < 0)
                                return cli_usage_error(cmd, "invalid --until '%s'", optarg);
                        break;
                case 'r':
                        reason = optarg;
                        break;
                default:
                        return cli->exit;
                }
        }
        if (argc - optind != 3)
                return cli_usage_error(cmd, "expected VAULT VM POINT");
        url = argv[optind];
        vm = argv[optind + 1];
        if (!name_is_valid(vm))
                return cli_usage_error(cmd, "invalid VM name '%s'", vm);
        if (cli_open_vault(cli, url, &s) < 0)
                return 1;
        r = ret_point_resolve(s, vm, argv[optind + 2], &p);
        if (r < 0) {
                log_error("%s: point %s/%s: %s", url, vm, argv[optind + 2],
                          r == -ENOENT ? "no such point" : cli_vault_strerror(url, r));
                store_free(s);
                return 1;
        }
        r = hold ? ret_hold_set(s, vm, p->id, until, reason) : ret_hold_release(s, vm, p->id);
        if (r == -ENOENT && !hold)
                log_error("%s: point %s/%s is not held", url, vm, p->id);
        else if (r < 0)
                log_error("%s: %s %s/%s failed: %s", url, cmd, vm, p->id, cli_vault_strerror(url, r));
        else if (!cli->quiet)
                printf("%s %s/%s\n", hold ? "held" : "released", vm, p->id);
        ret_point_free(p);
        store_free(s);
        return r < 0 ? 1 : 0;
}

int cmd_hold(struct cli *cli, int argc, char **argv) {
        return hold_or_release(cli, argc, argv, true);
}

int cmd_release(struct cli *cli, int argc, char **argv) {
        return hold_or_release(cli, argc, argv, false);
}
