/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <libmount.h>

#include "common.h"

int parse_size(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;
        uint64_t mul = 1;

        if (!s || !isdigit((unsigned char)*s))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        switch (toupper((unsigned char)*end)) {
        case 0: break;
        case 'B': break;
        case 'K': mul = 1ULL << 10; end++; break;
        case 'M': mul = 1ULL << 20; end++; break;
        case 'G': mul = 1ULL << 30; end++; break;
        case 'T': mul = 1ULL << 40; end++; break;
        default: return -EINVAL;
        }
        if (mul > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0 || strcmp(end, "ib") == 0))
                end += strlen(end);
        else if (mul == 1 && (*end == 'B' || *end == 'b'))
                end++;
        if (*end)
                return -EINVAL;
        if (v > UINT64_MAX / mul)
                return -ERANGE;
        *ret = v * mul;
        return 0;
}

const char *format_bytes(uint64_t b, char *buf, size_t len) {
        static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
        double v = (double)b;
        unsigned i = 0;

        while (v >= 1024 && i + 1 < ELEMENTSOF(u)) {
                v /= 1024;
                i++;
        }
        if (i == 0)
                snprintf(buf, len, "%llu B", (unsigned long long)b);
        else
                snprintf(buf, len, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, u[i]);
        return buf;
}

int point_id_parse(const char *s, time_t *ret) {
        struct tm tm = { 0 };
        char check[POINT_ID_LEN + 1];
        time_t t;

        if (!s || strlen(s) != POINT_ID_LEN || s[8] != 'T' || s[15] != 'Z')
                return -EINVAL;
        for (int i = 0; i < 15; i++)
                if (i != 8 && !isdigit((unsigned char)s[i]))
                        return -EINVAL;
        if (sscanf(s, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
                return -EINVAL;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        t = timegm(&tm);
        if (t == (time_t)-1)
                return -EINVAL;
        /* Reject normalised dates such as month 13 or second 61. */
        point_id_format(t, check);
        if (strcmp(check, s) != 0)
                return -EINVAL;
        *ret = t;
        return 0;
}

void point_id_format(time_t t, char buf[static POINT_ID_LEN + 1]) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, POINT_ID_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

void time_format_iso(time_t t, char buf[static 21]) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

bool name_is_valid(const char *s) {
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
                        return false;
        return true;
}

void hex_encode(const void *p, size_t len, char *out) {
        static const char d[] = "0123456789abcdef";
        const uint8_t *b = p;
        for (size_t i = 0; i < len; i++) {
                out[2 * i] = d[b[i] >> 4];
                out[2 * i + 1] = d[b[i] & 15];
        }
        out[2 * len] = 0;
}

static int unhex(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
}

int hex_decode(const char *s, void *out, size_t len) {
        uint8_t *b = out;
        if (strlen(s) != 2 * len)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                int hi = unhex(s[2 * i]), lo = unhex(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                b[i] = (uint8_t)(hi << 4 | lo);
        }
        return 0;
}

double now_monotonic(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool mem_is_zero(const void *p, size_t len) {
        const uint8_t *b = p;
        size_t i = 0;

        /* Check the head, then compare the buffer with itself shifted:
         * memcmp is vectorised and far faster than a byte loop. */
        for (; i < len && i < 16; i++)
                if (b[i])
                        return false;
        if (len <= 16)
                return true;
        return memcmp(b, b + 16, len - 16) == 0;
}

int pread_full(int fd, void *buf, size_t len, uint64_t off) {
        uint8_t *p = buf;
        while (len > 0) {
                ssize_t n = pread(fd, p, len, (off_t)off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t)n;
                off += (uint64_t)n;
        }
        return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off) {
        const uint8_t *p = buf;
        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, (off_t)off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
                off += (uint64_t)n;
        }
        return 0;
}

int write_full(int fd, const void *buf, size_t len) {
        const uint8_t *p = buf;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

static int fsync_parent(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        _cleanup_close_ int fd = -1;
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash == dir)
                slash[1] = 0;
        else if (slash)
                *slash = 0;
        else
                strcpy(dir, ".");
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                return -errno;
        return 0;
}

int tmpfile_open(struct tmpfile *t, const char *path, mode_t mode) {
        const char *slash = strrchr(path, '/');
        int dlen = slash ? (int)(slash - path + 1) : 0;
        uint64_t rnd;

        t->fd = -1;
        if (snprintf(t->path, sizeof t->path, "%s", path) >= (int)sizeof t->path)
                return -ENAMETOOLONG;
        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
                rnd = (uint64_t)random() << 32 ^ (uint64_t)getpid();
        /* A name starting with '.': listings (a vault's, a state
         * directory's) skip it. */
        if (snprintf(t->tmp, sizeof t->tmp, "%.*s.tmp-%016llx", dlen, path, (unsigned long long)rnd) >=
            (int)sizeof t->tmp)
                return -ENAMETOOLONG;
        t->fd = open(t->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        return t->fd < 0 ? -errno : 0;
}

int tmpfile_commit(struct tmpfile *t, unsigned flags) {
        int r = 0;

        if (!(flags & TMPFILE_NOSYNC) && fdatasync(t->fd) < 0)
                r = -errno;
        if (r >= 0 && (flags & TMPFILE_NOSYNC))
                /* Durability deferred to the caller: start writeback now,
                 * without waiting, so the later sync finds little to do. */
                (void)sync_file_range(t->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        close(t->fd);
        t->fd = -1;
        if (r >= 0 && (flags & TMPFILE_EXCLUSIVE)) {
                /* link() never replaces an existing name. */
                if (link(t->tmp, t->path) < 0)
                        r = -errno;
                unlink(t->tmp);
        } else if (r >= 0 && rename(t->tmp, t->path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(t->tmp);
                return r;
        }
        return flags & TMPFILE_NOSYNC ? 0 : fsync_parent(t->path);
}

void tmpfile_abort(struct tmpfile *t) {
        if (t->fd >= 0) {
                close(t->fd);
                t->fd = -1;
                unlink(t->tmp);
        }
}

int write_file_atomic(const char *path, const void *data, size_t len, bool exclusive) {
        return write_file_atomic_mode(path, data, len, exclusive, 0644);
}

int write_file_atomic_mode(const char *path, const void *data, size_t len, bool exclusive, mode_t mode) {
        struct tmpfile t;
        int r = tmpfile_open(&t, path, mode);

        if (r >= 0)
                r = write_full(t.fd, data, len);
        if (r < 0) {
                tmpfile_abort(&t);
                return r;
        }
        return tmpfile_commit(&t, exclusive ? TMPFILE_EXCLUSIVE : 0);
}

int read_file_all(const char *path, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;
        struct stat st;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        cap = (size_t)st.st_size + 1;
        for (;;) {
                ssize_t n;
                if (len + 1 >= cap) {
                        char *nb = realloc(buf, cap * 2 + 64);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        cap = cap * 2 + 64;
                } else if (!buf) {
                        buf = malloc(cap);
                        if (!buf)
                                return -ENOMEM;
                }
                n = read(fd, buf + len, cap - len - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (!buf && !(buf = malloc(1)))
                return -ENOMEM;
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int mkdir_p(const char *path, mode_t mode) {
        char buf[PATH_MAX];
        size_t n = strlen(path);

        if (n >= sizeof buf)
                return -ENAMETOOLONG;
        memcpy(buf, path, n + 1);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

bool fd_map_holes(int fd, uint64_t start, uint64_t end, uint32_t bs, uint8_t *hole, uint64_t *hole_until) {
        size_t n = (size_t)DIV_ROUND_UP(end - start, bs);
        uint64_t until = hole_until ? *hole_until : 0;
        off_t ds, de;

        memset(hole, 1, n);
        if (start >= until) {
                ds = lseek(fd, (off_t)start, SEEK_DATA);
                until = ds < 0 ? (errno == ENXIO ? UINT64_MAX : start) : (uint64_t)ds;
                if (hole_until)
                        *hole_until = until;
        }
        if (until >= end)
                return true;
        for (uint64_t off = MAX(start, until); off < end;) {
                ds = lseek(fd, (off_t)off, SEEK_DATA);
                if (ds < 0 && errno == ENXIO)
                        break;
                if (ds < 0) { /* no SEEK_DATA here: all data */
                        memset(hole, 0, n);
                        break;
                }
                if ((uint64_t)ds >= end)
                        break;
                de = lseek(fd, ds, SEEK_HOLE);
                if (de < 0 || (uint64_t)de > end)
                        de = (off_t)end;
                for (uint64_t i = ((uint64_t)ds - start) / bs; i < DIV_ROUND_UP((uint64_t)de - start, bs); i++)
                        hole[i] = 0;
                off = (uint64_t)de;
        }
        return false;
}

#define HUGE_PAGE (2u << 20)

void *alloc_large(size_t len) {
        void *p;

        if (len >= HUGE_PAGE) {
                if (posix_memalign(&p, HUGE_PAGE, len) != 0)
                        return NULL;
                (void)madvise(p, len / HUGE_PAGE * HUGE_PAGE, MADV_HUGEPAGE); /* advice only */
                return p;
        }
        return posix_memalign(&p, 4096, len) == 0 ? p : NULL;
}

int array_reserve(void *v, size_t *cap, size_t need, size_t size) {
        void *old, *nv;
        size_t ncap;

        if (need <= *cap)
                return 0;
        ncap = *cap ? *cap : 16;
        while (ncap < need)
                ncap *= 2;
        memcpy(&old, v, sizeof old); /* v is a T **: no aliasing through void ** */
        if (ncap > SIZE_MAX / size || !(nv = realloc(old, ncap * size)))
                return -ENOMEM;
        memcpy(v, &nv, sizeof nv);
        *cap = ncap;
        return 0;
}

bool mountinfo_each(bool (*fn)(const struct mount_info *m, void *arg), void *arg) {
        struct libmnt_table *tb = mnt_new_table();
        struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
        struct libmnt_fs *m;
        bool found = false;

        /* libmount (util-linux) parses the table and unescapes its paths. */
        if (!tb || !it || mnt_table_parse_file(tb, "/proc/self/mountinfo") != 0)
                goto out;
        while (!found && mnt_table_next_fs(tb, it, &m) == 0) {
                const char *target = mnt_fs_get_target(m), *type = mnt_fs_get_fstype(m), *src = mnt_fs_get_source(m);
                if (!target || !type)
                        continue;
                found = fn(&(struct mount_info){ .dev = mnt_fs_get_devno(m), .mnt = target, .fstype = type,
                                                 .src = src ? src : "" },
                           arg);
        }
out:
        mnt_free_iter(it);
        mnt_unref_table(tb);
        return found;
}

/* $OVERRIDE, else $XDG/SUB, else ~/HOME_REL/SUB, else FALLBACK. */
static void user_dir(const char *override, const char *xdg, const char *home_rel, const char *sub,
                     const char *fallback, char *buf, size_t len) {
        const char *e = getenv(override), *x = getenv(xdg), *h = getenv("HOME");
        if (e && *e)
                snprintf(buf, len, "%s", e);
        else if (x && *x)
                snprintf(buf, len, "%s/%s", x, sub);
        else if (h && *h)
                snprintf(buf, len, "%s/%s/%s", h, home_rel, sub);
        else
                snprintf(buf, len, "%s", fallback);
}

void rpfs_cache_dir(char *buf, size_t len) {
        user_dir("RPFS_CACHE_DIR", "XDG_CACHE_HOME", ".cache", "rpfs", "/var/cache/rpfs", buf, len);
}

void rpfs_state_dir(char *buf, size_t len) {
        user_dir("RPFS_STATE_DIR", "XDG_STATE_HOME", ".local/state", "rpfs/failback", "/var/lib/rpfs/failback", buf,
                 len);
}
