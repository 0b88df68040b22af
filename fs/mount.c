/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Setting a mount up, serving it (loop.c) and tearing it down. */
#define FUSE_USE_VERSION 314
#include <fcntl.h>
#include <fuse.h>
#include <malloc.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fs_i.h"

/* ---- mount ---- */

struct fuse_mount_query {
        const char *mnt;
        dev_t dev;
        bool found;
};

static bool fuse_mount_match(const struct mount_info *m, void *arg) {
        struct fuse_mount_query *q = arg;
        if (strcmp(m->mnt, q->mnt) == 0 && strncmp(m->fstype, "fuse", 4) == 0) {
                q->dev = m->dev; /* the last match is the newest mount */
                q->found = true;
        }
        return false;
}

/* The device of the newest FUSE mount at MOUNTPOINT, from mountinfo:
 * stat()ing our own mount point before we serve it would deadlock, and
 * after the connection was aborted it fails. */
static bool fuse_mount_dev(const char *mountpoint, dev_t *dev) {
        struct fuse_mount_query q = { .mnt = mountpoint };

        mountinfo_each(fuse_mount_match, &q);
        *dev = q.dev;
        return q.found;
}

/* Raise the kernel's readahead for the mount of device DEV (FUSE mounts
 * start at 128 KiB, which caps read requests at that size). Best effort:
 * needs root. */
static void raise_readahead(dev_t dev, unsigned kib) {
        char path[128];
        FILE *f;

        snprintf(path, sizeof path, "/sys/class/bdi/%u:%u/read_ahead_kb", major(dev), minor(dev));
        f = fopen(path, "we");
        if (!f)
                return;
        fprintf(f, "%u\n", kib);
        fclose(f);
}

void fs_free(struct fs *fs) {
        if (!fs)
                return;
        pool_free(fs->ra_pool);
        pool_free(fs->cmp_pool);
        while (fs->files) {
                struct fs_file *f = fs->files;
                fs->files = f->next;
                fs_file_free(f);
        }
        fs_catalog_stop(fs);
        ret_keeper_free(fs->leases);
        for (size_t i = 0; i < fs->n_seeds; i++)
                sync_seed_free(fs->seeds[i].seed);
        free(fs->seeds);
        store_codec_pool_free(fs->codecs);
        free(fs->chunks);
        free(fs->fl);
        free(fs->fl_used);
        store_cache_close(fs->cache);
        store_free(fs->s);
        if (fs->onprem_fd >= 0)
                close(fs->onprem_fd);
        fs_verified_free(fs->verified);
        free(fs);
}

int fs_setup(struct fs *fs, const struct fs_options *o) {
        char cache_dir[4096];
        int r;

        fs->o = *o;
        fs->started = time(NULL);
        fs->onprem_fd = -1;
        pthread_mutex_init(&fs->ra_lock, NULL);
        for (unsigned i = 0; i < CHUNK_LOCKS; i++)
                pthread_mutex_init(&fs->chunk_lock[i], NULL);
        pthread_mutex_init(&fs->fl_lock, NULL);
        pthread_mutex_init(&fs->files_lock, NULL);
        for (size_t i = 0; i < FL_CONDS; i++)
                pthread_cond_init(&fs->fl_cond[i], NULL);
        fs->chunks = calloc(CHUNK_SLOTS, sizeof *fs->chunks);
        fs->fl = calloc(FL_CAP, sizeof *fs->fl);
        fs->fl_used = calloc(FL_CAP, sizeof *fs->fl_used);
        if (!fs->chunks || !fs->fl || !fs->fl_used)
                return -ENOMEM;

        r = store_open_with(o->vault, &o->store, &fs->s);
        if (r < 0)
                return r; /* the CLI explains vault errors */
        fs->bs = store_block_size(fs->s);
        r = store_codec_pool_new(fs->s, CODEC_POOL, &fs->codecs);
        if (r < 0)
                return r;
        r = ret_keeper_new(fs->s, &fs->leases);
        if (r < 0)
                return r;

        if (o->cache_dir)
                snprintf(cache_dir, sizeof cache_dir, "%s", o->cache_dir);
        else
                rpfs_cache_dir(cache_dir, sizeof cache_dir);
        r = store_cache_open(cache_dir, fs->bs, o->cache_size, &fs->cache);
        if (r == -EBUSY)
                return log_error_errno(r, "cache %s is in use by another rpfs mount; give this mount its own --cache DIR",
                                       cache_dir);
        if (r == -EINVAL)
                return log_error_errno(r, "--cache-size must hold at least 16 blocks of %u bytes", fs->bs);
        if (r < 0)
                return log_error_errno(r, "cache %s", cache_dir);

        fs->seeds = calloc(MAX(o->n_seeds, 1), sizeof *fs->seeds);
        if (!fs->seeds)
                return -ENOMEM;
        for (size_t i = 0; i < o->n_seeds; i++) {
                r = sync_seed_open(o->seeds[i].path, fs->bs, cache_dir, true, &fs->seeds[i].seed);
                if (r < 0)
                        return r;
                snprintf(fs->seeds[i].vm, sizeof fs->seeds[i].vm, "%s", o->seeds[i].vm);
                snprintf(fs->seeds[i].disk, sizeof fs->seeds[i].disk, "%s", o->seeds[i].disk);
                fs->n_seeds++;
        }
        if (o->onprem_dir) {
                fs->onprem_fd = open(o->onprem_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fs->onprem_fd < 0)
                        return log_error_errno(-errno, "--onprem %s", o->onprem_dir);
                r = fs_verified_new(&fs->verified);
                if (r < 0)
                        return log_error_errno(r, "--onprem %s", o->onprem_dir);
        }
        r = fs_catalog_start(fs);
        if (r < 0)
                return log_error_errno(r, "%s: cannot list the vault's points", o->vault);
        return 0;
}

/* libfuse's arguments for this mount into args. 0 or -ENOMEM. */
static int fuse_args_build(const struct fs_options *o, struct fuse_args *args) {
        char fsname[4200];

        snprintf(fsname, sizeof fsname, "fsname=rpfs:%s", o->vault);
        for (char *p = fsname; *p; p++)
                if (*p == ',')
                        *p = '_';
        if (fuse_opt_add_arg(args, "rpfs") < 0 || fuse_opt_add_arg(args, "-o") < 0 ||
            fuse_opt_add_arg(args, o->onprem_dir ? "default_permissions,subtype=rpfs" :
                                                   "ro,default_permissions,subtype=rpfs") < 0 ||
            fuse_opt_add_arg(args, "-o") < 0 || fuse_opt_add_arg(args, fsname) < 0 ||
            (o->allow_other && (fuse_opt_add_arg(args, "-o") < 0 || fuse_opt_add_arg(args, "allow_other") < 0)))
                return -ENOMEM;
        return 0;
}

/* After mounting: become the daemon (unless in the foreground), start the
 * threads, serve until the connection ends. fuse_dev is the mount's
 * device. 0 once unmounted, or -errno (logged). */
static int serve(struct fs *fs, struct fuse *f, dev_t fuse_dev) {
        const struct fs_options *o = &fs->o;
        dev_t dev;
        int r;

        if (fuse_daemonize(o->foreground) != 0)
                return -errno ? -errno : -EIO;
        if (!o->foreground && o->log_file) {
                int lfd = open(o->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (lfd >= 0) {
                        dup2(lfd, STDERR_FILENO);
                        close(lfd);
                }
        }
        /* Threads only after daemonizing: fork() keeps just the caller. */
        r = fs_catalog_run(fs);
        if (r == 0)
                r = pool_new(4, 16, &fs->ra_pool);
        if (r == 0 && fs->onprem_fd >= 0)
                r = pool_new(MIN(cpu_count(), 16u), 16, &fs->cmp_pool);
        if (r < 0)
                return r;
        if (fuse_set_signal_handlers(fuse_get_session(f)) != 0)
                return -EIO;
        log_info("serving %s at %s", o->vault, o->mountpoint);
        r = fs_loop_run(fuse_get_session(f), 16);
        if (r == -ECONNABORTED && !(fuse_mount_dev(o->mountpoint, &dev) && dev == fuse_dev)) {
                /* The kernel tore the connection down after an unmount
                 * while a worker was taking a request off /dev/fuse: that
                 * read fails with ECONNABORTED instead of ENODEV (libfuse
                 * prints "reading device" for it). The file system is
                 * gone either way, as the user asked. */
                log_info("%s: unmounted (the kernel closed the connection)", o->mountpoint);
                r = 0;
        }
        if (r != 0)
                r = log_error_errno(r < 0 ? r : -EIO, "%s: the FUSE connection failed", o->mountpoint);
        fuse_remove_signal_handlers(fuse_get_session(f));
        return r;
}

int fs_mount(const struct fs_options *o) {
        struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
        struct fuse *f = NULL;
        struct fs *fs;
        dev_t fuse_dev = 0;
        int r;

        /* Read replies are 1 MiB buffers libfuse allocates per request.
         * Above glibc's mmap threshold each would be fresh pages, faulted
         * in and zeroed on every request; keep them in the heap so they
         * are reused. */
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 128 << 20);

        fs = calloc(1, sizeof *fs);
        if (!fs)
                return -ENOMEM;
        r = fs_setup(fs, o);
        if (r >= 0)
                r = fuse_args_build(o, &args);
        if (r < 0)
                goto out;
        f = fuse_new(&args, &fs_fuse_ops, sizeof fs_fuse_ops, fs);
        if (!f) {
                r = log_error_errno(-EINVAL, "cannot set up the FUSE file system");
                goto out;
        }
        if (fuse_mount(f, o->mountpoint) != 0) {
                r = log_error_errno(-EIO, "%s: mounting failed (is /dev/fuse usable, the directory empty and not mounted already?)",
                                    o->mountpoint);
                fuse_destroy(f);
                goto out;
        }
        if (fuse_mount_dev(o->mountpoint, &fuse_dev))
                raise_readahead(fuse_dev, 4096);
        r = serve(fs, f, fuse_dev);
        fuse_unmount(f);
        fuse_destroy(f);
out:
        fuse_opt_free_args(&args);
        fs_free(fs);
        return r;
}
