/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The block cache: hits verify, a small bound evicts, entries persist
 * across reopen, a torn slot is a miss, one process holds a cache. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common.h"
#include "store.h"

static int failures;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x); failures++; } } while (0)

#define BS 4096u

static void block(unsigned i, uint8_t *p, struct hash128 *h) {
        for (unsigned k = 0; k < BS; k++)
                p[k] = (uint8_t)(i * 131 + k * 7 + (k >> 8));
        memcpy(p, &i, sizeof i); /* unique per i */
        store_hash(p, BS, h);
}

int main(void) {
        char dir[] = "/tmp/rpfs-test-cache-XXXXXX", path[256], cmd[300];
        struct store_cache *c, *c2;
        static uint8_t b[BS], out[BS];
        struct hash128 h;
        unsigned hits = 0;

        CHECK(mkdtemp(dir) != NULL);
        CHECK(store_cache_open(dir, BS, 8 * BS, &c) == -EINVAL); /* < 16 blocks */
        CHECK(store_cache_open(dir, BS, 64 * BS, &c) == 0);

        /* A second holder is refused (flock is per open file description,
         * so try from a child process as a second mount would). */
        {
                pid_t pid = fork();
                if (pid == 0)
                        _exit(store_cache_open(dir, BS, 64 * BS, &c2) == -EBUSY ? 0 : 1);
                int st = 0;
                waitpid(pid, &st, 0);
                CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }

        block(1, b, &h);
        CHECK(store_cache_get(c, &h, out) == -ENOENT);
        CHECK(!store_cache_contains(c, &h));
        CHECK(store_cache_put(c, &h, b) == 0);
        CHECK(store_cache_contains(c, &h));
        CHECK(store_cache_get(c, &h, out) == 0 && memcmp(out, b, BS) == 0);

        /* 500 blocks through a 64-block cache: bounded, recent ones hit. */
        for (unsigned i = 100; i < 600; i++) {
                block(i, b, &h);
                CHECK(store_cache_put(c, &h, b) == 0);
        }
        for (unsigned i = 100; i < 600; i++) {
                block(i, b, &h);
                if (store_cache_get(c, &h, out) == 0) {
                        CHECK(memcmp(out, b, BS) == 0);
                        hits++;
                }
        }
        if (!(hits > 0 && hits <= 64))
                fprintf(stderr, "hits=%u\n", hits);
        CHECK(hits > 0 && hits <= 64);
        snprintf(path, sizeof path, "%s/blocks-%u.data", dir, BS);
        {
                struct stat st;
                CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size <= 64 * BS);
        }

        /* Persistence: the last block put survives a reopen. */
        block(599, b, &h);
        store_cache_close(c);
        CHECK(store_cache_open(dir, BS, 64 * BS, &c) == 0);
        CHECK(store_cache_get(c, &h, out) == 0 && memcmp(out, b, BS) == 0);

        /* A torn slot (data overwritten behind the index) is a miss and is
         * dropped, never wrong bytes. */
        {
                int fd = open(path, O_WRONLY);
                static uint8_t junk[64 * BS];
                memset(junk, 0xA5, sizeof junk);
                CHECK(fd >= 0 && pwrite(fd, junk, sizeof junk, 0) == (ssize_t)sizeof junk);
                close(fd);
                CHECK(store_cache_get(c, &h, out) == -ENOENT);
                CHECK(!store_cache_contains(c, &h));
                CHECK(store_cache_put(c, &h, b) == 0);
                CHECK(store_cache_get(c, &h, out) == 0 && memcmp(out, b, BS) == 0);
        }

        /* A damaged header (same file size) starts over cleanly: no entry
         * of the old table is trusted, and the cache works. */
        store_cache_close(c);
        {
                char ipath[512];
                int fd;
                snprintf(ipath, sizeof ipath, "%s/blocks-%u.idx", dir, BS);
                fd = open(ipath, O_WRONLY);
                CHECK(fd >= 0 && pwrite(fd, "XXXXXXXX", 8, 0) == 8);
                close(fd);
        }
        CHECK(store_cache_open(dir, BS, 64 * BS, &c) == 0);
        CHECK(store_cache_get(c, &h, out) == -ENOENT && !store_cache_contains(c, &h));
        CHECK(store_cache_put(c, &h, b) == 0);
        store_cache_close(c);
        CHECK(store_cache_open(dir, BS, 64 * BS, &c) == 0);
        CHECK(store_cache_get(c, &h, out) == 0 && memcmp(out, b, BS) == 0);

        /* A different size starts over cleanly. */
        store_cache_close(c);
        CHECK(store_cache_open(dir, BS, 32 * BS, &c) == 0);
        CHECK(store_cache_get(c, &h, out) == -ENOENT);
        store_cache_close(c);

        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
        if (failures)
                fprintf(stderr, "%d check(s) failed\n", failures);
        return failures ? 1 : 0;
}
