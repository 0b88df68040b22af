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

/* The pack header (PACK_HDR_SIZE bytes). */
static inline void pack_header_encode(uint8_t *p) {
        memcpy(p, PACK_MAGIC, 8);
        put_le32(p + 8, PACK_VERSION);
        put_le32(p + 12, 0);
}

/* One pack table entry: where a blob of the pack starts (its header) and
 * its lengths. */
static inline void pack_entry_encode(uint8_t *p, const struct hash128 *h, uint64_t offset, uint32_t len,
                                     uint32_t ulen) {
        memcpy(p, h->b, STORE_HASH_SIZE);
        put_le64(p + 16, offset);
        put_le32(p + 24, len);
        put_le32(p + 28, ulen);
}

/* The pack footer, after the table of count entries at table_off. */
static inline void pack_footer_encode(uint8_t *p, uint64_t table_off, uint32_t count, uint64_t table_xxh64) {
        put_le64(p, table_off);
        put_le32(p + 8, count);
        put_le32(p + 12, 0);
        put_le64(p + 16, table_xxh64);
        memcpy(p + 24, PACK_END_MAGIC, 8);
}

/* A pack's table, checked by store_pack_table() (pack.c). */
struct pack_table {
        const uint8_t *entries; /* count x PACK_ENTRY_SIZE, inside the pack */
        uint32_t count;
        uint64_t table_off;     /* where the blobs end */
};

/* Read the table of a whole pack p[0..len): the header, the footer, the
 * table's checksum, and for every entry that its blob lies between the
 * header and the table and has the decoded length the entry says. *ret
 * points into p. 0, or -EBADMSG for anything else (not a pack, another
 * version, damage). */
int store_pack_table(const uint8_t *p, size_t len, struct pack_table *ret);
/* The same checks without the blobs, for a pack of len bytes read in two
 * pieces: hdr (its first PACK_HDR_SIZE bytes) and tail (its last tail_len
 * bytes). With a tail of just the footer, only the footer is checked and
 * *ret has no entries (NULL): read table_off.. len and call again. With
 * the whole table in tail: its checksum and every entry's bounds. 0 or
 * -EBADMSG. */
int store_pack_tail(const uint8_t *hdr, const uint8_t *tail, size_t tail_len, uint64_t len, struct pack_table *ret);
/* Entry i (< t->count) of a checked table; ret_loc's pack_id is 0. */
void store_pack_entry(const struct pack_table *t, uint32_t i, struct hash128 *ret_h, struct blob_loc *ret_loc);

/* "packs/ab/ab0123456789abcd.pack" */
static inline void pack_name(uint64_t id, char *buf, size_t len) {
        char hex[17];
        for (int i = 0; i < 16; i++)
                hex[i] = "0123456789abcdef"[(id >> (60 - 4 * i)) & 15];
        hex[16] = 0;
        snprintf(buf, len, "packs/%.2s/%s.pack", hex, hex);
}
