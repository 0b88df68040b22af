/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The retention policy objects: "policy/default.json" and
 * "policy/vm/<vm>.json", each a whole policy (docs/FORMAT.md "Policy").
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "retention.h"

void ret_policy_default(struct ret_policy *ret) {
        *ret = (struct ret_policy){
                .retention = 24 * 3600,
                .app_frequency = 60 * 60,
                .rpo = 15 * 60,
                .thin = RET_THIN_SITE_RECOVERY,
                .source = RET_POLICY_BUILTIN,
        };
}

static bool policy_valid(const struct ret_policy *p) {
        if (p->retention == 0 || p->app_frequency == 0 || p->rpo == 0)
                return false;
        if (p->thin == RET_THIN_KEEP)
                return p->keep_last || p->keep_hourly || p->keep_daily || p->keep_weekly || p->keep_monthly;
        return p->thin == RET_THIN_SITE_RECOVERY;
}

char *ret_policy_format(const struct ret_policy *p) {
        json_t *o;
        char *text;

        o = json_pack("{s:i, s:I, s:I, s:I, s:s, s:{s:I, s:I, s:I, s:I, s:I}, s:s?}", "format", RET_POLICY_FORMAT,
                      "retention_seconds", (json_int_t)p->retention, "app_frequency_seconds",
                      (json_int_t)p->app_frequency, "rpo_seconds", (json_int_t)p->rpo, "thin",
                      p->thin == RET_THIN_KEEP ? "keep" : "site-recovery", "keep", "last",
                      (json_int_t)p->keep_last, "hourly", (json_int_t)p->keep_hourly, "daily",
                      (json_int_t)p->keep_daily, "weekly", (json_int_t)p->keep_weekly, "monthly",
                      (json_int_t)p->keep_monthly, "group", *p->group ? p->group : NULL);
        if (!o)
                return NULL;
        text = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        json_decref(o);
        return text;
}

static bool u32_of(json_int_t v, uint32_t *ret) {
        if (v < 0 || v > UINT32_MAX)
                return false;
        *ret = (uint32_t)v;
        return true;
}

int ret_policy_parse(const char *text, struct ret_policy *ret) {
        json_error_t err;
        json_t *o = json_loads(text, 0, &err), *jgroup = NULL;
        json_int_t fmt, rt, app, rpo, k[5] = { 0 };
        const char *thin;
        struct ret_policy p;
        int r = -EBADMSG;

        if (!o)
                return -EBADMSG;
        ret_policy_default(&p);
        if (json_unpack(o, "{s:I}", "format", &fmt) < 0)
                goto out;
        if (fmt > RET_POLICY_FORMAT) {
                r = -EPROTONOSUPPORT;
                goto out;
        }
        if (json_unpack(o, "{s:I, s:I, s:I, s:s, s?{s?I, s?I, s?I, s?I, s?I}, s?o}", "retention_seconds", &rt,
                        "app_frequency_seconds", &app, "rpo_seconds", &rpo, "thin", &thin, "keep", "last", &k[0],
                        "hourly", &k[1], "daily", &k[2], "weekly", &k[3], "monthly", &k[4], "group", &jgroup) < 0)
                goto out;
        if (!u32_of(rt, &p.retention) || !u32_of(app, &p.app_frequency) || !u32_of(rpo, &p.rpo) ||
            !u32_of(k[0], &p.keep_last) || !u32_of(k[1], &p.keep_hourly) || !u32_of(k[2], &p.keep_daily) ||
            !u32_of(k[3], &p.keep_weekly) || !u32_of(k[4], &p.keep_monthly))
                goto out;
        if (strcmp(thin, "keep") == 0)
                p.thin = RET_THIN_KEEP;
        else if (strcmp(thin, "site-recovery") != 0)
                goto out;
        if (jgroup && json_is_string(jgroup))
                snprintf(p.group, sizeof p.group, "%s", json_string_value(jgroup));
        else if (jgroup && !json_is_null(jgroup))
                goto out;
        if (!policy_valid(&p))
                goto out;
        *ret = p;
        r = 0;
out:
        json_decref(o);
        return r;
}

static int policy_name(const char *vm, char *buf, size_t len) {
        if (!vm) {
                snprintf(buf, len, "policy/default.json");
                return 0;
        }
        if (!name_is_valid(vm))
                return -EINVAL;
        snprintf(buf, len, "policy/vm/%s.json", vm);
        return 0;
}

/* Load one stored policy: 0, -ENOENT none stored, or an error. */
static int policy_load(struct store *s, const char *vm, struct ret_policy *ret) {
        _cleanup_free_ char *text = NULL;
        char name[128];
        int r;

        r = policy_name(vm, name, sizeof name);
        if (r < 0)
                return r;
        r = store_get_object(s, name, &text, NULL);
        if (r == -ENOTDIR)
                r = -ENOENT;
        if (r < 0)
                return r;
        r = ret_policy_parse(text, ret);
        if (r < 0)
                return r;
        ret->source = vm ? RET_POLICY_VM : RET_POLICY_VAULT;
        return 0;
}

int ret_policy_get(struct store *s, const char *vm, struct ret_policy *ret) {
        int r;

        if (vm) {
                r = policy_load(s, vm, ret);
                if (r != -ENOENT)
                        return r;
        }
        r = policy_load(s, NULL, ret);
        if (r == -ENOENT) {
                ret_policy_default(ret);
                return 0;
        }
        return r;
}

int ret_policy_get_with(struct store *s, const char *vm, const struct ret_policy *vault_default,
                        struct ret_policy *ret) {
        int r = policy_load(s, vm, ret);

        if (r != -ENOENT)
                return r;
        *ret = *vault_default;
        return 0;
}

int ret_policy_set(struct store *s, const char *vm, const struct ret_policy *p) {
        _cleanup_free_ char *text = NULL;
        char name[128];
        int r;

        if (!policy_valid(p))
                return -EINVAL;
        r = policy_name(vm, name, sizeof name);
        if (r < 0)
                return r;
        text = ret_policy_format(p);
        if (!text)
                return -ENOMEM;
        return store_put_object(s, name, text, strlen(text), false);
}
