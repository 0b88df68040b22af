/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * retention: the points catalog. A recovery point is one immutable JSON
 * object "points/<vm>/<id>.json", created exclusively, so a point is
 * visible exactly when that object exists and two writers can never
 * replace each other's point. Each disk's manifest (its block checksums
 * in order) is stored as content-addressed manifest chunks in packs, so
 * consecutive points share the chunks that did not change.
 *
 * Thread rule: struct ret_point is plain data; struct ret_manifest_writer
 * and struct ret_manifest are one per thread.
 *
 * Errors: -ENOENT no such VM/point/disk, -EEXIST point exists, -EBADMSG a
 * point or manifest that does not parse, -EINVAL bad names.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "store.h"

#define RET_CHUNK_ENTRIES 512 /* block checksums per manifest chunk */

struct ret_disk {
        char name[65];
        char format[16];          /* source format, informational */
        uint64_t size;            /* virtual size in bytes */
        uint64_t n_blocks;
        uint64_t data_blocks;     /* non-zero blocks */
        size_t n_chunks;
        struct hash128 *chunks;   /* manifest chunk checksums, in order */
};

struct ret_point {
        char vm[65];
        char id[16 + 1];
        time_t time;
        bool app;                 /* app-consistent */
        char *group;              /* replication group or NULL */
        uint32_t block_size;
        size_t n_disks;
        struct ret_disk *disks;
};

void ret_point_free(struct ret_point *p);

/* Encode p and create its object exclusively: -EEXIST if that VM already
 * has a point with that ID. */
int ret_point_commit(struct store *s, const struct ret_point *p);
/* Parse a point object's text. -EBADMSG when it is not a valid point,
 * -EPROTONOSUPPORT a newer point format. */
int ret_point_parse(const char *text, struct ret_point **ret);
/* Load one point. -ENOENT if absent. *ret owned by the caller. */
int ret_point_load(struct store *s, const char *vm, const char *id, struct ret_point **ret);
/* All points (of vm, or of every VM when vm is NULL), sorted by VM then
 * ID. *ret is an array of *ret_n pointers; free with ret_points_free(). */
int ret_points_list(struct store *s, const char *vm, struct ret_point ***ret, size_t *ret_n);
void ret_points_free(struct ret_point **v, size_t n);
/* Resolve "latest", "latest-app" or an ID for vm. -ENOENT with nothing
 * matching (no point, no app-consistent point, unknown ID). */
int ret_point_resolve(struct store *s, const char *vm, const char *spec, struct ret_point **ret);
/* The disk named name in p, or NULL. */
const struct ret_disk *ret_point_disk(const struct ret_point *p, const char *name);

/* ---- manifests ---- */
struct ret_manifest_writer;
struct store_writer;
struct store_codec;
/* Collects block checksums in order and stores full chunks through w. */
int ret_manifest_writer_new(struct store_writer *w, struct store_codec *c, struct ret_manifest_writer **ret);
int ret_manifest_writer_add(struct ret_manifest_writer *m, const struct hash128 *h);
/* Store the last chunk; move the chunk list into d (n_chunks, chunks). */
int ret_manifest_writer_finish(struct ret_manifest_writer *m, struct ret_disk *d);
void ret_manifest_writer_free(struct ret_manifest_writer *m);

/* Reads a disk's manifest chunk by chunk (only one chunk in memory). */
struct ret_manifest;
int ret_manifest_open(struct store *s, const struct ret_disk *d, struct ret_manifest **ret);
/* Checksum of block i (zero hash for an all-zero block). -ENOENT past
 * the end, -EBADMSG damaged chunk. */
int ret_manifest_get(struct ret_manifest *m, uint64_t i, struct hash128 *ret);
void ret_manifest_free(struct ret_manifest *m);

/* ---- comparisons (diff.c) ---- */
/* Whether manifest chunk ci of d holds only zero blocks (true past the end). */
bool ret_chunk_is_zero(const struct ret_disk *d, size_t ci);
/* Called with each extent, in bytes, in order; non-zero stops the walk
 * and is returned. */
typedef int (*ret_extent_fn)(void *userdata, uint64_t start, uint64_t length);
/* The extents where disk b differs from disk a, at block granularity
 * (block_size bytes; the last one clipped to b's size), merged, in order.
 * a NULL (no earlier disk): b's non-zero blocks. Blocks past the end of a
 * disk count as zeros. Chunks with equal checksums are skipped without
 * being read. 0, -errno of reading a manifest chunk, or cb's value. */
int ret_disk_diff(struct store *s, const struct ret_disk *a, const struct ret_disk *b, uint32_t block_size,
                  ret_extent_fn cb, void *userdata);
