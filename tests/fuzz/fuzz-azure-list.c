/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The List Blobs XML of one page (az_parse_list), as an Azure endpoint or
 * anything posing as one may answer: parsing must fail with -EPROTO or
 * succeed, never crash; every name handed on is a string, the marker
 * too. A callback error stops the parse and is returned. */
#include <string.h>

#include "azure_i.h"
#include "common.h"
#include "fuzz.h"

struct seen {
        size_t n, bytes;
};

static int one(void *userdata, const char *name, uint64_t size) {
        struct seen *s = userdata;
        s->bytes += strlen(name);
        /* the 100th blob stops the page, as a failing callback would */
        return ++s->n == 100 ? -ECANCELED : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char unset[] = "unset";
        struct seen s = { 0 };
        char *marker = unset;
        int r;

        az_xml_init();
        r = az_parse_list((const char *)data, size, one, &s, &marker);
        if (r < 0 && r != -EPROTO && r != -ECANCELED && r != -ENOMEM)
                abort();
        if (r == -ECANCELED && s.n != 100)
                abort();
        if (marker) {
                if (r < 0 || marker == unset)
                        abort(); /* a marker only on success, always set */
                s.bytes += strlen(marker);
                free(marker);
        }
        return 0;
}
