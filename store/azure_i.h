/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Azure Blob Storage, private to store/: where the vault is (account,
 * container, prefix, endpoint), how requests are authorised (Shared Key or
 * SAS), and the HTTP layer that sends them (libcurl, pooled connections,
 * several requests in flight, retries).
 *
 *   azure-auth.c     vault URL and credentials from the environment, the
 *                    Shared Key string-to-sign and signature, encodings
 *   azure-http.c     request execution: sessions of curl handles, retries
 *                    with backoff, HTTP/curl errors translated to -errno
 *   backend-azure.c  the backend operations on top (put, get, ranged
 *                    reads, delete, local copies, the container), open
 *   azure-list.c     List Blobs: the XML pages (libxml2), the list op
 *   azure-batch.c    Blob Batch: many deletes in one multipart request
 *
 * Secrets (account key, SAS) live only in struct az_cfg and in request
 * headers/URLs built from it; nothing here logs them or puts them in an
 * error message. Debug logs name the method, the blob and the status.
 *
 * Thread rule: struct az_cfg is immutable after az_cfg_load(); struct
 * az_http is internally locked (its session pool), so any thread may run
 * requests at once; one struct az_req belongs to one caller.
 */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "backend_i.h"
#include "store.h"

/* The REST API version every request pins. Azurite 3.x supports it. */
#define AZ_API_VERSION "2021-08-06"

struct az_cfg {
        char *account;
        char *container;
        char *prefix;      /* "" or "dir/sub/" (always ends in '/') */
        char *endpoint;    /* "https://acct.blob.core.windows.net", no trailing '/' */
        char *ep_path;     /* the endpoint's path part: "" or "/devstoreaccount1" */
        uint8_t *key;      /* decoded account key, or NULL */
        size_t key_len;
        char *sas;         /* SAS query string without '?', or NULL */
};

/* Parse "azure://ACCOUNT/CONTAINER[/PREFIX]" and read the endpoint and
 * credentials from the environment (RPFS_AZURE_ENDPOINT, overridden by
 * --endpoint; AZURE_STORAGE_CONNECTION_STRING; AZURE_STORAGE_KEY;
 * AZURE_STORAGE_SAS_TOKEN). -EINVAL for a malformed URL, endpoint or
 * credential (the message, if any, never quotes a secret). */
int az_cfg_load(const char *url, struct az_cfg **ret);
/* The same with endpoint (when not NULL) in place of RPFS_AZURE_ENDPOINT. */
int az_cfg_load_with(const char *url, const char *endpoint, struct az_cfg **ret);
void az_cfg_free(struct az_cfg *c);

/* Percent-encode s for a URL path ('/' kept when keep_slash) or a query
 * value. malloc'd, NULL on ENOMEM. */
char *az_encode(const char *s, bool keep_slash);
/* Base64 encode (malloc'd) / decode (-EINVAL when not base64). */
char *az_base64(const void *p, size_t len);
int az_unbase64(const char *s, uint8_t **ret, size_t *ret_len);
/* RFC 1123 date in GMT, "Sun, 06 Nov 1994 08:49:37 GMT", locale-free. */
void az_http_date(time_t t, char buf[static 32]);

/* One header or query parameter. */
struct az_kv {
        const char *name;
        const char *value;
};

/* What the Shared Key signature covers. Header names are given as sent;
 * the standard ones (Content-Length, Content-Type, If-None-Match, ...) go
 * to their fixed positions, every x-ms-* header is canonicalised, others
 * are ignored. Query values are given decoded. */
struct az_sign_input {
        const char *method;
        const char *account;
        const char *path;          /* the URL path exactly as sent (encoded) */
        const struct az_kv *headers;
        size_t n_headers;
        const struct az_kv *query;
        size_t n_query;
};

/* The Shared Key string-to-sign (version 2015-02-21 and later rules).
 * *ret malloc'd. -ENOMEM. */
int az_string_to_sign(const struct az_sign_input *in, char **ret);
/* base64(HMAC-SHA256(key, sts)) into out. 0 or -EIO. */
int az_sign(const uint8_t *key, size_t key_len, const char *sts, char out[static 64]);

/* ---- HTTP ---- */

struct az_http;

enum az_out {
        AZ_OUT_MEM = 0, /* collect the body into resp (grown as needed) */
        AZ_OUT_BUF,     /* into a caller's buffer of exactly out_cap bytes */
        AZ_OUT_FD,      /* into a file descriptor (truncated on retry) */
};

#define AZ_MAX_PARAMS 6
#define AZ_MAX_HEADERS 6

struct az_req {
        /* request */
        const char *method;                 /* GET PUT HEAD DELETE */
        const char *blob;                   /* full blob name, or NULL for the container */
        struct az_kv query[AZ_MAX_PARAMS];  /* decoded values */
        size_t n_query;
        struct az_kv headers[AZ_MAX_HEADERS]; /* extra headers (x-ms-*, If-None-Match, Content-Type) */
        size_t n_headers;
        const void *body;
        size_t body_len;
        enum az_out out;
        void *out_buf;
        size_t out_cap;
        int out_fd;

        /* response (valid after az_http_run) */
        long status;                        /* last HTTP status, 0 if none */
        char error_code[64];                /* x-ms-error-code of the last response */
        char meta_put[40];                  /* x-ms-meta-rpfsput of the last response */
        char *resp;                         /* AZ_OUT_MEM body, malloc'd, NUL-terminated */
        size_t resp_len;                    /* bytes received (every out mode) */
        uint64_t content_length;            /* Content-Length header, if have_cl */
        bool have_cl;
        time_t date;                        /* Date header of the last response, 0 if none */
        unsigned attempts;
        bool ambiguous;                     /* an earlier attempt may have reached the server */
        int result;                         /* 0 or -errno */

        /* internal to azure-http.c */
        size_t resp_cap;
        size_t body_pos;
        double retry_after;
        double next_at;
        double deadline;                /* no retry starts after this */
        double cutoff;                  /* bounded http: no attempt runs past this */
        char errbuf[256];               /* CURLOPT_ERRORBUFFER */
        bool in_error_body;
        bool overflow;
        int state;
};

/* Take one response header line (as libcurl hands it: "Name: value\r\n",
 * or the status line) into r's response fields: status, x-ms-error-code,
 * x-ms-meta-rpfsput, Content-Length, Retry-After. Any bytes are accepted
 * (the line need not be NUL-terminated); what is not understood is
 * ignored. Exposed for tests/fuzz/fuzz-http-header.c. */
void az_header_line(struct az_req *r, const char *line, size_t n);

/* azure-libs.c: libxml2's xmlFree (a variable there) for what libxml2 allocated. */
void az_xml_free(void *p);

/* azure-wire.c: curl's callbacks for a request (u: the struct az_req). */
size_t az_on_write(char *p, size_t size, size_t nmemb, void *u);
size_t az_on_header(char *p, size_t size, size_t nmemb, void *u);
size_t az_on_read(char *buf, size_t size, size_t nmemb, void *u);
/* curl's seek callback (origin: SEEK_SET only). */
int az_on_seek(void *u, curl_off_t off, int origin);
/* A curl failure as -errno: transport failures transient. */
int az_curl_errno(CURLcode cc);
/* The -errno of an HTTP status worth retrying (408, 429, 500, 502-504),
 * else 0; whether it is; the -errno of any status (0 for 2xx). */
int az_status_retry_errno(long status);
bool az_status_transient(long status);
int az_status_errno(long status);

/* A pool of connections to the configured endpoint. */
/* o (NULL: defaults) sets the retry window and whether it bounds every call. */
int az_http_new(const struct az_cfg *cfg, const struct store_options *o, struct az_http **ret);
void az_http_free(struct az_http *h);

/*
 * Run n requests (at most a few at once on pooled connections), retrying
 * each as needed. Returns 0 when all succeeded with a 2xx status, else the
 * first failed request's result. Each request's result:
 *   0           2xx
 *   -ENOENT     404 (error_code tells BlobNotFound / ContainerNotFound)
 *   -EEXIST     409 or 412 (error_code tells which condition)
 *   -EACCES     401 or 403: credentials refused
 *   -EBADMSG    416, or a ranged body of the wrong length
 *   -EPROTO     any other unexpected status
 *   -EIO        network failure or 408/429/5xx that outlasted the retries
 *   -ENOMEM
 * Free each req's resp afterwards (az_req_done).
 */
int az_http_run(struct az_http *h, struct az_req *reqs, size_t n);
void az_req_done(struct az_req *r);
/* Add a header/query parameter to a request (at most AZ_MAX_*). */
void az_req_header(struct az_req *r, const char *name, const char *value);
void az_req_query(struct az_req *r, const char *name, const char *value);

/* ---- List Blobs ---- */

/* Called for each <Blob> of a List Blobs page with its full name and
 * Content-Length. A negative return stops the parse and is returned. */
typedef int (*az_list_fn)(void *userdata, const char *name, uint64_t size);
/* Parse one List Blobs response page. *ret_marker gets the NextMarker
 * (malloc'd) or NULL on the last page. -EPROTO when it is not a List Blobs
 * answer. */
int az_parse_list(const char *xml, size_t len, az_list_fn fn, void *userdata, char **ret_marker);

/* Called once before any XML is parsed (libxml2's global set-up). */
void az_xml_init(void);

/* ---- the backend (backend-azure.c) ---- */

struct backend_azure {
        struct backend base;
        struct az_cfg *cfg;
        struct az_http *http;
        char *cache_dir; /* set at open, created on first use */
        bool container_seen; /* probe() found the container */
};

#define AZ_B(b) ((struct backend_azure *)(b))

/* The blob name of object `name`: the vault prefix + name. malloc'd, NULL
 * on ENOMEM. */
char *az_full_name(struct backend_azure *a, const char *name);
/* 16 random hex digits + NUL (put tags, batch boundaries). */
void az_random_hex(char out[static 17]);
/* Delete Blob of one object: 0 (also when a retry finds it gone), -errno. */
int az_del(struct backend *b, const char *name);

/* The list op: every object under prefix whose name rpfs could have
 * written (azure-list.c). */
int az_list(struct backend *b, const char *prefix, store_list_cb cb, void *userdata);

/* ---- Blob Batch (azure-batch.c) ---- */

/* Subrequests in one Blob Batch request, at most. */
#define AZ_BATCH_MAX 256

/* The del_many op: Blob Batch requests of up to AZ_BATCH_MAX deletes;
 * single deletes where the endpoint refuses batches. 0 or the first
 * error; absent objects count as deleted. */
int az_del_many(struct backend *b, const char *const *names, size_t n);
/* The subrequests' statuses from a Blob Batch response body resp
 * (NUL-terminated), in Content-ID order (parts without one in their
 * order), into res[0..n): 0 deleted or absent (202, 404), -EACCES (401,
 * 403), -EIO (any other status); parts that are missing stay -EPROTO. */
void az_batch_results(const char *resp, size_t n, int *res);
