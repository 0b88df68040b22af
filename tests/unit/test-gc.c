/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Garbage collection on synthetic data: the live set (sorted and
 * de-duplicated on disk across spills), the merge-join against index
 * segments (packs all dead deleted, mostly dead rewritten, duplicates
 * across segments counted once), a dry run changing nothing, and the
 * session protocol (a writer's session defers deletions; a blob that
 * became live meanwhile keeps its pack; a writer that starts after the
 * condemnation does not deduplicate against condemned packs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "store.h"

static int failures;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x); failures++; } } while (0)

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

static void name_of(uint64_t v, struct hash128 *h) {
        store_hash(&v, sizeof v, h);
}

static int cmp16(const void *a, const void *b) {
        return memcmp(a, b, 16);
}

/* 2.5 million adds from a pool of 600,000 names: more than the mark's
 * buffer, so runs are spilled, merged and de-duplicated. */
static void test_mark(struct store *s) {
        const size_t pool = 600000, adds = 2500000;
        struct store_gc_mark *m;
        struct hash128 *want = malloc(pool * sizeof *want), h;
        bool *used = calloc(pool, sizeof *used);
        size_t distinct = 0;

        CHECK(want && used);
        CHECK(store_gc_mark_new(s, &m) == 0);
        for (size_t i = 0; i < adds; i++) {
                uint64_t k = next() % pool;
                name_of(k, &h);
                CHECK(store_gc_mark_add(m, &h) == 0);
                if (!used[k]) {
                        used[k] = true;
                        want[distinct++] = h;
                }
        }
        memset(&h, 0, sizeof h);
        CHECK(store_gc_mark_add(m, &h) == 0); /* the zero hash: ignored */
        CHECK(store_gc_mark_finish(m) == 0);
        CHECK(store_gc_mark_count(m) == distinct);
        qsort(want, distinct, sizeof *want, cmp16);
        for (size_t i = 0; i < distinct; i += 97)
                CHECK(store_gc_mark_contains(m, &want[i]));
        for (uint64_t k = pool; k < pool + 1000; k++) {
                name_of(k, &h);
                CHECK(!store_gc_mark_contains(m, &h));
        }
        CHECK(!store_gc_mark_contains(m, &h) || false);
        store_gc_mark_free(m);
        free(want);
        free(used);
}

/* Blob i: 4 KiB of a pattern of i (compressible; distinct per i). */
static void blob(uint64_t i, uint8_t *p, struct hash128 *h) {
        for (size_t k = 0; k < 4096; k += 8)
                memcpy(p + k, &(uint64_t){ i * 0x9e3779b97f4a7c15ull ^ (k / 64) }, 8);
        store_hash(p, 4096, h);
}

static void write_range(struct store *s, struct store_codec *c, uint64_t a, uint64_t b) {
        struct store_writer *w;
        static uint8_t p[4096], enc[8192];
        struct hash128 h;

        CHECK(store_writer_new(s, &w) == 0);
        for (uint64_t i = a; i < b; i++) {
                long n;
                blob(i, p, &h);
                n = store_encode(c, STORE_KIND_DATA, p, sizeof p, enc, sizeof enc);
                CHECK(n > 0 && store_writer_add(w, &h, enc, (size_t)n) >= 0);
        }
        CHECK(store_writer_flush(w) == 0);
        store_writer_free(w);
}

/* The live set: blobs in [lo1, hi1) and [lo2, hi2). */
struct live {
        uint64_t lo1, hi1, lo2, hi2;
};

static int mark_live(void *ud, struct store_gc_mark *m) {
        struct live *l = ud;
        static uint8_t p[4096];
        struct hash128 h;
        for (uint64_t i = l->lo1; i < l->hi1; i++) {
                blob(i, p, &h);
                CHECK(store_gc_mark_add(m, &h) == 0);
        }
        for (uint64_t i = l->lo2; i < l->hi2; i++) {
                blob(i, p, &h);
                CHECK(store_gc_mark_add(m, &h) == 0);
        }
        return 0;
}

static int count_cb(void *u, const char *name, uint64_t size) {
        (*(int *)u)++;
        return 0;
}

static int count(struct store *s, const char *prefix) {
        int n = 0;
        CHECK(store_list(s, prefix, count_cb, &n) == 0);
        return n;
}

static bool has(struct store *s, uint64_t i) {
        static uint8_t p[4096];
        struct hash128 h;
        blob(i, p, &h);
        return store_has(s, &h) == 0;
}

static bool reads(struct store *s, struct store_codec *c, uint64_t i) {
        static uint8_t p[4096], q[4096];
        struct hash128 h;
        size_t len;
        blob(i, p, &h);
        return store_read_blob(s, c, &h, q, sizeof q, &len) == 0 && len == 4096 && memcmp(p, q, 4096) == 0;
}

static void test_sweep(const char *vault) {
        struct store *s, *s2;
        struct store_codec *c;
        struct store_gc_report rep;
        struct store_gc_options o = { .max_unused = 0.05 };
        struct live l = { 0, 10, 200, 300 };

        CHECK(store_init(vault, 4096, 1) == 0);
        CHECK(store_open(vault, &s) == 0);
        CHECK(store_codec_new(s, &c) == 0);
        write_range(s, c, 0, 100);   /* pack A: 10% live -> rewritten */
        write_range(s, c, 100, 200); /* pack B: dead -> deleted */
        write_range(s, c, 200, 300); /* pack C: live -> kept */
        write_range(s, c, 50, 60);   /* pack D: duplicates of dead blobs */
        CHECK(count(s, "packs/") == 4);
        CHECK(count(s, "index/") == 4);

        o.dry_run = true;
        CHECK(store_gc(s, &o, mark_live, &l, &rep) == 0);
        CHECK(rep.packs == 4);
        CHECK(rep.live_blobs == 110);
        CHECK(rep.dead_blobs == 200);
        CHECK(rep.packs_deleted == 2); /* B and D */
        CHECK(rep.packs_rewritten == 1);
        CHECK(rep.freed_bytes > 0);
        CHECK(count(s, "packs/") == 4 && count(s, "index/") == 4);
        CHECK(count(s, "gc/") == 0);

        o.dry_run = false;
        struct store *old, *old2;
        struct store_codec *oc;
        CHECK(store_open(vault, &old) == 0); /* readers opened before the GC */
        CHECK(store_open(vault, &old2) == 0);
        CHECK(store_codec_new(old, &oc) == 0);
        CHECK(store_gc(s, &o, mark_live, &l, &rep) == 0);
        CHECK(!rep.deferred && !rep.busy);
        /* its index names packs that are gone: it reloads and reads on */
        for (uint64_t i = 0; i < 10; i++)
                CHECK(reads(old, oc, i));
        {
                static uint8_t p[4096];
                struct store_fetch f[20];
                for (int i = 0; i < 20; i++) {
                        blob(i < 10 ? (uint64_t)i : 290 - (uint64_t)i, p, &f[i].h);
                        f[i].buf = malloc(4096);
                }
                CHECK(store_fetch_blocks(old2, oc, f, 20) == 0);
                for (int i = 0; i < 20; i++) {
                        CHECK(f[i].result == 0);
                        free(f[i].buf);
                }
        }
        store_codec_free(oc);
        store_free(old);
        store_free(old2);
        CHECK(count(s, "packs/") == 2); /* C and the rewrite of A */
        CHECK(count(s, "index/") == 2); /* merged + the rewrite's */
        CHECK(count(s, "gc/") == 0);
        for (uint64_t i = 0; i < 300; i++) {
                bool live = i < 10 || i >= 200;
                CHECK(has(s, i) == live);
                if (live)
                        CHECK(reads(s, c, i));
        }
        CHECK(store_open(vault, &s2) == 0);
        for (uint64_t i = 0; i < 300; i += 7)
                CHECK(has(s2, i) == (i < 10 || i >= 200));
        store_free(s2);

        /* A writer whose session is open defers the deletions; the blob
         * it deduplicated and a point then used stays. */
        {
                struct store_writer *w;
                static uint8_t p[4096];
                struct hash128 h;

                write_range(s, c, 400, 410); /* pack E, dead at the next mark */
                CHECK(store_writer_new(s, &w) == 0); /* a session, open */
                blob(405, p, &h);
                CHECK(store_writer_known(w, &h)); /* dedup hit */
                CHECK(store_gc(s, &o, mark_live, &l, &rep) == 0);
                CHECK(rep.deferred);
                CHECK(count(s, "gc/record.json") == 1);
                /* a writer that starts now does not trust condemned packs */
                {
                        struct store *s3;
                        struct store_writer *w3;
                        CHECK(store_open(vault, &s3) == 0);
                        CHECK(store_writer_new(s3, &w3) == 0);
                        CHECK(!store_writer_known(w3, &h));
                        store_writer_free(w3);
                        store_free(s3);
                }
                CHECK(store_writer_check(w) == 0);
                l.lo1 = 405; /* the first writer's point uses it */
                l.hi1 = 406;
                store_writer_free(w);
                CHECK(store_gc(s, &o, mark_live, &l, &rep) == 0);
                CHECK(!rep.deferred);
                CHECK(count(s, "gc/") == 0);
                CHECK(reads(s, c, 405));
                CHECK(has(s, 200) && !has(s, 3));
        }
        store_codec_free(c);
        store_free(s);
}

int main(void) {
        char dir[] = "/tmp/rpfs-test-gc-XXXXXX", vault[256], cmd[300];
        struct store *s;

        CHECK(mkdtemp(dir) != NULL);
        setenv("RPFS_CACHE_DIR", dir, 1);
        snprintf(vault, sizeof vault, "%s/v", dir);
        test_sweep(vault);
        CHECK(store_open(vault, &s) == 0);
        test_mark(s);
        store_free(s);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "cleanup failed\n");
        if (failures)
                fprintf(stderr, "%d failure(s)\n", failures);
        return failures ? 1 : 0;
}
