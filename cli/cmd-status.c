/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs status: RPO health of a vault's VMs, as a monitoring plugin
 * (Nagios, Icinga, Zabbix, Checkmk) expects it: one summary line with
 * perfdata after '|', details on the lines after it, and the exit status
 * 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Optionally JSON, or a
 * node_exporter textfile-collector file. The gathering is sync_status_get()
 * (sync/status.c); this file only prints.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sync.h"

#define STATUS_UNKNOWN 3

static const char status_help[] =
        "Usage: rpfs status VAULT [VM ...] [--json | --prometheus FILE] [--warning 15m --critical 30m]\n"
        "\n"
        "Check the RPO health of the VMs in VAULT (all VMs with a point, or those named):\n"
        "the age of each VM's newest point against its RPO, of its newest app-consistent\n"
        "point against the app-consistent frequency, its number of points and the oldest\n"
        "against the retention window, interrupted or prepared failbacks recorded on this\n"
        "host, and the vault's stored and logical bytes, dedup and compression ratios,\n"
        "packs and index segments. Thresholds are the VM's policy (Site Recovery's\n"
        "defaults: RPO 15 min, an app-consistent point every 60 min, 24 h retention).\n"
        "\n"
        "  --warning DUR        WARNING when the newest point is older (default: the RPO)\n"
        "  --critical DUR       CRITICAL when older (default: twice the warning threshold)\n"
        "  --json               one JSON object instead of the plugin output\n"
        "  --prometheus FILE    also write FILE in node_exporter's textfile format (atomically)\n"
        "  --timeout SEC        give up on an unreachable vault after SEC seconds (default 10)\n"
        "  -h, --help           show this help\n"
        "\n"
        "DUR is seconds, or a number with s, m, h or d. Exit status (monitoring-plugin\n"
        "convention): 0 OK, 1 WARNING (a VM past its RPO, a late app-consistent point, an\n"
        "interrupted failback, this host's clock more than a minute off the vault's),\n"
        "2 CRITICAL (past the critical threshold, or a VM without a point), 3 UNKNOWN (the\n"
        "vault cannot be read, or a usage error).\n";

/* "900", "15m", "1h", "2d", "30s" into seconds. */
static int parse_duration(const char *s, long *ret) {
        char *end;
        long v, mul = 1;

        errno = 0;
        v = strtol(s, &end, 10);
        if (end == s || errno || v <= 0)
                return -EINVAL;
        if (*end == 's')
                end++;
        else if (*end == 'm' && (mul = 60))
                end++;
        else if (*end == 'h' && (mul = 3600))
                end++;
        else if (*end == 'd' && (mul = 86400))
                end++;
        if (*end || v > 100L * 365 * 86400 / mul)
                return -EINVAL;
        *ret = v * mul;
        return 0;
}

static double ratio(uint64_t a, uint64_t b) {
        return b ? (double)a / (double)b : 1.0;
}

/* ---- plugin output ---- */

static void print_perfdata(const struct sync_status *st) {
        for (size_t i = 0; i < st->n_vms; i++) {
                const struct sync_status_vm *v = &st->vms[i];
                if (v->age >= 0)
                        printf(" '%s_age'=%lds;%ld;%ld", v->vm, v->age, v->th.warning, v->th.critical);
                if (v->app_age >= 0)
                        printf(" '%s_app_age'=%lds;%ld;", v->vm, v->app_age, v->th.app + v->th.warning);
                printf(" '%s_points'=%zu;;;0", v->vm, v->n_points);
        }
        printf(" 'stored'=%lluB 'logical'=%lluB 'dedup'=%.2f 'compression'=%.2f 'packs'=%llu 'index_segments'=%llu",
               (unsigned long long)st->pack_bytes, (unsigned long long)st->logical_bytes,
               ratio(st->logical_bytes, st->index.decoded_bytes), ratio(st->index.decoded_bytes, st->index.stored_bytes),
               (unsigned long long)st->packs, (unsigned long long)st->index.segments);
        if (st->have_clock)
                printf(" 'clock_skew'=%lds;%d;", st->skew, 60);
        putchar('\n');
}

static void print_summary(const struct sync_status *st) {
        size_t shown = 0;

        printf("RPFS %s - ", sync_status_level_name(st->level));
        for (size_t i = 0; i < st->n_vms; i++)
                if (st->vms[i].level != SYNC_STATUS_OK)
                        printf("%s%s: %s", shown++ ? "; " : "", st->vms[i].vm, st->vms[i].why);
        if (st->have_clock && labs(st->skew) > 60)
                printf("%sthis host's clock is %lds %s the vault's", shown++ ? "; " : "", labs(st->skew),
                       st->skew > 0 ? "ahead of" : "behind");
        if (st->last_check.damaged)
                printf("%sthe last check found damage (%s)", shown++ ? "; " : "", st->last_check.summary);
        if (!shown && st->n_vms == 0)
                printf("no VM has a point");
        else if (!shown)
                printf("%zu VM%s within RPO", st->n_vms, st->n_vms == 1 ? "" : "s");
        printf(" |");
        print_perfdata(st);
}

static void print_vm(const struct sync_status_vm *v) {
        printf("%s: %s, %s", v->vm, sync_status_level_name(v->level), v->why);
        if (v->n_points == 0) {
                putchar('\n');
                return;
        }
        printf("; %zu point%s, newest %s", v->n_points, v->n_points == 1 ? "" : "s", v->newest);
        if (*v->onprem_from)
                printf(" (runs on-prem, reprotected after failback from %s)", v->onprem_from);
        if (*v->newest_app)
                printf(", newest app-consistent %s (%lds old)", v->newest_app, v->app_age);
        else
                printf(", no app-consistent point");
        if (v->oldest_age < v->th.retention)
                printf("; retention window not yet filled (oldest %lds of %lds)", v->oldest_age, v->th.retention);
        else
                printf("; retention window filled, %zu point%s past it", v->n_past_retention,
                       v->n_past_retention == 1 ? "" : "s");
        if (v->fb_interrupted || v->fb_prepared || v->fb_running)
                printf("; failback: %zu interrupted, %zu prepared, %zu running", v->fb_interrupted, v->fb_prepared,
                       v->fb_running);
        putchar('\n');
}

/* The last prune and check (retention notes). */
static void print_notes(const struct sync_status *st) {
        char a[21], b[21];

        if (st->last_prune.time)
                time_format_iso(st->last_prune.time, a);
        if (st->last_check.time)
                time_format_iso(st->last_check.time, b);
        printf("maintenance: last prune %s%s%s%s, last check %s%s%s%s\n", st->last_prune.time ? a : "never",
               st->last_prune.time ? " (" : "", st->last_prune.summary, st->last_prune.time ? ")" : "",
               st->last_check.time ? b : "never", st->last_check.time ? " (" : "", st->last_check.summary,
               st->last_check.time ? (st->last_check.damaged ? "): DAMAGE FOUND" : ")") : "");
}

static json_t *json_note(const struct ret_note *n) {
        char when[21];
        if (!n->time)
                return json_null();
        time_format_iso(n->time, when);
        return json_pack("{s:s, s:b, s:s}", "time", when, "damaged", n->damaged, "summary", n->summary);
}

static void print_plugin(const struct sync_status *st) {
        char a[24], b[24];

        print_summary(st);
        for (size_t i = 0; i < st->n_vms; i++)
                print_vm(&st->vms[i]);
        printf("vault: %s stored in %llu packs, %s logical, dedup %.2fx, compression %.2fx, %llu index segments\n",
               format_bytes(st->pack_bytes, a, sizeof a), (unsigned long long)st->packs,
               format_bytes(st->logical_bytes, b, sizeof b), ratio(st->logical_bytes, st->index.decoded_bytes),
               ratio(st->index.decoded_bytes, st->index.stored_bytes), (unsigned long long)st->index.segments);
        print_notes(st);
        if (st->have_clock)
                printf("clock: this host is %lds %s the vault\n", labs(st->skew), st->skew >= 0 ? "ahead of" : "behind");
}

/* ---- JSON ---- */

static json_t *json_vm(const struct sync_status_vm *v) {
        return json_pack("{s:s, s:s, s:s, s:I, s:s?, s:I, s:s?, s:I, s:s?, s:I, s:I, "
                         "s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I}}",
                         "vm", v->vm, "status", sync_status_level_name(v->level), "message", v->why,
                         "points", (json_int_t)v->n_points, "newest", *v->newest ? v->newest : NULL,
                         "age_seconds", (json_int_t)v->age, "newest_app", *v->newest_app ? v->newest_app : NULL,
                         "app_age_seconds", (json_int_t)v->app_age, "oldest", *v->oldest ? v->oldest : NULL,
                         "oldest_age_seconds", (json_int_t)v->oldest_age, "past_retention",
                         (json_int_t)v->n_past_retention, "thresholds", "warning_seconds",
                         (json_int_t)v->th.warning, "critical_seconds", (json_int_t)v->th.critical,
                         "app_seconds", (json_int_t)v->th.app, "retention_seconds", (json_int_t)v->th.retention,
                         "failback", "interrupted", (json_int_t)v->fb_interrupted, "prepared",
                         (json_int_t)v->fb_prepared, "running", (json_int_t)v->fb_running);
}

/* json_vm() with the replication direction. */
static json_t *json_vm_dir(const struct sync_status_vm *v) {
        json_t *o = json_vm(v);
        if (o)
                json_object_set_new(o, "direction", json_pack("{s:s, s:s?}", "runs", *v->onprem_from ? "onprem" : "vault",
                                                              "failed_back_from", *v->onprem_from ? v->onprem_from : NULL));
        return o;
}

static int print_json(const struct sync_status *st) {
        json_t *vms = json_array(), *o;

        for (size_t i = 0; i < st->n_vms; i++)
                json_array_append_new(vms, json_vm_dir(&st->vms[i]));
        o = json_pack("{s:s, s:i, s:o, s:{s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:I}}", "status",
                      sync_status_level_name(st->level), "exit", (int)st->level, "vms", vms, "vault",
                      "stored_bytes", (json_int_t)st->pack_bytes, "logical_bytes", (json_int_t)st->logical_bytes,
                      "decoded_bytes", (json_int_t)st->index.decoded_bytes, "index_stored_bytes",
                      (json_int_t)st->index.stored_bytes, "dedup_ratio",
                      ratio(st->logical_bytes, st->index.decoded_bytes), "compression_ratio",
                      ratio(st->index.decoded_bytes, st->index.stored_bytes), "packs", (json_int_t)st->packs,
                      "index_segments", (json_int_t)st->index.segments, "points", (json_int_t)st->n_points);
        if (o && st->have_clock)
                json_object_set_new(o, "clock_skew_seconds", json_integer(st->skew));
        if (o) {
                json_object_set_new(json_object_get(o, "vault"), "last_prune", json_note(&st->last_prune));
                json_object_set_new(json_object_get(o, "vault"), "last_check", json_note(&st->last_check));
        }
        return cli_json_print(o, JSON_INDENT(2));
}

/* ---- Prometheus textfile ---- */

/* A label value with '\', '"' and newlines escaped. */
static void prom_label(FILE *f, const char *s) {
        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        fputc('\\', f);
                if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
}

static void prom_head(FILE *f, const char *name, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* One sample: name{vault="...",vm="..."[,extra]} value. */
static void prom_sample(FILE *f, const char *name, const char *vault, const char *vm, const char *extra, double v) {
        fprintf(f, "%s{vault=\"", name);
        prom_label(f, vault);
        fputc('"', f);
        if (vm)
                fprintf(f, ",vm=\"%s\"", vm); /* VM names are [A-Za-z0-9._-] */
        fprintf(f, "%s%s} %.17g\n", extra ? "," : "", extra ? extra : "", v);
}

static void prom_vms(FILE *f, const char *vault, const struct sync_status *st) {
        prom_head(f, "rpfs_point_age_seconds", "Age of the newest recovery point (type crash: of any type).");
        for (size_t i = 0; i < st->n_vms; i++) {
                if (st->vms[i].age >= 0)
                        prom_sample(f, "rpfs_point_age_seconds", vault, st->vms[i].vm, "type=\"crash\"", st->vms[i].age);
                if (st->vms[i].app_age >= 0)
                        prom_sample(f, "rpfs_point_age_seconds", vault, st->vms[i].vm, "type=\"app\"",
                                    st->vms[i].app_age);
        }
        prom_head(f, "rpfs_points", "Number of recovery points of a VM.");
        for (size_t i = 0; i < st->n_vms; i++)
                prom_sample(f, "rpfs_points", vault, st->vms[i].vm, NULL, (double)st->vms[i].n_points);
        prom_head(f, "rpfs_oldest_point_age_seconds", "Age of the oldest recovery point of a VM.");
        for (size_t i = 0; i < st->n_vms; i++)
                if (st->vms[i].oldest_age >= 0)
                        prom_sample(f, "rpfs_oldest_point_age_seconds", vault, st->vms[i].vm, NULL,
                                    st->vms[i].oldest_age);
        prom_head(f, "rpfs_rpo_threshold_seconds", "RPO thresholds of a VM: warning and critical.");
        for (size_t i = 0; i < st->n_vms; i++) {
                prom_sample(f, "rpfs_rpo_threshold_seconds", vault, st->vms[i].vm, "level=\"warning\"",
                            st->vms[i].th.warning);
                prom_sample(f, "rpfs_rpo_threshold_seconds", vault, st->vms[i].vm, "level=\"critical\"",
                            st->vms[i].th.critical);
        }
        prom_head(f, "rpfs_failbacks_interrupted", "Interrupted failbacks of a VM recorded on this host.");
        for (size_t i = 0; i < st->n_vms; i++)
                prom_sample(f, "rpfs_failbacks_interrupted", vault, st->vms[i].vm, NULL, st->vms[i].fb_interrupted);
        prom_head(f, "rpfs_vm_status", "Status of a VM: 0 OK, 1 WARNING, 2 CRITICAL.");
        for (size_t i = 0; i < st->n_vms; i++)
                prom_sample(f, "rpfs_vm_status", vault, st->vms[i].vm, NULL, st->vms[i].level);
}

static void prom_vault(FILE *f, const char *vault, const struct sync_status *st) {
        static const struct { const char *name, *help; } m[] = {
                { "rpfs_vault_stored_bytes", "Bytes of the vault's packs." },
                { "rpfs_vault_logical_bytes", "Bytes of non-zero blocks of every point's disks." },
                { "rpfs_vault_dedup_ratio", "Logical bytes over the decoded bytes of unique blobs." },
                { "rpfs_vault_compression_ratio", "Decoded bytes of blobs over their stored bytes." },
                { "rpfs_vault_packs", "Number of packs." },
                { "rpfs_vault_index_segments", "Number of index segments." },
        };
        double v[] = { (double)st->pack_bytes, (double)st->logical_bytes,
                       ratio(st->logical_bytes, st->index.decoded_bytes),
                       ratio(st->index.decoded_bytes, st->index.stored_bytes), (double)st->packs,
                       (double)st->index.segments };

        _Static_assert(ELEMENTSOF(m) == ELEMENTSOF(v), "one value per metric");
        for (size_t i = 0; i < ELEMENTSOF(m); i++) {
                prom_head(f, m[i].name, m[i].help);
                prom_sample(f, m[i].name, vault, NULL, NULL, v[i]);
        }
        if (st->have_clock) {
                prom_head(f, "rpfs_clock_skew_seconds", "This host's clock minus the vault's.");
                prom_sample(f, "rpfs_clock_skew_seconds", vault, NULL, NULL, st->skew);
        }
        if (st->last_prune.time) {
                prom_head(f, "rpfs_last_prune_timestamp_seconds", "When rpfs prune last ran (Unix time).");
                prom_sample(f, "rpfs_last_prune_timestamp_seconds", vault, NULL, NULL, (double)st->last_prune.time);
        }
        if (st->last_check.time) {
                prom_head(f, "rpfs_last_check_timestamp_seconds", "When rpfs check last recorded a result (Unix time).");
                prom_sample(f, "rpfs_last_check_timestamp_seconds", vault, NULL, NULL, (double)st->last_check.time);
                prom_head(f, "rpfs_last_check_damaged", "Whether the last rpfs check found damage.");
                prom_sample(f, "rpfs_last_check_damaged", vault, NULL, NULL, st->last_check.damaged);
        }
}

/* Write path atomically: the metrics of st, or only rpfs_up 0 when st is
 * NULL (the vault could not be read). */
static int write_prometheus(const char *path, const char *vault, const struct sync_status *st) {
        struct tmpfile t;
        FILE *f;
        int r = tmpfile_open(&t, path, 0644);

        if (r < 0)
                return log_error_errno(r, "%s: cannot create", path);
        f = fdopen(dup(t.fd), "w");
        if (!f) {
                tmpfile_abort(&t);
                return log_error_errno(-ENOMEM, "%s", path);
        }
        prom_head(f, "rpfs_up", "Whether the vault could be read.");
        prom_sample(f, "rpfs_up", vault, NULL, NULL, st ? 1 : 0);
        prom_head(f, "rpfs_status", "Status of the vault's check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.");
        prom_sample(f, "rpfs_status", vault, NULL, NULL, st ? st->level : STATUS_UNKNOWN);
        prom_head(f, "rpfs_status_time_seconds", "When this check ran (Unix time).");
        prom_sample(f, "rpfs_status_time_seconds", vault, NULL, NULL, (double)time(NULL));
        if (st) {
                prom_vms(f, vault, st);
                prom_vault(f, vault, st);
        }
        r = ferror(f) ? -EIO : 0;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        if (r < 0) {
                tmpfile_abort(&t);
                return log_error_errno(r, "%s: cannot write", path);
        }
        r = tmpfile_commit(&t, 0);
        if (r < 0)
                return log_error_errno(r, "%s: cannot write", path);
        return 0;
}

/* ---- the command ---- */

struct status_args {
        bool json;
        const char *prom;
        long timeout;
        struct sync_status_opts o;
};

static int parse_args(struct cli *cli, int argc, char **argv, struct status_args *a) {
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'J' },
                { "prometheus", required_argument, NULL, 'P' },
                { "warning", required_argument, NULL, 'w' },
                { "critical", required_argument, NULL, 'c' },
                { "timeout", required_argument, NULL, 't' },
                {}
        };
        int c;

        while ((c = cli_getopt(cli, argc, argv, "", opts, status_help)) >= 0) {
                switch (c) {
                case 'J':
                        a->json = true;
                        break;
                case 'P':
                        a->prom = optarg;
                        break;
                case 'w':
                case 'c':
                        if (parse_duration(optarg, c == 'w' ? &a->o.override.warning : &a->o.override.critical) < 0)
                                return cli_usage_error("status", "invalid --%s '%s': expected seconds or 15m, 1h, 1d",
                                                       c == 'w' ? "warning" : "critical", optarg);
                        break;
                case 't':
                        if (cli_parse_int(optarg, 1, 3600, &a->timeout) < 0)
                                return cli_usage_error("status", "invalid --timeout '%s'", optarg);
                        break;
                default:
                        return cli->exit;
                }
        }
        if (argc - optind < 1)
                return cli_usage_error("status", "expected VAULT [VM ...]");
        if (a->o.override.warning && a->o.override.critical && a->o.override.critical < a->o.override.warning)
                return cli_usage_error("status", "--critical must not be below --warning");
        for (int i = optind + 1; i < argc; i++)
                if (!name_is_valid(argv[i]))
                        return cli_usage_error("status", "invalid VM name '%s'", argv[i]);
        a->o.vault = argv[optind];
        a->o.vms = argc - optind > 1 ? (const char *const *)argv + optind + 1 : NULL;
        a->o.n_vms = (size_t)(argc - optind - 1);
        return CLI_PARSED;
}

static int unknown(const struct status_args *a, const char *why) {
        if (a->prom)
                write_prometheus(a->prom, a->o.vault, NULL);
        if (a->json)
                cli_json_print(json_pack("{s:s, s:i, s:s}", "status", "UNKNOWN", "exit", STATUS_UNKNOWN, "message", why),
                               JSON_INDENT(2));
        else
                printf("RPFS UNKNOWN - %s: %s\n", a->o.vault, why);
        return STATUS_UNKNOWN;
}

int cmd_status(struct cli *cli, int argc, char **argv) {
        struct status_args a = { .timeout = 10 };
        char state_dir[4096];
        struct sync_status *st = NULL;
        struct store *s = NULL;
        int r, exit;

        r = parse_args(cli, argc, argv, &a);
        if (r != CLI_PARSED)
                return r == EXIT_USAGE ? STATUS_UNKNOWN : r; /* plugins report usage errors as UNKNOWN */
        rpfs_state_dir(state_dir, sizeof state_dir);
        a.o.state_dir = state_dir;
        /* An unreachable vault is UNKNOWN within the timeout, whatever it does. */
        cli->store.bounded = true;
        cli->store.retry_seconds = (double)a.timeout;
        store_thread_deadline(now_monotonic() + (double)a.timeout);
        r = cli_open_vault(cli, a.o.vault, &s);
        if (r < 0)
                return unknown(&a, cli_vault_strerror(a.o.vault, r));
        r = sync_status_get(s, &a.o, &st);
        store_free(s);
        if (r < 0)
                return unknown(&a, cli_vault_strerror(a.o.vault, r));
        exit = (int)st->level;
        if (a.prom && write_prometheus(a.prom, a.o.vault, st) < 0)
                exit = STATUS_UNKNOWN;
        if (a.json)
                print_json(st);
        else if (!cli->quiet)
                print_plugin(st);
        sync_status_free(st);
        return exit;
}
