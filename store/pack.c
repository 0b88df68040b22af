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

int store_pack_tail(const uint8_t *hdr, const uint8_t *tail, size_t tail_len, uint64_t len, struct pack_table *ret) {
        const uint8_t *f;
        uint64_t table_off, tlen;
        uint32_t count;

        if (len < PACK_HDR_SIZE + PACK_FOOTER_SIZE || tail_len < PACK_FOOTER_SIZE || tail_len > len)
                return -EBADMSG;
        f = tail + tail_len - PACK_FOOTER_SIZE;
        if (memcmp(hdr, PACK_MAGIC, 8) != 0 || get_le32(hdr + 8) != PACK_VERSION ||
            memcmp(f + 24, PACK_END_MAGIC, 8) != 0)
                return -EBADMSG;
        table_off = get_le64(f);
        count = get_le32(f + 8);
        tlen = (uint64_t)count * PACK_ENTRY_SIZE;
        /* the table ends where the footer starts */
        if (table_off < PACK_HDR_SIZE || table_off > len - PACK_FOOTER_SIZE ||
            tlen != len - PACK_FOOTER_SIZE - table_off)
                return -EBADMSG;
        *ret = (struct pack_table){ .count = count, .table_off = table_off };
        if (tail_len < tlen + PACK_FOOTER_SIZE)
                return 0; /* the caller reads the table next */
        ret->entries = tail + tail_len - PACK_FOOTER_SIZE - tlen;
        if (store_hash64(ret->entries, (size_t)tlen) != get_le64(f + 16))
                return -EBADMSG;
        for (uint32_t i = 0; i < count; i++) {
                const uint8_t *e = ret->entries + (size_t)i * PACK_ENTRY_SIZE;
                uint64_t off = get_le64(e + 16);
                uint32_t l = get_le32(e + 24);

                if (off < PACK_HDR_SIZE || off > table_off || l < BLOB_HDR_SIZE || l > table_off - off)
                        return -EBADMSG;
        }
        return 0;
}

int store_pack_table(const uint8_t *p, size_t len, struct pack_table *ret) {
        int r = store_pack_tail(p, p, len, len, ret);

        if (r < 0)
                return r;
        for (uint32_t i = 0; i < ret->count; i++)
                if (!entry_ok(p, ret->entries + (size_t)i * PACK_ENTRY_SIZE, ret->table_off))
                        return -EBADMSG;
        return 0;
}

void store_pack_entry(const struct pack_table *t, uint32_t i, struct hash128 *ret_h, struct blob_loc *ret_loc) {
        const uint8_t *e = t->entries + (size_t)i * PACK_ENTRY_SIZE;

        memcpy(ret_h->b, e, STORE_HASH_SIZE);
        *ret_loc = (struct blob_loc){ .offset = get_le64(e + 16), .len = get_le32(e + 24), .ulen = get_le32(e + 28) };
}
