/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Notes of maintenance runs: "status/prune.json" (the last prune) and
 * "status/check.json" (the last check, and whether it found damage), read
 * by rpfs status. Written with a plain put: the last writer wins.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "retention.h"
#include "retention_i.h"

#define NOTE_FORMAT 1

static bool note_name(const char *what, char *buf, size_t len) {
        if (strcmp(what, "prune") != 0 && strcmp(what, "check") != 0)
                return false;
        snprintf(buf, len, "status/%s.json", what);
        return true;
}

int ret_note_set(struct store *s, const char *what, const struct ret_note *n) {
        char name[64], when[21];

        if (!note_name(what, name, sizeof name))
                return -EINVAL;
        time_format_iso(n->time, when);
        return ret_put_json(s, name,
                            json_pack("{s:i, s:s, s:I, s:b, s:s}", "format", NOTE_FORMAT, "time", when, "unix",
                                      (json_int_t)n->time, "damaged", n->damaged, "summary", n->summary),
                            false);
}

int ret_note_get(struct store *s, const char *what, struct ret_note *ret) {
        _cleanup_free_ char *text = NULL;
        const char *summary = "";
        json_int_t fmt, t;
        int damaged = 0;
        char name[64];
        json_t *o;
        int r;

        memset(ret, 0, sizeof *ret);
        if (!note_name(what, name, sizeof name))
                return -EINVAL;
        r = store_get_object(s, name, &text, NULL);
        if (r < 0)
                return r == -ENOTDIR ? -ENOENT : r;
        o = json_loads(text, 0, NULL);
        if (!o || json_unpack(o, "{s:I, s:I, s?b, s?s}", "format", &fmt, "unix", &t, "damaged", &damaged, "summary",
                              &summary) < 0) {
                json_decref(o);
                return -EBADMSG;
        }
        ret->time = (time_t)t;
        ret->damaged = damaged;
        snprintf(ret->summary, sizeof ret->summary, "%s", summary);
        json_decref(o);
        return fmt > NOTE_FORMAT ? -EPROTONOSUPPORT : 0;
}
