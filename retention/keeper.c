/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A lease keeper: the leases one process holds (a mount's open points, a
 * failback's source point). All their vault I/O happens on the keeper's
 * own thread: a lease asked for is taken there as soon as it can be, and
 * renewed every ttl/3, so that the caller (a FUSE open) never waits on,
 * or fails because of, the vault. A take or renew that fails is logged
 * (once per distinct error) and tried again, a failed take every
 * KEEPER_RETRY seconds at most; a point that is gone or being pruned is
 * let go. A holder that dies stops renewing and its leases expire by
 * themselves after the ttl. ret_keeper_free() drops every lease.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "retention.h"

#define KEEPER_RETRY 10 /* seconds between takes that failed, at most */

struct keeper_lease {
        struct keeper_lease *next;  /* never unlinked before ret_keeper_free */
        char vm[65], id[POINT_ID_LEN + 1];
        /* "": none held. Written by the keeper's thread only (and read by
         * ret_keeper_free after it ended). */
        char lease_id[RET_LEASE_ID_LEN + 1];
        int last_err;               /* the thread's: the error last logged */
        /* Protected by the keeper's lock: */
        int64_t due;                /* monotonic second of the next take or renew */
        bool gone;                  /* point gone: nothing more to do */
        bool tried;                 /* the first take was tried; its result: */
        int first;
};

struct ret_keeper {
        struct store *s;
        uint32_t ttl;
        pthread_mutex_t lock;       /* protects head, stop, running and the leases' due, gone, tried, first */
        pthread_cond_t cond;        /* the thread waits on it for work */
        pthread_cond_t tried_cond;  /* ret_keeper_take waits on it for a first take */
        struct keeper_lease *head;
        bool stop, running;
        pthread_t tid;
};

uint32_t ret_lease_ttl(void) {
        const char *e = getenv("RPFS_LEASE_TTL");
        char *end;
        unsigned long v;

        if (!e || !*e)
                return RET_LEASE_TTL;
        v = strtoul(e, &end, 10);
        return *end || v == 0 || v > 86400 ? RET_LEASE_TTL : (uint32_t)v;
}

static int64_t mono_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec;
}

int ret_keeper_new(struct store *s, struct ret_keeper **ret) {
        struct ret_keeper *k = calloc(1, sizeof *k);
        pthread_condattr_t ca;

        if (!k)
                return -ENOMEM;
        k->s = s;
        k->ttl = ret_lease_ttl();
        pthread_mutex_init(&k->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&k->cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_cond_init(&k->tried_cond, NULL);
        *ret = k;
        return 0;
}

static uint32_t keeper_interval(const struct ret_keeper *k) {
        return MAX(k->ttl / 3, 1u);
}

/* Log r for l unless it was the last error logged for it. */
static void keeper_log(struct keeper_lease *l, int r, const char *what, uint32_t again) {
        if (r == l->last_err)
                return;
        l->last_err = r;
        log_error_errno(r, "%s the lease on point %s/%s failed (tried again every %us)", what, l->vm, l->id, again);
}

/* Take or renew l's lease (the thread's; no lock held). 0, -ENOENT or
 * -EINVAL when the point is gone or being pruned, or another -errno. */
static int keeper_refresh(struct ret_keeper *k, struct keeper_lease *l) {
        int r;

        if (l->lease_id[0]) {
                r = ret_lease_renew(k->s, l->vm, l->id, l->lease_id, k->ttl);
                if (r != -ENOENT) {
                        if (r < 0)
                                keeper_log(l, r, "renewing", keeper_interval(k));
                        else
                                l->last_err = 0;
                        return r == -EINVAL ? -EIO : r;
                }
                log_error("the lease on point %s/%s expired; taking a new one", l->vm, l->id);
                l->lease_id[0] = 0;
        }
        r = ret_lease_take(k->s, l->vm, l->id, k->ttl, l->lease_id);
        if (r == -ENOENT || r == -EINVAL) {
                l->lease_id[0] = 0;
                log_error("point %s/%s is gone or being pruned: not leased", l->vm, l->id);
        } else if (r < 0) {
                l->lease_id[0] = 0;
                keeper_log(l, r, "taking", MIN(keeper_interval(k), (uint32_t)KEEPER_RETRY));
        } else {
                if (l->last_err)
                        log_info("the lease on point %s/%s is taken", l->vm, l->id);
                l->last_err = 0;
        }
        return r;
}

/* The lease due first (NULL: none) and its due time. Lock held. */
static struct keeper_lease *keeper_next(struct ret_keeper *k, int64_t *ret_due) {
        struct keeper_lease *best = NULL;

        for (struct keeper_lease *l = k->head; l; l = l->next)
                if (!l->gone && (!best || l->due < best->due))
                        best = l;
        *ret_due = best ? best->due : mono_now() + keeper_interval(k);
        return best;
}

/* Record the outcome r of refreshing l. Lock held. */
static void keeper_done(struct ret_keeper *k, struct keeper_lease *l, int r) {
        if (r == -ENOENT || r == -EINVAL)
                l->gone = true;
        else
                l->due = mono_now() + (r < 0 && !l->lease_id[0] ? MIN(keeper_interval(k), (uint32_t)KEEPER_RETRY)
                                                                 : keeper_interval(k));
        if (!l->tried) {
                l->tried = true;
                l->first = r;
                pthread_cond_broadcast(&k->tried_cond);
        }
}

static void *keeper_thread(void *arg) {
        struct ret_keeper *k = arg;

        (void)store_thread_background(true); /* the mount's reads judge the remote, not us */
        pthread_mutex_lock(&k->lock);
        while (!k->stop) {
                int64_t due;
                struct keeper_lease *l = keeper_next(k, &due);
                int r;

                if (!l || due > mono_now()) {
                        struct timespec ts = { .tv_sec = (time_t)due };
                        (void)pthread_cond_timedwait(&k->cond, &k->lock, &ts);
                        continue; /* woken: work may have come; look again */
                }
                /* Nodes are only prepended and live until the keeper is
                 * freed; only this thread touches lease_id and last_err. */
                pthread_mutex_unlock(&k->lock);
                r = keeper_refresh(k, l);
                pthread_mutex_lock(&k->lock);
                keeper_done(k, l, r);
        }
        pthread_mutex_unlock(&k->lock);
        return NULL;
}

/* The lease on vm/id, added when new (due at once). Lock held. */
static int keeper_find_add(struct ret_keeper *k, const char *vm, const char *id, struct keeper_lease **ret) {
        struct keeper_lease *l;
        int r;

        for (l = k->head; l; l = l->next)
                if (strcmp(l->vm, vm) == 0 && strcmp(l->id, id) == 0) {
                        if (l->gone) { /* asked for again: try again */
                                l->gone = false;
                                l->due = 0;
                                pthread_cond_signal(&k->cond);
                        }
                        *ret = l;
                        return 0;
                }
        if (!k->running) {
                r = -pthread_create(&k->tid, NULL, keeper_thread, k);
                if (r < 0)
                        return r;
                k->running = true;
        }
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        snprintf(l->vm, sizeof l->vm, "%s", vm);
        snprintf(l->id, sizeof l->id, "%s", id);
        l->next = k->head;
        k->head = l;
        pthread_cond_signal(&k->cond);
        *ret = l;
        return 0;
}

/* Add vm/id (no I/O); with wait, until the keeper's first take of it has
 * been tried: 0 taken, -ENOENT the point is gone, or that take's error. */
static int keeper_get(struct ret_keeper *k, const char *vm, const char *id, bool wait) {
        struct keeper_lease *l;
        int r;

        if (strlen(vm) >= sizeof l->vm || strlen(id) != POINT_ID_LEN)
                return -EINVAL;
        pthread_mutex_lock(&k->lock);
        r = keeper_find_add(k, vm, id, &l);
        while (wait && r == 0 && !l->tried)
                pthread_cond_wait(&k->tried_cond, &k->lock);
        if (wait && r == 0)
                r = l->gone ? -ENOENT : l->first;
        pthread_mutex_unlock(&k->lock);
        return r;
}

int ret_keeper_add(struct ret_keeper *k, const char *vm, const char *id) {
        return keeper_get(k, vm, id, false);
}

int ret_keeper_take(struct ret_keeper *k, const char *vm, const char *id) {
        return keeper_get(k, vm, id, true);
}

void ret_keeper_free(struct ret_keeper *k) {
        if (!k)
                return;
        pthread_mutex_lock(&k->lock);
        k->stop = true;
        pthread_cond_broadcast(&k->cond);
        pthread_mutex_unlock(&k->lock);
        if (k->running)
                pthread_join(k->tid, NULL);
        while (k->head) {
                struct keeper_lease *l = k->head;
                int r;

                k->head = l->next;
                if (l->lease_id[0] && (r = ret_lease_drop(k->s, l->vm, l->id, l->lease_id)) < 0)
                        log_error_errno(r, "dropping the lease on point %s/%s failed (it expires in %us)", l->vm,
                                        l->id, k->ttl);
                free(l);
        }
        pthread_cond_destroy(&k->tried_cond);
        pthread_cond_destroy(&k->cond);
        pthread_mutex_destroy(&k->lock);
        free(k);
}
