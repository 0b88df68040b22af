/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A point object's JSON (ret_point_parse), as the vault holds it: it must
 * parse or fail with -EBADMSG / -EPROTONOSUPPORT, never crash, and a point
 * that parses is one the readers can walk: a valid VM name and ID, a block
 * size, and one manifest chunk per RET_CHUNK_ENTRIES blocks of each disk
 * (format 1: listed; format 2: under a tree of as many levels as that
 * many chunks need). */
#include <string.h>

#include "common.h"
#include "retention.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct ret_point *p = NULL;
        char *text = malloc(size + 1);
        int r;

        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;
        r = ret_point_parse(text, &p);
        if (r == 0) {
                if (!p->block_size || !memchr(p->vm, 0, sizeof p->vm) || !memchr(p->id, 0, sizeof p->id))
                        abort();
                for (size_t i = 0; i < p->n_disks; i++)
                        if (p->disks[i].n_chunks != DIV_ROUND_UP(p->disks[i].n_blocks, RET_CHUNK_ENTRIES) ||
                            (!p->disks[i].chunks && /* format 2: a tree of the right shape */
                             p->disks[i].tree_levels != ret_tree_levels(p->disks[i].n_chunks, p->disks[i].tree_fanout)))
                                abort();
                ret_point_free(p);
        } else if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -ENOMEM)
                abort();
        free(text);
        return 0;
}
