/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fs: the FUSE view of a vault. Every VM, point and disk appears as a
 * plain, read-only image file; reading one fetches only the blocks it needs
 * (zero -> cache -> seed -> vault), each verified against its checksum.
 *
 *   MOUNT/<vm>/points/<id>/<disk>.raw   the disk at that point
 *   MOUNT/<vm>/points/<id>/<disk>.vhd   the same bytes + a fixed-VHD footer
 *   MOUNT/<vm>/points/<id>/point.json   time, type, group, disks
 *   MOUNT/<vm>/latest, latest-app       symlinks to points/<id>
 *   MOUNT/.rpfs/stats                   bytes served by source, fetches, errors
 *   MOUNT/failback/                     with onprem_dir: that directory, writable;
 *                                       a write only reaches the disk for the
 *                                       blocks that differ from what is there,
 *                                       and copy_file_range from a point file is
 *                                       a delta sync (unchanged blocks are
 *                                       neither fetched nor written)
 *
 * fs_mount() blocks until the file system is unmounted.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct fs_seed_spec {
        const char *vm;
        const char *disk;
        const char *path;
};

struct fs_options {
        const char *vault;
        const char *mountpoint;
        const char *cache_dir;     /* NULL: default */
        uint64_t cache_size;       /* bytes */
        const struct fs_seed_spec *seeds;
        size_t n_seeds;
        bool foreground;
        bool allow_other;
        unsigned timeout;          /* seconds a read retries an unreachable vault */
        const char *log_file;      /* daemon log, NULL: none when in background */
        const char *onprem_dir;    /* shown writable as MOUNT/failback, or NULL */
        bool failback_full;        /* writes there: write every block, no compare */
        struct store_options store; /* how the vault is reached (retry_seconds: the timeout, bounded) */
};


/* Mount and serve until unmounted. Returns 0, or -errno after logging why
 * (vault, cache, seed or mount failures). In the background case the
 * calling process returns 0 once the mount is ready and a daemon serves. */
int fs_mount(const struct fs_options *o);

/* ---- one point's disk read without a mount (reader.c) ----
 * The NBD export reads a point the way the mount does: lazily, every
 * block verified, through the same cache (zero -> cache -> seed -> vault)
 * and readahead. Thread rule: a struct fs_reader is internally locked;
 * each thread that reads sequentially should use its own struct
 * fs_reader_stream (their readahead is per stream). */
struct fs_reader;
struct fs_reader_stream;
/* Open disk of vm's point (an ID, "latest" or "latest-app") in the vault
 * of o (vault, cache_dir, cache_size, seeds, timeout, store; mountpoint,
 * onprem_dir unused). -ENOENT no such VM, point or disk (logged, like
 * every error). Starts no thread: a process may fork() after it. *ret
 * freed with fs_reader_free(). */
int fs_reader_open(const struct fs_options *o, const char *vm, const char *point, const char *disk,
                   struct fs_reader **ret);
/* Start the reader's threads (readahead): after any fork(), before the
 * reads that should get readahead. 0 or -errno. */
int fs_reader_start(struct fs_reader *r);
void fs_reader_free(struct fs_reader *r);
/* The disk's size in bytes; the point's ID. */
uint64_t fs_reader_size(const struct fs_reader *r);
const char *fs_reader_point_id(const struct fs_reader *r);
/* A reader's stream (its readahead state). -ENOMEM. */
int fs_reader_stream_new(struct fs_reader *r, struct fs_reader_stream **ret);
void fs_reader_stream_free(struct fs_reader_stream *st);
/* Read [off, off + len) of the disk (clipped to its size) into buf.
 * Returns the bytes read, or -EIO (logged: a block that cannot be fetched
 * or fails verification). */
int fs_reader_read(struct fs_reader_stream *st, void *buf, size_t len, uint64_t off);
/* The first offset in [off, end) in a data block (data) or a zero block
 * (!data), or end (clipped to the size) when there is none. 0 or -EIO. */
int fs_reader_next(struct fs_reader *r, uint64_t off, uint64_t end, bool data, uint64_t *ret);
