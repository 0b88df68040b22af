/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hooks around a replicate (sync.h, "hooks"): the user's program quiesces
 * the guest (freeze), takes a snapshot whose paths may replace the live
 * disks (snapshot), resumes the guest (thaw), and hears how it ended (done
 * or failed). The guest is frozen only from freeze to thaw, which is the
 * snapshot's instant; the copy reads the snapshot afterwards.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "sync.h"

#define HOOK_OUT_MAX (64 << 10) /* what a phase may print */

struct hook_run {
        const struct sync_hook_opts *h;
        const struct sync_replicate_opts *o;
        char point[POINT_ID_LEN + 1];
        char *disks; /* RPFS_DISKS */
};

/* The child: its environment, then the program. Never returns. */
static void hook_exec(const struct hook_run *k, const char *phase, int out_fd) {
        if (out_fd >= 0 && dup2(out_fd, STDOUT_FILENO) < 0)
                _exit(127);
        if (setenv("RPFS_VM", k->o->vm, 1) < 0 || setenv("RPFS_POINT", k->point, 1) < 0 ||
            setenv("RPFS_DISKS", k->disks, 1) < 0 || setenv("RPFS_PHASE", phase, 1) < 0)
                _exit(127);
        /* A vault's passphrases are the key: never handed to a hook. */
        unsetenv("RPFS_PASSPHRASE");
        unsetenv("RPFS_NEW_PASSPHRASE");
        execl(k->h->script, k->h->script, phase, (char *)NULL);
        fprintf(stderr, "rpfs: hook %s: %s\n", k->h->script, strerror(errno));
        _exit(127);
}

/* Read fd to its end into *out (NUL-terminated, at most HOOK_OUT_MAX). */
static int read_all(int fd, char **out) {
        size_t len = 0;
        char *buf = malloc(HOOK_OUT_MAX + 1);

        if (!buf)
                return -ENOMEM;
        for (;;) {
                char sink[4096];
                ssize_t n = len < HOOK_OUT_MAX ? read(fd, buf + len, HOOK_OUT_MAX - len) : read(fd, sink, sizeof sink);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (len < HOOK_OUT_MAX)
                        len += (size_t)n;
        }
        buf[len] = 0;
        *out = buf;
        return 0;
}

/* Run one phase; its standard output into *out when out is not NULL.
 * 0 when it exited 0, else -ECHILD (logged). */
static int hook_phase(const struct hook_run *k, const char *phase, char **out) {
        int p[2] = { -1, -1 }, status, r = 0;
        pid_t pid;

        if (out && pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        fflush(stdout);
        pid = fork();
        if (pid < 0) {
                r = -errno;
                if (out) {
                        close(p[0]);
                        close(p[1]);
                }
                return r;
        }
        if (pid == 0)
                hook_exec(k, phase, out ? p[1] : -1);
        if (out) {
                close(p[1]);
                r = read_all(p[0], out);
                close(p[0]);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (r < 0)
                return r;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (WIFEXITED(status))
                log_warn("hook %s %s: exit status %d", k->h->script, phase, WEXITSTATUS(status));
        else
                log_warn("hook %s %s: killed by signal %d", k->h->script, phase, WTERMSIG(status));
        return -ECHILD;
}

/* RPFS_DISKS: "NAME=PATH NAME=PATH". */
static char *disks_env(const struct sync_replicate_opts *o) {
        size_t len = 1;
        char *s;

        for (size_t i = 0; i < o->n_disks; i++)
                len += strlen(o->disks[i].name) + strlen(o->disks[i].path) + 2;
        s = calloc(1, len);
        if (!s)
                return NULL;
        for (size_t i = 0; i < o->n_disks; i++)
                sprintf(s + strlen(s), "%s%s=%s", i ? " " : "", o->disks[i].name, o->disks[i].path);
        return s;
}

/* What snapshot printed, applied to disks (a copy of o->disks): "NAME=PATH"
 * lines, or one bare PATH for the first disk. Paths point into out. */
static int snapshot_paths(char *out, struct sync_disk_spec *disks, size_t n) {
        char *save = NULL;

        for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *eq = strchr(line, '=');
                bool found = false;

                if (!*line)
                        continue;
                if (!eq || line[0] == '/') {
                        disks[0].path = line;
                        log_info("hook: %s is read from %s", disks[0].name, line);
                        continue;
                }
                *eq = 0;
                for (size_t i = 0; i < n; i++)
                        if (strcmp(disks[i].name, line) == 0) {
                                disks[i].path = eq + 1;
                                found = true;
                                log_info("hook: %s is read from %s", line, eq + 1);
                        }
                if (!found) {
                        log_error("hook snapshot: no disk named '%s'", line);
                        return -EINVAL;
                }
        }
        return 0;
}

/* freeze, snapshot, thaw: the disks to read into disks, whether the point
 * may be app-consistent into *app. */
static int hook_quiesce(struct hook_run *k, struct sync_disk_spec *disks, char **snap_out, bool *app) {
        int frozen = hook_phase(k, "freeze", NULL), r;

        *app = k->o->app && frozen == 0;
        if (frozen < 0 && k->h->required) {
                log_error("hook %s freeze failed and --app-consistent=required: no point stored", k->h->script);
                hook_phase(k, "thaw", NULL);
                return -EPERM;
        }
        if (frozen < 0 && k->o->app)
                log_warn("hook %s freeze failed: the point is stored as crash-consistent", k->h->script);
        r = hook_phase(k, "snapshot", snap_out);
        hook_phase(k, "thaw", NULL);
        if (r < 0) {
                log_error("hook %s snapshot failed: no point stored", k->h->script);
                return -ECANCELED;
        }
        return snapshot_paths(*snap_out, disks, k->o->n_disks);
}

int sync_replicate_hooked(struct store *s, const struct sync_replicate_opts *o, const struct sync_hook_opts *h,
                          struct sync_replicate_result *ret, bool *ret_app) {
        struct hook_run k = { .h = h, .o = o };
        struct sync_replicate_opts o2 = *o;
        _cleanup_free_ struct sync_disk_spec *disks = NULL;
        _cleanup_free_ char *snap_out = NULL;
        int r;

        *ret_app = o->app;
        if (!h || !h->script)
                return sync_replicate(s, o, ret);
        point_id_format(o->time, k.point);
        k.disks = disks_env(o);
        disks = calloc(MAX(o->n_disks, 1), sizeof *disks);
        if (!k.disks || !disks) {
                free(k.disks);
                return -ENOMEM;
        }
        memcpy(disks, o->disks, o->n_disks * sizeof *disks);
        r = hook_quiesce(&k, disks, &snap_out, &o2.app);
        if (r >= 0) {
                o2.disks = disks;
                r = sync_replicate(s, &o2, ret);
                *ret_app = o2.app;
        }
        hook_phase(&k, r >= 0 ? "done" : "failed", NULL);
        free(k.disks);
        return r;
}
