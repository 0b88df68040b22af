/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Blocks of files in MOUNT/failback that the read path has just verified.
 *
 * `dd if=MNT/vm/points/P/disk0.raw of=MNT/failback/T conv=notrunc` reads
 * each unchanged block from T itself (the on-prem seed, read.c: pread and
 * checksum against the point's manifest), then writes the same bytes back
 * to T, where each write is compared with what T holds. That compare was a
 * second pread of the block and a memcmp. Here the read path notes "block
 * b of inode I held checksum h" and a write of a whole block first
 * checksums the bytes it is given (no copy): equal to the note, the block
 * is known to be the same and is not read again. Any other write compares
 * as before.
 *
 * A note is dropped by every write through the mount that touches its
 * slot, and all notes by a truncation, a hole punched, an unlink or a
 * rename: a note taken while such a change ran is not kept (each slot has
 * a write generation, the table an epoch; a reader samples both before its
 * pread and keeps its note only if neither moved). A change made to T
 * behind the mount's back (not through MNT/failback) while it is being
 * written through the mount is not seen; that is a second writer racing
 * the first on the same blocks, whose outcome is undefined either way.
 *
 * Direct-mapped: VER_SLOTS notes (512 MiB of 64 KiB blocks), the reader's
 * lead over the writer is the kernel's readahead (a few MiB).
 */
#include <string.h>
#include <sys/stat.h>

#include "fs_i.h"

#define VER_SLOTS 8192u
#define VER_LOCKS 64u

struct fs_verified_slot {
        uint64_t dev, ino, block;
        struct hash128 h;
        uint32_t wgen;  /* bumped by each write through the mount to the slot */
        uint32_t epoch; /* the table's epoch when the note was taken */
        bool valid;
};

struct fs_verified {
        pthread_mutex_t lock[VER_LOCKS]; /* slot i uses lock i % VER_LOCKS */
        atomic_uint epoch;               /* bumped by changes to whole files */
        struct fs_verified_slot slot[VER_SLOTS];
};

int fs_verified_new(struct fs_verified **ret) {
        struct fs_verified *v = calloc(1, sizeof *v);

        if (!v)
                return -ENOMEM;
        for (unsigned i = 0; i < VER_LOCKS; i++)
                pthread_mutex_init(&v->lock[i], NULL);
        *ret = v;
        return 0;
}

void fs_verified_free(struct fs_verified *v) {
        if (!v)
                return;
        for (unsigned i = 0; i < VER_LOCKS; i++)
                pthread_mutex_destroy(&v->lock[i]);
        free(v);
}

static size_t slot_of(uint64_t dev, uint64_t ino, uint64_t block) {
        uint64_t x = (ino * 0x9E3779B97F4A7C15ull) ^ (dev * 0xC2B2AE3D27D4EB4Full) ^ block;
        x ^= x >> 29;
        x *= 0xBF58476D1CE4E5B9ull;
        return (size_t)((x ^ (x >> 32)) & (VER_SLOTS - 1));
}

void fs_verified_sample(struct fs_verified *v, uint64_t dev, uint64_t ino, uint64_t block,
                        struct fs_verified_mark *ret) {
        size_t i = slot_of(dev, ino, block);

        ret->epoch = atomic_load(&v->epoch);
        pthread_mutex_lock(&v->lock[i % VER_LOCKS]);
        ret->wgen = v->slot[i].wgen;
        pthread_mutex_unlock(&v->lock[i % VER_LOCKS]);
}

void fs_verified_note(struct fs_verified *v, uint64_t dev, uint64_t ino, uint64_t block, const struct hash128 *h,
                      const struct fs_verified_mark *m) {
        size_t i = slot_of(dev, ino, block);
        struct fs_verified_slot *s = &v->slot[i];

        pthread_mutex_lock(&v->lock[i % VER_LOCKS]);
        if (s->wgen == m->wgen && atomic_load(&v->epoch) == m->epoch) {
                s->dev = dev;
                s->ino = ino;
                s->block = block;
                s->h = *h;
                s->epoch = m->epoch;
                s->valid = true;
        }
        pthread_mutex_unlock(&v->lock[i % VER_LOCKS]);
}

bool fs_verified_holds(struct fs_verified *v, uint64_t dev, uint64_t ino, uint64_t block, const struct hash128 *h) {
        size_t i = slot_of(dev, ino, block);
        const struct fs_verified_slot *s = &v->slot[i];
        bool yes;

        pthread_mutex_lock(&v->lock[i % VER_LOCKS]);
        yes = s->valid && s->dev == dev && s->ino == ino && s->block == block &&
              s->epoch == atomic_load(&v->epoch) && memcmp(&s->h, h, sizeof *h) == 0;
        pthread_mutex_unlock(&v->lock[i % VER_LOCKS]);
        return yes;
}

void fs_verified_forget(struct fs_verified *v, uint64_t dev, uint64_t ino, uint64_t first, uint64_t end) {
        if (!v)
                return;
        if (end - first >= VER_SLOTS) {
                fs_verified_forget_all(v);
                return;
        }
        for (uint64_t b = first; b < end; b++) {
                size_t i = slot_of(dev, ino, b);
                pthread_mutex_lock(&v->lock[i % VER_LOCKS]);
                v->slot[i].wgen++;
                v->slot[i].valid = false;
                pthread_mutex_unlock(&v->lock[i % VER_LOCKS]);
        }
}

void fs_verified_forget_all(struct fs_verified *v) {
        if (v)
                atomic_fetch_add(&v->epoch, 1);
}
