/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs prune: drop the points the retention policy lets go.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "retention.h"

static const char prune_help[] =
        "Usage: rpfs prune VAULT [VM ...] [--dry-run] [--json] [-q]\n"
        "\n"
        "Drop the recovery points that the retention policy (rpfs policy) lets go, of\n"
        "the VMs given or of every VM. Always kept: each VM's newest point and newest\n"
        "app-consistent point, held points (rpfs hold) and points under a lease.\n"
        "Only the points are removed: the space of the blocks no point names any more\n"
        "is not reclaimed yet (garbage collection is to come).\n"
        "\n"
        "  --dry-run   say which points would go; remove nothing\n"
        "  --json      one JSON array: vm, id, time, type, kept (why) or dropped\n"
        "  -h, --help  show this help\n";

struct prune_out {
        bool json, quiet, dry_run;
        json_t *arr;
};

static void keep_reasons(unsigned k, char *buf, size_t len) {
        static const char *const names[] = { "policy", "newest", "newest-app", "pinned", "future", "group" };
        size_t at = 0;

        buf[0] = 0;
        for (unsigned i = 0; i < ELEMENTSOF(names) && at < len; i++)
                if (k & (1u << i))
                        at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? "," : "", names[i]);
}

static int report(void *userdata, const struct ret_prune_item *it) {
        struct prune_out *o = userdata;
        char why[80], when[21];

        keep_reasons(it->keep, why, sizeof why);
        if (o->json) {
                time_format_iso(it->point->time, when);
                json_array_append_new(o->arr, json_pack("{s:s, s:s, s:s, s:s, s:b, s:s?}", "vm", it->point->vm,
                                                        "id", it->point->id, "time", when, "type",
                                                        it->point->app ? "app" : "crash", "dropped",
                                                        it->dropped, "kept", it->dropped ? NULL : why));
        } else if (!o->quiet && it->dropped)
                printf("%s %s/%s\n", o->dry_run ? "would drop" : "dropped", it->point->vm, it->point->id);
        return 0;
}

int cmd_prune(struct cli *cli, int argc, char **argv) {
        static const struct option opts[] = {
                { "dry-run", no_argument, NULL, 'n' },
                { "json", no_argument, NULL, 'J' },
                {}
        };
        struct prune_out o = { 0 };
        struct store *s = NULL;
        const char *url;
        size_t dropped = 0;
        int c, r;

        while ((c = cli_getopt(cli, argc, argv, "", opts, prune_help)) >= 0) {
                switch (c) {
                case 'n':
                        o.dry_run = true;
                        break;
                case 'J':
                        o.json = true;
                        break;
                default:
                        return cli->exit;
                }
        }
        if (argc - optind < 1)
                return cli_usage_error("prune", "expected VAULT [VM ...]");
        for (int i = optind + 1; i < argc; i++)
                if (!name_is_valid(argv[i]))
                        return cli_usage_error("prune", "invalid VM name '%s'", argv[i]);
        url = argv[optind];
        o.quiet = cli->quiet;
        if (o.json && !(o.arr = json_array()))
                return 1;
        if (cli_open_vault(cli, url, &s) < 0) {
                json_decref(o.arr);
                return 1;
        }
        r = ret_prune_points(s, (const char *const *)argv + optind + 1, (size_t)(argc - optind - 1), time(NULL),
                             o.dry_run, report, &o, &dropped);
        if (r >= 0 && !o.dry_run) { /* for rpfs status: best effort */
                struct ret_note note = { .time = time(NULL) };
                snprintf(note.summary, sizeof note.summary, "dropped %zu point(s)", dropped);
                if (ret_note_set(s, "prune", &note) < 0)
                        log_warn("%s: recording the prune's time failed", url);
        }
        store_free(s);
        if (r < 0) {
                json_decref(o.arr);
                log_error("%s: prune failed after %zu point(s): %s", url, dropped, cli_vault_strerror(url, r));
                return 1;
        }
        if (o.json)
                cli_json_print(o.arr, JSON_INDENT(2));
        else if (!o.quiet)
                printf("%s %zu point(s)\n", o.dry_run ? "would drop" : "dropped", dropped);
        return 0;
}
