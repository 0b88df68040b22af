/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Thinning: which of one VM's points a policy keeps. Buckets are aligned
 * to UTC (floor(time / width)), the newest point of a bucket is the one
 * kept, and every rule only adds to what is kept, so the result does not
 * depend on the order rules are applied in.
 */
#include <string.h>

#include "common.h"
#include "retention.h"

#define HOUR 3600
#define DAY (24 * HOUR)

uint32_t ret_thin_bucket(uint32_t retention, int64_t age) {
        if (age < 2 * HOUR)
                return 0;
        if (age > (int64_t)retention)
                return UINT32_MAX;
        if (retention <= DAY)
                return HOUR;
        if (retention <= 7 * DAY || age < 7 * DAY)
                return 2 * HOUR;
        return 4 * HOUR;
}

/* The site-recovery table over the points of v that match (all, or only
 * app-consistent ones). Newest first, so that the first point seen in a
 * bucket is its newest. */
static void thin_table(const struct ret_policy *p, struct ret_thin_point *v, size_t n, time_t now, bool app_only) {
        uint32_t last_width = 0;
        int64_t last_bucket = -1;

        for (size_t i = n; i-- > 0;) {
                int64_t age = (int64_t)now - (int64_t)v[i].time, bucket;
                uint32_t w;

                if (app_only && !v[i].app)
                        continue;
                w = ret_thin_bucket(p->retention, age);
                if (w == UINT32_MAX)
                        break; /* older ones are beyond the window too */
                if (w == 0) {
                        v[i].keep |= RET_KEEP_WINDOW;
                        continue;
                }
                bucket = (int64_t)v[i].time / w;
                if (w != last_width || bucket != last_bucket)
                        v[i].keep |= RET_KEEP_WINDOW;
                last_width = w;
                last_bucket = bucket;
        }
}

/* The calendar bucket of t: hour, day, ISO week (Monday), month. */
static int64_t cal_bucket(time_t t, int kind) {
        struct tm tm;
        int64_t days = (int64_t)t >= 0 ? (int64_t)t / DAY : -((-(int64_t)t + DAY - 1) / DAY);

        switch (kind) {
        case 0:
                return (int64_t)t >= 0 ? (int64_t)t / HOUR : -((-(int64_t)t + HOUR - 1) / HOUR);
        case 1:
                return days;
        case 2:
                /* 1970-01-01 was a Thursday: day 4 of its ISO week. */
                return days + 3 >= 0 ? (days + 3) / 7 : -((-(days + 3) + 6) / 7);
        default:
                gmtime_r(&t, &tm);
                return (int64_t)tm.tm_year * 12 + tm.tm_mon;
        }
}

static void keep_rule(struct ret_thin_point *v, size_t n, int kind, uint32_t count) {
        int64_t last = 0;
        uint32_t seen = 0;

        for (size_t i = n; i-- > 0 && seen < count;) {
                int64_t b = cal_bucket(v[i].time, kind);
                if (seen == 0 || b != last) {
                        v[i].keep |= RET_KEEP_WINDOW;
                        seen++;
                        last = b;
                }
        }
}

static void thin_keep(const struct ret_policy *p, struct ret_thin_point *v, size_t n) {
        for (size_t i = n, k = 0; i-- > 0 && k < p->keep_last; k++)
                v[i].keep |= RET_KEEP_WINDOW;
        keep_rule(v, n, 0, p->keep_hourly);
        keep_rule(v, n, 1, p->keep_daily);
        keep_rule(v, n, 2, p->keep_weekly);
        keep_rule(v, n, 3, p->keep_monthly);
}

void ret_thin(const struct ret_policy *p, struct ret_thin_point *v, size_t n, time_t now) {
        bool app_seen = false;

        for (size_t i = 0; i < n; i++) {
                v[i].keep = 0;
                if (v[i].pinned)
                        v[i].keep |= RET_KEEP_PINNED;
                if (v[i].time > now)
                        v[i].keep |= RET_KEEP_FUTURE;
        }
        if (n == 0)
                return;
        v[n - 1].keep |= RET_KEEP_NEWEST;
        for (size_t i = n; i-- > 0 && !app_seen;)
                if (v[i].app) {
                        v[i].keep |= RET_KEEP_NEWEST_APP;
                        app_seen = true;
                }
        if (p->thin == RET_THIN_KEEP) {
                thin_keep(p, v, n);
                return;
        }
        thin_table(p, v, n, now, false);
        thin_table(p, v, n, now, true);
}
