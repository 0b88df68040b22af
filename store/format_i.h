/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * On-disk structures of packs and index segments (docs/FORMAT.md).
 * Everything is little endian and encoded field by field.
 */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "store.h"

/* Blob header, in front of every blob inside a pack. */
#define BLOB_HDR_SIZE 8
enum { BLOB_RAW = 0, BLOB_ZSTD = 1 };
/* [0] codec u8, [1] kind u8, [2..3] reserved u16 = 0, [4..7] ulen u32 */

/* Pack: header, blobs, table, footer. */
#define PACK_MAGIC "RPFSPACK"
#define PACK_END_MAGIC "RPFSPEND"
#define PACK_VERSION 1
#define PACK_HDR_SIZE 16    /* magic[8] version u32 reserved u32 */
#define PACK_ENTRY_SIZE 32  /* hash[16] offset u64 len u32 ulen u32 */
#define PACK_FOOTER_SIZE 32 /* table_off u64 count u32 kind_flags u32 table_xxh64 u64 magic[8] */
#define PACK_TARGET_SIZE (16u << 20)

/* Index segment: header, fanout, sorted entries, footer. */
#define IDX_MAGIC "RPFSIDX1"
#define IDX_END_MAGIC "RPFSIEND"
#define IDX_VERSION 1
#define IDX_HDR_SIZE 32         /* magic[8] version u32 entry_size u32 count u64 reserved u64 */
#define IDX_FANOUT_SIZE (256 * 4)
#define IDX_ENTRY_SIZE 40       /* hash[16] pack_id u64 offset u64 len u32 ulen u32 */
#define IDX_FOOTER_SIZE 16      /* xxh64 of everything before u64, magic[8] */

_Static_assert(IDX_ENTRY_SIZE == STORE_HASH_SIZE + 8 + 8 + 4 + 4, "index entry layout");
_Static_assert(PACK_ENTRY_SIZE == STORE_HASH_SIZE + 8 + 4 + 4, "pack entry layout");


/* A location of a blob, decoded from an index entry. */
struct blob_loc {
        uint64_t pack_id;
        uint64_t offset; /* of the blob header within the pack */
        uint32_t len;    /* header + payload */
        uint32_t ulen;   /* decoded length */
};

static inline void idx_entry_encode(uint8_t *p, const struct hash128 *h, const struct blob_loc *l) {
        memcpy(p, h->b, STORE_HASH_SIZE);
        put_le64(p + 16, l->pack_id);
        put_le64(p + 24, l->offset);
        put_le32(p + 32, l->len);
        put_le32(p + 36, l->ulen);
}

static inline void idx_entry_decode(const uint8_t *p, struct blob_loc *l) {
        l->pack_id = get_le64(p + 16);
        l->offset = get_le64(p + 24);
        l->len = get_le32(p + 32);
        l->ulen = get_le32(p + 36);
}

/* "packs/ab/ab0123456789abcd.pack" */
static inline void pack_name(uint64_t id, char *buf, size_t len) {
        char hex[17];
        for (int i = 0; i < 16; i++)
                hex[i] = "0123456789abcdef"[(id >> (60 - 4 * i)) & 15];
        hex[16] = 0;
        snprintf(buf, len, "packs/%.2s/%s.pack", hex, hex);
}
