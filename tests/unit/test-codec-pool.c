/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The codec pool: gets make codecs when none is idle, puts keep up to the
 * cap, the codecs work, and many threads share one pool. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "store.h"

static int failures;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x); failures++; } } while (0)

#define BS 65536

struct shared {
        struct store *s;
        struct store_codec_pool *p;
        atomic_int bad;
};

/* The codec compresses a block (which compresses well). */
static bool codec_works(struct store *s, struct store_codec *c, unsigned seed) {
        static _Thread_local uint8_t blk[BS], enc[BS + 1024];
        long n;

        for (size_t i = 0; i < BS; i++)
                blk[i] = (uint8_t)((i / 97) ^ seed);
        n = store_encode(c, STORE_KIND_DATA, blk, BS, enc, sizeof enc);
        (void)s;
        return n > 0 && n < BS / 4;
}

static void *worker(void *arg) {
        struct shared *sh = arg;
        for (unsigned i = 0; i < 300; i++) {
                struct store_codec *c = store_codec_pool_get(sh->p);
                if (!c || !codec_works(sh->s, c, i))
                        atomic_fetch_add(&sh->bad, 1);
                store_codec_pool_put(sh->p, c);
        }
        return NULL;
}

static void remove_tree(const char *dir) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
}

int main(void) {
        char dir[] = "/tmp/rpfs-test-codec-pool-XXXXXX", vault[256];
        struct store *s = NULL;
        struct store_codec_pool *p = NULL;
        struct store_codec *a, *b, *c, *d;

        CHECK(mkdtemp(dir) != NULL);
        snprintf(vault, sizeof vault, "%s/vault", dir);
        CHECK(store_init(vault, BS, 1) == 0);
        CHECK(store_open(vault, &s) == 0);
        if (!s)
                return 1;

        CHECK(store_codec_pool_new(s, 0, &p) == -EINVAL);
        store_codec_pool_free(NULL);

        /* Grows on demand: three at once from a pool that keeps two. */
        CHECK(store_codec_pool_new(s, 2, &p) == 0);
        a = store_codec_pool_get(p);
        b = store_codec_pool_get(p);
        c = store_codec_pool_get(p);
        CHECK(a && b && c && a != b && b != c && a != c);
        CHECK(codec_works(s, a, 1) && codec_works(s, b, 2) && codec_works(s, c, 3));
        store_codec_pool_put(p, a);
        store_codec_pool_put(p, b);
        store_codec_pool_put(p, c); /* beyond the cap: freed */
        store_codec_pool_put(p, NULL);
        /* The idle ones come back, newest first; then a new one. */
        CHECK(store_codec_pool_get(p) == b);
        CHECK(store_codec_pool_get(p) == a);
        d = store_codec_pool_get(p);
        CHECK(d && codec_works(s, d, 4));
        store_codec_pool_put(p, a);
        store_codec_pool_put(p, b);
        store_codec_pool_put(p, d);
        store_codec_pool_free(p); /* frees the idle ones (the sanitizer build checks) */

        /* Many threads, fewer idle slots than threads. */
        {
                struct shared sh = { .s = s };
                pthread_t t[8];
                CHECK(store_codec_pool_new(s, 3, &sh.p) == 0);
                for (unsigned i = 0; i < ELEMENTSOF(t); i++)
                        CHECK(pthread_create(&t[i], NULL, worker, &sh) == 0);
                for (unsigned i = 0; i < ELEMENTSOF(t); i++)
                        pthread_join(t[i], NULL);
                CHECK(atomic_load(&sh.bad) == 0);
                store_codec_pool_free(sh.p);
        }

        store_free(s);
        remove_tree(dir);
        if (failures)
                fprintf(stderr, "%d check(s) failed\n", failures);
        return failures ? 1 : 0;
}
