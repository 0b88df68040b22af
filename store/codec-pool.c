/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A pool of codecs for threads that each need one for a while: taken
 * from the idle ones, or made when none is idle (a get never waits); put
 * back idle up to the pool's cap, freed beyond it.
 */
#include <pthread.h>
#include <stdlib.h>

#include "common.h"
#include "store.h"

struct store_codec_pool {
        const struct store *s;
        pthread_mutex_t lock;   /* protects idle[], n_idle */
        size_t cap, n_idle;
        struct store_codec *idle[];
};

int store_codec_pool_new(const struct store *s, size_t cap, struct store_codec_pool **ret) {
        struct store_codec_pool *p;

        if (cap == 0)
                return -EINVAL;
        p = calloc(1, sizeof *p + cap * sizeof p->idle[0]);
        if (!p)
                return -ENOMEM;
        p->s = s;
        p->cap = cap;
        pthread_mutex_init(&p->lock, NULL);
        *ret = p;
        return 0;
}

struct store_codec *store_codec_pool_get(struct store_codec_pool *p) {
        struct store_codec *c = NULL;

        pthread_mutex_lock(&p->lock);
        if (p->n_idle > 0)
                c = p->idle[--p->n_idle];
        pthread_mutex_unlock(&p->lock);
        if (!c && store_codec_new(p->s, &c) < 0)
                return NULL;
        return c;
}

void store_codec_pool_put(struct store_codec_pool *p, struct store_codec *c) {
        if (!c)
                return;
        pthread_mutex_lock(&p->lock);
        if (p->n_idle < p->cap) {
                p->idle[p->n_idle++] = c;
                c = NULL;
        }
        pthread_mutex_unlock(&p->lock);
        store_codec_free(c); /* beyond the cap (outside the lock) */
}

void store_codec_pool_free(struct store_codec_pool *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n_idle; i++)
                store_codec_free(p->idle[i]);
        pthread_mutex_destroy(&p->lock);
        free(p);
}
