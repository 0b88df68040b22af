/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The directory backend: one file per object under the vault directory.
 * Atomic puts are temp file + rename (or link, for exclusive puts, which
 * never replaces). Pack file descriptors are kept in a small cache because
 * block reads hit the same packs again and again.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "backend_i.h"
#include "common.h"

#define FD_CACHE 256

struct fd_slot {
        char *name;
        int fd;
        uint64_t used;
};

struct backend_dir {
        struct backend base;
        char *root;
        int root_fd;
        pthread_mutex_t lock; /* protects fds, tick */
        struct fd_slot fds[FD_CACHE];
        uint64_t tick;
};

#define DIR_B(b) ((struct backend_dir *)(b))

static int path_of(struct backend_dir *d, const char *name, char *buf, size_t len) {
        if (snprintf(buf, len, "%s/%s", d->root, name) >= (int)len)
                return -ENAMETOOLONG;
        return 0;
}

static int root_in_place(struct backend_dir *d);

/* An -ENOENT met while writing into a vault directory that is no longer
 * there is -EIO: the vault is unreachable, not an object missing. */
static int put_error(struct backend_dir *d, int r) {
        if (r == -ENOENT && root_in_place(d) < 0)
                return -EIO;
        return r;
}

/* Create the folders that name (relative to the vault) lies in, inside
 * the vault directory and never the vault directory itself: a vault that
 * is gone (moved away, an unmounted share) stays gone and its writers get
 * -EIO, instead of an empty vault made in its place that shadows the real
 * one when it comes back. Folders are made relative to the directory
 * opened as the vault. */
static int mkdir_in_root(struct backend_dir *d, const char *name) {
        _cleanup_close_ int own = -1;
        char buf[PATH_MAX];
        size_t n = strlen(name);
        int fd = d->root_fd;

        if (n >= sizeof buf)
                return -ENAMETOOLONG;
        if (root_in_place(d) < 0)
                return -EIO;
        if (fd < 0) {
                own = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (own < 0)
                        return errno == ENOENT || errno == ENOTDIR ? -EIO : -errno;
                fd = own;
        }
        memcpy(buf, name, n + 1);
        for (char *p = buf; *p; p++) {
                if (*p != '/' || p == buf)
                        continue;
                *p = 0;
                if (mkdirat(fd, buf, 0755) < 0 && errno != EEXIST)
                        return errno == ENOENT ? -EIO : -errno;
                *p = '/';
        }
        return 0;
}

static int dir_put(struct backend *b, const char *name, const void *data, size_t len, unsigned flags) {
        struct backend_dir *d = DIR_B(b);
        char path[PATH_MAX];
        struct tmpfile t;
        int r;

        r = path_of(d, name, path, sizeof path);
        if (r < 0)
                return r;
        r = mkdir_in_root(d, name);
        if (r < 0)
                return r;
        r = tmpfile_open(&t, path, 0444);
        if (r < 0)
                return put_error(d, r);
        r = write_full(t.fd, data, len);
        if (r < 0) {
                tmpfile_abort(&t);
                return r;
        }
        r = tmpfile_commit(&t, (flags & BACKEND_PUT_EXCLUSIVE ? TMPFILE_EXCLUSIVE : 0) |
                                       (flags & BACKEND_PUT_NOSYNC ? TMPFILE_NOSYNC : 0));
        return put_error(d, r);
}

static int dir_get(struct backend *b, const char *name, char **ret, size_t *ret_len) {
        char path[PATH_MAX];
        int r = path_of(DIR_B(b), name, path, sizeof path);
        if (r < 0)
                return r;
        return read_file_all(path, ret, ret_len);
}

/* Returns a descriptor for name. *ret_own tells whether the caller must
 * close it (the cache was full); cached descriptors stay open for the
 * backend's life, so concurrent preads never race with a close. */
static int dir_fd(struct backend_dir *d, const char *name, bool *ret_own) {
        char path[PATH_MAX];
        struct fd_slot *victim = NULL;
        int fd, r;

        pthread_mutex_lock(&d->lock);
        for (unsigned i = 0; i < FD_CACHE; i++) {
                struct fd_slot *s = &d->fds[i];
                if (s->name && strcmp(s->name, name) == 0) {
                        s->used = ++d->tick;
                        fd = s->fd;
                        pthread_mutex_unlock(&d->lock);
                        *ret_own = false;
                        return fd;
                }
                if (!s->name && !victim)
                        victim = s;
        }
        pthread_mutex_unlock(&d->lock);

        r = path_of(d, name, path, sizeof path);
        if (r < 0)
                return r;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;

        *ret_own = true;
        pthread_mutex_lock(&d->lock);
        if (victim && !victim->name) {
                victim->name = strdup(name);
                if (victim->name) {
                        victim->fd = fd;
                        victim->used = ++d->tick;
                        *ret_own = false;
                }
        }
        pthread_mutex_unlock(&d->lock);
        return fd;
}

static int dir_get_range(struct backend *b, const char *name, uint64_t off, void *buf, size_t len) {
        struct backend_dir *d = DIR_B(b);
        bool own;
        int fd = dir_fd(d, name, &own), r;

        if (fd < 0)
                return fd;
        r = pread_full(fd, buf, len, off);
        if (own)
                close(fd);
        return r == -EIO ? -EBADMSG : r;
}

struct walk {
        struct backend_dir *d;
        const char *prefix;
        store_list_cb cb;
        void *userdata;
};

static int walk_dir(struct walk *w, const char *rel) {
        char path[PATH_MAX];
        _cleanup_(closedirp) DIR *dir = NULL;
        struct dirent *de;
        int r;

        r = path_of(w->d, rel, path, sizeof path);
        if (r < 0)
                return r;
        dir = opendir(path);
        if (!dir)
                return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
        while ((de = readdir(dir))) {
                char child[PATH_MAX];
                struct stat st;

                if (de->d_name[0] == '.')
                        continue;
                if (snprintf(child, sizeof child, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= (int)sizeof child)
                        continue;
                if (fstatat(dirfd(dir), de->d_name, &st, 0) < 0) {
                        if (errno == ENOENT)
                                continue; /* removed since readdir */
                        return -errno;
                }
                if (S_ISDIR(st.st_mode)) {
                        r = walk_dir(w, child);
                        if (r < 0)
                                return r;
                } else if (S_ISREG(st.st_mode) && strncmp(child, w->prefix, strlen(w->prefix)) == 0) {
                        r = w->cb(w->userdata, child, (uint64_t)st.st_size);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* 0 when the vault directory is still where it was opened, -ENOENT when
 * it is gone (removed, moved away, replaced by another directory). */
static int root_in_place(struct backend_dir *d) {
        struct stat a, b;

        if (d->root_fd < 0)
                return 0;
        if (stat(d->root, &a) < 0)
                return errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;
        if (fstat(d->root_fd, &b) < 0)
                return -errno;
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino ? 0 : -ENOENT;
}

static int dir_list(struct backend *b, const char *prefix, store_list_cb cb, void *userdata) {
        struct walk w = { DIR_B(b), prefix, cb, userdata };
        char start[PATH_MAX];
        const char *slash = strrchr(prefix, '/');
        size_t n = slash ? (size_t)(slash - prefix) : 0;
        int r;

        /* Walk only the folder the prefix names. A missing folder lists
         * nothing, but only in a vault that is still there: a listing of a
         * vault that vanished during the walk is an error, not a shorter
         * list. */
        memcpy(start, prefix, n);
        start[n] = 0;
        r = walk_dir(&w, start);
        if (r >= 0)
                r = root_in_place(DIR_B(b));
        return r;
}

static int dir_del(struct backend *b, const char *name) {
        char path[PATH_MAX];
        int r = path_of(DIR_B(b), name, path, sizeof path);
        if (r < 0)
                return r;
        if (unlink(path) < 0)
                return -errno;
        return 0;
}

static int dir_sync(struct backend *b) {
        if (syncfs(DIR_B(b)->root_fd) < 0)
                return -errno;
        return 0;
}

static int dir_local_path(struct backend *b, const char *name, char **ret) {
        char path[PATH_MAX];
        int r = path_of(DIR_B(b), name, path, sizeof path);
        if (r < 0)
                return r;
        *ret = strdup(path);
        return *ret ? 0 : -ENOMEM;
}

static int dir_probe(struct backend *b, bool *ret_exists, bool *ret_empty) {
        struct backend_dir *d = DIR_B(b);
        _cleanup_(closedirp) DIR *dir = opendir(d->root);
        struct dirent *de;

        *ret_exists = *ret_empty = false;
        if (!dir) {
                if (errno == ENOENT)
                        return 0;
                return -errno;
        }
        *ret_exists = true;
        *ret_empty = true;
        while ((de = readdir(dir)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        *ret_empty = false;
        return 0;
}

static int dir_create(struct backend *b) {
        struct backend_dir *d = DIR_B(b);
        int r = mkdir_p(d->root, 0755);
        if (r < 0)
                return r;
        if (d->root_fd < 0) {
                d->root_fd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (d->root_fd < 0)
                        return -errno;
        }
        return 0;
}

static void dir_free(struct backend *b) {
        struct backend_dir *d = DIR_B(b);
        if (!d)
                return;
        for (unsigned i = 0; i < FD_CACHE; i++)
                if (d->fds[i].name) {
                        close(d->fds[i].fd);
                        free(d->fds[i].name);
                }
        if (d->root_fd >= 0)
                close(d->root_fd);
        pthread_mutex_destroy(&d->lock);
        free(d->root);
        free(d);
}

/* A temporary file's mtime is the clock of the file system holding the
 * vault (the server's, for a network file system). */
static int dir_clock(struct backend *b, time_t *ret) {
        struct backend_dir *d = DIR_B(b);
        char path[PATH_MAX];
        struct tmpfile t;
        struct stat st;
        int r;

        r = path_of(d, ".clock", path, sizeof path);
        if (r < 0)
                return r;
        r = tmpfile_open(&t, path, 0600);
        if (r < 0)
                return put_error(d, r);
        r = fstat(t.fd, &st) < 0 ? -errno : 0;
        tmpfile_abort(&t);
        if (r == 0)
                *ret = st.st_mtim.tv_sec;
        return r;
}

static const struct backend_ops dir_ops = {
        .name = "dir",
        .put = dir_put,
        .get = dir_get,
        .get_range = dir_get_range,
        .list = dir_list,
        .del = dir_del,
        .sync = dir_sync,
        .local_path = dir_local_path,
        .probe = dir_probe,
        .create = dir_create,
        .clock = dir_clock,
        .free = dir_free,
};

int backend_dir_open(const char *path, struct backend **ret) {
        struct backend_dir *d = calloc(1, sizeof *d);
        size_t n;

        if (!d)
                return -ENOMEM;
        d->base.ops = &dir_ops;
        d->root = strdup(path);
        if (!d->root) {
                free(d);
                return -ENOMEM;
        }
        n = strlen(d->root);
        while (n > 1 && d->root[n - 1] == '/')
                d->root[--n] = 0;
        pthread_mutex_init(&d->lock, NULL);
        d->root_fd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        *ret = &d->base;
        return 0;
}

int backend_open(const char *url, const struct store_options *o, struct backend **ret) {
        if (strncmp(url, "azure://", 8) == 0)
                return backend_azure_open(url, o, ret);
        if (strncmp(url, "file://", 7) == 0)
                url += 7;
        return backend_dir_open(url, ret);
}

void backend_get_ranges(struct backend *b, struct backend_range *v, size_t n) {
        if (b->ops->get_ranges) {
                b->ops->get_ranges(b, v, n);
                return;
        }
        for (size_t i = 0; i < n; i++)
                v[i].result = b->ops->get_range(b, v[i].name, v[i].off, v[i].buf, v[i].len);
}

int backend_del_many(struct backend *b, const char *const *names, size_t n) {
        int err = 0;
        if (b->ops->del_many)
                return n ? b->ops->del_many(b, names, n) : 0;
        for (size_t i = 0; i < n; i++) {
                int r = b->ops->del(b, names[i]);
                if (r < 0 && r != -ENOENT && err == 0)
                        err = r;
        }
        return err;
}
