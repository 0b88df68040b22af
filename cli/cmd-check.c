/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs check: is every point whole? The vault's structure first (index
 * segment checksums, every pack the index names there with a valid
 * header, footer and table: store_verify_new), then per point: manifest
 * tree nodes (format 2: every node is read, checksum verified, on the way
 * to its chunks; a missing or damaged node reports its chunks' blocks) and
 * chunks parse, every block a manifest names is in the index and not in a
 * damaged object, and with --read-data every block (or a random share)
 * reads back and matches its checksum. This file is the CLI's glue: the
 * checks live in store/verify.c and the manifest reader in retention/.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "cli.h"
#include "retention.h"

static const char check_help[] =
        "Usage: rpfs check VAULT [VM ...] [--read-data[=PERCENT]] [--json]\n"
        "\n"
        "Check the vault's structure: every index segment's checksum holds, and every\n"
        "pack the index names exists with a valid header, footer and table checksum.\n"
        "Then the points of the VMs given, or of every VM: each disk's manifest tree\n"
        "nodes and chunks exist and parse, and every block a manifest names is in the\n"
        "vault's index, in a pack that is whole. Damaged objects are named, and the\n"
        "damage they do by point, disk and block range. Exit status: 0 clean, 1 damage\n"
        "found (or the vault unreachable), 2 usage error.\n"
        "\n"
        "  --read-data[=PERCENT]  also read, decompress and verify every block (or a\n"
        "                         random PERCENT of them, a different share each run)\n"
        "  --json                 one JSON object: points checked, damaged objects\n"
        "                         (\"objects\") and damaged block ranges (\"damage\")\n"
        "  -h, --help             show this help\n";

struct check {
        struct store *s;
        struct store_verify *verify;
        json_t *objects;  /* damaged segments and packs */
        struct store_codec *codec;
        void *buf;
        double percent;   /* < 0: no data reads */
        bool json, quiet;
        json_t *damage;
        uint64_t blocks, read;
        /* the open range of bad blocks */
        const struct ret_point *p;
        const char *disk;
        uint64_t a, b;
        const char *what;
};

static void flush_range(struct check *c) {
        if (!c->what)
                return;
        /* Every range goes to the list; cmd_check() prints it. */
        json_array_append_new(c->damage, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "vm", c->p->vm,
                                                           "point", c->p->id, "disk", c->disk, "first_block",
                                                           (json_int_t)c->a, "last_block", (json_int_t)c->b,
                                                           "problem", c->what));
        c->what = NULL;
}

/* Record block i as bad for reason what (static string). */
static void bad(struct check *c, uint64_t first, uint64_t last, const char *what) {
        if (c->what && strcmp(c->what, what) == 0 && c->b + 1 == first) {
                c->b = last;
                return;
        }
        flush_range(c);
        c->a = first;
        c->b = last;
        c->what = what;
}

static bool sample(const struct check *c) {
        uint32_t v;

        if (c->percent < 0)
                return false;
        if (c->percent >= 100)
                return true;
        if (getrandom(&v, sizeof v, 0) != sizeof v)
                return true;
        return (double)v / 4294967296.0 * 100.0 < c->percent;
}

static void check_block(struct check *c, uint64_t i, const struct hash128 *h) {
        const char *what;
        size_t len;
        int r;

        if (hash_is_zero(h))
                return;
        c->blocks++;
        if (store_has(c->s, h) < 0) {
                bad(c, i, i, "block not in the index");
                return;
        }
        what = store_verify_block(c->verify, h);
        if (what) {
                bad(c, i, i, what);
                return;
        }
        if (!sample(c))
                return;
        c->read++;
        r = store_read_blob(c->s, c->codec, h, c->buf, store_block_size(c->s), &len);
        if (r == -ENOENT)
                bad(c, i, i, "block's pack missing");
        else if (r == -EBADMSG || (r >= 0 && len != store_block_size(c->s)))
                bad(c, i, i, "block corrupt (checksum mismatch)");
        else if (r < 0)
                bad(c, i, i, "block unreadable");
}

static int check_disk(struct check *c, const struct ret_point *p, const struct ret_disk *d) {
        struct ret_manifest *m;
        int r;

        c->p = p;
        c->disk = d->name;
        r = ret_manifest_open(c->s, d, &m);
        if (r < 0)
                return r;
        for (uint64_t i = 0; i < d->n_blocks; i++) {
                struct hash128 h;

                r = ret_manifest_get(m, i, &h);
                if (r < 0) {
                        uint64_t end = MIN(d->n_blocks, (i / RET_CHUNK_ENTRIES + 1) * RET_CHUNK_ENTRIES);
                        bad(c, i, end - 1, r == -ENOENT ? "manifest chunk missing" : "manifest chunk damaged");
                        i = end - 1;
                        continue;
                }
                check_block(c, i, &h);
        }
        flush_range(c);
        ret_manifest_free(m);
        return 0;
}

static void object_damaged(void *userdata, const char *object, const char *problem) {
        struct check *c = userdata;

        json_array_append_new(c->objects, json_pack("{s:s, s:s}", "object", object, "problem", problem));
        if (!c->json)
                printf("damaged: %s: %s\n", object, problem);
}

static bool selected(const char *vm, char **vms, int n) {
        for (int i = 0; i < n; i++)
                if (strcmp(vms[i], vm) == 0)
                        return true;
        return n == 0;
}

static int check_parse(struct cli *cli, int argc, char **argv, struct check *c) {
        static const struct option opts[] = {
                { "read-data", optional_argument, NULL, 'r' },
                { "json", no_argument, NULL, 'J' },
                {}
        };
        long v;
        int o;

        while ((o = cli_getopt(cli, argc, argv, "", opts, check_help)) >= 0) {
                switch (o) {
                case 'r':
                        c->percent = 100;
                        if (optarg) {
                                const char *pc = optarg;
                                char num[16];
                                size_t n = strcspn(pc, "%");
                                if (n == 0 || n >= sizeof num || (pc[n] && strcmp(pc + n, "%") != 0))
                                        return cli_usage_error("check", "invalid --read-data '%s': a percentage 1-100", optarg);
                                memcpy(num, pc, n);
                                num[n] = 0;
                                if (cli_parse_int(num, 1, 100, &v) < 0)
                                        return cli_usage_error("check", "invalid --read-data '%s': a percentage 1-100", optarg);
                                c->percent = (double)v;
                        }
                        break;
                case 'J':
                        c->json = true;
                        break;
                default:
                        return cli->exit;
                }
        }
        if (argc - optind < 1)
                return cli_usage_error("check", "expected VAULT [VM ...]");
        for (int i = optind + 1; i < argc; i++)
                if (!name_is_valid(argv[i]))
                        return cli_usage_error("check", "invalid VM name '%s'", argv[i]);
        return CLI_PARSED;
}

int cmd_check(struct cli *cli, int argc, char **argv) {
        struct check c = { .percent = -1 };
        struct ret_point **v = NULL;
        size_t n = 0, checked = 0, damaged = 0;
        uint64_t segs = 0, packs = 0, bad_objects = 0;
        const char *url;
        int r;

        r = check_parse(cli, argc, argv, &c);
        if (r != CLI_PARSED)
                return r;
        url = argv[optind];
        c.quiet = cli->quiet;
        if (cli_open_vault(cli, url, &c.s) < 0)
                return 1;
        c.objects = json_array();
        r = c.objects ? store_verify_new(c.s, object_damaged, &c, &c.verify) : -ENOMEM;
        if (r >= 0)
                r = ret_points_list(c.s, argc - optind == 2 ? argv[optind + 1] : NULL, &v, &n);
        if (r >= 0)
                r = store_codec_new(c.s, &c.codec);
        c.buf = r >= 0 ? malloc(store_block_size(c.s)) : NULL;
        c.damage = json_array();
        if (r >= 0 && (!c.buf || !c.damage))
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                size_t before = json_array_size(c.damage);
                if (!selected(v[i]->vm, argv + optind + 1, argc - optind - 1))
                        continue;
                checked++;
                for (size_t k = 0; r >= 0 && k < v[i]->n_disks; k++)
                        r = check_disk(&c, v[i], &v[i]->disks[k]);
                if (json_array_size(c.damage) > before) {
                        damaged++;
                        if (!c.json)
                                for (size_t k = before; k < json_array_size(c.damage); k++) {
                                        json_t *d = json_array_get(c.damage, k);
                                        printf("damaged: %s/%s %s blocks %lld-%lld: %s\n",
                                               json_string_value(json_object_get(d, "vm")),
                                               json_string_value(json_object_get(d, "point")),
                                               json_string_value(json_object_get(d, "disk")),
                                               (long long)json_integer_value(json_object_get(d, "first_block")),
                                               (long long)json_integer_value(json_object_get(d, "last_block")),
                                               json_string_value(json_object_get(d, "problem")));
                                }
                }
        }
        if (c.verify)
                store_verify_counts(c.verify, &segs, &packs, &bad_objects);
        if (r < 0)
                log_error("%s: check failed: %s", url, cli_vault_strerror(url, r));
        else if (c.json)
                cli_json_print(json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:O, s:O}", "points", (json_int_t)checked,
                                         "damaged_points", (json_int_t)damaged, "blocks", (json_int_t)c.blocks,
                                         "blocks_read", (json_int_t)c.read, "segments", (json_int_t)segs,
                                         "packs", (json_int_t)packs, "objects", c.objects, "damage", c.damage),
                               JSON_INDENT(2));
        else if (!c.quiet || damaged || bad_objects)
                printf("%zu point(s) checked, %llu block(s), %llu read, %llu index segment(s), %llu pack(s): %s\n",
                       checked, (unsigned long long)c.blocks, (unsigned long long)c.read, (unsigned long long)segs,
                       (unsigned long long)packs, damaged || bad_objects ? "damage found" : "clean");
        /* For rpfs status: damage found, or a whole vault found clean. */
        if (r >= 0 && (damaged || bad_objects || argc - optind == 1)) {
                struct ret_note note = { .time = time(NULL), .damaged = damaged > 0 || bad_objects > 0 };
                int len = snprintf(note.summary, sizeof note.summary, "%zu point(s) checked, %zu damaged", checked,
                                   damaged);
                if (bad_objects && len > 0 && (size_t)len < sizeof note.summary)
                        snprintf(note.summary + len, sizeof note.summary - len, ", %llu damaged object(s)",
                                 (unsigned long long)bad_objects);
                if (ret_note_set(c.s, "check", &note) < 0)
                        log_warn("%s: recording the check's result failed", url);
        }
        json_decref(c.damage);
        json_decref(c.objects);
        store_verify_free(c.verify);
        free(c.buf);
        store_codec_free(c.codec);
        ret_points_free(v, n);
        store_free(c.s);
        return r < 0 || damaged || bad_objects ? 1 : 0;
}
