/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mount's paths: a path resolved against the catalog to a node (a VM,
 * a point, one of its files), and the files the mount generates for a
 * point (point.json, the sizes of its disk views).
 */
#define FUSE_USE_VERSION 314
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_i.h"

static int resolve_locked(struct fs *fs, size_t nc, char **comp, struct fs_node *n);

/* N_PART: find n->part_no in the disk's partition table (read on first
 * use, outside cat_lock), else drop n->pt and -ENOENT. */
static int resolve_part(struct fs *fs, struct fs_node *n) {
        const struct fs_disk_views *v;
        int r = fs_parts_get(fs, n->pt, n->disk, &v);

        for (size_t i = 0; r == 0 && i < v->n_parts; i++)
                if (v->parts[i].number == n->part_no) {
                        n->part = &v->parts[i];
                        return 0;
                }
        fs_point_unref(n->pt);
        n->pt = NULL;
        return -ENOENT;
}

int fs_resolve(struct fs *fs, const char *path, struct fs_node *n) {
        char buf[512], *comp[6], *save = NULL, *t;
        size_t nc = 0;
        int r = -ENOENT;

        memset(n, 0, sizeof *n);
        if (strlen(path) >= sizeof buf)
                return -ENAMETOOLONG;
        strcpy(buf, path);
        for (t = strtok_r(buf, "/", &save); t && nc < ELEMENTSOF(comp); t = strtok_r(NULL, "/", &save))
                comp[nc++] = t;
        if (t)
                return -ENOENT;
        if (nc == 0) {
                n->t = N_ROOT;
                return 0;
        }
        if (strcmp(comp[0], ".rpfs") == 0) {
                if (nc == 1)
                        n->t = N_META;
                else if (nc == 2 && strcmp(comp[1], "stats") == 0)
                        n->t = N_STATS;
                else
                        return -ENOENT;
                return 0;
        }
        if (!name_is_valid(comp[0]))
                return -ENOENT;
        snprintf(n->vm, sizeof n->vm, "%s", comp[0]);
        /* While the vault cannot be listed the catalog answers without
         * waiting; a name it does not know then waits for the refresh
         * under way (the vault may be back, with this point). */
        if (!fs_catalog_lock_fresh(fs, false)) {
                r = resolve_locked(fs, nc, comp, n);
                if (r != -ENOENT)
                        goto out;
                pthread_mutex_unlock(&fs->cat_lock);
                fs_catalog_lock_fresh(fs, true);
        }
        r = resolve_locked(fs, nc, comp, n);
out:
        if (r == 0 && n->pt)
                atomic_fetch_add(&n->pt->refs, 1);
        else
                n->pt = NULL;
        pthread_mutex_unlock(&fs->cat_lock);
        if (r == 0 && n->t == N_PART)
                r = resolve_part(fs, n);
        return r;
}

/* name in point p: <disk>.raw, .vhd, .changes or .p<N>.raw. */
static int resolve_disk_file(const struct ret_point *p, const char *name, struct fs_node *n) {
        for (size_t i = 0; i < p->n_disks; i++) {
                size_t l = strlen(p->disks[i].name);
                const char *sfx = name + l;
                unsigned no;
                int end = 0;

                if (strncmp(name, p->disks[i].name, l) != 0 || *sfx != '.')
                        continue;
                if (strcmp(sfx, ".raw") == 0)
                        n->t = N_RAW;
                else if (strcmp(sfx, ".vhd") == 0)
                        n->t = N_VHD;
                else if (strcmp(sfx, ".changes") == 0)
                        n->t = N_CHANGES;
                else if (sscanf(sfx, ".p%u.raw%n", &no, &end) == 1 && end > 0 && sfx[end] == 0 && no > 0 &&
                         sfx[2] != '0' && sfx[2] != '+' && sfx[2] != '-' && sfx[2] != ' ') {
                        n->t = N_PART;
                        n->part_no = no;
                } else
                        continue;
                n->disk = i;
                return 0;
        }
        return -ENOENT;
}

/* fs_resolve() for a path below a VM, under cat_lock; n->pt not referenced. */
static int resolve_locked(struct fs *fs, size_t nc, char **comp, struct fs_node *n) {
        int r = -ENOENT;

        n->pt = NULL;
        if (!fs_catalog_vm_exists_locked(fs, n->vm))
                goto out;
        if (nc == 1) {
                n->t = N_VM;
                r = 0;
        } else if (nc == 2 && (strcmp(comp[1], "latest") == 0 || strcmp(comp[1], "latest-app") == 0)) {
                n->t = comp[1][6] ? N_LATEST_APP : N_LATEST;
                n->pt = fs_catalog_latest_locked(fs, n->vm, n->t == N_LATEST_APP);
                r = n->pt ? 0 : -ENOENT;
        } else if (strcmp(comp[1], "points") == 0) {
                if (nc == 2) {
                        n->t = N_POINTS;
                        r = 0;
                } else if ((n->pt = fs_catalog_find_locked(fs, n->vm, comp[2]))) {
                        if (nc == 3) {
                                n->t = N_POINT;
                                r = 0;
                        } else if (nc == 4 && strcmp(comp[3], "point.json") == 0) {
                                n->t = N_JSON;
                                r = 0;
                        } else if (nc == 4)
                                r = resolve_disk_file(n->pt->p, comp[3], n);
                }
        }
out:
        return r;
}

/* ---- generated files ---- */

/* The partitions of disk i of pt for point.json: table and list, or
 * nothing when they cannot be read. */
static void point_json_parts(struct fs *fs, struct fs_point *pt, size_t i, json_t *disk) {
        const struct fs_disk_views *v;
        json_t *parts;

        if (fs_parts_get(fs, pt, i, &v) < 0 || !v->table[0])
                return;
        parts = json_array();
        for (size_t k = 0; k < v->n_parts; k++) {
                const struct fs_part *q = &v->parts[k];
                char file[96];
                snprintf(file, sizeof file, "%s.p%u.raw", pt->p->disks[i].name, q->number);
                json_array_append_new(parts, json_pack("{s:i, s:s, s:I, s:I, s:s, s:s?, s:s?, s:s?, s:s?, s:s?}",
                        "number", (int)q->number, "file", file, "start", (json_int_t)q->start,
                        "size", (json_int_t)q->size, "type", q->type, "name", q->name[0] ? q->name : NULL,
                        "uuid", q->part_uuid[0] ? q->part_uuid : NULL,
                        "filesystem", q->fs_type[0] ? q->fs_type : NULL,
                        "label", q->fs_label[0] ? q->fs_label : NULL,
                        "fs_uuid", q->fs_uuid[0] ? q->fs_uuid : NULL));
        }
        json_object_set_new(disk, "partition_table", json_string(v->table));
        json_object_set_new(disk, "partitions", parts);
}

char *fs_point_json(struct fs *fs, struct fs_point *pt, size_t *ret_len) {
        const struct ret_point *p = pt->p;
        json_t *disks = json_array(), *o;
        char when[21], *text;

        for (size_t i = 0; i < p->n_disks; i++) {
                json_t *disk = json_pack("{s:s, s:I, s:s, s:I, s:I}", "name", p->disks[i].name, "size",
                                         (json_int_t)p->disks[i].size, "format", p->disks[i].format,
                                         "blocks", (json_int_t)p->disks[i].n_blocks, "data_blocks",
                                         (json_int_t)p->disks[i].data_blocks);
                if (disk)
                        point_json_parts(fs, pt, i, disk);
                json_array_append_new(disks, disk);
        }
        time_format_iso(p->time, when);
        o = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:I, s:o}", "vm", p->vm, "id", p->id, "time", when, "type",
                      p->app ? "app" : "crash", "group", p->group, "block_size", (json_int_t)p->block_size,
                      "disks", disks);
        text = fs_json_text(o);
        if (text)
                *ret_len = strlen(text);
        return text;
}

/* st_blocks of a disk's raw view: its non-zero blocks, a partial last
 * one counted up to the size rounded to a sector (counted whole when its
 * manifest chunk cannot be read now). */
blkcnt_t fs_disk_sectors(struct fs *fs, const struct ret_disk *d) {
        uint64_t bytes = d->data_blocks * fs->bs, tail = d->size % fs->bs;
        struct hash128 h;

        if (tail && d->data_blocks && fs_block_hash(fs, d, d->n_blocks - 1, &h) == 0 && !hash_is_zero(&h))
                bytes -= fs->bs - DIV_ROUND_UP(tail, 512) * 512;
        return (blkcnt_t)(MIN(bytes, fs_vhd_data_size(d)) / 512);
}
