/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* store_fetch_blocks against a real directory vault written with the store
 * API: neighbouring blobs of one pack merged into one ranged read (counted
 * by store_read_stats), gaps read through below 64 KiB and not above,
 * duplicate and overlapping requests, any request order, several packs,
 * more runs than one round takes, a missing block and a damaged one
 * failing alone, the sink, more threads than range buffers. Also that every pack the writer sealed reads
 * back through store_pack_table() and agrees with the index. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "store_i.h"
#include "unit.h"

#define BS 4096u
#define BLOB (BLOB_HDR_SIZE + BS) /* level 0: stored as is */
#define NA 340 /* blocks of pack A */
#define NB 4   /* blocks of pack B */

static uint8_t data[NA + NB + 1][BS]; /* the last one is never stored */
static struct hash128 h[NA + NB + 1];
#define A(i) (i)
#define B(i) (NA + (i))
#define MISSING (NA + NB)

/* One writer, one flush: blocks [a, b) in one pack, in that order. */
static void write_pack(struct store *s, struct store_codec *c, int a, int b) {
        static uint8_t enc[BLOB + 64];
        struct store_writer *w;

        CHECK(store_writer_new(s, &w) == 0);
        for (int i = a; i < b; i++) {
                long n = store_encode(c, STORE_KIND_DATA, data[i], BS, enc, sizeof enc);
                CHECK(n == (long)BLOB);
                CHECK(store_writer_add(w, &h[i], enc, (size_t)n) == 1);
        }
        CHECK(store_writer_flush(w) == 0);
        store_writer_free(w);
}

struct got {
        uint64_t requests, bytes;
};

/* Fetch blocks ids[0..n) into bufs; results in v. How many ranged reads
 * and bytes that took. */
static struct got fetch(struct store *s, struct store_codec *c, const int *ids, size_t n, struct store_fetch *v,
                        uint8_t (*bufs)[BS]) {
        uint64_t r0, b0, r1, b1;

        store_read_stats(s, &b0, &r0);
        for (size_t i = 0; i < n; i++)
                v[i] = (struct store_fetch){ .h = h[ids[i]], .buf = bufs[i] };
        CHECK(store_fetch_blocks(s, c, v, n) == 0);
        store_read_stats(s, &b1, &r1);
        return (struct got){ r1 - r0, b1 - b0 };
}

/* Every entry verified and holding its block. */
static void check_all_ok(const int *ids, size_t n, const struct store_fetch *v, uint8_t (*bufs)[BS]) {
        for (size_t i = 0; i < n; i++) {
                CHECK(v[i].result == 0);
                CHECK(v[i].stored == BLOB);
                CHECK(memcmp(bufs[i], data[ids[i]], BS) == 0);
        }
}

static uint8_t bufs[64][BS];
static struct store_fetch v[64];

/* One call whose every entry verifies: blocks ids[0..n) (at most 20), in
 * that order; how many ranged reads and bytes (in blobs) it must take. */
struct fetch_case {
        const char *what;
        int ids[20];
        size_t n;
        uint64_t requests, blobs;
};

static const struct fetch_case cases[] = {
        { "adjacent blobs of one pack", { A(0), A(1), A(2), A(3), A(4), A(5), A(6), A(7) }, 8, 1, 8 },
        { "any order", { A(3), A(1), A(2), A(0) }, 4, 1, 4 },
        /* gaps nobody asked for are read through (merged ranges count whole) */
        { "gaps between", { A(7), A(2), A(5), A(0) }, 4, 1, 8 },
        /* 15 blobs between (61,560 bytes) are below the 64 KiB gap; 16
         * (65,664) are not */
        { "a gap under 64 KiB", { A(0), A(16) }, 2, 1, 17 },
        { "a gap of 64 KiB or more", { A(0), A(17) }, 2, 2, 2 },
        /* a blob asked for twice starts a read of its own: its copy does
         * not start at or after the end of the run holding the first */
        { "a duplicate", { A(1), A(2), A(1) }, 3, 2, 3 },
        { "overlapping sets [0,3] and [2,5]: runs 0-2, 2-3, 3-5",
          { A(0), A(1), A(2), A(3), A(2), A(3), A(4), A(5) }, 8, 3, 8 },
        /* A0-A1 and B0-B3, B2 read through */
        { "two packs", { B(1), A(1), B(0), A(0), B(3) }, 5, 2, 6 },
        /* 20 runs: more than one round (16 runs) takes */
        { "more runs than a round",
          { A(323), A(306), A(289), A(272), A(255), A(238), A(221), A(204), A(187), A(170), A(153), A(136),
            A(119), A(102), A(85), A(68), A(51), A(34), A(17), A(0) }, 20, 20, 20 },
};

static void test_cases(struct store *s, struct store_codec *c) {
        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                const struct fetch_case *t = &cases[k];
                struct got g = fetch(s, c, t->ids, t->n, v, bufs);

                check_all_ok(t->ids, t->n, v, bufs);
                if (g.requests != t->requests || g.bytes != t->blobs * BLOB) {
                        fprintf(stderr, "%s: %llu reads of %llu bytes\n", t->what, (unsigned long long)g.requests,
                                (unsigned long long)g.bytes);
                        unit_failures++;
                }
        }
        /* where the blocks came from */
        fetch(s, c, cases[7].ids, cases[7].n, v, bufs);
        CHECK(v[0].pack_id != 0 && v[0].pack_id == v[2].pack_id && v[1].pack_id == v[3].pack_id &&
              v[0].pack_id != v[1].pack_id);
}

static void test_missing(struct store *s, struct store_codec *c) {
        static const int ids[] = { A(0), MISSING, A(1), A(2) };
        struct got g = fetch(s, c, ids, 4, v, bufs);

        CHECK(v[1].result == -ENOENT && v[1].stored == 0 && v[1].pack_id == 0);
        for (int i = 0; i < 4; i++)
                if (i != 1)
                        CHECK(v[i].result == 0 && memcmp(bufs[i], data[ids[i]], BS) == 0);
        CHECK(g.requests == 1 && g.bytes == 3 * BLOB);
}

/* Read a whole pack file. */
static uint8_t *read_pack(const char *vault, uint64_t pack_id, size_t *ret_len, char *path, size_t cap) {
        char name[64], *p = NULL;

        store_pack_name(pack_id, name, sizeof name);
        snprintf(path, cap, "%s/%s", vault, name);
        CHECK(read_file_all(path, &p, ret_len) == 0);
        return (uint8_t *)p;
}

/* Entry 0's field at `at` (offset u64 at 16, len u32 at 24, ulen u32 at 28)
 * set to val, the table checksum made right: refused; then restored. */
static void check_entry_refused(uint8_t *p, size_t len, const struct pack_table *t, size_t at, uint64_t val) {
        uint8_t *e = p + t->table_off, saved[8], *sum = p + len - PACK_FOOTER_SIZE + 16;
        size_t tlen = (size_t)t->count * PACK_ENTRY_SIZE;
        struct pack_table u;

        memcpy(saved, e + at, 8);
        if (at == 16)
                put_le64(e + at, val);
        else
                put_le32(e + at, (uint32_t)val);
        put_le64(sum, store_hash64(e, tlen));
        CHECK(store_pack_table(p, len, &u) == -EBADMSG);
        memcpy(e + at, saved, 8);
        put_le64(sum, store_hash64(e, tlen));
        CHECK(store_pack_table(p, len, &u) == 0);
}

/* The pack table of the pack holding block id: every entry in the index,
 * at the same place. Returns the entry count. */
static uint32_t check_pack_table(struct store *s, const char *vault, int id) {
        struct blob_loc want, got;
        struct pack_table t = { 0 };
        struct hash128 eh;
        char path[512];
        size_t len = 0;
        uint8_t *p;

        CHECK(store_lookup(s, &h[id], &want) == 0);
        p = read_pack(vault, want.pack_id, &len, path, sizeof path);
        if (!p)
                return 0;
        CHECK(store_pack_table(p, len, &t) == 0);
        for (uint32_t i = 0; i < t.count; i++) {
                store_pack_entry(&t, i, &eh, &got);
                CHECK(store_lookup(s, &eh, &want) == 0);
                CHECK(want.offset == got.offset && want.len == got.len && want.ulen == got.ulen);
        }
        /* damage is refused */
        p[len - 1] ^= 1;
        CHECK(store_pack_table(p, len, &t) == -EBADMSG);
        p[len - 1] ^= 1;
        p[t.table_off + 20] ^= 1; /* an entry's offset: the checksum fails */
        CHECK(store_pack_table(p, len, &t) == -EBADMSG);
        CHECK(store_pack_table(p, PACK_HDR_SIZE, &t) == -EBADMSG);
        p[t.table_off + 20] ^= 1;
        CHECK(store_pack_table(p, len, &t) == 0);
        /* the tail alone (rpfs check): the footer, then the whole table */
        {
                struct pack_table u;
                size_t tl = len - (size_t)t.table_off;

                CHECK(store_pack_tail(p, p + len - PACK_FOOTER_SIZE, PACK_FOOTER_SIZE, len, &u) == 0);
                CHECK(u.entries == NULL && u.count == t.count && u.table_off == t.table_off);
                CHECK(store_pack_tail(p, p + t.table_off, tl, len, &u) == 0);
                CHECK(u.entries == p + t.table_off);
                p[len - PACK_FOOTER_SIZE - 1] ^= 1; /* the table's last byte */
                CHECK(store_pack_tail(p, p + t.table_off, tl, len, &u) == -EBADMSG);
                p[len - PACK_FOOTER_SIZE - 1] ^= 1;
                CHECK(store_pack_tail(p, p + len - PACK_FOOTER_SIZE, PACK_FOOTER_SIZE, len + 1, &u) == -EBADMSG);
        }
        /* entries that pass the checksum but not the bounds */
        check_entry_refused(p, len, &t, 16, PACK_HDR_SIZE - 1);     /* offset inside the header */
        check_entry_refused(p, len, &t, 16, t.table_off);           /* offset at the table */
        check_entry_refused(p, len, &t, 24, BLOB_HDR_SIZE - 1);     /* shorter than a blob header */
        check_entry_refused(p, len, &t, 24, (uint32_t)t.table_off); /* running into the table */
        check_entry_refused(p, len, &t, 28, BS + 1);                /* not the blob's decoded length */
        free(p);
        return t.count;
}

/* Flip one payload byte of B1 in its pack file: B1 alone fails. */
static void test_corrupt(struct store *s, struct store_codec *c, const char *vault) {
        static const int ids[] = { B(0), B(1), B(2) };
        struct blob_loc loc;
        char path[512];
        size_t len;
        uint8_t *p;
        int fd;
        struct got g;

        CHECK(store_lookup(s, &h[B(1)], &loc) == 0);
        p = read_pack(vault, loc.pack_id, &len, path, sizeof path);
        free(p);
        chmod(path, 0644);
        fd = open(path, O_RDWR);
        CHECK(fd >= 0);
        if (fd >= 0) {
                uint8_t b;
                CHECK(pread(fd, &b, 1, (off_t)(loc.offset + BLOB_HDR_SIZE + 100)) == 1);
                b ^= 0x40;
                CHECK(pwrite(fd, &b, 1, (off_t)(loc.offset + BLOB_HDR_SIZE + 100)) == 1);
                close(fd);
        }
        g = fetch(s, c, ids, 3, v, bufs);
        CHECK(v[0].result == 0 && memcmp(bufs[0], data[B(0)], BS) == 0);
        CHECK(v[1].result == -EBADMSG && v[1].stored == BLOB);
        CHECK(v[2].result == 0 && memcmp(bufs[2], data[B(2)], BS) == 0);
        CHECK(g.requests == 1 && g.bytes == 3 * BLOB);
}

struct sunk {
        int n;
        bool ok;
};

static void sink(void *u, struct store_fetch *f, const void *block) {
        struct sunk *k = u;
        k->ok &= memcmp(f->h.b, h[A(5)].b, sizeof f->h.b) == 0 && memcmp(block, data[A(5)], BS) == 0;
        k->n++;
}

static void test_sink(struct store *s, struct store_codec *c) {
        struct store_fetch w[3] = { { .h = h[A(4)], .buf = bufs[0] }, { .h = h[A(5)] }, { .h = h[MISSING] } };
        struct sunk k = { 0, true };

        CHECK(store_fetch_blocks_sink(s, c, w, 3, sink, &k) == 0);
        CHECK(k.n == 1 && k.ok);
        CHECK(w[0].result == 0 && w[1].result == 0 && w[2].result == -ENOENT);
        CHECK(store_fetch_blocks(s, c, w, 0) == 0);
}

/* More threads than the store has range buffers (6), each fetching all
 * of pack A at once with its own codec: every call waits for a buffer
 * when all are taken, none fails, every block verifies. */
#define THREADS 10
struct par {
        struct store *s;
        int ok;
};

static void *par_fetch(void *arg) {
        struct par *p = arg;
        static _Thread_local uint8_t tb[NA][BS];
        static _Thread_local struct store_fetch tv[NA];
        struct store_codec *c = NULL;

        p->ok = store_codec_new(p->s, &c) == 0;
        for (int round = 0; p->ok && round < 5; round++) {
                for (int i = 0; i < NA; i++)
                        tv[i] = (struct store_fetch){ .h = h[A(i)], .buf = tb[i] };
                p->ok = store_fetch_blocks(p->s, c, tv, NA) == 0;
                for (int i = 0; p->ok && i < NA; i++)
                        p->ok = tv[i].result == 0 && memcmp(tb[i], data[A(i)], BS) == 0;
        }
        store_codec_free(c);
        return NULL;
}

static void test_parallel(struct store *s) {
        pthread_t t[THREADS];
        struct par p[THREADS];

        for (int i = 0; i < THREADS; i++) {
                p[i] = (struct par){ s, 0 };
                CHECK(pthread_create(&t[i], NULL, par_fetch, &p[i]) == 0);
        }
        for (int i = 0; i < THREADS; i++) {
                pthread_join(t[i], NULL);
                CHECK(p[i].ok);
        }
}

int main(void) {
        char vault[256];
        struct store *s = NULL;
        struct store_codec *c = NULL;

        snprintf(vault, sizeof vault, "%s/v", unit_tmpdir("fetch"));
        for (int i = 0; i <= MISSING; i++) {
                unit_fill(data[i], BS, (unsigned)i);
                store_hash(data[i], BS, &h[i]);
        }
        CHECK(store_init(vault, BS, 0) == 0);
        CHECK(store_open(vault, &s) == 0);
        if (!s)
                return unit_exit();
        CHECK(store_codec_new(s, &c) == 0);
        write_pack(s, c, A(0), A(NA));
        write_pack(s, c, B(0), B(NB));
        store_free(s);
        CHECK(store_open(vault, &s) == 0); /* the index from disk */
        if (!s)
                return unit_exit();

        CHECK(check_pack_table(s, vault, A(0)) == NA);
        CHECK(check_pack_table(s, vault, B(0)) == NB);
        test_cases(s, c);
        test_missing(s, c);
        test_sink(s, c);
        test_parallel(s);
        test_corrupt(s, c, vault);

        store_codec_free(c);
        store_free(s);
        return unit_exit();
}
