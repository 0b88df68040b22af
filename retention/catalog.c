/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "retention.h"
#include "retention_i.h"

#define POINT_FORMAT 1

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

static json_t *disk_to_json(const struct ret_disk *d) {
        json_t *chunks = json_array(), *o;
        char hex[2 * STORE_HASH_SIZE + 1];

        if (!chunks)
                return NULL;
        for (size_t i = 0; i < d->n_chunks; i++) {
                hash_to_hex(&d->chunks[i], hex);
                if (json_array_append_new(chunks, json_string(hex)) < 0) {
                        json_decref(chunks);
                        return NULL;
                }
        }
        o = json_pack("{s:s, s:I, s:s, s:I, s:I, s:i, s:o}", "name", d->name, "size", (json_int_t)d->size,
                      "format", d->format, "blocks", (json_int_t)d->n_blocks, "data_blocks",
                      (json_int_t)d->data_blocks, "chunk_entries", RET_CHUNK_ENTRIES, "chunks", chunks);
        return o;
}

int ret_point_commit(struct store *s, const struct ret_point *p) {
        char name[256], when[21], created[21];
        json_t *o, *disks;

        if (!name_is_valid(p->vm))
                return -EINVAL;
        time_format_iso(p->time, when);
        time_format_iso(time(NULL), created);
        disks = json_array();
        if (!disks)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_disks; i++) {
                json_t *d = disk_to_json(&p->disks[i]);
                if (!d || json_array_append_new(disks, d) < 0) {
                        json_decref(disks);
                        return -ENOMEM;
                }
        }
        o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s?, s:I, s:s, s:o}", "format", POINT_FORMAT, "vm", p->vm,
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

static int disk_from_json(json_t *o, struct ret_disk *d) {
        const char *name, *format = "raw";
        json_int_t size, blocks, data_blocks = 0, entries;
        json_t *chunks, *c;
        size_t i;

        if (json_unpack(o, "{s:s, s:I, s?s, s:I, s?I, s:I, s:o}", "name", &name, "size", &size, "format", &format,
                        "blocks", &blocks, "data_blocks", &data_blocks, "chunk_entries", &entries, "chunks",
                        &chunks) < 0)
                return -EBADMSG;
        if (!name_is_valid(name) || size < 0 || blocks < 0 || entries != RET_CHUNK_ENTRIES ||
            !json_is_array(chunks) ||
            json_array_size(chunks) != (size_t)DIV_ROUND_UP((uint64_t)blocks, RET_CHUNK_ENTRIES))
                return -EBADMSG;
        snprintf(d->name, sizeof d->name, "%s", name);
        snprintf(d->format, sizeof d->format, "%s", format);
        d->size = (uint64_t)size;
        d->n_blocks = (uint64_t)blocks;
        d->data_blocks = (uint64_t)data_blocks;
        d->n_chunks = json_array_size(chunks);
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
                r = disk_from_json(d, &p->disks[i]);
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

int ret_point_load(struct store *s, const char *vm, const char *id, struct ret_point **ret) {
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
        r = ret_point_load(c->s, vm, id, &pt);
        if (r == -ENOENT)
                return 0; /* removed since the listing */
        if (r < 0) {
                log_warn_errno(r, "skipping unreadable point %s", name);
                c->err = r;
                return 0;
        }
        if (c->n == c->cap) {
                size_t ncap = c->cap ? 2 * c->cap : 16;
                struct ret_point **nv = realloc(c->v, ncap * sizeof *nv);
                if (!nv) {
                        ret_point_free(pt);
                        return -ENOMEM;
                }
                c->v = nv;
                c->cap = ncap;
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
                        *ret = v[i];
                        v[i] = NULL;
                        r = 0;
                        break;
                }
        ret_points_free(v, n);
        return r;
}
