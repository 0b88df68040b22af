/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Manifest trees (retention/tree.c, walk.c): build and look up trees of
 * 1 chunk, sizes at node boundaries (fanout - 1, fanout, fanout + 1, f^2,
 * f^2 + 1) and many levels (fanout 2 and 4); load the whole list; a new
 * tree with one chunk changed stores one node per level; the metadata walk
 * yields every node and chunk; missing nodes are -ENOENT; and manifests
 * and diffs read through a tree (a point summary, no chunk list) give
 * what the chunk list gives. */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "retention.h"
#include "store.h"

static int failures;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x); failures++; } } while (0)

#define BS 65536u

static void chunk_hash(uint64_t i, uint64_t salt, struct hash128 *h) {
        uint64_t v[2] = { i, salt };
        store_hash(v, sizeof v, h);
}

/* Store a tree over n synthetic chunk checksums; the blobs it added. */
static uint64_t store_tree(struct store *s, const struct hash128 *v, size_t n, unsigned f, struct ret_disk *d) {
        struct store_writer *w;
        struct store_codec *c;
        uint64_t blobs = 0;

        memset(d, 0, sizeof *d);
        CHECK(store_writer_new(s, &w) == 0);
        CHECK(store_codec_new(s, &c) == 0);
        CHECK(ret_tree_store(w, c, v, n, f, &d->tree, &d->tree_levels) == 0);
        CHECK(store_writer_flush(w) == 0);
        store_writer_stats(w, NULL, &blobs);
        store_writer_free(w);
        store_codec_free(c);
        d->tree_fanout = f;
        d->n_chunks = n;
        d->n_blocks = (uint64_t)n * RET_CHUNK_ENTRIES;
        return blobs;
}

struct walked {
        size_t n;
        bool saw_root_first;
        const struct hash128 *root;
};

static int walk_cb(void *ud, const struct hash128 *h) {
        struct walked *wk = ud;
        if (wk->n++ == 0)
                wk->saw_root_first = memcmp(h, wk->root, sizeof *h) == 0;
        return 0;
}

static uint64_t nodes_of(uint64_t n, unsigned f) {
        uint64_t total = 0;
        do {
                n = DIV_ROUND_UP(n, f);
                total += n;
        } while (n > 1);
        return total;
}

static void check_size(struct store *s, size_t n, unsigned f, unsigned want_levels) {
        struct hash128 *v = malloc(n * sizeof *v), *got = NULL, h;
        struct ret_disk d;
        struct walked wk = { 0 };
        uint64_t blobs;

        for (size_t i = 0; i < n; i++)
                chunk_hash(i, n * 10 + f, &v[i]);
        blobs = store_tree(s, v, n, f, &d);
        CHECK(d.tree_levels == want_levels && ret_tree_levels(n, f) == want_levels);
        CHECK(blobs == nodes_of(n, f));
        CHECK(ret_tree_load(s, &d, &got) == 0);
        CHECK(got && memcmp(got, v, n * sizeof *v) == 0);
        for (size_t i = 0; i < n; i += (n < 3000 ? 1 : 97)) {
                CHECK(ret_tree_get(s, &d, i, &h) == 0);
                CHECK(memcmp(&h, &v[i], sizeof h) == 0);
        }
        CHECK(ret_tree_get(s, &d, n - 1, &h) == 0 && memcmp(&h, &v[n - 1], sizeof h) == 0);
        CHECK(ret_tree_get(s, &d, n, &h) == -ENOENT);
        wk.root = &d.tree;
        CHECK(ret_disk_meta_walk(s, &d, walk_cb, &wk) == 0);
        CHECK(wk.saw_root_first && wk.n == n + nodes_of(n, f));

        /* One chunk changed: one new node per level, the rest shared. */
        chunk_hash(n / 2, 777 + n * 10 + f, &v[n / 2]);
        {
                struct ret_disk d2;
                uint64_t nb = store_tree(s, v, n, f, &d2);
                if (nb != want_levels)
                        fprintf(stderr, "n %zu f %u: %llu new nodes\n", n, f, (unsigned long long)nb);
                CHECK(nb == want_levels);
                CHECK(ret_tree_get(s, &d2, n / 2, &h) == 0 && memcmp(&h, &v[n / 2], sizeof h) == 0);
        }
        /* A wrong shape is refused, not misread. */
        d.tree_levels++;
        CHECK(ret_tree_get(s, &d, 0, &h) == -EBADMSG);
        free(got);
        free(v);
}

/* Real manifests: blocks written through ret_manifest_writer, then the
 * chunk list also stored as a fanout-2 tree (several levels) and read
 * back as a summary without chunks. */
static void make_disk(struct store *s, const uint32_t *blk, uint64_t n, struct ret_disk *d) {
        struct store_writer *w;
        struct store_codec *c;
        struct ret_manifest_writer *m;

        memset(d, 0, sizeof *d);
        CHECK(store_writer_new(s, &w) == 0);
        CHECK(store_codec_new(s, &c) == 0);
        CHECK(ret_manifest_writer_new(w, c, &m) == 0);
        for (uint64_t i = 0; i < n; i++) {
                struct hash128 h = { 0 };
                if (blk[i])
                        store_hash(&blk[i], sizeof blk[i], &h);
                CHECK(ret_manifest_writer_add(m, &h) == 0);
        }
        CHECK(ret_manifest_writer_finish(m, d) == 0);
        ret_manifest_writer_free(m);
        CHECK(d->tree_levels == 1 && d->tree_fanout == RET_TREE_FANOUT);
        CHECK(ret_tree_store(w, c, d->chunks, d->n_chunks, 2, &d->tree, &d->tree_levels) == 0);
        d->tree_fanout = 2;
        CHECK(store_writer_flush(w) == 0);
        store_writer_free(w);
        store_codec_free(c);
        d->n_blocks = n;
        d->size = n * BS - 1000;
}

#define NB (11 * RET_CHUNK_ENTRIES + 77)
struct ext {
        uint64_t v[512][2];
        size_t n;
};
static int collect(void *ud, uint64_t start, uint64_t len) {
        struct ext *e = ud;
        if (e->n == 512)
                return -E2BIG;
        e->v[e->n][0] = start;
        e->v[e->n][1] = len;
        e->n++;
        return 0;
}

static void check_summaries(struct store *s) {
        static uint32_t a[NB], b[NB];
        struct ret_disk da, db, sa, sb;
        struct ret_manifest *m;
        static struct ext full, summ;

        for (uint32_t i = 0; i < NB; i++)
                a[i] = (i / RET_CHUNK_ENTRIES) % 3 == 1 ? 0 : i + 1;
        memcpy(b, a, sizeof a);
        b[5] = 5555;
        b[3 * RET_CHUNK_ENTRIES - 1] = b[3 * RET_CHUNK_ENTRIES] = 4242;
        b[NB - 1] = 1;
        make_disk(s, a, NB, &da);
        make_disk(s, b, NB, &db);
        CHECK(da.tree_levels == 4); /* 12 chunks, fanout 2 */
        sa = da;
        sb = db;
        sa.chunks = sb.chunks = NULL;
        CHECK(ret_manifest_open(s, &sb, &m) == 0);
        for (uint64_t i = 0; i < NB; i++) {
                struct hash128 h, want = { 0 };
                if (b[i])
                        store_hash(&b[i], sizeof b[i], &want);
                CHECK(ret_manifest_get(m, i, &h) == 0 && memcmp(&h, &want, sizeof h) == 0);
        }
        ret_manifest_free(m);
        /* Through the trees (summaries) and through the lists: the same. */
        CHECK(ret_disk_diff(s, &sa, &sb, BS, collect, &summ) == 0);
        {
                struct ret_disk la = da, lb = db;
                la.tree_levels = lb.tree_levels = 0; /* as version-1 disks */
                CHECK(ret_disk_diff(s, &la, &lb, BS, collect, &full) == 0);
                /* A version-1 disk's walk: its chunk list, runs of one chunk once. */
                struct walked wk = { .root = &la.chunks[0] };
                size_t distinct = 1;
                for (size_t i = 1; i < la.n_chunks; i++)
                        distinct += memcmp(&la.chunks[i], &la.chunks[i - 1], sizeof la.chunks[i]) != 0;
                CHECK(ret_disk_meta_walk(s, &la, walk_cb, &wk) == 0 && wk.n == distinct && wk.saw_root_first);
                /* The fanout-2 tree: 12 chunks, 6 + 3 + 2 + 1 nodes. */
                wk = (struct walked){ .root = &sa.tree };
                CHECK(ret_disk_meta_walk(s, &sa, walk_cb, &wk) == 0 && wk.n == 12 + 12 && wk.saw_root_first);
        }
        CHECK(summ.n == 3 && summ.n == full.n && memcmp(summ.v, full.v, summ.n * sizeof summ.v[0]) == 0);
        CHECK(summ.v[0][0] == 5 * BS && summ.v[0][1] == BS);
        CHECK(summ.v[1][0] == (3 * RET_CHUNK_ENTRIES - 1) * (uint64_t)BS && summ.v[1][1] == 2 * BS);
        CHECK(summ.v[2][0] == (NB - 1) * (uint64_t)BS && summ.v[2][1] == BS - 1000);
        summ.n = 0;
        CHECK(ret_disk_diff(s, &sa, &sa, BS, collect, &summ) == 0 && summ.n == 0);
        summ.n = 0;
        CHECK(ret_disk_diff(s, NULL, &sb, BS, collect, &summ) == 0 && summ.n > 0);
        CHECK(!ret_chunk_is_zero(&sa, 1)); /* unknown without the list */
        CHECK(ret_chunk_is_zero(&da, 1));

        /* A tree node that is not in the vault. */
        memset(&sa.tree, 0x5a, sizeof sa.tree);
        CHECK(ret_manifest_open(s, &sa, &m) == 0);
        {
                struct hash128 h;
                CHECK(ret_manifest_get(m, 0, &h) == -ENOENT);
        }
        ret_manifest_free(m);
        free(da.chunks);
        free(db.chunks);
}

int main(void) {
        char dir[] = "/tmp/rpfs-test-tree-XXXXXX", vault[256], cmd[300];
        struct store *s;

        CHECK(mkdtemp(dir) != NULL);
        snprintf(vault, sizeof vault, "%s/v", dir);
        CHECK(store_init(vault, BS, 1) == 0);
        CHECK(store_open(vault, &s) == 0);

        CHECK(ret_tree_levels(0, 256) == 0);
        check_size(s, 1, 256, 1);
        check_size(s, 255, 256, 1);
        check_size(s, 256, 256, 1);
        check_size(s, 257, 256, 2);
        check_size(s, 65536, 256, 2);
        check_size(s, 65537, 256, 3);
        check_size(s, 1, 4, 1);
        check_size(s, 4, 4, 1);
        check_size(s, 5, 4, 2);
        check_size(s, 16, 4, 2);
        check_size(s, 17, 4, 3);
        check_size(s, 1000, 2, 10);  /* many levels */
        check_size(s, 1025, 2, 11);
        check_summaries(s);

        store_free(s);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK(system(cmd) == 0);
        if (failures)
                fprintf(stderr, "%d check(s) failed\n", failures);
        return failures ? 1 : 0;
}
