/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A pack's table read back (docs/FORMAT.md, "Packs"): the table and footer
 * make a pack self-describing, so what the writer sealed can be checked,
 * or the index rebuilt, from the pack alone. The writer encodes with the
 * helpers of format_i.h; this is their one decoder.
 */
#include <string.h>

#include "common.h"
#include "format_i.h"

/* Whether entry e names a blob among the blobs of pack p. */
static bool entry_ok(const uint8_t *p, const uint8_t *e, uint64_t table_off) {
        uint64_t off = get_le64(e + 16);
        uint32_t len = get_le32(e + 24), ulen = get_le32(e + 28);

        if (off < PACK_HDR_SIZE || off > table_off || len < BLOB_HDR_SIZE || len > table_off - off)
                return false;
        return get_le32(p + off + 4) == ulen;
}

int store_pack_table(const uint8_t *p, size_t len, struct pack_table *ret) {
        const uint8_t *f;
        uint64_t table_off, tlen;
        uint32_t count;

        if (len < PACK_HDR_SIZE + PACK_FOOTER_SIZE)
                return -EBADMSG;
        f = p + len - PACK_FOOTER_SIZE;
        if (memcmp(p, PACK_MAGIC, 8) != 0 || get_le32(p + 8) != PACK_VERSION ||
            memcmp(f + 24, PACK_END_MAGIC, 8) != 0)
                return -EBADMSG;
        table_off = get_le64(f);
        count = get_le32(f + 8);
        tlen = (uint64_t)count * PACK_ENTRY_SIZE;
        /* the table ends where the footer starts */
        if (table_off < PACK_HDR_SIZE || table_off > len - PACK_FOOTER_SIZE ||
            tlen != len - PACK_FOOTER_SIZE - table_off)
                return -EBADMSG;
        if (store_hash64(p + table_off, (size_t)tlen) != get_le64(f + 16))
                return -EBADMSG;
        for (uint32_t i = 0; i < count; i++)
                if (!entry_ok(p, p + table_off + (size_t)i * PACK_ENTRY_SIZE, table_off))
                        return -EBADMSG;
        *ret = (struct pack_table){ .entries = p + table_off, .count = count, .table_off = table_off };
        return 0;
}

void store_pack_entry(const struct pack_table *t, uint32_t i, struct hash128 *ret_h, struct blob_loc *ret_loc) {
        const uint8_t *e = t->entries + (size_t)i * PACK_ENTRY_SIZE;

        memcpy(ret_h->b, e, STORE_HASH_SIZE);
        *ret_loc = (struct blob_loc){ .offset = get_le64(e + 16), .len = get_le32(e + 24), .ulen = get_le32(e + 28) };
}
