/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The delta engine (sync/delta-scan.c, sync/delta-apply.c) on a small real
 * target file and a directory vault: the target's blocks are checksummed
 * (holes unread, in pieces and on a pool), compared with a point's
 * manifest, and the differing blocks fetched and written; blocks found
 * equal are not written, zero blocks become holes.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "sync.h"

static int failures;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x); failures++; } } while (0)

#define BS 4096u
#define NB 64u

static void fill(uint8_t *p, unsigned seed) {
        uint32_t x = seed * 2654435761u + 1;
        for (size_t i = 0; i < BS; i++) {
                x = x * 1103515245u + 12345u;
                p[i] = (uint8_t)(x >> 16);
        }
}

/* The point: every fourth block zero, the others seeded by their index. */
static void point_block(unsigned b, uint8_t *p) {
        if (b % 4 == 0)
                memset(p, 0, BS);
        else
                fill(p, b + 1);
}

static const unsigned changed[] = { 5, 6, 21, 41 }; /* other data on the target */
#define DATA_OVER_ZERO 8u                            /* target data where the point is zero */
#define HOLE_OVER_DATA 13u                           /* target hole where the point has data */

static bool is_changed(unsigned b) {
        for (size_t i = 0; i < ELEMENTSOF(changed); i++)
                if (changed[i] == b)
                        return true;
        return false;
}

static bool expect_differ(unsigned b) {
        return is_changed(b) || b == DATA_OVER_ZERO || b == HOLE_OVER_DATA;
}

static void make_point(const char *path) {
        uint8_t buf[BS];
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        CHECK(fd >= 0);
        for (unsigned b = 0; b < NB; b++) {
                point_block(b, buf);
                CHECK(pwrite_full(fd, buf, BS, (uint64_t)b * BS) == 0);
        }
        close(fd);
}

/* A sparse target: zero blocks of the point are holes, save the changed. */
static void make_target(const char *path) {
        uint8_t buf[BS];
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        CHECK(fd >= 0 && ftruncate(fd, (off_t)NB * BS) == 0);
        for (unsigned b = 0; b < NB; b++) {
                if (b == HOLE_OVER_DATA || (b % 4 == 0 && b != DATA_OVER_ZERO))
                        continue;
                fill(buf, is_changed(b) || b == DATA_OVER_ZERO ? b + 999 : b + 1);
                CHECK(pwrite_full(fd, buf, BS, (uint64_t)b * BS) == 0);
        }
        close(fd);
}

static bool is_hole(int fd, unsigned b) {
        off_t d = lseek(fd, (off_t)b * BS, SEEK_DATA);
        return (d < 0 && errno == ENXIO) || d >= (off_t)(b + 1) * BS;
}

/* Write the differing blocks: fetched from the vault, zeros as holes. */
static unsigned apply(struct store *s, int fd, const struct hash128 *want, const bool *same) {
        struct store_codec_pool *codecs = NULL;
        struct sync_delta_target t;
        uint8_t *buf = alloc_large(BS);
        unsigned writes = 0;

        CHECK(buf && store_codec_pool_new(s, 2, &codecs) == 0);
        sync_delta_target_init(&t, fd, -1, false);
        for (unsigned b = 0; b < NB; b++) {
                struct store_fetch f = { .h = want[b], .buf = buf };
                size_t bad = 99;
                if (same[b])
                        continue;
                writes++;
                if (hash_is_zero(&want[b])) {
                        CHECK(sync_delta_zero(&t, (uint64_t)b * BS, BS, NULL) == 0);
                        continue;
                }
                CHECK(sync_delta_fetch(s, codecs, &f, 1, &bad) == 0 && bad == 0);
                CHECK(sync_delta_write(&t, buf, BS, (uint64_t)b * BS) == 0);
        }
        store_codec_pool_free(codecs);
        free(buf);
        return writes;
}

static void check_short_files(int fd, const struct hash128 *want) {
        struct sync_delta_src src = { .fd = fd, .bs = BS, .end = 3 * BS - 100 };
        struct hash128 got[4], h;
        uint8_t buf[BS];
        uint8_t *piece = alloc_large(BS);

        /* a disk ending inside a block: the rest reads as zeros */
        CHECK(piece && sync_delta_hash(&src, 0, 3, NULL, piece, BS, got) == 0);
        CHECK(pread_full(fd, buf, BS, 2 * BS) == 0);
        memset(buf + BS - 100, 0, 100);
        store_hash(buf, BS, &h);
        CHECK(memcmp(&got[2], &h, sizeof h) == 0 && memcmp(&got[1], &want[1], sizeof h) != 0);
        /* a file shorter than the disk: -EIO, or zeros with eof_zero */
        CHECK(ftruncate(fd, 2 * BS) == 0);
        src.end = 4 * BS;
        CHECK(sync_delta_hash(&src, 0, 4, NULL, piece, BS, got) == -EIO);
        src.eof_zero = true;
        CHECK(sync_delta_hash(&src, 0, 4, NULL, piece, BS, got) == 0);
        CHECK(hash_is_zero(&got[2]) && hash_is_zero(&got[3]) && !hash_is_zero(&got[1]));
        CHECK(sync_delta_hash(&src, 0, 1, NULL, piece, BS - 1, got) == -EINVAL);
        free(piece);
}

int main(void) {
        struct sync_disk_spec disk = { .name = "disk0" };
        struct sync_replicate_opts ro = { .vm = "vm", .disks = &disk, .n_disks = 1, .threads = 2, .time = 1795340700 };
        struct sync_replicate_result rr;
        struct hash128 want[NB], got[NB], got2[NB], h;
        uint8_t hole[NB], buf[BS], garbage[BS];
        bool same[NB];
        struct store *s = NULL;
        struct ret_point *p = NULL;
        struct ret_manifest *m = NULL;
        struct pool *pool = NULL;
        char dir[256], vault[300], img[300], tgt[300];
        uint8_t *piece = alloc_large(2 * BS);
        int fd;

        snprintf(dir, sizeof dir, "/tmp/rpfs-test-delta.%d", (int)getpid());
        CHECK(mkdir_p(dir, 0700) == 0);
        snprintf(vault, sizeof vault, "%s/vault", dir);
        snprintf(img, sizeof img, "%s/point.img", dir);
        snprintf(tgt, sizeof tgt, "%s/target.img", dir);
        log_set_level(LOG_ERR);
        make_point(img);
        make_target(tgt);
        CHECK(store_init(vault, BS, 1) == 0 && store_open(vault, &s) == 0);
        disk.path = img;
        CHECK(sync_replicate(s, &ro, &rr) == 0);
        CHECK(ret_point_load(s, "vm", rr.id, &p) == 0);
        CHECK(p && ret_point_disk(p, "disk0") && ret_manifest_open(s, ret_point_disk(p, "disk0"), &m) == 0);
        for (unsigned b = 0; m && b < NB; b++)
                CHECK(ret_manifest_get(m, b, &want[b]) == 0);

        /* checksums of the target: holes unread, a piece of 2 blocks */
        fd = open(tgt, O_RDWR);
        CHECK(fd >= 0 && piece);
        struct sync_delta_src src = { .fd = fd, .bs = BS, .end = (uint64_t)NB * BS };
        (void)fd_map_holes(fd, 0, (uint64_t)NB * BS, BS, hole, NULL);
        CHECK(hole[0] && hole[HOLE_OVER_DATA] && !hole[1] && !hole[DATA_OVER_ZERO]);
        CHECK(sync_delta_hash(&src, 0, NB, hole, piece, 2 * BS, got) == 0);
        /* on a pool, in slices: the same checksums */
        CHECK(pool_new(2, 4, &pool) == 0);
        CHECK(sync_delta_hash_parallel(pool, &src, 0, NB, hole, got2) == 0);
        CHECK(memcmp(got, got2, sizeof got) == 0);
        CHECK(sync_delta_hash_parallel(NULL, &src, 0, NB, NULL, got2) == 0);
        CHECK(memcmp(got, got2, sizeof got) == 0);
        /* a block marked as a hole is not read: it checksums as zeros */
        hole[1] = 1;
        CHECK(sync_delta_hash(&src, BS, 1, hole + 1, piece, BS, got2) == 0 && hash_is_zero(&got2[0]));
        hole[1] = 0;

        /* the compare finds exactly the changed blocks */
        CHECK(sync_delta_mark(want, got, NB, same) == ELEMENTSOF(changed) + 2);
        for (unsigned b = 0; b < NB; b++)
                CHECK(same[b] == !expect_differ(b));
        CHECK(sync_delta_block_is(fd, BS, 2 * BS, BS, &want[2], buf));
        CHECK(!sync_delta_block_is(fd, BS, 5 * BS, BS, &want[5], buf));
        CHECK(sync_delta_block_is(fd, BS, 0, BS, &want[0], buf)); /* a hole is the zero block */

        /* equal blocks are not written: block 1 changed behind the
         * engine's back stays changed; the others come from the vault */
        memset(garbage, 0x5a, sizeof garbage);
        CHECK(pwrite_full(fd, garbage, BS, BS) == 0);
        CHECK(apply(s, fd, want, same) == ELEMENTSOF(changed) + 2);
        for (unsigned b = 0; b < NB; b++) {
                CHECK(pread_full(fd, buf, BS, (uint64_t)b * BS) == 0);
                if (b == 1) {
                        CHECK(memcmp(buf, garbage, BS) == 0);
                        continue;
                }
                sync_delta_hash_block(buf, BS, &h);
                CHECK(memcmp(&h, &want[b], sizeof h) == 0);
        }
        /* zero blocks: the one the target had data in is a hole now, the
         * holes that were equal stayed holes */
        CHECK(is_hole(fd, DATA_OVER_ZERO) && is_hole(fd, 0) && is_hole(fd, 4) && !is_hole(fd, HOLE_OVER_DATA));

        check_short_files(fd, want);
        close(fd);
        pool_free(pool);
        ret_manifest_free(m);
        ret_point_free(p);
        store_free(s);
        free(piece);
        if (!failures) {
                char cmd[300];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
                CHECK(system(cmd) == 0);
        }
        if (failures)
                fprintf(stderr, "%d check(s) failed\n", failures);
        return failures ? 1 : 0;
}
