/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encrypted vaults: key slots (key files and passphrases) wrap and unwrap
 * the master key, blobs and objects round-trip sealed, and a flipped,
 * truncated or swapped one is -EBADMSG; stored names are keyed; unknown
 * features and a changed config are refused; plain vaults are unchanged. */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "store.h"
#include "unit.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

static char vault[256];

static void write_bytes(const char *path, const void *p, size_t len) {
        CHECK(write_file_atomic(path, p, len, false) == 0);
}

/* Flip a bit in place (the backend may keep the file open). */
static void flip(const char *path, long off) {
        int fd = open(path, O_RDWR);
        uint8_t b = 0;
        CHECK(fd >= 0 && pread(fd, &b, 1, off) == 1);
        b ^= 0x10;
        CHECK(pwrite(fd, &b, 1, off) == 1);
        close(fd);
}

static struct store *open_with(const char *key_file, int want) {
        struct store_options o = STORE_OPTIONS_DEFAULT;
        struct store *s = NULL;
        o.key_file = key_file;
        int r = store_open_with(vault, &o, &s);
        if (r != want)
                fprintf(stderr, "open with %s: %d, want %d\n", key_file ? key_file : "-", r, want);
        CHECK(r == want);
        return r == 0 ? s : NULL;
}

/* The one pack of the vault into path. */
static void pack_path(char *path, size_t len) {
        char d[280];
        struct dirent *e;
        DIR *top, *sub;
        snprintf(d, sizeof d, "%s/packs", vault);
        top = opendir(d);
        while (top && (e = readdir(top)))
                if (e->d_name[0] != '.') {
                        char sd[540];
                        snprintf(sd, sizeof sd, "%s/%s", d, e->d_name);
                        sub = opendir(sd);
                        struct dirent *f;
                        while (sub && (f = readdir(sub)))
                                if (f->d_name[0] != '.')
                                        snprintf(path, len, "%s/%s", sd, f->d_name);
                        if (sub)
                                closedir(sub);
                }
        if (top)
                closedir(top);
}

static void test_slots(const char *dir, char *kf1, char *kf2) {
        struct store_options o = STORE_OPTIONS_DEFAULT;
        struct store_key_slot *v;
        struct store *s;
        char id[17], id2[17];
        size_t n;

        o.encrypt = true;
        o.key_file = kf1;
        CHECK(store_init_with(vault, &o, 65536, 1) == 0);
        s = open_with(kf1, 0);
        open_with(kf2, -EKEYREJECTED);
        unsetenv("RPFS_PASSPHRASE");
        unsetenv("RPFS_KEY_FILE");
        open_with(NULL, -ENOKEY); /* no terminal under meson test */
        setenv("RPFS_PASSPHRASE", "not a slot", 1);
        open_with(NULL, -EKEYREJECTED);
        CHECK(s && store_encrypted(s));
        if (!s)
                return;
        CHECK(store_key_list(s, &v, &n) == 0 && n == 1 && v[0].unlocked && strcmp(v[0].type, "key-file") == 0);
        snprintf(id, sizeof id, "%s", v[0].id);
        free(v);
        CHECK(store_key_remove(s, id) == -EBUSY);
        CHECK(store_key_remove(s, "0123456789abcdef") == -ENOENT);
        CHECK(store_key_add(s, kf2, id2) == 0);
        setenv("RPFS_NEW_PASSPHRASE", "correct horse", 1);
        CHECK(store_key_add(s, NULL, id2) == 0);
        unsetenv("RPFS_NEW_PASSPHRASE");
        CHECK(store_key_list(s, &v, &n) == 0 && n == 3);
        free(v);
        store_free(s);
        store_free(open_with(kf2, 0));
        setenv("RPFS_PASSPHRASE", "correct horse", 1);
        s = open_with(NULL, 0);
        CHECK(s && store_key_remove(s, id) == 0);
        store_free(s);
        open_with(kf1, -EKEYREJECTED);
        setenv("RPFS_KEY_FILE", kf2, 1);
        store_free(open_with(NULL, 0)); /* RPFS_KEY_FILE comes before RPFS_PASSPHRASE */
        unsetenv("RPFS_KEY_FILE");
        (void)dir;
}

static void test_blobs(const char *kf) {
        static uint8_t blk[3][65536], out[65536], enc[70000];
        struct store *s = open_with(kf, 0);
        struct store_writer *w;
        struct store_codec *c;
        struct hash128 h[3], name;
        char pack[700], names[3][33], *data;
        size_t len;
        long n;

        if (!s)
                return;
        CHECK(store_codec_new(s, &c) == 0);
        CHECK(store_writer_new(s, &w) == 0);
        for (int i = 0; i < 3; i++) {
                for (size_t k = 0; k < sizeof blk[i]; k++)
                        blk[i][k] = (uint8_t)(i == 2 ? (size_t)rand() : (k * 7 + (size_t)i) >> 3);
                store_hash(blk[i], sizeof blk[i], &h[i]);
                n = store_encode(c, STORE_KIND_DATA, blk[i], sizeof blk[i], enc, sizeof enc);
                CHECK(n > 0 && store_writer_add(w, &h[i], enc, (size_t)n) == 1);
                CHECK(store_writer_known(w, &h[i]));
                store_blob_name(s, &h[i], &name);
                CHECK(memcmp(&name, &h[i], sizeof name) != 0);
                hash_to_hex(&name, names[i]);
        }
        CHECK(store_writer_flush(w) == 0);
        store_writer_free(w);
        for (int i = 0; i < 3; i++) {
                CHECK(store_has(s, &h[i]) == 0);
                CHECK(store_read_blob(s, c, &h[i], out, sizeof out, &len) == 0 && len == sizeof out &&
                      memcmp(out, blk[i], len) == 0);
        }
        /* Pack tables list keyed names, never the plain checksums. */
        pack_path(pack, sizeof pack);
        CHECK(read_file_all(pack, &data, &len) == 0);
        for (int i = 0; i < 3; i++) {
                CHECK(memmem(data, len, h[i].b, 16) == NULL);
                store_blob_name(s, &h[i], &name);
                CHECK(memmem(data, len, name.b, 16) != NULL);
        }
        /* The random block is stored as is: its bytes must not show. */
        CHECK(memmem(data, len, blk[2] + 1000, 64) == NULL);
        free(data);
        /* Objects round-trip, bound to their name. */
        CHECK(store_put_object(s, "points/web01/a.json", "{\"a\":1}", 7, true) == 0);
        CHECK(store_put_object(s, "points/web01/b.json", "{\"b\":2}", 7, true) == 0);
        CHECK(store_get_object(s, "points/web01/a.json", &data, &len) == 0 && len == 7 && !memcmp(data, "{\"a\":1}", 7));
        free(data);
        char pa[600], pb[600];
        snprintf(pa, sizeof pa, "%s/points/web01/a.json", vault);
        snprintf(pb, sizeof pb, "%s/points/web01/b.json", vault);
        CHECK(read_file_all(pa, &data, &len) == 0 && memmem(data, len, "\"a\"", 3) == NULL);
        write_bytes(pb, data, len); /* a swapped object */
        free(data);
        data = NULL;
        CHECK(store_get_object(s, "points/web01/b.json", &data, &len) == -EBADMSG);
        CHECK(read_file_all(pa, &data, &len) == 0);
        write_bytes(pa, data, len ? len - 1 : (size_t)0); /* truncated */
        free(data);
        CHECK(store_get_object(s, "points/web01/a.json", &data, &len) == -EBADMSG);
        /* A flipped byte in a blob's payload, its header, or its tag. */
        flip(pack, 16 + 8 + 24 + 5);
        CHECK(store_read_blob(s, c, &h[0], out, sizeof out, &len) == -EBADMSG);
        flip(pack, 16 + 8 + 24 + 5);
        CHECK(store_read_blob(s, c, &h[0], out, sizeof out, &len) == 0);
        flip(pack, 16 + 1); /* the kind byte of the first blob */
        CHECK(store_read_blob(s, c, &h[0], out, sizeof out, &len) == -EBADMSG);
        flip(pack, 16 + 1);
        store_codec_free(c);
        store_free(s);
}

static void test_config(const char *kf) {
        char cfg[300], *text, *p;
        size_t len;

        snprintf(cfg, sizeof cfg, "%s/config.json", vault);
        CHECK(read_file_all(cfg, &text, &len) == 0);
        /* A changed setting fails the config's MAC. */
        p = strstr(text, "\"level\": 1");
        CHECK(p != NULL);
        if (p) {
                p[9] = '3';
                write_bytes(cfg, text, len);
                open_with(kf, -EBADMSG);
                p[9] = '1';
        }
        /* A feature this build does not know is refused. */
        p = strstr(text, "\"encryption\"\n");
        CHECK(p != NULL);
        if (p) {
                memcpy(p, "\"future-thing\"", 14);
                write_bytes(cfg, text, len);
                open_with(kf, -EOPNOTSUPP);
                memcpy(p, "\"encryption\"\n  ", 14);
        }
        write_bytes(cfg, text, len);
        free(text);
}

static void test_plain(const char *dir) {
        char cfg[300], *text;
        struct hash128 h, n;
        struct store *s;
        size_t len;

        snprintf(vault, sizeof vault, "%s/plain", dir);
        CHECK(store_init(vault, 65536, 1) == 0);
        snprintf(cfg, sizeof cfg, "%s/config.json", vault);
        CHECK(read_file_all(cfg, &text, &len) == 0 && !strstr(text, "features") && !strstr(text, "encryption"));
        free(text);
        CHECK(store_open(vault, &s) == 0);
        store_hash("abc", 3, &h);
        store_blob_name(s, &h, &n);
        CHECK(s && !store_encrypted(s) && memcmp(&h, &n, sizeof h) == 0);
        CHECK(store_key_add(s, NULL, (char[17]){ 0 }) == -EOPNOTSUPP);
        store_free(s);
}

int main(void) {
        const char *dir = unit_tmpdir("crypt");
        char kf1[300], kf2[300];

        setenv("RPFS_ARGON2_OPSLIMIT", "1", 1);
        setenv("RPFS_ARGON2_MEMLIMIT", "8388608", 1);
        snprintf(kf1, sizeof kf1, "%s/key1", dir);
        snprintf(kf2, sizeof kf2, "%s/key2", dir);
        write_bytes(kf1, "0123456789abcdef-one-key-file", 29);
        write_bytes(kf2, "0123456789abcdef-two-key-file", 29);
        snprintf(vault, sizeof vault, "%s/v", dir);
        test_slots(dir, kf1, kf2);
        test_blobs(kf2);
        test_config(kf2);
        store_free(open_with(kf2, 0));
        test_plain(dir);
        return unit_exit();
}
