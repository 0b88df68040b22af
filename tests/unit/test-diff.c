/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Manifest diffs (retention/diff.c): ret_disk_diff against a block-by-block
 * comparison, for changed, zeroed and new blocks, runs across chunk
 * boundaries, a partial last block, disks of different sizes and no base;
 * ret_chunk_is_zero for full and partial zero chunks. */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "retention.h"
#include "store.h"

static int failures;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x); failures++; } } while (0)

#define BS 65536u
#define MAXB 4000

/* Block i's content id in a version: 0 is a zero block. */
typedef uint32_t version[MAXB];

static void make_disk(struct store *s, const uint32_t *v, uint64_t n, uint64_t size, struct ret_disk *d) {
        struct store_writer *w;
        struct store_codec *c;
        struct ret_manifest_writer *m;

        memset(d, 0, sizeof *d);
        CHECK(store_writer_new(s, &w) == 0);
        CHECK(store_codec_new(s, &c) == 0);
        CHECK(ret_manifest_writer_new(w, c, &m) == 0);
        for (uint64_t i = 0; i < n; i++) {
                struct hash128 h = { 0 };
                if (v[i])
                        store_hash(&v[i], sizeof v[i], &h);
                CHECK(ret_manifest_writer_add(m, &h) == 0);
        }
        CHECK(ret_manifest_writer_finish(m, d) == 0);
        ret_manifest_writer_free(m);
        CHECK(store_writer_flush(w) == 0);
        store_writer_free(w);
        store_codec_free(c);
        snprintf(d->name, sizeof d->name, "disk0");
        d->size = size;
        d->n_blocks = n;
}

#define MAXG 4096
struct got {
        uint64_t v[MAXG][2];
        size_t n;
};

static int collect(void *userdata, uint64_t start, uint64_t length) {
        struct got *g = userdata;
        if (g->n == MAXG)
                return -E2BIG;
        g->v[g->n][0] = start;
        g->v[g->n][1] = length;
        g->n++;
        return 0;
}

/* The extents by brute force: blocks of b that differ from a (missing: zero). */
static void expect(const uint32_t *a, uint64_t na, const uint32_t *b, uint64_t nb, uint64_t size, struct got *g) {
        g->n = 0;
        for (uint64_t i = 0; i < nb; i++) {
                uint32_t x = a && i < na ? a[i] : 0;
                uint64_t start = i * BS, end = MIN(start + BS, size);
                if (x == b[i])
                        continue;
                if (g->n && g->v[g->n - 1][0] + g->v[g->n - 1][1] == start)
                        g->v[g->n - 1][1] = end - g->v[g->n - 1][0];
                else if (g->n < MAXG) {
                        g->v[g->n][0] = start;
                        g->v[g->n][1] = end - start;
                        g->n++;
                }
        }
}

static void check_diff(struct store *s, const struct ret_disk *da, const uint32_t *a, const struct ret_disk *db,
                       const uint32_t *b) {
        static struct got want, got;
        expect(a, da ? da->n_blocks : 0, b, db->n_blocks, db->size, &want);
        got.n = 0;
        CHECK(ret_disk_diff(s, da, db, BS, collect, &got) == 0);
        CHECK(got.n == want.n);
        CHECK(memcmp(got.v, want.v, want.n * sizeof want.v[0]) == 0);
}

int main(void) {
        char dir[] = "/tmp/rpfs-test-diff-XXXXXX", vault[256], cmd[300];
        static version a, b, c;
        struct ret_disk da, db, dc, dz;
        struct store *s;
        static struct got g;

        CHECK(mkdtemp(dir) != NULL);
        snprintf(vault, sizeof vault, "%s/v", dir);
        CHECK(store_init(vault, BS, 1) == 0);
        CHECK(store_open(vault, &s) == 0);

        /* a: data in chunk 0 and 3, chunks 1-2 all zero, 3000 blocks. */
        for (uint32_t i = 0; i < 3000; i++)
                a[i] = (i < 512 || i >= 1536) && i % 5 ? i + 1 : 0;
        memcpy(b, a, sizeof a);
        b[7] = 99999;                     /* changed */
        b[8] = 99998;                     /* run of two */
        b[511] = b[512] = 4242;           /* across a chunk boundary */
        b[1] = 0;                         /* zeroed */
        b[700] = 7;                       /* new data in a zero chunk */
        b[2999] = 123;                    /* the partial last block */
        make_disk(s, a, 3000, 3000ull * BS - 100, &da);
        make_disk(s, b, 3000, 3000ull * BS - 100, &db);
        CHECK(da.n_chunks == 6);
        CHECK(!ret_chunk_is_zero(&da, 0) && ret_chunk_is_zero(&da, 1) && ret_chunk_is_zero(&da, 2));
        CHECK(!ret_chunk_is_zero(&db, 1) && ret_chunk_is_zero(&db, 2));
        CHECK(ret_chunk_is_zero(&da, 99)); /* past the end */
        check_diff(s, &da, a, &db, b);
        check_diff(s, &db, b, &da, a);
        check_diff(s, NULL, NULL, &da, a);
        /* the same disk: nothing */
        CHECK(ret_disk_diff(s, &da, &da, BS, collect, &g) == 0 && g.n == 0);

        /* c: longer than a, with data past a's end; and a shorter one. */
        memcpy(c, a, sizeof a);
        for (uint32_t i = 3000; i < 3700; i++)
                c[i] = i % 3 ? 0 : i;
        make_disk(s, c, 3700, 3700ull * BS, &dc);
        check_diff(s, &da, a, &dc, c);
        check_diff(s, &dc, c, &da, a);

        /* A partial chunk of zeros only. */
        {
                static version z;
                make_disk(s, z, 100, 100ull * BS, &dz);
                CHECK(ret_chunk_is_zero(&dz, 0));
                g.n = 0;
                CHECK(ret_disk_diff(s, NULL, &dz, BS, collect, &g) == 0 && g.n == 0);
        }
        /* The callback's value stops the walk. */
        CHECK(ret_disk_diff(s, NULL, &da, BS, (ret_extent_fn)(void *)collect, &(struct got){ .n = MAXG }) == -E2BIG);

        free(da.chunks);
        free(db.chunks);
        free(dc.chunks);
        free(dz.chunks);
        store_free(s);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK(system(cmd) == 0);
        if (failures)
                fprintf(stderr, "%d failures\n", failures);
        return failures ? 1 : 0;
}
