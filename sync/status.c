/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * RPO health of a vault (rpfs status). Everything here is read-only: the
 * points catalog gives each VM's points (their times come from the point
 * IDs), the store's listing and index give the vault's totals, the
 * store's clock the time the ages are measured against (a host whose clock
 * is off would otherwise see points from the future or late ones that are
 * not), and the journal directory the failbacks of this vault.
 */
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sync.h"

#define MINUTE 60L
#define SKEW_MAX 60L /* seconds of clock skew that are reported */

/* Site Recovery's failback policy: RPO threshold 15 minutes, an
 * app-consistent point every 60 minutes, points kept for 24 hours. */

const char *sync_status_level_name(enum sync_status_level l) {
        static const char *const names[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };
        return (unsigned)l < ELEMENTSOF(names) ? names[l] : "UNKNOWN";
}

/* The thresholds for vm: its policy's (ret_policy_get: the VM's override,
 * the vault default, or Site Recovery's defaults), then what the command
 * line overrides. The one place that decides them; vault_default is read
 * once per status. Errors: those of
 * reading the policy (a vault error, -EBADMSG a damaged policy object). */
static int status_thresholds(struct store *s, const char *vm, const struct ret_policy *vault_default,
                             const struct sync_status_thresholds *override, struct sync_status_thresholds *out) {
        struct ret_policy pol;
        int r = ret_policy_get_with(s, vm, vault_default, &pol);

        if (r < 0)
                return r;
        *out = (struct sync_status_thresholds){ .rpo = pol.rpo, .app = pol.app_frequency,
                                                .retention = pol.retention };
        if (override->rpo > 0)
                out->rpo = override->rpo;
        if (override->app > 0)
                out->app = override->app;
        if (override->retention > 0)
                out->retention = override->retention;
        out->warning = override->warning > 0 ? override->warning : out->rpo;
        out->critical = override->critical > 0 ? override->critical : 2 * out->warning;
        return 0;
}

static void set_level(struct sync_status_vm *v, enum sync_status_level l, const char *fmt, ...) _printf_(3, 4);
static void set_level(struct sync_status_vm *v, enum sync_status_level l, const char *fmt, ...) {
        va_list ap;

        if (l < v->level || (l == v->level && *v->why))
                return;
        v->level = l;
        va_start(ap, fmt);
        vsnprintf(v->why, sizeof v->why, fmt, ap);
        va_end(ap);
}

/* "40m", "2h05m", "3d" for messages. */
static const char *fmt_age(long s, char *buf, size_t len) {
        if (s < 0)
                s = 0;
        if (s < 120)
                snprintf(buf, len, "%lds", s);
        else if (s < 2 * 3600)
                snprintf(buf, len, "%ldm", s / 60);
        else if (s < 2 * 86400)
                snprintf(buf, len, "%ldh%02ldm", s / 3600, s / 60 % 60);
        else
                snprintf(buf, len, "%ldd", s / 86400);
        return buf;
}

/* Fill v from its points v[0..n) (sorted by ID, oldest first). */
static void vm_judge(struct sync_status_vm *v, struct ret_point **p, size_t n, time_t now) {
        char a[24], b[24];

        v->n_points = n;
        v->age = v->app_age = v->oldest_age = -1;
        if (n == 0) {
                set_level(v, SYNC_STATUS_CRITICAL, "no recovery point");
                return;
        }
        snprintf(v->newest, sizeof v->newest, "%s", p[n - 1]->id);
        if (p[n - 1]->onprem_from)
                snprintf(v->onprem_from, sizeof v->onprem_from, "%s", p[n - 1]->onprem_from);
        snprintf(v->oldest, sizeof v->oldest, "%s", p[0]->id);
        v->age = (long)(now - p[n - 1]->time);
        v->oldest_age = (long)(now - p[0]->time);
        for (size_t i = n; i-- > 0;)
                if (p[i]->app) {
                        snprintf(v->newest_app, sizeof v->newest_app, "%s", p[i]->id);
                        v->app_age = (long)(now - p[i]->time);
                        break;
                }
        for (size_t i = 0; i < n; i++)
                if (now - p[i]->time > v->th.retention)
                        v->n_past_retention++;
        if (v->age > v->th.critical)
                set_level(v, SYNC_STATUS_CRITICAL, "newest point %s old (critical %s)", fmt_age(v->age, a, sizeof a),
                          fmt_age(v->th.critical, b, sizeof b));
        else if (v->age > v->th.warning)
                set_level(v, SYNC_STATUS_WARNING, "newest point %s old (RPO %s)", fmt_age(v->age, a, sizeof a),
                          fmt_age(v->th.warning, b, sizeof b));
        else if (v->app_age > v->th.app + v->th.warning)
                set_level(v, SYNC_STATUS_WARNING, "newest app-consistent point %s old (every %s)",
                          fmt_age(v->app_age, a, sizeof a), fmt_age(v->th.app, b, sizeof b));
        if (v->level == SYNC_STATUS_OK)
                snprintf(v->why, sizeof v->why, "newest point %s old", fmt_age(v->age, a, sizeof a));
}

/* ---- failback journals of this vault ---- */

/* Whether a journal's vault is the one given: the same string, or the
 * same directory. */
static bool same_vault(const char *a, const char *b) {
        char ra[PATH_MAX], rb[PATH_MAX];

        if (strcmp(a, b) == 0)
                return true;
        if (strncmp(a, "azure://", 8) == 0 || strncmp(b, "azure://", 8) == 0)
                return false;
        return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

static struct sync_status_vm *vm_find(struct sync_status *st, const char *vm) {
        for (size_t i = 0; i < st->n_vms; i++)
                if (strcmp(st->vms[i].vm, vm) == 0)
                        return &st->vms[i];
        return NULL;
}

/* One journal file: count its failback against its VM. */
static void journal_one(struct sync_status *st, const struct sync_status_opts *o, const char *path) {
        _cleanup_free_ char *text = NULL;
        const char *target = NULL, *vault = NULL;
        struct sync_fb_status fs;
        struct sync_status_vm *v;
        json_error_t err;
        json_t *j;

        if (read_file_all(path, &text, NULL) < 0 || !(j = json_loads(text, 0, &err)))
                return;
        if (json_unpack(j, "{s:s, s:s}", "target", &target, "vault", &vault) < 0 || !same_vault(vault, o->vault) ||
            sync_failback_status(o->state_dir, target, &fs) < 0 || !(v = vm_find(st, fs.vm))) {
                json_decref(j);
                return;
        }
        json_decref(j);
        if (fs.state == SYNC_FB_STATE_INTERRUPTED) {
                v->fb_interrupted++;
                set_level(v, SYNC_STATUS_WARNING, "failback of %s interrupted (%u%% to point %s): rerun it", fs.disk,
                          fs.percent, fs.point);
        } else if (fs.state == SYNC_FB_STATE_RUNNING) {
                v->fb_running++;
        } else if (fs.state == SYNC_FB_STATE_CONSISTENT && strcmp(fs.op, "prepare") == 0) {
                v->fb_prepared++;
        }
}

static void journals_scan(struct sync_status *st, const struct sync_status_opts *o) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *e;

        if (!o->state_dir || !o->vault || !(d = opendir(o->state_dir)))
                return;
        while ((e = readdir(d))) {
                size_t n = strlen(e->d_name);
                char path[PATH_MAX];

                if (e->d_name[0] == '.' || n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
                        continue;
                if (snprintf(path, sizeof path, "%s/%s", o->state_dir, e->d_name) < (int)sizeof path)
                        journal_one(st, o, path);
        }
}

/* ---- the vault ---- */

static int pack_cb(void *userdata, const char *name, uint64_t size) {
        struct sync_status *st = userdata;
        size_t n = strlen(name);

        if (n > 5 && strcmp(name + n - 5, ".pack") == 0) {
                st->packs++;
                st->pack_bytes += size;
        }
        return 0;
}

static void clock_read(struct store *s, struct sync_status *st) {
        long skew;
        int r = store_skew(s, &skew);

        st->now = time(NULL);
        if (r < 0) {
                log_debug("the store's clock could not be read: %s", strerror(-r));
                return;
        }
        st->have_clock = true;
        st->skew = skew;
        st->now -= skew;
}

/* The VMs to report: those asked for, else every VM with a point. */
static int vms_choose(struct sync_status *st, const struct sync_status_opts *o, struct ret_point **p, size_t n) {
        size_t cap = o->vms ? o->n_vms : n;

        st->vms = calloc(MAX(cap, 1), sizeof *st->vms);
        if (!st->vms)
                return -ENOMEM;
        if (o->vms) {
                for (size_t i = 0; i < o->n_vms; i++)
                        if (!vm_find(st, o->vms[i]))
                                snprintf(st->vms[st->n_vms++].vm, sizeof st->vms[0].vm, "%s", o->vms[i]);
                return 0;
        }
        for (size_t i = 0; i < n; i++)
                if (i == 0 || strcmp(p[i]->vm, p[i - 1]->vm) != 0)
                        snprintf(st->vms[st->n_vms++].vm, sizeof st->vms[0].vm, "%s", p[i]->vm);
        return 0;
}

int sync_status_get(struct store *s, const struct sync_status_opts *o, struct sync_status **ret) {
        struct sync_status *st = calloc(1, sizeof *st);
        struct ret_point **p = NULL;
        struct ret_policy vault_default;
        size_t n = 0;
        int r;

        if (!st)
                return -ENOMEM;
        r = ret_points_list(s, NULL, &p, &n);
        if (r >= 0)
                r = store_list(s, "packs/", pack_cb, st);
        if (r >= 0)
                r = vms_choose(st, o, p, n);
        if (r < 0) {
                ret_points_free(p, n);
                sync_status_free(st);
                return r;
        }
        clock_read(s, st);
        store_index_totals(s, &st->index);
        st->n_points = n;
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < p[i]->n_disks; k++)
                        st->logical_bytes += p[i]->disks[k].data_blocks * p[i]->block_size;
        r = ret_policy_get(s, NULL, &vault_default);
        if (r < 0) {
                ret_points_free(p, n);
                sync_status_free(st);
                return r;
        }
        for (size_t k = 0; k < st->n_vms; k++) {
                struct sync_status_vm *v = &st->vms[k];
                size_t first = 0, count = 0;

                while (first < n && strcmp(p[first]->vm, v->vm) != 0)
                        first++;
                while (first + count < n && strcmp(p[first + count]->vm, v->vm) == 0)
                        count++;
                r = status_thresholds(s, v->vm, &vault_default, &o->override, &v->th);
                if (r < 0) {
                        ret_points_free(p, n);
                        sync_status_free(st);
                        return r;
                }
                vm_judge(v, p + first, count, st->now);
        }
        ret_points_free(p, n);
        journals_scan(st, o);
        /* Unreadable notes count as never recorded: they say nothing. */
        (void)ret_note_get(s, "prune", &st->last_prune);
        (void)ret_note_get(s, "check", &st->last_check);
        for (size_t k = 0; k < st->n_vms; k++)
                st->level = MAX(st->level, st->vms[k].level);
        if (st->last_check.damaged)
                st->level = SYNC_STATUS_CRITICAL;
        if (st->have_clock && labs(st->skew) > SKEW_MAX)
                st->level = MAX(st->level, SYNC_STATUS_WARNING);
        *ret = st;
        return 0;
}

void sync_status_free(struct sync_status *st) {
        if (!st)
                return;
        free(st->vms);
        free(st);
}
