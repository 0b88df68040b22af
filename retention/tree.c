/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Manifest trees (format version 2): a disk's manifest chunk checksums
 * cut into nodes of `fanout` checksums, the nodes' checksums cut again,
 * up to one root. Nodes are content-addressed blobs like the chunks, so
 * two points of a disk share every subtree over unchanged chunks, and a
 * new point stores one node per level on the path to each changed chunk:
 * for a 1 TiB disk (32,768 chunks, 2 levels of 256) a few KiB, not the
 * 512 KiB of a flat list.
 */
#include <pthread.h>
#include <string.h>

#include "common.h"
#include "retention.h"
#include "retention_i.h"

unsigned ret_tree_levels(size_t n, unsigned fanout) {
        unsigned levels = 0;
        uint64_t cap = 1;

        if (n == 0 || fanout < 2)
                return 0;
        while (cap < n) {
                cap *= fanout;
                levels++;
        }
        return MAX(levels, 1u);
}

/* Reading a point's tree must not cost a codec (zstd contexts, ~0.1 ms to
 * make) per point: a mount loads thousands. Each thread keeps one for
 * decoding tree nodes (decoding depends on no vault setting), freed when
 * the thread ends. */
static pthread_key_t codec_key;
static pthread_once_t codec_once = PTHREAD_ONCE_INIT;

static void codec_key_free(void *c) { store_codec_free(c); }
static void codec_key_init(void) { (void)pthread_key_create(&codec_key, codec_key_free); }

static int thread_codec(struct store *s, struct store_codec **ret) {
        struct store_codec *c;
        int r;

        pthread_once(&codec_once, codec_key_init);
        c = pthread_getspecific(codec_key);
        if (!c) {
                r = store_codec_new(s, &c);
                if (r < 0)
                        return r;
                if (pthread_setspecific(codec_key, c) != 0) {
                        store_codec_free(c);
                        return -ENOMEM;
                }
        }
        *ret = c;
        return 0;
}

/* Nodes (or chunks, level 0) on level l of a tree over n chunks. */
static uint64_t level_count(uint64_t n, unsigned fanout, unsigned l) {
        for (unsigned i = 0; i < l; i++)
                n = DIV_ROUND_UP(n, fanout);
        return n;
}

int ret_tree_store(struct store_writer *w, struct store_codec *c, const struct hash128 *chunks, size_t n,
                   unsigned fanout, struct hash128 *ret_root, unsigned *ret_levels) {
        unsigned levels = ret_tree_levels(n, fanout);
        size_t bound = store_encode_bound((size_t)fanout * sizeof(struct hash128));
        _cleanup_free_ uint8_t *enc = NULL;
        _cleanup_free_ struct hash128 *buf = NULL;
        const struct hash128 *cur = chunks;
        struct hash128 *next;
        size_t cnt = n;
        int r;

        memset(ret_root, 0, sizeof *ret_root);
        *ret_levels = levels;
        if (levels == 0)
                return 0;
        enc = malloc(bound);
        /* Level l + 1 fits in the first half of buf, level l + 2 after it. */
        buf = calloc(2 * DIV_ROUND_UP(n, fanout) + 2, sizeof *buf);
        if (!enc || !buf)
                return -ENOMEM;
        for (unsigned l = 1; l <= levels; l++) {
                size_t nn = DIV_ROUND_UP(cnt, fanout);
                next = (l % 2) ? buf : buf + DIV_ROUND_UP(n, fanout) + 1;
                for (size_t j = 0; j < nn; j++) {
                        size_t k = MIN((size_t)fanout, cnt - j * fanout), len = k * sizeof *cur;
                        store_hash(cur + j * fanout, len, &next[j]);
                        if (store_writer_known(w, &next[j]))
                                continue;
                        long e = store_encode(c, STORE_KIND_TREE, cur + j * fanout, len, enc, bound);
                        if (e < 0)
                                return (int)e;
                        r = store_writer_add(w, &next[j], enc, (size_t)e);
                        if (r < 0)
                                return r;
                }
                cur = next;
                cnt = nn;
        }
        *ret_root = cur[0];
        return 0;
}

/* Read node h, which must list exactly expect checksums, into out. */
static int read_node(struct store *s, struct store_codec *c, const struct hash128 *h, size_t expect,
                     struct hash128 *out) {
        size_t len = 0;
        int r = store_read_blob(s, c, h, out, expect * sizeof *out, &len);

        if (r == -ENOBUFS)
                return -EBADMSG;
        if (r < 0)
                return r;
        return len == expect * sizeof *out ? 0 : -EBADMSG;
}

static bool shape_ok(const struct ret_disk *d) {
        return d->tree_levels > 0 && d->tree_fanout >= 2 && d->tree_fanout <= RET_TREE_FANOUT_MAX &&
               d->tree_levels == ret_tree_levels(d->n_chunks, d->tree_fanout);
}

/* What ret_point_load puts for the chunks under a node missing from the
 * vault or damaged (a bad checksum, an undecodable blob): a checksum no
 * blob has (a fixed prefix, then the node's; never stored, and
 * ret_chunk_unreadable() tells it), so reading such a chunk fails with -ENOENT as a missing chunk does, and
 * the point still loads (the mount shows it, check and failback name the
 * missing range) as a version-1 point with a missing chunk did. */
static const uint8_t mark_prefix[8] = { 0xff, 'r', 'p', 'f', 's', 'm', 'k', 0xff };

static void missing_mark(const struct hash128 *node, struct hash128 *ret) {
        memcpy(ret->b, mark_prefix, sizeof mark_prefix);
        memcpy(ret->b + sizeof mark_prefix, node->b, sizeof ret->b - sizeof mark_prefix);
}

bool ret_chunk_unreadable(const struct hash128 *ch) {
        return memcmp(ch->b, mark_prefix, sizeof mark_prefix) == 0;
}

int ret_tree_load_marked(struct store *s, const struct ret_disk *d, bool mark_missing, struct hash128 **ret) {
        unsigned f = d->tree_fanout;
        _cleanup_free_ struct hash128 *cur = NULL;
        struct store_codec *c = NULL;
        uint64_t cnt = 1;
        int r = 0;

        if (!shape_ok(d))
                return -EBADMSG;
        cur = malloc(sizeof *cur);
        if (!cur)
                return -ENOMEM;
        cur[0] = d->tree;
        r = thread_codec(s, &c);
        if (r < 0)
                return r;
        for (unsigned l = d->tree_levels; l >= 1 && r >= 0; l--) {
                uint64_t below = level_count(d->n_chunks, f, l - 1);
                struct hash128 *next = malloc(MAX(below, 1) * sizeof *next);
                if (!next) {
                        r = -ENOMEM;
                        break;
                }
                for (uint64_t j = 0; j < cnt && r >= 0; j++) {
                        size_t k = (size_t)MIN((uint64_t)f, below - j * f);
                        r = read_node(s, c, &cur[j], k, next + j * f);
                        if ((r == -ENOENT || r == -EBADMSG) && mark_missing) {
                                struct hash128 m;
                                missing_mark(&cur[j], &m);
                                for (size_t i = 0; i < k; i++)
                                        next[j * f + i] = m;
                                r = 0;
                        }
                }
                free(cur);
                cur = next;
                cnt = below;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(cur);
        return 0;
}

int ret_tree_load(struct store *s, const struct ret_disk *d, struct hash128 **ret) {
        return ret_tree_load_marked(s, d, false, ret);
}

int ret_tree_leaf(struct store *s, struct store_codec *c, const struct ret_disk *d, size_t ci,
                  struct hash128 *node, size_t *ret_n) {
        unsigned f = d->tree_fanout;
        struct hash128 h = d->tree;
        uint64_t stride = 1;
        size_t n = 0;
        int r = 0;

        if (ci >= d->n_chunks)
                return -ENOENT;
        if (!shape_ok(d))
                return -EBADMSG;
        for (unsigned l = 1; l < d->tree_levels; l++)
                stride *= f;
        /* stride: chunks under one child of a level-l node. */
        for (unsigned l = d->tree_levels; l >= 1; l--, stride /= f) {
                uint64_t k = ci / stride, j = k / f, below = level_count(d->n_chunks, f, l - 1);
                n = (size_t)MIN((uint64_t)f, below - j * f);
                r = read_node(s, c, &h, n, node);
                if (r < 0)
                        return r;
                h = node[k % f];
        }
        *ret_n = n;
        return 0;
}

int ret_tree_get(struct store *s, const struct ret_disk *d, size_t ci, struct hash128 *ret) {
        _cleanup_free_ struct hash128 *node = NULL;
        struct store_codec *c = NULL;
        size_t n;
        int r;

        if (ci >= d->n_chunks)
                return -ENOENT;
        node = malloc((size_t)MAX(d->tree_fanout, 1u) * sizeof *node);
        if (!node)
                return -ENOMEM;
        r = thread_codec(s, &c);
        if (r < 0)
                return r;
        r = ret_tree_leaf(s, c, d, ci, node, &n);
        if (r >= 0)
                *ret = node[ci % d->tree_fanout];
        return r;
}
