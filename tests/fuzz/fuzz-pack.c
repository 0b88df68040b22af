/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A pack read back: its table (store_pack_table) and then every blob the
 * table names, decoded and verified (store_decode). Input byte 0 says
 * whether to make the table checksum right before reading (odd: so that
 * damage inside the table reaches the entry checks); the rest is the
 * pack. Every entry of a table that passes must lie inside the pack. */
#include <string.h>

#include "common.h"
#include "store_i.h"
#include "fuzz.h"

static struct store_codec *codec;

/* A codec needs a vault (for its level): one made in a directory that is
 * removed again at once. */
static struct store_codec *codec_get(void) {
        char dir[] = "/tmp/rpfs-fuzz-pack-XXXXXX", vault[64], cmd[96];
        struct store *s = NULL;

        if (codec)
                return codec;
        log_set_level(LOG_ERR);
        if (!mkdtemp(dir))
                abort();
        snprintf(vault, sizeof vault, "%s/v", dir);
        if (store_init(vault, STORE_DEFAULT_BLOCK_SIZE, 1) < 0 || store_open(vault, &s) < 0 ||
            store_codec_new(s, &codec) < 0)
                abort();
        store_free(s);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
                abort();
        return codec;
}

static void fix_checksum(uint8_t *p, size_t len) {
        uint8_t *f = p + len - PACK_FOOTER_SIZE;
        uint64_t toff, tlen;

        if (len < PACK_FOOTER_SIZE)
                return;
        toff = get_le64(f);
        tlen = (uint64_t)get_le32(f + 8) * PACK_ENTRY_SIZE;
        if (toff <= len - PACK_FOOTER_SIZE && tlen <= len - PACK_FOOTER_SIZE - toff)
                put_le64(f + 16, store_hash64(p + toff, (size_t)tlen));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static uint8_t out[STORE_MAX_BLOCK_SIZE];
        struct store_codec *c = codec_get();
        struct pack_table t;
        uint8_t *p;
        size_t len;

        if (size < 1)
                return 0;
        len = size - 1;
        p = malloc(len + 1);
        if (!p)
                return 0;
        memcpy(p, data + 1, len);
        if (data[0] & 1)
                fix_checksum(p, len);
        if (store_pack_table(p, len, &t) == 0) {
                if (t.table_off + (uint64_t)t.count * PACK_ENTRY_SIZE + PACK_FOOTER_SIZE != len)
                        abort();
                for (uint32_t i = 0; i < t.count; i++) {
                        struct hash128 h;
                        struct blob_loc loc;

                        store_pack_entry(&t, i, &h, &loc);
                        if (loc.offset < PACK_HDR_SIZE || loc.offset + loc.len > t.table_off)
                                abort();
                        (void)store_decode(c, &h, p + loc.offset, loc.len, out, sizeof out, NULL);
                }
        }
        free(p);
        return 0;
}
