/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Vault metadata read from storage: the config, index segments and point
 * objects. The first input byte picks which one the rest of the input
 * replaces in a small valid vault; opening, listing, looking up, reading
 * and exporting must then fail cleanly or succeed, never crash. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "retention.h"
#include "store.h"
#include "fuzz.h"

static char dir[64];

static void cleanup(void) {
        char cmd[128];
        if (*dir) {
                snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
                if (system(cmd) != 0) {
                }
        }
}

static void put(const char *rel, const uint8_t *data, size_t size) {
        char path[256];
        int fd;
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
                if (write(fd, data, size) != (ssize_t)size) {
                }
                close(fd);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct store *s;
        struct ret_point **v = NULL, *p = NULL;
        size_t n = 0;
        char cmd[128];

        if (size < 1)
                return 0;
        if (!*dir) {
                static bool once;
                if (!once) {
                        atexit(cleanup);
                        log_set_level(LOG_ERR);
                        once = true;
                }
                snprintf(dir, sizeof dir, "/tmp/rpfs-fuzz-vault-%d", (int)getpid());
                if (store_init(dir, 65536, 1) < 0)
                        return 0;
                mkdir_p(strcat(strcpy(cmd, dir), "/index"), 0755);
                mkdir_p(strcat(strcpy(cmd, dir), "/points/vm"), 0755);
        }
        /* Reset the three files to a known shape, then damage one. */
        snprintf(cmd, sizeof cmd, "%s/index/0000000000000000.idx", dir);
        unlink(cmd);
        snprintf(cmd, sizeof cmd, "%s/points/vm/20261122T100000Z.json", dir);
        unlink(cmd);
        switch (data[0] % 3) {
        case 0: put("config.json", data + 1, size - 1); break;
        case 1: put("index/0000000000000000.idx", data + 1, size - 1); break;
        default: put("points/vm/20261122T100000Z.json", data + 1, size - 1); break;
        }
        if (store_open(dir, &s) >= 0) {
                struct hash128 h;
                memset(&h, 0x5a, sizeof h);
                (void)store_has(s, &h);
                if (ret_points_list(s, NULL, &v, &n) >= 0) {
                        for (size_t i = 0; i < n; i++)
                                for (size_t k = 0; k < v[i]->n_disks && k < 4; k++) {
                                        struct ret_manifest *m;
                                        if (ret_manifest_open(s, &v[i]->disks[k], &m) >= 0) {
                                                (void)ret_manifest_get(m, 0, &h);
                                                ret_manifest_free(m);
                                        }
                                }
                        ret_points_free(v, n);
                }
                store_free(s);
        }
        /* And the point parser on its own. */
        {
                char *text = malloc(size);
                if (text) {
                        memcpy(text, data + 1, size - 1);
                        text[size - 1] = 0;
                        if (ret_point_parse(text, &p) >= 0)
                                ret_point_free(p);
                        free(text);
                }
        }
        /* Restore a valid config for the next input. */
        if (data[0] % 3 == 0) {
                snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
                if (system(cmd) != 0) {
                }
                *dir = 0;
        }
        return 0;
}
