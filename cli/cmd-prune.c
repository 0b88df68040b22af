/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs prune: drop the points the retention policy lets go, then collect
 * the vault's garbage (ret_prune, store_gc).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "retention.h"

static const char prune_help[] =
        "Usage: rpfs prune VAULT [VM ...] [--dry-run] [--max-unused PCT] [--json] [-q]\n"
        "\n"
        "Drop the recovery points that the retention policy (rpfs policy) lets go, of\n"
        "the VMs given or of every VM. Always kept: each VM's newest point and newest\n"
        "app-consistent point, held points (rpfs hold) and points under a lease.\n"
        "Then collect the vault's garbage: packs no point of any VM needs are deleted,\n"
        "packs whose unused share exceeds --max-unused are rewritten, and the index is\n"
        "merged into a few segments. Replication may run meanwhile: what a running\n"
        "replicate could still use is deleted by a later prune, once it has ended.\n"
        "\n"
        "  --dry-run          say which points would go and how many bytes would be\n"
        "                     freed; change nothing\n"
        "  --max-unused PCT   rewrite packs more than PCT percent unused (default 5%;\n"
        "                     100% never rewrites)\n"
        "  --no-gc            drop points only; collect nothing\n"
        "  --json             one JSON object: \"points\" (vm, id, time, type, kept (why)\n"
        "                     or dropped) and \"gc\" (packs, bytes freed, ...)\n"
        "  -h, --help         show this help\n";

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

/* "5", "5%", "2.5%": a share in [0, 1]. -EINVAL otherwise. */
static int parse_pct(const char *arg, double *ret) {
        char *end;
        double v = strtod(arg, &end);

        if (end == arg || (*end && strcmp(end, "%") != 0) || !(v >= 0 && v <= 100))
                return -EINVAL;
        *ret = v / 100;
        return 0;
}

static json_t *gc_json(const struct store_gc_report *g) {
        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b}",
                         "packs", (json_int_t)g->packs, "pack_bytes", (json_int_t)g->pack_bytes,
                         "live_blobs", (json_int_t)g->live_blobs, "live_bytes", (json_int_t)g->live_bytes,
                         "dead_bytes", (json_int_t)g->dead_bytes, "packs_deleted", (json_int_t)g->packs_deleted,
                         "packs_rewritten", (json_int_t)g->packs_rewritten, "bytes_copied",
                         (json_int_t)g->bytes_copied, "segments", (json_int_t)g->segments, "segments_after",
                         (json_int_t)g->segments_after, "freed_bytes", (json_int_t)g->freed_bytes, "refused",
                         (json_int_t)g->refused, "deferred", g->deferred, "busy", g->busy);
}

static void gc_print(const struct store_gc_report *g, bool dry_run) {
        if (g->busy) {
                printf("garbage collection skipped: another prune is collecting\n");
                return;
        }
        printf("%s %llu byte(s): %llu pack(s) %s, %llu rewritten (%llu bytes copied), %llu index segment(s) "
               "merged\n",
               dry_run ? "would free" : "freed", (unsigned long long)g->freed_bytes,
               (unsigned long long)g->packs_deleted, dry_run ? "to delete" : "deleted",
               (unsigned long long)g->packs_rewritten, (unsigned long long)g->bytes_copied,
               (unsigned long long)g->segments);
        if (g->deferred)
                printf("deletions wait for a running replicate: the next prune finishes them\n");
        if (g->refused)
                printf("%llu pack(s) the vault refused to delete (immutability policy or legal hold): "
                       "retried next prune\n",
                       (unsigned long long)g->refused);
}

int cmd_prune(struct cli *cli, int argc, char **argv) {
        static const struct option opts[] = {
                { "dry-run", no_argument, NULL, 'n' },
                { "json", no_argument, NULL, 'J' },
                { "max-unused", required_argument, NULL, 'U' },
                { "no-gc", no_argument, NULL, 'G' },
                {}
        };
        struct prune_out o = { 0 };
        struct store_gc_options gco = { .max_unused = 0.05 };
        struct store_gc_report gcr = { 0 };
        struct store *s = NULL;
        const char *url;
        size_t dropped = 0;
        bool gc = true;
        int c, r;

        while ((c = cli_getopt(cli, argc, argv, "", opts, prune_help)) >= 0) {
                switch (c) {
                case 'n':
                        o.dry_run = true;
                        break;
                case 'J':
                        o.json = true;
                        break;
                case 'U':
                        if (parse_pct(optarg, &gco.max_unused) < 0)
                                return cli_usage_error("prune", "--max-unused: expected a percentage 0-100, not '%s'",
                                                       optarg);
                        break;
                case 'G':
                        gc = false;
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
        gco.dry_run = o.dry_run;
        r = ret_prune(s, (const char *const *)argv + optind + 1, (size_t)(argc - optind - 1), time(NULL), o.dry_run,
                      report, &o, &dropped, gc ? &gco : NULL, &gcr);
        if (r >= 0 && !o.dry_run) { /* for rpfs status: best effort */
                struct ret_note note = { .time = time(NULL) };
                if (gc)
                        snprintf(note.summary, sizeof note.summary, "dropped %zu point(s), freed %llu byte(s)", dropped,
                                 (unsigned long long)gcr.freed_bytes);
                else
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
        if (o.json) {
                json_t *top = json_pack("{s:o, s:o?}", "points", o.arr, "gc", gc ? gc_json(&gcr) : NULL);
                cli_json_print(top, JSON_INDENT(2));
        } else if (!o.quiet) {
                printf("%s %zu point(s)\n", o.dry_run ? "would drop" : "dropped", dropped);
                if (gc)
                        gc_print(&gcr, o.dry_run);
        }
        return 0;
}
