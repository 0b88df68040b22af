/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A Blob Batch response body (az_batch_results): multipart parts with
 * Content-IDs and HTTP status lines, as an endpoint or anything posing as
 * one may answer. Every result must be one az_batch_results documents,
 * for a batch of any size, never a write past the batch. */
#include <string.h>

#include "azure_i.h"
#include "common.h"
#include "fuzz.h"

static void run(const char *resp, size_t n) {
        int *res = malloc(n * sizeof *res);

        if (!res)
                return;
        az_batch_results(resp, n, res);
        for (size_t i = 0; i < n; i++)
                if (res[i] != 0 && res[i] != -EACCES && res[i] != -EIO && res[i] != -EPROTO)
                        abort();
        free(res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *resp = malloc(size + 1);

        if (!resp)
                return 0;
        memcpy(resp, data, size);
        resp[size] = 0; /* az_http_run's bodies are NUL-terminated */
        run(resp, 1);
        run(resp, 3);
        run(resp, AZ_BATCH_MAX);
        free(resp);
        return 0;
}
