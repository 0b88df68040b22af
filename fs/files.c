/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The files open through the mount: tracked so that the daemon's exit frees
 * (and finalizes) those whose release a lazy unmount skipped, and so that a
 * process copying a point's disk into MOUNT/failback is paired with the file
 * it writes (the on-prem seed). */
#define FUSE_USE_VERSION 314
#include <fcntl.h>
#include <fuse.h>
#include <malloc.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fs_i.h"

/* ---- open files ---- */

void fs_file_track(struct fs *fs, struct fs_file *f) {
        pthread_mutex_lock(&fs->files_lock);
        f->prev = NULL;
        f->next = fs->files;
        if (fs->files)
                fs->files->prev = f;
        fs->files = f;
        pthread_mutex_unlock(&fs->files_lock);
}

void fs_file_untrack(struct fs *fs, struct fs_file *f) {
        pthread_mutex_lock(&fs->files_lock);
        if (f->prev)
                f->prev->next = f->next;
        else
                fs->files = f->next;
        if (f->next)
                f->next->prev = f->prev;
        pthread_mutex_unlock(&fs->files_lock);
}

pid_t fs_caller_tgid(void) {
        pid_t pid = fuse_get_context()->pid;
        char path[64], line[128];
        int tgid = (int)pid;
        FILE *fp;

        if (pid <= 0)
                return 0;
        /* The kernel names the calling thread; its process is what opens
         * both ends of a copy. */
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
        fp = fopen(path, "re");
        if (!fp)
                return pid;
        while (fgets(line, sizeof line, fp))
                if (sscanf(line, "Tgid: %d", &tgid) == 1)
                        break;
        fclose(fp);
        return (pid_t)tgid;
}

void fs_onprem_seed_attach(struct fs *fs, const char *rel, pid_t tgid) {
        struct fs_file *g;
        struct stat st;
        char what[512] = "";
        int fd, expect = 0;

        if (tgid <= 0)
                return;
        /* Opened before taking files_lock, which every open and release
         * takes: no I/O under it. Closed again when no disk takes it. */
        fd = openat(fs->onprem_fd, rel, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        if (fstat(fd, &st) < 0) {
                close(fd);
                return;
        }
        pthread_mutex_lock(&fs->files_lock);
        for (g = fs->files; g; g = g->next) /* newest first */
                if ((g->kind == FK_RAW || g->kind == FK_VHD) && g->tgid == tgid)
                        break;
        if (g && !(g->pt->seeds && g->pt->seeds[g->disk_index]) && atomic_load(&g->onprem_seed) == 0) {
                /* set before onprem_seed, which publishes them */
                g->seed_dev = (uint64_t)st.st_dev;
                g->seed_ino = (uint64_t)st.st_ino;
        }
        if (g && !(g->pt->seeds && g->pt->seeds[g->disk_index]) &&
            atomic_compare_exchange_strong(&g->onprem_seed, &expect, fd + 1)) {
                snprintf(what, sizeof what, "%s/%s %s", g->pt->p->vm, g->pt->p->id, g->d->name);
                fd = -1;
        }
        pthread_mutex_unlock(&fs->files_lock);
        if (fd >= 0)
                close(fd);
        else
                log_info("%s: process %d copies it to %s/%s: blocks that match there are read from it, not fetched",
                         what, (int)tgid, FS_ONPREM_NAME, rel);
}

void fs_file_free(struct fs_file *f) {
        int sfd = atomic_load(&f->onprem_seed);
        if (sfd > 0)
                close(sfd - 1);
        if (f->kind == FK_ONPREM)
                onprem_close(f);
        fs_point_unref(f->pt);
        pthread_mutex_destroy(&f->lock);
        free(f->text);
        free(f);
}

