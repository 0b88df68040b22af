/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Change-tracked replicate (rpfs replicate --base B --changed EXTENTS):
 * a change tracker (CBT, RCT, dirty bitmaps, thin_delta) lists the byte
 * ranges written since base point B. Blocks touching them are read; every
 * other block's checksum is taken from B's manifest without reading it, so
 * the new point's manifest is what a full replicate would give, provided
 * the tracker was right. --verify-base samples blocks outside the ranges
 * to catch a tracker that missed changes or a base it was not relative to.
 * With --base and no --changed the disk is a qcow2 overlay and its own
 * clusters (sync_extents_overlay) are the changed ranges: one mechanism.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "replicate_i.h"

struct rep_changed {
        struct sync_extent *ext;
        size_t n_ext, cur;       /* cur: first range not wholly before the block asked */
        struct ret_point *base;
        const struct ret_disk *bd;
        struct ret_manifest *m;
        uint32_t bs;
};

void rep_changed_free(struct rep_changed *c) {
        if (!c)
                return;
        ret_manifest_free(c->m);
        ret_point_free(c->base);
        free(c->ext);
        free(c);
}

/* Whether block blk touches a range, from range index *cur on (advanced
 * past ranges ending before the block). */
static bool touches(const struct rep_changed *c, size_t *cur, uint64_t blk) {
        uint64_t off = blk * c->bs;
        while (*cur < c->n_ext && c->ext[*cur].start + c->ext[*cur].length <= off)
                (*cur)++;
        return *cur < c->n_ext && c->ext[*cur].start < off + c->bs;
}

static int base_hash(struct rep_changed *c, uint64_t blk, struct hash128 *h) {
        if (ret_chunk_is_zero(c->bd, (size_t)(blk / RET_CHUNK_ENTRIES))) {
                memset(h, 0, sizeof *h);
                return 0;
        }
        return ret_manifest_get(c->m, blk, h);
}

int rep_changed_block(struct rep_changed *c, uint64_t blk, struct hash128 *h) {
        if (touches(c, &c->cur, blk))
                return 1;
        return base_hash(c, blk, h);
}

static uint64_t splitmix64(uint64_t *x) {
        uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

/* Is blk in a range? Binary search (the samples come in random order). */
static bool touches_any(const struct rep_changed *c, uint64_t blk) {
        size_t lo = 0, hi = c->n_ext;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (c->ext[mid].start + c->ext[mid].length <= blk * c->bs)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return touches(c, &lo, blk);
}

/* Read up to n random unchanged blocks of img and compare them with the
 * base. RPFS_VERIFY_SEED (tests) makes the choice repeatable. */
static int verify_base(struct rep_changed *c, struct fmt_image *img, const char *path, unsigned n,
                       uint64_t *read_bytes) {
        const char *env = getenv("RPFS_VERIFY_SEED");
        uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)now_monotonic() * 1000003u ^ (uint64_t)getpid();
        uint64_t n_blocks = c->bd->n_blocks, size = c->bd->size;
        _cleanup_free_ uint8_t *buf = malloc(c->bs);
        unsigned done = 0;
        int r;

        if (!buf)
                return -ENOMEM;
        for (uint64_t tries = 0; done < n && tries < 64ull * n; tries++) {
                uint64_t blk = splitmix64(&seed) % n_blocks, off = blk * c->bs;
                size_t len = (size_t)MIN((uint64_t)c->bs, size - off);
                struct hash128 want, got;
                if (touches_any(c, blk))
                        continue;
                memset(buf, 0, c->bs);
                r = fmt_read(img, buf, len, off);
                if (r < 0) {
                        log_error_errno(r, "%s: --verify-base: reading block %" PRIu64 " failed", path, blk);
                        return r;
                }
                *read_bytes += len;
                if (mem_is_zero(buf, c->bs))
                        memset(&got, 0, sizeof got);
                else
                        store_hash(buf, c->bs, &got);
                r = base_hash(c, blk, &want);
                if (r < 0)
                        return r;
                if (memcmp(&want, &got, sizeof got) != 0) {
                        log_error("%s: --verify-base: block %" PRIu64 " (bytes %" PRIu64 "+%zu) differs from base point "
                                  "%s/%s but is outside the changed ranges: the extents miss changes or were not "
                                  "relative to that point; refusing (nothing written)",
                                  path, blk, off, len, c->base->vm, c->base->id);
                        return -ESTALE;
                }
                done++;
        }
        log_debug("replicate: --verify-base: %u of %u blocks checked, all equal", done, n);
        return 0;
}

/* The base point: of o->vm, with a disk of the same name, size and block size. */
static int base_check(struct store *s, const struct sync_replicate_opts *o, uint64_t size, struct rep_changed *c) {
        const char *disk = o->disks[0].name;
        int r = ret_point_resolve(s, o->vm, o->base, &c->base);

        if (r == -ENOENT) {
                log_error("--base %s: VM %s has no such point", o->base, o->vm);
                return r;
        }
        if (r < 0)
                return log_error_errno(r, "--base %s: loading the point failed", o->base), r;
        if (strcmp(c->base->vm, o->vm) != 0) {
                log_error("--base %s: point of VM %s, not %s", o->base, c->base->vm, o->vm);
                return -EINVAL;
        }
        c->bd = ret_point_disk(c->base, disk);
        if (!c->bd) {
                log_error("--base %s/%s has no disk %s", o->vm, c->base->id, disk);
                return -EINVAL;
        }
        if (c->bd->size != size || c->base->block_size != c->bs) {
                log_error("--base %s/%s: disk %s is %" PRIu64 " bytes (block size %" PRIu32 "), the source %" PRIu64
                          " (block size %" PRIu32 "): not the disk the changes are relative to",
                          o->vm, c->base->id, disk, c->bd->size, c->base->block_size, size, c->bs);
                return -EINVAL;
        }
        return 0;
}

/* The changed ranges: --changed's file, or else the overlay's own
 * clusters (a qcow2 with a backing file: what was written since the
 * backing file's state, which --base must be). */
static int load_extents(const struct sync_replicate_opts *o, struct fmt_image *img, struct rep_changed *c) {
        const char *path = o->disks[0].path;
        char why[256];
        int r;

        if (o->changed) {
                r = sync_extents_load_bs(o->changed, fmt_size(img), o->changed_block_size, &c->ext, &c->n_ext, why,
                                         sizeof why);
                if (r < 0)
                        log_error("--changed %s: %s", o->changed, *why ? why : strerror(-r));
                return r;
        }
        if (!fmt_backing(img)) {
                log_error("--base: %s is not an overlay (a qcow2 image with a backing file); give the changed "
                          "ranges with --changed, or replicate it without --base", path);
                return -EINVAL;
        }
        r = sync_extents_overlay(img, &c->ext, &c->n_ext);
        if (r < 0) {
                const char *e = fmt_last_error(img);
                log_error("%s: mapping the overlay's clusters failed: %s", path, e && *e ? e : strerror(-r));
                return r;
        }
        log_debug("replicate: overlay %s on %s: %zu own extents", path, fmt_backing(img), c->n_ext);
        return 0;
}

int rep_changed_open(struct store *s, const struct sync_replicate_opts *o, struct fmt_image *img,
                     struct rep_changed **ret, uint64_t *read_bytes) {
        struct rep_changed *c = calloc(1, sizeof *c);
        uint64_t size = fmt_size(img);
        int r;

        if (!c)
                return -ENOMEM;
        c->bs = store_block_size(s);
        if (o->n_disks != 1 || !o->base) {
                log_error("--changed and --base: need --base and exactly one --disk");
                r = -EINVAL;
                goto fail;
        }
        r = base_check(s, o, size, c);
        if (r < 0)
                goto fail;
        r = load_extents(o, img, c);
        if (r < 0)
                goto fail;
        r = ret_manifest_open(s, c->bd, &c->m);
        if (r < 0) {
                log_error_errno(r, "--base %s/%s: opening the manifest of %s failed", o->vm, c->base->id, c->bd->name);
                goto fail;
        }
        if (o->verify_base > 0 && size > 0) {
                r = verify_base(c, img, o->disks[0].path, o->verify_base, read_bytes);
                if (r < 0)
                        goto fail;
        }
        *ret = c;
        return 0;
fail:
        rep_changed_free(c);
        return r;
}
