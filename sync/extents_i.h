/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Between extents.c (changed-extents files) and thin-delta.c (LVM thin
 * thin_delta XML): the growing extent list they fill.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "sync.h"

/* Append [start, start + len) to *v (*n used, *cap allocated). 0 or -ENOMEM. */
int sync_extent_add(struct sync_extent **v, size_t *n, size_t *cap, uint64_t start, uint64_t len);

/* Parse thin_delta's XML (plain or --verbose) in text: its different,
 * left_only and right_only ranges, in bytes, appended to *v. block_size:
 * the pool's data block size in bytes, 0 to take it from the superblock's
 * data_block_size (512-byte sectors; if both are given they must agree).
 * 0, or -EINVAL with why (line number) filled. */
int sync_thin_delta_parse(const char *text, uint64_t block_size, struct sync_extent **v, size_t *n, size_t *cap,
                          char *why, size_t wl);
