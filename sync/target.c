/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Failback targets: a raw image file or a block device, checked before
 * anything is written to it. A block device is opened O_EXCL (the kernel
 * refuses it while mounted or held, and nobody can mount it while we
 * write); a file is refused while a loop device is attached to it or
 * another program holds a lock on it (QEMU locks the images it runs), and
 * is locked (an OFD write lock) while rpfs writes it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>

#include "failback_i.h"

int fb_target_resolve(struct fb_target *t) {
        char dir[PATH_MAX], base[PATH_MAX], rdir[PATH_MAX];

        t->fd = t->dfd = -1;
        if (realpath(t->path, t->real)) {
                t->exists = true;
                return 0;
        }
        if (errno != ENOENT)
                return log_error_errno(-errno, "target %s", t->path);
        /* Missing: the path it would have, from its (existing) directory. */
        snprintf(dir, sizeof dir, "%s", t->path);
        snprintf(base, sizeof base, "%s", t->path);
        if (!realpath(dirname(dir), rdir))
                return log_error_errno(-errno, "target %s: its directory", t->path);
        if (snprintf(t->real, sizeof t->real, "%s/%s", strcmp(rdir, "/") == 0 ? "" : rdir, basename(base)) >=
            (int)sizeof t->real)
                return -ENAMETOOLONG;
        t->exists = false;
        return 0;
}

struct mount_query {
        dev_t rdev;
        const char *path;
        char *buf;
        size_t len;
};

static bool mount_of(const struct mount_info *m, void *arg) {
        struct mount_query *q = arg;
        char real[PATH_MAX];

        if (m->dev != q->rdev && !(m->src[0] == '/' && realpath(m->src, real) && strcmp(real, q->path) == 0))
                return false;
        snprintf(q->buf, q->len, "%s", m->mnt);
        return true;
}

/* Where the block device rdev (or path) is mounted, into buf; false if not. */
static bool find_mount(dev_t rdev, const char *path, char *buf, size_t len) {
        return mountinfo_each(mount_of, &(struct mount_query){ .rdev = rdev, .path = path, .buf = buf, .len = len });
}

/* Name of a holder of the block device (device mapper, md, ...), if any. */
static bool find_holder(dev_t rdev, char *buf, size_t len) {
        char path[96];
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;

        snprintf(path, sizeof path, "/sys/dev/block/%u:%u/holders", major(rdev), minor(rdev));
        d = opendir(path);
        if (!d)
                return false;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.') {
                        snprintf(buf, len, "%s", de->d_name);
                        return true;
                }
        return false;
}

/* The loop device backed by the file st, if any. */
static bool find_loop(const struct stat *st, char *buf, size_t len) {
        _cleanup_(closedirp) DIR *d = opendir("/sys/block");
        struct dirent *de;

        if (!d)
                return false;
        while ((de = readdir(d))) {
                char path[PATH_MAX];
                _cleanup_free_ char *bf = NULL;
                struct stat bst;
                if (strncmp(de->d_name, "loop", 4) != 0)
                        continue;
                snprintf(path, sizeof path, "/sys/block/%s/loop/backing_file", de->d_name);
                if (read_file_all(path, &bf, NULL) < 0)
                        continue;
                bf[strcspn(bf, "\n")] = 0;
                if (stat(bf, &bst) == 0 && bst.st_dev == st->st_dev && bst.st_ino == st->st_ino) {
                        snprintf(buf, len, "/dev/%s", de->d_name);
                        return true;
                }
        }
        return false;
}

static int lock_file(struct fb_target *t) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };

        if (fcntl(t->fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
                log_error("target %s is locked by another program (a running VM?): stop it first", t->path);
                return -EBUSY;
        }
        fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
        if (fcntl(t->fd, F_OFD_SETLK, &fl) < 0) {
                if (errno == EAGAIN || errno == EACCES) {
                        log_error("target %s is locked by another program (a running VM?): stop it first",
                                  t->path);
                        return -EBUSY;
                }
                /* File systems without locks: go on. */
                log_debug("target %s: cannot lock: %s", t->path, strerror(errno));
        }
        return 0;
}

static int read_only(const struct fb_target *t, int e) {
        log_error("target %s is read-only (%s)", t->path, strerror(e));
        return -EROFS;
}

static int open_blockdev(struct fb_target *t) {
        char where[PATH_MAX];
        int ro = 0;

        if (find_mount(t->st.st_rdev, t->real, where, sizeof where)) {
                log_error("target %s is mounted on %s: unmount it first", t->path, where);
                return -EBUSY;
        }
        if (find_holder(t->st.st_rdev, where, sizeof where)) {
                log_error("target %s is in use by %s: release it first", t->path, where);
                return -EBUSY;
        }
        {
                _cleanup_close_ int fd = open(t->real, O_RDONLY | O_CLOEXEC);
                if (fd >= 0 && ioctl(fd, BLKROGET, &ro) == 0 && ro)
                        return read_only(t, EROFS);
        }
        t->fd = open(t->real, O_RDWR | O_EXCL | O_CLOEXEC);
        if (t->fd < 0) {
                if (errno == EBUSY) {
                        log_error("target %s is in use (mounted, or opened exclusively by another program)",
                                  t->path);
                        return -EBUSY;
                }
                if (errno == EROFS || errno == EACCES || errno == EPERM)
                        return read_only(t, errno);
                return log_error_errno(-errno, "target %s", t->path);
        }
        if (ioctl(t->fd, BLKGETSIZE64, &t->size) < 0)
                return log_error_errno(-errno, "target %s: cannot read its size", t->path);
        return 0;
}

static int open_file(struct fb_target *t) {
        char loop[300];

        if (find_loop(&t->st, loop, sizeof loop)) {
                log_error("target %s is attached to %s: detach it first (losetup -d %s)", t->path, loop, loop);
                return -EBUSY;
        }
        t->fd = open(t->real, O_RDWR | O_CLOEXEC);
        if (t->fd < 0) {
                if (errno == EROFS || errno == EACCES || errno == EPERM || errno == ETXTBSY)
                        return read_only(t, errno);
                return log_error_errno(-errno, "target %s", t->path);
        }
        t->size = (uint64_t)t->st.st_size;
        return lock_file(t);
}

int fb_target_open(struct fb_target *t, uint64_t disk_size) {
        char a[24], b[24];
        int r;

        if (!t->exists) {
                log_error("target %s does not exist (--create makes a new sparse file there)", t->path);
                return -ENOENT;
        }
        if (stat(t->real, &t->st) < 0)
                return log_error_errno(-errno, "target %s", t->path);
        if (S_ISDIR(t->st.st_mode)) {
                log_error("target %s is a directory, not a disk image or block device", t->path);
                return -EINVAL;
        }
        if (!S_ISREG(t->st.st_mode) && !S_ISBLK(t->st.st_mode)) {
                log_error("target %s is neither a regular file nor a block device", t->path);
                return -EINVAL;
        }
        t->blockdev = S_ISBLK(t->st.st_mode);
        r = t->blockdev ? open_blockdev(t) : open_file(t);
        if (r < 0) {
                fb_target_close(t);
                return r;
        }
        if (t->size < disk_size) {
                log_error("target %s is smaller than disk %s: %s (%llu bytes) < %s (%llu bytes)", t->path, t->disk,
                          format_bytes(t->size, a, sizeof a), (unsigned long long)t->size,
                          format_bytes(disk_size, b, sizeof b), (unsigned long long)disk_size);
                fb_target_close(t);
                return -EFBIG;
        }
        return 0;
}

int fb_target_create(struct fb_target *t, uint64_t disk_size) {
        int r;

        t->fd = open(t->real, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (t->fd < 0) {
                if (errno == EROFS || errno == EACCES || errno == EPERM)
                        return read_only(t, errno);
                return log_error_errno(-errno, "target %s: cannot create", t->path);
        }
        r = lock_file(t);
        if (r < 0)
                goto fail;
        if (ftruncate(t->fd, (off_t)disk_size) < 0) {
                r = log_error_errno(-errno, "target %s: cannot size it", t->path);
                goto fail;
        }
        if (fstat(t->fd, &t->st) < 0) {
                r = -errno;
                goto fail;
        }
        t->exists = true;
        t->blockdev = false;
        t->size = disk_size;
        return 0;
fail:
        fb_target_close(t);
        return r;
}

void fb_target_close(struct fb_target *t) {
        if (t->dfd >= 0)
                close(t->dfd);
        if (t->fd >= 0)
                close(t->fd);
        t->fd = t->dfd = -1;
}

/* Large writes go around the page cache: with a sync before the journal
 * records them anyway, copying them into the cache first only costs (and
 * evicts what is there). Reads stay buffered. */
void fb_target_open_direct(struct fb_target *t) {
        int lbs = 512;

        if (t->dfd >= 0 || t->fd < 0)
                return;
        if (t->blockdev && (ioctl(t->fd, BLKSSZGET, &lbs) < 0 || lbs > 4096))
                return;
        /* The device is claimed through t->fd already: no O_EXCL here. */
        t->dfd = open(t->real, O_RDWR | O_DIRECT | O_CLOEXEC);
        if (t->dfd >= 0) {
                struct stat a, b;
                if (fstat(t->fd, &a) < 0 || fstat(t->dfd, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev ||
                    a.st_rdev != b.st_rdev) {
                        close(t->dfd);
                        t->dfd = -1;
                }
        }
}

int fb_target_sync(struct fb_target *t, bool final) {
        if ((final || t->blockdev ? fsync(t->fd) : fdatasync(t->fd)) < 0)
                return -errno;
        return 0;
}
