/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs failback: bring on-prem disks to a recovery point (delta, full,
 * two-phase, resumable). The engine is sync/failback.c; this file reads the
 * command line, prints the state and results, and maps faults to exit
 * statuses.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cmd-failback_i.h"
#include "fs.h"
#include "sync.h"

static const char failback_help[] =
        "Usage: rpfs failback VAULT VM --target DISK=PATH [--target ...] [options]\n"
        "       rpfs failback VAULT --group G --target VM/DISK=PATH [--target ...] [options]\n"
        "\n"
        "Bring on-prem disks (raw image files or block devices) to a recovery point of\n"
        "VM. Every block written is verified against its checksum first.\n"
        "  delta (default): checksum every target block on all cores, fetch and write\n"
        "    only the blocks that differ from the point; a block found elsewhere on the\n"
        "    target or in the block cache is copied locally instead of fetched.\n"
        "  full: no checksums; fetch and write every non-zero block.\n"
        "  a missing target with --create: a new sparse file, full download.\n"
        "Progress is journaled: an interrupted run (Ctrl-C, kill -9, power loss,\n"
        "network loss) continues where it stopped when the same command runs again.\n"
        "All targets are checked (existence, size, busy, read-only, disk names, the\n"
        "point) before anything is written.\n"
        "\n"
        "  --target DISK=PATH       the disk of the point to write to PATH (repeatable)\n"
        "  --point P                'latest' (default), 'latest-app' or a point ID\n"
        "  --mode delta|full|auto   auto: full when a sample shows most blocks differ\n"
        "  --create                 create a missing target as a sparse file\n"
        "  --prepare                phase 1: sync to the point (the newest by default) while\n"
        "                           the source keeps running; records the target's fingerprint\n"
        "  --complete               phase 2: apply only the blocks that differ between the\n"
        "                           prepared point and the newest (no rescan); refused if the\n"
        "                           target was changed since --prepare\n"
        "  --commit                 record the targets as done (after checking the VM)\n"
        "  --status                 print each target's state: \"consistent at point ID\",\n"
        "                           \"in progress N%\", \"interrupted: rerun to finish\"\n"
        "  --dry-run                print what would be fetched and written; writes nothing\n"
        "  --resume                 only continue interrupted runs (fail if there is none)\n"
        "  --verify                 re-read every target block afterwards and check it\n"
        "  --jobs N                 threads that scan the target (default: one per CPU, at\n"
        "                           least 4) and that fetch and decode blocks (default: one per\n"
        "                           CPU, at least 4 from a remote vault); two more write\n"
        "  --bwlimit RATE           at most RATE bytes per second from the vault (50M, 1G)\n"
        "  --retry-profile P        recoverable errors (network, no space, no memory):\n"
        "                           'default' retries after 1, 2, 4, 8, 16, 30 s, then gives up;\n"
        "                           'site-recovery' after 1, 2, 4, 8, 10 min, then every 30 min\n"
        "                           for as long as the error lasts; 'none' gives up at once\n"
        "  --cache DIR              copy blocks from this block cache (default: the mount's\n"
        "                           cache, $RPFS_CACHE_DIR or ~/.cache/rpfs, if it exists)\n"
        "  --json                   JSON lines on stdout: progress, then one result line\n"
        "  --group G                every member of replication group G to one group point (the\n"
        "                           newest common one, or --point); targets are --target VM/DISK=PATH;\n"
        "                           refused before writing when a member lacks the point or a target\n"
        "  -q, --quiet              print nothing on success\n"
        "  -h, --help               show this help\n"
        "\n"
        "Journals live in $RPFS_STATE_DIR, else $XDG_STATE_HOME/rpfs/failback, else\n"
        "~/.local/state/rpfs/failback.\n"
        "\n"
        "Exit status:\n"
        "  0  done (--status: the state was printed)\n"
        "  1  failure not listed below\n"
        "  2  usage error\n"
        "  3  target refused: missing (without --create), not a file or block device,\n"
        "     smaller than the disk, busy (mounted, attached, locked, another failback),\n"
        "     read-only, changed since --prepare, or in the wrong state for the action\n"
        "  4  no such vault, VM, point or disk (or the point belongs to another VM)\n"
        "  5  the vault refused the credentials\n"
        "  6  corrupt vault data (a point, manifest or block fails its checksum or is\n"
        "     missing), or --verify found blocks that differ\n"
        "  7  a recoverable error outlasted the retry profile: rerun to resume\n";

enum {
        FB_EXIT_TARGET = 3,
        FB_EXIT_NOT_FOUND = 4,
        FB_EXIT_AUTH = 5,
        FB_EXIT_CORRUPT = 6,
        FB_EXIT_RETRIES = 7,
};

static int fault_exit(enum sync_fb_fault f) {
        switch (f) {
        case SYNC_FB_OK:
                return 0;
        case SYNC_FB_BAD_TARGET:
                return FB_EXIT_TARGET;
        case SYNC_FB_NOT_FOUND:
                return FB_EXIT_NOT_FOUND;
        case SYNC_FB_AUTH:
                return FB_EXIT_AUTH;
        case SYNC_FB_CORRUPT:
                return FB_EXIT_CORRUPT;
        case SYNC_FB_RETRIES:
                return FB_EXIT_RETRIES;
        default:
                return 1;
        }
}

static const char *fault_name(enum sync_fb_fault f) {
        static const char *const names[] = {
                [SYNC_FB_OK] = "ok", [SYNC_FB_FAILED] = "failed", [SYNC_FB_BAD_TARGET] = "bad-target",
                [SYNC_FB_NOT_FOUND] = "not-found", [SYNC_FB_AUTH] = "auth", [SYNC_FB_CORRUPT] = "corrupt",
                [SYNC_FB_RETRIES] = "retries-exhausted",
        };
        return (size_t)f < ELEMENTSOF(names) ? names[f] : "failed";
}

static json_t *stats_json(const struct sync_fb_stats *st) {
        return json_pack("{s:s, s:s, s:s?, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                         "s:I, s:f}",
                         "point", st->point, "method", st->method ? st->method : "none", "base",
                         *st->base ? st->base : NULL, "state", st->state ? st->state : "none", "disk_bytes",
                         (json_int_t)st->disk_bytes, "blocks", (json_int_t)st->n_blocks, "resumed_from",
                         (json_int_t)st->resumed_from, "blocks_scanned", (json_int_t)st->blocks_scanned,
                         "bytes_scanned", (json_int_t)st->bytes_scanned, "blocks_differing",
                         (json_int_t)st->blocks_differing, "blocks_fetched", (json_int_t)st->blocks_fetched,
                         "bytes_fetched", (json_int_t)st->bytes_fetched, "blocks_local",
                         (json_int_t)st->blocks_local, "blocks_cached", (json_int_t)st->blocks_cached,
                         "blocks_zeroed", (json_int_t)st->blocks_zeroed, "blocks_written",
                         (json_int_t)st->blocks_written, "bytes_written", (json_int_t)st->bytes_written,
                         "blocks_verified", (json_int_t)st->blocks_verified, "seconds", st->seconds);
}

static void failback_event(void *userdata, const struct sync_fb_event *e) {
        json_t *o;
        (void)userdata;
        if (strcmp(e->type, "retry") == 0) {
                o = json_pack("{s:s, s:s, s:f, s:i}", "type", "retry", "error", strerror(-e->error), "delay",
                              e->delay, "attempt", (int)e->attempt);
        } else {
                o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:f, s:f, s:I, s:I, s:I}", "type", "progress",
                              "disk", e->disk, "target", e->target, "pass", e->pass, "done", (json_int_t)e->done,
                              "total", (json_int_t)e->total,
                              "percent", e->total ? (int)(100 * e->done / e->total) : 100, "rate", e->rate, "eta",
                              e->eta, "bytes_scanned", (json_int_t)e->stats->bytes_scanned, "bytes_fetched",
                              (json_int_t)e->stats->bytes_fetched, "bytes_written",
                              (json_int_t)e->stats->bytes_written);
        }
        cli_json_print(o, JSON_COMPACT);
}

int failback_status(const struct sync_failback_opts *o, bool json) {
        for (size_t i = 0; i < o->n_targets; i++) {
                struct sync_fb_status st;
                char text[256], other[1400] = "";
                int r = sync_failback_status(o->state_dir, o->targets[i].path, &st);
                if (r == -EBADMSG) {
                        log_error("target %s: its journal is unreadable", o->targets[i].path);
                        return 1;
                }
                if (r < 0 && r != -ENOENT)
                        return 1;
                if (st.state != SYNC_FB_STATE_NONE &&
                    (strcmp(st.vm, o->vm) != 0 || strcmp(st.disk, o->targets[i].disk) != 0 ||
                     strcmp(st.vault, o->vault) != 0))
                        snprintf(other, sizeof other, " (recorded for VM %s, disk %s, vault %s)", st.vm, st.disk,
                                 st.vault);
                sync_fb_status_text(&st, text, sizeof text);
                if (json) {
                        static const char *const names[] = { "none", "in_progress", "interrupted", "consistent",
                                                             "committed" };
                        json_t *jo = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:i, s:I, s:I, s:s, "
                                               "s:s?}",
                                               "type", "status", "disk", o->targets[i].disk, "target",
                                               o->targets[i].path, "state", names[st.state], "point",
                                               *st.point ? st.point : NULL, "op", *st.op ? st.op : NULL, "method",
                                               *st.method ? st.method : NULL, "vm", *st.vm ? st.vm : NULL,
                                               "percent", (int)st.percent, "done_blocks",
                                               (json_int_t)st.done_blocks, "blocks", (json_int_t)st.n_blocks,
                                               "message", text, "note", *other ? other + 1 : NULL);
                        cli_json_print(jo, JSON_COMPACT);
                } else
                        printf("%s %s: %s%s\n", o->targets[i].disk, o->targets[i].path, text, other);
        }
        return 0;
}

static void failback_print(const struct sync_failback_opts *o, const struct sync_failback_result *res) {
        for (size_t i = 0; i < o->n_targets; i++) {
                const struct sync_fb_stats *st = &res->targets[i];
                char a[24], b[24], c[24];
                printf("%s -> %s: ", o->targets[i].disk, o->targets[i].path);
                if (o->action == SYNC_FB_COMMIT) {
                        printf("consistent at point %s, committed\n", st->point);
                        continue;
                }
                if (!st->method || strcmp(st->method, "none") == 0) {
                        printf("%s at point %s, nothing to do\n", o->action == SYNC_FB_DRY_RUN ? "consistent" :
                               "already consistent", st->point);
                        continue;
                }
                if (o->action == SYNC_FB_DRY_RUN) {
                        printf("dry run, %s to point %s%s%s: %s%s%swould fetch %llu blocks (%s), copy %llu locally "
                               "and %llu from the cache, zero %llu; would write %llu blocks (%s)\n",
                               st->method, st->point, *st->base ? " from " : "", st->base,
                               st->blocks_scanned ? "scanned " : "",
                               st->blocks_scanned ? format_bytes(st->bytes_scanned, c, sizeof c) : "",
                               st->blocks_scanned ? ", " : "", (unsigned long long)st->blocks_fetched,
                               format_bytes(st->bytes_fetched, a, sizeof a), (unsigned long long)st->blocks_local,
                               (unsigned long long)st->blocks_cached, (unsigned long long)st->blocks_zeroed,
                               (unsigned long long)st->blocks_written, format_bytes(st->bytes_written, b, sizeof b));
                        continue;
                }
                printf("%s to point %s%s%s", st->method, st->point, *st->base ? " from " : "", st->base);
                if (st->resumed_from)
                        printf(" (resumed at block %llu)", (unsigned long long)st->resumed_from);
                if (st->blocks_scanned)
                        printf(", scanned %s", format_bytes(st->bytes_scanned, c, sizeof c));
                printf(": %llu blocks fetched (%s from the vault), %llu copied locally, %llu from the cache, "
                       "%llu zeroed; %llu blocks written (%s), %.2f s; %s at point %s%s\n",
                       (unsigned long long)st->blocks_fetched, format_bytes(st->bytes_fetched, a, sizeof a),
                       (unsigned long long)st->blocks_local, (unsigned long long)st->blocks_cached,
                       (unsigned long long)st->blocks_zeroed, (unsigned long long)st->blocks_written,
                       format_bytes(st->bytes_written, b, sizeof b), st->seconds, st->state, st->point,
                       o->verify ? ", verified" : "");
        }
}

static void failback_json_result(const struct sync_failback_opts *o, const struct sync_failback_result *res,
                                 int r, int code) {
        static const char *const actions[] = { "sync", "prepare", "complete", "commit", "dry-run" };
        json_t *arr = json_array(), *jo;
        struct sync_fb_stats tot = { 0 };

        for (size_t i = 0; i < o->n_targets; i++) {
                const struct sync_fb_stats *st = &res->targets[i];
                json_t *t = stats_json(st);
                if (t) {
                        json_object_set_new(t, "disk", json_string(o->targets[i].disk));
                        json_object_set_new(t, "target", json_string(o->targets[i].path));
                        json_array_append_new(arr, t);
                }
                tot.blocks_scanned += st->blocks_scanned;
                tot.bytes_scanned += st->bytes_scanned;
                tot.blocks_differing += st->blocks_differing;
                tot.blocks_fetched += st->blocks_fetched;
                tot.bytes_fetched += st->bytes_fetched;
                tot.blocks_local += st->blocks_local;
                tot.blocks_cached += st->blocks_cached;
                tot.blocks_zeroed += st->blocks_zeroed;
                tot.blocks_written += st->blocks_written;
                tot.bytes_written += st->bytes_written;
                tot.blocks_verified += st->blocks_verified;
                tot.seconds += st->seconds;
        }
        jo = json_pack("{s:s, s:b, s:i, s:s, s:s, s:s, s:s?, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                       "s:I, s:f, s:o}",
                       "type", "result", "ok", r >= 0, "exit", code, "fault", fault_name(res->fault), "action",
                       actions[o->action], "vm", o->vm, "point", *res->point ? res->point : NULL, "dry_run",
                       o->action == SYNC_FB_DRY_RUN, "blocks_scanned", (json_int_t)tot.blocks_scanned,
                       "bytes_scanned", (json_int_t)tot.bytes_scanned, "blocks_differing",
                       (json_int_t)tot.blocks_differing, "blocks_fetched", (json_int_t)tot.blocks_fetched,
                       "bytes_fetched", (json_int_t)tot.bytes_fetched, "blocks_local", (json_int_t)tot.blocks_local,
                       "blocks_cached", (json_int_t)tot.blocks_cached, "blocks_zeroed",
                       (json_int_t)tot.blocks_zeroed, "blocks_written", (json_int_t)tot.blocks_written,
                       "bytes_written", (json_int_t)tot.bytes_written, "blocks_verified",
                       (json_int_t)tot.blocks_verified, "seconds", tot.seconds, "targets", arr);
        if (jo && r < 0)
                json_object_set_new(jo, "error", json_string(strerror(-r)));
        cli_json_print(jo, JSON_COMPACT);
}

/* Open the vault, retrying recoverable errors as the profile says. */
static int open_vault_retry(const struct cli *cli, const char *url, enum retry_profile profile,
                            struct store **ret) {
        for (unsigned attempt = 1;; attempt++) {
                double delay;
                int r = store_open_with(url, &cli->store, ret);
                if (r >= 0 || !error_transient(r) || (delay = retry_delay(profile, attempt)) < 0)
                        return r >= 0 ? r : cli_open_vault(cli, url, ret);
                log_warn("%s: %s: retrying in %.0f s", url, cli_vault_strerror(url, r), delay);
                sleep((unsigned)delay);
        }
}

/* --target DISK=PATH into targets[*n] (disk names kept in names). 0 or an
 * exit status. */
static int target_option(const char *arg, struct sync_fb_target *targets, char *names, size_t *n) {
        const char *eq = strchr(arg, '=');
        char *name = names + 65 * *n;

        if (!eq || eq == arg || (size_t)(eq - arg) >= 65 || !eq[1])
                return cli_usage_error("failback", "invalid --target '%s': expected DISK=PATH", arg);
        memcpy(name, arg, (size_t)(eq - arg));
        name[eq - arg] = 0;
        if (!name_is_valid(name))
                return cli_usage_error("failback", "invalid disk name '%s' in --target", name);
        for (size_t k = 0; k < *n; k++)
                if (strcmp(targets[k].disk, name) == 0)
                        return cli_usage_error("failback", "disk '%s' is given twice", name);
        targets[*n].disk = name;
        targets[(*n)++].path = eq + 1;
        return 0;
}

int failback_run(const struct cli *cli, struct sync_failback_opts *o, bool json) {
        struct sync_failback_result res = { 0 };
        _cleanup_free_ struct sync_fb_stats *stats = calloc(o->n_targets, sizeof *stats);
        struct store *s = NULL;
        int r, code;

        if (!stats)
                return 1;
        res.targets = stats;
        if (o->action != SYNC_FB_COMMIT) {
                r = open_vault_retry(cli, o->vault, o->retry, &s);
                if (r < 0) {
                        res.fault = r == -EACCES || r == -ENOKEY ? SYNC_FB_AUTH :
                                    r == -EMEDIUMTYPE || r == -ENOENT || r == -ENOTDIR ? SYNC_FB_NOT_FOUND :
                                    error_transient(r) ? SYNC_FB_RETRIES : SYNC_FB_FAILED;
                        code = fault_exit(res.fault);
                        if (json)
                                failback_json_result(o, &res, r, code);
                        return code;
                }
        }
        r = sync_failback(s, o, &res);
        store_free(s);
        code = r < 0 ? fault_exit(res.fault == SYNC_FB_OK ? SYNC_FB_FAILED : res.fault) : 0;
        if (json)
                failback_json_result(o, &res, r, code);
        else if (r >= 0 && !cli->quiet)
                failback_print(o, &res);
        return code;
}


/* --prepare, --complete, --commit, --status, --dry-run (option value c):
 * they exclude each other. 0 or an exit status. */
static int action_option(struct failback_args *a, int c) {
        const char *name = c == 'P' ? "--prepare" : c == 'C' ? "--complete" : c == 'K' ? "--commit" :
                           c == 'S' ? "--status" : "--dry-run";

        if (a->action_opt && strcmp(a->action_opt, name) != 0)
                return cli_usage_error("failback", "%s and %s exclude each other", a->action_opt, name);
        a->action_opt = name;
        a->status = c == 'S';
        a->o.action = c == 'P' ? SYNC_FB_PREPARE : c == 'C' ? SYNC_FB_COMPLETE : c == 'K' ? SYNC_FB_COMMIT :
                      c == 'n' ? SYNC_FB_DRY_RUN : SYNC_FB_SYNC;
        return 0;
}

/* --bwlimit RATE ("50M" or "50M/s") into *ret. 0 or an exit status. */
static int bwlimit_option(const char *arg, uint64_t *ret) {
        char tmp[64];
        size_t l = strlen(arg);

        snprintf(tmp, sizeof tmp, "%s", arg);
        if (l > 2 && l < sizeof tmp && strcmp(tmp + l - 2, "/s") == 0)
                tmp[l - 2] = 0;
        if (parse_size(tmp, ret) < 0 || *ret < 4096)
                return cli_usage_error("failback", "invalid --bwlimit '%s': bytes per second, at least 4K "
                                       "(e.g. 50M)", arg);
        return 0;
}

/* One option (value c, argument arg) into *a. 0 or an exit status. */
static int failback_option(struct failback_args *a, int c, const char *arg) {
        long v;

        switch (c) {
        case 't':
                if (strchr(arg, '/') && (!strchr(arg, '=') || strchr(arg, '/') < strchr(arg, '='))) {
                        a->gtargets[a->n_g++] = arg; /* --group: VM/DISK=PATH */
                        return 0;
                }
                return target_option(arg, a->targets, a->names, &a->n);
        case 'g':
                if (!name_is_valid(arg))
                        return cli_usage_error("failback", "invalid group name '%s'", arg);
                a->group = arg;
                return 0;
        case 'p':
                a->o.point = arg;
                return 0;
        case 'm':
                if (strcmp(arg, "delta") == 0)
                        a->o.mode = SYNC_FB_DELTA;
                else if (strcmp(arg, "full") == 0)
                        a->o.mode = SYNC_FB_FULL;
                else if (strcmp(arg, "auto") == 0)
                        a->o.mode = SYNC_FB_AUTO;
                else
                        return cli_usage_error("failback", "invalid --mode '%s': delta, full or auto", arg);
                return 0;
        case 'c':
                a->o.create = true;
                return 0;
        case 'P':
        case 'C':
        case 'K':
        case 'S':
        case 'n':
                return action_option(a, c);
        case 'r':
                a->o.resume = true;
                return 0;
        case 'y':
                a->o.verify = true;
                return 0;
        case 'j':
                if (cli_parse_int(arg, 1, 256, &v) < 0)
                        return cli_usage_error("failback", "invalid --jobs '%s': 1..256", arg);
                a->o.threads = (unsigned)v;
                return 0;
        case 'b':
                return bwlimit_option(arg, &a->o.bwlimit);
        case 'R':
                if (retry_profile_parse(arg, &a->o.retry) < 0)
                        return cli_usage_error("failback", "invalid --retry-profile '%s': default, site-recovery "
                                               "or none", arg);
                return 0;
        case 'x':
                a->cache = arg;
                return 0;
        case 'J':
                a->json = true;
                return 0;
        }
        return 1;
}

/* The command line into *a (targets and names allocated by the caller).
 * CLI_PARSED, or the exit status to end with. */
static int failback_parse(struct cli *cli, int argc, char **argv, struct failback_args *a) {
        static const struct option opts[] = {
                { "target", required_argument, NULL, 't' },
                { "point", required_argument, NULL, 'p' },
                { "mode", required_argument, NULL, 'm' },
                { "create", no_argument, NULL, 'c' },
                { "prepare", no_argument, NULL, 'P' },
                { "complete", no_argument, NULL, 'C' },
                { "commit", no_argument, NULL, 'K' },
                { "status", no_argument, NULL, 'S' },
                { "dry-run", no_argument, NULL, 'n' },
                { "resume", no_argument, NULL, 'r' },
                { "verify", no_argument, NULL, 'y' },
                { "jobs", required_argument, NULL, 'j' },
                { "bwlimit", required_argument, NULL, 'b' },
                { "retry-profile", required_argument, NULL, 'R' },
                { "cache", required_argument, NULL, 'x' },
                { "json", no_argument, NULL, 'J' },
                { "group", required_argument, NULL, 'g' },
                {}
        };
        int c, r;

        while ((c = cli_getopt(cli, argc, argv, "", opts, failback_help)) >= 0) {
                if (c == CLI_EXIT)
                        return cli->exit;
                r = failback_option(a, c, optarg);
                if (r)
                        return r;
        }
        if (a->group || a->n_g) {
                if (!a->group || a->n || argc - optind != 1)
                        return cli_usage_error("failback", "--group G: expected VAULT and --target VM/DISK=PATH ...");
                if (a->n_g == 0)
                        return cli_usage_error("failback", "at least one --target VM/DISK=PATH is required");
                return CLI_PARSED;
        }
        if (argc - optind != 2)
                return cli_usage_error("failback", "expected VAULT and VM arguments");
        if (a->n == 0)
                return cli_usage_error("failback", "at least one --target DISK=PATH is required");
        if (!name_is_valid(argv[optind + 1]))
                return cli_usage_error("failback", "invalid VM name '%s'", argv[optind + 1]);
        if (a->o.point && strcmp(a->o.point, "latest") != 0 && strcmp(a->o.point, "latest-app") != 0) {
                time_t t;
                if (point_id_parse(a->o.point, &t) < 0)
                        return cli_usage_error("failback", "invalid --point '%s': an ID like 20261122T101500Z, latest "
                                               "or latest-app", a->o.point);
        }
        if (a->o.create && (a->o.action == SYNC_FB_COMPLETE || a->o.action == SYNC_FB_COMMIT || a->status))
                return cli_usage_error("failback", "--create goes with a sync, --prepare or --dry-run");
        if (a->o.resume && a->o.action != SYNC_FB_SYNC && a->o.action != SYNC_FB_PREPARE)
                return cli_usage_error("failback", "--resume goes with a sync or --prepare");
        return CLI_PARSED;
}

/* Fill in what a->o needs beyond the options: the vault (absolute for a
 * directory, as the journals record it), VM, targets, journal directory,
 * output mode and block cache. */
static void failback_setup(const struct cli *cli, char **argv, struct failback_args *a) {
        struct sync_failback_opts *o = &a->o;
        struct stat st;

        o->vault = argv[optind];
        if (!strstr(o->vault, "://") && realpath(o->vault, a->vault_abs))
                o->vault = a->vault_abs;
        o->vm = argv[optind + 1];
        o->targets = a->targets;
        o->n_targets = a->n;
        rpfs_state_dir(a->state_dir, sizeof a->state_dir);
        o->state_dir = a->state_dir;
        o->progress = !cli->quiet && !a->json;
        if (a->json) {
                o->on_event = failback_event;
                o->userdata = NULL;
        }
        if (a->cache)
                o->cache_dir = a->cache;
        else {
                rpfs_cache_dir(a->cache_dir, sizeof a->cache_dir);
                if (stat(a->cache_dir, &st) == 0 && S_ISDIR(st.st_mode))
                        o->cache_dir = a->cache_dir;
        }
}

int cmd_failback(struct cli *cli, int argc, char **argv) {
        struct failback_args a = { .o = { .mode = SYNC_FB_DELTA, .progress = true } };
        _cleanup_free_ struct sync_fb_target *targets = calloc((size_t)argc, sizeof *targets);
        _cleanup_free_ char *names = calloc((size_t)argc, 65);
        _cleanup_free_ const char **gtargets = calloc((size_t)argc, sizeof *gtargets);
        int r;

        if (!targets || !names || !gtargets)
                return 1;
        a.gtargets = gtargets;
        a.targets = targets;
        a.names = names;
        r = failback_parse(cli, argc, argv, &a);
        if (r != CLI_PARSED)
                return r;
        failback_setup(cli, argv, &a);
        if (a.group)
                return failback_group(cli, argv, &a);
        if (a.status)
                return failback_status(&a.o, a.json);
        return failback_run(cli, &a.o, a.json);
}
