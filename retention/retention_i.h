/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private to retention/: helpers its files share. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "store.h"

/* Store the JSON object o (taken: decref'd in every case; NULL means
 * -ENOMEM) as the object name, the one stored form of retention's objects
 * (indent 1, keys in order). exclusive: fail with -EEXIST if it exists. */
int ret_put_json(struct store *s, const char *name, json_t *o, bool exclusive);

struct ret_disk;
/* The level-1 tree node of d holding chunk ci into node (tree_fanout
 * entries of room), its entry count into *ret_n; chunk ci is node[ci %
 * tree_fanout]. One node read per level with codec c. -ENOENT, -EBADMSG. */
int ret_tree_leaf(struct store *s, struct store_codec *c, const struct ret_disk *d, size_t ci,
                  struct hash128 *node, size_t *ret_n);
/* ret_tree_load; with mark_missing, the chunks under a node missing from
 * the vault or damaged get a checksum no blob has (reading them: -ENOENT) instead of
 * failing the load. */
int ret_tree_load_marked(struct store *s, const struct ret_disk *d, bool mark_missing, struct hash128 **ret);
