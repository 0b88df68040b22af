/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store: init/open, blobs through packs and index segments,
 * corruption detection, unpublished packs removed on abandon. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "store.h"

static int failures;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x); failures++; } } while (0)

struct names {
        char list[64][128];
        int n;
};

static int collect(void *u, const char *name, uint64_t size) {
        struct names *n = u;
        if (n->n < 64)
                snprintf(n->list[n->n++], 128, "%s", name);
        return 0;
}

static void fill(uint8_t *p, size_t len, unsigned seed) {
        for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t)((i * 31 + seed * 7) ^ (i >> 9) ^ seed);
}

int main(void) {
        char dir[] = "/tmp/rpfs-test-store-XXXXXX", vault[256], path[512], cmd[600];
        struct store *s;
        struct store_writer *w;
        struct store_codec *c;
        static uint8_t blk[5][65536], out[65536], enc[70000];
        struct hash128 h[5], zero = { 0 };
        size_t len;
        long n;

        CHECK(mkdtemp(dir) != NULL);
        snprintf(vault, sizeof vault, "%s/v", dir);

        CHECK(store_init(vault, 3000, 3) == -EINVAL);
        CHECK(store_init(vault, 65536, 25) == -EINVAL);
        CHECK(store_open(vault, &s) == -EMEDIUMTYPE || store_open(vault, &s) == -ENOENT);
        CHECK(store_init(vault, 65536, 3) == 0);
        CHECK(store_init(vault, 65536, 3) == -EEXIST);
        CHECK(store_open(vault, &s) == 0);
        CHECK(store_block_size(s) == 65536);
        CHECK(store_codec_new(s, &c) == 0);

        for (int i = 0; i < 5; i++) {
                fill(blk[i], sizeof blk[i], (unsigned)i + 1);
                store_hash(blk[i], sizeof blk[i], &h[i]);
        }
        CHECK(memcmp(&h[0], &h[1], sizeof h[0]) != 0);
        CHECK(store_has(s, &zero) == 0);
        CHECK(store_has(s, &h[0]) == -ENOENT);

        /* Write three blobs, one twice. */
        CHECK(store_writer_new(s, &w) == 0);
        for (int i = 0; i < 3; i++) {
                CHECK(!store_writer_known(w, &h[i]));
                n = store_encode(c, STORE_KIND_DATA, blk[i], sizeof blk[i], enc, sizeof enc);
                CHECK(n > 8 && n < 65536); /* compressible pattern */
                CHECK(store_writer_add(w, &h[i], enc, (size_t)n) == 1);
                CHECK(store_writer_known(w, &h[i]));
        }
        n = store_encode(c, STORE_KIND_DATA, blk[0], sizeof blk[0], enc, sizeof enc);
        CHECK(store_writer_add(w, &h[0], enc, (size_t)n) == 0);
        CHECK(store_has(s, &h[0]) == -ENOENT); /* not published yet */
        CHECK(store_writer_flush(w) == 0);
        CHECK(store_has(s, &h[0]) == 0);
        store_writer_free(w);

        /* Read back through a fresh open (index from disk). */
        store_free(s);
        CHECK(store_open(vault, &s) == 0);
        for (int i = 0; i < 3; i++) {
                CHECK(store_read_blob(s, c, &h[i], out, sizeof out, &len) == 0);
                CHECK(len == sizeof out && memcmp(out, blk[i], len) == 0);
        }
        CHECK(store_read_blob(s, c, &h[3], out, sizeof out, &len) == -ENOENT);
        CHECK(store_read_blob(s, c, &h[0], out, 100, &len) == -ENOBUFS);

        /* Abandoned writer: its sealed, unpublished pack is removed. */
        {
                struct names before = { 0 }, after = { 0 };
                CHECK(store_list(s, "packs/", collect, &before) == 0);
                CHECK(before.n == 1);
                CHECK(store_writer_new(s, &w) == 0);
                for (int i = 0; i < 300; i++) { /* > 16 MiB of incompressible data seals a pack */
                        static uint8_t rnd[65536];
                        struct hash128 rh;
                        for (size_t k = 0; k < sizeof rnd; k += 4) {
                                uint32_t x = (uint32_t)(k * 2654435761u) ^ (uint32_t)(i * 40503u + 17);
                                x ^= x >> 13; x *= 0x5bd1e995; x ^= x >> 15;
                                memcpy(rnd + k, &x, 4);
                        }
                        store_hash(rnd, sizeof rnd, &rh);
                        n = store_encode(c, STORE_KIND_DATA, rnd, sizeof rnd, enc, sizeof enc);
                        CHECK(n > 0);
                        CHECK(store_writer_add(w, &rh, enc, (size_t)n) == 1);
                }
                CHECK(store_list(s, "packs/", collect, &after) == 0);
                CHECK(after.n == 2); /* one sealed while adding */
                store_writer_free(w);
                after.n = 0;
                CHECK(store_list(s, "packs/", collect, &after) == 0);
                CHECK(after.n == 1);
        }

        /* Objects: exclusive put. */
        CHECK(store_put_object(s, "points/vm/x.json", "{}", 2, true) == 0);
        CHECK(store_put_object(s, "points/vm/x.json", "{}", 2, true) == -EEXIST);
        CHECK(store_put_object(s, "../evil", "{}", 2, true) == -EINVAL);

        /* Corruption: flip a byte inside the first blob of the pack. */
        {
                struct names packs = { 0 };
                int fd;
                uint8_t b;
                CHECK(store_list(s, "packs/", collect, &packs) == 0);
                snprintf(path, sizeof path, "%s/%s", vault, packs.list[0]);
                chmod(path, 0644);
                fd = open(path, O_RDWR);
                CHECK(fd >= 0);
                CHECK(pread(fd, &b, 1, 16 + 8 + 40) == 1);
                b ^= 0x55;
                CHECK(pwrite(fd, &b, 1, 16 + 8 + 40) == 1);
                close(fd);
                store_free(s);
                CHECK(store_open(vault, &s) == 0);
                {
                        int bad = 0;
                        for (int i = 0; i < 3; i++)
                                if (store_read_blob(s, c, &h[i], out, sizeof out, &len) == -EBADMSG)
                                        bad++;
                        CHECK(bad == 1);
                }
        }

        /* Newer format version refused; garbage config refused. */
        store_free(s);
        snprintf(cmd, sizeof cmd, "sed -i 's/\"version\": [0-9]*/\"version\": 99/' %s/config.json", vault);
        CHECK(system(cmd) == 0);
        CHECK(store_open(vault, &s) == -EPROTONOSUPPORT);
        snprintf(cmd, sizeof cmd, "echo garbage > %s/config.json", vault);
        CHECK(system(cmd) == 0);
        CHECK(store_open(vault, &s) == -EMEDIUMTYPE);

        store_codec_free(c);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
        if (failures)
                fprintf(stderr, "%d check(s) failed\n", failures);
        return failures ? 1 : 0;
}
