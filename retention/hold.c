/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Holds and leases: small objects beside the points that keep a point
 * from being pruned. A hold lasts until released (or its time); a lease
 * until its expiry, which its holder keeps pushing forward while it uses
 * the point.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "common.h"
#include "retention.h"
#include "retention_i.h"

#define HOLD_FORMAT 1

static int point_names_ok(const char *vm, const char *id) {
        if (!name_is_valid(vm) || !id || strlen(id) != POINT_ID_LEN || !name_is_valid(id))
                return -EINVAL;
        return 0;
}

static int point_exists(struct store *s, const char *vm, const char *id) {
        struct ret_point *p;
        int r = ret_point_load(s, vm, id, &p);
        if (r >= 0)
                ret_point_free(p);
        return r;
}

int ret_hold_set(struct store *s, const char *vm, const char *id, time_t until, const char *reason) {
        char name[256], when[21], created[21];
        json_t *o;
        int r;

        r = point_names_ok(vm, id);
        if (r < 0)
                return r;
        r = point_exists(s, vm, id);
        if (r < 0)
                return r;
        time_format_iso(until, when);
        time_format_iso(time(NULL), created);
        o = json_pack("{s:i, s:s, s:s, s:s?, s:s, s:s}", "format", HOLD_FORMAT, "vm", vm, "id", id, "until",
                      until ? when : NULL, "created", created, "reason", reason ? reason : "");
        snprintf(name, sizeof name, "holds/%s/%s.json", vm, id);
        return ret_put_json(s, name, o, false);
}

int ret_hold_release(struct store *s, const char *vm, const char *id) {
        char name[256];
        int r = point_names_ok(vm, id);

        if (r < 0)
                return r;
        snprintf(name, sizeof name, "holds/%s/%s.json", vm, id);
        r = store_delete_object(s, name);
        return r == -ENOTDIR ? -ENOENT : r;
}

/* "2026-11-22T10:15:00Z" into seconds. */
static int iso_parse(const char *s, time_t *ret) {
        struct tm tm = { 0 };
        const char *e = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!e || *e)
                return -EBADMSG;
        *ret = timegm(&tm);
        return 0;
}

int ret_hold_get(struct store *s, const char *vm, const char *id, struct ret_hold *ret) {
        _cleanup_free_ char *text = NULL;
        const char *created = "", *reason = "";
        json_t *until = NULL;
        json_error_t err;
        json_t *o;
        char name[256];
        int r = point_names_ok(vm, id);

        if (r < 0)
                return r;
        snprintf(name, sizeof name, "holds/%s/%s.json", vm, id);
        r = store_get_object(s, name, &text, NULL);
        if (r < 0)
                return r == -ENOTDIR ? -ENOENT : r;
        o = json_loads(text, 0, &err);
        if (!o)
                return -EBADMSG;
        *ret = (struct ret_hold){ 0 };
        r = -EBADMSG;
        if (json_unpack(o, "{s?o, s?s, s?s}", "until", &until, "created", &created, "reason", &reason) < 0)
                goto out;
        if (until && !json_is_null(until) &&
            (!json_is_string(until) || iso_parse(json_string_value(until), &ret->until) < 0))
                goto out;
        (void)iso_parse(created, &ret->created);
        snprintf(ret->reason, sizeof ret->reason, "%s", reason);
        r = 0;
out:
        json_decref(o);
        return r;
}

bool ret_hold_active(const struct ret_hold *h, time_t now) {
        return h->until == 0 || h->until > now;
}

/* ---- leases ---- */

/* The time `local` (this host's clock) on the vault's clock: lease
 * expiries are written and judged on the vault's clock (store_skew), so
 * that a host whose clock is wrong neither writes a lease that is already
 * over nor expires another host's lease early. */
static int lease_clock(struct store *s, time_t local, time_t *ret) {
        long skew;
        int r = store_skew(s, &skew);
        if (r < 0)
                return r;
        *ret = local - skew;
        return 0;
}

static int lease_put(struct store *s, const char *vm, const char *id, const char *lease_id, uint32_t ttl,
                     bool exclusive) {
        char name[256], text[128];
        time_t now;
        int r = lease_clock(s, time(NULL), &now);

        if (r < 0)
                return r;
        snprintf(name, sizeof name, "leases/%s/%s/%s.json", vm, id, lease_id);
        snprintf(text, sizeof text, "{\"format\":1,\"expires\":%lld}\n", (long long)now + ttl);
        return store_put_object(s, name, text, strlen(text), exclusive);
}

/* The expiry of a lease: 0, -ENOENT, -EBADMSG. */
static int lease_expiry(struct store *s, const char *name, time_t *ret) {
        _cleanup_free_ char *text = NULL;
        json_error_t err;
        json_t *o;
        json_int_t e;
        int r;

        r = store_get_object(s, name, &text, NULL);
        if (r < 0)
                return r == -ENOTDIR ? -ENOENT : r;
        o = json_loads(text, 0, &err);
        r = o && json_unpack(o, "{s:I}", "expires", &e) == 0 ? 0 : -EBADMSG;
        if (r == 0)
                *ret = (time_t)e;
        json_decref(o);
        return r;
}

int ret_lease_take(struct store *s, const char *vm, const char *id, uint32_t ttl,
                   char lease_id[static RET_LEASE_ID_LEN + 1]) {
        uint64_t rnd;
        int r = point_names_ok(vm, id);

        if (r < 0)
                return r;
        if (ttl == 0)
                return -EINVAL;
        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
                return -errno;
        snprintf(lease_id, RET_LEASE_ID_LEN + 1, "%016llx", (unsigned long long)rnd);
        r = lease_put(s, vm, id, lease_id, ttl, true);
        if (r < 0)
                return r;
        /* Lease first, then the point and the pruner's mark (docs/FORMAT.md
         * "Holds and leases"). */
        r = point_exists(s, vm, id);
        if (r >= 0) {
                _cleanup_free_ char *mark = NULL;
                char name[256];

                snprintf(name, sizeof name, "gc/expiring/%s/%s", vm, id);
                r = store_get_object(s, name, &mark, NULL);
                r = r >= 0 ? -ENOENT : r == -ENOENT || r == -ENOTDIR ? 0 : r;
        }
        if (r < 0) {
                (void)ret_lease_drop(s, vm, id, lease_id);
                return r;
        }
        return 0;
}

int ret_lease_renew(struct store *s, const char *vm, const char *id, const char *lease_id, uint32_t ttl) {
        char name[256];
        time_t e, now;
        int r = point_names_ok(vm, id);

        if (r < 0)
                return r;
        snprintf(name, sizeof name, "leases/%s/%s/%s.json", vm, id, lease_id);
        r = lease_expiry(s, name, &e);
        if (r < 0)
                return r;
        r = lease_clock(s, time(NULL), &now);
        if (r < 0)
                return r;
        if (e <= now)
                return -ENOENT; /* expired: a prune may not have seen it */
        return lease_put(s, vm, id, lease_id, ttl, false);
}

int ret_lease_drop(struct store *s, const char *vm, const char *id, const char *lease_id) {
        char name[256];
        int r = point_names_ok(vm, id);

        if (r < 0)
                return r;
        snprintf(name, sizeof name, "leases/%s/%s/%s.json", vm, id, lease_id);
        r = store_delete_object(s, name);
        return r == -ENOENT || r == -ENOTDIR ? 0 : r;
}

struct leased_ctx {
        struct store *s;
        time_t now;
        bool found;
};

static int leased_cb(void *userdata, const char *name, uint64_t size) {
        struct leased_ctx *c = userdata;
        time_t e;

        (void)size;
        if (lease_expiry(c->s, name, &e) == 0 && e > c->now) {
                c->found = true;
                return -ECANCELED; /* one is enough */
        }
        return 0;
}

int ret_point_leased(struct store *s, const char *vm, const char *id, time_t now) {
        struct leased_ctx c = { s, now, false };
        char prefix[256];
        int r = point_names_ok(vm, id);

        if (r < 0)
                return r;
        r = lease_clock(s, now, &c.now);
        if (r < 0)
                return r;
        snprintf(prefix, sizeof prefix, "leases/%s/%s/", vm, id);
        r = store_list(s, prefix, leased_cb, &c);
        if (r < 0 && r != -ECANCELED)
                return r;
        return c.found ? 1 : 0;
}
