/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An index segment read from the vault (store_open maps every segment;
 * store_lookup, store_has and store_read_blob use them). The target keeps
 * a small real vault of its own (eight blocks in one pack, written by
 * store_writer) and puts the input in place of its index segment. Input
 * byte 0 odd: the header, count, last fan-out word and end magic are made
 * right and every entry's pack ID is pointed at the real pack, so that
 * damaged offsets and lengths reach the pack reads. Every entry's hash is
 * then looked up and read: a read that succeeds must give bytes whose
 * checksum is that hash (never wrong data). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "format_i.h"
#include "store.h"
#include "fuzz.h"

#define BS 4096

static char dir[64], seg[384];
static uint64_t pack_id;
static struct store_codec *codec;

static void cleanup(void) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (*dir && system(cmd) != 0) {
        }
}

/* The vault: eight blocks, some compressible, some not. */
static void setup(void) {
        static uint8_t blk[BS], enc[2 * BS + 64];
        char path[128];
        struct store *s;
        struct store_writer *w;
        struct dirent *e;
        DIR *d;
        uint64_t x = 1;

        log_set_level(LOG_ERR);
        snprintf(dir, sizeof dir, "/tmp/rpfs-fuzz-index-%d", (int)getpid());
        atexit(cleanup);
        if (store_init(dir, BS, 1) < 0 || store_open(dir, &s) < 0 || store_codec_new(s, &codec) < 0 ||
            store_writer_new(s, &w) < 0)
                abort();
        for (int i = 0; i < 8; i++) {
                struct hash128 h;
                long n;
                for (size_t k = 0; k < BS; k++)
                        blk[k] = i & 1 ? (uint8_t)((x = x * 6364136223846793005ull + 1) >> 56) : (uint8_t)(k / 64 + i);
                store_hash(blk, BS, &h);
                n = store_encode(codec, STORE_KIND_DATA, blk, BS, enc, sizeof enc);
                if (n < 0 || store_writer_add(w, &h, enc, (size_t)n) < 0)
                        abort();
        }
        if (store_writer_flush(w) < 0)
                abort();
        store_writer_free(w);
        store_free(s);
        snprintf(path, sizeof path, "%s/index", dir);
        d = opendir(path);
        while (d && (e = readdir(d)))
                if (strstr(e->d_name, ".idx"))
                        snprintf(seg, sizeof seg, "%s/%s", path, e->d_name);
        if (d)
                closedir(d);
        if (!*seg)
                abort();
        /* The pack ID, from the segment the writer made. */
        {
                size_t len;
                _cleanup_free_ char *t = NULL;
                if (read_file_all(seg, &t, &len) < 0 || len < IDX_HDR_SIZE + IDX_FANOUT_SIZE + IDX_ENTRY_SIZE)
                        abort();
                pack_id = get_le64((uint8_t *)t + IDX_HDR_SIZE + IDX_FANOUT_SIZE + 16);
        }
}

static void fix(uint8_t *p, size_t len) {
        uint64_t count;

        if (len < IDX_HDR_SIZE + IDX_FANOUT_SIZE + IDX_FOOTER_SIZE)
                return;
        count = (len - IDX_HDR_SIZE - IDX_FANOUT_SIZE - IDX_FOOTER_SIZE) / IDX_ENTRY_SIZE;
        memcpy(p, IDX_MAGIC, 8);
        put_le32(p + 8, IDX_VERSION);
        put_le32(p + 12, IDX_ENTRY_SIZE);
        put_le64(p + 16, count);
        put_le32(p + IDX_HDR_SIZE + 255 * 4, (uint32_t)count);
        memcpy(p + IDX_HDR_SIZE + IDX_FANOUT_SIZE + count * IDX_ENTRY_SIZE + 8, IDX_END_MAGIC, 8);
        for (uint64_t i = 0; i < count; i++)
                put_le64(p + IDX_HDR_SIZE + IDX_FANOUT_SIZE + i * IDX_ENTRY_SIZE + 16, pack_id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static uint8_t out[BS];
        struct store *s;
        uint8_t *p;
        size_t len, n_ent;
        int fd;

        if (size < 1)
                return 0;
        if (!*seg)
                setup();
        len = size - 1;
        /* made right: a whole number of entries */
        if ((data[0] & 1) && len >= IDX_HDR_SIZE + IDX_FANOUT_SIZE + IDX_FOOTER_SIZE)
                len -= (len - IDX_HDR_SIZE - IDX_FANOUT_SIZE - IDX_FOOTER_SIZE) % IDX_ENTRY_SIZE;
        p = malloc(len + 1);
        if (!p)
                return 0;
        memcpy(p, data + 1, len);
        if (data[0] & 1)
                fix(p, len);
        fd = open(seg, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0 || write(fd, p, len) != (ssize_t)len)
                abort();
        close(fd);
        n_ent = len > IDX_HDR_SIZE + IDX_FANOUT_SIZE ? (len - IDX_HDR_SIZE - IDX_FANOUT_SIZE) / IDX_ENTRY_SIZE : 0;
        if (store_open(dir, &s) >= 0) {
                for (size_t i = 0; i < n_ent && i < 64; i++) {
                        struct hash128 h, got;
                        size_t got_len = 0;
                        memcpy(h.b, p + IDX_HDR_SIZE + IDX_FANOUT_SIZE + i * IDX_ENTRY_SIZE, STORE_HASH_SIZE);
                        (void)store_has(s, &h);
                        if (store_read_blob(s, codec, &h, out, sizeof out, &got_len) == 0) {
                                store_hash(out, got_len, &got);
                                if (got_len > sizeof out || memcmp(&got, &h, sizeof h) != 0)
                                        abort();
                        }
                }
                store_free(s);
        }
        free(p);
        return 0;
}
