/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sync_failback() through its public API on a small vault in a temporary
 * directory: retry profiles, error classes, delta/full/create, the journal
 * as --status reads it, prepare/complete/commit, and refusals.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "sync.h"

static int failures;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x); failures++; } } while (0)

#define BS 4096u
#define NB 300u

static char dir[256], vault[300], state[300], img1[300], img2[300], tgt[300];

static void fill(uint8_t *p, unsigned seed) {
        uint32_t x = seed * 2654435761u + 1;
        for (size_t i = 0; i < BS; i++) {
                x = x * 1103515245u + 12345u;
                p[i] = (uint8_t)(x >> 16);
        }
}

/* An image of NB blocks: every third zero, others seeded by their index
 * (plus `salt` for the blocks in `changed`). */
static void make_image(const char *path, const unsigned *changed, size_t n_changed, unsigned salt) {
        uint8_t buf[BS];
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        CHECK(fd >= 0);
        for (unsigned b = 0; b < NB; b++) {
                unsigned seed = b + 1;
                for (size_t k = 0; k < n_changed; k++)
                        if (changed[k] == b)
                                seed += salt * 1000;
                if (b % 3 == 0 && seed == b + 1)
                        memset(buf, 0, BS);
                else
                        fill(buf, seed);
                CHECK(pwrite_full(fd, buf, BS, (uint64_t)b * BS) == 0);
        }
        close(fd);
}

static bool same_files(const char *a, const char *b) {
        _cleanup_free_ char *x = NULL, *y = NULL;
        size_t lx, ly;
        if (read_file_all(a, &x, &lx) < 0 || read_file_all(b, &y, &ly) < 0)
                return false;
        return lx == ly && memcmp(x, y, lx) == 0;
}

static void copy_file(const char *from, const char *to) {
        _cleanup_free_ char *x = NULL;
        size_t l;
        int fd;
        CHECK(read_file_all(from, &x, &l) == 0);
        fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK(fd >= 0 && write_full(fd, x, l) == 0);
        close(fd);
}

static int run(struct store *s, enum sync_fb_action a, enum sync_fb_mode m, const char *point, bool create,
               const char *path, struct sync_fb_stats *st, enum sync_fb_fault *fault) {
        struct sync_fb_target t = { .disk = "disk0", .path = path };
        struct sync_failback_opts o = { .vault = vault, .vm = "vm", .point = point, .targets = &t, .n_targets = 1,
                                        .mode = m, .action = a, .create = create, .state_dir = state,
                                        .retry = RETRY_NONE, .threads = 2 };
        struct sync_failback_result res = { .targets = st };
        int r = sync_failback(s, &o, &res);
        if (fault)
                *fault = res.fault;
        return r;
}

static enum sync_fb_state state_of(const char *path, char *text, size_t len) {
        struct sync_fb_status st;
        int r = sync_failback_status(state, path, &st);
        CHECK(r == 0 || r == -ENOENT);
        sync_fb_status_text(&st, text, len);
        return st.state;
}

int main(void) {
        static const unsigned changed[] = { 1, 2, 50, 51, 52, 199, 298 };
        struct sync_disk_spec disk = { .name = "disk0" };
        struct sync_replicate_opts ro = { .vm = "vm", .disks = &disk, .n_disks = 1, .threads = 2 };
        struct sync_replicate_result rr;
        struct sync_fb_stats st;
        enum sync_fb_fault fault;
        struct store *s = NULL;
        char text[256], p1[POINT_ID_LEN + 1], p2[POINT_ID_LEN + 1];

        /* retry profiles and error classes */
        CHECK(retry_delay(RETRY_DEFAULT, 1) == 1 && retry_delay(RETRY_DEFAULT, 3) == 4);
        CHECK(retry_delay(RETRY_DEFAULT, 6) == 30 && retry_delay(RETRY_DEFAULT, 7) < 0);
        CHECK(retry_delay(RETRY_SITE_RECOVERY, 1) == 60 && retry_delay(RETRY_SITE_RECOVERY, 4) == 480);
        CHECK(retry_delay(RETRY_SITE_RECOVERY, 5) == 600 && retry_delay(RETRY_SITE_RECOVERY, 6) == 1800);
        CHECK(retry_delay(RETRY_SITE_RECOVERY, 100) == 1800);
        CHECK(retry_delay(RETRY_NONE, 1) < 0);
        CHECK(error_transient(-EIO) && error_transient(-ENOSPC) && error_transient(-ENOMEM));
        CHECK(error_transient(-ETIMEDOUT) && error_transient(-ECONNRESET));
        CHECK(!error_transient(-EACCES) && !error_transient(-EBADMSG) && !error_transient(-ENOENT));

        snprintf(dir, sizeof dir, "/tmp/rpfs-test-failback.%d", (int)getpid());
        CHECK(mkdir_p(dir, 0700) == 0);
        snprintf(vault, sizeof vault, "%s/vault", dir);
        snprintf(state, sizeof state, "%s/state", dir);
        snprintf(img1, sizeof img1, "%s/v1.img", dir);
        snprintf(img2, sizeof img2, "%s/v2.img", dir);
        snprintf(tgt, sizeof tgt, "%s/target.img", dir);
        make_image(img1, NULL, 0, 0);
        make_image(img2, changed, ELEMENTSOF(changed), 7);
        log_set_level(LOG_ERR);

        CHECK(store_init(vault, BS, 1) == 0);
        CHECK(store_open(vault, &s) == 0);
        disk.path = img1;
        ro.time = 1795340700;
        CHECK(sync_replicate(s, &ro, &rr) == 0);
        snprintf(p1, sizeof p1, "%s", rr.id);
        disk.path = img2;
        ro.time += 900;
        CHECK(sync_replicate(s, &ro, &rr) == 0);
        snprintf(p2, sizeof p2, "%s", rr.id);
        store_free(s);
        CHECK(store_open(vault, &s) == 0);

        /* delta */
        copy_file(img1, tgt);
        CHECK(state_of(tgt, text, sizeof text) == SYNC_FB_STATE_NONE);
        CHECK(run(s, SYNC_FB_DRY_RUN, SYNC_FB_DELTA, NULL, false, tgt, &st, NULL) == 0);
        CHECK(st.blocks_fetched == ELEMENTSOF(changed) && same_files(tgt, img1));
        CHECK(run(s, SYNC_FB_SYNC, SYNC_FB_DELTA, NULL, false, tgt, &st, NULL) == 0);
        CHECK(same_files(tgt, img2));
        CHECK(st.blocks_scanned == NB && st.blocks_written == ELEMENTSOF(changed));
        CHECK(st.blocks_fetched + st.blocks_local == ELEMENTSOF(changed));
        CHECK(strcmp(st.point, p2) == 0);
        CHECK(state_of(tgt, text, sizeof text) == SYNC_FB_STATE_CONSISTENT);
        CHECK(strstr(text, "consistent at point") && strstr(text, p2));
        /* nothing to do the second time */
        CHECK(run(s, SYNC_FB_SYNC, SYNC_FB_DELTA, NULL, false, tgt, &st, NULL) == 0);
        CHECK(st.blocks_written == 0 && strcmp(st.method, "none") == 0);

        /* full back to point 1 */
        CHECK(run(s, SYNC_FB_SYNC, SYNC_FB_FULL, p1, false, tgt, &st, NULL) == 0);
        CHECK(same_files(tgt, img1) && st.blocks_scanned == 0);

        /* prepare at 1, complete to 2, commit */
        CHECK(run(s, SYNC_FB_PREPARE, SYNC_FB_DELTA, p1, false, tgt, &st, NULL) == 0);
        CHECK(state_of(tgt, text, sizeof text) == SYNC_FB_STATE_CONSISTENT && strstr(text, "prepared"));
        CHECK(run(s, SYNC_FB_COMPLETE, SYNC_FB_DELTA, NULL, false, tgt, &st, NULL) == 0);
        CHECK(same_files(tgt, img2) && st.blocks_scanned == 0 && st.blocks_written == ELEMENTSOF(changed));
        CHECK(run(s, SYNC_FB_COMMIT, SYNC_FB_DELTA, NULL, false, tgt, &st, NULL) == 0);
        CHECK(state_of(tgt, text, sizeof text) == SYNC_FB_STATE_COMMITTED && strstr(text, "committed"));

        /* a new file */
        {
                char nf[320];
                snprintf(nf, sizeof nf, "%s/new.img", dir);
                CHECK(run(s, SYNC_FB_SYNC, SYNC_FB_DELTA, NULL, false, nf, &st, &fault) < 0);
                CHECK(fault == SYNC_FB_BAD_TARGET && access(nf, F_OK) < 0);
                CHECK(run(s, SYNC_FB_SYNC, SYNC_FB_DELTA, NULL, true, nf, &st, NULL) == 0);
                CHECK(same_files(nf, img2) && strcmp(st.method, "full") == 0);
        }

        /* refusals and their classes */
        CHECK(run(s, SYNC_FB_SYNC, SYNC_FB_DELTA, "20261122T235900Z", false, tgt, &st, &fault) < 0);
        CHECK(fault == SYNC_FB_NOT_FOUND);
        {
                char small[320];
                snprintf(small, sizeof small, "%s/small.img", dir);
                copy_file(img1, small);
                CHECK(truncate(small, (off_t)(NB - 1) * BS) == 0);
                CHECK(run(s, SYNC_FB_SYNC, SYNC_FB_DELTA, NULL, false, small, &st, &fault) < 0);
                CHECK(fault == SYNC_FB_BAD_TARGET);
                CHECK(run(s, SYNC_FB_COMPLETE, SYNC_FB_DELTA, NULL, false, small, &st, &fault) < 0);
                CHECK(fault == SYNC_FB_BAD_TARGET);
        }
        store_free(s);

        {
                char cmd[400];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
                CHECK(system(cmd) == 0);
        }
        return failures ? 1 : 0;
}
