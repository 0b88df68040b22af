/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the garbage collector shares with writers through the vault
 * (docs/FORMAT.md "Garbage collection"): the pending record of retired
 * segments and condemned packs, writer sessions, the GC lock.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "gc_i.h"

#define SESSION_TTL_DEFAULT 600
#define GRACE_MAX 60

/* Read once per process: writers ask on every block (store_writer_known). */
uint32_t gc_session_ttl(void) {
        static _Atomic uint32_t ttl;
        uint32_t t = atomic_load_explicit(&ttl, memory_order_relaxed);

        if (t == 0) {
                const char *e = getenv("RPFS_GC_SESSION_TTL");
                long v = e ? strtol(e, NULL, 10) : 0;
                t = v > 0 && v < 86400 * 7 ? (uint32_t)v : SESSION_TTL_DEFAULT;
                atomic_store_explicit(&ttl, t, memory_order_relaxed);
        }
        return t;
}

void gc_crash_point(const char *stage) {
        const char *e = getenv("RPFS_GC_CRASH_AT");
        if (e && strcmp(e, stage) == 0) {
                log_info("gc: crash hook at stage %s", stage);
                raise(SIGKILL);
        }
}

size_t gc_u64_find(const uint64_t *v, size_t n, uint64_t x) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (v[mid] < x)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < n && v[lo] == x ? lo : n;
}

bool gc_u64_in(const uint64_t *v, size_t n, uint64_t x) {
        return gc_u64_find(v, n, x) < n;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

void gc_record_free(struct gc_record *r) {
        for (size_t i = 0; i < r->n_retired; i++)
                free(r->retired[i]);
        for (size_t i = 0; i < r->n_sessions; i++)
                free(r->sessions[i]);
        free(r->retired);
        free(r->sessions);
        free(r->condemned);
        *r = (struct gc_record){ 0 };
}

static int strings_of(json_t *a, char ***ret, size_t *ret_n) {
        size_t n = json_array_size(a);
        char **v = calloc(MAX(n, 1), sizeof *v);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *s = json_string_value(json_array_get(a, i));
                if (!s || !(v[i] = strdup(s))) {
                        for (size_t k = 0; k < i; k++)
                                free(v[k]);
                        free(v);
                        return s ? -ENOMEM : -EBADMSG;
                }
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

static int record_parse(const char *text, struct gc_record *r) {
        json_t *o = json_loads(text, 0, NULL), *ret, *con, *ses;
        json_int_t format = 0, created = 0;
        int rc = -EBADMSG;

        *r = (struct gc_record){ 0 };
        if (!o)
                return -EBADMSG;
        if (json_unpack(o, "{s:I, s:I, s:o, s:o, s:o}", "format", &format, "created", &created, "retired", &ret,
                        "condemned", &con, "sessions", &ses) < 0 ||
            format != 1 || !json_is_array(ret) || !json_is_array(con))
                goto out;
        r->created = created;
        rc = strings_of(ret, &r->retired, &r->n_retired);
        if (rc == 0 && json_is_array(ses)) {
                rc = strings_of(ses, &r->sessions, &r->n_sessions);
                r->sessions_known = true;
        }
        if (rc < 0)
                goto out;
        r->condemned = calloc(MAX(json_array_size(con), 1), sizeof *r->condemned);
        if (!r->condemned) {
                rc = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < json_array_size(con); i++) {
                const char *s = json_string_value(json_array_get(con, i));
                uint8_t b[8];
                if (!s || strlen(s) != 16 || hex_decode(s, b, 8) < 0) {
                        rc = -EBADMSG;
                        goto out;
                }
                r->condemned[r->n_condemned++] = strtoull(s, NULL, 16);
        }
        qsort(r->condemned, r->n_condemned, sizeof *r->condemned, cmp_u64);
        rc = 0;
out:
        json_decref(o);
        if (rc < 0)
                gc_record_free(r);
        return rc;
}

int gc_record_load(struct store *s, struct gc_record *ret) {
        _cleanup_free_ char *text = NULL;
        int r = store_get_object(s, GC_RECORD_NAME, &text, NULL);
        if (r < 0)
                return r;
        return record_parse(text, ret);
}

int gc_record_save(struct store *s, const struct gc_record *r, bool exclusive) {
        json_t *o = json_object(), *ret = json_array(), *con = json_array(), *ses = r->sessions_known ? json_array() : json_null();
        _cleanup_free_ char *text = NULL;
        int rc = -ENOMEM;

        if (!o || !ret || !con || !ses)
                goto out;
        for (size_t i = 0; i < r->n_retired; i++)
                json_array_append_new(ret, json_string(r->retired[i]));
        for (size_t i = 0; i < r->n_condemned; i++) {
                char hex[17];
                snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->condemned[i]);
                json_array_append_new(con, json_string(hex));
        }
        for (size_t i = 0; r->sessions_known && i < r->n_sessions; i++)
                json_array_append_new(ses, json_string(r->sessions[i]));
        json_object_set_new(o, "format", json_integer(1));
        json_object_set_new(o, "created", json_integer(r->created));
        json_object_set_new(o, "retired", ret);
        json_object_set_new(o, "condemned", con);
        json_object_set_new(o, "sessions", ses);
        ret = con = ses = NULL;
        text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (text)
                rc = store_put_object(s, GC_RECORD_NAME, text, strlen(text), exclusive);
out:
        json_decref(ret);
        json_decref(con);
        json_decref(ses);
        json_decref(o);
        return rc;
}

/* ---- holders: sessions and the lock ---- */

int gc_holder_put(struct store *s, const char *name, uint32_t ttl, bool exclusive, int64_t *ret_expires) {
        char host[256] = "", text[512];
        int64_t expires = (int64_t)time(NULL) + ttl;

        gethostname(host, sizeof host - 1);
        for (char *p = host; *p; p++)
                if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
                        *p = '_';
        snprintf(text, sizeof text, "{\"format\":1,\"expires\":%lld,\"host\":\"%s\",\"pid\":%d}\n",
                 (long long)expires, host, (int)getpid());
        if (ret_expires)
                *ret_expires = expires;
        return store_put_object(s, name, text, strlen(text), exclusive);
}

int gc_holder_alive(struct store *s, const char *name, time_t now, bool pid_keeps) {
        _cleanup_free_ char *text = NULL;
        json_int_t expires = 0, pid = 0;
        const char *host = NULL;
        char me[256] = "";
        uint32_t grace = MIN(gc_session_ttl(), GRACE_MAX);
        json_t *o;
        int r, alive;

        r = store_get_object(s, name, &text, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        o = json_loads(text, 0, NULL);
        if (!o || json_unpack(o, "{s:I, s?s, s?I}", "expires", &expires, "host", &host, "pid", &pid) < 0) {
                json_decref(o);
                return 1; /* unreadable: counts, never drop on doubt */
        }
        alive = (int64_t)now <= (int64_t)expires + grace;
        gethostname(me, sizeof me - 1);
        for (char *p = me; *p; p++)
                if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
                        *p = '_';
        /* A holder of this host whose process is gone has ended (and, with
         * pid_keeps, one whose process runs has not). */
        if (host && pid > 0 && strcmp(host, me) == 0) {
                bool runs = !(kill((pid_t)pid, 0) < 0 && errno == ESRCH);
                alive = runs && (alive || pid_keeps);
        }
        json_decref(o);
        return alive;
}

/* ---- the state writers read ---- */

int store_gc_state_load(struct store *s) {
        struct gc_record rec;
        int r = gc_record_load(s, &rec);

        if (r == -ENOENT)
                rec = (struct gc_record){ 0 };
        else if (r < 0)
                return r;
        pthread_rwlock_wrlock(&s->idx_lock);
        for (size_t i = 0; i < s->n_gc_retired; i++)
                free(s->gc_retired[i]);
        free(s->gc_retired);
        free(s->gc_condemned);
        s->gc_retired = TAKE_PTR(rec.retired);
        s->n_gc_retired = rec.n_retired;
        rec.n_retired = 0;
        s->gc_condemned = TAKE_PTR(rec.condemned);
        s->n_gc_condemned = rec.n_condemned;
        rec.n_condemned = 0;
        for (size_t i = 0; i < s->n_segs; i++) {
                s->segs[i].retired = false;
                for (size_t k = 0; k < s->n_gc_retired; k++)
                        if (strcmp(s->segs[i].name, s->gc_retired[k]) == 0)
                                s->segs[i].retired = true;
        }
        pthread_rwlock_unlock(&s->idx_lock);
        gc_record_free(&rec);
        return 0;
}
