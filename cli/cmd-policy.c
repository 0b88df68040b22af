/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs policy: show or set the retention policy of a vault or of one VM.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "retention.h"

static const char policy_help[] =
        "Usage: rpfs policy VAULT [--vm VM] [--retention 24h] [--app-frequency 60m] [--rpo 15m]\n"
        "                   [--thin site-recovery | --keep-last N --keep-hourly N --keep-daily N\n"
        "                    --keep-weekly N --keep-monthly N] [--show] [--json]\n"
        "\n"
        "Show the retention policy that applies (with no setting given, or --show), or\n"
        "change it: the vault's default, or with --vm one VM's override. Settings not\n"
        "given keep the values that applied before. Defaults (Site Recovery's):\n"
        "retention 24h, app-consistent frequency 60m, RPO threshold 15m, thinning\n"
        "site-recovery.\n"
        "\n"
        "Thinning site-recovery: every point of the last 2 hours; beyond that, within\n"
        "the retention window, the newest point of each UTC hour (retention up to 1 day),\n"
        "of each 2 hours (up to 7 days), or of each 2 hours for 7 days and each 4 hours\n"
        "after (longer); app-consistent points are thinned the same way, separately.\n"
        "The --keep-* rules replace it (and the retention window): calendar buckets in\n"
        "UTC (weeks start on Monday), the newest point of each of the N newest buckets\n"
        "with points is kept, and the rules are OR-ed (a point kept by any is kept).\n"
        "Always kept: each VM's newest point and newest app-consistent point, held\n"
        "points (rpfs hold), points under a lease and points a failback journal names.\n"
        "\n"
        "  --vm VM             a VM's override instead of the vault's default\n"
        "  --retention T       how long points are kept (s, m, h, d suffixes)\n"
        "  --app-frequency T   the app-consistent point frequency\n"
        "  --rpo T             the RPO threshold (alert when the newest point is older)\n"
        "  --thin site-recovery  back to the Site Recovery table\n"
        "  --keep-last N, --keep-hourly N, --keep-daily N, --keep-weekly N, --keep-monthly N\n"
        "  --show              print the policy that applies (the default with no setting)\n"
        "  --json              print it as JSON\n"
        "  -h, --help          show this help\n";

/* "90s", "15m", "24h", "7d", or plain seconds. 0 or -EINVAL. */
static int parse_duration(const char *s, uint32_t *ret) {
        char *end;
        unsigned long long v, mul = 1;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        if (*end == 's')
                end++;
        else if (*end == 'm')
                mul = 60, end++;
        else if (*end == 'h')
                mul = 3600, end++;
        else if (*end == 'd')
                mul = 86400, end++;
        if (*end || v == 0 || v > UINT32_MAX / mul)
                return -EINVAL;
        *ret = (uint32_t)(v * mul);
        return 0;
}

static const char *source_name(enum ret_policy_source s) {
        return s == RET_POLICY_VM ? "vm" : s == RET_POLICY_VAULT ? "vault" : "builtin";
}

static void print_policy(const struct ret_policy *p, const char *vm, bool json) {
        if (json) {
                json_t *o = json_pack("{s:s?, s:s, s:I, s:I, s:I, s:s, s:{s:I, s:I, s:I, s:I, s:I}}", "vm", vm,
                                      "source", source_name(p->source), "retention_seconds",
                                      (json_int_t)p->retention, "app_frequency_seconds",
                                      (json_int_t)p->app_frequency, "rpo_seconds", (json_int_t)p->rpo, "thin",
                                      p->thin == RET_THIN_KEEP ? "keep" : "site-recovery", "keep", "last",
                                      (json_int_t)p->keep_last, "hourly", (json_int_t)p->keep_hourly, "daily",
                                      (json_int_t)p->keep_daily, "weekly", (json_int_t)p->keep_weekly,
                                      "monthly", (json_int_t)p->keep_monthly);
                cli_json_print(o, JSON_INDENT(2));
                return;
        }
        printf("policy of %s%s (%s)\n", vm ? "VM " : "the vault", vm ? vm : "", source_name(p->source));
        printf("  retention      %us (%.1f h)\n", p->retention, p->retention / 3600.0);
        printf("  app frequency  %us (%u min)\n", p->app_frequency, p->app_frequency / 60);
        printf("  rpo            %us (%u min)\n", p->rpo, p->rpo / 60);
        if (p->thin == RET_THIN_KEEP)
                printf("  thin           keep: last %u, hourly %u, daily %u, weekly %u, monthly %u\n", p->keep_last,
                       p->keep_hourly, p->keep_daily, p->keep_weekly, p->keep_monthly);
        else
                printf("  thin           site-recovery\n");
}

struct policy_args {
        const char *vm;
        bool show, json, changed, keep_given, thin_sr;
        struct ret_policy set;     /* the fields given */
        unsigned given;            /* which: bits below */
};
enum { G_RET = 1, G_APP = 2, G_RPO = 4 };

static int keep_option(int c, const char *arg, struct policy_args *a) {
        long v;
        uint32_t *f[] = { &a->set.keep_last, &a->set.keep_hourly, &a->set.keep_daily, &a->set.keep_weekly,
                          &a->set.keep_monthly };

        if (cli_parse_int(arg, 0, 1000000, &v) < 0)
                return cli_usage_error("policy", "invalid --keep-* value '%s'", arg);
        *f[c - 'A'] = (uint32_t)v;
        a->keep_given = a->changed = true;
        return 0;
}

static int parse_args(struct cli *cli, int argc, char **argv, struct policy_args *a) {
        static const struct option opts[] = {
                { "vm", required_argument, NULL, 'm' },
                { "retention", required_argument, NULL, 'r' },
                { "app-frequency", required_argument, NULL, 'a' },
                { "rpo", required_argument, NULL, 'p' },
                { "thin", required_argument, NULL, 't' },
                { "keep-last", required_argument, NULL, 'A' },
                { "keep-hourly", required_argument, NULL, 'B' },
                { "keep-daily", required_argument, NULL, 'C' },
                { "keep-weekly", required_argument, NULL, 'D' },
                { "keep-monthly", required_argument, NULL, 'E' },
                { "show", no_argument, NULL, 's' },
                { "json", no_argument, NULL, 'J' },
                {}
        };
        int c, r;

        while ((c = cli_getopt(cli, argc, argv, "", opts, policy_help)) >= 0) {
                switch (c) {
                case 'm':
                        if (!name_is_valid(optarg))
                                return cli_usage_error("policy", "invalid VM name '%s'", optarg);
                        a->vm = optarg;
                        break;
                case 'r':
                case 'a':
                case 'p': {
                        uint32_t *f = c == 'r' ? &a->set.retention : c == 'a' ? &a->set.app_frequency : &a->set.rpo;
                        if (parse_duration(optarg, f) < 0)
                                return cli_usage_error("policy", "invalid duration '%s' (e.g. 90s, 15m, 24h, 7d)", optarg);
                        a->given |= c == 'r' ? G_RET : c == 'a' ? G_APP : G_RPO;
                        a->changed = true;
                        break;
                }
                case 't':
                        if (strcmp(optarg, "site-recovery") != 0)
                                return cli_usage_error("policy", "invalid --thin '%s': site-recovery (or --keep-*)", optarg);
                        a->thin_sr = a->changed = true;
                        break;
                case 'A': case 'B': case 'C': case 'D': case 'E':
                        r = keep_option(c, optarg, a);
                        if (r)
                                return r;
                        break;
                case 's':
                        a->show = true;
                        break;
                case 'J':
                        a->json = true;
                        break;
                default:
                        return cli->exit;
                }
        }
        if (argc - optind != 1)
                return cli_usage_error("policy", "expected exactly one VAULT argument");
        if (a->thin_sr && a->keep_given)
                return cli_usage_error("policy", "--thin site-recovery and --keep-* exclude each other");
        if (a->keep_given && !(a->set.keep_last || a->set.keep_hourly || a->set.keep_daily || a->set.keep_weekly ||
                               a->set.keep_monthly))
                return cli_usage_error("policy", "at least one --keep-* rule must be above 0");
        return CLI_PARSED;
}

/* The policy that applies, with the settings given laid over it. */
static void apply(struct ret_policy *p, const struct policy_args *a) {
        if (a->given & G_RET)
                p->retention = a->set.retention;
        if (a->given & G_APP)
                p->app_frequency = a->set.app_frequency;
        if (a->given & G_RPO)
                p->rpo = a->set.rpo;
        if (a->thin_sr) {
                p->thin = RET_THIN_SITE_RECOVERY;
                p->keep_last = p->keep_hourly = p->keep_daily = p->keep_weekly = p->keep_monthly = 0;
        }
        if (a->keep_given) {
                p->thin = RET_THIN_KEEP;
                p->keep_last = a->set.keep_last;
                p->keep_hourly = a->set.keep_hourly;
                p->keep_daily = a->set.keep_daily;
                p->keep_weekly = a->set.keep_weekly;
                p->keep_monthly = a->set.keep_monthly;
        }
}

int cmd_policy(struct cli *cli, int argc, char **argv) {
        struct policy_args a = { 0 };
        struct ret_policy p;
        struct store *s = NULL;
        const char *url;
        int r;

        r = parse_args(cli, argc, argv, &a);
        if (r != CLI_PARSED)
                return r;
        url = argv[optind];
        if (cli_open_vault(cli, url, &s) < 0)
                return 1;
        r = ret_policy_get(s, a.vm, &p);
        if (r < 0) {
                log_error("%s: reading the policy failed: %s", url, cli_vault_strerror(url, r));
                store_free(s);
                return 1;
        }
        if (a.changed) {
                apply(&p, &a);
                r = ret_policy_set(s, a.vm, &p);
                if (r < 0) {
                        log_error("%s: storing the policy failed: %s", url, cli_vault_strerror(url, r));
                        store_free(s);
                        return 1;
                }
                p.source = a.vm ? RET_POLICY_VM : RET_POLICY_VAULT;
        }
        if (!a.changed || a.show || a.json)
                print_policy(&p, a.vm, a.json);
        else if (!cli->quiet)
                printf("policy of %s%s stored\n", a.vm ? "VM " : "the vault", a.vm ? a.vm : "");
        store_free(s);
        return 0;
}
