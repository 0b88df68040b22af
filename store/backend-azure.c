/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Azure Blob backend: one block blob per object, named PREFIX + the
 * object's name, in the vault's container.
 *
 * - put: Put Blob up to AZ_SINGLE_MAX bytes; larger objects (packs, big
 *   index segments) are cut into blocks of at most AZ_BLOCK_MAX that are
 *   uploaded in parallel, then committed with Put Block List. An object
 *   appears whole or not at all either way. Exclusive puts send
 *   "If-None-Match: *"; each put carries a random x-ms-meta-rpfsput tag so
 *   that a retried exclusive put that finds the object can tell its own
 *   earlier attempt (success) from another writer's object (-EEXIST).
 * - get_range: one ranged GET straight into the caller's buffer;
 *   get_ranges: a batch of them, in parallel on one session.
 * - list: List Blobs with the prefix, page by page (NextMarker).
 * - del: Delete Blob; del_many: Blob Batch requests of up to 256 deletes.
 * - sync: nothing; Azure acknowledges a put only once it is durable.
 * - local_path: objects are immutable, so a copy downloaded once into the
 *   local cache directory stays valid; index segments are mmap'ed from it.
 */
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "azure_i.h"
#include "backend_i.h"
#include "common.h"

#define AZ_SINGLE_MAX (4u << 20)
#define AZ_BLOCK_MAX (4u << 20)
#define AZ_LIST_PAGE "5000"

struct backend_azure {
        struct backend base;
        struct az_cfg *cfg;
        struct az_http *http;
        char *cache_dir; /* set at open, created on first use */
        bool container_seen; /* probe() found the container */
};

#define AZ_B(b) ((struct backend_azure *)(b))

static char *full_name(struct backend_azure *a, const char *name) {
        char *s;
        if (asprintf(&s, "%s%s", a->cfg->prefix, name) < 0)
                return NULL;
        return s;
}

static void random_hex(char out[static 17]) {
        uint64_t v;
        if (getrandom(&v, sizeof v, 0) != sizeof v)
                v = (uint64_t)random() << 32 ^ (uint64_t)random() ^ (uint64_t)getpid();
        snprintf(out, 17, "%016llx", (unsigned long long)v);
}

/* After an exclusive put failed with -EEXIST on a retry: is the object the
 * one an earlier attempt of ours wrote? */
static bool put_was_ours(struct backend_azure *a, const char *blob, const char *tag) {
        struct az_req q = { .method = "HEAD", .blob = blob, .out = AZ_OUT_MEM };
        int r = az_http_run(a->http, &q, 1);
        bool ours = r == 0 && strcmp(q.meta_put, tag) == 0;
        az_req_done(&q);
        return ours;
}

/* Send the request that creates the blob (Put Blob or Put Block List),
 * tagged so that a retried exclusive put can tell its own earlier success
 * from another writer's blob. Frees the request. */
static int put_final(struct backend_azure *a, struct az_req *q, const char *blob, const char *tag, bool excl) {
        int r;

        az_req_header(q, "x-ms-meta-rpfsput", tag);
        if (excl)
                az_req_header(q, "If-None-Match", "*");
        r = az_http_run(a->http, q, 1);
        if (r == -EEXIST && q->ambiguous && put_was_ours(a, blob, tag))
                r = 0;
        az_req_done(q);
        return r;
}

static int put_single(struct backend_azure *a, const char *blob, const void *data, size_t len, bool excl) {
        struct az_req q = { .method = "PUT", .blob = blob, .body = data, .body_len = len, .out = AZ_OUT_MEM };
        char tag[17];

        random_hex(tag);
        az_req_header(&q, "x-ms-blob-type", "BlockBlob");
        az_req_header(&q, "Content-Type", "application/octet-stream");
        return put_final(a, &q, blob, tag, excl);
}

static int put_blocks(struct backend_azure *a, const char *blob, const void *data, size_t len, bool excl) {
        size_t n = DIV_ROUND_UP(len, AZ_BLOCK_MAX), bsize = DIV_ROUND_UP(len, n);
        _cleanup_free_ struct az_req *reqs = calloc(n, sizeof *reqs);
        _cleanup_free_ char *ids = calloc(n, 48), *xml = NULL;
        struct az_req q = { .method = "PUT", .blob = blob, .out = AZ_OUT_MEM };
        char tag[17];
        size_t xlen;
        FILE *f;
        int r;

        if (!reqs || !ids)
                return -ENOMEM;
        random_hex(tag);
        for (size_t i = 0; i < n; i++) {
                char raw[32];
                char *id = ids + 48 * i, *b64;
                size_t off = i * bsize;

                /* Block IDs: equal length within a blob, unique per put. */
                snprintf(raw, sizeof raw, "%s-%06zu", tag, i);
                b64 = az_base64(raw, strlen(raw));
                if (!b64)
                        return -ENOMEM;
                snprintf(id, 48, "%s", b64);
                free(b64);
                reqs[i] = (struct az_req){ .method = "PUT", .blob = blob, .body = (const uint8_t *)data + off,
                                           .body_len = MIN(bsize, len - off), .out = AZ_OUT_MEM };
                az_req_query(&reqs[i], "comp", "block");
                az_req_query(&reqs[i], "blockid", id);
        }
        r = az_http_run(a->http, reqs, n);
        for (size_t i = 0; i < n; i++)
                az_req_done(&reqs[i]);
        if (r < 0)
                return r;

        f = open_memstream(&xml, &xlen);
        if (!f)
                return -ENOMEM;
        fputs("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>", f);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "<Latest>%s</Latest>", ids + 48 * i);
        fputs("</BlockList>", f);
        if (fclose(f) != 0)
                return -ENOMEM;
        q.body = xml;
        q.body_len = xlen;
        az_req_query(&q, "comp", "blocklist");
        az_req_header(&q, "Content-Type", "application/xml");
        az_req_header(&q, "x-ms-blob-content-type", "application/octet-stream");
        return put_final(a, &q, blob, tag, excl);
}

static int azure_put(struct backend *b, const char *name, const void *data, size_t len, unsigned flags) {
        struct backend_azure *a = AZ_B(b);
        _cleanup_free_ char *blob = full_name(a, name);
        bool excl = flags & BACKEND_PUT_EXCLUSIVE;

        if (!blob)
                return -ENOMEM;
        if (len <= AZ_SINGLE_MAX)
                return put_single(a, blob, data, len, excl);
        return put_blocks(a, blob, data, len, excl);
}

static int azure_get(struct backend *b, const char *name, char **ret, size_t *ret_len) {
        struct backend_azure *a = AZ_B(b);
        _cleanup_free_ char *blob = full_name(a, name);
        struct az_req q = { .method = "GET", .out = AZ_OUT_MEM };
        int r;

        if (!blob)
                return -ENOMEM;
        q.blob = blob;
        r = az_http_run(a->http, &q, 1);
        if (r < 0) {
                az_req_done(&q);
                return r;
        }
        if (!q.resp && !(q.resp = calloc(1, 1)))
                return -ENOMEM;
        *ret = q.resp;
        if (ret_len)
                *ret_len = q.resp_len;
        return 0;
}


/* Run q[0..n) as independent requests: az_http_run gives up on the
 * requests not yet started once one fails for good (a batch that fails
 * anyway); here those run again, until each has been tried or a run
 * starts none. Every entry ends with its own result. */
static void run_independent(struct backend_azure *a, struct az_req *q, size_t n) {
        _cleanup_free_ size_t *idx = calloc(MAX(n, 1), sizeof *idx);
        _cleanup_free_ struct az_req *t = calloc(MAX(n, 1), sizeof *t);
        size_t k = n;

        if (!idx || !t) {
                for (size_t i = 0; i < n; i++)
                        q[i].result = -ENOMEM;
                return;
        }
        for (size_t i = 0; i < n; i++)
                idx[i] = i;
        while (k > 0) {
                size_t left = 0;
                bool ran = false;
                int rc;

                for (size_t j = 0; j < k; j++)
                        t[j] = q[idx[j]];
                rc = az_http_run(a->http, t, k);
                for (size_t j = 0; j < k; j++) {
                        if (t[j].attempts == 0 && t[j].result == 0) /* the run could not start */
                                t[j].result = rc < 0 ? rc : -EIO;
                        ran |= t[j].attempts > 0;
                        q[idx[j]] = t[j];
                        if (t[j].attempts == 0)
                                idx[left++] = idx[j];
                }
                if (!ran)
                        break;
                k = left;
        }
}

static void azure_get_ranges(struct backend *b, struct backend_range *v, size_t n) {
        struct backend_azure *a = AZ_B(b);
        _cleanup_free_ struct az_req *q = calloc(MAX(n, 1), sizeof *q);
        _cleanup_free_ char **blobs = calloc(MAX(n, 1), sizeof *blobs);
        _cleanup_free_ char (*ranges)[64] = calloc(MAX(n, 1), sizeof *ranges);
        size_t m = 0;

        if (!q || !blobs || !ranges) {
                for (size_t i = 0; i < n; i++)
                        v[i].result = -ENOMEM;
                return;
        }
        for (size_t i = 0; i < n; i++) {
                v[i].result = 0;
                if (v[i].len == 0)
                        continue;
                blobs[i] = full_name(a, v[i].name);
                if (!blobs[i]) {
                        v[i].result = -ENOMEM;
                        continue;
                }
                q[m] = (struct az_req){ .method = "GET", .blob = blobs[i], .out = AZ_OUT_BUF,
                                        .out_buf = v[i].buf, .out_cap = v[i].len };
                /* the header keeps a pointer: one string per request */
                snprintf(ranges[i], sizeof ranges[i], "bytes=%llu-%llu", (unsigned long long)v[i].off,
                         (unsigned long long)(v[i].off + v[i].len - 1));
                az_req_header(&q[m], "x-ms-range", ranges[i]);
                m++;
        }
        /* A range beyond the object (416) or a short answer is -EBADMSG:
         * a wrong index entry, like a short read of a local pack. */
        run_independent(a, q, m);
        m = 0;
        for (size_t i = 0; i < n; i++) {
                if (v[i].len == 0 || !blobs[i])
                        continue;
                v[i].result = q[m].result;
                az_req_done(&q[m]);
                m++;
                free(blobs[i]);
        }
}

static int azure_get_range(struct backend *b, const char *name, uint64_t off, void *buf, size_t len) {
        struct backend_range r = { .name = name, .off = off, .buf = buf, .len = len };
        azure_get_ranges(b, &r, 1);
        return r.result;
}

/* ---- List Blobs ---- */

static const xmlNode *child(const xmlNode *n, const char *name) {
        for (const xmlNode *c = n ? n->children : NULL; c; c = c->next)
                if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
                        return c;
        return NULL;
}

int az_parse_list(const char *xml, size_t len, az_list_fn fn, void *userdata, char **ret_marker) {
        xmlDoc *doc;
        const xmlNode *root, *blobs, *nm;
        int r = 0;

        *ret_marker = NULL;
        if (len > INT_MAX)
                return -EPROTO;
        doc = xmlReadMemory(xml, (int)len, NULL, NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
        if (!doc)
                return -EPROTO;
        root = xmlDocGetRootElement(doc);
        if (!root || strcmp((const char *)root->name, "EnumerationResults") != 0) {
                r = -EPROTO;
                goto out;
        }
        blobs = child(root, "Blobs");
        for (const xmlNode *c = blobs ? blobs->children : NULL; c && r >= 0; c = c->next) {
                const xmlNode *name, *cl;
                xmlChar *s, *sz = NULL;
                uint64_t size = 0;

                if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "Blob") != 0)
                        continue;
                name = child(c, "Name");
                cl = child(child(c, "Properties"), "Content-Length");
                s = name ? xmlNodeGetContent(name) : NULL;
                if (!s) {
                        r = -EPROTO;
                        break;
                }
                if (cl && (sz = xmlNodeGetContent(cl)))
                        size = strtoull((const char *)sz, NULL, 10);
                r = fn(userdata, (const char *)s, size);
                xmlFree(s);
                xmlFree(sz);
        }
        nm = child(root, "NextMarker");
        if (r >= 0 && nm) {
                xmlChar *m = xmlNodeGetContent(nm);
                if (m && *m) {
                        *ret_marker = strdup((const char *)m);
                        if (!*ret_marker)
                                r = -ENOMEM;
                }
                xmlFree(m);
        }
out:
        xmlFreeDoc(doc);
        return r;
}

struct entry {
        char *name;
        uint64_t size;
};

struct page {
        struct backend_azure *a;
        size_t skip; /* strlen of the vault prefix */
        const char *want; /* full prefix the names must start with */
        struct entry *v;
        size_t n, cap;
};

/* Only names rpfs could have written: [A-Za-z0-9._-] components, none
 * starting with '.'. Anything else in the container is not ours. */
static bool ours(const char *s) {
        bool start = true;
        for (; *s; s++) {
                if (*s == '/') {
                        if (start)
                                return false;
                        start = true;
                        continue;
                }
                if (start && *s == '.')
                        return false;
                start = false;
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '.' || *s == '_' || *s == '-'))
                        return false;
        }
        return !start;
}

static int page_add(void *userdata, const char *name, uint64_t size) {
        struct page *p = userdata;

        if (strncmp(name, p->want, strlen(p->want)) != 0 || !ours(name + p->skip))
                return 0;
        if (p->n == p->cap) {
                size_t ncap = p->cap ? 2 * p->cap : 256;
                struct entry *nv = realloc(p->v, ncap * sizeof *nv);
                if (!nv)
                        return -ENOMEM;
                p->v = nv;
                p->cap = ncap;
        }
        p->v[p->n].name = strdup(name + p->skip);
        if (!p->v[p->n].name)
                return -ENOMEM;
        p->v[p->n++].size = size;
        return 0;
}

static void page_clear(struct page *p) {
        for (size_t i = 0; i < p->n; i++)
                free(p->v[i].name);
        p->n = 0;
}

/* Fetch one page of names under the full prefix `want`. */
static int list_page(struct backend_azure *a, const char *want, const char *max, const char *marker,
                     struct page *p, char **ret_marker) {
        struct az_req q = { .method = "GET", .out = AZ_OUT_MEM };
        int r;

        az_req_query(&q, "restype", "container");
        az_req_query(&q, "comp", "list");
        if (*want)
                az_req_query(&q, "prefix", want);
        az_req_query(&q, "maxresults", max);
        if (marker)
                az_req_query(&q, "marker", marker);
        r = az_http_run(a->http, &q, 1);
        if (r >= 0)
                r = az_parse_list(q.resp ? q.resp : "", q.resp_len, page_add, p, ret_marker);
        az_req_done(&q);
        return r;
}

static int azure_list(struct backend *b, const char *prefix, store_list_cb cb, void *userdata) {
        struct backend_azure *a = AZ_B(b);
        _cleanup_free_ char *want = full_name(a, prefix), *marker = NULL;
        struct page p = { .a = a, .skip = strlen(a->cfg->prefix) };
        int r;

        if (!want)
                return -ENOMEM;
        p.want = want;
        do {
                char *next = NULL;

                r = list_page(a, want, AZ_LIST_PAGE, marker, &p, &next);
                free(marker);
                marker = next;
                /* No request is in flight while the callbacks run: they
                 * may use the backend themselves. */
                for (size_t i = 0; r >= 0 && i < p.n; i++)
                        r = cb(userdata, p.v[i].name, p.v[i].size);
                page_clear(&p);
        } while (r >= 0 && marker);
        free(p.v);
        return r < 0 ? r : 0;
}

static int azure_del(struct backend *b, const char *name) {
        struct backend_azure *a = AZ_B(b);
        _cleanup_free_ char *blob = full_name(a, name);
        struct az_req q = { .method = "DELETE", .out = AZ_OUT_MEM };
        int r;

        if (!blob)
                return -ENOMEM;
        q.blob = blob;
        r = az_http_run(a->http, &q, 1);
        /* Gone after a retry: the lost answer was our own delete. */
        if (r == -ENOENT && q.ambiguous)
                r = 0;
        az_req_done(&q);
        return r;
}

/* ---- Delete, one or many ----
 * Many objects go out as Blob Batch requests (POST ?comp=batch, a
 * multipart/mixed body of up to AZ_BATCH_MAX DELETE subrequests, each
 * signed on its own or carrying the SAS): one round trip instead of one per
 * object. An endpoint that refuses the batch itself gets single deletes. */
#define AZ_BATCH_MAX 256

static int batch_body(struct backend_azure *a, char **blobs, size_t n, const char *boundary, char **ret,
                      size_t *ret_len) {
        const struct az_cfg *c = a->cfg;
        char date[32], *body = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&body, &len);
        int rc = 0;

        if (!f)
                return -ENOMEM;
        az_http_date(time(NULL), date);
        for (size_t i = 0; i < n && rc == 0; i++) {
                _cleanup_free_ char *enc = az_encode(blobs[i], true), *path = NULL;
                if (!enc || asprintf(&path, "%s/%s/%s", c->ep_path, c->container, enc) < 0) {
                        rc = -ENOMEM;
                        break;
                }
                fprintf(f, "--%s\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                           "Content-ID: %zu\r\n\r\nDELETE %s%s%s HTTP/1.1\r\nx-ms-date: %s\r\n",
                        boundary, i, path, c->sas ? "?" : "", c->sas ? c->sas : "", date);
                if (c->key) {
                        struct az_kv kv[] = { { "x-ms-date", date }, { "Content-Length", "0" } };
                        struct az_sign_input in = { "DELETE", c->account, path, kv, ELEMENTSOF(kv), NULL, 0 };
                        _cleanup_free_ char *sts = NULL;
                        char sig[64];
                        rc = az_string_to_sign(&in, &sts);
                        if (rc == 0)
                                rc = az_sign(c->key, c->key_len, sts, sig);
                        if (rc == 0)
                                fprintf(f, "Authorization: SharedKey %s:%s\r\n", c->account, sig);
                        explicit_bzero(sig, sizeof sig);
                }
                fprintf(f, "Content-Length: 0\r\n\r\n");
        }
        fprintf(f, "--%s--\r\n", boundary);
        if (fclose(f) != 0 && rc == 0)
                rc = -ENOMEM;
        if (rc < 0) {
                free(body);
                return rc;
        }
        *ret = body;
        *ret_len = len;
        return 0;
}

/* The subrequests' statuses from a batch response, in Content-ID order
 * (parts without one in their order): 0 deleted or absent, -errno. Parts
 * that are missing stay -EPROTO. */
static void batch_results(const char *resp, size_t n, int *res) {
        const char *p = resp;
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
                res[i] = -EPROTO;
        while (p && (p = strstr(p, "HTTP/1.1 "))) {
                /* the part's headers lie between the last boundary and here */
                const char *cid = NULL, *q;
                long status = strtol(p + 9, NULL, 10);
                size_t idx = k;
                for (q = p; q > resp && !(q[-1] == '\n' && q[0] == '-' && q[1] == '-'); q--)
                        if (strncasecmp(q, "Content-ID:", 11) == 0)
                                cid = q;
                if (cid) {
                        char *end;
                        unsigned long v = strtoul(cid + 11, &end, 10);
                        if (end != cid + 11)
                                idx = v;
                }
                if (idx < n)
                        res[idx] = status == 202 || status == 404 ? 0
                                   : status == 401 || status == 403 ? -EACCES
                                                                    : -EIO;
                k++;
                p += 9;
        }
}

static int azure_del_many(struct backend *b, const char *const *names, size_t n) {
        struct backend_azure *a = AZ_B(b);
        int err = 0;

        if (n == 1)
                return azure_del(b, names[0]);
        for (size_t at = 0; at < n;) {
                size_t m = MIN(n - at, (size_t)AZ_BATCH_MAX), len = 0;
                _cleanup_free_ char **blobs = calloc(m, sizeof *blobs);
                _cleanup_free_ int *res = calloc(m, sizeof *res);
                _cleanup_free_ char *body = NULL;
                char boundary[32], ctype[80], hex[17];
                struct az_req q = { .method = "POST", .out = AZ_OUT_MEM };
                int r = blobs && res ? 0 : -ENOMEM;

                for (size_t i = 0; r == 0 && i < m; i++)
                        if (!(blobs[i] = full_name(a, names[at + i])))
                                r = -ENOMEM;
                random_hex(hex);
                snprintf(boundary, sizeof boundary, "batch_%s", hex);
                snprintf(ctype, sizeof ctype, "multipart/mixed; boundary=%s", boundary);
                if (r == 0)
                        r = batch_body(a, blobs, m, boundary, &body, &len);
                if (r == 0) {
                        q.body = body;
                        q.body_len = len;
                        az_req_query(&q, "restype", "container");
                        az_req_query(&q, "comp", "batch");
                        az_req_header(&q, "Content-Type", ctype);
                        r = az_http_run(a->http, &q, 1);
                        if (r == 0) {
                                size_t ok = 0;
                                batch_results(q.resp ? q.resp : "", m, res);
                                for (size_t i = 0; i < m; i++)
                                        ok += res[i] == 0;
                                log_debug("azure: batch of %zu deletes: %zu done", m, ok);
                        }
                        az_req_done(&q);
                }
                if (r < 0 && r != -EACCES && r != -ENOMEM && r != -EIO) {
                        /* the endpoint does not do batches: one by one */
                        log_debug("azure: batch delete refused (%s): single deletes", strerror(-r));
                        for (size_t i = 0; i < m; i++)
                                res[i] = azure_del(b, names[at + i]);
                        r = 0;
                }
                for (size_t i = 0; blobs && i < m; i++) {
                        if (r == 0 && res[i] == -ENOENT)
                                res[i] = 0;
                        if (r == 0 && res[i] < 0 && err == 0)
                                err = res[i];
                        free(blobs[i]);
                }
                if (r < 0 && err == 0)
                        err = r;
                at += m;
        }
        return err;
}

static int azure_sync(struct backend *b) {
        return 0;
}

/* ---- local cache ---- */

static int cache_root(const struct az_cfg *c, char **ret) {
        _cleanup_free_ char *key = NULL;
        char root[4096];
        uint64_t h;

        if (asprintf(&key, "%s\n%s\n%s", c->endpoint, c->container, c->prefix) < 0)
                return -ENOMEM;
        h = store_hash64(key, strlen(key));
        rpfs_cache_dir(root, sizeof root);
        return asprintf(ret, "%s/azure/%s-%s-%016llx", root, c->account, c->container, (unsigned long long)h) < 0 ?
                       -ENOMEM : 0;
}

static int azure_local_path(struct backend *b, const char *name, char **ret) {
        struct backend_azure *a = AZ_B(b);
        _cleanup_free_ char *path = NULL, *blob = full_name(a, name);
        struct az_req q = { .method = "GET", .out = AZ_OUT_FD, .out_fd = -1 };
        struct tmpfile t;
        struct stat st;
        char *slash;
        int r;

        if (!blob || asprintf(&path, "%s/%s", a->cache_dir, name) < 0)
                return -ENOMEM;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                *ret = TAKE_PTR(path);
                return 0;
        }
        slash = strrchr(path, '/');
        *slash = 0;
        r = mkdir_p(path, 0700);
        *slash = '/';
        if (r < 0)
                return r;
        r = tmpfile_open(&t, path, 0600);
        if (r < 0)
                return r;
        q.blob = blob;
        q.out_fd = t.fd;
        r = az_http_run(a->http, &q, 1);
        az_req_done(&q);
        /* Durable before it is named: a truncated cache file would read as
         * a damaged index segment. */
        if (r < 0) {
                tmpfile_abort(&t);
                return r;
        }
        r = tmpfile_commit(&t, 0);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(path);
        return 0;
}

/* ---- container ---- */

static int count_one(void *userdata, const char *name, uint64_t size) {
        (*(size_t *)userdata)++;
        return 0;
}

static int azure_probe(struct backend *b, bool *ret_exists, bool *ret_empty) {
        struct backend_azure *a = AZ_B(b);
        struct az_req q = { .method = "GET", .out = AZ_OUT_MEM };
        char *marker = NULL;
        size_t n = 0;
        bool more;
        int r;

        *ret_exists = *ret_empty = false;
        /* One List Blobs answers both: 404 ContainerNotFound, or any blob
         * under the prefix. (It also works with a container SAS.) */
        az_req_query(&q, "restype", "container");
        az_req_query(&q, "comp", "list");
        if (*a->cfg->prefix)
                az_req_query(&q, "prefix", a->cfg->prefix);
        az_req_query(&q, "maxresults", "1");
        r = az_http_run(a->http, &q, 1);
        if (r == -ENOENT) {
                az_req_done(&q);
                return 0;
        }
        if (r >= 0)
                r = az_parse_list(q.resp ? q.resp : "", q.resp_len, count_one, &n, &marker);
        az_req_done(&q);
        more = marker != NULL;
        free(marker);
        if (r < 0)
                return r;
        a->container_seen = true;
        *ret_exists = true;
        *ret_empty = n == 0 && !more;
        return 0;
}

static int azure_create(struct backend *b) {
        struct backend_azure *a = AZ_B(b);
        struct az_req q = { .method = "PUT", .out = AZ_OUT_MEM };
        int r;

        if (a->container_seen)
                return 0;
        az_req_query(&q, "restype", "container");
        r = az_http_run(a->http, &q, 1);
        if (r == -EEXIST) /* ContainerAlreadyExists: someone was first */
                r = 0;
        az_req_done(&q);
        if (r >= 0)
                a->container_seen = true;
        return r;
}

static void azure_free(struct backend *b) {
        struct backend_azure *a = AZ_B(b);

        if (!a)
                return;
        az_http_free(a->http);
        az_cfg_free(a->cfg);
        free(a->cache_dir);
        free(a);
}

static const struct backend_ops azure_ops = {
        .name = "azure",
        .remote = true,
        .put = azure_put,
        .get = azure_get,
        .get_range = azure_get_range,
        .get_ranges = azure_get_ranges,
        .del_many = azure_del_many,
        .list = azure_list,
        .del = azure_del,
        .sync = azure_sync,
        .local_path = azure_local_path,
        .probe = azure_probe,
        .create = azure_create,
        .free = azure_free,
};

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void) {
        xmlInitParser();
}

int backend_azure_open(const char *url, const struct store_options *o, struct backend **ret) {
        struct backend_azure *a;
        int r;

        pthread_once(&xml_once, xml_init);
        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->base.ops = &azure_ops;
        r = az_cfg_load_with(url, o ? o->endpoint : NULL, &a->cfg);
        if (r < 0)
                goto fail;
        r = cache_root(a->cfg, &a->cache_dir);
        if (r < 0)
                goto fail;
        r = az_http_new(a->cfg, o, &a->http);
        if (r < 0)
                goto fail;
        *ret = &a->base;
        return 0;
fail:
        azure_free(&a->base);
        return r;
}

const char *backend_azure_explain(int r) {
        switch (r) {
        case -EACCES:
                return "authentication failed: the storage service refused the credentials (check "
                       "AZURE_STORAGE_KEY, AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_SAS_TOKEN: the key or "
                       "SAS must be for this account, a SAS must allow this operation and not be expired, and "
                       "the clock must be right)";
        case -ENOENT:
                return "container not found (check the account and container names and the endpoint; "
                       "'rpfs init' creates the container)";
        case -ENOKEY:
                return "unusable credentials in the environment (AZURE_STORAGE_KEY must be the base64 account "
                       "key; the AccountName in AZURE_STORAGE_CONNECTION_STRING must match the vault's account)";
        case -EINVAL:
                return "invalid Azure vault URL or endpoint (expected azure://ACCOUNT/CONTAINER[/PREFIX] with a "
                       "lower-case account and container name, and an http:// or https:// endpoint)";
        case -EIO:
                return "the storage service could not be reached or kept failing after retries (check the "
                       "endpoint, --endpoint or BlobEndpoint, and the network; -v shows each attempt)";
        case -EPROTO:
                return "the storage service gave an unexpected answer (-v shows the requests)";
        default:
                return NULL;
        }
}
