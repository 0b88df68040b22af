/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fs/ without a mount, on a real directory vault that sync_replicate wrote:
 * - the catalog's answers to paths (fs_resolve): the root, .rpfs, a VM, its
 *   points, a point, its files (raw, vhd, changes, point.json), latest and
 *   latest-app, and the names it must refuse (unknown VM, point or disk,
 *   a partition of a disk with no table, p01, too deep, too long);
 * - reads planned block by block (fs_read_disk): unaligned starts and ends,
 *   a read of one byte, of a whole block, across every block, past the end;
 *   zero blocks never fetched, a block repeated within one read fetched
 *   once, the second read of a range served by the cache; every byte
 *   compared with the source image. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "fs_i.h"
#include "sync.h"
#include "unit.h"

#define BS 4096u
#define NBLK 40
#define SIZE ((uint64_t)NBLK * BS - 1000) /* a partial last block */

static uint8_t img[NBLK * BS];

/* Blocks 0-9 data, 10-14 zero, 15 = block 3 again, 16-39 data (the last
 * one partial). */
static void make_image(const char *path) {
        int fd;

        memset(img, 0, sizeof img);
        for (unsigned b = 0; b < NBLK; b++)
                if (b < 10 || b >= 16)
                        unit_fill(img + (size_t)b * BS, BS, b);
        memcpy(img + 15 * BS, img + 3 * BS, BS);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK(fd >= 0);
        CHECK(write(fd, img, SIZE) == (ssize_t)SIZE);
        close(fd);
}

static void replicate(const char *vault, const char *image, time_t t, bool app, char id[static POINT_ID_LEN + 1]) {
        struct sync_disk_spec disk = { .name = "disk0", .path = image };
        struct sync_replicate_opts o = { .vm = "web01", .disks = &disk, .n_disks = 1, .app = app, .time = t, .threads = 2 };
        struct sync_replicate_result res;
        struct store *s;

        CHECK(store_open(vault, &s) == 0);
        CHECK(sync_replicate(s, &o, &res) == 0);
        memcpy(id, res.id, POINT_ID_LEN + 1);
        store_free(s);
}

static int resolve(struct fs *fs, const char *path, struct fs_node *n) {
        int r = fs_resolve(fs, path, n);
        if (r == 0)
                fs_point_unref(n->pt);
        return r;
}

static void test_paths(struct fs *fs, const char *crash, const char *app) {
        char p[600];
        struct fs_node n;

        CHECK(resolve(fs, "/", &n) == 0 && n.t == N_ROOT);
        CHECK(resolve(fs, "/.rpfs", &n) == 0 && n.t == N_META);
        CHECK(resolve(fs, "/.rpfs/stats", &n) == 0 && n.t == N_STATS);
        CHECK(resolve(fs, "/.rpfs/other", &n) == -ENOENT);
        CHECK(resolve(fs, "/web01", &n) == 0 && n.t == N_VM && strcmp(n.vm, "web01") == 0);
        CHECK(resolve(fs, "/web02", &n) == -ENOENT);
        CHECK(resolve(fs, "/web01/points", &n) == 0 && n.t == N_POINTS);
        CHECK(resolve(fs, "/web01/other", &n) == -ENOENT);
        snprintf(p, sizeof p, "/web01/points/%s", crash);
        CHECK(resolve(fs, p, &n) == 0 && n.t == N_POINT && n.pt);
        snprintf(p, sizeof p, "/web01/points/%s/point.json", crash);
        CHECK(resolve(fs, p, &n) == 0 && n.t == N_JSON);
        snprintf(p, sizeof p, "/web01/points/%s/disk0.raw", crash);
        CHECK(resolve(fs, p, &n) == 0 && n.t == N_RAW && n.disk == 0);
        snprintf(p, sizeof p, "/web01/points/%s/disk0.vhd", crash);
        CHECK(resolve(fs, p, &n) == 0 && n.t == N_VHD);
        snprintf(p, sizeof p, "/web01/points/%s/disk0.changes", crash);
        CHECK(resolve(fs, p, &n) == 0 && n.t == N_CHANGES);
        /* no partition table on this disk; p01 and p0 are never names */
        snprintf(p, sizeof p, "/web01/points/%s/disk0.p1.raw", crash);
        CHECK(resolve(fs, p, &n) == -ENOENT);
        snprintf(p, sizeof p, "/web01/points/%s/disk0.p01.raw", crash);
        CHECK(resolve(fs, p, &n) == -ENOENT);
        snprintf(p, sizeof p, "/web01/points/%s/disk0.p0.raw", crash);
        CHECK(resolve(fs, p, &n) == -ENOENT);
        snprintf(p, sizeof p, "/web01/points/%s/disk1.raw", crash);
        CHECK(resolve(fs, p, &n) == -ENOENT);
        snprintf(p, sizeof p, "/web01/points/%s/disk0.raw/x", crash);
        CHECK(resolve(fs, p, &n) == -ENOENT);
        CHECK(resolve(fs, "/web01/points/20200101T000000Z", &n) == -ENOENT);
        CHECK(resolve(fs, "/a/b/c/d/e/f/g", &n) == -ENOENT);
        memset(p, 'a', sizeof p - 1);
        p[0] = '/';
        p[sizeof p - 1] = 0;
        CHECK(resolve(fs, p, &n) == -ENAMETOOLONG);
        /* latest: the newest point; latest-app: the newest app-consistent */
        CHECK(fs_resolve(fs, "/web01/latest", &n) == 0 && n.t == N_LATEST && n.pt &&
              strcmp(n.pt->p->id, crash) == 0);
        fs_point_unref(n.pt);
        CHECK(fs_resolve(fs, "/web01/latest-app", &n) == 0 && n.t == N_LATEST_APP && n.pt &&
              strcmp(n.pt->p->id, app) == 0);
        fs_point_unref(n.pt);
}

static uint64_t vault_bytes(struct fs *fs) { return atomic_load(&fs->st.bytes_vault); }
static uint64_t cache_bytes(struct fs *fs) { return atomic_load(&fs->st.bytes_cache); }
static uint64_t zero_bytes(struct fs *fs) { return atomic_load(&fs->st.bytes_zero); }

/* Read [off, off + len) through fs_read_disk and compare with the image. */
static int read_check(struct fs *fs, struct fs_file *f, uint64_t off, size_t len) {
        static uint8_t buf[NBLK * BS + BS];
        uint64_t want = off >= SIZE ? 0 : MIN((uint64_t)len, SIZE - off);
        int r = fs_read_disk(fs, f, (char *)buf, len, off);

        CHECK(r == (int)want);
        if (r > 0)
                CHECK(memcmp(buf, img + off, (size_t)r) == 0);
        return r;
}

static void test_reads(struct fs *fs, const char *id) {
        char p[128];
        struct fs_node n;
        struct fs_file f = { 0 };
        uint64_t v0, c0, z0;

        snprintf(p, sizeof p, "/web01/points/%s/disk0.raw", id);
        CHECK(fs_resolve(fs, p, &n) == 0 && n.pt);
        f.kind = FK_RAW;
        f.pt = n.pt;
        f.d = &n.pt->p->disks[0];
        pthread_mutex_init(&f.lock, NULL);
        CHECK(f.d->size == SIZE);

        /* zero blocks only: nothing from the vault */
        v0 = vault_bytes(fs);
        z0 = zero_bytes(fs);
        read_check(fs, &f, 10 * BS + 17, 4 * BS);
        CHECK(vault_bytes(fs) == v0);
        CHECK(zero_bytes(fs) - z0 == 4 * BS);

        /* blocks 2-15 in one read, on a cold cache: 3 and 15 are the same
         * block, fetched once (15 waits for 3's fetch, then takes it from
         * the cache); 10-14 are zeros */
        v0 = vault_bytes(fs);
        c0 = cache_bytes(fs);
        read_check(fs, &f, 2 * BS, 14 * BS);
        CHECK(vault_bytes(fs) - v0 == 8 * BS);
        CHECK(cache_bytes(fs) - c0 == BS);

        /* one byte; a whole block; unaligned across blocks 1-4 (1 from the
         * vault, 2-4 from the cache) */
        read_check(fs, &f, 5, 1);
        read_check(fs, &f, 7 * BS, BS);
        v0 = vault_bytes(fs);
        read_check(fs, &f, BS + 100, 3 * BS + 5);
        CHECK(vault_bytes(fs) - v0 == BS - 100);

        /* the same range again: all from the cache */
        v0 = vault_bytes(fs);
        read_check(fs, &f, 2 * BS, 14 * BS);
        CHECK(vault_bytes(fs) == v0);

        /* the whole disk, the partial last block, past the end */
        read_check(fs, &f, 0, NBLK * BS);
        read_check(fs, &f, SIZE - 10, 100);
        read_check(fs, &f, SIZE, 10);
        read_check(fs, &f, SIZE + BS, 10);
        CHECK(fs_read_disk(fs, &f, (char *)img, 0, 0) == 0);

        pthread_mutex_destroy(&f.lock);
        fs_point_unref(n.pt);
}

int main(void) {
        const char *dir = unit_tmpdir("fs");
        char vault[128], image[128], cache[128], crash[POINT_ID_LEN + 1], app[POINT_ID_LEN + 1];
        struct fs_options o = { .timeout = 5, .cache_size = 64u << 20 };
        struct fs *fs = calloc(1, sizeof *fs);

        snprintf(vault, sizeof vault, "%s/vault", dir);
        snprintf(image, sizeof image, "%s/disk0.raw", dir);
        snprintf(cache, sizeof cache, "%s/cache", dir);
        make_image(image);
        CHECK(store_init(vault, BS, 1) == 0);
        replicate(vault, image, 1795000000, true, app);
        replicate(vault, image, 1795003600, false, crash);

        o.vault = vault;
        o.cache_dir = cache;
        CHECK(fs && fs_setup(fs, &o) == 0);
        if (fs && unit_failures == 0) {
                test_reads(fs, crash); /* first: resolving a partition reads the disk (libblkid) */
                test_paths(fs, crash, app);
        }
        fs_free(fs);
        return unit_exit();
}
