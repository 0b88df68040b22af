/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The GC's bounded-memory machinery. The live set is a sorted array of
 * 16-byte blob names on disk: names are collected in a buffer of
 * MARK_BUF entries; a full buffer is sorted, de-duplicated and written
 * out as a run; runs are merged (de-duplicating again) whenever there are
 * MARK_RUNS of them and once at the end, into one file that is
 * memory-mapped. Memory: the buffer, plus the mapped file (16 bytes per
 * live blob, file-backed pages the kernel can drop). The index side is a
 * k-way merge over the mapped segments, and new segments are streamed to
 * a temporary file: neither holds the index in the heap.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "gc_i.h"

#define MARK_BUF (1u << 20) /* names, 16 MiB */
#define MARK_RUNS 8
#define IO_BUF (1u << 16)

struct store_gc_mark {
        const struct store *s;
        uint8_t *buf;
        size_t n;
        int runs[MARK_RUNS + 1];
        size_t n_runs;
        int fd;               /* the final file, after finish */
        uint8_t *map;
        uint64_t count;
        bool finished, in_memory;
        struct store *lock_store; /* renew its GC lock while marking */
        uint64_t adds;
};

void store_gc_mark_renew_lock(struct store_gc_mark *m, struct store *s) {
        m->lock_store = s;
}

static inline uint64_t be64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, 8);
        return __builtin_bswap64(v);
}

static inline int cmp16(const uint8_t *a, const uint8_t *b) {
        uint64_t x = be64(a), y = be64(b);
        if (x != y)
                return x < y ? -1 : 1;
        x = be64(a + 8);
        y = be64(b + 8);
        return x < y ? -1 : x > y;
}

static inline void swap16(uint8_t *a, uint8_t *b) {
        uint8_t t[16];
        memcpy(t, a, 16);
        memcpy(a, b, 16);
        memcpy(b, t, 16);
}

void gc_sort16(uint8_t *v, size_t n) {
        while (n > 16) {
                uint8_t *mid = v + (n / 2) * 16, *last = v + (n - 1) * 16, pivot[16];
                size_t i = 0, j = n - 1;

                /* median of three into pivot */
                if (cmp16(mid, v) < 0)
                        swap16(mid, v);
                if (cmp16(last, v) < 0)
                        swap16(last, v);
                if (cmp16(last, mid) < 0)
                        swap16(last, mid);
                memcpy(pivot, mid, 16);
                for (;;) {
                        while (cmp16(v + i * 16, pivot) < 0)
                                i++;
                        while (cmp16(v + j * 16, pivot) > 0)
                                j--;
                        if (i >= j)
                                break;
                        swap16(v + i * 16, v + j * 16);
                        i++;
                        j--;
                }
                /* [0, j] <= pivot <= [j+1, n): recurse into the smaller */
                if (j + 1 < n - j - 1) {
                        gc_sort16(v, j + 1);
                        v += (j + 1) * 16;
                        n -= j + 1;
                } else {
                        gc_sort16(v + (j + 1) * 16, n - j - 1);
                        n = j + 1;
                }
        }
        for (size_t i = 1; i < n; i++)
                for (size_t k = i; k > 0 && cmp16(v + (k - 1) * 16, v + k * 16) > 0; k--)
                        swap16(v + (k - 1) * 16, v + k * 16);
}

size_t gc_unique16(uint8_t *v, size_t n) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (k == 0 || memcmp(v + (k - 1) * 16, v + i * 16, 16) != 0) {
                        if (k != i)
                                memcpy(v + k * 16, v + i * 16, 16);
                        k++;
                }
        return k;
}

/* An unnamed temporary file in the cache directory (or /var/tmp). */
static int tmp_fd(void) {
        char dir[4096], path[4200];
        int fd;

        rpfs_cache_dir(dir, sizeof dir);
        if (mkdir_p(dir, 0700) < 0)
                snprintf(dir, sizeof dir, "/var/tmp");
        fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0)
                return fd;
        snprintf(path, sizeof path, "%s/.gc-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        unlink(path);
        return fd;
}

int store_gc_mark_new(const struct store *s, struct store_gc_mark **ret) {
        struct store_gc_mark *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->s = s;
        m->fd = -1;
        m->buf = malloc((size_t)MARK_BUF * 16);
        if (!m->buf) {
                free(m);
                return -ENOMEM;
        }
        *ret = m;
        return 0;
}

void store_gc_mark_free(struct store_gc_mark *m) {
        if (!m)
                return;
        for (size_t i = 0; i < m->n_runs; i++)
                close(m->runs[i]);
        if (m->map && !m->in_memory)
                munmap(m->map, (size_t)m->count * 16);
        if (m->fd >= 0)
                close(m->fd);
        free(m->buf);
        free(m);
}

/* A buffered sequential reader of a run. */
struct run_in {
        int fd;
        uint8_t buf[IO_BUF];
        size_t at, len;
        bool eof;
};

static const uint8_t *run_peek(struct run_in *r) {
        if (r->at == r->len && !r->eof) {
                ssize_t n = read(r->fd, r->buf, sizeof r->buf);
                r->at = 0;
                r->len = n > 0 ? (size_t)n - (size_t)n % 16 : 0;
                if (n <= 0)
                        r->eof = true;
        }
        return r->at < r->len ? r->buf + r->at : NULL;
}

/* Merge the runs into one new run (de-duplicated); the count into
 * *ret_count. Returns the new run's fd or -errno. */
static int merge_runs(struct store_gc_mark *m, uint64_t *ret_count) {
        _cleanup_free_ struct run_in *in = calloc(m->n_runs, sizeof *in);
        _cleanup_free_ uint8_t *out = malloc(IO_BUF);
        uint8_t last[16];
        uint64_t count = 0;
        size_t n_out = 0;
        int fd, r = 0;

        if (!in || !out)
                return -ENOMEM;
        fd = tmp_fd();
        if (fd < 0)
                return fd;
        for (size_t i = 0; i < m->n_runs; i++) {
                in[i].fd = m->runs[i];
                if (lseek(in[i].fd, 0, SEEK_SET) < 0)
                        r = -errno;
        }
        for (;;) {
                const uint8_t *min = NULL;
                size_t k = 0;
                for (size_t i = 0; i < m->n_runs; i++) {
                        const uint8_t *p = run_peek(&in[i]);
                        if (p && (!min || cmp16(p, min) < 0)) {
                                min = p;
                                k = i;
                        }
                }
                if (!min || r < 0)
                        break;
                if (count == 0 || memcmp(last, min, 16) != 0) {
                        memcpy(last, min, 16);
                        memcpy(out + n_out, min, 16);
                        n_out += 16;
                        count++;
                        if (n_out == IO_BUF) {
                                r = write_full(fd, out, n_out);
                                n_out = 0;
                        }
                }
                in[k].at += 16;
        }
        if (r == 0 && n_out)
                r = write_full(fd, out, n_out);
        if (r < 0) {
                close(fd);
                return r;
        }
        for (size_t i = 0; i < m->n_runs; i++)
                close(m->runs[i]);
        m->n_runs = 0;
        *ret_count = count;
        return fd;
}

/* Sort the buffer and write it out as a run. */
static int spill(struct store_gc_mark *m) {
        int fd, r;
        uint64_t count;

        gc_sort16(m->buf, m->n);
        m->n = gc_unique16(m->buf, m->n);
        fd = tmp_fd();
        if (fd < 0)
                return fd;
        r = write_full(fd, m->buf, m->n * 16);
        if (r < 0) {
                close(fd);
                return r;
        }
        m->runs[m->n_runs++] = fd;
        m->n = 0;
        if (m->n_runs == MARK_RUNS) {
                fd = merge_runs(m, &count);
                if (fd < 0)
                        return fd;
                m->runs[m->n_runs++] = fd;
        }
        return 0;
}

int store_gc_mark_add(struct store_gc_mark *m, const struct hash128 *plain) {
        struct hash128 name;
        int r;

        if (m->finished)
                return -EINVAL;
        if (hash_is_zero(plain))
                return 0;
        store_blob_name(m->s, plain, &name);
        if (m->lock_store && (++m->adds & 0xffff) == 0)
                gc_lock_renew_due(m->lock_store);
        memcpy(m->buf + m->n * 16, name.b, 16);
        if (++m->n < MARK_BUF)
                return 0;
        /* Repeats are common (points share most blocks): first try to
         * make room by de-duplicating in place. */
        gc_sort16(m->buf, m->n);
        m->n = gc_unique16(m->buf, m->n);
        if (m->n < MARK_BUF / 2)
                return 0;
        r = spill(m);
        return r;
}

int store_gc_mark_finish(struct store_gc_mark *m) {
        int r;

        if (m->finished)
                return 0;
        if (m->n_runs == 0) {
                gc_sort16(m->buf, m->n);
                m->count = gc_unique16(m->buf, m->n);
                m->map = m->buf;
                m->in_memory = true;
                m->finished = true;
                return 0;
        }
        if (m->n > 0 && (r = spill(m)) < 0)
                return r;
        if (m->n_runs > 1) {
                uint64_t count;
                int fd = merge_runs(m, &count);
                if (fd < 0)
                        return fd;
                m->runs[m->n_runs++] = fd;
        }
        m->fd = m->runs[0];
        m->n_runs = 0;
        {
                struct stat st;
                if (fstat(m->fd, &st) < 0)
                        return -errno;
                m->count = (uint64_t)st.st_size / 16;
        }
        free(m->buf);
        m->buf = NULL;
        if (m->count > 0) {
                m->map = mmap(NULL, (size_t)m->count * 16, PROT_READ, MAP_SHARED, m->fd, 0);
                if (m->map == MAP_FAILED) {
                        m->map = NULL;
                        return -errno;
                }
        }
        m->finished = true;
        return 0;
}

uint64_t store_gc_mark_count(const struct store_gc_mark *m) {
        return m->finished ? m->count : 0;
}

const uint8_t *gc_mark_names(const struct store_gc_mark *m, uint64_t *ret_n) {
        *ret_n = m->finished ? m->count : 0;
        return m->map;
}

bool store_gc_mark_contains(const struct store_gc_mark *m, const struct hash128 *name) {
        uint64_t k;

        if (!m->finished || m->count == 0)
                return false;
        k = store_hash_lower_bound(m->map, 16, 0, m->count, name);
        return k < m->count && memcmp(m->map + k * 16, name->b, 16) == 0;
}

/* ---- a streamed segment ---- */

#define SEGW_BATCH 4096

int gc_segw_init(struct gc_segw *w, struct store *s) {
        *w = (struct gc_segw){ .s = s, .fd = -1 };
        w->buf = malloc((size_t)SEGW_BATCH * IDX_ENTRY_SIZE);
        return w->buf ? 0 : -ENOMEM;
}

void gc_segw_done(struct gc_segw *w) {
        if (w->fd >= 0)
                close(w->fd);
        free(w->buf);
        for (size_t i = 0; i < w->n_names; i++)
                free(w->names[i]);
        free(w->names);
        w->fd = -1;
        w->buf = NULL;
        w->names = NULL;
}

static int segw_drain(struct gc_segw *w) {
        int r;
        if (w->n_buf == 0)
                return 0;
        r = write_full(w->fd, w->buf, w->n_buf * IDX_ENTRY_SIZE);
        w->n_buf = 0;
        return r;
}

int gc_segw_add(struct gc_segw *w, const struct hash128 *h, const struct blob_loc *loc) {
        int r;

        if (w->fd < 0) {
                w->fd = tmp_fd();
                if (w->fd < 0)
                        return w->fd;
                if (lseek(w->fd, IDX_HDR_SIZE + IDX_FANOUT_SIZE, SEEK_SET) < 0)
                        return -errno;
        }
        idx_entry_encode(w->buf + w->n_buf++ * IDX_ENTRY_SIZE, h, loc);
        w->fan[h->b[0]]++;
        w->count++;
        if (w->n_buf == SEGW_BATCH && (r = segw_drain(w)) < 0)
                return r;
        if (w->count == GC_SEG_MAX)
                return gc_segw_finish(w);
        return 0;
}

int gc_segw_finish(struct gc_segw *w) {
        size_t len = IDX_HDR_SIZE + IDX_FANOUT_SIZE + w->count * IDX_ENTRY_SIZE + IDX_FOOTER_SIZE;
        uint8_t *m;
        char name[64], **nn;
        uint64_t id;
        int r;

        if (w->count == 0)
                return 0;
        r = segw_drain(w);
        if (r < 0)
                return r;
        if (ftruncate(w->fd, (off_t)len) < 0)
                return -errno;
        m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, 0);
        if (m == MAP_FAILED)
                return -errno;
        memcpy(m, IDX_MAGIC, 8);
        put_le32(m + 8, IDX_VERSION);
        put_le32(m + 12, IDX_ENTRY_SIZE);
        put_le64(m + 16, w->count);
        put_le64(m + 24, 0);
        for (unsigned i = 0, sum = 0; i < 256; i++) {
                sum += w->fan[i];
                put_le32(m + IDX_HDR_SIZE + 4 * i, sum);
        }
        put_le64(m + len - IDX_FOOTER_SIZE, store_hash64(m, len - IDX_FOOTER_SIZE));
        memcpy(m + len - 8, IDX_END_MAGIC, 8);
        if (getrandom(&id, sizeof id, 0) != sizeof id)
                r = -errno;
        snprintf(name, sizeof name, "index/%016llx.idx", (unsigned long long)id);
        if (r == 0)
                r = w->s->b->ops->put(w->s->b, name, m, len, BACKEND_PUT_EXCLUSIVE);
        munmap(m, len);
        close(w->fd);
        w->fd = -1;
        if (r < 0)
                return r;
        nn = realloc(w->names, (w->n_names + 1) * sizeof *nn);
        if (!nn || !(nn[w->n_names] = strdup(name))) {
                if (nn)
                        w->names = nn;
                return -ENOMEM;
        }
        w->names = nn;
        w->n_names++;
        w->written_bytes += len;
        w->segments++;
        w->count = 0;
        memset(w->fan, 0, sizeof w->fan);
        return 0;
}

/* ---- k-way merge of segments ---- */

struct cursor {
        const struct segment *seg;
        uint64_t at;
};

static const uint8_t *cur_hash(const struct cursor *c) {
        return c->seg->entries + c->at * IDX_ENTRY_SIZE;
}

static void heap_down(struct cursor *h, size_t n, size_t i) {
        for (;;) {
                size_t l = 2 * i + 1, m = i;
                if (l < n && cmp16(cur_hash(&h[l]), cur_hash(&h[m])) < 0)
                        m = l;
                if (l + 1 < n && cmp16(cur_hash(&h[l + 1]), cur_hash(&h[m])) < 0)
                        m = l + 1;
                if (m == i)
                        return;
                struct cursor t = h[i];
                h[i] = h[m];
                h[m] = t;
                i = m;
        }
}

int gc_index_walk(const struct segment *segs, size_t n, gc_walk_fn fn, void *ud) {
        _cleanup_free_ struct cursor *h = calloc(MAX(n, 1), sizeof *h);
        _cleanup_free_ struct blob_loc *locs = calloc(MAX(n, 1), sizeof *locs);
        size_t nh = 0;
        int r = 0;

        if (!h || !locs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (segs[i].count > 0)
                        h[nh++] = (struct cursor){ &segs[i], 0 };
        for (size_t i = nh; i-- > 0;)
                heap_down(h, nh, i);
        while (nh > 0 && r >= 0) {
                struct hash128 cur;
                size_t nl = 0;

                memcpy(cur.b, cur_hash(&h[0]), 16);
                while (nh > 0 && memcmp(cur_hash(&h[0]), cur.b, 16) == 0) {
                        if (nl < n)
                                idx_entry_decode(cur_hash(&h[0]), &locs[nl++]);
                        if (++h[0].at == h[0].seg->count)
                                h[0] = h[--nh];
                        heap_down(h, nh, 0);
                }
                r = fn(ud, &cur, locs, nl);
        }
        return r < 0 ? r : 0;
}

static bool loc_before(const struct blob_loc *a, const struct blob_loc *b) {
        return a->pack_id < b->pack_id || (a->pack_id == b->pack_id && a->offset < b->offset);
}

const struct blob_loc *gc_choose(const struct blob_loc *locs, size_t n) {
        const struct blob_loc *best = &locs[0];
        for (size_t i = 1; i < n; i++)
                if (loc_before(&locs[i], best))
                        best = &locs[i];
        return best;
}

bool gc_find_kept(const struct segment *segs, size_t n, const struct hash128 *h, struct blob_loc *ret) {
        struct blob_loc l;
        bool any = false;

        for (size_t i = 0; i < n; i++) {
                const uint8_t *e = store_segment_find(&segs[i], h);
                if (!e)
                        continue;
                idx_entry_decode(e, &l);
                if (!any || loc_before(&l, ret))
                        *ret = l;
                any = true;
        }
        return any;
}
