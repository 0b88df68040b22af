/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Delete, many at once, for the Azure backend. Many objects go out as Blob
 * Batch requests (POST ?comp=batch, a multipart/mixed body of up to
 * AZ_BATCH_MAX DELETE subrequests, each signed on its own or carrying the
 * SAS): one round trip instead of one per object. The response is
 * multipart too: one HTTP status a subrequest (az_batch_results). An
 * endpoint that refuses the batch itself gets single deletes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "azure_i.h"
#include "common.h"

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
void az_batch_results(const char *resp, size_t n, int *res) {
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
                                   : status == 409                  ? -EEXIST /* lease, immutability, legal hold */
                                                                    : -EIO;
                k++;
                p += 9;
        }
}

int az_del_many(struct backend *b, const char *const *names, size_t n) {
        struct backend_azure *a = AZ_B(b);
        int err = 0;

        if (n == 1)
                return az_del(b, names[0]);
        for (size_t at = 0; at < n;) {
                size_t m = MIN(n - at, (size_t)AZ_BATCH_MAX), len = 0;
                _cleanup_free_ char **blobs = calloc(m, sizeof *blobs);
                _cleanup_free_ int *res = calloc(m, sizeof *res);
                _cleanup_free_ char *body = NULL;
                char boundary[32], ctype[80], hex[17];
                struct az_req q = { .method = "POST", .out = AZ_OUT_MEM };
                int r = blobs && res ? 0 : -ENOMEM;

                for (size_t i = 0; r == 0 && i < m; i++)
                        if (!(blobs[i] = az_full_name(a, names[at + i])))
                                r = -ENOMEM;
                az_random_hex(hex);
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
                                az_batch_results(q.resp ? q.resp : "", m, res);
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
                                res[i] = az_del(b, names[at + i]);
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
