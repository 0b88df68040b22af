/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs diff: where a VM's disks differ between two points, from their
 * manifests (no block is read; equal manifest chunks are skipped whole).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "retention.h"

static const char diff_help[] =
        "Usage: rpfs diff VAULT VM FROM TO [--disk D] [--json]\n"
        "\n"
        "The extents where the disks of point TO differ from point FROM (IDs,\n"
        "'latest' or 'latest-app'), at block granularity, from the manifests:\n"
        "no block is read, and manifest chunks that are equal (512 blocks each)\n"
        "are skipped whole. What an incremental backup reads of TO. A disk that\n"
        "FROM lacks differs where TO has data; bytes past a disk's end count as\n"
        "zeros, and extents end at TO's size.\n"
        "\n"
        "Output: one line per extent, 'DISK OFFSET LENGTH' (bytes).\n"
        "  --disk D     only disk D\n"
        "  --json       {vm, from, to, block_size, disks: [{name, size, changed_bytes,\n"
        "               extents: [{start, length}]}]}\n"
        "  -h, --help   show this help\n";

struct diff_out {
        const char *disk;
        bool json;
        json_t *extents;     /* --json */
        uint64_t changed, n; /* bytes, extents */
};

static int diff_extent(void *userdata, uint64_t start, uint64_t length) {
        struct diff_out *o = userdata;

        o->changed += length;
        o->n++;
        if (o->json)
                return json_array_append_new(o->extents, json_pack("{s:I, s:I}", "start", (json_int_t)start, "length",
                                                                   (json_int_t)length)) < 0 ? -ENOMEM : 0;
        if (printf("%s %" PRIu64 " %" PRIu64 "\n", o->disk, start, length) < 0)
                return -EIO;
        return 0;
}

static bool spec_is_valid(const char *spec) {
        time_t t;
        return strcmp(spec, "latest") == 0 || strcmp(spec, "latest-app") == 0 || point_id_parse(spec, &t) == 0;
}

/* Resolve spec of vm, logging why not. */
static int diff_resolve(struct store *s, const char *vault, const char *vm, const char *spec, struct ret_point **ret) {
        int r = ret_point_resolve(s, vm, spec, ret);
        if (r == -ENOENT)
                log_error("%s: VM '%s' has no point %s", vault, vm, spec);
        else if (r < 0)
                log_error("%s: reading point %s of %s failed: %s", vault, spec, vm, cli_vault_strerror(vault, r));
        return r;
}

/* Diff every disk of b (or only disk) against a; output as asked. */
static int diff_points(struct store *s, const char *vault, const struct ret_point *a, const struct ret_point *b,
                       const char *disk, bool json, bool quiet) {
        json_t *disks = json_array();
        int r = 0;

        for (size_t i = 0; i < b->n_disks && r >= 0; i++) {
                const struct ret_disk *d = &b->disks[i];
                struct diff_out o = { .disk = d->name, .json = json, .extents = json ? json_array() : NULL };
                char x[24];

                if (disk && strcmp(disk, d->name) != 0)
                        continue;
                r = ret_disk_diff(s, ret_point_disk(a, d->name), d, b->block_size, diff_extent, &o);
                if (r < 0) {
                        log_error("%s: comparing %s of %s/%s with %s failed: %s", vault, d->name, b->vm, b->id,
                                  a->id, cli_vault_strerror(vault, r));
                        json_decref(o.extents);
                        break;
                }
                if (json)
                        json_array_append_new(disks, json_pack("{s:s, s:I, s:I, s:o}", "name", d->name, "size",
                                                               (json_int_t)d->size, "changed_bytes",
                                                               (json_int_t)o.changed, "extents", o.extents));
                if (!quiet)
                        fprintf(stderr, "%s: %" PRIu64 " extents, %s changed from %s to %s\n", d->name, o.n,
                                format_bytes(o.changed, x, sizeof x), a->id, b->id);
        }
        if (r >= 0 && json &&
            cli_json_print(json_pack("{s:s, s:s, s:s, s:i, s:O}", "vm", b->vm, "from", a->id, "to", b->id,
                                     "block_size", (int)b->block_size, "disks", disks), JSON_INDENT(2)) < 0)
                r = -ENOMEM;
        json_decref(disks);
        if (r >= 0 && fflush(stdout) != 0)
                r = log_error_errno(-EIO, "writing the extents failed");
        return r;
}

int cmd_diff(struct cli *cli, int argc, char **argv) {
        static const struct option opts[] = {
                { "disk", required_argument, NULL, 'd' },
                { "json", no_argument, NULL, 'J' },
                {}
        };
        const char *disk = NULL, *vault, *vm;
        struct ret_point *a = NULL, *b = NULL;
        struct store *s = NULL;
        bool json = false;
        int c, ret = 1;

        while ((c = cli_getopt(cli, argc, argv, "", opts, diff_help)) >= 0) {
                switch (c) {
                case 'd':
                        disk = optarg;
                        break;
                case 'J':
                        json = true;
                        break;
                default:
                        return cli->exit;
                }
        }
        if (argc - optind != 4)
                return cli_usage_error("diff", "expected VAULT VM FROM TO");
        vault = argv[optind];
        vm = argv[optind + 1];
        if (!name_is_valid(vm))
                return cli_usage_error("diff", "invalid VM name '%s'", vm);
        for (int k = 2; k < 4; k++)
                if (!spec_is_valid(argv[optind + k]))
                        return cli_usage_error("diff", "invalid point '%s': an ID like 20261122T101500Z, latest or latest-app",
                                               argv[optind + k]);
        if (cli_open_vault(cli, vault, &s) < 0)
                return 1;
        if (diff_resolve(s, vault, vm, argv[optind + 2], &a) < 0 || diff_resolve(s, vault, vm, argv[optind + 3], &b) < 0)
                goto out;
        if (a->block_size != b->block_size) {
                log_error("%s: points %s and %s have different block sizes", vault, a->id, b->id);
                goto out;
        }
        if (disk && !ret_point_disk(b, disk)) {
                log_error("%s: point %s/%s has no disk '%s'", vault, vm, b->id, disk);
                goto out;
        }
        if (diff_points(s, vault, a, b, disk, json, cli->quiet || json) >= 0)
                ret = 0;
out:
        ret_point_free(a);
        ret_point_free(b);
        store_free(s);
        return ret;
}
