/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The block cache's files as a crash, a full disk or another program may
 * have left them (store/cache.c: blocks-4096.idx, its table of hashes and
 * slots, and blocks-4096.data). Input byte 0 odd: the index header is
 * made right so that damage reaches the table. The next 832 bytes are the
 * index (16 slots, 32 table entries), the rest the data file. Then every
 * hash the table names is read, and new blocks are put and read back: a
 * read that succeeds gives exactly the block of that hash, a block just
 * put is read back, and nothing crashes or hangs. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "store.h"
#include "fuzz.h"

#define BS 4096
#define SLOTS 16
#define CAP 32
#define IDX_LEN (64 + CAP * 24)

static char dir[64];

static void cleanup(void) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (*dir && system(cmd) != 0) {
        }
}

static void put_file(const char *name, const uint8_t *p, size_t len) {
        char path[128];
        int fd;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, p, len) != (ssize_t)len)
                abort();
        close(fd);
}

static void read_back(struct store_cache *c, const struct hash128 *h, bool must) {
        static uint8_t buf[BS];
        struct hash128 got;
        int r = store_cache_get(c, h, buf);

        if (r == 0) {
                store_hash(buf, BS, &got);
                if (memcmp(&got, h, sizeof got) != 0)
                        abort(); /* wrong bytes served */
        } else if (r != -ENOENT || must)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static uint8_t idx[IDX_LEN], blk[BS];
        struct store_cache *c;
        size_t n;

        if (size < 1)
                return 0;
        if (!*dir) {
                snprintf(dir, sizeof dir, "/tmp/rpfs-fuzz-cache-%d", (int)getpid());
                if (mkdir_p(dir, 0700) < 0)
                        abort();
                atexit(cleanup);
                log_set_level(LOG_ERR);
        }
        n = MIN(size - 1, (size_t)IDX_LEN);
        memset(idx, 0, sizeof idx);
        memcpy(idx, data + 1, n);
        if (data[0] & 1) {
                memcpy(idx, "RPFSCACH", 8);
                put_le32(idx + 8, 1);
                put_le32(idx + 12, BS);
                put_le64(idx + 16, SLOTS);
                put_le64(idx + 24, CAP);
                n = IDX_LEN;
        }
        put_file("blocks-4096.idx", idx, n);
        put_file("blocks-4096.data", data + 1 + MIN(size - 1, (size_t)IDX_LEN),
                 size - 1 - MIN(size - 1, (size_t)IDX_LEN));
        if (store_cache_open(dir, BS, SLOTS * BS, &c) < 0)
                abort();
        for (size_t i = 0; i < CAP; i++) {
                struct hash128 h;
                memcpy(h.b, idx + 64 + i * 24, STORE_HASH_SIZE);
                read_back(c, &h, false);
        }
        /* More new blocks than slots: CLOCK evicts through the table. */
        for (unsigned i = 0; i < SLOTS + 4; i++) {
                struct hash128 h;
                memset(blk, (int)i, BS);
                memcpy(blk, data, MIN(size, (size_t)64));
                blk[BS - 1] = (uint8_t)i;
                store_hash(blk, BS, &h);
                if (store_cache_put(c, &h, blk) < 0)
                        abort();
                read_back(c, &h, true);
        }
        store_cache_close(c);
        return 0;
}
