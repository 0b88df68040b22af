/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Manifest chunks: RET_CHUNK_ENTRIES block checksums (16 bytes each),
 * stored as blobs of kind STORE_KIND_MANIFEST, named by their own XXH3-128.
 * Chunk i covers blocks [i * RET_CHUNK_ENTRIES, (i + 1) * RET_CHUNK_ENTRIES).
 * The writer also stores the tree over the chunk list (tree.c); a reader
 * of a disk without its chunk list (a point summary) finds chunks through
 * the tree, one level-1 node at a time.
 */
#include <string.h>

#include "common.h"
#include "retention.h"
#include "retention_i.h"

struct ret_manifest_writer {
        struct store_writer *w;
        struct store_codec *c;
        struct hash128 cur[RET_CHUNK_ENTRIES];
        size_t n_cur;
        struct hash128 *chunks;
        size_t n_chunks, cap;
        uint8_t *enc;
};

int ret_manifest_writer_new(struct store_writer *w, struct store_codec *c, struct ret_manifest_writer **ret) {
        struct ret_manifest_writer *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->enc = malloc(store_encode_bound(sizeof m->cur));
        if (!m->enc) {
                free(m);
                return -ENOMEM;
        }
        m->w = w;
        m->c = c;
        *ret = m;
        return 0;
}

void ret_manifest_writer_free(struct ret_manifest_writer *m) {
        if (!m)
                return;
        free(m->chunks);
        free(m->enc);
        free(m);
}

static int store_chunk(struct ret_manifest_writer *m) {
        struct hash128 h;
        size_t len = m->n_cur * sizeof(struct hash128);
        long n;
        int r;

        if (array_reserve(&m->chunks, &m->cap, m->n_chunks + 1, sizeof *m->chunks) < 0)
                return -ENOMEM;
        store_hash(m->cur, len, &h);
        if (!store_writer_known(m->w, &h)) {
                n = store_encode(m->c, STORE_KIND_MANIFEST, m->cur, len, m->enc,
                                 store_encode_bound(sizeof m->cur));
                if (n < 0)
                        return (int)n;
                r = store_writer_add(m->w, &h, m->enc, (size_t)n);
                if (r < 0)
                        return r;
        }
        m->chunks[m->n_chunks++] = h;
        m->n_cur = 0;
        return 0;
}

int ret_manifest_writer_add(struct ret_manifest_writer *m, const struct hash128 *h) {
        m->cur[m->n_cur++] = *h;
        if (m->n_cur == RET_CHUNK_ENTRIES)
                return store_chunk(m);
        return 0;
}

int ret_manifest_writer_finish(struct ret_manifest_writer *m, struct ret_disk *d) {
        int r;
        if (m->n_cur > 0) {
                r = store_chunk(m);
                if (r < 0)
                        return r;
        }
        r = ret_tree_store(m->w, m->c, m->chunks, m->n_chunks, RET_TREE_FANOUT, &d->tree, &d->tree_levels);
        if (r < 0)
                return r;
        d->tree_fanout = RET_TREE_FANOUT;
        d->chunks = TAKE_PTR(m->chunks);
        d->n_chunks = m->n_chunks;
        m->n_chunks = m->cap = 0;
        return 0;
}

struct ret_manifest {
        struct store *s;
        struct store_codec *c;
        const struct ret_disk *d;
        size_t loaded;                 /* chunk index in cur, or SIZE_MAX */
        struct hash128 cur[RET_CHUNK_ENTRIES];
        size_t n_cur;
        struct hash128 *leaf;          /* without d->chunks: a level-1 tree node */
        size_t leaf_first, leaf_n;     /* the chunks it lists; leaf_n 0: none */
};

int ret_manifest_open(struct store *s, const struct ret_disk *d, struct ret_manifest **ret) {
        struct ret_manifest *m = calloc(1, sizeof *m);
        int r;
        if (!m)
                return -ENOMEM;
        r = store_codec_new(s, &m->c);
        if (r < 0) {
                free(m);
                return r;
        }
        if (!d->chunks && d->n_chunks > 0 &&
            !(m->leaf = malloc((size_t)MAX(d->tree_fanout, 1u) * sizeof *m->leaf))) {
                ret_manifest_free(m);
                return -ENOMEM;
        }
        m->s = s;
        m->d = d;
        m->loaded = SIZE_MAX;
        *ret = m;
        return 0;
}

void ret_manifest_free(struct ret_manifest *m) {
        if (!m)
                return;
        store_codec_free(m->c);
        free(m->leaf);
        free(m);
}

/* The checksum of chunk ci: from the chunk list, or through the tree. */
static int chunk_hash(struct ret_manifest *m, size_t ci, const struct hash128 **ret) {
        const struct ret_disk *d = m->d;
        int r;

        if (d->chunks) {
                *ret = &d->chunks[ci];
                return 0;
        }
        if (m->leaf_n == 0 || ci < m->leaf_first || ci >= m->leaf_first + m->leaf_n) {
                m->leaf_n = 0;
                r = ret_tree_leaf(m->s, m->c, d, ci, m->leaf, &m->leaf_n);
                if (r < 0)
                        return r;
                m->leaf_first = ci - ci % d->tree_fanout;
        }
        *ret = &m->leaf[ci - m->leaf_first];
        return 0;
}

int ret_manifest_get(struct ret_manifest *m, uint64_t i, struct hash128 *ret) {
        const struct hash128 *ch;
        size_t ci, expect, len;
        int r;

        if (i >= m->d->n_blocks)
                return -ENOENT;
        ci = (size_t)(i / RET_CHUNK_ENTRIES);
        if (ci != m->loaded) {
                expect = (size_t)MIN((uint64_t)RET_CHUNK_ENTRIES, m->d->n_blocks - (uint64_t)ci * RET_CHUNK_ENTRIES);
                r = chunk_hash(m, ci, &ch);
                if (r < 0)
                        return r;
                r = store_read_blob(m->s, m->c, ch, m->cur, sizeof m->cur, &len);
                if (r < 0)
                        return r == -ENOBUFS ? -EBADMSG : r;
                if (len != expect * sizeof(struct hash128))
                        return -EBADMSG;
                m->loaded = ci;
                m->n_cur = expect;
        }
        *ret = m->cur[i % RET_CHUNK_ENTRIES];
        return 0;
}
