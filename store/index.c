/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The index: which pack holds a blob, and where. Index segments are never
 * read into the heap: each is mmap'ed (its header and size checked when
 * it is mapped) and searched through its 256-way fan-out table plus a
 * binary search; the newest segment that has a hash wins. The segment
 * array is protected by the store's idx_lock.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "gc_i.h"

static int add_segment_cb(void *userdata, const char *name, uint64_t size) {
        struct store *s = userdata;
        size_t n = strlen(name);
        int r;

        if (n < 4 || strcmp(name + n - 4, ".idx") != 0)
                return 0;
        r = store_add_segment(s, name);
        if (r < 0)
                log_warn_errno(r, "skipping unreadable index segment %s", name);
        return 0;
}

int store_refresh(struct store *s) {
        return s->b->ops->list(s->b, "index/", add_segment_cb, s);
}

static int segment_map(struct store *s, const char *name, struct segment *seg) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st;
        uint8_t *m;
        uint64_t count;
        int r;

        r = s->b->ops->local_path(s->b, name, &path);
        if (r < 0)
                return r;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if ((uint64_t)st.st_size < IDX_HDR_SIZE + IDX_FANOUT_SIZE + IDX_FOOTER_SIZE)
                return -EBADMSG;
        m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
                return -errno;
        count = get_le64(m + 16);
        if (memcmp(m, IDX_MAGIC, 8) != 0 || get_le32(m + 8) != IDX_VERSION ||
            get_le32(m + 12) != IDX_ENTRY_SIZE ||
            count > ((uint64_t)st.st_size - IDX_HDR_SIZE - IDX_FANOUT_SIZE - IDX_FOOTER_SIZE) / IDX_ENTRY_SIZE ||
            IDX_HDR_SIZE + IDX_FANOUT_SIZE + count * IDX_ENTRY_SIZE + IDX_FOOTER_SIZE != (uint64_t)st.st_size ||
            memcmp(m + st.st_size - 8, IDX_END_MAGIC, 8) != 0 ||
            get_le32(m + IDX_HDR_SIZE + 255 * 4) != count) {
                munmap(m, (size_t)st.st_size);
                return -EBADMSG;
        }
        madvise(m, (size_t)st.st_size, MADV_RANDOM);
        seg->name = strdup(name);
        if (!seg->name) {
                munmap(m, (size_t)st.st_size);
                return -ENOMEM;
        }
        seg->map = m;
        seg->map_len = (size_t)st.st_size;
        seg->count = count;
        seg->fanout = m + IDX_HDR_SIZE;
        seg->entries = m + IDX_HDR_SIZE + IDX_FANOUT_SIZE;
        return 0;
}

int store_add_segment(struct store *s, const char *name) {
        struct segment seg, *n;
        int r;

        pthread_rwlock_rdlock(&s->idx_lock);
        for (size_t i = 0; i < s->n_segs; i++)
                if (strcmp(s->segs[i].name, name) == 0) {
                        pthread_rwlock_unlock(&s->idx_lock);
                        return 0;
                }
        pthread_rwlock_unlock(&s->idx_lock);

        r = segment_map(s, name, &seg);
        if (r < 0)
                return r;
        pthread_rwlock_wrlock(&s->idx_lock);
        n = realloc(s->segs, (s->n_segs + 1) * sizeof *n);
        if (!n) {
                pthread_rwlock_unlock(&s->idx_lock);
                munmap(seg.map, seg.map_len);
                free(seg.name);
                return -ENOMEM;
        }
        s->segs = n;
        seg.retired = false;
        for (size_t k = 0; k < s->n_gc_retired; k++)
                if (strcmp(s->gc_retired[k], seg.name) == 0)
                        seg.retired = true;
        s->segs[s->n_segs++] = seg;
        pthread_rwlock_unlock(&s->idx_lock);
        return 0;
}

uint64_t store_hash_lower_bound(const void *base, size_t stride, uint64_t lo, uint64_t hi, const struct hash128 *h) {
        const uint8_t *b = base;
        while (lo < hi) {
                uint64_t mid = lo + (hi - lo) / 2;
                if (memcmp(b + mid * stride, h->b, STORE_HASH_SIZE) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

const uint8_t *store_segment_find(const struct segment *seg, const struct hash128 *h) {
        uint8_t first = h->b[0];
        uint64_t lo = first ? get_le32(seg->fanout + 4 * (first - 1)) : 0;
        uint64_t hi = get_le32(seg->fanout + 4 * first), k;

        if (hi > seg->count || lo > hi)
                return NULL; /* damaged fan-out: treat as absent */
        k = store_hash_lower_bound(seg->entries, IDX_ENTRY_SIZE, lo, hi, h);
        if (k < hi && memcmp(seg->entries + k * IDX_ENTRY_SIZE, h->b, STORE_HASH_SIZE) == 0)
                return seg->entries + k * IDX_ENTRY_SIZE;
        return NULL;
}

/* Newest segment first; segments a pending GC retired only after all
 * others (they may name packs about to go). */
int store_lookup(struct store *s, const struct hash128 *h, struct blob_loc *ret) {
        int r = -ENOENT;

        pthread_rwlock_rdlock(&s->idx_lock);
        for (int pass = 0; pass < 2 && r < 0; pass++)
                for (size_t i = s->n_segs; i-- > 0;) {
                        const uint8_t *e;
                        if (s->segs[i].retired != (pass == 1))
                                continue;
                        e = store_segment_find(&s->segs[i], h);
                        if (e) {
                                if (ret)
                                        idx_entry_decode(e, ret);
                                r = 0;
                                break;
                        }
                }
        pthread_rwlock_unlock(&s->idx_lock);
        return r;
}

static bool pack_condemned(const struct store *s, uint64_t id) {
        size_t lo = 0, hi = s->n_gc_condemned;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (s->gc_condemned[mid] < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < s->n_gc_condemned && s->gc_condemned[lo] == id;
}

int store_lookup_live(struct store *s, const struct hash128 *h, struct blob_loc *ret) {
        int r = -ENOENT;

        pthread_rwlock_rdlock(&s->idx_lock);
        for (size_t i = s->n_segs; i-- > 0 && r < 0;) {
                const uint8_t *e = s->segs[i].retired ? NULL : store_segment_find(&s->segs[i], h);
                struct blob_loc loc;
                if (!e)
                        continue;
                idx_entry_decode(e, &loc);
                if (pack_condemned(s, loc.pack_id))
                        continue;
                if (ret)
                        *ret = loc;
                r = 0;
        }
        pthread_rwlock_unlock(&s->idx_lock);
        return r;
}

struct names {
        char **v;
        size_t n, cap;
};

static int collect_cb(void *userdata, const char *name, uint64_t size) {
        struct names *l = userdata;
        size_t n = strlen(name);

        if (n < 4 || strcmp(name + n - 4, ".idx") != 0)
                return 0;
        if (array_reserve(&l->v, &l->cap, l->n + 1, sizeof *l->v) < 0)
                return -ENOMEM;
        if (!(l->v[l->n] = strdup(name)))
                return -ENOMEM;
        l->n++;
        return 0;
}

static bool names_has(const struct names *l, const char *name) {
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i], name) == 0)
                        return true;
        return false;
}

/* Unmap the segments the listing l does not name. */
static void drop_gone(struct store *s, const struct names *l) {
        size_t k = 0;

        pthread_rwlock_wrlock(&s->idx_lock);
        for (size_t i = 0; i < s->n_segs; i++) {
                if (names_has(l, s->segs[i].name)) {
                        s->segs[k++] = s->segs[i];
                        continue;
                }
                munmap(s->segs[i].map, s->segs[i].map_len);
                free(s->segs[i].name);
        }
        s->n_segs = k;
        pthread_rwlock_unlock(&s->idx_lock);
}

int store_reload_index(struct store *s, uint64_t gen) {
        struct names l = { 0 };
        int r;

        pthread_mutex_lock(&s->reload_lock);
        if (atomic_load(&s->reload_gen) != gen) {
                pthread_mutex_unlock(&s->reload_lock);
                return 0;
        }
        r = s->b->ops->list(s->b, "index/", collect_cb, &l);
        if (r >= 0) {
                drop_gone(s, &l);
                for (size_t i = 0; i < l.n; i++) {
                        int k = store_add_segment(s, l.v[i]);
                        if (k < 0 && k != -ENOENT)
                                log_warn_errno(k, "skipping unreadable index segment %s", l.v[i]);
                }
                r = store_gc_state_load(s);
                atomic_fetch_add(&s->reload_gen, 1);
        }
        pthread_mutex_unlock(&s->reload_lock);
        for (size_t i = 0; i < l.n; i++)
                free(l.v[i]);
        free(l.v);
        return r < 0 ? r : 0;
}

int store_blob_stored_size(struct store *s, const struct hash128 *h, uint32_t *ret) {
        struct hash128 name;
        struct blob_loc loc;
        int r;

        if (hash_is_zero(h))
                return -ENOENT;
        store_blob_name(s, h, &name);
        r = store_lookup(s, &name, &loc);
        if (r < 0)
                return r;
        *ret = loc.len;
        return 0;
}

int store_has(struct store *s, const struct hash128 *h) {
        struct hash128 name;

        if (hash_is_zero(h))
                return 0;
        store_blob_name(s, h, &name);
        return store_lookup(s, &name, NULL);
}

void store_index_free(struct store *s) {
        for (size_t i = 0; i < s->n_segs; i++) {
                munmap(s->segs[i].map, s->segs[i].map_len);
                free(s->segs[i].name);
        }
        free(s->segs);
        s->segs = NULL;
        s->n_segs = 0;
        for (size_t i = 0; i < s->n_gc_retired; i++)
                free(s->gc_retired[i]);
        free(s->gc_retired);
        free(s->gc_condemned);
        s->gc_retired = NULL;
        s->gc_condemned = NULL;
        s->n_gc_retired = s->n_gc_condemned = 0;
}

void store_index_totals(struct store *s, struct store_index_totals *ret) {
        *ret = (struct store_index_totals){ 0 };
        pthread_rwlock_rdlock(&s->idx_lock);
        ret->segments = s->n_segs;
        for (size_t i = 0; i < s->n_segs; i++)
                for (uint64_t k = 0; k < s->segs[i].count; k++) {
                        struct blob_loc loc;
                        idx_entry_decode(s->segs[i].entries + k * IDX_ENTRY_SIZE, &loc);
                        ret->blobs++;
                        ret->stored_bytes += loc.len;
                        ret->decoded_bytes += loc.ulen;
                }
        pthread_rwlock_unlock(&s->idx_lock);
}
