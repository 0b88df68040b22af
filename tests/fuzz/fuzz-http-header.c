/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Response headers as an Azure endpoint (or anything posing as one) sends
 * them, one line at a time as libcurl hands them over, not NUL-terminated
 * (az_header_line): the status line, x-ms-error-code, x-ms-meta-rpfsput,
 * Content-Length and Retry-After. Each line of the input is copied into a
 * buffer of exactly its size, so that reading past it is caught. The
 * fields must stay strings, and Retry-After within [0, 600] seconds. */
#include <math.h>
#include <string.h>

#include "azure_i.h"
#include "common.h"
#include "fuzz.h"

static void check(const struct az_req *r) {
        if (!memchr(r->error_code, 0, sizeof r->error_code) || !memchr(r->meta_put, 0, sizeof r->meta_put))
                abort();
        if (!(r->retry_after >= 0 && r->retry_after <= 600))
                abort();
        if (r->in_error_body != (r->status >= 300))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct az_req r = { 0 };
        size_t at = 0;

        while (at < size) {
                const uint8_t *nl = memchr(data + at, '\n', size - at);
                size_t n = nl ? (size_t)(nl - (data + at)) + 1 : size - at;
                char *line = malloc(n ? n : 1);

                if (!line)
                        return 0;
                memcpy(line, data + at, n);
                az_header_line(&r, line, n);
                free(line);
                check(&r);
                at += n;
        }
        return 0;
}
