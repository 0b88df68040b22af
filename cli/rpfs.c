/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rpfs command. Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "config.h"
#include "formats.h"
#include "fs.h"
#include "retention.h"
#include "store.h"
#include "sync.h"

#define EXIT_USAGE 2

static bool quiet;

static int usage_error(const char *cmd, const char *fmt, ...) _printf_(2, 3);
static int usage_error(const char *cmd, const char *fmt, ...) {
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        log_error("%s", buf);
        fprintf(stderr, "Try 'rpfs %s --help'.\n", cmd);
        return EXIT_USAGE;
}

/* getopt's '?' (unknown option) and ':' (missing argument), explained. */
static int bad_option(const char *cmd, int c, char **argv) {
        const char *arg = argv[optind - 1];
        if (c == ':')
                return usage_error(cmd, "option '%s' requires an argument", arg);
        if (optopt && optopt != '?')
                return usage_error(cmd, "unknown option '-%c'", optopt);
        return usage_error(cmd, "unknown option '%s'", arg);
}

/* Why an operation on the vault at url failed, in a person's terms: the
 * vault kind's own explanation (Azure: authentication, container, network)
 * or strerror. */
static const char *vault_strerror(const char *url, int r) {
        const char *hint = store_error_hint(url, r);
        return hint ? hint : strerror(-r);
}

/* How every command reaches its vault (--endpoint). */
static struct store_options vault_opts = { .retry_seconds = -1 };

/* Open a vault, explaining failures in terms of the user's path. */
static int open_vault(const char *url, struct store **ret) {
        int r = store_open_with(url, &vault_opts, ret);
        const char *hint;

        switch (r) {
        case 0:
                return 0;
        case -EMEDIUMTYPE:
                log_error("%s: not an rpfs vault (no valid config.json; create one with 'rpfs init')", url);
                break;
        case -EPROTONOSUPPORT:
                log_error("%s: the vault's format version is newer than this rpfs supports (version %d); "
                          "upgrade rpfs", url, STORE_FORMAT_VERSION);
                break;
        case -ENOENT:
        case -ENOTDIR:
                hint = store_error_hint(url, -ENOENT);
                log_error("%s: no such vault%s%s", url, hint ? ": " : "", hint ? hint : "");
                break;
        default:
                log_error("%s: cannot open vault: %s", url, vault_strerror(url, r));
        }
        return r;
}

/* ---- init ---- */

static const char init_help[] =
        "Usage: rpfs init VAULT [--block-size SIZE] [--compression zstd:LEVEL|none]\n"
        "\n"
        "Create an empty vault. VAULT is a directory that does not exist or is empty,\n"
        "or azure://ACCOUNT/CONTAINER[/PREFIX] (the container is created if missing;\n"
        "nothing may exist under the prefix yet).\n"
        "\n"
        "  --block-size SIZE        block size, a power of two from 4K to 4M (default 64K)\n"
        "  --compression zstd:N     zstd level 1..19 (default zstd:1); 'none' stores blocks as they are\n"
        "  -h, --help               show this help\n";

static int cmd_init(int argc, char **argv) {
        static const struct option opts[] = {
                { "block-size", required_argument, NULL, 'b' },
                { "compression", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        uint64_t bs = STORE_DEFAULT_BLOCK_SIZE;
        int level = STORE_DEFAULT_LEVEL, c, r;

        while ((c = getopt_long(argc, argv, ":h", opts, NULL)) >= 0) {
                switch (c) {
                case 'b':
                        if (parse_size(optarg, &bs) < 0 || bs < STORE_MIN_BLOCK_SIZE || bs > STORE_MAX_BLOCK_SIZE ||
                            (bs & (bs - 1)))
                                return usage_error("init", "invalid --block-size '%s': a power of two from 4K to 4M", optarg);
                        break;
                case 'c':
                        if (strcmp(optarg, "none") == 0)
                                level = 0;
                        else if (strncmp(optarg, "zstd", 4) == 0) {
                                char *end;
                                level = STORE_DEFAULT_LEVEL;
                                if (optarg[4] == ':') {
                                        long v = strtol(optarg + 5, &end, 10);
                                        if (*end || end == optarg + 5 || v < 1 || v > 19)
                                                return usage_error("init", "invalid --compression '%s': zstd level 1..19", optarg);
                                        level = (int)v;
                                } else if (optarg[4])
                                        return usage_error("init", "invalid --compression '%s'", optarg);
                        } else
                                return usage_error("init", "invalid --compression '%s': zstd:LEVEL or none", optarg);
                        break;
                case 'h':
                        fputs(init_help, stdout);
                        return 0;
                default:
                        return bad_option("init", c, argv);
                }
        }
        if (argc - optind != 1)
                return usage_error("init", "expected exactly one VAULT argument");
        r = store_init_with(argv[optind], &vault_opts, (uint32_t)bs, level);
        if (r == -EEXIST) {
                log_error("%s: already exists and is not empty; refusing to create a vault there", argv[optind]);
                return 1;
        }
        if (r < 0) {
                log_error("%s: cannot create vault: %s", argv[optind], vault_strerror(argv[optind], r));
                return 1;
        }
        if (!quiet)
                printf("created vault %s (block size %llu, compression %s%s%.0d)\n", argv[optind],
                       (unsigned long long)bs, level ? "zstd" : "none", level ? ":" : "", level);
        return 0;
}

/* ---- replicate ---- */

static const char replicate_help[] =
        "Usage: rpfs replicate VAULT VM --disk [NAME=]PATH [--disk ...] [options]\n"
        "\n"
        "Store the VM's disks as a new recovery point. Only blocks the vault does not\n"
        "hold yet are compressed and written; all-zero blocks are never stored.\n"
        "Images may be raw files, block devices, VHD (fixed, dynamic), VHDX, QCOW2 or\n"
        "VMDK; the format is detected from the content.\n"
        "\n"
        "  --disk [NAME=]PATH   a disk of the VM; named disk0, disk1, ... in order unless NAME= is given\n"
        "  --app-consistent     mark the point app-consistent (default: crash-consistent)\n"
        "  --group G            tag the point with replication group G\n"
        "  --time ID            point time as UTC ISO 8601 basic, e.g. 20261122T101500Z (default: now)\n"
        "  --threads N          worker threads (default: one per CPU)\n"
        "  -q, --quiet          print nothing on success\n"
        "  -h, --help           show this help\n"
        "\n"
        "Prints the new point's ID and what was stored. A progress line is shown when\n"
        "stderr is a terminal.\n";

static int cmd_replicate(int argc, char **argv) {
        static const struct option opts[] = {
                { "disk", required_argument, NULL, 'd' },
                { "app-consistent", no_argument, NULL, 'a' },
                { "group", required_argument, NULL, 'g' },
                { "time", required_argument, NULL, 't' },
                { "threads", required_argument, NULL, 'j' },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct sync_replicate_opts o = { .time = time(NULL), .progress = true };
        struct sync_replicate_result res;
        _cleanup_free_ struct sync_disk_spec *disks = NULL;
        _cleanup_free_ char *names = NULL;
        struct store *s = NULL;
        size_t n = 0;
        int c, r;

        disks = calloc((size_t)argc, sizeof *disks);
        names = calloc((size_t)argc, 65);
        if (!disks || !names)
                return 1;
        while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) >= 0) {
                switch (c) {
                case 'd': {
                        char *eq = strchr(optarg, '=');
                        char *name = names + 65 * n;
                        if (eq && (size_t)(eq - optarg) < 65 && eq != optarg) {
                                memcpy(name, optarg, (size_t)(eq - optarg));
                                name[eq - optarg] = 0;
                                if (!name_is_valid(name))
                                        return usage_error("replicate", "invalid disk name '%s'", name);
                                disks[n].path = eq + 1;
                        } else {
                                snprintf(name, 65, "disk%zu", n);
                                disks[n].path = optarg;
                        }
                        if (!*disks[n].path)
                                return usage_error("replicate", "empty --disk path");
                        for (size_t k = 0; k < n; k++)
                                if (strcmp(disks[k].name, name) == 0)
                                        return usage_error("replicate", "disk name '%s' given twice", name);
                        disks[n++].name = name;
                        break;
                }
                case 'a':
                        o.app = true;
                        break;
                case 'g':
                        if (!name_is_valid(optarg))
                                return usage_error("replicate", "invalid group name '%s'", optarg);
                        o.group = optarg;
                        break;
                case 't':
                        if (point_id_parse(optarg, &o.time) < 0)
                                return usage_error("replicate", "invalid --time '%s': expected UTC ISO 8601 basic form like 20261122T101500Z", optarg);
                        break;
                case 'j': {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (*end || v < 1 || v > 256)
                                return usage_error("replicate", "invalid --threads '%s'", optarg);
                        o.threads = (unsigned)v;
                        break;
                }
                case 'q':
                        quiet = true;
                        break;
                case 'h':
                        fputs(replicate_help, stdout);
                        return 0;
                default:
                        return bad_option("replicate", c, argv);
                }
        }
        if (argc - optind != 2)
                return usage_error("replicate", "expected VAULT and VM arguments");
        if (n == 0)
                return usage_error("replicate", "at least one --disk is required");
        if (!name_is_valid(argv[optind + 1]))
                return usage_error("replicate", "invalid VM name '%s': use 1-64 of A-Z a-z 0-9 . _ -", argv[optind + 1]);
        o.vm = argv[optind + 1];
        o.disks = disks;
        o.n_disks = n;
        if (open_vault(argv[optind], &s) < 0)
                return 1;
        r = sync_replicate(s, &o, &res);
        if (r == -EEXIST)
                log_error("%s: point %s/%s already exists", argv[optind], o.vm, res.id);
        else if (r == -ENOMEM)
                log_error_errno(r, "replicate failed");
        store_free(s);
        if (r < 0)
                return 1;
        if (!quiet) {
                char a[24], b[24];
                printf("%s/%s %s: %zu disk%s, %s, %llu new blocks, %s stored, %.1fs\n", o.vm, res.id,
                       o.app ? "app" : "crash", n, n == 1 ? "" : "s", format_bytes(res.disk_bytes, a, sizeof a),
                       (unsigned long long)res.new_blocks, format_bytes(res.stored_bytes, b, sizeof b), res.seconds);
        }
        return 0;
}

/* ---- points ---- */

static const char points_help[] =
        "Usage: rpfs points VAULT [VM] [--json]\n"
        "\n"
        "List recovery points, oldest first, of one VM or of all.\n"
        "\n"
        "  --json       one JSON array: vm, id, time, type, group, disks (name, size, format)\n"
        "  -h, --help   show this help\n";

static int cmd_points(int argc, char **argv) {
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'J' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        bool json = false;
        struct store *s = NULL;
        struct ret_point **v = NULL;
        const char *vm = NULL;
        size_t n = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", opts, NULL)) >= 0) {
                switch (c) {
                case 'J':
                        json = true;
                        break;
                case 'h':
                        fputs(points_help, stdout);
                        return 0;
                default:
                        return bad_option("points", c, argv);
                }
        }
        if (argc - optind < 1 || argc - optind > 2)
                return usage_error("points", "expected VAULT [VM]");
        if (argc - optind == 2) {
                vm = argv[optind + 1];
                if (!name_is_valid(vm))
                        return usage_error("points", "invalid VM name '%s'", vm);
        }
        if (open_vault(argv[optind], &s) < 0)
                return 1;
        r = ret_points_list(s, vm, &v, &n);
        if (r < 0) {
                log_error("%s: listing points failed: %s", argv[optind], vault_strerror(argv[optind], r));
                store_free(s);
                return 1;
        }
        if (vm && n == 0 && !json) {
                log_error("%s: VM '%s' has no points", argv[optind], vm);
                store_free(s);
                return 1;
        }
        if (json) {
                json_t *arr = json_array();
                char *text;
                for (size_t i = 0; i < n; i++) {
                        json_t *disks = json_array(), *o;
                        char when[21];
                        for (size_t k = 0; k < v[i]->n_disks; k++)
                                json_array_append_new(disks, json_pack("{s:s, s:I, s:s}", "name", v[i]->disks[k].name,
                                                                       "size", (json_int_t)v[i]->disks[k].size,
                                                                       "format", v[i]->disks[k].format));
                        time_format_iso(v[i]->time, when);
                        o = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:o}", "vm", v[i]->vm, "id", v[i]->id, "time", when,
                                      "type", v[i]->app ? "app" : "crash", "group", v[i]->group, "disks", disks);
                        json_array_append_new(arr, o);
                }
                text = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                puts(text ? text : "[]");
                free(text);
                json_decref(arr);
        } else {
                printf("%-20s %-17s %-6s %-12s %s\n", "VM", "POINT", "TYPE", "GROUP", "DISKS");
                for (size_t i = 0; i < n; i++) {
                        printf("%-20s %-17s %-6s %-12s", v[i]->vm, v[i]->id, v[i]->app ? "app" : "crash",
                               v[i]->group ? v[i]->group : "-");
                        for (size_t k = 0; k < v[i]->n_disks; k++) {
                                char sz[24];
                                printf("%s%s:%s", k ? " " : " ", v[i]->disks[k].name,
                                       format_bytes(v[i]->disks[k].size, sz, sizeof sz));
                        }
                        putchar('\n');
                }
        }
        ret_points_free(v, n);
        store_free(s);
        return 0;
}

/* ---- export ---- */

static const char export_help[] =
        "Usage: rpfs export VAULT VM DISK [--point ID|latest|latest-app] -o OUT\n"
        "\n"
        "Write a point's disk as a raw image, verifying every block's checksum.\n"
        "A regular file is written sparse (zero blocks become holes) and appears\n"
        "under its name only when complete. A device or a FIFO (/dev/null, a\n"
        "named pipe) is written in place; '-o -' writes to standard output.\n"
        "\n"
        "  --point P        ID, 'latest' (default) or 'latest-app'\n"
        "  -o, --output OUT file, block device, character device, FIFO, or - for stdout\n"
        "  -h, --help       show this help\n";

static int cmd_export(int argc, char **argv) {
        static const struct option opts[] = {
                { "point", required_argument, NULL, 'p' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *spec = "latest", *out = NULL, *vault, *vm, *disk;
        struct store *s = NULL;
        struct ret_point *p = NULL;
        const struct ret_disk *d;
        struct sync_export_result res;
        char tmp[PATH_MAX] = "";
        struct stat st;
        int c, r, fd = -1, ret = 1;
        bool sparse = false;

        while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'p':
                        spec = optarg;
                        break;
                case 'o':
                        out = optarg;
                        break;
                case 'h':
                        fputs(export_help, stdout);
                        return 0;
                default:
                        return bad_option("export", c, argv);
                }
        }
        if (argc - optind != 3)
                return usage_error("export", "expected VAULT VM DISK");
        if (!out)
                return usage_error("export", "-o OUT is required ('-o -' for standard output)");
        vault = argv[optind];
        vm = argv[optind + 1];
        disk = argv[optind + 2];
        if (!name_is_valid(vm))
                return usage_error("export", "invalid VM name '%s'", vm);
        if (strcmp(spec, "latest") != 0 && strcmp(spec, "latest-app") != 0) {
                time_t t;
                if (point_id_parse(spec, &t) < 0)
                        return usage_error("export", "invalid --point '%s': an ID like 20261122T101500Z, latest or latest-app", spec);
        }
        if (open_vault(vault, &s) < 0)
                return 1;
        r = ret_point_resolve(s, vm, spec, &p);
        if (r == -ENOENT) {
                log_error("%s: VM '%s' has no point %s", vault, vm,
                          strcmp(spec, "latest") == 0 ? "(no points at all)" :
                          strcmp(spec, "latest-app") == 0 ? "that is app-consistent" : spec);
                goto out;
        }
        if (r < 0) {
                log_error("%s: reading point %s of %s failed: %s", vault, spec, vm, vault_strerror(vault, r));
                goto out;
        }
        d = ret_point_disk(p, disk);
        if (!d) {
                log_error("%s: point %s/%s has no disk '%s'", vault, vm, p->id, disk);
                goto out;
        }

        if (strcmp(out, "-") == 0)
                fd = STDOUT_FILENO;
        else if (stat(out, &st) == 0 && !S_ISREG(st.st_mode)) {
                if (S_ISDIR(st.st_mode)) {
                        log_error("%s: is a directory: -o takes a file, a device or '-'", out);
                        goto out;
                }
                /* A device, a FIFO: written in place, never replaced. */
                fd = open(out, O_WRONLY | O_CLOEXEC);
                if (fd < 0) {
                        log_error_errno(-errno, "%s: cannot open", out);
                        goto out;
                }
        } else {
                snprintf(tmp, sizeof tmp, "%s.rpfs-partial", out);
                fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0) {
                        log_error_errno(-errno, "%s: cannot create", tmp);
                        tmp[0] = 0;
                        goto out;
                }
                sparse = true;
        }
        r = sync_export(s, p, d, fd, sparse, !quiet, &res);
        if (r < 0)
                goto out;
        if (fd != STDOUT_FILENO && fsync(fd) < 0 && errno != EINVAL) {
                log_error_errno(-errno, "%s: sync failed", out);
                goto out;
        }
        if (tmp[0]) {
                if (rename(tmp, out) < 0) {
                        log_error_errno(-errno, "%s: cannot rename into place", out);
                        goto out;
                }
                tmp[0] = 0;
        }
        if (!quiet && fd != STDOUT_FILENO) {
                char a[24], b[24];
                fprintf(stderr, "exported %s/%s %s to %s: %s (%s data), verified\n", vm, p->id, disk, out,
                        format_bytes(res.bytes, a, sizeof a), format_bytes(res.data_bytes, b, sizeof b));
        }
        ret = 0;
out:
        if (fd >= 0 && fd != STDOUT_FILENO)
                close(fd);
        if (tmp[0])
                unlink(tmp);
        ret_point_free(p);
        store_free(s);
        return ret;
}

/* ---- failback ---- */

static const char failback_help[] =
        "Usage: rpfs failback VAULT VM --target DISK=PATH [--target ...] [options]\n"
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

static void json_line(json_t *o) {
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (text) {
                puts(text);
                fflush(stdout);
        }
        free(text);
        json_decref(o);
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
        if (o)
                json_line(o);
}

static void default_state_dir(char *buf, size_t len) {
        const char *e = getenv("RPFS_STATE_DIR"), *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
        if (e && *e)
                snprintf(buf, len, "%s", e);
        else if (x && *x)
                snprintf(buf, len, "%s/rpfs/failback", x);
        else if (h && *h)
                snprintf(buf, len, "%s/.local/state/rpfs/failback", h);
        else
                snprintf(buf, len, "/var/lib/rpfs/failback");
}

static int failback_status(const struct sync_failback_opts *o, bool json) {
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
                        if (jo)
                                json_line(jo);
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
        if (jo)
                json_line(jo);
}

/* Open the vault, retrying recoverable errors as the profile says. */
static int open_vault_retry(const char *url, enum sync_retry_profile profile, struct store **ret) {
        for (unsigned attempt = 1;; attempt++) {
                double delay;
                int r = store_open_with(url, &vault_opts, ret);
                if (r >= 0 || !sync_error_recoverable(r) || (delay = sync_retry_delay(profile, attempt)) < 0)
                        return r >= 0 ? r : open_vault(url, ret);
                log_warn("%s: %s: retrying in %.0f s", url, vault_strerror(url, r), delay);
                sleep((unsigned)delay);
        }
}

/* --target DISK=PATH into targets[*n] (disk names kept in names). 0 or an
 * exit status. */
static int target_option(const char *arg, struct sync_fb_target *targets, char *names, size_t *n) {
        const char *eq = strchr(arg, '=');
        char *name = names + 65 * *n;

        if (!eq || eq == arg || (size_t)(eq - arg) >= 65 || !eq[1])
                return usage_error("failback", "invalid --target '%s': expected DISK=PATH", arg);
        memcpy(name, arg, (size_t)(eq - arg));
        name[eq - arg] = 0;
        if (!name_is_valid(name))
                return usage_error("failback", "invalid disk name '%s' in --target", name);
        for (size_t k = 0; k < *n; k++)
                if (strcmp(targets[k].disk, name) == 0)
                        return usage_error("failback", "disk '%s' is given twice", name);
        targets[*n].disk = name;
        targets[(*n)++].path = eq + 1;
        return 0;
}

/* Open the vault (not for --commit), run, report. Returns the exit status. */
static int failback_run(struct sync_failback_opts *o, bool json) {
        struct sync_failback_result res = { 0 };
        _cleanup_free_ struct sync_fb_stats *stats = calloc(o->n_targets, sizeof *stats);
        struct store *s = NULL;
        int r, code;

        if (!stats)
                return 1;
        res.targets = stats;
        if (o->action != SYNC_FB_COMMIT) {
                r = open_vault_retry(o->vault, o->retry, &s);
                if (r < 0) {
                        res.fault = r == -EACCES || r == -ENOKEY ? SYNC_FB_AUTH :
                                    r == -EMEDIUMTYPE || r == -ENOENT || r == -ENOTDIR ? SYNC_FB_NOT_FOUND :
                                    sync_error_recoverable(r) ? SYNC_FB_RETRIES : SYNC_FB_FAILED;
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
        else if (r >= 0 && !quiet)
                failback_print(o, &res);
        return code;
}

static int cmd_failback(int argc, char **argv) {
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
                { "verify", no_argument, NULL, 'V' },
                { "jobs", required_argument, NULL, 'j' },
                { "bwlimit", required_argument, NULL, 'b' },
                { "retry-profile", required_argument, NULL, 'R' },
                { "cache", required_argument, NULL, 'x' },
                { "json", no_argument, NULL, 'J' },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct sync_failback_opts o = { .mode = SYNC_FB_DELTA, .progress = true };
        _cleanup_free_ struct sync_fb_target *targets = calloc((size_t)argc, sizeof *targets);
        _cleanup_free_ char *names = calloc((size_t)argc, 65);
        char vault_abs[PATH_MAX], state_dir[PATH_MAX], cache_dir[PATH_MAX];
        const char *cache = NULL, *action_opt = NULL;
        bool json = false, status = false;
        size_t n = 0;
        int c, r;

        if (!targets || !names)
                return 1;
        while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) >= 0) {
                switch (c) {
                case 't':
                        r = target_option(optarg, targets, names, &n);
                        if (r)
                                return r;
                        break;
                case 'p':
                        o.point = optarg;
                        break;
                case 'm':
                        if (strcmp(optarg, "delta") == 0)
                                o.mode = SYNC_FB_DELTA;
                        else if (strcmp(optarg, "full") == 0)
                                o.mode = SYNC_FB_FULL;
                        else if (strcmp(optarg, "auto") == 0)
                                o.mode = SYNC_FB_AUTO;
                        else
                                return usage_error("failback", "invalid --mode '%s': delta, full or auto", optarg);
                        break;
                case 'c':
                        o.create = true;
                        break;
                case 'P':
                case 'C':
                case 'K':
                case 'S':
                case 'n': {
                        const char *name = c == 'P' ? "--prepare" : c == 'C' ? "--complete" : c == 'K' ? "--commit" :
                                           c == 'S' ? "--status" : "--dry-run";
                        if (action_opt && strcmp(action_opt, name) != 0)
                                return usage_error("failback", "%s and %s exclude each other", action_opt, name);
                        action_opt = name;
                        status = c == 'S';
                        o.action = c == 'P' ? SYNC_FB_PREPARE : c == 'C' ? SYNC_FB_COMPLETE : c == 'K' ? SYNC_FB_COMMIT :
                                   c == 'n' ? SYNC_FB_DRY_RUN : SYNC_FB_SYNC;
                        break;
                }
                case 'r':
                        o.resume = true;
                        break;
                case 'V':
                        o.verify = true;
                        break;
                case 'j': {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (*end || end == optarg || v < 1 || v > 256)
                                return usage_error("failback", "invalid --jobs '%s': 1..256", optarg);
                        o.threads = (unsigned)v;
                        break;
                }
                case 'b': {
                        char tmp[64];
                        size_t l = strlen(optarg);
                        snprintf(tmp, sizeof tmp, "%s", optarg); /* "50M" or "50M/s" */
                        if (l > 2 && l < sizeof tmp && strcmp(tmp + l - 2, "/s") == 0)
                                tmp[l - 2] = 0;
                        if (parse_size(tmp, &o.bwlimit) < 0 || o.bwlimit < 4096)
                                return usage_error("failback", "invalid --bwlimit '%s': bytes per second, at least 4K "
                                                   "(e.g. 50M)", optarg);
                        break;
                }
                case 'R':
                        if (strcmp(optarg, "default") == 0)
                                o.retry = SYNC_RETRY_DEFAULT;
                        else if (strcmp(optarg, "site-recovery") == 0)
                                o.retry = SYNC_RETRY_SITE_RECOVERY;
                        else if (strcmp(optarg, "none") == 0)
                                o.retry = SYNC_RETRY_NONE;
                        else
                                return usage_error("failback", "invalid --retry-profile '%s': default, site-recovery "
                                                   "or none", optarg);
                        break;
                case 'x':
                        cache = optarg;
                        break;
                case 'J':
                        json = true;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case 'h':
                        fputs(failback_help, stdout);
                        return 0;
                default:
                        return bad_option("failback", c, argv);
                }
        }
        if (argc - optind != 2)
                return usage_error("failback", "expected VAULT and VM arguments");
        if (n == 0)
                return usage_error("failback", "at least one --target DISK=PATH is required");
        if (!name_is_valid(argv[optind + 1]))
                return usage_error("failback", "invalid VM name '%s'", argv[optind + 1]);
        if (o.point && strcmp(o.point, "latest") != 0 && strcmp(o.point, "latest-app") != 0) {
                time_t t;
                if (point_id_parse(o.point, &t) < 0)
                        return usage_error("failback", "invalid --point '%s': an ID like 20261122T101500Z, latest "
                                           "or latest-app", o.point);
        }
        if (o.create && (o.action == SYNC_FB_COMPLETE || o.action == SYNC_FB_COMMIT || status))
                return usage_error("failback", "--create goes with a sync, --prepare or --dry-run");
        if (o.resume && o.action != SYNC_FB_SYNC && o.action != SYNC_FB_PREPARE)
                return usage_error("failback", "--resume goes with a sync or --prepare");

        o.vault = argv[optind];
        if (!strstr(o.vault, "://") && realpath(o.vault, vault_abs))
                o.vault = vault_abs;
        o.vm = argv[optind + 1];
        o.targets = targets;
        o.n_targets = n;
        default_state_dir(state_dir, sizeof state_dir);
        o.state_dir = state_dir;
        o.progress = !quiet && !json;
        if (json) {
                o.on_event = failback_event;
                o.userdata = NULL;
        }
        if (status)
                return failback_status(&o, json);

        if (cache)
                o.cache_dir = cache;
        else {
                struct stat st;
                fs_default_cache_dir(cache_dir, sizeof cache_dir);
                if (stat(cache_dir, &st) == 0 && S_ISDIR(st.st_mode))
                        o.cache_dir = cache_dir;
        }
        return failback_run(&o, json);
}

/* ---- mount ---- */

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

static int cmd_mount(int argc, char **argv) {
        static const struct option opts[] = {
                { "foreground", no_argument, NULL, 'f' },
                { "cache", required_argument, NULL, 'C' },
                { "cache-size", required_argument, NULL, 'S' },
                { "seed", required_argument, NULL, 's' },
                { "timeout", required_argument, NULL, 't' },
                { "log", required_argument, NULL, 'l' },
                { "onprem", required_argument, NULL, 'O' },
                { "failback-mode", required_argument, NULL, 'F' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct fs_options o = { .cache_size = 20ULL << 30, .timeout = 30 };
        char vault_abs[PATH_MAX], mnt_abs[PATH_MAX], cache_abs[PATH_MAX], log_abs[PATH_MAX], onprem_abs[PATH_MAX];
        _cleanup_free_ struct fs_seed_spec *seeds = calloc((size_t)argc, sizeof *seeds);
        _cleanup_free_ char *seedbuf = calloc((size_t)argc, 160);
        struct store *s = NULL;
        struct stat st;
        size_t n = 0;
        int c, r;

        if (!seeds || !seedbuf)
                return 1;
        while ((c = getopt_long(argc, argv, ":fo:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'f':
                        o.foreground = true;
                        break;
                case 'C':
                        o.cache_dir = optarg;
                        break;
                case 'S':
                        if (parse_size(optarg, &o.cache_size) < 0)
                                return usage_error("mount", "invalid --cache-size '%s'", optarg);
                        break;
                case 's': {
                        char *b = seedbuf + 160 * n, *slash, *eq = strchr(optarg, '=');
                        if (!eq || (size_t)(eq - optarg) >= 160)
                                return usage_error("mount", "invalid --seed '%s': expected VM/DISK=PATH", optarg);
                        memcpy(b, optarg, (size_t)(eq - optarg));
                        b[eq - optarg] = 0;
                        slash = strchr(b, '/');
                        if (!slash)
                                return usage_error("mount", "invalid --seed '%s': expected VM/DISK=PATH", optarg);
                        *slash = 0;
                        if (!name_is_valid(b) || !name_is_valid(slash + 1) || !eq[1])
                                return usage_error("mount", "invalid --seed '%s': expected VM/DISK=PATH", optarg);
                        seeds[n].vm = b;
                        seeds[n].disk = slash + 1;
                        seeds[n++].path = eq + 1;
                        break;
                }
                case 't': {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (*end || end == optarg || v < 0 || v > 86400)
                                return usage_error("mount", "invalid --timeout '%s': seconds, 0..86400", optarg);
                        o.timeout = (unsigned)v;
                        break;
                }
                case 'l':
                        o.log_file = optarg;
                        break;
                case 'O':
                        o.onprem_dir = optarg;
                        break;
                case 'F':
                        if (strcmp(optarg, "full") == 0)
                                o.failback_full = true;
                        else if (strcmp(optarg, "delta") == 0)
                                o.failback_full = false;
                        else
                                return usage_error("mount", "invalid --failback-mode '%s': delta or full", optarg);
                        break;
                case 'o':
                        if (strcmp(optarg, "allow_other") == 0)
                                o.allow_other = true;
                        else
                                return usage_error("mount", "unsupported -o '%s' (supported: allow_other)", optarg);
                        break;
                case 'h':
                        fputs(mount_help, stdout);
                        return 0;
                default:
                        return bad_option("mount", c, argv);
                }
        }
        if (argc - optind != 2)
                return usage_error("mount", "expected VAULT and MOUNTPOINT");
        o.vault = argv[optind];
        o.mountpoint = argv[optind + 1];
        o.seeds = seeds;
        o.n_seeds = n;
        if (stat(o.mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
                log_error("%s: mount point is not a directory", o.mountpoint);
                return 1;
        }
        for (size_t i = 0; i < n; i++)
                if (access(seeds[i].path, R_OK) < 0) {
                        log_error_errno(-errno, "seed %s/%s: %s", seeds[i].vm, seeds[i].disk, seeds[i].path);
                        return 1;
                }
        if (open_vault(o.vault, &s) < 0)
                return 1;
        store_free(s);
        /* The daemon changes to "/": every path it keeps must be absolute. */
        if (!strstr(o.vault, "://")) {
                if (!realpath(o.vault, vault_abs))
                        return log_error_errno(-errno, "%s", o.vault), 1;
                o.vault = vault_abs;
        }
        if (!realpath(o.mountpoint, mnt_abs))
                return log_error_errno(-errno, "%s", o.mountpoint), 1;
        o.mountpoint = mnt_abs;
        if (o.onprem_dir) {
                struct stat ost;
                if (!realpath(o.onprem_dir, onprem_abs) || stat(onprem_abs, &ost) < 0)
                        return log_error_errno(-errno, "--onprem %s", o.onprem_dir), 1;
                if (!S_ISDIR(ost.st_mode))
                        return log_error("--onprem %s: not a directory", o.onprem_dir), 1;
                o.onprem_dir = onprem_abs;
        }
        if (o.cache_dir) {
                if (mkdir_p(o.cache_dir, 0700) < 0 || !realpath(o.cache_dir, cache_abs))
                        return log_error_errno(-errno, "cache %s", o.cache_dir), 1;
                o.cache_dir = cache_abs;
        }
        if (o.log_file && o.log_file[0] != '/') {
                if (!getcwd(log_abs, sizeof log_abs - strlen(o.log_file) - 2))
                        return log_error_errno(-errno, "--log %s", o.log_file), 1;
                strcat(log_abs, "/");
                strcat(log_abs, o.log_file);
                o.log_file = log_abs;
        }
        /* Every request of the mount answers within its timeout: so does
         * every call to the vault, whatever the remote does. */
        o.store = vault_opts;
        o.store.retry_seconds = o.timeout ? o.timeout : 1;
        o.store.bounded = true;
        r = fs_mount(&o);
        return r < 0 ? 1 : 0;
}

/* ---- stats ---- */

static const char stats_help[] =
        "Usage: rpfs stats MOUNTPOINT [--json]\n"
        "\n"
        "Print what a mount has served: bytes from zero blocks, the cache, seeds and\n"
        "the vault, blocks and bytes fetched, errors.\n"
        "\n"
        "  --json       the raw JSON object\n"
        "  -h, --help   show this help\n";

static int cmd_stats(int argc, char **argv) {
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'J' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_free_ char *text = NULL;
        char path[4200];
        bool json = false;
        json_t *o;
        json_error_t err;
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", opts, NULL)) >= 0) {
                switch (c) {
                case 'J':
                        json = true;
                        break;
                case 'h':
                        fputs(stats_help, stdout);
                        return 0;
                default:
                        return bad_option("stats", c, argv);
                }
        }
        if (argc - optind != 1)
                return usage_error("stats", "expected MOUNTPOINT");
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
        {
                const char *key;
                json_t *v;
                json_object_foreach(o, key, v) {
                        char b[24];
                        if (strncmp(key, "bytes_", 6) == 0)
                                printf("%-18s %s\n", key, format_bytes((uint64_t)json_integer_value(v), b, sizeof b));
                        else
                                printf("%-18s %lld\n", key, (long long)json_integer_value(v));
                }
        }
        json_decref(o);
        return 0;
}

/* ---- main ---- */

static const char main_help[] =
        "Usage: rpfs [--verbose] [--endpoint URL] COMMAND [ARGS...]\n"
        "\n"
        "rpfs keeps VM disks as immutable recovery points in a vault and brings them back.\n"
        "\n"
        "Commands:\n"
        "  init VAULT [--block-size 64K] [--compression zstd:1]   create a vault\n"
        "  replicate VAULT VM --disk [NAME=]PATH ...               store a new recovery point\n"
        "  points VAULT [VM] [--json]                              list recovery points\n"
        "  export VAULT VM DISK [--point P] -o OUT                 write a point's disk as a raw image\n"
        "  failback VAULT VM --target DISK=PATH ...                bring on-prem disks to a point (delta, full,\n"
        "                                                          two-phase, resumable)\n"
        "  mount VAULT MOUNTPOINT [--cache DIR] [--seed VM/DISK=PATH]  show points as image files (FUSE)\n"
        "  stats MOUNTPOINT [--json]                               what a mount has served\n"
        "\n"
        "VAULT is a local directory or an Azure Blob container, azure://ACCOUNT/CONTAINER[/PREFIX].\n"
        "'rpfs COMMAND --help' describes each command.\n"
        "  -v, --verbose     debug messages     -V, --version   print the version\n"
        "  --endpoint URL    Azure Blob endpoint (default https://ACCOUNT.blob.core.windows.net,\n"
        "                    or BlobEndpoint= of AZURE_STORAGE_CONNECTION_STRING); for Azurite:\n"
        "                    http://127.0.0.1:10000/devstoreaccount1\n"
        "Azure credentials come from the environment only: AZURE_STORAGE_CONNECTION_STRING,\n"
        "AZURE_STORAGE_KEY (with the account from the URL) or AZURE_STORAGE_SAS_TOKEN.\n";

int main(int argc, char **argv) {
        static const struct {
                const char *name;
                int (*fn)(int, char **);
        } cmds[] = {
                { "init", cmd_init },
                { "replicate", cmd_replicate },
                { "points", cmd_points },
                { "export", cmd_export },
                { "failback", cmd_failback },
                { "mount", cmd_mount },
                { "stats", cmd_stats },
        };
        int i = 1;

        log_set_prefix("rpfs");
        opterr = 0;
        for (; i < argc && argv[i][0] == '-'; i++) {
                if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0)
                        log_set_level(LOG_DEBUG);
                else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0)
                        quiet = true;
                else if (strcmp(argv[i], "--endpoint") == 0 || strncmp(argv[i], "--endpoint=", 11) == 0) {
                        const char *ep = argv[i][10] == '=' ? argv[i] + 11 : i + 1 < argc ? argv[++i] : NULL;
                        if (!ep || !*ep) {
                                log_error("option '--endpoint' requires a URL");
                                fputs(main_help, stderr);
                                return EXIT_USAGE;
                        }
                        if (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) {
                                log_error("invalid --endpoint '%s': expected an http:// or https:// URL", ep);
                                return EXIT_USAGE;
                        }
                        vault_opts.endpoint = ep;
                } else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
                        printf("rpfs %s\n", RPFS_VERSION);
                        return 0;
                } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        fputs(main_help, stdout);
                        return 0;
                } else {
                        log_error("unknown option '%s'", argv[i]);
                        fputs(main_help, stderr);
                        return EXIT_USAGE;
                }
        }
        if (i >= argc) {
                log_error("missing command");
                fputs(main_help, stderr);
                return EXIT_USAGE;
        }
        for (size_t k = 0; k < ELEMENTSOF(cmds); k++)
                if (strcmp(argv[i], cmds[k].name) == 0) {
                        optind = 1;
                        return cmds[k].fn(argc - i, argv + i);
                }
        log_error("unknown command '%s'", argv[i]);
        fputs(main_help, stderr);
        return EXIT_USAGE;
}
