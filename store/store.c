/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Vault open/init, object access, the codec and blob reads one at a time.
 * Batched reads (neighbouring blobs of a pack merged into one ranged read)
 * are fetch.c; the index that locates blobs is index.c.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <zstd.h>

#include "common.h"
#include "crypt_i.h"
#include "store_i.h"

#define CONFIG_NAME "config.json"
#define CONFIG_FORMAT "rpfs-vault"
/* Size of one range buffer of a batched fetch (see fetch_round): a local
 * read gains nothing past a few MiB, a remote store wants large requests. */
#define FETCH_BUF_LOCAL (2u << 20)
#define FETCH_BUF_REMOTE (16u << 20)

bool hash_is_zero(const struct hash128 *h) {
        static const struct hash128 zero;
        return memcmp(h, &zero, sizeof zero) == 0;
}

void hash_to_hex(const struct hash128 *h, char out[static 2 * STORE_HASH_SIZE + 1]) {
        hex_encode(h->b, STORE_HASH_SIZE, out);
}

uint32_t store_block_size(const struct store *s) { return s->block_size; }
uint32_t store_format_version(const struct store *s) { return s->version; }
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

static _Thread_local bool thread_background;

bool store_thread_background(bool on) {
        bool prev = thread_background;
        thread_background = on;
        return prev;
}

bool store_thread_background_get(void) {
        return thread_background;
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

        crypt_hint_clear();
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
        if (o && o->encrypt && (r = store_crypt_init(b, o->key_file, id, block_size, level, cfg)) < 0) {
                json_decref(cfg);
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

static int parse_config(struct store *s, const char *text, const struct store_options *o) {
        json_error_t err;
        json_t *cfg = json_loads(text, 0, &err);
        const char *fmt = NULL, *algo = NULL, *id = "";
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
        if (json_unpack(cfg, "{s:I, s:{s:s, s:I}, s?s}", "block_size", &bs, "compression",
                        "algorithm", &algo, "level", &level, "id", &id) < 0)
                goto out;
        if (bs < STORE_MIN_BLOCK_SIZE || bs > STORE_MAX_BLOCK_SIZE || !is_pow2((uint32_t)bs))
                goto out;
        if (level < 0 || level > 19)
                goto out;
        s->block_size = (uint32_t)bs;
        s->version = (uint32_t)version;
        s->level = (int)level;
        snprintf(s->id, sizeof s->id, "%s", id);
        r = store_crypt_open(s, cfg, o ? o->key_file : NULL);
out:
        json_decref(cfg);
        return r;
}

int store_open(const char *url, struct store **ret) {
        return store_open_with(url, NULL, ret);
}

int store_open_with(const char *url, const struct store_options *o, struct store **ret) {
        _cleanup_free_ char *text = NULL;
        struct store *s;
        int r;

        crypt_hint_clear();
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        pthread_rwlock_init(&s->idx_lock, NULL);
        pthread_mutex_init(&s->buf_lock, NULL);
        pthread_mutex_init(&s->clock_lock, NULL);
        pthread_cond_init(&s->buf_cond, NULL);
        pthread_mutex_init(&s->reload_lock, NULL);
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
        r = parse_config(s, text, o);
        if (r < 0)
                goto fail;
        s->buf_size = s->b->ops->remote ? FETCH_BUF_REMOTE : FETCH_BUF_LOCAL;
        r = store_refresh(s);
        if (r < 0)
                goto fail;
        *ret = s;
        return 0;
fail:
        store_free(s);
        return r;
}

int store_raise_version(struct store *s, uint32_t version) {
        _cleanup_free_ char *text = NULL, *out = NULL;
        json_error_t err;
        json_t *cfg;
        int r;

        if (version <= s->version || version > STORE_FORMAT_VERSION)
                return -EINVAL;
        r = s->b->ops->get(s->b, CONFIG_NAME, &text, NULL);
        if (r < 0)
                return r;
        cfg = json_loads(text, 0, &err);
        if (!cfg || json_object_set_new(cfg, "version", json_integer(version)) < 0) {
                json_decref(cfg);
                return cfg ? -ENOMEM : -EMEDIUMTYPE;
        }
        out = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(cfg);
        if (!out)
                return -ENOMEM;
        r = s->b->ops->put(s->b, CONFIG_NAME, out, strlen(out), 0);
        if (r >= 0)
                s->version = version;
        return r;
}

const char *store_error_hint(const char *url, int r) {
        const char *hint = crypt_hint(r);

        if (hint)
                return hint;
        if (url && strncmp(url, "azure://", 8) == 0)
                return backend_azure_explain(r);
        return NULL;
}

void store_free(struct store *s) {
        if (!s)
                return;
        store_index_free(s);
        crypt_free(s->crypt);
        if (s->b)
                s->b->ops->free(s->b);
        pthread_rwlock_destroy(&s->idx_lock);
        for (size_t i = 0; i < s->n_free; i++)
                free(s->bufs[i]);
        pthread_mutex_destroy(&s->buf_lock);
        pthread_mutex_destroy(&s->clock_lock);
        pthread_cond_destroy(&s->buf_cond);
        pthread_mutex_destroy(&s->reload_lock);
        free(s->url);
        free(s);
}

/* ---- reads counted ---- */

void store_read_stats(struct store *s, uint64_t *ret_bytes, uint64_t *ret_requests) {
        if (ret_bytes)
                *ret_bytes = atomic_load(&s->read_bytes);
        if (ret_requests)
                *ret_requests = atomic_load(&s->read_requests);
}

void store_count_read(struct store *s, uint64_t len) {
        atomic_fetch_add(&s->read_bytes, len);
        atomic_fetch_add(&s->read_requests, 1);
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
        _cleanup_free_ uint8_t *sealed = NULL;
        int r;

        if (!object_name_ok(name))
                return -EINVAL;
        if (s->crypt) {
                r = crypt_object_seal(s->crypt, name, data, len, &sealed, &len);
                if (r < 0)
                        return r;
                data = sealed;
        }
        return s->b->ops->put(s->b, name, data, len, exclusive ? BACKEND_PUT_EXCLUSIVE : 0);
}

int store_get_object(struct store *s, const char *name, char **ret, size_t *ret_len) {
        char *data = NULL;
        size_t len = 0;
        int r;

        if (!object_name_ok(name))
                return -EINVAL;
        r = s->b->ops->get(s->b, name, s->crypt ? &data : ret, s->crypt ? &len : ret_len);
        if (r < 0 || !s->crypt)
                return r;
        r = crypt_object_open(s->crypt, name, data, len, &len);
        if (r < 0) {
                free(data);
                return r;
        }
        *ret = data;
        if (ret_len)
                *ret_len = len;
        return 0;
}

int store_clock(struct store *s, time_t *ret) {
        if (!s->b->ops->clock)
                return -EOPNOTSUPP;
        return s->b->ops->clock(s->b, ret);
}

static int64_t mono_seconds(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec + 1; /* never 0 */
}

int store_skew(struct store *s, long *ret) {
        int64_t now = mono_seconds();
        time_t t, local;
        int r;

        pthread_mutex_lock(&s->clock_lock);
        if (s->skew_at && now - s->skew_at < STORE_SKEW_AGE) {
                *ret = s->skew;
                pthread_mutex_unlock(&s->clock_lock);
                return 0;
        }
        pthread_mutex_unlock(&s->clock_lock);
        /* Measured without the lock (a request); two threads measuring at
         * once both store a fresh answer. */
        r = store_clock(s, &t);
        if (r < 0)
                return r;
        local = time(NULL);
        pthread_mutex_lock(&s->clock_lock);
        s->skew = (long)(local - t);
        s->skew_at = now;
        *ret = s->skew;
        pthread_mutex_unlock(&s->clock_lock);
        return 0;
}

int store_now(struct store *s, time_t *ret) {
        long skew;
        int r = store_skew(s, &skew);
        if (r < 0)
                return r;
        *ret = time(NULL) - skew;
        return 0;
}

int store_delete_object(struct store *s, const char *name) {
        if (!object_name_ok(name))
                return -EINVAL;
        return s->b->ops->del(s->b, name);
}

int store_list(struct store *s, const char *prefix, store_list_cb cb, void *userdata) {
        return s->b->ops->list(s->b, prefix, cb, userdata);
}

/* ---- codec ---- */

int store_codec_new(const struct store *s, struct store_codec **ret) {
        struct store_codec *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->level = s->level;
        c->block_size = s->block_size;
        c->crypt = s->crypt;
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
        free(c->plain);
        free(c);
}

int store_codec_scratch(struct store_codec *c, size_t len) {
        if (c->scratch_cap >= len)
                return 0;
        free(c->scratch);
        c->scratch = malloc(len);
        c->scratch_cap = c->scratch ? len : 0;
        return c->scratch ? 0 : -ENOMEM;
}

size_t store_encode_bound(size_t len) {
        return BLOB_HDR_SIZE + CRYPT_BLOB_OVERHEAD + ZSTD_compressBound(len);
}

long store_encode(struct store_codec *c, enum store_kind kind, const void *src, size_t len, void *out, size_t cap) {
        size_t extra = c->crypt ? CRYPT_BLOB_OVERHEAD : 0, n = 0;
        uint8_t *o = out, *payload = o + BLOB_HDR_SIZE + (c->crypt ? CRYPT_NONCE_SIZE : 0);
        uint8_t codec = BLOB_RAW;

        if (cap < BLOB_HDR_SIZE + extra + len || len > UINT32_MAX)
                return -ENOBUFS;
        if (c->level > 0) {
                n = ZSTD_compressCCtx(c->cctx, payload, cap - BLOB_HDR_SIZE - extra, src, len, c->level);
                if (ZSTD_isError(n))
                        n = 0;
                else if (n < len)
                        codec = BLOB_ZSTD;
        }
        if (codec == BLOB_RAW) {
                memcpy(payload, src, len);
                n = len;
        }
        o[0] = codec;
        o[1] = (uint8_t)kind;
        put_le16(o + 2, 0);
        put_le32(o + 4, (uint32_t)len);
        if (c->crypt) {
                struct hash128 name;
                store_hash(src, len, &name);
                crypt_blob_name(c->crypt, &name, &name);
                return (long)crypt_blob_seal(c->crypt, &name, o, n);
        }
        return (long)(BLOB_HDR_SIZE + n);
}

/* Open a sealed blob enc[0..*len) named after h: *payload and *len become
 * its plain payload (in out when stored as is, else the codec's plain
 * buffer). */
static int decode_open(struct store_codec *c, const struct hash128 *h, const uint8_t *enc, size_t *len,
                       uint32_t ulen, void *out, const uint8_t **payload) {
        struct hash128 name;
        size_t n;
        uint8_t *dst = out;

        if (*len < BLOB_HDR_SIZE + CRYPT_BLOB_OVERHEAD)
                return -EBADMSG;
        n = *len - BLOB_HDR_SIZE - CRYPT_BLOB_OVERHEAD;
        if ((enc[0] & ~BLOB_SEALED) == BLOB_RAW) {
                if (n != ulen)
                        return -EBADMSG;
        } else {
                if (c->plain_cap < n) {
                        free(c->plain);
                        c->plain = malloc(n);
                        c->plain_cap = c->plain ? n : 0;
                        if (!c->plain)
                                return -ENOMEM;
                }
                dst = c->plain;
        }
        crypt_blob_name(c->crypt, h, &name);
        if (crypt_blob_open(c->crypt, &name, enc, *len, dst) < 0)
                return -EBADMSG;
        *payload = dst;
        *len = n;
        return 0;
}

int store_decode(struct store_codec *c, const struct hash128 *h, const uint8_t *enc, size_t len,
                 void *out, size_t cap, size_t *ret_len) {
        const uint8_t *payload = enc + BLOB_HDR_SIZE;
        struct hash128 got;
        uint32_t ulen;
        size_t n;
        int r;

        if (len < BLOB_HDR_SIZE)
                return -EBADMSG;
        ulen = get_le32(enc + 4);
        if (ulen > cap)
                return -ENOBUFS;
        /* A sealed blob in a plain vault, or a plain one in an encrypted
         * vault, is damage. */
        if (!!(enc[0] & BLOB_SEALED) != !!c->crypt)
                return -EBADMSG;
        len -= BLOB_HDR_SIZE;
        if (c->crypt) {
                len += BLOB_HDR_SIZE;
                r = decode_open(c, h, enc, &len, ulen, out, &payload);
                if (r < 0)
                        return r;
        }
        switch (enc[0] & ~BLOB_SEALED) {
        case BLOB_RAW:
                if (len != ulen)
                        return -EBADMSG;
                if (payload != out)
                        memcpy(out, payload, ulen);
                break;
        case BLOB_ZSTD:
                n = ZSTD_decompressDCtx(c->dctx, out, ulen, payload, len);
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

/* Whether an index entry's length can be a blob of its decoded length,
 * which is a block or a manifest chunk: at most STORE_MAX_BLOCK_SIZE (a
 * damaged entry must not make a reader allocate gigabytes). */
bool store_blob_loc_sane(const struct blob_loc *l) {
        return l->ulen <= STORE_MAX_BLOCK_SIZE && l->len >= BLOB_HDR_SIZE &&
               l->len <= store_encode_bound(l->ulen);
}

static int read_blob_once(struct store *s, struct store_codec *c, const struct hash128 *h,
                          void *buf, size_t cap, size_t *ret_len) {
        struct hash128 stored;
        struct blob_loc loc;
        char name[64];
        int r;

        store_blob_name(s, h, &stored);
        r = store_lookup(s, &stored, &loc);
        if (r < 0)
                return r;
        if (!store_blob_loc_sane(&loc))
                return -EBADMSG;
        r = store_codec_scratch(c, loc.len);
        if (r < 0)
                return r;
        pack_name(loc.pack_id, name, sizeof name);
        r = s->b->ops->get_range(s->b, name, loc.offset, c->scratch, loc.len);
        if (r < 0)
                return r;
        store_count_read(s, loc.len);
        return store_decode(c, h, c->scratch, loc.len, buf, cap, ret_len);
}

/* A blob that is not where the index said (its pack or segment removed
 * by a garbage collection) is looked for again after one reload of the
 * index: readers that opened the vault before a GC read on. */
int store_read_blob(struct store *s, struct store_codec *c, const struct hash128 *h,
                    void *buf, size_t cap, size_t *ret_len) {
        uint64_t gen = atomic_load(&s->reload_gen);
        int r = read_blob_once(s, c, h, buf, cap, ret_len);

        if (r == -ENOENT && !hash_is_zero(h) && store_reload_index(s, gen) == 0)
                r = read_blob_once(s, c, h, buf, cap, ret_len);
        return r;
}
