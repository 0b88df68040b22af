/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs export: write a point's disk as a raw image.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "retention.h"
#include "sync.h"

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

/* What the command line asks for. */
struct export_args {
        const char *vault, *vm, *disk;
        const char *spec; /* --point */
        const char *out;  /* -o */
};

/* Where the image goes: fd, and for a regular file the temporary file
 * that becomes out once complete. */
struct export_output {
        int fd;
        bool sparse;
        bool temporary;   /* t is open */
        struct tmpfile t;
};

/* Options and arguments into *a. CLI_PARSED, or the exit status to end
 * with. */
static int export_parse(struct cli *cli, int argc, char **argv, struct export_args *a) {
        static const struct option opts[] = {
                { "point", required_argument, NULL, 'p' },
                { "output", required_argument, NULL, 'o' },
                {}
        };
        int c;

        *a = (struct export_args){ .spec = "latest" };
        while ((c = cli_getopt(cli, argc, argv, "o:", opts, export_help)) >= 0) {
                switch (c) {
                case 'p':
                        a->spec = optarg;
                        break;
                case 'o':
                        a->out = optarg;
                        break;
                default:
                        return cli->exit;
                }
        }
        if (argc - optind != 3)
                return cli_usage_error("export", "expected VAULT VM DISK");
        if (!a->out)
                return cli_usage_error("export", "-o OUT is required ('-o -' for standard output)");
        a->vault = argv[optind];
        a->vm = argv[optind + 1];
        a->disk = argv[optind + 2];
        if (!name_is_valid(a->vm))
                return cli_usage_error("export", "invalid VM name '%s'", a->vm);
        if (strcmp(a->spec, "latest") != 0 && strcmp(a->spec, "latest-app") != 0) {
                time_t t;
                if (point_id_parse(a->spec, &t) < 0)
                        return cli_usage_error("export", "invalid --point '%s': an ID like 20261122T101500Z, latest or latest-app", a->spec);
        }
        return CLI_PARSED;
}

/* Open out: stdout for "-", a device or FIFO in place, else a temporary
 * file beside it. 0 or -errno, logged. */
static int export_open(const char *out, struct export_output *w) {
        struct stat st;
        int r;

        *w = (struct export_output){ .fd = -1 };
        if (strcmp(out, "-") == 0) {
                w->fd = STDOUT_FILENO;
                return 0;
        }
        if (stat(out, &st) == 0 && !S_ISREG(st.st_mode)) {
                if (S_ISDIR(st.st_mode)) {
                        log_error("%s: is a directory: -o takes a file, a device or '-'", out);
                        return -EISDIR;
                }
                /* A device, a FIFO: written in place, never replaced. */
                w->fd = open(out, O_WRONLY | O_CLOEXEC);
                if (w->fd < 0)
                        return log_error_errno(-errno, "%s: cannot open", out);
                return 0;
        }
        r = tmpfile_open(&w->t, out, 0644);
        if (r < 0)
                return log_error_errno(r, "%s: cannot create a temporary file beside it", out);
        w->fd = w->t.fd;
        w->temporary = w->sparse = true;
        return 0;
}

/* Write disk d of point p to a->out: open, export, sync, rename into
 * place. On failure nothing is left under a temporary name. 0 or -errno,
 * logged. */
static int export_write(const struct cli *cli, struct store *s, const struct export_args *a,
                        const struct ret_point *p, const struct ret_disk *d) {
        struct sync_export_result res;
        struct export_output w;
        int r = export_open(a->out, &w);

        if (r < 0)
                return r;
        r = sync_export(s, p, d, w.fd, w.sparse, !cli->quiet, &res);
        if (w.temporary) {
                /* Durable, then named, then the directory synced: after a
                 * crash out is the old file or the whole export. */
                if (r >= 0) {
                        r = tmpfile_commit(&w.t, 0);
                        if (r < 0)
                                log_error_errno(r, "%s: cannot put the export in place", a->out);
                } else
                        tmpfile_abort(&w.t);
                w.temporary = false;
                w.fd = -1;
        } else if (r >= 0 && w.fd != STDOUT_FILENO && fsync(w.fd) < 0 && errno != EINVAL)
                r = log_error_errno(-errno, "%s: sync failed", a->out);
        if (r >= 0 && !cli->quiet && w.fd != STDOUT_FILENO) {
                char x[24], y[24];
                fprintf(stderr, "exported %s/%s %s to %s: %s (%s data), verified\n", a->vm, p->id, a->disk,
                        a->out, format_bytes(res.bytes, x, sizeof x), format_bytes(res.data_bytes, y, sizeof y));
        }
        if (w.fd >= 0 && w.fd != STDOUT_FILENO)
                close(w.fd);
        return r;
}

int cmd_export(struct cli *cli, int argc, char **argv) {
        struct export_args a;
        struct store *s = NULL;
        struct ret_point *p = NULL;
        const struct ret_disk *d;
        int r = export_parse(cli, argc, argv, &a), ret = 1;

        if (r != CLI_PARSED)
                return r;
        if (cli_open_vault(cli, a.vault, &s) < 0)
                return 1;
        r = ret_point_resolve(s, a.vm, a.spec, &p);
        if (r == -ENOENT)
                log_error("%s: VM '%s' has no point %s", a.vault, a.vm,
                          strcmp(a.spec, "latest") == 0 ? "(no points at all)" :
                          strcmp(a.spec, "latest-app") == 0 ? "that is app-consistent" : a.spec);
        else if (r < 0)
                log_error("%s: reading point %s of %s failed: %s", a.vault, a.spec, a.vm,
                          cli_vault_strerror(a.vault, r));
        else if (!(d = ret_point_disk(p, a.disk)))
                log_error("%s: point %s/%s has no disk '%s'", a.vault, a.vm, p->id, a.disk);
        else if (export_write(cli, s, &a, p, d) >= 0)
                ret = 0;
        ret_point_free(p);
        store_free(s);
        return ret;
}
