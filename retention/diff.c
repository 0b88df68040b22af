/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Read-only comparisons of manifests: which chunks hold only zero blocks,
 * and where two disks differ. Equal manifest chunk checksums mean 512
 * equal blocks, so a diff reads only the chunks that differ: a diff of
 * two points of a 1 TiB disk with little change reads a few chunks.
 */
#include <pthread.h>
#include <string.h>

#include "common.h"
#include "retention.h"

static struct hash128 zero_chunk;
static pthread_once_t zero_chunk_once = PTHREAD_ONCE_INIT;

static void zero_chunk_init(void) {
        static const struct hash128 zeros[RET_CHUNK_ENTRIES];
        store_hash(zeros, sizeof zeros, &zero_chunk);
}

bool ret_chunk_is_zero(const struct ret_disk *d, size_t ci) {
        uint64_t n;
        struct hash128 h;

        if (ci >= d->n_chunks)
                return true;
        n = MIN((uint64_t)RET_CHUNK_ENTRIES, d->n_blocks - (uint64_t)ci * RET_CHUNK_ENTRIES);
        if (n == RET_CHUNK_ENTRIES) {
                pthread_once(&zero_chunk_once, zero_chunk_init);
                return memcmp(&d->chunks[ci], &zero_chunk, sizeof zero_chunk) == 0;
        }
        {
                static const struct hash128 zeros[RET_CHUNK_ENTRIES];
                store_hash(zeros, (size_t)n * sizeof *zeros, &h);
        }
        return memcmp(&d->chunks[ci], &h, sizeof h) == 0;
}

/* Collects block runs and hands them to the callback merged, in bytes. */
struct runs {
        uint64_t bs, size;        /* size: bytes of the disk extents are clipped to */
        uint64_t start, end;      /* the run being built, in blocks; start == end: none */
        ret_extent_fn cb;
        void *userdata;
};

static int runs_flush(struct runs *x) {
        uint64_t a = x->start * x->bs, b = MIN(x->end * x->bs, x->size);
        int r = 0;

        if (x->end > x->start && b > a)
                r = x->cb(x->userdata, a, b - a);
        x->start = x->end = 0;
        return r;
}

static int runs_add(struct runs *x, uint64_t block) {
        int r;
        if (x->end > x->start && x->end == block) {
                x->end++;
                return 0;
        }
        r = runs_flush(x);
        x->start = block;
        x->end = block + 1;
        return r;
}

/* Block i of d (missing: d NULL or past its end) into *h, m its reader. */
static int block_of(struct ret_manifest *m, const struct ret_disk *d, uint64_t i, struct hash128 *h) {
        if (!d || i >= d->n_blocks) {
                memset(h, 0, sizeof *h);
                return 0;
        }
        return ret_manifest_get(m, i, h);
}

int ret_disk_diff(struct store *s, const struct ret_disk *a, const struct ret_disk *b, uint32_t block_size,
                  ret_extent_fn cb, void *userdata) {
        struct ret_manifest *ma = NULL, *mb = NULL;
        struct runs x = { .bs = block_size, .size = b->size, .cb = cb, .userdata = userdata };
        size_t n_chunks = MAX(a ? a->n_chunks : 0, b->n_chunks);
        uint64_t n_blocks = b->n_blocks;
        int r = 0;

        if ((a && (r = ret_manifest_open(s, a, &ma)) < 0) || (r = ret_manifest_open(s, b, &mb)) < 0)
                goto out;
        for (size_t ci = 0; ci < n_chunks && (uint64_t)ci * RET_CHUNK_ENTRIES < n_blocks; ci++) {
                bool in_a = a && ci < a->n_chunks, in_b = ci < b->n_chunks;
                uint64_t first = (uint64_t)ci * RET_CHUNK_ENTRIES, last = MIN(first + RET_CHUNK_ENTRIES, n_blocks);

                if (in_a && in_b && memcmp(&a->chunks[ci], &b->chunks[ci], sizeof a->chunks[ci]) == 0)
                        continue; /* the same 512 blocks */
                if ((!in_a || ret_chunk_is_zero(a, ci)) && (!in_b || ret_chunk_is_zero(b, ci)))
                        continue; /* zeros on both sides */
                for (uint64_t i = first; i < last; i++) {
                        struct hash128 ha, hb;
                        if ((r = block_of(ma, a, i, &ha)) < 0 || (r = block_of(mb, b, i, &hb)) < 0)
                                goto out;
                        if (memcmp(&ha, &hb, sizeof ha) != 0 && (r = runs_add(&x, i)) < 0)
                                goto out;
                }
        }
        r = runs_flush(&x);
out:
        ret_manifest_free(ma);
        ret_manifest_free(mb);
        return r;
}
