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
        "  -o OPT[,OPT...]         allow_other (let other users read the mount), the options\n"
        "                          above as cache=DIR, cache-size=, seed=, timeout=, log=,\n"
        "                          onprem=, failback-mode=; mount(8)'s generic options are\n"
        "                          ignored. So 'mount -t fuse.rpfs VAULT DIR -o cache=DIR'\n"
        "                          and an /etc/fstab line of type fuse.rpfs work (mount.fuse3\n"
        "                          runs 'rpfs VAULT DIR -o ...')\n"
        "  -h, --help              show this help\n"
        "\n"
        "Exit status: 0 mounted (with -f: unmounted, also lazily with 'fusermount3 -uz'\n"
        "once the last open file closes); 1 failure, or with -f the connection was\n"
        "aborted while mounted (/sys/fs/fuse/connections/N/abort); 2 usage error.\n";

#define MOUNT_O_SEEDS 32 /* seed= entries -o may add beyond one per argument */

/* What the command line asks for; o is what fs_mount() gets. */
struct mount_args {
        struct fs_options o;
        struct fs_seed_spec *seeds; /* seed_cap entries */
        char *seedbuf;              /* their VM and disk names, 160 bytes each */
        size_t n, seed_cap;
        char *obuf[8];              /* -o lists (freed by the caller), values point into them */
        size_t n_obuf;
        char vault_abs[PATH_MAX], mnt_abs[PATH_MAX], cache_abs[PATH_MAX], log_abs[PATH_MAX],
                onprem_abs[PATH_MAX];
};

/* --seed VM/DISK=PATH into a->seeds[a->n]. 0 or an exit status. */
static int seed_option(struct mount_args *a, const char *arg) {
        char *b = a->seedbuf + 160 * a->n, *slash;
        const char *eq = strchr(arg, '=');

        if (a->n >= a->seed_cap)
                return cli_usage_error("mount", "too many seeds");
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

static int mount_option(struct mount_args *a, int c, const char *arg);

/* Options mount(8) and mount.fuse3 pass along that mean nothing here (the
 * mount is read-only where it must be, nodev and nosuid by FUSE). */
static bool generic_mount_option(const char *k) {
        static const char *const ignored[] = { "rw", "ro", "dev", "nodev", "suid", "nosuid", "exec", "noexec",
                                               "atime", "noatime", "relatime", "strictatime", "nodiratime",
                                               "auto", "noauto", "defaults", "nofail", "_netdev", "user",
                                               "nouser", "users", "owner", "async", "sync" };
        for (size_t i = 0; i < ELEMENTSOF(ignored); i++)
                if (strcmp(k, ignored[i]) == 0)
                        return true;
        return strncmp(k, "x-", 2) == 0 || strncmp(k, "comment=", 8) == 0;
}

/* -o a,b=c,...: the long options as key=value (cache=DIR, cache-size=20G,
 * seed=VM/DISK=PATH, timeout=N, log=FILE, onprem=DIR, failback-mode=M,
 * foreground), allow_other, and mount(8)'s generic options (ignored), so
 * that `mount -t fuse.rpfs VAULT DIR -o ...` and /etc/fstab work through
 * mount.fuse3, which runs `rpfs VAULT DIR -o OPTIONS`. Values stay in
 * a->obuf. 0 or an exit status. */
static int mount_o_options(struct mount_args *a, const char *arg) {
        static const struct { const char *key; int c; } keys[] = {
                { "cache", 'C' }, { "cache-size", 'S' }, { "seed", 's' }, { "timeout", 't' },
                { "log", 'l' }, { "onprem", 'O' }, { "failback-mode", 'F' },
        };
        char *list = strdup(arg), *save = NULL;

        if (!list || a->n_obuf >= ELEMENTSOF(a->obuf))
                return free(list), 1;
        a->obuf[a->n_obuf++] = list; /* the values point into it */
        for (char *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(k, '=');
                bool known = false;
                int r;

                if (strcmp(k, "allow_other") == 0) {
                        a->o.allow_other = true;
                        continue;
                }
                if (strcmp(k, "foreground") == 0) {
                        a->o.foreground = true;
                        continue;
                }
                if (generic_mount_option(k))
                        continue;
                for (size_t i = 0; eq && i < ELEMENTSOF(keys); i++)
                        if ((size_t)(eq - k) == strlen(keys[i].key) && strncmp(k, keys[i].key, (size_t)(eq - k)) == 0) {
                                r = mount_option(a, keys[i].c, eq + 1);
                                if (r)
                                        return r;
                                known = true;
                        }
                if (!known)
                        return cli_usage_error("mount", "unsupported -o '%s' (supported: allow_other, cache=, "
                                               "cache-size=, seed=, timeout=, log=, onprem=, failback-mode=, "
                                               "and mount's generic options)", k);
        }
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
                return mount_o_options(a, arg);
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

/* Parse, check and mount; a's -o lists are freed by the caller. */
static int mount_run(struct cli *cli, int argc, char **argv, struct mount_args *a) {
        int r = mount_parse(cli, argc, argv, a);

        if (r != CLI_PARSED)
                return r;
        if (mount_check(cli, a) < 0 || mount_absolute_paths(a) < 0)
                return 1;
        /* Every request of the mount answers within its timeout: so does
         * every call to the vault, whatever the remote does. */
        a->o.store = cli->store;
        a->o.store.retry_seconds = a->o.timeout ? a->o.timeout : 1;
        a->o.store.bounded = true;
        r = fs_mount(&a->o);
        return r < 0 ? 1 : 0;
}

int cmd_mount(struct cli *cli, int argc, char **argv) {
        struct mount_args a = { .o = { .cache_size = 20ULL << 30, .timeout = 30 } };
        size_t cap = (size_t)argc + MOUNT_O_SEEDS;
        _cleanup_free_ struct fs_seed_spec *seeds = calloc(cap, sizeof *seeds);
        _cleanup_free_ char *seedbuf = calloc(cap, 160);
        int r;

        if (!seeds || !seedbuf)
                return 1;
        a.seeds = seeds;
        a.seedbuf = seedbuf;
        a.seed_cap = cap;
        r = mount_run(cli, argc, argv, &a);
        for (size_t i = 0; i < a.n_obuf; i++)
                free(a.obuf[i]);
        return r;
}
