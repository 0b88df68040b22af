/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Between replicate.c and replicate-changed.c: which blocks of a
 * change-tracked replicate are read, and the base checksums of the rest.
 */
#pragma once

#include "formats.h"
#include "sync.h"

struct rep_changed;

/* Check the base point against o and img (same VM, disk name, size and
 * block size), load o->changed and run --verify-base (its reads added to
 * *read_bytes). Logs why and returns -errno on refusal; nothing written. */
int rep_changed_open(struct store *s, const struct sync_replicate_opts *o, struct fmt_image *img,
                     struct rep_changed **ret, uint64_t *read_bytes);
/* Block blk (asked in increasing order): 1 when it touches a changed
 * range (to be read), 0 with *h the base's checksum, or -errno. */
int rep_changed_block(struct rep_changed *c, uint64_t blk, struct hash128 *h);
void rep_changed_free(struct rep_changed *c);
