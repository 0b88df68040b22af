/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Key slots: keys/<16 hex>.json objects (kept in the clear), each the
 * vault's master key wrapped (XChaCha20-Poly1305) by a key made from a
 * passphrase (Argon2id, its parameters and salt in the slot) or a key
 * file (BLAKE2b of the file, then keyed BLAKE2b with the slot's salt).
 * Adding or removing a slot touches nothing else.
 *
 * Where a key comes from, in order: a key file given by the caller, the
 * file RPFS_KEY_FILE names, the passphrase in RPFS_PASSPHRASE, then a
 * prompt on the controlling terminal (echo off). Secrets are read into
 * sodium_malloc'd memory and wiped after use.
 */
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "backend_i.h"
#include "common.h"
#include "crypt_i.h"
#include "store_i.h"

#define SECRET_MAX 1024
#define SALT_SIZE 16
#define KDF_ARGON2 "argon2id13"
#define KDF_KEYFILE "blake2b-keyfile"
/* Bounds a slot's Argon2id parameters must keep (a damaged or hostile
 * slot must not make an open allocate without limit). */
#define MEMLIMIT_MAX (4ull << 30)
#define OPSLIMIT_MAX 64

/* A key as given: passphrase bytes, or the 32-byte BLAKE2b of a key file. */
struct secret {
        uint8_t *p; /* secret_alloc'd, SECRET_MAX bytes */
        size_t len;
        bool file;
};

static void secret_done(struct secret *k) {
        secret_free(k->p);
        k->p = NULL;
}

static int secret_from_file(const char *path, struct secret *k) {
        crypto_generichash_state st;
        uint8_t *buf = k->p + 64; /* read buffer inside the secret memory */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        size_t total = 0;
        ssize_t n;

        if (fd < 0)
                return -errno;
        crypto_generichash_init(&st, NULL, 0, 32);
        while ((n = read(fd, buf, SECRET_MAX - 64)) != 0) {
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        sodium_memzero(&st, sizeof st);
                        return -errno;
                }
                crypto_generichash_update(&st, buf, (size_t)n);
                total += (size_t)n;
        }
        crypto_generichash_final(&st, k->p, 32);
        sodium_memzero(buf, SECRET_MAX - 64);
        if (total < 16)
                return -EINVAL; /* too short to be a key */
        k->len = 32;
        k->file = true;
        return 0;
}

/* Read a line from the terminal with echo off into k. -ENOKEY no tty. */
static int secret_prompt(const char *prompt, uint8_t *buf, size_t *ret_len) {
        _cleanup_close_ int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        struct termios old, quiet;
        size_t len = 0;
        int r = 0;

        if (fd < 0 || tcgetattr(fd, &old) < 0)
                return -ENOKEY;
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        /* Echo off (dropping typeahead) before the prompt shows, so that
         * nothing typed after it is lost. */
        tcsetattr(fd, TCSAFLUSH, &quiet);
        (void)!write(fd, prompt, strlen(prompt));
        for (;;) {
                char ch;
                ssize_t n = read(fd, &ch, 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || ch == '\n')
                        break;
                if (len + 1 >= SECRET_MAX) {
                        r = -E2BIG;
                        break;
                }
                buf[len++] = (uint8_t)ch;
        }
        tcsetattr(fd, TCSAFLUSH, &old);
        (void)!write(fd, "\n", 1);
        *ret_len = len;
        return r;
}

static int secret_ask(bool twice, struct secret *k) {
        uint8_t *again = k->p + SECRET_MAX / 2;
        size_t len2 = 0;
        int r;

        r = secret_prompt("Vault passphrase: ", k->p, &k->len);
        if (r < 0 || !twice)
                return r;
        if (k->len >= SECRET_MAX / 2)
                return -E2BIG;
        r = secret_prompt("Repeat the passphrase: ", again, &len2);
        if (r >= 0 && (len2 != k->len || sodium_memcmp(again, k->p, k->len) != 0))
                r = -EINVAL;
        sodium_memzero(again, SECRET_MAX / 2);
        return r;
}

/* The key for use from its sources into *k. -ENOKEY none gave one. */
static int secret_get(enum keysrc_use use, const char *key_file, struct secret *k) {
        const char *env_file = use == KEYSRC_ADD ? NULL : getenv("RPFS_KEY_FILE");
        const char *pass = getenv(use == KEYSRC_ADD ? "RPFS_NEW_PASSPHRASE" : "RPFS_PASSPHRASE");
        int r;

        *k = (struct secret){ .p = secret_alloc(SECRET_MAX) };
        if (!k->p)
                return -ENOMEM;
        if (key_file && *key_file)
                r = secret_from_file(key_file, k);
        else if (env_file && *env_file)
                r = secret_from_file(env_file, k);
        else if (pass && *pass) {
                k->len = strlen(pass);
                r = k->len < SECRET_MAX ? 0 : -E2BIG;
                if (r == 0)
                        memcpy(k->p, pass, k->len);
        } else
                r = secret_ask(use != KEYSRC_OPEN, k);
        if (r == 0 && k->len == 0)
                r = -EINVAL;
        if (r < 0)
                secret_done(k);
        return r;
}

/* The key-encryption key of a slot from k and the slot's KDF settings. */
static int slot_kek(const struct secret *k, const uint8_t *salt, unsigned long long ops, size_t mem,
                    uint8_t kek[CRYPT_KEY_SIZE]) {
        if (k->file) {
                static const char label[] = "rpfs-keyfile-slot";
                uint8_t msg[sizeof label + SALT_SIZE];
                memcpy(msg, label, sizeof label);
                memcpy(msg + sizeof label, salt, SALT_SIZE);
                return crypto_generichash(kek, CRYPT_KEY_SIZE, msg, sizeof msg, k->p, k->len) < 0 ? -EIO : 0;
        }
        if (crypto_pwhash(kek, CRYPT_KEY_SIZE, (const char *)k->p, k->len, salt, ops, mem,
                          crypto_pwhash_ALG_ARGON2ID13) != 0)
                return -ENOMEM;
        return 0;
}

static void slot_ad(const char *vault_id, const char *id, const char *type, char *buf, size_t cap) {
        snprintf(buf, cap, "rpfs-slot\n%s\n%s\n%s", vault_id, id, type);
}

static unsigned long long env_ull(const char *name, unsigned long long def) {
        const char *v = getenv(name);
        char *end;
        unsigned long long n;

        if (!v || !*v)
                return def;
        n = strtoull(v, &end, 10);
        return *end ? def : n;
}

/* A slot's JSON for master wrapped with kek (made from k). */
static json_t *slot_json(const char *vault_id, const char *id, const struct secret *k, const uint8_t *salt,
                         unsigned long long ops, size_t mem, const uint8_t *master, const uint8_t *kek) {
        const char *type = k->file ? "key-file" : "passphrase";
        uint8_t nonce[CRYPT_NONCE_SIZE], wrapped[CRYPT_KEY_SIZE + CRYPT_TAG_SIZE];
        char ad[128], created[21], salt_hex[2 * SALT_SIZE + 1], nonce_hex[2 * sizeof nonce + 1],
                wrapped_hex[2 * sizeof wrapped + 1];
        json_t *kdf;

        slot_ad(vault_id, id, type, ad, sizeof ad);
        randombytes_buf(nonce, sizeof nonce);
        crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped, NULL, master, CRYPT_KEY_SIZE, (uint8_t *)ad,
                                                   strlen(ad), NULL, nonce, kek);
        hex_encode(salt, SALT_SIZE, salt_hex);
        hex_encode(nonce, sizeof nonce, nonce_hex);
        hex_encode(wrapped, sizeof wrapped, wrapped_hex);
        time_format_iso(time(NULL), created);
        if (k->file)
                kdf = json_pack("{s:s, s:s}", "algorithm", KDF_KEYFILE, "salt", salt_hex);
        else
                kdf = json_pack("{s:s, s:I, s:I, s:s}", "algorithm", KDF_ARGON2, "opslimit", (json_int_t)ops,
                                "memlimit", (json_int_t)mem, "salt", salt_hex);
        return json_pack("{s:i, s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "format", 1, "id", id, "type", type,
                         "created", created, "kdf", kdf, "cipher", "xchacha20poly1305-ietf", "nonce", nonce_hex,
                         "wrapped", wrapped_hex);
}

int keyslot_add(struct backend *b, const char *vault_id, const uint8_t *master, const char *key_file,
                enum keysrc_use use, char ret_id[CRYPT_SLOT_ID_LEN + 1]) {
        unsigned long long ops = env_ull("RPFS_ARGON2_OPSLIMIT", crypto_pwhash_OPSLIMIT_INTERACTIVE);
        size_t mem = (size_t)env_ull("RPFS_ARGON2_MEMLIMIT", crypto_pwhash_MEMLIMIT_INTERACTIVE);
        uint8_t salt[SALT_SIZE], idb[CRYPT_SLOT_ID_LEN / 2], *kek = NULL;
        struct secret k;
        char name[64];
        char *text = NULL;
        json_t *j = NULL;
        int r;

        if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > OPSLIMIT_MAX || mem < crypto_pwhash_MEMLIMIT_MIN ||
            mem > MEMLIMIT_MAX)
                return -EINVAL;
        r = secret_get(use, key_file, &k);
        if (r < 0)
                return r;
        kek = secret_alloc(CRYPT_KEY_SIZE);
        if (!kek) {
                r = -ENOMEM;
                goto out;
        }
        randombytes_buf(salt, sizeof salt);
        randombytes_buf(idb, sizeof idb);
        hex_encode(idb, sizeof idb, ret_id);
        r = slot_kek(&k, salt, ops, mem, kek);
        if (r < 0)
                goto out;
        j = slot_json(vault_id, ret_id, &k, salt, ops, mem, master, kek);
        text = j ? json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
        if (!text) {
                r = -ENOMEM;
                goto out;
        }
        snprintf(name, sizeof name, CRYPT_SLOT_PREFIX "%s.json", ret_id);
        r = b->ops->put(b, name, text, strlen(text), BACKEND_PUT_EXCLUSIVE);
out:
        json_decref(j);
        free(text);
        secret_free(kek);
        secret_done(&k);
        return r;
}

struct slot_names {
        char **v;
        size_t n;
};

static int collect_cb(void *userdata, const char *name, uint64_t size) {
        struct slot_names *l = userdata;
        size_t n = strlen(name);
        char **nv;

        (void)size;
        if (n < 5 || strcmp(name + n - 5, ".json") != 0)
                return 0;
        nv = realloc(l->v, (l->n + 1) * sizeof *nv);
        if (!nv)
                return -ENOMEM;
        l->v = nv;
        if (!(l->v[l->n] = strdup(name)))
                return -ENOMEM;
        l->n++;
        return 0;
}

static void names_free(struct slot_names *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
}

static int names_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int slot_names(struct backend *b, struct slot_names *l) {
        int r = b->ops->list(b, CRYPT_SLOT_PREFIX, collect_cb, l);
        if (r >= 0)
                qsort(l->v, l->n, sizeof *l->v, names_cmp);
        return r;
}

/* A parsed slot object. */
struct slot {
        const char *id, *type, *algo;
        json_int_t ops, mem;
        uint8_t salt[SALT_SIZE], nonce[CRYPT_NONCE_SIZE], wrapped[CRYPT_KEY_SIZE + CRYPT_TAG_SIZE];
        const char *created;
};

static int slot_parse(json_t *j, struct slot *s) {
        const char *salt, *nonce, *wrapped;
        json_int_t fmt;

        *s = (struct slot){ 0 };
        if (json_unpack(j, "{s:I, s:s, s:s, s:s, s:{s:s, s:s, s?I, s?I}, s:s, s:s}", "format", &fmt, "id", &s->id,
                        "type", &s->type, "created", &s->created, "kdf", "algorithm", &s->algo, "salt", &salt,
                        "opslimit", &s->ops, "memlimit", &s->mem, "nonce", &nonce, "wrapped", &wrapped) < 0 ||
            fmt != 1 || strlen(s->id) != CRYPT_SLOT_ID_LEN)
                return -EBADMSG;
        if (hex_decode(salt, s->salt, sizeof s->salt) < 0 || hex_decode(nonce, s->nonce, sizeof s->nonce) < 0 ||
            hex_decode(wrapped, s->wrapped, sizeof s->wrapped) < 0)
                return -EBADMSG;
        if (strcmp(s->type, "key-file") == 0 && strcmp(s->algo, KDF_KEYFILE) == 0)
                return 0;
        if (strcmp(s->type, "passphrase") == 0 && strcmp(s->algo, KDF_ARGON2) == 0 &&
            s->ops >= (json_int_t)crypto_pwhash_OPSLIMIT_MIN && s->ops <= OPSLIMIT_MAX &&
            s->mem >= (json_int_t)crypto_pwhash_MEMLIMIT_MIN && (unsigned long long)s->mem <= MEMLIMIT_MAX)
                return 0;
        return -EBADMSG;
}

/* Try slot object name with key k. 0 (master filled), -EKEYREJECTED, or
 * -EBADMSG for a damaged slot. */
/* Read and parse slot object name into *s (whose strings live in *ret_j:
 * json_decref it, also on failure). */
static int slot_load(struct backend *b, const char *name, json_t **ret_j, struct slot *s) {
        _cleanup_free_ char *text = NULL;
        int r;

        *ret_j = NULL;
        r = b->ops->get(b, name, &text, NULL);
        if (r < 0)
                return r;
        *ret_j = json_loads(text, 0, NULL);
        return *ret_j ? slot_parse(*ret_j, s) : -EBADMSG;
}

static int slot_try(struct backend *b, const char *vault_id, const char *name, const struct secret *k,
                    uint8_t *master, char ret_id[CRYPT_SLOT_ID_LEN + 1]) {
        uint8_t *kek = NULL;
        struct slot s;
        char ad[128];
        json_t *j;
        int r;

        r = slot_load(b, name, &j, &s);
        if (r < 0)
                goto out;
        if (k->file != (strcmp(s.type, "key-file") == 0)) {
                r = -EKEYREJECTED;
                goto out;
        }
        kek = secret_alloc(CRYPT_KEY_SIZE);
        r = kek ? slot_kek(k, s.salt, (unsigned long long)s.ops, (size_t)s.mem, kek) : -ENOMEM;
        if (r < 0)
                goto out;
        slot_ad(vault_id, s.id, s.type, ad, sizeof ad);
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(master, NULL, NULL, s.wrapped, sizeof s.wrapped,
                                                       (uint8_t *)ad, strlen(ad), s.nonce, kek) != 0) {
                r = -EKEYREJECTED;
                goto out;
        }
        snprintf(ret_id, CRYPT_SLOT_ID_LEN + 1, "%s", s.id);
out:
        secret_free(kek);
        json_decref(j);
        return r;
}

int keyslot_unlock(struct backend *b, const char *vault_id, const char *key_file, uint8_t *master,
                   char ret_id[CRYPT_SLOT_ID_LEN + 1]) {
        struct slot_names l = { 0 };
        struct secret k;
        int r, res = -EBADMSG;

        r = slot_names(b, &l);
        if (r < 0)
                goto out;
        if (l.n == 0) {
                r = -EBADMSG; /* an encrypted vault without slots */
                goto out;
        }
        r = secret_get(KEYSRC_OPEN, key_file, &k);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < l.n; i++) {
                r = slot_try(b, vault_id, l.v[i], &k, master, ret_id);
                if (r == 0 || (r != -EKEYREJECTED && r != -EBADMSG && r != -ENOENT))
                        break;
                if (r == -EKEYREJECTED)
                        res = r;
        }
        if (r < 0 && (r == -EKEYREJECTED || r == -EBADMSG || r == -ENOENT))
                r = res;
        secret_done(&k);
out:
        names_free(&l);
        return r;
}

static int slot_describe(struct backend *b, const char *name, struct store_key_slot *ret) {
        struct slot s;
        json_t *j;
        int r;

        r = slot_load(b, name, &j, &s);
        if (r == 0) {
                *ret = (struct store_key_slot){ .opslimit = (uint64_t)s.ops, .memlimit = (uint64_t)s.mem };
                snprintf(ret->id, sizeof ret->id, "%s", s.id);
                snprintf(ret->type, sizeof ret->type, "%s", s.type);
                snprintf(ret->created, sizeof ret->created, "%s", s.created);
        }
        json_decref(j);
        return r;
}

int keyslot_list(struct backend *b, struct store_key_slot **ret, size_t *ret_n) {
        struct slot_names l = { 0 };
        struct store_key_slot *v = NULL;
        size_t n = 0;
        int r;

        r = slot_names(b, &l);
        if (r >= 0 && l.n && !(v = calloc(l.n, sizeof *v)))
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < l.n; i++) {
                int q = slot_describe(b, l.v[i], &v[n]);
                if (q == 0)
                        n++;
                else if (q != -EBADMSG && q != -ENOENT)
                        r = q;
        }
        names_free(&l);
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

/* ---- public: rpfs key ---- */

int store_key_list(struct store *s, struct store_key_slot **ret, size_t *ret_n) {
        int r;

        if (!s->crypt)
                return -EOPNOTSUPP;
        r = keyslot_list(s->b, ret, ret_n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < *ret_n; i++)
                (*ret)[i].unlocked = strcmp((*ret)[i].id, s->crypt->slot_id) == 0;
        return 0;
}

int store_key_add(struct store *s, const char *key_file, char ret_id[17]) {
        if (!s->crypt)
                return -EOPNOTSUPP;
        return keyslot_add(s->b, s->id, crypt_master(s->crypt), key_file, KEYSRC_ADD, ret_id);
}

int store_key_remove(struct store *s, const char *id) {
        struct store_key_slot *v = NULL;
        size_t n = 0;
        char name[64];
        bool found = false;
        int r;

        if (!s->crypt)
                return -EOPNOTSUPP;
        if (strlen(id) != CRYPT_SLOT_ID_LEN || strspn(id, "0123456789abcdef") != CRYPT_SLOT_ID_LEN)
                return -ENOENT;
        r = keyslot_list(s->b, &v, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                found |= strcmp(v[i].id, id) == 0;
        free(v);
        if (!found)
                return -ENOENT;
        if (n < 2)
                return -EBUSY;
        snprintf(name, sizeof name, CRYPT_SLOT_PREFIX "%s.json", id);
        return s->b->ops->del(s->b, name);
}
