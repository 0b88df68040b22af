/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Retention policy: defaults, stored default and per-VM override, parse
 * errors; thinning on synthetic timelines with a fake clock: the site-
 * recovery table row by row, app points thinned separately, the keep
 * rules, what is always kept, a point in the future. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "retention.h"
#include "store.h"
#include "unit.h"

#define H 3600
#define D (24 * H)
/* A fake "now": 2026-12-07T12:00:00Z. */
#define NOW ((time_t)1796644800)

static void test_table_rows(void) {
        /* Row by row: (retention, age) -> bucket width. */
        CHECK(ret_thin_bucket(D, 0) == 0);
        CHECK(ret_thin_bucket(D, 2 * H - 1) == 0);
        CHECK(ret_thin_bucket(D, 2 * H) == H);
        CHECK(ret_thin_bucket(D, D) == H);
        CHECK(ret_thin_bucket(D, D + 1) == UINT32_MAX);
        CHECK(ret_thin_bucket(2 * D, 3 * H) == 2 * H);
        CHECK(ret_thin_bucket(7 * D, 6 * D) == 2 * H);
        CHECK(ret_thin_bucket(7 * D, 7 * D + 1) == UINT32_MAX);
        CHECK(ret_thin_bucket(15 * D, 6 * D) == 2 * H);
        CHECK(ret_thin_bucket(15 * D, 7 * D) == 4 * H);
        CHECK(ret_thin_bucket(15 * D, 15 * D) == 4 * H);
        CHECK(ret_thin_bucket(15 * D, 15 * D + 1) == UINT32_MAX);
        CHECK(ret_thin_bucket(D, -5 * H) == 0); /* the future */
}

/* Points every 15 minutes for span seconds up to NOW (aligned). */
static size_t timeline(struct ret_thin_point *v, size_t cap, int64_t span, int app_every) {
        size_t n = 0;
        for (int64_t t = NOW - span; t <= NOW && n < cap; t += 15 * 60, n++)
                v[n] = (struct ret_thin_point){ .time = (time_t)t, .app = app_every && n % app_every == 0 };
        return n;
}

static size_t kept(const struct ret_thin_point *v, size_t n, int64_t from_age, int64_t to_age) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                int64_t age = NOW - v[i].time;
                if (v[i].keep && age >= from_age && age < to_age)
                        k++;
        }
        return k;
}

static void test_site_recovery_24h(void) {
        static struct ret_thin_point v[2000];
        struct ret_policy p;
        size_t n;

        ret_policy_default(&p);
        n = timeline(v, ELEMENTSOF(v), 3 * D, 0);
        ret_thin(&p, v, n, NOW);
        /* Last 2 hours: every point (ages 0, 15, ... 105 min: 8 points). */
        CHECK(kept(v, n, 0, 2 * H) == 8);
        /* 2 h .. 24 h: the newest of each UTC hour: 12:45 yesterday to
         * 09:45 today, and 10:00 (age 2 h: the rest of its hour is newer). */
        CHECK(kept(v, n, 2 * H, D) == 23);
        /* 12:00 yesterday (age 24 h) shares its hour with 12:45. */
        CHECK(kept(v, n, D, D + 1) == 0);
        /* Beyond the window: nothing (the newest is inside). */
        CHECK(kept(v, n, D + 1, 10 * D) == 0);
        /* The newest point of each hour is the one kept. */
        for (size_t i = 0; i < n; i++)
                if (v[i].keep && NOW - v[i].time > 2 * H && NOW - v[i].time < D)
                        CHECK(v[i].time % H == 45 * 60);
}

static void test_site_recovery_long(void) {
        static struct ret_thin_point v[2000];
        struct ret_policy p;
        size_t n;

        ret_policy_default(&p);
        p.retention = 3 * D;
        n = timeline(v, ELEMENTSOF(v), 4 * D, 0);
        ret_thin(&p, v, n, NOW);
        CHECK(kept(v, n, 0, 2 * H) == 8);
        /* one per 2 h, plus the bucket cut by the 2 h edge */
        CHECK(kept(v, n, 2 * H, 3 * D) == (3 * D - 2 * H) / (2 * H) + 1);
        CHECK(kept(v, n, 3 * D + 1, 5 * D) == 0);

        p.retention = 15 * D;
        n = timeline(v, ELEMENTSOF(v), 16 * D, 0);
        ret_thin(&p, v, n, NOW);
        CHECK(kept(v, n, 2 * H, 7 * D) == (7 * D - 2 * H) / (2 * H) + 1);
        /* one per 4 h from 7 days on, plus the bucket cut by the 7-day edge */
        CHECK(kept(v, n, 7 * D, 15 * D + 1) == 8 * D / (4 * H) + 1);
        CHECK(kept(v, n, 15 * D + 1, 17 * D) == 0);
}

static void test_app_separately(void) {
        static struct ret_thin_point v[200];
        struct ret_policy p;
        size_t n, apps = 0;

        ret_policy_default(&p);
        /* App point every 5th (75 min); crash thinning keeps the :45 ones. */
        n = timeline(v, ELEMENTSOF(v), D, 5);
        ret_thin(&p, v, n, NOW);
        for (size_t i = 0; i < n; i++)
                if (v[i].app && NOW - v[i].time >= 2 * H) {
                        apps++;
                        CHECK(v[i].keep != 0); /* at most one app point per hour: each kept */
                }
        CHECK(apps > 10);
}

static void test_always_kept(void) {
        struct ret_thin_point v[4];
        struct ret_policy p;

        ret_policy_default(&p);
        /* Replication stalled: every point is older than the window. */
        v[0] = (struct ret_thin_point){ .time = NOW - 10 * D, .app = true };
        v[1] = (struct ret_thin_point){ .time = NOW - 9 * D, .pinned = true };
        v[2] = (struct ret_thin_point){ .time = NOW - 8 * D };
        v[3] = (struct ret_thin_point){ .time = NOW - 7 * D };
        ret_thin(&p, v, 4, NOW);
        CHECK(v[0].keep == RET_KEEP_NEWEST_APP);
        CHECK(v[1].keep == RET_KEEP_PINNED);
        CHECK(v[2].keep == 0);
        CHECK(v[3].keep == RET_KEEP_NEWEST);

        /* A point in the future (clock skew) is kept; the table still
         * counts from now. */
        v[0] = (struct ret_thin_point){ .time = NOW - 5 * D };
        v[1] = (struct ret_thin_point){ .time = NOW - 3 * H };
        v[2] = (struct ret_thin_point){ .time = NOW - 3 * H + 60 };
        v[3] = (struct ret_thin_point){ .time = NOW + 2 * H };
        ret_thin(&p, v, 4, NOW);
        CHECK(v[0].keep == 0);
        CHECK(v[1].keep == 0); /* same hour as v[2], older */
        CHECK(v[2].keep == RET_KEEP_WINDOW);
        CHECK(v[3].keep == (RET_KEEP_FUTURE | RET_KEEP_NEWEST | RET_KEEP_WINDOW));
        ret_thin(&p, v, 0, NOW); /* nothing: no crash */
}

static void test_keep_rules(void) {
        static struct ret_thin_point v[2000];
        struct ret_policy p;
        size_t n, total = 0;

        ret_policy_default(&p);
        p.thin = RET_THIN_KEEP;
        p.keep_last = 3;
        n = timeline(v, ELEMENTSOF(v), 10 * D, 0);
        ret_thin(&p, v, n, NOW);
        for (size_t i = 0; i < n; i++)
                total += v[i].keep != 0;
        CHECK(total == 3);
        CHECK(v[n - 1].keep && v[n - 2].keep && v[n - 3].keep && !v[n - 4].keep);

        p.keep_last = 0;
        p.keep_daily = 4;
        ret_thin(&p, v, n, NOW);
        total = 0;
        for (size_t i = 0; i < n; i++)
                if (v[i].keep & RET_KEEP_WINDOW) {
                        total++;
                        /* newest of its UTC day: NOW (12:00) or 23:45 */
                        CHECK(v[i].time == NOW || v[i].time % D == D - 15 * 60);
                }
        CHECK(total == 4);

        /* OR-ed: keep_last 2 and keep_hourly 2 overlap in the newest. */
        p.keep_daily = 0;
        p.keep_last = 2;
        p.keep_hourly = 2;
        ret_thin(&p, v, n, NOW);
        total = 0;
        for (size_t i = 0; i < n; i++)
                total += v[i].keep != 0;
        CHECK(total == 2); /* 12:00 and 11:45: both rules pick the same two */

        p.keep_hourly = 0;
        p.keep_last = 0;
        p.keep_weekly = 2;
        p.keep_monthly = 1;
        ret_thin(&p, v, n, NOW);
        total = 0;
        for (size_t i = 0; i < n; i++)
                total += v[i].keep != 0;
        /* 2026-12-07 is a Monday: this week has NOW, last week's newest is
         * Sunday 23:45; the month's newest is NOW. */
        CHECK(total == 2);
}

/* Holds and leases on a point with no disks. */
static void test_holds(struct store *s) {
        struct ret_point pt = { .vm = "web01", .id = "20261207T100000Z", .block_size = 65536 };
        struct ret_hold h;
        char lease[RET_LEASE_ID_LEN + 1], lease2[RET_LEASE_ID_LEN + 1];
        time_t now = time(NULL);

        CHECK(point_id_parse(pt.id, &pt.time) == 0);
        CHECK(ret_point_commit(s, &pt) == 0);
        CHECK(ret_hold_set(s, "web01", "20261207T110000Z", 0, "x") == -ENOENT); /* no such point */
        CHECK(ret_hold_get(s, "web01", pt.id, &h) == -ENOENT);
        CHECK(ret_hold_set(s, "web01", pt.id, 0, "audit 42") == 0);
        CHECK(ret_hold_get(s, "web01", pt.id, &h) == 0);
        CHECK(h.until == 0 && strcmp(h.reason, "audit 42") == 0 && ret_hold_active(&h, now + 1000000));
        CHECK(ret_hold_set(s, "web01", pt.id, now + 3600, NULL) == 0);
        CHECK(ret_hold_get(s, "web01", pt.id, &h) == 0);
        CHECK(h.until == now + 3600 && ret_hold_active(&h, now) && !ret_hold_active(&h, now + 3600));
        CHECK(ret_hold_release(s, "web01", pt.id) == 0);
        CHECK(ret_hold_release(s, "web01", pt.id) == -ENOENT);
        CHECK(ret_hold_get(s, "web01", pt.id, &h) == -ENOENT);

        CHECK(ret_point_leased(s, "web01", pt.id, now) == 0);
        CHECK(ret_lease_take(s, "web01", "20261207T110000Z", 60, lease) == -ENOENT);
        CHECK(ret_point_leased(s, "web01", "20261207T110000Z", now) == 0); /* dropped again */
        CHECK(ret_lease_take(s, "web01", pt.id, 0, lease) == -EINVAL);
        CHECK(ret_lease_take(s, "web01", pt.id, 60, lease) == 0);
        CHECK(strlen(lease) == RET_LEASE_ID_LEN);
        CHECK(ret_point_leased(s, "web01", pt.id, now) == 1);
        CHECK(ret_point_leased(s, "web01", pt.id, now + 3600) == 0); /* expired by then */
        CHECK(ret_lease_renew(s, "web01", pt.id, lease, 7200) == 0);
        CHECK(ret_point_leased(s, "web01", pt.id, now + 3600) == 1);
        CHECK(ret_lease_take(s, "web01", pt.id, 1, lease2) == 0);
        CHECK(strcmp(lease, lease2) != 0);
        CHECK(ret_lease_drop(s, "web01", pt.id, lease) == 0);
        CHECK(ret_lease_drop(s, "web01", pt.id, lease) == 0);
        CHECK(ret_lease_renew(s, "web01", pt.id, lease, 60) == -ENOENT);
        sleep(2);
        CHECK(ret_point_leased(s, "web01", pt.id, time(NULL)) == 0); /* the 1 s lease expired */
        CHECK(ret_lease_renew(s, "web01", pt.id, lease2, 60) == -ENOENT); /* expired: lost */
        CHECK(ret_lease_drop(s, "web01", pt.id, lease2) == 0);
}

static int count_cb(void *userdata, const struct ret_prune_item *it) {
        if (strcmp(it->point->id, "20261101T000000Z") == 0)
                *(unsigned *)userdata = it->dropped ? 1000 : it->keep;
        return 0;
}

/* A lease keeps its point through a prune; an expired one does not; a
 * lease taken on a point a pruner has marked is refused. */
static void test_prune_lease(struct store *s) {
        /* db01 has the vault's default policy (site-recovery, 48 h). */
        struct ret_point pt = { .vm = "db01", .id = "20261101T000000Z", .block_size = 65536 };
        char lease[RET_LEASE_ID_LEN + 1];
        unsigned got = 0;
        size_t dropped = 9;
        const char *vm = "db01";
        struct ret_point *gone = NULL;

        CHECK(point_id_parse(pt.id, &pt.time) == 0);
        CHECK(ret_point_commit(s, &pt) == 0);
        {
                struct ret_point newer = { .vm = "db01", .id = "20261207T100000Z", .block_size = 65536 };
                CHECK(point_id_parse(newer.id, &newer.time) == 0);
                CHECK(ret_point_commit(s, &newer) == 0);
        }
        CHECK(ret_lease_take(s, "db01", pt.id, 60, lease) == 0);
        CHECK(ret_prune_points(s, &vm, 1, time(NULL), false, count_cb, &got, &dropped) == 0);
        CHECK(dropped == 0 && got == RET_KEEP_PINNED);
        CHECK(ret_lease_drop(s, "db01", pt.id, lease) == 0);
        CHECK(ret_lease_take(s, "db01", pt.id, 1, lease) == 0);
        sleep(2);
        CHECK(ret_prune_points(s, &vm, 1, time(NULL), true, count_cb, &got, &dropped) == 0);
        CHECK(dropped == 1 && got == 1000);
        CHECK(ret_point_leased(s, "db01", pt.id, time(NULL)) == 0);
        CHECK(store_put_object(s, "gc/expiring/db01/20261101T000000Z", "", 0, false) == 0);
        CHECK(ret_lease_take(s, "db01", pt.id, 60, lease) == -ENOENT);
        CHECK(ret_point_leased(s, "db01", pt.id, time(NULL)) == 0);
        CHECK(store_delete_object(s, "gc/expiring/db01/20261101T000000Z") == 0);
        CHECK(ret_prune_points(s, &vm, 1, time(NULL), false, count_cb, &got, &dropped) == 0);
        CHECK(dropped == 1 && got == 1000);
        CHECK(ret_point_load(s, "db01", pt.id, &gone) == -ENOENT);
}

static int count_leases_cb(void *userdata, const char *name, uint64_t size) {
        (void)name;
        (void)size;
        ++*(int *)userdata;
        return 0;
}

static int leases_of(struct store *s, const char *prefix) {
        int n = 0;
        CHECK(store_list(s, prefix, count_leases_cb, &n) >= 0);
        return n;
}

/* The keeper: ret_keeper_add does no I/O and the thread takes the lease;
 * ret_keeper_take waits for it (-ENOENT for a point that is not there);
 * freeing drops them. A directory vault moved away: adding still returns
 * at once, puts fail with -EIO and the vault directory is not made again
 * (what made test mount-vanish fail: an empty vault shadowed the real one
 * when it came back). */
static void test_keeper(struct store *s, const char *vault) {
        struct ret_point pt = { .vm = "web02", .id = "20261207T100000Z", .block_size = 65536 };
        char away[160], lease[RET_LEASE_ID_LEN + 1];
        struct ret_keeper *k;
        struct stat st;

        CHECK(point_id_parse(pt.id, &pt.time) == 0);
        CHECK(ret_point_commit(s, &pt) == 0);
        CHECK(ret_keeper_new(s, &k) == 0);
        CHECK(ret_keeper_take(k, "web02", "20261207T110000Z") == -ENOENT);
        CHECK(ret_keeper_add(k, "web02", pt.id) == 0);
        CHECK(ret_keeper_take(k, "web02", pt.id) == 0);
        CHECK(leases_of(s, "leases/web02/20261207T100000Z/") == 1);
        CHECK(leases_of(s, "leases/web02/20261207T110000Z/") == 0);
        ret_keeper_free(k);
        CHECK(leases_of(s, "leases/web02/") == 0);

        snprintf(away, sizeof away, "%s.away", vault);
        CHECK(rename(vault, away) == 0);
        CHECK(store_put_object(s, "leases/web02/x/y.json", "{}", 2, false) == -EIO);
        CHECK(ret_lease_take(s, "web02", pt.id, 60, lease) == -EIO);
        CHECK(ret_keeper_new(s, &k) == 0);
        CHECK(ret_keeper_add(k, "web02", pt.id) == 0); /* at once, whatever the vault */
        CHECK(ret_keeper_take(k, "web02", pt.id) == -EIO);
        CHECK(stat(vault, &st) == -1 && errno == ENOENT); /* not made again */
        ret_keeper_free(k);
        CHECK(rename(away, vault) == 0);
        CHECK(ret_lease_take(s, "web02", pt.id, 60, lease) == 0);
        CHECK(ret_lease_drop(s, "web02", pt.id, lease) == 0);
}

static void test_store(void) {
        const char *dir = unit_tmpdir("policy");
        char vault[128];
        struct store *s;
        struct ret_policy p, q;
        _cleanup_free_ char *text = NULL;

        snprintf(vault, sizeof vault, "%s/v", dir);
        CHECK(store_init(vault, 65536, 1) == 0);
        CHECK(store_open(vault, &s) == 0);
        CHECK(ret_policy_get(s, "web01", &p) == 0);
        CHECK(p.source == RET_POLICY_BUILTIN && p.retention == 86400 && p.app_frequency == 3600 && p.rpo == 900);
        p.retention = 48 * 3600;
        CHECK(ret_policy_set(s, NULL, &p) == 0);
        CHECK(ret_policy_get(s, "web01", &q) == 0);
        CHECK(q.source == RET_POLICY_VAULT && q.retention == 48 * 3600);
        p.thin = RET_THIN_KEEP;
        CHECK(ret_policy_set(s, "web01", &p) == -EINVAL); /* no keep rule */
        p.keep_daily = 7;
        CHECK(ret_policy_set(s, "web01", &p) == 0);
        CHECK(ret_policy_get(s, "web01", &q) == 0);
        CHECK(q.source == RET_POLICY_VM && q.thin == RET_THIN_KEEP && q.keep_daily == 7);
        CHECK(ret_policy_get(s, "db01", &q) == 0 && q.source == RET_POLICY_VAULT);
        CHECK(ret_policy_get(s, "../x", &q) == -EINVAL);
        CHECK(store_put_object(s, "policy/vm/bad.json", "{\"format\":1}", 12, false) == 0);
        CHECK(ret_policy_get(s, "bad", &q) == -EBADMSG);
        CHECK(store_put_object(s, "policy/vm/new.json", "{\"format\":2}", 12, false) == 0);
        CHECK(ret_policy_get(s, "new", &q) == -EPROTONOSUPPORT);
        test_holds(s);
        test_prune_lease(s);
        test_keeper(s, vault);
        text = ret_policy_format(&p);
        CHECK(text && ret_policy_parse(text, &q) == 0 && q.keep_daily == 7 && q.retention == 48 * 3600);
        store_free(s);
}

int main(void) {
        test_table_rows();
        test_site_recovery_24h();
        test_site_recovery_long();
        test_app_separately();
        test_always_kept();
        test_keep_rules();
        test_store();
        return unit_exit();
}
