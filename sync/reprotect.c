/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reprotect after failback: the failed-back VM runs on-prem now; protect
 * its disks again. Each disk's failback journal must say it was committed
 * at one point P of this VM and vault; the new point records that lineage
 * (docs/FORMAT.md "Points", "lineage"). Only what changed since P is sent:
 * the replicate reads the disks and stores only blocks the vault lacks
 * (those equal to P's are there already), or, with a change tracker's
 * ranges (--changed), reads only those and takes every other block's
 * checksum from P's manifest (replicate-changed.c, with P as the base).
 */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "sync.h"

/* Every disk's journal: committed, of this vault and VM, one point. */
static int lineage_point(const struct sync_reprotect_opts *o, char from[static POINT_ID_LEN + 1]) {
        const struct sync_replicate_opts *rep = o->rep;

        from[0] = 0;
        for (size_t i = 0; i < rep->n_disks; i++) {
                const char *path = rep->disks[i].path;
                struct sync_fb_status st;
                int r = sync_failback_status(o->state_dir, path, &st);

                if (r == -ENOENT || (r >= 0 && st.state == SYNC_FB_STATE_NONE)) {
                        log_error("%s: no failback recorded for it: reprotect follows a failback --commit "
                                  "(use replicate for a disk that was never failed back)", path);
                        return -ENOENT;
                }
                if (r < 0)
                        return log_error_errno(r, "%s: reading its failback journal failed", path), r;
                if (st.state != SYNC_FB_STATE_COMMITTED) {
                        char buf[128];
                        log_error("%s: %s, not committed: run failback --commit first", path,
                                  sync_fb_status_text(&st, buf, sizeof buf));
                        return -EINVAL;
                }
                if (strcmp(st.vm, rep->vm) != 0 || strcmp(st.disk, rep->disks[i].name) != 0 ||
                    (o->vault && strcmp(st.vault, o->vault) != 0)) {
                        log_error("%s: failed back as %s/%s from %s, not %s/%s from this vault", path, st.vm, st.disk,
                                  st.vault, rep->vm, rep->disks[i].name);
                        return -EINVAL;
                }
                if (from[0] && strcmp(from, st.point) != 0) {
                        log_error("%s: failed back to point %s, the other disks to %s: not one point", path, st.point,
                                  from);
                        return -EINVAL;
                }
                snprintf(from, POINT_ID_LEN + 1, "%s", st.point);
        }
        return 0;
}

int sync_reprotect(struct store *s, const struct sync_reprotect_opts *o, struct sync_replicate_result *ret,
                   char from[static POINT_ID_LEN + 1]) {
        struct sync_replicate_opts rep = *o->rep;
        struct ret_point *p = NULL;
        int r = lineage_point(o, from);

        if (r < 0)
                return r;
        r = ret_point_load(s, rep.vm, from, &p);
        if (r == -ENOENT)
                log_error("point %s/%s, which the disks were failed back from, is gone from the vault", rep.vm, from);
        else if (r < 0)
                log_error_errno(r, "reading point %s/%s failed", rep.vm, from);
        ret_point_free(p);
        if (r < 0)
                return r;
        rep.onprem_from = from;
        if (rep.changed)
                rep.base = from;
        return sync_replicate(s, &rep, ret);
}
