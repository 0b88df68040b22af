/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The block cache. See store.h for the contract.
 *
 * blocks-<bs>.idx layout (little endian):
 *   header 64 bytes: "RPFSCACH", version u32, block_size u32, n_slots u64,
 *                    table_cap u64, reserved
 *   table  table_cap x 24 bytes: hash[16], slot+1 u32 (0 = empty), reserved u32
 * Linear probing with backward-shift deletion keeps the table tombstone
 * free. The slot -> table position map and CLOCK reference bits live in the
 * heap and are rebuilt from the table at open.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "common.h"
#include "format_i.h"
#include "store.h"

#define CACHE_MAGIC "RPFSCACH"
#define CACHE_VERSION 1
#define CACHE_HDR 64
#define CACHE_ENTRY 24
#define SLOT_FREE UINT32_MAX
#define SLOT_BUSY (UINT32_MAX - 1)

struct store_cache {
        uint32_t bs;
        uint64_t n_slots, cap;
        int data_fd, idx_fd;
        uint8_t *map;          /* whole idx file */
        size_t map_len;
        pthread_mutex_t lock;  /* protects table, owner, ref, hand */
        uint32_t *owner;       /* slot -> table position, SLOT_FREE, SLOT_BUSY */
        uint8_t *ref;          /* CLOCK bits */
        uint64_t hand;
};

static uint8_t *entry(struct store_cache *c, uint64_t i) { return c->map + CACHE_HDR + i * CACHE_ENTRY; }
static uint32_t entry_slot(const uint8_t *e) { return get_le32(e + 16); } /* slot + 1, 0 empty */
static uint64_t home(const struct store_cache *c, const uint8_t *h) {
        uint64_t v;
        memcpy(&v, h + 4, sizeof v);
        return v & (c->cap - 1);
}

static uint64_t next_pow2(uint64_t v) {
        uint64_t p = 1;
        while (p < v)
                p <<= 1;
        return p;
}

/* Position of h in the table, or the empty position where it would go. */
static uint64_t find_pos(struct store_cache *c, const struct hash128 *h, bool *found) {
        for (uint64_t i = home(c, h->b);; i = (i + 1) & (c->cap - 1)) {
                uint8_t *e = entry(c, i);
                if (entry_slot(e) == 0) {
                        *found = false;
                        return i;
                }
                if (memcmp(e, h->b, STORE_HASH_SIZE) == 0) {
                        *found = true;
                        return i;
                }
        }
}

/* Remove the entry at position i (backward-shift deletion). */
static void remove_at(struct store_cache *c, uint64_t i) {
        uint64_t j = i;
        memset(entry(c, i), 0, CACHE_ENTRY);
        for (;;) {
                uint8_t *e;
                uint64_t k;
                j = (j + 1) & (c->cap - 1);
                e = entry(c, j);
                if (entry_slot(e) == 0)
                        return;
                k = home(c, e);
                /* Move e back into the hole at i unless its home lies
                 * cyclically in (i, j]. */
                if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
                        continue;
                memcpy(entry(c, i), e, CACHE_ENTRY);
                c->owner[entry_slot(e) - 1] = (uint32_t)i;
                memset(e, 0, CACHE_ENTRY);
                i = j;
        }
}

/* Whether the file's header describes this cache's geometry. */
static bool header_ok(struct store_cache *c, const uint8_t *h) {
        return memcmp(h, CACHE_MAGIC, 8) == 0 && get_le32(h + 8) == CACHE_VERSION && get_le32(h + 12) == c->bs &&
               get_le64(h + 16) == c->n_slots && get_le64(h + 24) == c->cap;
}

/* Open and map the index; *fresh when it was (re)made empty. A fresh
 * table is made by truncation, not by writing zeros: its pages stay
 * untouched (not resident) until an entry lands in them. */
static int map_index(struct store_cache *c, const char *path, bool *fresh) {
        uint8_t hdr[CACHE_HDR] = { 0 };
        struct stat st;
        size_t len = CACHE_HDR + c->cap * CACHE_ENTRY;

        c->idx_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (c->idx_fd < 0)
                return -errno;
        if (flock(c->idx_fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (fstat(c->idx_fd, &st) < 0)
                return -errno;
        *fresh = (uint64_t)st.st_size != len || pread_full(c->idx_fd, hdr, sizeof hdr, 0) < 0 || !header_ok(c, hdr);
        if (*fresh) {
                if (ftruncate(c->idx_fd, 0) < 0 || ftruncate(c->idx_fd, (off_t)len) < 0)
                        return -errno;
                memset(hdr, 0, sizeof hdr);
                memcpy(hdr, CACHE_MAGIC, 8);
                put_le32(hdr + 8, CACHE_VERSION);
                put_le32(hdr + 12, c->bs);
                put_le64(hdr + 16, c->n_slots);
                put_le64(hdr + 24, c->cap);
                int r = pwrite_full(c->idx_fd, hdr, sizeof hdr, 0);
                if (r < 0)
                        return r;
        }
        c->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, c->idx_fd, 0);
        if (c->map == MAP_FAILED) {
                c->map = NULL;
                return -errno;
        }
        c->map_len = len;
        return 0;
}

int store_cache_open(const char *dir, uint32_t block_size, uint64_t max_bytes, struct store_cache **ret) {
        char path[PATH_MAX];
        struct store_cache *c;
        bool fresh = true;
        int r;

        if (max_bytes / block_size < 16)
                return -EINVAL;
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return r;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->bs = block_size;
        c->n_slots = MIN(max_bytes / block_size, (uint64_t)SLOT_BUSY - 1);
        /* Load factor at most 0.8: the table is the cache's resident
         * memory (24 bytes per entry; 12 MiB for the default 20 GiB). */
        c->cap = next_pow2(c->n_slots + c->n_slots / 4);
        c->data_fd = c->idx_fd = -1;
        pthread_mutex_init(&c->lock, NULL);

        snprintf(path, sizeof path, "%s/blocks-%u.idx", dir, block_size);
        r = map_index(c, path, &fresh);
        if (r < 0)
                goto fail;
        snprintf(path, sizeof path, "%s/blocks-%u.data", dir, block_size);
        c->data_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (c->data_fd < 0) {
                r = -errno;
                goto fail;
        }
        /* Shrinking the cache drops the data beyond the last slot. */
        if (ftruncate(c->data_fd, (off_t)(c->n_slots * block_size)) < 0) {
                r = -errno;
                goto fail;
        }
        c->owner = malloc(c->n_slots * sizeof *c->owner);
        c->ref = calloc(c->n_slots, 1);
        if (!c->owner || !c->ref) {
                r = -ENOMEM;
                goto fail;
        }
        for (uint64_t i = 0; i < c->n_slots; i++)
                c->owner[i] = SLOT_FREE;
        for (uint64_t i = 0; !fresh && i < c->cap; i++) {
                uint32_t s = entry_slot(entry(c, i));
                if (s == 0)
                        continue;
                if (s - 1 >= c->n_slots || c->owner[s - 1] != SLOT_FREE) {
                        /* Damaged table: start over. */
                        memset(c->map + CACHE_HDR, 0, c->cap * CACHE_ENTRY);
                        for (uint64_t k = 0; k < c->n_slots; k++)
                                c->owner[k] = SLOT_FREE;
                        break;
                }
                c->owner[s - 1] = (uint32_t)i;
        }
        *ret = c;
        return 0;
fail:
        store_cache_close(c);
        return r;
}

void store_cache_close(struct store_cache *c) {
        if (!c)
                return;
        if (c->map)
                munmap(c->map, c->map_len);
        if (c->data_fd >= 0)
                close(c->data_fd);
        if (c->idx_fd >= 0)
                close(c->idx_fd); /* releases the flock */
        pthread_mutex_destroy(&c->lock);
        free(c->owner);
        free(c->ref);
        free(c);
}

bool store_cache_contains(struct store_cache *c, const struct hash128 *h) {
        bool found;
        pthread_mutex_lock(&c->lock);
        find_pos(c, h, &found);
        pthread_mutex_unlock(&c->lock);
        return found;
}

int store_cache_get(struct store_cache *c, const struct hash128 *h, void *buf) {
        struct hash128 got;
        uint64_t pos;
        uint32_t slot;
        bool found;
        int r;

        pthread_mutex_lock(&c->lock);
        pos = find_pos(c, h, &found);
        if (!found) {
                pthread_mutex_unlock(&c->lock);
                return -ENOENT;
        }
        slot = entry_slot(entry(c, pos)) - 1;
        c->ref[slot] = 1;
        pthread_mutex_unlock(&c->lock);

        /* The slot may be reused while we read it: verification below
         * turns that (and any torn write) into a miss. */
        r = pread_full(c->data_fd, buf, c->bs, (uint64_t)slot * c->bs);
        if (r >= 0) {
                store_hash(buf, c->bs, &got);
                if (memcmp(&got, h, sizeof got) == 0)
                        return 0;
        }
        pthread_mutex_lock(&c->lock);
        pos = find_pos(c, h, &found);
        if (found && entry_slot(entry(c, pos)) - 1 == slot) {
                remove_at(c, pos);
                c->owner[slot] = SLOT_FREE;
        }
        pthread_mutex_unlock(&c->lock);
        return -ENOENT;
}

/* Pick a slot with CLOCK and detach it from its entry. Lock held. */
static uint32_t take_slot(struct store_cache *c) {
        for (uint64_t n = 0; n < 3 * c->n_slots; n++) {
                uint64_t s = c->hand;
                c->hand = (c->hand + 1) % c->n_slots;
                if (c->owner[s] == SLOT_BUSY)
                        continue;
                if (c->owner[s] == SLOT_FREE)
                        return (uint32_t)s;
                if (c->ref[s]) {
                        c->ref[s] = 0;
                        continue;
                }
                remove_at(c, c->owner[s]);
                c->owner[s] = SLOT_FREE;
                return (uint32_t)s;
        }
        return SLOT_FREE; /* everything busy */
}

int store_cache_put(struct store_cache *c, const struct hash128 *h, const void *buf) {
        uint64_t pos;
        uint32_t slot;
        bool found;
        int r;

        pthread_mutex_lock(&c->lock);
        find_pos(c, h, &found);
        if (found) {
                pthread_mutex_unlock(&c->lock);
                return 0;
        }
        slot = take_slot(c);
        if (slot == SLOT_FREE) {
                pthread_mutex_unlock(&c->lock);
                return -EBUSY;
        }
        c->owner[slot] = SLOT_BUSY;
        pthread_mutex_unlock(&c->lock);

        r = pwrite_full(c->data_fd, buf, c->bs, (uint64_t)slot * c->bs);

        pthread_mutex_lock(&c->lock);
        pos = find_pos(c, h, &found);
        if (r < 0 || found) {
                /* Write failed, or another thread cached h meanwhile. */
                c->owner[slot] = SLOT_FREE;
        } else {
                uint8_t *e = entry(c, pos);
                memcpy(e, h->b, STORE_HASH_SIZE);
                put_le32(e + 16, slot + 1);
                put_le32(e + 20, 0);
                c->owner[slot] = (uint32_t)pos;
                c->ref[slot] = 1;
        }
        pthread_mutex_unlock(&c->lock);
        return r;
}
