/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Azure: running requests.
 *
 * A *session* is one curl multi handle with AZ_PAR easy handles; the multi
 * keeps the session's connections alive between requests. Sessions are
 * pooled: a caller takes one for the duration of a call and returns it, so
 * any number of threads run requests at once (up to AZ_MAX_SESSIONS, then
 * they wait for a free session) and no lock is held across network I/O.
 * One call may run several requests in parallel on its session (the blocks
 * of a large object). A curl share handle shares DNS and TLS sessions.
 *
 * Every attempt is signed anew (x-ms-date). Failed attempts with 408, 429,
 * 500, 502, 503, 504 or a connection failure are retried with exponential
 * backoff and jitter, at least as late as Retry-After says, until the
 * request's retry window (RPFS_AZURE_RETRY_SECONDS, default 60) would be
 * exceeded; once one request has given up that way, later ones try once
 * until a request succeeds again. Every attempt has a stall timeout and an
 * overall timeout (RPFS_AZURE_TIMEOUT, default 30 s, plus time for the
 * bytes to move).
 * HTTP and curl outcomes become -errno in azure-wire.c, and nowhere else.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "azure_i.h"
#include "backend_i.h"
#include "common.h"

#define AZ_PAR 8
#define AZ_MAX_SESSIONS 32
#define BACKOFF_BASE 0.2
#define BACKOFF_CAP 8.0

enum { REQ_PENDING = 0, REQ_RUNNING, REQ_DONE };

struct az_session {
        CURLM *multi;
        CURL *easy[AZ_PAR];
        struct curl_slist *hdrs[AZ_PAR];
        char *urls[AZ_PAR];
        struct az_req *owner[AZ_PAR];
        struct az_session *next;
};

struct az_http {
        const struct az_cfg *cfg;
        CURLSH *share;
        pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];
        double retry_window;
        bool bounded; /* no call outlasts retry_window (store_options) */
        long io_timeout_ms;
        /* A request outlasted its retries on a network failure or 5xx: the
         * endpoint is down, so later requests try once instead of waiting
         * out a whole window each (say, a failed replicate cleaning up its
         * packs). The next success clears it. Atomic. */
        bool down;

        pthread_mutex_t lock; /* protects idle, n_sessions */
        pthread_cond_t cond;
        struct az_session *idle;
        unsigned n_sessions;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void) {
        curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *u) {
        struct az_http *h = u;
        pthread_mutex_lock(&h->share_lock[data % CURL_LOCK_DATA_LAST]);
}

static void share_unlock(CURL *c, curl_lock_data data, void *u) {
        struct az_http *h = u;
        pthread_mutex_unlock(&h->share_lock[data % CURL_LOCK_DATA_LAST]);
}

static double env_seconds(const char *name, double def) {
        const char *v = getenv(name);
        char *end;
        double d;

        if (!v || !*v)
                return def;
        d = strtod(v, &end);
        if (*end || d < 0 || d > 86400) {
                log_warn("ignoring invalid %s='%s' (seconds)", name, v);
                return def;
        }
        return d;
}

int az_http_new(const struct az_cfg *cfg, const struct store_options *o, struct az_http **ret) {
        struct az_http *h;

        pthread_once(&curl_once, curl_init);
        if (curl_init_rc != CURLE_OK)
                return -EIO;
        h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->cfg = cfg;
        h->retry_window = o && o->retry_seconds >= 0 ? o->retry_seconds : env_seconds("RPFS_AZURE_RETRY_SECONDS", 60);
        h->bounded = o && o->bounded;
        h->io_timeout_ms = (long)(1000 * env_seconds("RPFS_AZURE_TIMEOUT", 30));
        if (h->io_timeout_ms < 100)
                h->io_timeout_ms = 100;
        pthread_mutex_init(&h->lock, NULL);
        pthread_cond_init(&h->cond, NULL);
        for (unsigned i = 0; i < CURL_LOCK_DATA_LAST; i++)
                pthread_mutex_init(&h->share_lock[i], NULL);
        h->share = curl_share_init();
        if (h->share) {
                curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
                curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
                curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
                curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
                curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        }
        *ret = h;
        return 0;
}

static void session_free(struct az_session *s) {
        if (!s)
                return;
        for (unsigned i = 0; i < AZ_PAR; i++) {
                if (s->easy[i])
                        curl_easy_cleanup(s->easy[i]);
                curl_slist_free_all(s->hdrs[i]);
                free(s->urls[i]);
        }
        if (s->multi)
                curl_multi_cleanup(s->multi);
        free(s);
}

void az_http_free(struct az_http *h) {
        if (!h)
                return;
        while (h->idle) {
                struct az_session *s = h->idle;
                h->idle = s->next;
                session_free(s);
        }
        if (h->share)
                curl_share_cleanup(h->share);
        for (unsigned i = 0; i < CURL_LOCK_DATA_LAST; i++)
                pthread_mutex_destroy(&h->share_lock[i]);
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->lock);
        free(h);
}

static int session_new(struct az_session **ret) {
        struct az_session *s = calloc(1, sizeof *s);

        if (!s)
                return -ENOMEM;
        s->multi = curl_multi_init();
        if (!s->multi)
                goto fail;
        curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)AZ_PAR);
        for (unsigned i = 0; i < AZ_PAR; i++) {
                s->easy[i] = curl_easy_init();
                if (!s->easy[i])
                        goto fail;
        }
        *ret = s;
        return 0;
fail:
        session_free(s);
        return -ENOMEM;
}

static int session_get(struct az_http *h, struct az_session **ret) {
        struct az_session *s;
        int r;

        pthread_mutex_lock(&h->lock);
        while (!h->idle && h->n_sessions >= AZ_MAX_SESSIONS)
                pthread_cond_wait(&h->cond, &h->lock);
        s = h->idle;
        if (s) {
                h->idle = s->next;
                pthread_mutex_unlock(&h->lock);
                *ret = s;
                return 0;
        }
        h->n_sessions++;
        pthread_mutex_unlock(&h->lock);

        r = session_new(ret);
        if (r < 0) {
                pthread_mutex_lock(&h->lock);
                h->n_sessions--;
                pthread_cond_signal(&h->cond);
                pthread_mutex_unlock(&h->lock);
        }
        return r;
}

static void session_put(struct az_http *h, struct az_session *s) {
        pthread_mutex_lock(&h->lock);
        s->next = h->idle;
        h->idle = s;
        pthread_cond_signal(&h->cond);
        pthread_mutex_unlock(&h->lock);
}

void az_req_header(struct az_req *r, const char *name, const char *value) {
        if (r->n_headers < AZ_MAX_HEADERS)
                r->headers[r->n_headers++] = (struct az_kv){ name, value };
}

void az_req_query(struct az_req *r, const char *name, const char *value) {
        if (r->n_query < AZ_MAX_PARAMS)
                r->query[r->n_query++] = (struct az_kv){ name, value };
}

void az_req_done(struct az_req *r) {
        free(r->resp);
        r->resp = NULL;
}

/* ---- one attempt ---- */

/* The URL and the path (for signing) of a request. */
static int build_url(const struct az_cfg *c, const struct az_req *r, char **ret_url, char **ret_path) {
        _cleanup_free_ char *blob = r->blob ? az_encode(r->blob, true) : NULL;
        _cleanup_free_ char *path = NULL;
        char *url = NULL, *q;
        size_t len;
        FILE *f;

        if (r->blob && !blob)
                return -ENOMEM;
        if (asprintf(&path, "%s/%s%s%s", c->ep_path, c->container, blob ? "/" : "", blob ? blob : "") < 0)
                return -ENOMEM;
        f = open_memstream(&url, &len);
        if (!f)
                return -ENOMEM;
        fprintf(f, "%s/%s%s%s", c->endpoint, c->container, blob ? "/" : "", blob ? blob : "");
        for (size_t i = 0; i < r->n_query; i++) {
                q = az_encode(r->query[i].value, false);
                if (!q) {
                        fclose(f);
                        free(url);
                        return -ENOMEM;
                }
                fprintf(f, "%c%s=%s", i ? '&' : '?', r->query[i].name, q);
                free(q);
        }
        if (c->sas)
                fprintf(f, "%c%s", r->n_query ? '&' : '?', c->sas);
        if (fclose(f) != 0) {
                free(url);
                return -ENOMEM;
        }
        *ret_url = url;
        *ret_path = TAKE_PTR(path);
        return 0;
}

static int build_headers(struct az_http *h, const struct az_req *r, const char *path, struct curl_slist **ret) {
        const struct az_cfg *c = h->cfg;
        struct az_kv all[AZ_MAX_HEADERS + 3];
        struct curl_slist *l = NULL, *nl;
        char date[32], clen[24], line[512];
        size_t n = 0;
        int rc;

        az_http_date(time(NULL), date);
        all[n++] = (struct az_kv){ "x-ms-date", date };
        all[n++] = (struct az_kv){ "x-ms-version", AZ_API_VERSION };
        if (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0) {
                snprintf(clen, sizeof clen, "%zu", r->body_len);
                all[n++] = (struct az_kv){ "Content-Length", clen };
        }
        for (size_t i = 0; i < r->n_headers; i++)
                all[n++] = r->headers[i];

        for (size_t i = 0; i < n; i++) {
                if (strcasecmp(all[i].name, "Content-Length") == 0)
                        continue; /* curl sends it from the upload size */
                snprintf(line, sizeof line, "%s: %s", all[i].name, all[i].value);
                nl = curl_slist_append(l, line);
                if (!nl)
                        goto oom;
                l = nl;
        }
        /* No "Expect: 100-continue" round trip before uploads. */
        if (!(nl = curl_slist_append(l, "Expect:")))
                goto oom;
        l = nl;
        if (c->key) {
                struct az_sign_input in = { r->method, c->account, path, all, n, r->query, r->n_query };
                _cleanup_free_ char *sts = NULL;
                char sig[64];

                rc = az_string_to_sign(&in, &sts);
                if (rc < 0) {
                        curl_slist_free_all(l);
                        return rc;
                }
                rc = az_sign(c->key, c->key_len, sts, sig);
                if (rc < 0) {
                        curl_slist_free_all(l);
                        return rc;
                }
                snprintf(line, sizeof line, "Authorization: SharedKey %s:%s", c->account, sig);
                nl = curl_slist_append(l, line);
                explicit_bzero(line, sizeof line);
                if (!nl)
                        goto oom;
                l = nl;
        }
        *ret = l;
        return 0;
oom:
        curl_slist_free_all(l);
        return -ENOMEM;
}

static int attempt_start(struct az_http *h, struct az_session *s, unsigned slot, struct az_req *r) {
        CURL *e = s->easy[slot];
        _cleanup_free_ char *path = NULL;
        uint64_t bytes;
        long timeout, stall;
        int rc;

        curl_slist_free_all(s->hdrs[slot]);
        s->hdrs[slot] = NULL;
        free(s->urls[slot]);
        s->urls[slot] = NULL;
        rc = build_url(h->cfg, r, &s->urls[slot], &path);
        if (rc < 0)
                return rc;
        rc = build_headers(h, r, path, &s->hdrs[slot]);
        if (rc < 0)
                return rc;

        r->status = 0;
        r->error_code[0] = r->meta_put[0] = r->errbuf[0] = 0;
        r->have_cl = r->in_error_body = r->overflow = false;
        r->retry_after = 0;
        r->resp_len = 0;
        r->body_pos = 0;
        if (r->out == AZ_OUT_FD) {
                if (ftruncate(r->out_fd, 0) < 0 || lseek(r->out_fd, 0, SEEK_SET) < 0)
                        return -errno;
        }

        bytes = r->body_len ? r->body_len : r->out == AZ_OUT_BUF ? r->out_cap : (64u << 20);
        timeout = h->io_timeout_ms + (long)(bytes / (256 * 1024)) * 1000;
        stall = h->io_timeout_ms;
        if (h->bounded) {
                /* Cut the attempt off at the end of the call's window. */
                long left = (long)((r->cutoff - now_monotonic()) * 1000);
                left = MAX(left, 100L);
                timeout = MIN(timeout, left);
                stall = MIN(stall, left);
        }

        curl_easy_reset(e);
        curl_easy_setopt(e, CURLOPT_URL, s->urls[slot]);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->hdrs[slot]);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_SHARE, h->share);
        curl_easy_setopt(e, CURLOPT_PRIVATE, r);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, az_on_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, az_on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, MIN(stall, 10000L));
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, MAX(stall / 1000, 1L));
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        if (strcmp(r->method, "GET") == 0)
                curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        else if (strcmp(r->method, "HEAD") == 0)
                curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        else if (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0) {
                bool put = r->method[1] == 'U';
                curl_easy_setopt(e, put ? CURLOPT_UPLOAD : CURLOPT_POST, 1L);
                curl_easy_setopt(e, CURLOPT_READFUNCTION, az_on_read);
                curl_easy_setopt(e, CURLOPT_READDATA, r);
                curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, az_on_seek);
                curl_easy_setopt(e, CURLOPT_SEEKDATA, r);
                curl_easy_setopt(e, put ? CURLOPT_INFILESIZE_LARGE : CURLOPT_POSTFIELDSIZE_LARGE,
                                 (curl_off_t)r->body_len);
                curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 256L * 1024);
        } else
                curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);

        if (curl_multi_add_handle(s->multi, e) != CURLM_OK)
                return -ENOMEM;
        s->owner[slot] = r;
        r->attempts++;
        r->state = REQ_RUNNING;
        return 0;
}

/* ---- outcome ---- */

static double jitter(void) {
        uint32_t v;
        if (getrandom(&v, sizeof v, GRND_NONBLOCK) != sizeof v)
                v = (uint32_t)rand();
        return (double)v / 4294967296.0;
}

/* Decide what a finished attempt means: 0 done (r->result set) or 1 retry
 * (r->next_at set). */
static int attempt_done(struct az_http *h, struct az_req *r, CURLcode cc) {
        const char *what = r->blob ? r->blob : "(container)";
        bool transient;
        double now, delay;

        if (cc == CURLE_OK) {
                int e = az_status_errno(r->status);
                if (e == 0 && r->out == AZ_OUT_BUF && r->resp_len != r->out_cap)
                        e = -EBADMSG;
                if (e == 0 && r->out != AZ_OUT_BUF && r->have_cl && strcmp(r->method, "HEAD") != 0 &&
                    r->content_length != r->resp_len)
                        e = -EPROTO;
                log_debug("azure: %s %s -> %ld%s%s, %zu bytes (attempt %u)", r->method, what, r->status,
                          r->error_code[0] ? " " : "", r->error_code, r->resp_len, r->attempts);
                transient = az_status_transient(r->status);
                if (!transient) {
                        r->result = e;
                        return 0;
                }
        } else {
                log_debug("azure: %s %s -> %s%s%s (attempt %u)", r->method, what, curl_easy_strerror(cc),
                          r->errbuf[0] ? ": " : "", r->errbuf, r->attempts);
                if (cc == CURLE_OUT_OF_MEMORY) {
                        r->result = -ENOMEM;
                        return 0;
                }
                if (cc == CURLE_WRITE_ERROR) {
                        r->result = r->overflow ? -EBADMSG : r->out == AZ_OUT_MEM ? -ENOMEM : -EIO;
                        return 0;
                }
                transient = error_transient(az_curl_errno(cc));
                if (!transient) {
                        r->result = -EIO;
                        return 0;
                }
        }

        /* Anything but a refused connection may have reached the server. */
        if (cc != CURLE_COULDNT_CONNECT && cc != CURLE_COULDNT_RESOLVE_HOST)
                r->ambiguous = true;
        now = now_monotonic();
        delay = BACKOFF_BASE * (double)(1u << MIN(r->attempts - 1, 10u));
        delay = MIN(delay, BACKOFF_CAP);
        delay = delay / 2 + jitter() * delay / 2;
        if (r->retry_after > delay)
                delay = r->retry_after;
        if (now + delay > r->deadline) {
                r->result = -EIO;
                return 0;
        }
        r->next_at = now + delay;
        return 1;
}

static bool any_left(const struct az_req *reqs, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (reqs[i].state != REQ_DONE)
                        return true;
        return false;
}

/* Start every pending request that is due, on free slots. Returns the
 * number running, or -errno. *ret_wait gets the seconds until the next
 * pending request is due (when none could start). */
static int start_due(struct az_http *h, struct az_session *s, struct az_req *reqs, size_t n, double *ret_wait) {
        double now = now_monotonic(), wait = 1.0;
        unsigned running = 0;
        int rc;

        for (unsigned k = 0; k < AZ_PAR; k++)
                if (s->owner[k])
                        running++;
        for (size_t i = 0; i < n; i++) {
                struct az_req *r = &reqs[i];
                unsigned slot;

                if (r->state != REQ_PENDING)
                        continue;
                if (r->next_at > now) {
                        wait = MIN(wait, r->next_at - now);
                        continue;
                }
                for (slot = 0; slot < AZ_PAR && s->owner[slot]; slot++)
                        ;
                if (slot == AZ_PAR)
                        break;
                rc = attempt_start(h, s, slot, r);
                if (rc < 0) {
                        r->result = rc;
                        r->state = REQ_DONE;
                        continue;
                }
                running++;
        }
        *ret_wait = wait;
        return (int)running;
}

static void reap(struct az_http *h, struct az_session *s, struct az_req *reqs, size_t n) {
        struct CURLMsg *m;
        int q;

        while ((m = curl_multi_info_read(s->multi, &q))) {
                unsigned slot;
                struct az_req *r;

                if (m->msg != CURLMSG_DONE)
                        continue;
                for (slot = 0; slot < AZ_PAR && s->easy[slot] != m->easy_handle; slot++)
                        ;
                if (slot == AZ_PAR)
                        continue;
                r = s->owner[slot];
                curl_multi_remove_handle(s->multi, s->easy[slot]);
                s->owner[slot] = NULL;
                if (!r)
                        continue;
                if (attempt_done(h, r, m->data.result) > 0) {
                        r->state = REQ_PENDING;
                        continue;
                }
                r->state = REQ_DONE;
                if (r->result < 0)
                        /* Give up on the rest of the batch: it fails anyway. */
                        for (size_t i = 0; i < n; i++)
                                if (reqs[i].state == REQ_PENDING) {
                                        reqs[i].state = REQ_DONE;
                                        reqs[i].result = r->result;
                                }
        }
}

int az_http_run(struct az_http *h, struct az_req *reqs, size_t n) {
        struct az_session *s;
        double start = now_monotonic();
        bool down = __atomic_load_n(&h->down, __ATOMIC_RELAXED);
        double tdl = store_thread_deadline_get();
        int rc;

        for (size_t i = 0; i < n; i++) {
                reqs[i].state = REQ_PENDING;
                reqs[i].attempts = 0;
                reqs[i].ambiguous = false;
                reqs[i].result = 0;
                reqs[i].next_at = 0;
                reqs[i].deadline = start + (down ? 0 : h->retry_window);
                reqs[i].cutoff = start + h->retry_window;
                if (h->bounded && tdl > 0) {
                        reqs[i].cutoff = MIN(reqs[i].cutoff, tdl);
                        reqs[i].deadline = MIN(reqs[i].deadline, tdl);
                }
                reqs[i].resp_cap = 0;
                reqs[i].resp = NULL;
                reqs[i].resp_len = 0;
        }
        rc = session_get(h, &s);
        if (rc < 0)
                return rc;
        while (any_left(reqs, n)) {
                double wait;
                int running = start_due(h, s, reqs, n, &wait), still;

                if (running == 0) {
                        if (any_left(reqs, n) && wait > 0)
                                usleep((useconds_t)(wait * 1e6) + 1000);
                        continue;
                }
                if (curl_multi_perform(s->multi, &still) != CURLM_OK)
                        break;
                reap(h, s, reqs, n);
                if (still > 0)
                        curl_multi_poll(s->multi, NULL, 0, 200, NULL);
        }
        /* Only after a multi failure can something still be running. */
        for (unsigned k = 0; k < AZ_PAR; k++)
                if (s->owner[k]) {
                        curl_multi_remove_handle(s->multi, s->easy[k]);
                        s->owner[k]->state = REQ_DONE;
                        s->owner[k]->result = -EIO;
                        s->owner[k] = NULL;
                }
        session_put(h, s);
        rc = 0;
        for (size_t i = 0; i < n; i++) {
                if (reqs[i].state != REQ_DONE) {
                        reqs[i].state = REQ_DONE;
                        reqs[i].result = -EIO;
                }
                /* Any answer but a retryable failure shows the endpoint up
                 * (background work's answers are not counted). */
                if (store_thread_background_get())
                        ;
                else if (reqs[i].result == -EIO && reqs[i].attempts > 0)
                        __atomic_store_n(&h->down, true, __ATOMIC_RELAXED);
                else if (reqs[i].result != -EIO && reqs[i].status > 0)
                        __atomic_store_n(&h->down, false, __ATOMIC_RELAXED);
                if (reqs[i].result < 0 && rc == 0)
                        rc = reqs[i].result;
        }
        return rc;
}
