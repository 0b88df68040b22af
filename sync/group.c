/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Replicate of a replication group: one point of every member, one ID,
 * then the group's commit object (retention/group.c). Everything that can
 * be checked is checked before the first member is written (the members
 * against the group's record, free IDs, readable disks), so a refusal
 * leaves the vault unchanged; a crash between members leaves plain member
 * points and no group point.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "sync.h"

/* The group's record, created from the members given when there is none
 * (the first replicate records them); else they must be its members. */
static int group_members(struct store *s, const char *group, const struct sync_group_member *m, size_t n,
                         struct ret_group **ret) {
        _cleanup_free_ const char **vms = calloc(MAX(n, 1), sizeof *vms);
        int r;

        if (!vms)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                vms[i] = m[i].vm;
        r = ret_group_load(s, group, ret);
        if (r == -ENOENT) {
                r = ret_group_create(s, group, vms, n);
                if (r < 0 && r != -EEXIST)
                        return log_error_errno(r, "group %s: recording its members failed", group), r;
                r = ret_group_load(s, group, ret);
        }
        if (r < 0)
                return log_error_errno(r, "group %s: reading its members failed", group), r;
        for (size_t i = 0; i < n; i++)
                if (!ret_group_has(*ret, m[i].vm)) {
                        log_error("group %s: %s is not a member", group, m[i].vm);
                        r = -EINVAL;
                }
        if (r >= 0 && n != (*ret)->n_members) {
                for (size_t k = 0; k < (*ret)->n_members; k++) {
                        bool given = false;
                        for (size_t i = 0; i < n; i++)
                                given |= strcmp(m[i].vm, (*ret)->members[k]) == 0;
                        if (!given)
                                log_error("group %s: member %s has no --vm (every member replicates at once)", group,
                                          (*ret)->members[k]);
                }
                r = -EINVAL;
        }
        if (r < 0) {
                ret_group_free(*ret);
                *ret = NULL;
        }
        return r;
}

/* Nothing written yet: every member's ID free, every disk readable. */
static int group_precheck(struct store *s, const struct sync_group_member *m, size_t n, const char *id) {
        for (size_t i = 0; i < n; i++) {
                struct ret_point *p;
                int r = ret_point_load(s, m[i].vm, id, &p);
                if (r >= 0) {
                        ret_point_free(p);
                        log_error("point %s/%s already exists", m[i].vm, id);
                        return -EEXIST;
                }
                if (r != -ENOENT)
                        return log_error_errno(r, "reading point %s/%s failed", m[i].vm, id), r;
                if (m[i].n_disks == 0) {
                        log_error("--vm %s: no --disk", m[i].vm);
                        return -EINVAL;
                }
                for (size_t k = 0; k < m[i].n_disks; k++)
                        if (access(m[i].disks[k].path, R_OK) < 0) {
                                r = -errno;
                                log_error_errno(r, "%s: cannot be read", m[i].disks[k].path);
                                return r;
                        }
        }
        return 0;
}

/* Tests: RPFS_TEST_GROUP_PAUSE=FILE stops after the first member's
 * commit: FILE is created, then the process waits to be killed. */
static void test_pause(void) {
        const char *f = getenv("RPFS_TEST_GROUP_PAUSE");
        if (!f || !*f)
                return;
        (void)write_file_atomic(f, "paused\n", 7, false);
        for (;;)
                pause();
}

int sync_replicate_group(struct store *s, const char *group, const struct sync_group_member *m, size_t n,
                         const struct sync_replicate_opts *common, struct sync_replicate_result *ret) {
        struct ret_group *g = NULL;
        char id[POINT_ID_LEN + 1];
        int r;

        point_id_format(common->time, id);
        r = group_members(s, group, m, n, &g);
        if (r < 0)
                return r;
        r = group_precheck(s, m, n, id);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                struct sync_replicate_opts o = *common;

                o.vm = m[i].vm;
                o.disks = m[i].disks;
                o.n_disks = m[i].n_disks;
                o.group = group;
                r = sync_replicate(s, &o, &ret[i]);
                if (r == -EEXIST)
                        log_error("point %s/%s already exists", o.vm, id);
                if (r >= 0 && i == 0 && n > 1)
                        test_pause();
        }
        if (r >= 0) {
                r = ret_group_point_commit(s, g, id, common->time, common->app);
                if (r < 0)
                        log_error_errno(r, "group %s: committing group point %s failed", group, id);
        }
        ret_group_free(g);
        return r;
}
