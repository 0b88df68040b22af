/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The FUSE request loop: worker threads that take requests off /dev/fuse
 * and process them, ended without pthread_cancel.
 *
 * Why not libfuse's fuse_loop_mt: libfuse 3.14 ends its workers with
 * pthread_cancel, and a worker may be cancelled inside perror("fuse:
 * reading device") while it holds stderr's lock (glibc's perror takes the
 * lock without a cancellation handler). Every later write to stderr, ours
 * and libfuse's, then blocks for ever: the daemon hangs after an unmount
 * (seen in CI, 3 daemons in 30 unmounts with test-mount-faults' preload
 * library under load). libfuse removed pthread_cancel from its loop in
 * 2025; this loop does the same on the libfuse Debian ships.
 *
 * Workers start one at a time as requests keep all of them busy, up to a
 * maximum, and live until the session ends. The session ends when a worker
 * sees the connection end (ENODEV, which libfuse reports as 0, or any other
 * error), or when a signal handler of fuse_set_signal_handlers() ends it.
 * The caller's thread then wakes the workers still blocked in read() with a
 * signal whose handler does nothing (read fails with EINTR and the worker
 * sees the session ended), repeated until every worker has returned, and
 * joins them all. */
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "fs_i.h"

#define LOOP_MAX_WORKERS 64u

/* A worker that has received a large request (a write of more than
 * RECV_HUGE_AFTER bytes) receives into a buffer of huge pages from then
 * on: the kernel pins the pages of the buffer it copies a request into,
 * page by page, and a huge page is pinned in one step (dd bs=4M into
 * MOUNT/failback: 1 MiB writes, 7% of the daemon's CPU in pinning 4 KiB
 * pages). Workers that only see small requests (reads of point files)
 * keep libfuse's buffer, whose untouched pages cost no memory. libfuse
 * 3.14-3.16 read requests into a buffer given to them of (256 pages + 4
 * KiB), RECV_HUGE_BYTES covers it; other versions keep their own. */
#define RECV_HUGE_AFTER (256u << 10)
#define RECV_HUGE_BYTES (2u << 20)

static void recv_buffer_upgrade(struct fuse_buf *buf, bool *huge) {
        void *p;

        if (*huge || buf->size <= RECV_HUGE_AFTER || fuse_version() < 314 || fuse_version() > 316)
                return;
        p = alloc_large(RECV_HUGE_BYTES);
        if (!p)
                return;
        free(buf->mem);
        buf->mem = p;
        *huge = true;
}

struct loop {
        struct fuse_session *se;
        pthread_mutex_t lock; /* protects the fields below */
        pthread_t tid[LOOP_MAX_WORKERS];
        bool done[LOOP_MAX_WORKERS]; /* the worker has returned */
        unsigned n;                  /* workers started */
        unsigned idle;               /* workers waiting for a request */
        unsigned max;
        bool ending;                 /* no more workers are started */
        int error;                   /* the first error a worker saw */
        sem_t finished;              /* posted by each worker that returns */
};

struct worker_arg {
        struct loop *l;
        unsigned i;
};

#define WAKE_SIGNAL SIGUSR2

static void wake_handler(int sig) {
        (void)sig;
}

static int start_worker(struct loop *l);

static void *worker(void *arg) {
        struct worker_arg *wa = arg;
        struct loop *l = wa->l;
        unsigned i = wa->i;
        struct fuse_buf buf = { 0 };
        bool huge = false;
        int r;

        free(wa);
        while (!fuse_session_exited(l->se)) {
                r = fuse_session_receive_buf(l->se, &buf);
                if (r == -EINTR)
                        continue;
                if (r <= 0) {
                        pthread_mutex_lock(&l->lock);
                        if (r < 0 && l->error == 0)
                                l->error = r;
                        pthread_mutex_unlock(&l->lock);
                        fuse_session_exit(l->se);
                        break;
                }
                pthread_mutex_lock(&l->lock);
                l->idle--;
                if (l->idle == 0 && !l->ending && l->n < l->max)
                        (void)start_worker(l); /* best effort: this one serves anyway */
                pthread_mutex_unlock(&l->lock);

                fuse_session_process_buf(l->se, &buf);
                recv_buffer_upgrade(&buf, &huge);

                pthread_mutex_lock(&l->lock);
                l->idle++;
                pthread_mutex_unlock(&l->lock);
        }
        free(buf.mem);
        pthread_mutex_lock(&l->lock);
        l->done[i] = true;
        pthread_mutex_unlock(&l->lock);
        sem_post(&l->finished);
        return NULL;
}

/* Start one worker. Called with l->lock held. Workers block the signals
 * that end the session, so that they reach the caller's thread (whose
 * sem_wait they interrupt); WAKE_SIGNAL stays open to them. */
static int start_worker(struct loop *l) {
        struct worker_arg *wa;
        sigset_t block, old;
        int r;

        wa = malloc(sizeof *wa);
        if (!wa)
                return -ENOMEM;
        wa->l = l;
        wa->i = l->n;
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGHUP);
        sigaddset(&block, SIGQUIT);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        r = pthread_create(&l->tid[l->n], NULL, worker, wa);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0) {
                free(wa);
                return -r;
        }
        l->n++;
        l->idle++;
        return 0;
}

static void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

int fs_loop_run(struct fuse_session *se, unsigned max_workers) {
        struct sigaction sa = { .sa_handler = wake_handler }, old_sa;
        struct loop *l;
        unsigned left;
        int r;

        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->se = se;
        l->max = MAX(1u, MIN(max_workers, LOOP_MAX_WORKERS));
        pthread_mutex_init(&l->lock, NULL);
        sem_init(&l->finished, 0, 0);
        /* No SA_RESTART: a read() of /dev/fuse the signal interrupts
         * fails with EINTR. */
        sigemptyset(&sa.sa_mask);
        sigaction(WAKE_SIGNAL, &sa, &old_sa);

        pthread_mutex_lock(&l->lock);
        r = start_worker(l);
        pthread_mutex_unlock(&l->lock);
        if (r < 0)
                goto out;

        /* A worker that returns posts; the session's signal handlers
         * (SIGTERM, SIGINT, SIGHUP) end it on whichever thread takes the
         * signal, which need not be this one: look again every 200 ms. */
        while (!fuse_session_exited(se)) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 200000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                sem_timedwait(&l->finished, &ts);
        }

        pthread_mutex_lock(&l->lock);
        l->ending = true;
        pthread_mutex_unlock(&l->lock);
        /* Wake the workers blocked in read(); one may be between its
         * check of the session and the read, so repeat until all are out.
         * A worker busy with a request finishes it first. */
        for (;;) {
                left = 0;
                pthread_mutex_lock(&l->lock);
                for (unsigned i = 0; i < l->n; i++)
                        if (!l->done[i]) {
                                pthread_kill(l->tid[i], WAKE_SIGNAL);
                                left++;
                        }
                pthread_mutex_unlock(&l->lock);
                if (left == 0)
                        break;
                sleep_ms(20);
        }
        for (unsigned i = 0; i < l->n; i++)
                pthread_join(l->tid[i], NULL);
        r = l->error;
out:
        sigaction(WAKE_SIGNAL, &old_sa, NULL);
        sem_destroy(&l->finished);
        pthread_mutex_destroy(&l->lock);
        free(l);
        return r;
}
