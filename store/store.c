/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Vault open/init, the memory-mapped index, object access and blob reads.
 * Index segments are never read into the heap: each is mmap'ed and
 * searched through a 256-way fan-out table plus a binary search.
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <zstd.h>

#include "common.h"
#include "store_i.h"

#define CONFIG_NAME "config.json"
#define CONFIG_FORMAT "rpfs-vault"

bool hash_is_zero(const struct hash128 *h) {
        static const struct hash128 zero;
        return memcmp(h, &zero, sizeof zero) == 0;
}

void hash_to_hex(const struct hash128 *h, char out[static 2 * STORE_HASH_SIZE + 1]) {
        hex_encode(h->b, STORE_HASH_SIZE, out);
}

uint32_t store_block_size(const struct store *s) { return s->block_size; }
int store_level(const struct store *s) { return s->level; }
const char *store_url(const struct store *s) { return s->url; }
bool store_remote(const struct store *s) { return s->b->ops->remote; }

static bool is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

static _Thread_local double thread_deadline;

double store_thread_deadline(double deadline) {
        double prev = thread_deadline;
        thread_deadline = deadline;
        return prev;
}

double store_thread_deadline_get(void) {
        return thread_deadline;
}

int store_init(const char *url, uint32_t block_size, int level) {
        return store_init_with(url, NULL, block_size, level);
}

int store_init_with(const char *url, const struct store_options *o, uint32_t block_size, int level) {
        _cleanup_free_ char *text = NULL;
        struct backend *b = NULL;
        bool exists, empty;
        uint8_t idb[16];
        char id[33], created[21];
        json_t *cfg;
        int r;

        if (!is_pow2(block_size) || block_size < STORE_MIN_BLOCK_SIZE || block_size > STORE_MAX_BLOCK_SIZE)
                return -EINVAL;
        if (level < 0 || level > 19)
                return -EINVAL;
        r = backend_open(url, o, &b);
        if (r < 0)
                return r;
        r = b->ops->probe(b, &exists, &empty);
        if (r < 0)
                goto out;
        if (exists && !empty) {
                r = -EEXIST;
                goto out;
        }
        r = b->ops->create(b);
        if (r < 0)
                goto out;
        if (getrandom(idb, sizeof idb, 0) != sizeof idb) {
                r = -errno;
                goto out;
        }
        hex_encode(idb, sizeof idb, id);
        time_format_iso(time(NULL), created);
        cfg = json_pack("{s:s, s:i, s:s, s:s, s:i, s:{s:s, s:i}, s:s, s:i}",
                        "format", CONFIG_FORMAT, "version", STORE_FORMAT_VERSION, "id", id,
                        "created", created, "block_size", (json_int_t)block_size,
                        "compression", "algorithm", level ? "zstd" : "none", "level", level,
                        "hash", "xxh3-128", "manifest_chunk_entries", 512);
        if (!cfg) {
                r = -ENOMEM;
                goto out;
        }
        text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(cfg);
        if (!text) {
                r = -ENOMEM;
                goto out;
        }
        r = b->ops->put(b, CONFIG_NAME, text, strlen(text), BACKEND_PUT_EXCLUSIVE);
out:
        if (b)
                b->ops->free(b);
        return r;
}

static int parse_config(struct store *s, const char *text) {
        json_error_t err;
        json_t *cfg = json_loads(text, 0, &err);
        const char *fmt = NULL, *algo = NULL;
        json_int_t version = 0, bs = 0, level = 0;
        int r = -EMEDIUMTYPE;

        if (!cfg)
                return -EMEDIUMTYPE;
        if (json_unpack(cfg, "{s:s, s:I}", "format", &fmt, "version", &version) < 0 ||
            strcmp(fmt, CONFIG_FORMAT) != 0)
                goto out;
        if (version > STORE_FORMAT_VERSION) {
                r = -EPROTONOSUPPORT;
                goto out;
        }
        if (json_unpack(cfg, "{s:I, s:{s:s, s:I}}", "block_size", &bs, "compression",
                        "algorithm", &algo, "level", &level) < 0)
                goto out;
        if (bs < STORE_MIN_BLOCK_SIZE || bs > STORE_MAX_BLOCK_SIZE || !is_pow2((uint32_t)bs))
                goto out;
        if (level < 0 || level > 19)
                goto out;
        s->block_size = (uint32_t)bs;
        s->level = (int)level;
        r = 0;
out:
        json_decref(cfg);
        return r;
}

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

int store_open(const char *url, struct store **ret) {
        return store_open_with(url, NULL, ret);
}

int store_open_with(const char *url, const struct store_options *o, struct store **ret) {
        _cleanup_free_ char *text = NULL;
        struct store *s;
        int r;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        pthread_rwlock_init(&s->idx_lock, NULL);
        s->url = strdup(url);
        if (!s->url) {
                r = -ENOMEM;
                goto fail;
        }
        r = backend_open(url, o, &s->b);
        if (r < 0)
                goto fail;
        r = s->b->ops->get(s->b, CONFIG_NAME, &text, NULL);
        if (r == -ENOENT) {
                /* Tell a missing location from one without a vault. */
                bool exists = true, empty;
                if (s->b->ops->probe(s->b, &exists, &empty) >= 0 && !exists)
                        goto fail;
        }
        if (r == -ENOENT || r == -ENOTDIR || r == -EISDIR) {
                r = -EMEDIUMTYPE;
                goto fail;
        }
        if (r < 0)
                goto fail;
        r = parse_config(s, text);
        if (r < 0)
                goto fail;
        r = store_refresh(s);
        if (r < 0)
                goto fail;
        *ret = s;
        return 0;
fail:
        store_free(s);
        return r;
}

const char *store_error_hint(const char *url, int r) {
        if (url && strncmp(url, "azure://", 8) == 0)
                return backend_azure_explain(r);
        return NULL;
}

void store_free(struct store *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n_segs; i++) {
                munmap(s->segs[i].map, s->segs[i].map_len);
                free(s->segs[i].name);
        }
        free(s->segs);
        if (s->b)
                s->b->ops->free(s->b);
        pthread_rwlock_destroy(&s->idx_lock);
        free(s->url);
        free(s);
}

/* ---- index segments ---- */

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

static const uint8_t *segment_find(const struct segment *seg, const struct hash128 *h) {
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

int store_lookup(struct store *s, const struct hash128 *h, struct blob_loc *ret) {
        int r = -ENOENT;

        pthread_rwlock_rdlock(&s->idx_lock);
        for (size_t i = s->n_segs; i-- > 0;) {
                const uint8_t *e = segment_find(&s->segs[i], h);
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

int store_blob_stored_size(struct store *s, const struct hash128 *h, uint32_t *ret) {
        struct blob_loc loc;
        int r;

        if (hash_is_zero(h))
                return -ENOENT;
        r = store_lookup(s, h, &loc);
        if (r < 0)
                return r;
        *ret = loc.len;
        return 0;
}

void store_read_stats(struct store *s, uint64_t *ret_bytes, uint64_t *ret_requests) {
        if (ret_bytes)
                *ret_bytes = atomic_load(&s->read_bytes);
        if (ret_requests)
                *ret_requests = atomic_load(&s->read_requests);
}

static void count_read(struct store *s, uint64_t len) {
        atomic_fetch_add(&s->read_bytes, len);
        atomic_fetch_add(&s->read_requests, 1);
}

int store_has(struct store *s, const struct hash128 *h) {
        if (hash_is_zero(h))
                return 0;
        return store_lookup(s, h, NULL);
}

/* ---- objects ---- */

static bool object_name_ok(const char *name) {
        if (!name || !*name || name[0] == '/' || strstr(name, "..") || strstr(name, "//"))
                return false;
        for (const char *p = name; *p; p++)
                if (!(*p == '/' || *p == '.' || *p == '_' || *p == '-' || (*p >= '0' && *p <= '9') ||
                      (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
                        return false;
        return true;
}

int store_put_object(struct store *s, const char *name, const void *data, size_t len, bool exclusive) {
        if (!object_name_ok(name))
                return -EINVAL;
        return s->b->ops->put(s->b, name, data, len, exclusive ? BACKEND_PUT_EXCLUSIVE : 0);
}

int store_get_object(struct store *s, const char *name, char **ret, size_t *ret_len) {
        if (!object_name_ok(name))
                return -EINVAL;
        return s->b->ops->get(s->b, name, ret, ret_len);
}

int store_list(struct store *s, const char *prefix, store_list_cb cb, void *userdata) {
        return s->b->ops->list(s->b, prefix, cb, userdata);
}

/* ---- codec ---- */

struct store_codec {
        ZSTD_CCtx *cctx;
        ZSTD_DCtx *dctx;
        int level;
        uint8_t *scratch;
        size_t scratch_cap;
        uint8_t *block;        /* one decoded block, for store_fetch_blocks_sink() */
        uint32_t block_size;
};

int store_codec_new(const struct store *s, struct store_codec **ret) {
        struct store_codec *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->level = s->level;
        c->block_size = s->block_size;
        c->cctx = ZSTD_createCCtx();
        c->dctx = ZSTD_createDCtx();
        if (!c->cctx || !c->dctx) {
                store_codec_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

void store_codec_free(struct store_codec *c) {
        if (!c)
                return;
        ZSTD_freeCCtx(c->cctx);
        ZSTD_freeDCtx(c->dctx);
        free(c->scratch);
        free(c->block);
        free(c);
}

size_t store_encode_bound(size_t len) {
        return BLOB_HDR_SIZE + ZSTD_compressBound(len);
}

long store_encode(struct store_codec *c, enum store_kind kind, const void *src, size_t len, void *out, size_t cap) {
        uint8_t *o = out;
        size_t n = 0;
        uint8_t codec = BLOB_RAW;

        if (cap < BLOB_HDR_SIZE + len || len > UINT32_MAX)
                return -ENOBUFS;
        if (c->level > 0) {
                n = ZSTD_compressCCtx(c->cctx, o + BLOB_HDR_SIZE, cap - BLOB_HDR_SIZE, src, len, c->level);
                if (ZSTD_isError(n))
                        n = 0;
                else if (n < len)
                        codec = BLOB_ZSTD;
        }
        if (codec == BLOB_RAW) {
                memcpy(o + BLOB_HDR_SIZE, src, len);
                n = len;
        }
        o[0] = codec;
        o[1] = (uint8_t)kind;
        put_le16(o + 2, 0);
        put_le32(o + 4, (uint32_t)len);
        return (long)(BLOB_HDR_SIZE + n);
}

int store_decode(struct store_codec *c, const struct hash128 *h, const uint8_t *enc, size_t len,
                 void *out, size_t cap, size_t *ret_len) {
        struct hash128 got;
        uint32_t ulen;
        size_t n;

        if (len < BLOB_HDR_SIZE)
                return -EBADMSG;
        ulen = get_le32(enc + 4);
        if (ulen > cap)
                return -ENOBUFS;
        switch (enc[0]) {
        case BLOB_RAW:
                if (len - BLOB_HDR_SIZE != ulen)
                        return -EBADMSG;
                memcpy(out, enc + BLOB_HDR_SIZE, ulen);
                break;
        case BLOB_ZSTD:
                n = ZSTD_decompressDCtx(c->dctx, out, ulen, enc + BLOB_HDR_SIZE, len - BLOB_HDR_SIZE);
                if (ZSTD_isError(n) || n != ulen)
                        return -EBADMSG;
                break;
        default:
                return -EBADMSG;
        }
        store_hash(out, ulen, &got);
        if (memcmp(&got, h, sizeof got) != 0)
                return -EBADMSG;
        if (ret_len)
                *ret_len = ulen;
        return 0;
}

int store_read_blob(struct store *s, struct store_codec *c, const struct hash128 *h,
                    void *buf, size_t cap, size_t *ret_len) {
        struct blob_loc loc;
        char name[64];
        int r;

        r = store_lookup(s, h, &loc);
        if (r < 0)
                return r;
        if (loc.len < BLOB_HDR_SIZE || loc.len > BLOB_HDR_SIZE + ZSTD_compressBound(loc.ulen))
                return -EBADMSG;
        if (c->scratch_cap < loc.len) {
                uint8_t *n = realloc(c->scratch, loc.len);
                if (!n)
                        return -ENOMEM;
                c->scratch = n;
                c->scratch_cap = loc.len;
        }
        pack_name(loc.pack_id, name, sizeof name);
        r = s->b->ops->get_range(s->b, name, loc.offset, c->scratch, loc.len);
        if (r < 0)
                return r;
        count_read(s, loc.len);
        return store_decode(c, h, c->scratch, loc.len, buf, cap, ret_len);
}

/* ---- batched fetches ---- */

void store_pack_name(uint64_t pack_id, char *buf, size_t len) {
        pack_name(pack_id, buf, len);
}

struct fetch_ref {
        struct blob_loc loc;
        size_t i; /* index into the caller's array */
};

static int cmp_fetch_ref(const void *a, const void *b) {
        const struct fetch_ref *x = a, *y = b;
        if (x->loc.pack_id != y->loc.pack_id)
                return x->loc.pack_id < y->loc.pack_id ? -1 : 1;
        return x->loc.offset < y->loc.offset ? -1 : x->loc.offset > y->loc.offset;
}

/* One ranged read: a run of blobs of one pack, each starting where the
 * last ended (or nearly: gaps under FETCH_GAP are read through), at most
 * FETCH_MAX_SPAN long. A call reads its runs in rounds of up to
 * FETCH_ROUND bytes and FETCH_ROUND_RUNS runs, all runs of a round at once
 * (in parallel on a remote backend). Large requests matter: a remote
 * store spends about as much on a request as on megabytes of data. */
#define FETCH_GAP (64u << 10)
#define FETCH_MAX_SPAN (16u << 20)
#define FETCH_ROUND (16u << 20)
#define FETCH_ROUND_RUNS 16
/* A codec keeps a scratch buffer up to this size between calls. */
#define SCRATCH_KEEP (2u << 20)

struct fetch_run {
        size_t a, b;         /* refs[a, b) */
        uint64_t start, end; /* byte range in the pack */
};

static int scratch_reserve(struct store_codec *c, size_t len) {
        if (c->scratch_cap >= len)
                return 0;
        free(c->scratch);
        c->scratch = malloc(len);
        c->scratch_cap = c->scratch ? len : 0;
        return c->scratch ? 0 : -ENOMEM;
}

int store_fetch_blocks_sink(struct store *s, struct store_codec *c, struct store_fetch *v, size_t n,
                            store_fetch_sink sink, void *userdata) {
        _cleanup_free_ struct fetch_ref *refs = calloc(MAX(n, 1), sizeof *refs);
        _cleanup_free_ struct fetch_run *runs = calloc(MAX(n, 1), sizeof *runs);
        struct backend_range br[FETCH_ROUND_RUNS];
        char names[FETCH_ROUND_RUNS][64];
        size_t m = 0, nr = 0;
        int err = 0;

        if (!refs || !runs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                v[i].stored = 0;
                v[i].pack_id = 0;
                v[i].result = store_lookup(s, &v[i].h, &refs[m].loc);
                if (v[i].result < 0)
                        continue;
                if (refs[m].loc.len < BLOB_HDR_SIZE ||
                    refs[m].loc.len > BLOB_HDR_SIZE + ZSTD_compressBound(refs[m].loc.ulen)) {
                        v[i].result = -EBADMSG;
                        continue;
                }
                if (!v[i].buf && !c->block && !(c->block = malloc(c->block_size))) {
                        v[i].result = -ENOMEM;
                        continue;
                }
                v[i].pack_id = refs[m].loc.pack_id;
                v[i].result = -EIO; /* until read and decoded */
                refs[m++].i = i;
        }
        qsort(refs, m, sizeof *refs, cmp_fetch_ref);
        for (size_t a = 0; a < m;) {
                size_t b = a + 1;
                uint64_t start = refs[a].loc.offset, end = start + refs[a].loc.len;
                while (b < m && refs[b].loc.pack_id == refs[a].loc.pack_id && refs[b].loc.offset >= end &&
                       refs[b].loc.offset - end < FETCH_GAP &&
                       refs[b].loc.offset + refs[b].loc.len - start <= FETCH_MAX_SPAN) {
                        end = refs[b].loc.offset + refs[b].loc.len;
                        b++;
                }
                runs[nr++] = (struct fetch_run){ a, b, start, end };
                a = b;
        }

        for (size_t r0 = 0; r0 < nr && err == 0;) {
                size_t r1 = r0, bytes = 0, pos = 0;
                while (r1 < nr && r1 - r0 < FETCH_ROUND_RUNS &&
                       (r1 == r0 || bytes + (runs[r1].end - runs[r1].start) <= FETCH_ROUND)) {
                        bytes += (size_t)(runs[r1].end - runs[r1].start);
                        r1++;
                }
                err = scratch_reserve(c, bytes);
                if (err < 0)
                        break;
                for (size_t k = r0; k < r1; k++) {
                        size_t len = (size_t)(runs[k].end - runs[k].start);
                        pack_name(refs[runs[k].a].loc.pack_id, names[k - r0], sizeof names[k - r0]);
                        br[k - r0] = (struct backend_range){ .name = names[k - r0], .off = runs[k].start,
                                                             .buf = c->scratch + pos, .len = len };
                        pos += len;
                }
                backend_get_ranges(s->b, br, r1 - r0);
                for (size_t k = r0; k < r1; k++) {
                        const struct backend_range *q = &br[k - r0];
                        if (q->result >= 0)
                                count_read(s, q->len);
                        for (size_t j = runs[k].a; j < runs[k].b; j++) {
                                struct store_fetch *f = &v[refs[j].i];
                                if (q->result < 0) {
                                        f->result = q->result;
                                        continue;
                                }
                                f->stored = refs[j].loc.len;
                                f->result = store_decode(c, &f->h, (uint8_t *)q->buf + (refs[j].loc.offset - runs[k].start),
                                                         refs[j].loc.len, f->buf ? f->buf : c->block, s->block_size, NULL);
                                if (f->result == 0 && !f->buf && sink)
                                        sink(userdata, f, c->block);
                        }
                }
                r0 = r1;
        }
        if (c->scratch_cap > SCRATCH_KEEP) {
                free(c->scratch);
                c->scratch = NULL;
                c->scratch_cap = 0;
        }
        return err;
}

int store_fetch_blocks(struct store *s, struct store_codec *c, struct store_fetch *v, size_t n) {
        return store_fetch_blocks_sink(s, c, v, n, NULL, NULL);
}
