/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs mount: show a vault's points as image files (FUSE, fs/).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "fs.h"

static const char mount_help[] =
        "Usage: rpfs mount VAULT MOUNTPOINT [options]\n"
        "\n"
        "Show every VM, point and disk of the vault as read-only image files:\n"
        "  MOUNTPOINT/<vm>/points/<id>/<disk>.raw   the disk at that point\n"
        "  MOUNTPOINT/<vm>/points/<id>/<disk>.vhd   the same bytes with a fixed-VHD footer\n"
        "  MOUNTPOINT/<vm>/points/<id>/point.json   time, type, group, disks\n"
        "  MOUNTPOINT/<vm>/latest, latest-app       the newest (app-consistent) point\n"
        "  MOUNTPOINT/.rpfs/stats                   bytes served from zero, cache, seed, vault\n"
        "  MOUNTPOINT/failback/                     with --onprem DIR: DIR itself, writable\n"
        "Reads fetch only the blocks they touch and verify every block. Points\n"
        "replicated while mounted appear within a few seconds. Unmount with\n"
        "'fusermount3 -u MOUNTPOINT'.\n"
        "\n"
        "  -f, --foreground        stay in the foreground, log to stderr\n"
        "  --cache DIR             block cache directory (default $RPFS_CACHE_DIR,\n"
        "                          $XDG_CACHE_HOME/rpfs or ~/.cache/rpfs)\n"
        "  --cache-size SIZE       cache bound (default 20G)\n"
        "  --seed VM/DISK=PATH     read blocks whose checksum matches from this local\n"
        "                          image instead of the vault (repeatable)\n"
        "  --timeout SECONDS       how long a read retries an unreachable vault before\n"
        "                          failing with EIO (default 30)\n"
        "  --log FILE              log file of the background daemon\n"
        "  --onprem DIR            show DIR, writable, as MOUNTPOINT/failback: writes there\n"
        "                          only reach the disk for blocks that differ, and\n"
        "                          'cp MOUNTPOINT/<vm>/latest/disk0.raw MOUNTPOINT/failback/x.img'\n"
        "                          fetches and writes only the changed blocks; a process\n"
        "                          that reads a point's disk and writes a file there\n"
        "                          (dd conv=notrunc) reads the blocks that file already\n"
        "                          holds from it, not from the vault\n"
        "  --failback-mode MODE    delta (default: compare, write what differs) or full\n"
        "                          (write every block)\n"
        "  -o allow_other          let other users read the mount\n"
        "  -h, --help              show this help\n"
        "\n"
        "Exit status: 0 mounted (with -f: unmounted, also lazily with 'fusermount3 -uz'\n"
        "once the last open file closes); 1 failure, or with -f the connection was\n"
        "aborted while mounted (/sys/fs/fuse/connections/N/abort); 2 usage error.\n";

/* What the command line asks for; o is what fs_mount() gets. */
struct mount_args {
        struct fs_options o;
        struct fs_seed_spec *seeds; /* argc entries */
        char *seedbuf;              /* their VM and disk names, 160 bytes each */
        size_t n;
        char vault_abs[PATH_MAX], mnt_abs[PATH_MAX], cache_abs[PATH_MAX], log_abs[PATH_MAX],
                onprem_abs[PATH_MAX];
};

/* --seed VM/DISK=PATH into a->seeds[a->n]. 0 or an exit status. */
static int seed_option(struct mount_args *a, const char *arg) {
        char *b = a->seedbuf + 160 * a->n, *slash;
        const char *eq = strchr(arg, '=');

        if (!eq || (size_t)(eq - arg) >= 160)
                return cli_usage_error("mount", "invalid --seed '%s': expected VM/DISK=PATH", arg);
        memcpy(b, arg, (size_t)(eq - arg));
        b[eq - arg] = 0;
        slash = strchr(b, '/');
        if (!slash)
                return cli_usage_error("mount", "invalid --seed '%s': expected VM/DISK=PATH", arg);
        *slash = 0;
        if (!name_is_valid(b) || !name_is_valid(slash + 1) || !eq[1])
                return cli_usage_error("mount", "invalid --seed '%s': expected VM/DISK=PATH", arg);
        a->seeds[a->n].vm = b;
        a->seeds[a->n].disk = slash + 1;
        a->seeds[a->n++].path = eq + 1;
        return 0;
}

/* One option (value c, argument arg) into *a. 0 or an exit status. */
static int mount_option(struct mount_args *a, int c, const char *arg) {
        struct fs_options *o = &a->o;
        long v;

        switch (c) {
        case 'f':
                o->foreground = true;
                return 0;
        case 'C':
                o->cache_dir = arg;
                return 0;
        case 'S':
                if (parse_size(arg, &o->cache_size) < 0)
                        return cli_usage_error("mount", "invalid --cache-size '%s'", arg);
                return 0;
        case 's':
                return seed_option(a, arg);
        case 't':
                if (cli_parse_int(arg, 0, 86400, &v) < 0)
                        return cli_usage_error("mount", "invalid --timeout '%s': seconds, 0..86400", arg);
                o->timeout = (unsigned)v;
                return 0;
        case 'l':
                o->log_file = arg;
                return 0;
        case 'O':
                o->onprem_dir = arg;
                return 0;
        case 'F':
                if (strcmp(arg, "full") == 0)
                        o->failback_full = true;
                else if (strcmp(arg, "delta") == 0)
                        o->failback_full = false;
                else
                        return cli_usage_error("mount", "invalid --failback-mode '%s': delta or full", arg);
                return 0;
        case 'o':
                if (strcmp(arg, "allow_other") == 0)
                        o->allow_other = true;
                else
                        return cli_usage_error("mount", "unsupported -o '%s' (supported: allow_other)", arg);
                return 0;
        }
        return 1;
}

/* The command line into *a (seeds and seedbuf allocated by the caller).
 * CLI_PARSED, or the exit status to end with. */
static int mount_parse(struct cli *cli, int argc, char **argv, struct mount_args *a) {
        static const struct option opts[] = {
                { "foreground", no_argument, NULL, 'f' },
                { "cache", required_argument, NULL, 'C' },
                { "cache-size", required_argument, NULL, 'S' },
                { "seed", required_argument, NULL, 's' },
                { "timeout", required_argument, NULL, 't' },
                { "log", required_argument, NULL, 'l' },
                { "onprem", required_argument, NULL, 'O' },
                { "failback-mode", required_argument, NULL, 'F' },
                {}
        };
        int c, r;

        while ((c = cli_getopt(cli, argc, argv, "fo:", opts, mount_help)) >= 0) {
                if (c == CLI_EXIT)
                        return cli->exit;
                r = mount_option(a, c, optarg);
                if (r)
                        return r;
        }
        if (argc - optind != 2)
                return cli_usage_error("mount", "expected VAULT and MOUNTPOINT");
        a->o.vault = argv[optind];
        a->o.mountpoint = argv[optind + 1];
        a->o.seeds = a->seeds;
        a->o.n_seeds = a->n;
        return CLI_PARSED;
}

/* Check what can be checked before mounting: the mount point, the seeds,
 * the vault. 0 or -errno, logged. */
static int mount_check(const struct cli *cli, const struct mount_args *a) {
        struct store *s = NULL;
        struct stat st;
        int r;

        if (stat(a->o.mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
                log_error("%s: mount point is not a directory", a->o.mountpoint);
                return -ENOTDIR;
        }
        for (size_t i = 0; i < a->n; i++)
                if (access(a->seeds[i].path, R_OK) < 0)
                        return log_error_errno(-errno, "seed %s/%s: %s", a->seeds[i].vm, a->seeds[i].disk,
                                               a->seeds[i].path);
        r = cli_open_vault(cli, a->o.vault, &s);
        store_free(s);
        return r;
}

/* The daemon changes to "/": make every path it keeps absolute (creating
 * the cache directory). 0 or -errno, logged. */
static int mount_absolute_paths(struct mount_args *a) {
        struct fs_options *o = &a->o;
        struct stat st;
        int r;

        if (!strstr(o->vault, "://")) {
                if (!realpath(o->vault, a->vault_abs))
                        return log_error_errno(-errno, "%s", o->vault);
                o->vault = a->vault_abs;
        }
        if (!realpath(o->mountpoint, a->mnt_abs))
                return log_error_errno(-errno, "%s", o->mountpoint);
        o->mountpoint = a->mnt_abs;
        if (o->onprem_dir) {
                if (!realpath(o->onprem_dir, a->onprem_abs) || stat(a->onprem_abs, &st) < 0)
                        return log_error_errno(-errno, "--onprem %s", o->onprem_dir);
                if (!S_ISDIR(st.st_mode))
                        return log_error("--onprem %s: not a directory", o->onprem_dir), -ENOTDIR;
                o->onprem_dir = a->onprem_abs;
        }
        if (o->cache_dir) {
                r = mkdir_p(o->cache_dir, 0700);
                if (r < 0 || !realpath(o->cache_dir, a->cache_abs))
                        return log_error_errno(r < 0 ? r : -errno, "cache %s", o->cache_dir);
                o->cache_dir = a->cache_abs;
        }
        if (o->log_file && o->log_file[0] != '/') {
                if (!getcwd(a->log_abs, sizeof a->log_abs - strlen(o->log_file) - 2))
                        return log_error_errno(-errno, "--log %s", o->log_file);
                strcat(a->log_abs, "/");
                strcat(a->log_abs, o->log_file);
                o->log_file = a->log_abs;
        }
        return 0;
}

int cmd_mount(struct cli *cli, int argc, char **argv) {
        struct mount_args a = { .o = { .cache_size = 20ULL << 30, .timeout = 30 } };
        _cleanup_free_ struct fs_seed_spec *seeds = calloc((size_t)argc, sizeof *seeds);
        _cleanup_free_ char *seedbuf = calloc((size_t)argc, 160);
        int r;

        if (!seeds || !seedbuf)
                return 1;
        a.seeds = seeds;
        a.seedbuf = seedbuf;
        r = mount_parse(cli, argc, argv, &a);
        if (r != CLI_PARSED)
                return r;
        if (mount_check(cli, &a) < 0 || mount_absolute_paths(&a) < 0)
                return 1;
        /* Every request of the mount answers within its timeout: so does
         * every call to the vault, whatever the remote does. */
        a.o.store = cli->store;
        a.o.store.retry_seconds = a.o.timeout ? a.o.timeout : 1;
        a.o.store.bounded = true;
        r = fs_mount(&a.o);
        return r < 0 ? 1 : 0;
}
