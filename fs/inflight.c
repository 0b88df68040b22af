/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mount's in-flight fetch table: a block is fetched once; whoever
 * finds it in flight waits for it (a reader) or leaves it (readahead).
 * Open addressing with backward-shift deletion; fl_lock protects it.
 */
#include <string.h>

#include "fs_i.h"

static size_t fl_home(const struct hash128 *h) {
        uint64_t v;
        memcpy(&v, h->b + 4, sizeof v);
        return (size_t)(v & (FL_CAP - 1));
}

static bool fl_find(struct fs *fs, const struct hash128 *h, size_t *pos) {
        for (size_t i = fl_home(h);; i = (i + 1) & (FL_CAP - 1)) {
                if (!fs->fl_used[i]) {
                        *pos = i;
                        return false;
                }
                if (memcmp(&fs->fl[i], h, sizeof *h) == 0) {
                        *pos = i;
                        return true;
                }
        }
}

/* Claim h for fetching: true if the caller must fetch it, false if it is
 * in flight already (or the table is full: then fetch without a claim). */
static bool fl_claim(struct fs *fs, const struct hash128 *h, bool *claimed) {
        size_t pos;
        bool mine;
        pthread_mutex_lock(&fs->fl_lock);
        if (fl_find(fs, h, &pos))
                mine = *claimed = false;
        else if (fs->fl_n >= FL_CAP / 2) {
                mine = true;
                *claimed = false;
        } else {
                fs->fl[pos] = *h;
                fs->fl_used[pos] = true;
                fs->fl_n++;
                mine = *claimed = true;
        }
        pthread_mutex_unlock(&fs->fl_lock);
        return mine;
}

void fs_fl_release(struct fs *fs, const struct hash128 *h) {
        size_t i, j;
        pthread_mutex_lock(&fs->fl_lock);
        if (fl_find(fs, h, &i)) {
                fs->fl_used[i] = false;
                fs->fl_n--;
                for (j = (i + 1) & (FL_CAP - 1); fs->fl_used[j]; j = (j + 1) & (FL_CAP - 1)) {
                        size_t k = fl_home(&fs->fl[j]);
                        if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
                                continue;
                        fs->fl[i] = fs->fl[j];
                        fs->fl_used[i] = true;
                        fs->fl_used[j] = false;
                        i = j;
                }
                pthread_cond_broadcast(&fs->fl_cond[fl_home(h) % FL_CONDS]);
        }
        pthread_mutex_unlock(&fs->fl_lock);
}

/* Claim h for fetching, after the caller missed it in the cache:
 * FS_CLAIM_OTHERS when someone is fetching it; FS_CLAIM_CACHED when a fetch
 * ended between that lookup and this claim (a fetch caches a block before
 * it releases it); else FS_CLAIM_MINE, with *claimed false when the table is
 * full (fetch it unclaimed). */
enum fs_claim fs_claim_block(struct fs *fs, const struct hash128 *h, bool *claimed) {
        if (!fl_claim(fs, h, claimed))
                return FS_CLAIM_OTHERS;
        if (*claimed && store_cache_contains(fs->cache, h)) {
                fs_fl_release(fs, h);
                *claimed = false;
                return FS_CLAIM_CACHED;
        }
        return FS_CLAIM_MINE;
}

void fs_fl_wait(struct fs *fs, const struct hash128 *h) {
        size_t pos;
        pthread_mutex_lock(&fs->fl_lock);
        while (fl_find(fs, h, &pos))
                pthread_cond_wait(&fs->fl_cond[fl_home(h) % FL_CONDS], &fs->fl_lock);
        pthread_mutex_unlock(&fs->fl_lock);
}
