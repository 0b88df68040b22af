/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fixed set of worker threads and a bounded ring of jobs. Submitting to a
 * full ring blocks, which is what keeps pipelines' memory bounded.
 */
#include <pthread.h>
#include <stdlib.h>

#include "common.h"

struct job {
        pool_fn fn;
        void *arg;
};

struct pool {
        pthread_mutex_t lock;
        pthread_cond_t not_empty, not_full, idle;
        struct job *ring;       /* protected by lock */
        unsigned cap, head, count, busy;
        bool stop;
        unsigned n_threads;
        pthread_t *threads;
};

unsigned cpu_count(void) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (unsigned)n : 1;
}

static void *worker(void *arg) {
        struct pool *p = arg;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                struct job j;
                while (p->count == 0 && !p->stop)
                        pthread_cond_wait(&p->not_empty, &p->lock);
                if (p->count == 0 && p->stop)
                        break;
                j = p->ring[p->head];
                p->head = (p->head + 1) % p->cap;
                p->count--;
                p->busy++;
                pthread_cond_signal(&p->not_full);
                pthread_mutex_unlock(&p->lock);
                j.fn(j.arg);
                pthread_mutex_lock(&p->lock);
                p->busy--;
                if (p->count == 0 && p->busy == 0)
                        pthread_cond_broadcast(&p->idle);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int pool_new(unsigned n_threads, unsigned queue_max, struct pool **ret) {
        struct pool *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        if (n_threads == 0)
                n_threads = cpu_count();
        if (queue_max == 0)
                queue_max = 1;
        p->cap = queue_max;
        p->ring = calloc(queue_max, sizeof *p->ring);
        p->threads = calloc(n_threads, sizeof *p->threads);
        if (!p->ring || !p->threads) {
                free(p->ring);
                free(p->threads);
                free(p);
                return -ENOMEM;
        }
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->not_empty, NULL);
        pthread_cond_init(&p->not_full, NULL);
        pthread_cond_init(&p->idle, NULL);
        for (unsigned i = 0; i < n_threads; i++) {
                int r = pthread_create(&p->threads[i], NULL, worker, p);
                if (r != 0) {
                        p->n_threads = i;
                        pool_free(p);
                        return -r;
                }
        }
        p->n_threads = n_threads;
        *ret = p;
        return 0;
}

int pool_submit(struct pool *p, pool_fn fn, void *arg) {
        pthread_mutex_lock(&p->lock);
        while (p->count == p->cap)
                pthread_cond_wait(&p->not_full, &p->lock);
        p->ring[(p->head + p->count) % p->cap] = (struct job){ fn, arg };
        p->count++;
        pthread_cond_signal(&p->not_empty);
        pthread_mutex_unlock(&p->lock);
        return 0;
}

void pool_wait(struct pool *p) {
        pthread_mutex_lock(&p->lock);
        while (p->count > 0 || p->busy > 0)
                pthread_cond_wait(&p->idle, &p->lock);
        pthread_mutex_unlock(&p->lock);
}

unsigned pool_threads(const struct pool *p) { return p->n_threads; }

void pool_free(struct pool *p) {
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->not_empty);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->not_empty);
        pthread_cond_destroy(&p->not_full);
        pthread_cond_destroy(&p->idle);
        free(p->ring);
        free(p->threads);
        free(p);
}
