/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "retention.h"
#include "retention_i.h"

/* Point objects: format 1 lists each disk's chunk checksums ("chunks");
 * format 2 names the root of its chunk tree ("tree", tree.c) instead. */
#define POINT_FORMAT 2

void ret_point_free(struct ret_point *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n_disks; i++)
                free(p->disks[i].chunks);
        free(p->disks);
        free(p->group);
        free(p->onprem_from);
        free(p);
}

void ret_points_free(struct ret_point **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                ret_point_free(v[i]);
        free(v);
}

const struct ret_disk *ret_point_disk(const struct ret_point *p, const char *name) {
        for (size_t i = 0; i < p->n_disks; i++)
                if (strcmp(p->disks[i].name, name) == 0)
                        return &p->disks[i];
        return NULL;
}

static json_t *disk_to_json(const struct ret_disk *d, bool v1) {
        char hex[2 * STORE_HASH_SIZE + 1];
        json_t *chunks;

        if (!v1) {
                hash_to_hex(&d->tree, hex);
                return json_pack("{s:s, s:I, s:s, s:I, s:I, s:i, s:s?, s:i, s:i}", "name", d->name, "size",
                                 (json_int_t)d->size, "format", d->format, "blocks", (json_int_t)d->n_blocks,
                                 "data_blocks", (json_int_t)d->data_blocks, "chunk_entries", RET_CHUNK_ENTRIES,
                                 "tree", d->tree_levels ? hex : NULL, "tree_levels", (int)d->tree_levels,
                                 "tree_fanout", (int)d->tree_fanout);
        }
        chunks = json_array();
        if (!chunks)
                return NULL;
        for (size_t i = 0; i < d->n_chunks; i++) {
                hash_to_hex(&d->chunks[i], hex);
                if (json_array_append_new(chunks, json_string(hex)) < 0) {
                        json_decref(chunks);
                        return NULL;
                }
        }
        return json_pack("{s:s, s:I, s:s, s:I, s:I, s:i, s:o}", "name", d->name, "size", (json_int_t)d->size,
                         "format", d->format, "blocks", (json_int_t)d->n_blocks, "data_blocks",
                         (json_int_t)d->data_blocks, "chunk_entries", RET_CHUNK_ENTRIES, "chunks", chunks);
}

/* A point whose disks all have trees (or no chunks) is written as format
 * 2; one built without a tree (never by ret_manifest_writer) as format 1. */
static bool point_needs_v1(const struct ret_point *p) {
        for (size_t i = 0; i < p->n_disks; i++)
                if (p->disks[i].n_chunks > 0 && p->disks[i].tree_levels == 0)
                        return true;
        return false;
}

int ret_point_commit(struct store *s, const struct ret_point *p) {
        char name[256], when[21], created[21];
        json_t *o, *disks;

        bool v1 = point_needs_v1(p);
        int r;

        if (!name_is_valid(p->vm))
                return -EINVAL;
        /* The first format-2 point raises a version-1 vault to version 2,
         * before the point exists: a version-1 reader then refuses the
         * vault as newer rather than skipping points it cannot read. */
        if (!v1 && store_format_version(s) < 2 && (r = store_raise_version(s, 2)) < 0)
                return r;
        time_format_iso(p->time, when);
        time_format_iso(time(NULL), created);
        disks = json_array();
        if (!disks)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_disks; i++) {
                json_t *d = disk_to_json(&p->disks[i], v1);
                if (!d || json_array_append_new(disks, d) < 0) {
                        json_decref(disks);
                        return -ENOMEM;
                }
        }
        o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s?, s:I, s:s, s:o}", "format", v1 ? 1 : POINT_FORMAT, "vm", p->vm,
                      "id", p->id, "time", when, "type", p->app ? "app" : "crash", "group", p->group,
                      "block_size", (json_int_t)p->block_size, "created", created, "disks", disks);
        /* Optional lineage (reprotect): only written when set. */
        if (o && p->onprem_from &&
            json_object_set_new(o, "lineage", json_pack("{s:s, s:s}", "runs", "onprem", "from", p->onprem_from)) < 0) {
                json_decref(o);
                return -ENOMEM;
        }
        snprintf(name, sizeof name, "points/%s/%s.json", p->vm, p->id);
        return ret_put_json(s, name, o, true);
}

int ret_put_json(struct store *s, const char *name, json_t *o, bool exclusive) {
        _cleanup_free_ char *text = NULL;

        if (!o)
                return -ENOMEM;
        text = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        return store_put_object(s, name, text, strlen(text), exclusive);
}

/* A format-2 disk's tree fields into d (chunks stay NULL). */
static int tree_from_json(json_t *o, struct ret_disk *d) {
        json_t *tree = NULL;
        json_int_t levels, fanout;

        if (json_unpack(o, "{s:o, s:I, s:I}", "tree", &tree, "tree_levels", &levels, "tree_fanout", &fanout) < 0 ||
            fanout < 2 || fanout > RET_TREE_FANOUT_MAX || levels < 0 ||
            (unsigned)levels != ret_tree_levels(d->n_chunks, (unsigned)fanout))
                return -EBADMSG;
        d->tree_levels = (unsigned)levels;
        d->tree_fanout = (unsigned)fanout;
        if (levels == 0)
                return json_is_null(tree) ? 0 : -EBADMSG;
        if (!json_is_string(tree) || strlen(json_string_value(tree)) != 2 * STORE_HASH_SIZE ||
            hex_decode(json_string_value(tree), d->tree.b, STORE_HASH_SIZE) < 0)
                return -EBADMSG;
        return 0;
}

static int disk_from_json(json_t *o, struct ret_disk *d, int fmt) {
        const char *name, *format = "raw";
        json_int_t size, blocks, data_blocks = 0, entries;
        json_t *chunks = NULL, *c;
        size_t i;

        if (json_unpack(o, "{s:s, s:I, s?s, s:I, s?I, s:I, s?o}", "name", &name, "size", &size, "format", &format,
                        "blocks", &blocks, "data_blocks", &data_blocks, "chunk_entries", &entries, "chunks",
                        &chunks) < 0)
                return -EBADMSG;
        if (!name_is_valid(name) || size < 0 || blocks < 0 || entries != RET_CHUNK_ENTRIES)
                return -EBADMSG;
        snprintf(d->name, sizeof d->name, "%s", name);
        snprintf(d->format, sizeof d->format, "%s", format);
        d->size = (uint64_t)size;
        d->n_blocks = (uint64_t)blocks;
        d->data_blocks = (uint64_t)data_blocks;
        d->n_chunks = (size_t)DIV_ROUND_UP((uint64_t)blocks, RET_CHUNK_ENTRIES);
        if (fmt >= 2)
                return chunks ? -EBADMSG : tree_from_json(o, d);
        if (!json_is_array(chunks) || json_array_size(chunks) != d->n_chunks)
                return -EBADMSG;
        d->chunks = calloc(MAX(d->n_chunks, 1), sizeof *d->chunks);
        if (!d->chunks)
                return -ENOMEM;
        json_array_foreach(chunks, i, c) {
                if (!json_is_string(c) || hex_decode(json_string_value(c), d->chunks[i].b, STORE_HASH_SIZE) < 0)
                        return -EBADMSG;
        }
        return 0;
}

/* The optional "lineage" of a reprotected point: {"runs":"onprem","from":ID}. */
static int lineage_from_json(json_t *l, struct ret_point *p) {
        const char *from;
        time_t t;

        if (!l || json_is_null(l))
                return 0;
        if (json_unpack(l, "{s:s}", "from", &from) < 0 || point_id_parse(from, &t) < 0)
                return -EBADMSG;
        p->onprem_from = strdup(from);
        return p->onprem_from ? 0 : -ENOMEM;
}

int ret_point_parse(const char *text, struct ret_point **ret) {
        json_error_t err;
        json_t *o = json_loads(text, 0, &err), *disks, *d;
        const char *vm, *id, *type, *group = NULL;
        json_t *jgroup = NULL;
        json_int_t fmt, bs;
        struct ret_point *p = NULL;
        size_t i;
        int r = -EBADMSG;

        if (!o)
                return -EBADMSG;
        if (json_unpack(o, "{s:I, s:s, s:s, s:s, s?o, s:I, s:o}", "format", &fmt, "vm", &vm, "id", &id, "type",
                        &type, "group", &jgroup, "block_size", &bs, "disks", &disks) < 0)
                goto out;
        if (fmt < 1)
                goto out;
        if (fmt > POINT_FORMAT) {
                r = -EPROTONOSUPPORT;
                goto out;
        }
        if (!name_is_valid(vm) || !json_is_array(disks) || bs <= 0 || bs > UINT32_MAX)
                goto out;
        if (jgroup && !json_is_null(jgroup)) {
                if (!json_is_string(jgroup))
                        goto out;
                group = json_string_value(jgroup);
        }
        p = calloc(1, sizeof *p);
        if (!p) {
                r = -ENOMEM;
                goto out;
        }
        snprintf(p->vm, sizeof p->vm, "%s", vm);
        if (point_id_parse(id, &p->time) < 0)
                goto out;
        snprintf(p->id, sizeof p->id, "%s", id);
        p->app = strcmp(type, "app") == 0;
        p->block_size = (uint32_t)bs;
        if (group && !(p->group = strdup(group))) {
                r = -ENOMEM;
                goto out;
        }
        r = lineage_from_json(json_object_get(o, "lineage"), p);
        if (r < 0)
                goto out;
        r = -EBADMSG;
        p->disks = calloc(MAX(json_array_size(disks), 1), sizeof *p->disks);
        if (!p->disks) {
                r = -ENOMEM;
                goto out;
        }
        json_array_foreach(disks, i, d) {
                r = disk_from_json(d, &p->disks[i], (int)fmt);
                p->n_disks = i + 1;
                if (r < 0)
                        goto out;
        }
        *ret = TAKE_PTR(p);
        r = 0;
out:
        ret_point_free(p);
        json_decref(o);
        return r;
}

/* Point vm/id as stored: a summary (format-2 disks without chunks). */
static int point_load_summary(struct store *s, const char *vm, const char *id, struct ret_point **ret) {
        _cleanup_free_ char *text = NULL;
        char name[256];
        int r;

        if (!name_is_valid(vm) || strlen(id) != POINT_ID_LEN || !name_is_valid(id))
                return -ENOENT;
        snprintf(name, sizeof name, "points/%s/%s.json", vm, id);
        r = store_get_object(s, name, &text, NULL);
        if (r < 0)
                return r == -ENOTDIR ? -ENOENT : r;
        r = ret_point_parse(text, ret);
        if (r >= 0 && (strcmp((*ret)->vm, vm) != 0 || strcmp((*ret)->id, id) != 0)) {
                ret_point_free(*ret);
                return -EBADMSG;
        }
        return r;
}

int ret_point_load(struct store *s, const char *vm, const char *id, struct ret_point **ret) {
        struct ret_point *p;
        int r = point_load_summary(s, vm, id, &p);

        if (r < 0)
                return r;
        for (size_t i = 0; i < p->n_disks; i++) {
                struct ret_disk *d = &p->disks[i];
                if (d->chunks || d->n_chunks == 0)
                        continue;
                /* A missing node leaves its chunks unreadable (-ENOENT when
                 * read), not the point: it is shown, and what reads it
                 * names the missing range. */
                r = ret_tree_load_marked(s, d, true, &d->chunks);
                if (r < 0) {
                        ret_point_free(p);
                        return r;
                }
        }
        *ret = p;
        return 0;
}

struct list_ctx {
        struct store *s;
        struct ret_point **v;
        size_t n, cap;
        int err;
};

static int list_cb(void *userdata, const char *name, uint64_t size) {
        struct list_ctx *c = userdata;
        char vm[65], id[POINT_ID_LEN + 1];
        const char *p = name + strlen("points/"), *slash = strchr(p, '/');
        struct ret_point *pt;
        int r;

        /* points/<vm>/<id>.json; anything else is not ours. */
        if (!slash || (size_t)(slash - p) >= sizeof vm || strlen(slash + 1) != POINT_ID_LEN + 5 ||
            strcmp(slash + 1 + POINT_ID_LEN, ".json") != 0)
                return 0;
        memcpy(vm, p, (size_t)(slash - p));
        vm[slash - p] = 0;
        memcpy(id, slash + 1, POINT_ID_LEN);
        id[POINT_ID_LEN] = 0;
        r = point_load_summary(c->s, vm, id, &pt);
        if (r == -ENOENT)
                return 0; /* removed since the listing */
        if (r < 0) {
                log_warn_errno(r, "skipping unreadable point %s", name);
                c->err = r;
                return 0;
        }
        if (array_reserve(&c->v, &c->cap, c->n + 1, sizeof *c->v) < 0) {
                ret_point_free(pt);
                return -ENOMEM;
        }
        c->v[c->n++] = pt;
        return 0;
}

static int cmp_point(const void *a, const void *b) {
        const struct ret_point *x = *(struct ret_point *const *)a, *y = *(struct ret_point *const *)b;
        int c = strcmp(x->vm, y->vm);
        return c ? c : strcmp(x->id, y->id);
}

int ret_points_list(struct store *s, const char *vm, struct ret_point ***ret, size_t *ret_n) {
        struct list_ctx c = { .s = s };
        char prefix[128];
        int r;

        if (vm && !name_is_valid(vm))
                return -EINVAL;
        snprintf(prefix, sizeof prefix, vm ? "points/%s/" : "points/", vm ? vm : "");
        r = store_list(s, prefix, list_cb, &c);
        if (r < 0) {
                ret_points_free(c.v, c.n);
                return r;
        }
        if (c.n > 1)
                qsort(c.v, c.n, sizeof *c.v, cmp_point);
        *ret = c.v;
        *ret_n = c.n;
        return 0;
}

int ret_point_resolve(struct store *s, const char *vm, const char *spec, struct ret_point **ret) {
        struct ret_point **v = NULL;
        size_t n = 0;
        bool app = false;
        int r;

        if (!spec || strcmp(spec, "latest") == 0)
                app = false;
        else if (strcmp(spec, "latest-app") == 0)
                app = true;
        else
                return ret_point_load(s, vm, spec, ret);

        r = ret_points_list(s, vm, &v, &n);
        if (r < 0)
                return r;
        r = -ENOENT;
        for (size_t i = n; i-- > 0;)
                if (!app || v[i]->app) {
                        r = ret_point_load(s, v[i]->vm, v[i]->id, ret); /* with its chunk lists */
                        break;
                }
        ret_points_free(v, n);
        return r;
}
