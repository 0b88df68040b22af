/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs replicate: store a VM's disks as a new recovery point.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sync.h"

static const char replicate_help[] =
        "Usage: rpfs replicate VAULT VM --disk [NAME=]PATH [--disk ...] [options]\n"
        "       rpfs replicate VAULT --group G --vm VM --disk ... [--vm VM --disk ...] [options]\n"
        "\n"
        "Store the VM's disks as a new recovery point. Only blocks the vault does not\n"
        "hold yet are compressed and written; all-zero blocks are never stored.\n"
        "Images may be raw files, block devices, VHD (fixed, dynamic), VHDX, QCOW2 or\n"
        "VMDK; the format is detected from the content.\n"
        "\n"
        "  --disk [NAME=]PATH   a disk of the VM; named disk0, disk1, ... in order unless NAME= is given\n"
        "  --app-consistent[=required]\n"
        "                       mark the point app-consistent (default: crash-consistent); with\n"
        "                       --hook only when its freeze succeeded (=required: else fail)\n"
        "  --hook SCRIPT        run SCRIPT freeze, snapshot, thaw, then done or failed around the\n"
        "                       copy (env RPFS_VM, RPFS_POINT, RPFS_DISKS); lines NAME=PATH that\n"
        "                       snapshot prints are read instead of those disks\n"
        "  --group G            tag the point with replication group G; with --vm: one point of every\n"
        "                       member with one ID, visible as a group point once all are stored\n"
        "  --vm VM              a member of --group G; the --disk options after it are its disks\n"
        "                       (the first group replicate records the members; later ones give all)\n"
        "  --time ID            point time as UTC ISO 8601 basic, e.g. 20261122T101500Z (default: now)\n"
        "  --threads N          worker threads (default: one per CPU)\n"
        "  --base latest|ID     the point the changes are relative to (same VM, same disk name and\n"
        "                       size): with --changed, the tracker's base; without, the disk is a\n"
        "                       qcow2 overlay whose backing file holds that point's state, and only\n"
        "                       the overlay's own clusters are read\n"
        "  --changed EXTENTS    read only the byte ranges EXTENTS lists ('OFFSET LENGTH' lines, JSON\n"
        "                       [{\"start\":N,\"length\":N}] or LVM thin_delta XML); the other blocks\n"
        "                       come from --base (one --disk)\n"
        "  --changed-block-size N\n"
        "                       thin_delta XML: the pool's data block size in bytes (K/M suffixes),\n"
        "                       when the XML has no data_block_size (must agree when it has)\n"
        "  --verify-base N      with --base: read N random blocks outside the ranges and refuse if one\n"
        "                       differs from the base\n"
        "  -q, --quiet          print nothing on success\n"
        "  -h, --help           show this help\n"
        "\n"
        "Prints the new point's ID and what was stored. A progress line is shown when\n"
        "stderr is a terminal.\n";

/* --disk [NAME=]PATH into disks[*n] (disk names kept in names, 65 bytes
 * each). 0 or an exit status. */
static int disk_option(const char *arg, struct sync_disk_spec *disks, char *names, size_t *n) {
        const char *eq = strchr(arg, '=');
        char *name = names + 65 * *n;

        if (eq && (size_t)(eq - arg) < 65 && eq != arg) {
                memcpy(name, arg, (size_t)(eq - arg));
                name[eq - arg] = 0;
                if (!name_is_valid(name))
                        return cli_usage_error("replicate", "invalid disk name '%s'", name);
                disks[*n].path = eq + 1;
        } else {
                snprintf(name, 65, "disk%zu", *n);
                disks[*n].path = arg;
        }
        if (!*disks[*n].path)
                return cli_usage_error("replicate", "empty --disk path");
        for (size_t k = 0; k < *n; k++)
                if (strcmp(disks[k].name, name) == 0)
                        return cli_usage_error("replicate", "disk name '%s' given twice", name);
        disks[(*n)++].name = name;
        return 0;
}

/* rpfs replicate VAULT --group G --vm VM --disk ... (members m[0..n)). */
static int replicate_group(struct cli *cli, int argc, char **argv, struct sync_replicate_opts *o,
                           const struct sync_group_member *m, size_t n, bool hook) {
        _cleanup_free_ struct sync_replicate_result *res = calloc(n, sizeof *res);
        struct store *s = NULL;
        int r;

        if (argc - optind != 1)
                return cli_usage_error("replicate", "with --vm, expected only the VAULT argument");
        if (!o->group)
                return cli_usage_error("replicate", "--vm goes with --group G");
        if (o->changed || hook)
                return cli_usage_error("replicate", "--changed and --hook do not go with --vm");
        for (size_t i = 0; i < n; i++)
                if (m[i].n_disks == 0)
                        return cli_usage_error("replicate", "--vm %s has no --disk", m[i].vm);
        if (!res || cli_open_vault(cli, argv[optind], &s) < 0)
                return 1;
        r = sync_replicate_group(s, o->group, m, n, o, res);
        store_free(s);
        if (r < 0)
                return 1;
        for (size_t i = 0; i < n && !cli->quiet; i++) {
                char a[24], b[24];
                printf("%s/%s %s: group %s, %zu disk%s, %s, %llu new blocks, %s stored, %.1fs\n", m[i].vm, res[i].id,
                       o->app ? "app" : "crash", o->group, m[i].n_disks, m[i].n_disks == 1 ? "" : "s",
                       format_bytes(res[i].disk_bytes, a, sizeof a), (unsigned long long)res[i].new_blocks,
                       format_bytes(res[i].stored_bytes, b, sizeof b), res[i].seconds);
        }
        if (!cli->quiet)
                printf("group %s/%s: %zu members committed\n", o->group, res[0].id, n);
        return 0;
}

/* The parsed command line of rpfs replicate. */
struct replicate_args {
        struct sync_replicate_opts o;
        struct sync_hook_opts hook;
        struct sync_disk_spec *disks;
        char *names; /* 65 bytes per disk */
        struct sync_group_member *mem;
        size_t n, n_mem;
};

/* Apply option c (getopt's optarg): 0, or the exit status of a usage error. */
static int replicate_option(struct replicate_args *a, int c) {
        long v;
        int r;

        switch (c) {
        case 'd':
                if (a->n_mem > 0) {
                        struct sync_group_member *m = &a->mem[a->n_mem - 1];
                        size_t at = (size_t)(m->disks - a->disks);
                        r = disk_option(optarg, a->disks + at, a->names + 65 * at, &m->n_disks);
                        a->n = at + m->n_disks;
                } else
                        r = disk_option(optarg, a->disks, a->names, &a->n);
                if (r)
                        return r;
                break;
        case 'M':
                if (!name_is_valid(optarg))
                        return cli_usage_error("replicate", "invalid VM name '%s'", optarg);
                if (a->n > 0 && a->n_mem == 0)
                        return cli_usage_error("replicate", "--disk before the first --vm");
                for (size_t k = 0; k < a->n_mem; k++)
                        if (strcmp(a->mem[k].vm, optarg) == 0)
                                return cli_usage_error("replicate", "--vm %s given twice", optarg);
                a->mem[a->n_mem].vm = optarg;
                a->mem[a->n_mem++].disks = a->disks + a->n;
                break;
        case 'a':
                if (optarg && strcmp(optarg, "required") != 0)
                        return cli_usage_error("replicate", "invalid --app-consistent='%s': only =required", optarg);
                a->o.app = true;
                a->hook.required = optarg != NULL;
                break;
        case 'H':
                if (access(optarg, X_OK) < 0)
                        return cli_usage_error("replicate", "--hook %s: not an executable program", optarg);
                a->hook.script = optarg;
                break;
        case 'g':
                if (!name_is_valid(optarg))
                        return cli_usage_error("replicate", "invalid group name '%s'", optarg);
                a->o.group = optarg;
                break;
        case 't':
                if (point_id_parse(optarg, &a->o.time) < 0)
                        return cli_usage_error("replicate", "invalid --time '%s': expected UTC ISO 8601 basic form like 20261122T101500Z", optarg);
                break;
        case 'j':
                if (cli_parse_int(optarg, 1, 256, &v) < 0)
                        return cli_usage_error("replicate", "invalid --threads '%s'", optarg);
                a->o.threads = (unsigned)v;
                break;
        case 'B':
                a->o.base = optarg;
                break;
        case 'C':
                a->o.changed = optarg;
                break;
        case 'E':
                if (cli_parse_int(optarg, 0, 1000000, &v) < 0)
                        return cli_usage_error("replicate", "invalid --verify-base '%s': a number of blocks", optarg);
                a->o.verify_base = (unsigned)v;
                break;
        case 'Z':
                if (parse_size(optarg, &a->o.changed_block_size) < 0 || a->o.changed_block_size == 0 ||
                    a->o.changed_block_size % 512)
                        return cli_usage_error("replicate", "invalid --changed-block-size '%s': bytes, a multiple of 512",
                                               optarg);
                break;
        }
        return 0;
}

/* The options of one VM's replication that do not go together, or NULL. */
static const char *option_conflict(const struct sync_replicate_opts *o, size_t n_disks, const struct sync_hook_opts *hook) {
        if (o->changed_block_size && !o->changed)
                return "--changed-block-size needs --changed";
        if (o->verify_base && !o->base)
                return "--verify-base needs --base";
        if (o->changed && (!o->base || n_disks != 1))
                return "--changed needs --base and exactly one --disk";
        if (o->base && n_disks != 1)
                return "--base needs exactly one --disk";
        if ((o->changed || o->base) && hook->script)
                return "--changed and --base do not go with --hook";
        if (hook->required && !hook->script)
                return "--app-consistent=required needs --hook";
        return NULL;
}

static void print_result(const struct sync_replicate_opts *o, const struct sync_replicate_result *res, bool app) {
        char a[24], b[24];
        printf("%s/%s %s: %zu disk%s, %s, %llu new blocks, %s stored, %.1fs\n", o->vm, res->id, app ? "app" : "crash",
               o->n_disks, o->n_disks == 1 ? "" : "s", format_bytes(res->disk_bytes, a, sizeof a),
               (unsigned long long)res->new_blocks, format_bytes(res->stored_bytes, b, sizeof b), res->seconds);
}

int cmd_replicate(struct cli *cli, int argc, char **argv) {
        static const struct option opts[] = {
                { "disk", required_argument, NULL, 'd' },
                { "app-consistent", optional_argument, NULL, 'a' },
                { "hook", required_argument, NULL, 'H' },
                { "group", required_argument, NULL, 'g' },
                { "time", required_argument, NULL, 't' },
                { "threads", required_argument, NULL, 'j' },
                { "base", required_argument, NULL, 'B' },
                { "changed", required_argument, NULL, 'C' },
                { "verify-base", required_argument, NULL, 'E' },
                { "vm", required_argument, NULL, 'M' },
                { "changed-block-size", required_argument, NULL, 'Z' },
                {}
        };
        struct replicate_args a = { .o = { .time = time(NULL), .progress = true } };
        struct sync_replicate_opts *o = &a.o;
        struct sync_replicate_result res;
        bool app = false;
        _cleanup_free_ struct sync_disk_spec *disks = calloc((size_t)argc, sizeof *disks);
        _cleanup_free_ char *names = calloc((size_t)argc, 65);
        _cleanup_free_ struct sync_group_member *mem = calloc((size_t)argc, sizeof *mem);
        struct store *s = NULL;
        const char *conflict;
        int c, r;

        if (!disks || !names || !mem)
                return 1;
        a.disks = disks;
        a.names = names;
        a.mem = mem;
        while ((c = cli_getopt(cli, argc, argv, "", opts, replicate_help)) >= 0) {
                if (c == CLI_EXIT)
                        return cli->exit;
                r = replicate_option(&a, c);
                if (r)
                        return r;
        }
        if (a.n_mem > 0)
                return replicate_group(cli, argc, argv, o, mem, a.n_mem, a.hook.script != NULL);
        if (argc - optind != 2)
                return cli_usage_error("replicate", "expected VAULT and VM arguments");
        if (a.n == 0)
                return cli_usage_error("replicate", "at least one --disk is required");
        conflict = option_conflict(o, a.n, &a.hook);
        if (conflict)
                return cli_usage_error("replicate", "%s", conflict);
        if (!name_is_valid(argv[optind + 1]))
                return cli_usage_error("replicate", "invalid VM name '%s': use 1-64 of A-Z a-z 0-9 . _ -", argv[optind + 1]);
        o->vm = argv[optind + 1];
        o->disks = disks;
        o->n_disks = a.n;
        if (cli_open_vault(cli, argv[optind], &s) < 0)
                return 1;
        r = sync_replicate_hooked(s, o, &a.hook, &res, &app);
        if (r == -EEXIST)
                log_error("%s: point %s/%s already exists", argv[optind], o->vm, res.id);
        else if (r == -ENOMEM)
                log_error_errno(r, "replicate failed");
        store_free(s);
        if (r < 0)
                return 1;
        if (!cli->quiet)
                print_result(o, &res, app);
        return 0;
}

static const char reprotect_help[] =
        "Usage: rpfs reprotect VAULT VM --disk [NAME=]PATH [--disk ...] [options]\n"
        "\n"
        "Protect a VM again after rpfs failback --commit: it runs on-prem now, from the\n"
        "point P its disks were failed back to. Stores a new point of the on-prem disks\n"
        "that records this lineage (rpfs status shows the VM as running on-prem) and\n"
        "sends only what changed since P: every disk is read, and only blocks the vault\n"
        "lacks are stored; with --changed only the tracked ranges are read and the\n"
        "other blocks come from P's manifest. Every disk's failback journal must say\n"
        "it was committed at P from this vault.\n"
        "\n"
        "  --disk [NAME=]PATH   an on-prem disk (the failback target); named disk0, ... unless NAME=\n"
        "  --changed EXTENTS    a change tracker's ranges written since the failback ('OFFSET LENGTH'\n"
        "                       lines or JSON); one --disk\n"
        "  --verify-base N      with --changed: check N random blocks outside the ranges against P\n"
        "  --app-consistent     mark the point app-consistent\n"
        "  --time ID            point time (default: now)\n"
        "  --threads N          worker threads (default: one per CPU)\n"
        "  -q, --quiet          print nothing on success\n"
        "  -h, --help           show this help\n";

int cmd_reprotect(struct cli *cli, int argc, char **argv) {
        static const struct option opts[] = {
                { "disk", required_argument, NULL, 'd' },
                { "app-consistent", no_argument, NULL, 'a' },
                { "time", required_argument, NULL, 't' },
                { "threads", required_argument, NULL, 'j' },
                { "changed", required_argument, NULL, 'C' },
                { "verify-base", required_argument, NULL, 'E' },
                {}
        };
        struct sync_replicate_opts o = { .time = time(NULL), .progress = true };
        struct sync_reprotect_opts ro = { .rep = &o };
        struct sync_replicate_result res;
        _cleanup_free_ struct sync_disk_spec *disks = calloc((size_t)argc, sizeof *disks);
        _cleanup_free_ char *names = calloc((size_t)argc, 65);
        char state_dir[PATH_MAX], vault_abs[PATH_MAX], from[POINT_ID_LEN + 1], a[24], b[24];
        struct store *s = NULL;
        size_t n = 0;
        long v;
        int c, r;

        if (!disks || !names)
                return 1;
        while ((c = cli_getopt(cli, argc, argv, "", opts, reprotect_help)) >= 0) {
                if (c == 'd' && (r = disk_option(optarg, disks, names, &n)))
                        return r;
                else if (c == 'a')
                        o.app = true;
                else if (c == 't' && point_id_parse(optarg, &o.time) < 0)
                        return cli_usage_error("reprotect", "invalid --time '%s'", optarg);
                else if (c == 'j' && cli_parse_int(optarg, 1, 256, &v) < 0)
                        return cli_usage_error("reprotect", "invalid --threads '%s'", optarg);
                else if (c == 'j')
                        o.threads = (unsigned)v;
                else if (c == 'C')
                        o.changed = optarg;
                else if (c == 'E' && cli_parse_int(optarg, 0, 1000000, &v) < 0)
                        return cli_usage_error("reprotect", "invalid --verify-base '%s'", optarg);
                else if (c == 'E')
                        o.verify_base = (unsigned)v;
                else if (c != 'd' && c != 't')
                        return cli->exit;
        }
        if (argc - optind != 2)
                return cli_usage_error("reprotect", "expected VAULT and VM arguments");
        if (n == 0)
                return cli_usage_error("reprotect", "at least one --disk is required");
        if (o.changed && n != 1)
                return cli_usage_error("reprotect", "--changed needs exactly one --disk");
        if (o.verify_base && !o.changed)
                return cli_usage_error("reprotect", "--verify-base needs --changed");
        if (!name_is_valid(argv[optind + 1]))
                return cli_usage_error("reprotect", "invalid VM name '%s'", argv[optind + 1]);
        o.vm = argv[optind + 1];
        o.disks = disks;
        o.n_disks = n;
        ro.vault = argv[optind];
        if (!strstr(ro.vault, "://") && realpath(ro.vault, vault_abs))
                ro.vault = vault_abs;
        rpfs_state_dir(state_dir, sizeof state_dir);
        ro.state_dir = state_dir;
        if (cli_open_vault(cli, argv[optind], &s) < 0)
                return 1;
        r = sync_reprotect(s, &ro, &res, from);
        store_free(s);
        if (r < 0)
                return 1;
        if (!cli->quiet)
                printf("%s/%s %s: reprotected (runs on-prem, failed back from %s), %zu disk%s, %s, %llu new blocks, "
                       "%s stored, %.1fs\n", o.vm, res.id, o.app ? "app" : "crash", from, n, n == 1 ? "" : "s",
                       format_bytes(res.disk_bytes, a, sizeof a), (unsigned long long)res.new_blocks,
                       format_bytes(res.stored_bytes, b, sizeof b), res.seconds);
        return 0;
}
