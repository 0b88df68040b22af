/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sync: moving disk data in and out of the vault.
 *   sync_replicate(): read source images, hash every block (XXH3-128),
 *     compress and store only blocks the vault lacks, commit a point.
 *   sync_export(): write a point's disk out as raw bytes, verifying every
 *     block against its checksum.
 *
 * Thread rule: each call is self-contained; it runs its own worker pool.
 * Errors: as store.h and formats.h; -EEXIST the point already exists,
 * -ENOENT unknown VM/point/disk. Functions log the explanation of image
 * errors themselves (they know the file name), and return the code.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "retention.h"
#include "store.h"

struct sync_disk_spec {
        const char *name; /* "disk0" ... */
        const char *path;
};

struct sync_replicate_opts {
        const char *vm;
        const struct sync_disk_spec *disks;
        size_t n_disks;
        bool app;
        const char *group;   /* NULL: none */
        time_t time;         /* point time (the ID) */
        unsigned threads;    /* 0: one per CPU */
        bool progress;       /* draw a progress line if stderr is a tty */
};

struct sync_replicate_result {
        char id[POINT_ID_LEN + 1];
        uint64_t disk_bytes;   /* virtual sizes added up */
        uint64_t read_bytes;   /* bytes read from sources */
        uint64_t data_blocks;  /* non-zero blocks */
        uint64_t new_blocks;   /* blocks stored by this run */
        uint64_t stored_bytes; /* encoded bytes written to packs */
        double seconds;
};

int sync_replicate(struct store *s, const struct sync_replicate_opts *o, struct sync_replicate_result *ret);

struct sync_export_result {
        uint64_t bytes;        /* disk size */
        uint64_t data_bytes;   /* bytes of non-zero blocks written */
        double seconds;
};

/* Write disk d of point p to fd. sparse: skip zero blocks with lseek (fd
 * must be a regular file, truncated to the size at the end); otherwise
 * write zeros. */
int sync_export(struct store *s, const struct ret_point *p, const struct ret_disk *d, int fd, bool sparse,
                bool progress, struct sync_export_result *ret);

/* ---- seeds ---- */
/*
 * A seed is a local image (usually the stale on-prem disk) whose blocks are
 * read instead of fetched when their checksum matches. Its checksums are
 * computed once (at disk speed) and kept in CACHE_DIR/seeds/, recomputed
 * when the seed's size, mtime or inode change. Seed bytes are re-verified
 * on every use, so a seed that changes under a reader is caught.
 * Internally locked: any thread may call sync_seed_read().
 */
struct sync_seed;
/* Open the seed at path (any supported format) for blocks of bs bytes.
 * Logs what is wrong with path itself (it knows the name). */
int sync_seed_open(const char *path, uint32_t bs, const char *cache_dir, bool progress, struct sync_seed **ret);
void sync_seed_free(struct sync_seed *s);
const char *sync_seed_path(const struct sync_seed *s);
/* Produce the block with checksum h, preferring seed block index i, else
 * any seed block with that checksum; verified. 0 found (buf filled),
 * -ENOENT not in the seed (or the seed changed). */
int sync_seed_read(struct sync_seed *s, uint64_t i, const struct hash128 *h, void *buf);
/* true when the seed (probably) holds a block with checksum h, at index i
 * or elsewhere; no I/O. */
bool sync_seed_has(struct sync_seed *s, uint64_t i, const struct hash128 *h);
