/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ordered ring: slots consumed in submission order whatever order the
 * workers finish in, a result per slot, a full ring blocking the producer,
 * the oldest blocking the consumer, jobs handed on to a second pool, and
 * a producer and a consumer on threads of their own. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"

static int failures;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x); failures++; } } while (0)

struct item {
        struct ring *ring;
        struct pool *next;      /* a second stage, or NULL */
        uint64_t seq;
        uint64_t value;         /* set by the job */
        int want;               /* the result the job reports */
};

static void sleep_us(unsigned us) {
        struct timespec ts = { 0, (long)us * 1000 };
        nanosleep(&ts, NULL);
}

static int expected_result(uint64_t seq) { return seq % 11 == 3 ? -EIO : seq % 17 == 5 ? -EBADMSG : 0; }
static uint64_t expected_value(uint64_t seq) { return seq * 2654435761u + 1; }

static void stage2(void *arg) {
        struct item *it = arg;
        it->value += 1;
        ring_done(it->ring, it, it->want);
}

/* Later items finish sooner now and then: out of order on purpose. */
static void work(void *arg) {
        struct item *it = arg;
        if (it->seq % 5 == 0)
                sleep_us((unsigned)(200 + (it->seq * 37) % 300));
        it->value = expected_value(it->seq) - (it->next ? 1 : 0);
        if (it->next && pool_submit(it->next, stage2, it) == 0)
                return;
        ring_done(it->ring, it, it->want);
}

/* Same thread produces and consumes (the pattern of every user). */
static void test_ordered(unsigned threads, unsigned slots, uint64_t n, bool two_stage) {
        struct pool *p = NULL, *p2 = NULL;
        struct ring *r = NULL;
        uint64_t next = 0, expect = 0;
        unsigned max_in_flight = 0;

        CHECK(pool_new(threads, slots, &p) == 0);
        if (two_stage)
                CHECK(pool_new(2, slots, &p2) == 0);
        CHECK(ring_new(slots, sizeof(struct item), &r) == 0);
        CHECK(ring_size(r) == slots);
        for (;;) {
                struct item *it;
                int res = 1;
                if (ring_full(r) || next >= n) {
                        it = ring_take(r, &res);
                        if (!it)
                                break;
                        CHECK(it->seq == expect);
                        CHECK(res == expected_result(expect));
                        CHECK(it->value == expected_value(expect));
                        expect++;
                        ring_release(r, it);
                        continue;
                }
                it = ring_acquire(r);
                CHECK(ring_acquire(r) == it); /* the same until submitted */
                *it = (struct item){ .ring = r, .next = p2, .seq = next, .want = expected_result(next) };
                ring_submit(r, it, p, work);
                next++;
                max_in_flight = MAX(max_in_flight, (unsigned)(next - expect));
        }
        CHECK(expect == n);
        CHECK(max_in_flight == MIN((uint64_t)slots, n));
        CHECK(ring_take(r, NULL) == NULL);
        pool_free(p);
        pool_free(p2);
        ring_free(r);
}

/* ---- blocking: jobs that end only when the test says ---- */

static void parked(void *arg) { (void)arg; /* the test calls ring_done */ }

struct waiter {
        struct ring *r;
        void *got;
        int res;
        atomic_bool returned;
};

static void *acquirer(void *arg) {
        struct waiter *w = arg;
        w->got = ring_acquire(w->r);
        atomic_store(&w->returned, true);
        return NULL;
}

static void *taker(void *arg) {
        struct waiter *w = arg;
        w->got = ring_take(w->r, &w->res);
        atomic_store(&w->returned, true);
        return NULL;
}

struct late {
        struct ring *r;
        void *slot;
        atomic_bool called;
};

static void *late_done(void *arg) {
        struct late *l = arg;
        sleep_us(50000);
        atomic_store(&l->called, true);
        ring_done(l->r, l->slot, 0);
        return NULL;
}

static void test_blocking(void) {
        struct late late;
        struct ring *r = NULL;
        struct item *s[3];
        struct waiter w;
        pthread_t t;
        int res;

        CHECK(ring_new(3, sizeof(struct item), &r) == 0);
        CHECK(ring_own(r, NULL) == NULL);
        CHECK(ring_own(r, malloc(100)) != NULL); /* freed with the ring (the sanitizer build checks) */
        CHECK(ring_take(r, &res) == NULL); /* nothing submitted */
        for (unsigned i = 0; i < 3; i++) {
                CHECK(!ring_full(r));
                s[i] = ring_acquire(r);
                CHECK(s[i] == ring_slot(r, i));
                CHECK((uintptr_t)s[i] % _Alignof(max_align_t) == 0);
                s[i]->seq = i;
                ring_submit(r, s[i], NULL, parked); /* no pool: runs here */
        }
        CHECK(ring_full(r));

        /* Newer slots done first: the consumer still waits for the oldest. */
        ring_done(r, s[2], -EIO);
        ring_done(r, s[1], 0);
        w = (struct waiter){ .r = r };
        CHECK(pthread_create(&t, NULL, taker, &w) == 0);
        sleep_us(50000);
        CHECK(!atomic_load(&w.returned));
        ring_done(r, s[0], -ENOENT);
        pthread_join(t, NULL);
        CHECK(w.got == s[0] && w.res == -ENOENT);

        /* Full while the oldest is taken and not released: acquire waits. */
        w = (struct waiter){ .r = r };
        CHECK(pthread_create(&t, NULL, acquirer, &w) == 0);
        sleep_us(50000);
        CHECK(!atomic_load(&w.returned));
        CHECK(ring_full(r));
        ring_release(r, s[0]);
        pthread_join(t, NULL);
        CHECK(w.got == s[0]); /* round the ring */
        CHECK(!ring_full(r));

        /* The rest come in order, each with its own result. */
        CHECK(ring_take(r, &res) == s[1] && res == 0);
        CHECK(ring_take(r, &res) == s[2] && res == -EIO);
        CHECK(ring_take(r, &res) == NULL);
        ring_release(r, s[1]);
        ring_release(r, s[2]);

        /* A slot acquired and never submitted is no trouble. */
        CHECK(ring_acquire(r) == s[0]);
        CHECK(ring_take(r, &res) == NULL);

        /* ring_free waits for a job still at work. */
        ring_submit(r, s[0], NULL, parked);
        late = (struct late){ .r = r, .slot = s[0] };
        CHECK(pthread_create(&t, NULL, late_done, &late) == 0);
        ring_free(r);
        CHECK(atomic_load(&late.called));
        pthread_join(t, NULL);
}

/* ---- a producer and a consumer on threads of their own ---- */

struct duo {
        struct ring *r;
        struct pool *p;
        uint64_t n, consumed, bad;
};

static void *producer(void *arg) {
        struct duo *d = arg;
        for (uint64_t i = 0; i < d->n; i++) {
                struct item *it = ring_acquire(d->r); /* waits while full */
                *it = (struct item){ .ring = d->r, .seq = i, .want = expected_result(i) };
                ring_submit(d->r, it, d->p, work);
        }
        return NULL;
}

static void *consumer(void *arg) {
        struct duo *d = arg;
        while (d->consumed < d->n) {
                int res;
                struct item *it = ring_take(d->r, &res);
                if (!it) { /* the producer is behind */
                        sleep_us(10);
                        continue;
                }
                if (it->seq != d->consumed || res != expected_result(it->seq) ||
                    it->value != expected_value(it->seq))
                        d->bad++;
                d->consumed++;
                ring_release(d->r, it);
        }
        return NULL;
}

static void test_threads(void) {
        struct duo d = { .n = 20000 };
        pthread_t tp, tc;

        CHECK(pool_new(8, 4, &d.p) == 0);
        CHECK(ring_new(5, sizeof(struct item), &d.r) == 0);
        CHECK(pthread_create(&tp, NULL, producer, &d) == 0);
        CHECK(pthread_create(&tc, NULL, consumer, &d) == 0);
        pthread_join(tp, NULL);
        pthread_join(tc, NULL);
        CHECK(d.consumed == d.n);
        CHECK(d.bad == 0);
        pool_free(d.p);
        ring_free(d.r);
}

int main(void) {
        struct ring *r;

        CHECK(ring_new(0, 8, &r) == -EINVAL);
        CHECK(ring_new(4, 0, &r) == -EINVAL);
        ring_free(NULL);

        test_ordered(1, 1, 50, false);
        test_ordered(4, 8, 3000, false);
        test_ordered(3, 6, 3000, true);
        test_ordered(2, 16, 5, false); /* fewer items than slots */
        test_blocking();
        test_threads();
        if (failures)
                fprintf(stderr, "%d check(s) failed\n", failures);
        return failures ? 1 : 0;
}
