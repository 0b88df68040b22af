/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The keys of an unlocked vault and what they do: seal and open blobs and
 * objects, name blobs. Subkeys come from the master key through
 * crypto_kdf (context "rpfsvlt1"): 1 blobs, 2 objects, 3 names, 4 the
 * config's MAC, so no key serves two purposes.
 *
 * A sealed blob keeps its 8-byte header in the clear (codec, kind and the
 * decoded length, which the pack table shows anyway) and authenticates it
 * with the blob's stored name as additional data; a sealed object binds
 * its name. A blob or object moved, swapped, truncated or changed by one
 * bit fails to open: -EBADMSG, never other bytes.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "crypt_i.h"
#include "format_i.h"
#include "store_i.h"

#define KDF_CONTEXT "rpfsvlt1"
enum { K_MASTER, K_BLOB, K_OBJECT, K_NAME, K_MAC, K_COUNT };

_Static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == CRYPT_NONCE_SIZE, "nonce size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == CRYPT_TAG_SIZE, "tag size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == CRYPT_KEY_SIZE, "key size");

static int sodium_ready(void) {
        return sodium_init() < 0 ? -EIO : 0;
}

void *secret_alloc(size_t n) {
        if (sodium_ready() < 0)
                return NULL;
        return sodium_malloc(n);
}

void secret_free(void *p) {
        if (p)
                sodium_free(p);
}

void crypt_random_key(uint8_t *master) {
        randombytes_buf(master, CRYPT_KEY_SIZE);
}

static const uint8_t *key(const struct store_crypt *k, int which) {
        return k->keys + which * CRYPT_KEY_SIZE;
}

int crypt_new(const uint8_t master[CRYPT_KEY_SIZE], const char *vault_id, struct store_crypt **ret) {
        struct store_crypt *k;

        if (sodium_ready() < 0)
                return -EIO;
        k = calloc(1, sizeof *k);
        if (!k)
                return -ENOMEM;
        k->keys = sodium_malloc(K_COUNT * CRYPT_KEY_SIZE);
        if (!k->keys) {
                free(k);
                return -ENOMEM;
        }
        memcpy(k->keys, master, CRYPT_KEY_SIZE);
        for (int i = K_BLOB; i < K_COUNT; i++)
                crypto_kdf_derive_from_key(k->keys + i * CRYPT_KEY_SIZE, CRYPT_KEY_SIZE, (uint64_t)i, KDF_CONTEXT,
                                           master);
        snprintf(k->vault_id, sizeof k->vault_id, "%s", vault_id);
        sodium_mprotect_readonly(k->keys);
        *ret = k;
        return 0;
}

void crypt_free(struct store_crypt *k) {
        if (!k)
                return;
        sodium_free(k->keys);
        free(k);
}

const uint8_t *crypt_master(const struct store_crypt *k) {
        return key(k, K_MASTER);
}

void crypt_blob_name(const struct store_crypt *k, const struct hash128 *plain, struct hash128 *ret) {
        struct hash128 in = *plain; /* ret may be plain */
        crypto_generichash(ret->b, STORE_HASH_SIZE, in.b, STORE_HASH_SIZE, key(k, K_NAME), CRYPT_KEY_SIZE);
}

/* Additional data of a blob: its name, then its header. */
static void blob_ad(const struct hash128 *name, const uint8_t *hdr, uint8_t ad[STORE_HASH_SIZE + BLOB_HDR_SIZE]) {
        memcpy(ad, name->b, STORE_HASH_SIZE);
        memcpy(ad + STORE_HASH_SIZE, hdr, BLOB_HDR_SIZE);
}

size_t crypt_blob_seal(const struct store_crypt *k, const struct hash128 *name, uint8_t *blob, size_t n) {
        uint8_t ad[STORE_HASH_SIZE + BLOB_HDR_SIZE];
        uint8_t *nonce = blob + BLOB_HDR_SIZE, *m = nonce + CRYPT_NONCE_SIZE;

        blob[0] |= BLOB_SEALED;
        blob_ad(name, blob, ad);
        randombytes_buf(nonce, CRYPT_NONCE_SIZE);
        crypto_aead_xchacha20poly1305_ietf_encrypt_detached(m, m + n, NULL, m, n, ad, sizeof ad, NULL, nonce,
                                                            key(k, K_BLOB));
        return BLOB_HDR_SIZE + CRYPT_BLOB_OVERHEAD + n;
}

int crypt_blob_open(const struct store_crypt *k, const struct hash128 *name, const uint8_t *blob, size_t len,
                    uint8_t *out) {
        uint8_t ad[STORE_HASH_SIZE + BLOB_HDR_SIZE];
        const uint8_t *nonce = blob + BLOB_HDR_SIZE, *c = nonce + CRYPT_NONCE_SIZE;
        size_t n;

        if (len < BLOB_HDR_SIZE + CRYPT_BLOB_OVERHEAD || !(blob[0] & BLOB_SEALED))
                return -EBADMSG;
        n = len - BLOB_HDR_SIZE - CRYPT_BLOB_OVERHEAD;
        blob_ad(name, blob, ad);
        if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(out, NULL, c, n, c + n, ad, sizeof ad, nonce,
                                                                key(k, K_BLOB)) != 0)
                return -EBADMSG;
        return 0;
}

/* Additional data of an object: a label, the vault's ID and the name. */
static int object_ad(const struct store_crypt *k, const char *name, char *buf, size_t cap) {
        int n = snprintf(buf, cap, "rpfs-object\n%s\n%s", k->vault_id, name);
        return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : n;
}

int crypt_object_seal(const struct store_crypt *k, const char *name, const void *data, size_t len, uint8_t **ret,
                      size_t *ret_len) {
        char ad[1100];
        int adlen = object_ad(k, name, ad, sizeof ad);
        uint8_t *o;

        if (adlen < 0)
                return adlen;
        o = malloc(len + CRYPT_OBJ_OVERHEAD);
        if (!o)
                return -ENOMEM;
        memcpy(o, CRYPT_OBJ_MAGIC, 8);
        randombytes_buf(o + 8, CRYPT_NONCE_SIZE);
        crypto_aead_xchacha20poly1305_ietf_encrypt(o + 8 + CRYPT_NONCE_SIZE, NULL, data, len, (uint8_t *)ad,
                                                   (size_t)adlen, NULL, o + 8, key(k, K_OBJECT));
        *ret = o;
        *ret_len = len + CRYPT_OBJ_OVERHEAD;
        return 0;
}

int crypt_object_open(const struct store_crypt *k, const char *name, char *data, size_t len, size_t *ret_len) {
        char ad[1100];
        int adlen = object_ad(k, name, ad, sizeof ad);
        uint8_t nonce[CRYPT_NONCE_SIZE];
        uint8_t *c = (uint8_t *)data + 8 + CRYPT_NONCE_SIZE;
        size_t n;

        if (adlen < 0)
                return adlen;
        if (len < CRYPT_OBJ_OVERHEAD || memcmp(data, CRYPT_OBJ_MAGIC, 8) != 0)
                return -EBADMSG;
        n = len - CRYPT_OBJ_OVERHEAD;
        memcpy(nonce, data + 8, sizeof nonce);
        /* Decrypt where the ciphertext is, then move it to the front. */
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(c, NULL, NULL, c, n + CRYPT_TAG_SIZE, (uint8_t *)ad,
                                                       (size_t)adlen, nonce, key(k, K_OBJECT)) != 0)
                return -EBADMSG;
        memmove(data, c, n);
        data[n] = 0;
        *ret_len = n;
        return 0;
}

void crypt_config_mac(const struct store_crypt *k, const char *id, uint32_t block_size, int level, char out[65]) {
        char msg[128];
        uint8_t mac[32];
        int n = snprintf(msg, sizeof msg, "rpfs-config\n%s\n%u\n%d\n", id, block_size, level);

        crypto_generichash(mac, sizeof mac, (uint8_t *)msg, (size_t)n, key(k, K_MAC), CRYPT_KEY_SIZE);
        hex_encode(mac, sizeof mac, out);
}

/* ---- the vault's encryption: config and unlocking ---- */

#define CIPHER_NAME "xchacha20poly1305-ietf"
#define NAMES_NAME "blake2b-128-keyed"

static _Thread_local int hint_code;
static _Thread_local char hint_text[256];

static void hint_set(int r, const char *text) {
        hint_code = r;
        snprintf(hint_text, sizeof hint_text, "%s", text);
}

const char *crypt_hint(int r) {
        return hint_code && r == hint_code ? hint_text : NULL;
}

void crypt_hint_clear(void) {
        hint_code = 0;
}

int store_crypt_init(struct backend *b, const char *key_file, const char *id, uint32_t block_size, int level,
                     json_t *cfg) {
        char mac[65], slot[CRYPT_SLOT_ID_LEN + 1];
        struct store_crypt *k = NULL;
        uint8_t *master = secret_alloc(CRYPT_KEY_SIZE);
        int r;

        if (!master)
                return -ENOMEM;
        crypt_random_key(master);
        r = crypt_new(master, id, &k);
        if (r < 0)
                goto out;
        r = keyslot_add(b, id, master, key_file, KEYSRC_INIT, slot);
        if (r == -ENOKEY)
                hint_set(r, "no key given for the encrypted vault: --key-file FILE, RPFS_KEY_FILE, "
                            "RPFS_PASSPHRASE, or a terminal to ask on");
        else if (r == -EINVAL)
                hint_set(r, "unusable key: empty, a key file under 16 bytes, or the two passphrases differ");
        if (r < 0)
                goto out;
        crypt_config_mac(k, id, block_size, level, mac);
        if (json_object_set_new(cfg, "features", json_pack("[s]", "encryption")) < 0 ||
            json_object_set_new(cfg, "encryption",
                                json_pack("{s:s, s:s, s:s, s:s}", "cipher", CIPHER_NAME, "names", NAMES_NAME,
                                          "slots", CRYPT_SLOT_PREFIX, "mac", mac)) < 0)
                r = -ENOMEM;
out:
        crypt_free(k);
        secret_free(master);
        return r;
}

/* Whether cfg's "features" are all known; *ret_enc: "encryption" is one. */
static int features_check(json_t *cfg, bool *ret_enc) {
        json_t *f = json_object_get(cfg, "features"), *v;
        char text[200];
        size_t i;

        *ret_enc = false;
        if (!f)
                return 0;
        if (!json_is_array(f))
                return -EMEDIUMTYPE;
        json_array_foreach(f, i, v) {
                if (json_is_string(v) && strcmp(json_string_value(v), "encryption") == 0)
                        *ret_enc = true;
                else {
                        snprintf(text, sizeof text,
                                 "the vault uses the feature '%.64s', which this rpfs does not support; upgrade rpfs",
                                 json_is_string(v) ? json_string_value(v) : "?");
                        hint_set(-EOPNOTSUPP, text);
                        return -EOPNOTSUPP;
                }
        }
        return 0;
}

static int unlock(struct store *s, const char *key_file, const char *mac) {
        char want[65], slot[CRYPT_SLOT_ID_LEN + 1];
        uint8_t *master = secret_alloc(CRYPT_KEY_SIZE);
        int r;

        if (!master)
                return -ENOMEM;
        r = keyslot_unlock(s->b, s->id, key_file, master, slot);
        if (r == -ENOKEY)
                hint_set(r, "the vault is encrypted and no key was given: set RPFS_KEY_FILE to a key file or "
                            "RPFS_PASSPHRASE to its passphrase, or run on a terminal to be asked");
        else if (r == -EKEYREJECTED)
                hint_set(r, "wrong passphrase or key file: no key slot of this vault opens with it");
        else if (r == -EBADMSG)
                hint_set(r, "the vault is encrypted but none of its key slots (keys/) is readable");
        if (r >= 0)
                r = crypt_new(master, s->id, &s->crypt);
        secret_free(master);
        if (r < 0)
                return r;
        snprintf(s->crypt->slot_id, sizeof s->crypt->slot_id, "%s", slot);
        crypt_config_mac(s->crypt, s->id, s->block_size, s->level, want);
        if (sodium_memcmp(want, mac, 64) != 0) {
                hint_set(-EBADMSG, "config.json does not match its MAC: its settings were changed");
                return -EBADMSG;
        }
        return 0;
}

int store_crypt_open(struct store *s, json_t *cfg, const char *key_file) {
        const char *cipher, *names, *mac;
        bool enc;
        int r;

        r = features_check(cfg, &enc);
        if (r < 0 || !enc)
                return r < 0 ? r : json_object_get(cfg, "encryption") ? -EMEDIUMTYPE : 0;
        if (json_unpack(json_object_get(cfg, "encryption"), "{s:s, s:s, s:s}", "cipher", &cipher, "names", &names,
                        "mac", &mac) < 0 ||
            strlen(mac) != 64)
                return -EMEDIUMTYPE;
        if (strcmp(cipher, CIPHER_NAME) != 0 || strcmp(names, NAMES_NAME) != 0) {
                hint_set(-EOPNOTSUPP, "the vault's cipher or name scheme is not one this rpfs supports; upgrade rpfs");
                return -EOPNOTSUPP;
        }
        return unlock(s, key_file, mac);
}

/* ---- public ---- */

bool store_encrypted(const struct store *s) {
        return s->crypt != NULL;
}

void store_blob_name(const struct store *s, const struct hash128 *plain, struct hash128 *name) {
        if (s->crypt)
                crypt_blob_name(s->crypt, plain, name);
        else if (name != plain)
                *name = *plain;
}
