/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A failback journal read back (fb_journal_load), as a crash, a full disk
 * or another program may have left it in the state directory: it must load
 * or fail with -EBADMSG, never crash. A journal that loads is saved and
 * loaded again: the second load must give the same fields (what failback
 * resumes from must not drift across a save). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "failback_i.h"
#include "fuzz.h"

static char dir[64];

static void cleanup(void) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (*dir && system(cmd) != 0) {
        }
}

static void same(const struct fb_journal *a, const struct fb_journal *b) {
        if (a->state != b->state || strcmp(a->vault, b->vault) || strcmp(a->vm, b->vm) ||
            strcmp(a->disk, b->disk) || strcmp(a->op, b->op) || strcmp(a->method, b->method) ||
            strcmp(a->pass, b->pass) || strcmp(a->point, b->point) || strcmp(a->base, b->base) ||
            a->created != b->created || a->block_size != b->block_size || a->disk_size != b->disk_size ||
            a->n_blocks != b->n_blocks || a->done_blocks != b->done_blocks || a->percent != b->percent ||
            a->fp.valid != b->fp.valid || a->fp.n != b->fp.n || a->fp.size != b->fp.size ||
            a->fp.sectors_written != b->fp.sectors_written || strcmp(a->fp.boot_id, b->fp.boot_id) ||
            memcmp(a->fp.h, b->fp.h, sizeof a->fp.h) || memcmp(a->fp.blk, b->fp.blk, sizeof a->fp.blk))
                abort();
        if (a->done_blocks > a->n_blocks)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct fb_journal j, k;
        int fd, r;

        if (!*dir) {
                snprintf(dir, sizeof dir, "/tmp/rpfs-fuzz-journal-%d", (int)getpid());
                if (mkdir_p(dir, 0700) < 0)
                        abort();
                atexit(cleanup);
                log_set_level(LOG_ERR);
        }
        if (fb_journal_init(&j, dir, "/dev/fuzz-target") < 0)
                abort();
        fd = open(j.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, data, size) != (ssize_t)size)
                abort();
        close(fd);
        r = fb_journal_load(&j);
        if (r < 0) {
                if (r != -EBADMSG || j.state != FB_J_NONE)
                        abort();
                return 0;
        }
        if (fb_journal_save(&j) < 0)
                abort();
        if (fb_journal_init(&k, dir, "/dev/fuzz-target") < 0 || fb_journal_load(&k) < 0)
                abort();
        same(&j, &k);
        return 0;
}
