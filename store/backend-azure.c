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
 * - list: List Blobs with the prefix, page by page (NextMarker), in
 *   azure-list.c.
 * - del: Delete Blob; del_many: Blob Batch requests of up to 256 deletes,
 *   in azure-batch.c.
 * - sync: nothing; Azure acknowledges a put only once it is durable.
 * - local_path: objects are immutable, so a copy downloaded once into the
 *   local cache directory stays valid; index segments are mmap'ed from it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "azure_i.h"
#include "backend_i.h"
#include "common.h"

#define AZ_SINGLE_MAX (4u << 20)
#define AZ_BLOCK_MAX (4u << 20)

char *az_full_name(struct backend_azure *a, const char *name) {
        char *s;
        if (asprintf(&s, "%s%s", a->cfg->prefix, name) < 0)
                return NULL;
        return s;
}

void az_random_hex(char out[static 17]) {
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

        az_random_hex(tag);
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
        az_random_hex(tag);
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
        _cleanup_free_ char *blob = az_full_name(a, name);
        bool excl = flags & BACKEND_PUT_EXCLUSIVE;

        if (!blob)
                return -ENOMEM;
        if (len <= AZ_SINGLE_MAX)
                return put_single(a, blob, data, len, excl);
        return put_blocks(a, blob, data, len, excl);
}

static int azure_get(struct backend *b, const char *name, char **ret, size_t *ret_len) {
        struct backend_azure *a = AZ_B(b);
        _cleanup_free_ char *blob = az_full_name(a, name);
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
                blobs[i] = az_full_name(a, v[i].name);
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

/* ---- delete (many at once: azure-batch.c) ---- */

int az_del(struct backend *b, const char *name) {
        struct backend_azure *a = AZ_B(b);
        _cleanup_free_ char *blob = az_full_name(a, name);
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
        _cleanup_free_ char *path = NULL, *blob = az_full_name(a, name);
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

/* The Date header of a reply about the vault's config object. */
static int azure_clock(struct backend *b, time_t *ret) {
        struct backend_azure *a = AZ_B(b);
        _cleanup_free_ char *blob = az_full_name(a, "config.json");
        struct az_req q = { .method = "HEAD", .out = AZ_OUT_MEM };
        int r;

        if (!blob)
                return -ENOMEM;
        q.blob = blob;
        r = az_http_run(a->http, &q, 1);
        az_req_done(&q);
        if (r < 0)
                return r;
        if (!q.date)
                return -EPROTO;
        *ret = q.date;
        return 0;
}

static const struct backend_ops azure_ops = {
        .name = "azure",
        .remote = true,
        .put = azure_put,
        .get = azure_get,
        .get_range = azure_get_range,
        .get_ranges = azure_get_ranges,
        .del_many = az_del_many,
        .list = az_list,
        .del = az_del,
        .sync = azure_sync,
        .local_path = azure_local_path,
        .probe = azure_probe,
        .create = azure_create,
        .clock = azure_clock,
        .free = azure_free,
};

int backend_azure_open(const char *url, const struct store_options *o, struct backend **ret) {
        struct backend_azure *a;
        int r;

        az_xml_init();
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
