/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Encrypted vaults (docs/FORMAT.md "Encrypted vaults"): the unlocked keys
 * of a vault (crypt.c) and its key slots (keyslot.c). Every primitive is
 * libsodium's: XChaCha20-Poly1305 (IETF) for blobs, objects and wrapped
 * master keys, BLAKE2b (keyed) for blob names and the config's MAC,
 * crypto_kdf for subkeys, Argon2id (crypto_pwhash) for passphrases.
 * Key material lives in sodium_malloc'd memory (locked where allowed,
 * excluded from core dumps, wiped when freed).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store.h"

struct backend;

#define CRYPT_KEY_SIZE 32
#define CRYPT_NONCE_SIZE 24
#define CRYPT_TAG_SIZE 16
/* What sealing adds to a blob: nonce before its payload, tag after it. */
#define CRYPT_BLOB_OVERHEAD (CRYPT_NONCE_SIZE + CRYPT_TAG_SIZE)
/* Flag in a blob header's codec byte: the payload is sealed. */
#define BLOB_SEALED 0x80
/* A sealed object: magic, nonce, ciphertext, tag. */
#define CRYPT_OBJ_MAGIC "RPFSOBJ1"
#define CRYPT_OBJ_OVERHEAD (8 + CRYPT_NONCE_SIZE + CRYPT_TAG_SIZE)
#define CRYPT_SLOT_PREFIX "keys/"
#define CRYPT_SLOT_ID_LEN 16

/* The keys of an unlocked vault. Immutable once made: any thread. */
struct store_crypt {
        uint8_t *keys; /* sodium_malloc'd: master, blob, object, name, mac */
        char vault_id[33];
        char slot_id[CRYPT_SLOT_ID_LEN + 1]; /* the slot that unlocked it */
};

/* Keys of vault vault_id from its master key. -ENOMEM, -EIO (libsodium). */
int crypt_new(const uint8_t master[CRYPT_KEY_SIZE], const char *vault_id, struct store_crypt **ret);
void crypt_free(struct store_crypt *k);
const uint8_t *crypt_master(const struct store_crypt *k);
/* The stored name of a blob whose plain XXH3-128 is plain. */
void crypt_blob_name(const struct store_crypt *k, const struct hash128 *plain, struct hash128 *ret);
/* Seal in place the blob at blob: header (BLOB_HDR_SIZE, the kind and
 * codec set), CRYPT_NONCE_SIZE bytes left free, n payload bytes, and room
 * for the tag. Sets BLOB_SEALED in the header. Returns the blob's whole
 * length. */
size_t crypt_blob_seal(const struct store_crypt *k, const struct hash128 *name, uint8_t *blob, size_t n);
/* Check and open a sealed blob of len bytes into out (len -
 * BLOB_HDR_SIZE - CRYPT_BLOB_OVERHEAD bytes). 0, or -EBADMSG when it is
 * not sealed, damaged, or not the blob called name. */
int crypt_blob_open(const struct store_crypt *k, const struct hash128 *name, const uint8_t *blob, size_t len,
                    uint8_t *out);
/* Seal object data[0..len) stored under name into a malloc'd *ret. */
int crypt_object_seal(const struct store_crypt *k, const char *name, const void *data, size_t len, uint8_t **ret,
                      size_t *ret_len);
/* Open a sealed object in place: data[0..len) becomes the plain bytes,
 * NUL-terminated; *ret_len their length. -EBADMSG when damaged, swapped
 * or not sealed. */
int crypt_object_open(const struct store_crypt *k, const char *name, char *data, size_t len, size_t *ret_len);
/* The MAC (64 hex + NUL) that ties the config's settings to the key. */
void crypt_config_mac(const struct store_crypt *k, const char *id, uint32_t block_size, int level, char out[65]);

/* ---- key slots (keyslot.c) ---- */
/* Where the key that opens or makes a slot comes from. */
enum keysrc_use {
        KEYSRC_OPEN,  /* key_file, RPFS_KEY_FILE, RPFS_PASSPHRASE, a prompt */
        KEYSRC_INIT,  /* the same, asking twice on a terminal */
        KEYSRC_ADD,   /* key_file, RPFS_NEW_PASSPHRASE, a prompt (twice) */
};
/* A fresh random master key into master (CRYPT_KEY_SIZE). */
void crypt_random_key(uint8_t *master);
/* Write a slot wrapping master for the key from use's sources; *ret_id
 * its ID. -ENOKEY no source, -EINVAL an empty key, or a backend error. */
int keyslot_add(struct backend *b, const char *vault_id, const uint8_t *master, const char *key_file,
                enum keysrc_use use, char ret_id[CRYPT_SLOT_ID_LEN + 1]);
/* Find the slot the key from the open sources unwraps; the master key
 * into master (CRYPT_KEY_SIZE), the slot's ID into ret_id. -ENOKEY no
 * source gave a key, -EKEYREJECTED no slot opens with it, -EBADMSG
 * damaged slots only. */
int keyslot_unlock(struct backend *b, const char *vault_id, const char *key_file, uint8_t *master,
                   char ret_id[CRYPT_SLOT_ID_LEN + 1]);
/* Every slot's description; see store_key_list(). */
int keyslot_list(struct backend *b, struct store_key_slot **ret, size_t *ret_n);
/* Secure memory for secrets (sodium_malloc, wiped by secret_free). */
void *secret_alloc(size_t n);
void secret_free(void *p);

/* ---- the vault's encryption (crypt.c) ---- */
/* init: a master key, its first slot (key_file or the init sources), the
 * config's "features" and "encryption" into cfg. */
int store_crypt_init(struct backend *b, const char *key_file, const char *id, uint32_t block_size, int level,
                     json_t *cfg);
/* open: refuse features this build does not know; for an encrypted vault,
 * unlock it (s->crypt) and check the config's MAC. */
int store_crypt_open(struct store *s, json_t *cfg, const char *key_file);
/* The explanation of error r set by the last failed open on this thread
 * (store_error_hint), or NULL; store_open_with clears it. */
const char *crypt_hint(int r);
void crypt_hint_clear(void);
