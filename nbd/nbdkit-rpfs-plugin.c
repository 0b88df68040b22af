/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * nbdkit-rpfs-plugin: serve one recovery point's disk over NBD, read-only:
 *
 *     nbdkit rpfs vault=VAULT vm=VM disk=DISK [point=latest|latest-app|ID]
 *                 [cache=DIR] [cache-size=SIZE] [timeout=SECONDS]
 *
 * Reads are the mount's (fs_reader_*: lazy, every block verified, the
 * same cache and readahead); block status reports zero blocks as holes,
 * so qemu-img convert and map skip them. Stacked on nbdkit's cow filter a
 * hypervisor boots the point, writes going to a local overlay: instant
 * recovery.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "fs.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* The plugin's configuration and its one reader (nbdkit loads a plugin
 * once per process). */
static struct {
        char *vault, *vm, *disk, *point, *cache;
        uint64_t cache_size;
        unsigned timeout;
        struct fs_reader *r;
} cfg = { .cache_size = 20ULL << 30, .timeout = 30 };

static void rpfs_unload(void) {
        fs_reader_free(cfg.r);
        free(cfg.vault);
        free(cfg.vm);
        free(cfg.disk);
        free(cfg.point);
        free(cfg.cache);
}

static int set_str(char **dst, const char *key, const char *value) {
        free(*dst);
        if (!(*dst = strdup(value))) {
                nbdkit_error("%s: out of memory", key);
                return -1;
        }
        return 0;
}

static int rpfs_config(const char *key, const char *value) {
        if (strcmp(key, "vault") == 0)
                return set_str(&cfg.vault, key, value);
        if (strcmp(key, "vm") == 0)
                return set_str(&cfg.vm, key, value);
        if (strcmp(key, "disk") == 0)
                return set_str(&cfg.disk, key, value);
        if (strcmp(key, "point") == 0)
                return set_str(&cfg.point, key, value);
        if (strcmp(key, "cache") == 0)
                return set_str(&cfg.cache, key, value);
        if (strcmp(key, "cache-size") == 0) {
                if (parse_size(value, &cfg.cache_size) < 0) {
                        nbdkit_error("cache-size: not a size: %s", value);
                        return -1;
                }
                return 0;
        }
        if (strcmp(key, "timeout") == 0) {
                char *end;
                unsigned long v = strtoul(value, &end, 10);
                if (!*value || *end || v > 86400) {
                        nbdkit_error("timeout: seconds, 0..86400: %s", value);
                        return -1;
                }
                cfg.timeout = (unsigned)v;
                return 0;
        }
        nbdkit_error("unknown parameter '%s'", key);
        return -1;
}

static int rpfs_config_complete(void) {
        time_t t;

        if (!cfg.vault || !cfg.vm || !cfg.disk) {
                nbdkit_error("vault=, vm= and disk= are required");
                return -1;
        }
        if (!name_is_valid(cfg.vm) || !name_is_valid(cfg.disk)) {
                nbdkit_error("invalid vm or disk name");
                return -1;
        }
        if (!cfg.point && set_str(&cfg.point, "point", "latest") < 0)
                return -1;
        if (strcmp(cfg.point, "latest") != 0 && strcmp(cfg.point, "latest-app") != 0 &&
            point_id_parse(cfg.point, &t) < 0) {
                nbdkit_error("point: an ID like 20261122T101500Z, latest or latest-app: %s", cfg.point);
                return -1;
        }
        return 0;
}

/* The vault, the point and its disk are opened before nbdkit forks into
 * the background, so that a wrong parameter fails nbdkit's start; the
 * threads (readahead) start after it. */
static int rpfs_get_ready(void) {
        struct fs_options o = {
                .vault = cfg.vault,
                .cache_dir = cfg.cache,
                .cache_size = cfg.cache_size,
                .timeout = cfg.timeout,
                .store = STORE_OPTIONS_DEFAULT,
        };
        int r;

        o.store.retry_seconds = cfg.timeout ? cfg.timeout : 1;
        o.store.bounded = true;
        log_set_prefix("nbdkit-rpfs");
        r = fs_reader_open(&o, cfg.vm, cfg.point, cfg.disk, &cfg.r);
        if (r < 0) {
                nbdkit_error("%s: cannot serve %s/%s %s: %s", cfg.vault, cfg.vm, cfg.point, cfg.disk, strerror(-r));
                return -1;
        }
        nbdkit_debug("serving %s/%s %s, %" PRIu64 " bytes", cfg.vm, fs_reader_point_id(cfg.r), cfg.disk,
                     fs_reader_size(cfg.r));
        return 0;
}

static int rpfs_after_fork(void) {
        int r = fs_reader_start(cfg.r);
        if (r < 0) {
                nbdkit_error("cannot start the readahead threads: %s", strerror(-r));
                return -1;
        }
        return 0;
}

static void *rpfs_open(int readonly) {
        struct fs_reader_stream *st;

        if (fs_reader_stream_new(cfg.r, &st) < 0) {
                nbdkit_error("out of memory");
                return NULL;
        }
        return st;
}

static void rpfs_close(void *handle) { fs_reader_stream_free(handle); }

static int64_t rpfs_get_size(void *handle) { return (int64_t)fs_reader_size(cfg.r); }

/* A point never changes: read-only, cacheable, the same for every client. */
static int rpfs_can_write(void *handle) { return 0; }
static int rpfs_can_multi_conn(void *handle) { return 1; }
static int rpfs_can_extents(void *handle) { return 1; }
static int rpfs_can_cache(void *handle) { return NBDKIT_CACHE_NATIVE; }

static int rpfs_pread(void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags) {
        int r = fs_reader_read(handle, buf, count, offset);

        if (r < 0 || (uint32_t)r != count) {
                nbdkit_error("read of %" PRIu32 " bytes at %" PRIu64 " failed", count, offset);
                nbdkit_set_error(EIO);
                return -1;
        }
        return 0;
}

/* NBD_CMD_CACHE: fetch the range into the local cache. */
static int rpfs_cache(void *handle, uint32_t count, uint64_t offset, uint32_t flags) {
        _cleanup_free_ char *buf = malloc(count ? count : 1);

        if (!buf) {
                nbdkit_set_error(ENOMEM);
                return -1;
        }
        return rpfs_pread(handle, buf, count, offset, 0);
}

static int rpfs_extents(void *handle, uint32_t count, uint64_t offset, uint32_t flags,
                        struct nbdkit_extents *extents) {
        uint64_t end = offset + count, a = offset, b;

        /* NBDKIT_FLAG_REQ_ONE: the first extent is enough. */
        while (a < end) {
                bool data;
                uint64_t next_data;

                if (fs_reader_next(cfg.r, a, end, true, &next_data) < 0)
                        goto fail;
                data = next_data == a;
                if (!data)
                        b = next_data;
                else if (fs_reader_next(cfg.r, a, end, false, &b) < 0)
                        goto fail;
                if (b <= a)
                        b = end;
                if (nbdkit_add_extent(extents, a, b - a, data ? 0 : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) < 0)
                        return -1;
                if (flags & NBDKIT_FLAG_REQ_ONE)
                        break;
                a = b;
        }
        return 0;
fail:
        nbdkit_error("block status at %" PRIu64 ": the manifest cannot be read", a);
        nbdkit_set_error(EIO);
        return -1;
}

static struct nbdkit_plugin plugin = {
        .name = "rpfs",
        .longname = "rpfs recovery point",
        .version = RPFS_VERSION,
        .description = "Serve a disk of an rpfs recovery point, read-only, verified, cached",
        .config_help = "vault=VAULT vm=VM disk=DISK [point=latest|latest-app|ID] [cache=DIR] [cache-size=SIZE]\n"
                       "[timeout=SECONDS]   (Azure credentials from the environment, as for rpfs)",
        .magic_config_key = "vault",
        .unload = rpfs_unload,
        .config = rpfs_config,
        .config_complete = rpfs_config_complete,
        .get_ready = rpfs_get_ready,
        .after_fork = rpfs_after_fork,
        .open = rpfs_open,
        .close = rpfs_close,
        .get_size = rpfs_get_size,
        .can_write = rpfs_can_write,
        .can_multi_conn = rpfs_can_multi_conn,
        .can_extents = rpfs_can_extents,
        .can_cache = rpfs_can_cache,
        .pread = rpfs_pread,
        .cache = rpfs_cache,
        .extents = rpfs_extents,
};

NBDKIT_REGISTER_PLUGIN(plugin)
