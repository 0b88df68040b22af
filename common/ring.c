/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An ordered ring of slots: filled in order, processed in any order,
 * consumed in order. The slots sit in one array owned by the ring; their
 * states run round it in the order head -> taken -> submitted -> free:
 *
 *   [head, head + taken)          handed to the consumer, not yet released
 *   [head + taken, head + used)   submitted (working or done), not yet taken
 *   [head + used, head + n)       free; the first of them is the next to fill
 *
 * Only the producer moves the end of "submitted" and only the consumer
 * moves head, so a slot is filled, read and reused in place, never copied.
 */
#include <assert.h>
#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common.h"

struct ring_state {
        bool done;
        int result;
};

struct ring {
        pthread_mutex_t lock;   /* protects head, used, taken, st[], owned */
        pthread_cond_t done;    /* a slot was done: the consumer waits on it */
        pthread_cond_t room;    /* a slot was released: the producer waits on it */
        unsigned n, head, used, taken;
        size_t stride;          /* slot_size, rounded up for alignment */
        char *mem;              /* n * stride bytes, in the same allocation */
        void **owned;           /* given by ring_own(), freed by ring_free() */
        size_t n_owned, cap_owned;
        struct ring_state st[];
};

int ring_new(unsigned n_slots, size_t slot_size, struct ring **ret) {
        const size_t a = alignof(max_align_t);
        size_t stride = (slot_size + a - 1) / a * a, off;
        struct ring *r;

        if (n_slots == 0 || slot_size == 0)
                return -EINVAL;
        /* One allocation: the ring, its states, then the slots. */
        off = (sizeof *r + n_slots * sizeof r->st[0] + a - 1) / a * a;
        if (stride < slot_size || stride > (SIZE_MAX - off) / n_slots)
                return -ENOMEM;
        r = calloc(1, off + n_slots * stride); /* malloc aligns for max_align_t */
        if (!r)
                return -ENOMEM;
        r->n = n_slots;
        r->stride = stride;
        r->mem = (char *)r + off;
        pthread_mutex_init(&r->lock, NULL);
        pthread_cond_init(&r->done, NULL);
        pthread_cond_init(&r->room, NULL);
        *ret = r;
        return 0;
}

unsigned ring_size(const struct ring *r) { return r->n; }

void *ring_own(struct ring *r, void *p) {
        if (!p)
                return NULL;
        pthread_mutex_lock(&r->lock);
        if (r->n_owned == r->cap_owned) {
                size_t cap = r->cap_owned ? 2 * r->cap_owned : 16;
                void **v = realloc(r->owned, cap * sizeof *v);
                if (!v) {
                        pthread_mutex_unlock(&r->lock);
                        free(p);
                        return NULL;
                }
                r->owned = v;
                r->cap_owned = cap;
        }
        r->owned[r->n_owned++] = p;
        pthread_mutex_unlock(&r->lock);
        return p;
}

void *ring_slot(struct ring *r, unsigned i) {
        assert(i < r->n);
        return r->mem + (size_t)i * r->stride;
}

static unsigned slot_index(const struct ring *r, const void *slot) {
        size_t i = (size_t)((const char *)slot - r->mem) / r->stride;
        assert(i < r->n && (const char *)slot == r->mem + i * r->stride);
        return (unsigned)i;
}

bool ring_full(struct ring *r) {
        bool full;
        pthread_mutex_lock(&r->lock);
        full = r->used == r->n;
        pthread_mutex_unlock(&r->lock);
        return full;
}

void *ring_acquire(struct ring *r) {
        unsigned i;
        pthread_mutex_lock(&r->lock);
        while (r->used == r->n)
                pthread_cond_wait(&r->room, &r->lock);
        i = (r->head + r->used) % r->n;
        pthread_mutex_unlock(&r->lock);
        return ring_slot(r, i);
}

void ring_submit(struct ring *r, void *slot, struct pool *p, pool_fn fn) {
        unsigned i = slot_index(r, slot);

        pthread_mutex_lock(&r->lock);
        assert(r->used < r->n && i == (r->head + r->used) % r->n);
        r->st[i] = (struct ring_state){ 0 };
        r->used++;
        pthread_mutex_unlock(&r->lock);
        if (!p || pool_submit(p, fn, slot) < 0)
                fn(slot); /* no pool, or it cannot queue: here */
}

void ring_done(struct ring *r, void *slot, int result) {
        unsigned i = slot_index(r, slot);

        pthread_mutex_lock(&r->lock);
        r->st[i].result = result;
        r->st[i].done = true;
        pthread_cond_broadcast(&r->done);
        pthread_mutex_unlock(&r->lock);
}

void *ring_take(struct ring *r, int *ret_result) {
        unsigned i;

        pthread_mutex_lock(&r->lock);
        if (r->taken == r->used) {
                pthread_mutex_unlock(&r->lock);
                return NULL;
        }
        i = (r->head + r->taken) % r->n;
        while (!r->st[i].done)
                pthread_cond_wait(&r->done, &r->lock);
        r->taken++;
        if (ret_result)
                *ret_result = r->st[i].result;
        pthread_mutex_unlock(&r->lock);
        return ring_slot(r, i);
}

void ring_release(struct ring *r, void *slot) {
        unsigned i = slot_index(r, slot);

        pthread_mutex_lock(&r->lock);
        assert(r->taken > 0 && i == r->head);
        (void)i;
        r->head = (r->head + 1) % r->n;
        r->used--;
        r->taken--;
        pthread_cond_signal(&r->room);
        pthread_mutex_unlock(&r->lock);
}

void ring_free(struct ring *r) {
        if (!r)
                return;
        /* Jobs still at work write into their slots: wait for them. */
        pthread_mutex_lock(&r->lock);
        for (unsigned k = r->taken; k < r->used; k++)
                while (!r->st[(r->head + k) % r->n].done)
                        pthread_cond_wait(&r->done, &r->lock);
        pthread_mutex_unlock(&r->lock);
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->done);
        pthread_cond_destroy(&r->room);
        for (size_t i = 0; i < r->n_owned; i++)
                free(r->owned[i]);
        free(r->owned);
        free(r);
}
