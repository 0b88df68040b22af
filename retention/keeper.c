/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A lease keeper: the leases one process holds (a mount's open points, a
 * failback's source point), renewed from one thread every ttl/3 and
 * dropped when the keeper is freed. A renew or take that fails is logged
 * and tried again on the next round; a holder that dies stops renewing
 * and its leases expire by themselves after the ttl.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "retention.h"

struct keeper_lease {
        struct keeper_lease *next;  /* never unlinked before ret_keeper_free */
        char vm[65], id[POINT_ID_LEN + 1];
        char lease_id[RET_LEASE_ID_LEN + 1]; /* "": none held (a take failed) */
};

struct ret_keeper {
        struct store *s;
        uint32_t ttl;
        pthread_mutex_t lock;       /* protects head, stop, running; serialises takes */
        pthread_cond_t cond;
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
        *ret = k;
        return 0;
}

/* Take or renew l's lease. 0 or -errno, logged. */
static int keeper_refresh(struct ret_keeper *k, struct keeper_lease *l) {
        int r;

        if (l->lease_id[0]) {
                r = ret_lease_renew(k->s, l->vm, l->id, l->lease_id, k->ttl);
                if (r != -ENOENT) {
                        if (r < 0)
                                log_error_errno(r, "renewing the lease on point %s/%s failed (tried again in %us)",
                                                l->vm, l->id, MAX(k->ttl / 3, 1u));
                        return r;
                }
                log_error("the lease on point %s/%s expired; taking a new one", l->vm, l->id);
                l->lease_id[0] = 0;
        }
        r = ret_lease_take(k->s, l->vm, l->id, k->ttl, l->lease_id);
        if (r < 0) {
                l->lease_id[0] = 0;
                log_error_errno(r, "taking a lease on point %s/%s failed", l->vm, l->id);
        }
        return r;
}

static void *keeper_thread(void *arg) {
        struct ret_keeper *k = arg;

        pthread_mutex_lock(&k->lock);
        while (!k->stop) {
                struct timespec ts;
                struct keeper_lease *head;

                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += MAX(k->ttl / 3, 1u);
                while (!k->stop && pthread_cond_timedwait(&k->cond, &k->lock, &ts) == 0)
                        ;
                if (k->stop)
                        break;
                /* Nodes are only prepended and live until the keeper is
                 * freed, and only this thread changes a lease_id after
                 * its take: the chain from head is safe without the lock. */
                head = k->head;
                pthread_mutex_unlock(&k->lock);
                for (struct keeper_lease *l = head; l; l = l->next)
                        (void)keeper_refresh(k, l);
                pthread_mutex_lock(&k->lock);
        }
        pthread_mutex_unlock(&k->lock);
        return NULL;
}

int ret_keeper_add(struct ret_keeper *k, const char *vm, const char *id) {
        struct keeper_lease *l;
        int r = 0;

        if (strlen(vm) >= sizeof l->vm || strlen(id) != POINT_ID_LEN)
                return -EINVAL;
        pthread_mutex_lock(&k->lock);
        for (l = k->head; l; l = l->next)
                if (strcmp(l->vm, vm) == 0 && strcmp(l->id, id) == 0)
                        goto out;
        if (!k->running) {
                r = -pthread_create(&k->tid, NULL, keeper_thread, k);
                if (r < 0)
                        goto out;
                k->running = true;
        }
        l = calloc(1, sizeof *l);
        if (!l) {
                r = -ENOMEM;
                goto out;
        }
        snprintf(l->vm, sizeof l->vm, "%s", vm);
        snprintf(l->id, sizeof l->id, "%s", id);
        r = ret_lease_take(k->s, vm, id, k->ttl, l->lease_id);
        if (r == -ENOENT || r == -EINVAL) {
                free(l); /* gone, or being pruned: nothing to keep */
                goto out;
        }
        if (r < 0) {
                /* Kept without a lease; the thread tries again. */
                log_error_errno(r, "taking a lease on point %s/%s failed (tried again in %us)", vm, id,
                                MAX(k->ttl / 3, 1u));
                l->lease_id[0] = 0;
        }
        l->next = k->head;
        k->head = l;
out:
        pthread_mutex_unlock(&k->lock);
        return r;
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
        pthread_cond_destroy(&k->cond);
        pthread_mutex_destroy(&k->lock);
        free(k);
}
