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
