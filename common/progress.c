/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "common.h"

struct progress {
        char label[48];
        char note[96];          /* extra text after the rate, may be empty */
        uint64_t total, done;
        double start, last_draw;
        bool drawn;
};

struct progress *progress_new(const char *label, uint64_t total) {
        struct progress *p;
        const char *force = getenv("RPFS_PROGRESS");

        if (!(force && strcmp(force, "1") == 0) && !isatty(STDERR_FILENO))
                return NULL;
        p = calloc(1, sizeof *p);
        if (!p)
                return NULL;
        snprintf(p->label, sizeof p->label, "%s", label);
        p->total = total;
        p->start = now_monotonic();
        return p;
}

static void draw(struct progress *p, double now) {
        char a[24], b[24], rate[24], eta[32] = "";
        double el = now - p->start;
        double r = el > 0 ? (double)p->done / el : 0;

        format_bytes(p->done, a, sizeof a);
        format_bytes((uint64_t)r, rate, sizeof rate);
        if (p->total) {
                format_bytes(p->total, b, sizeof b);
                if (r > 0 && p->done < p->total)
                        snprintf(eta, sizeof eta, "  ETA %.0fs", (double)(p->total - p->done) / r);
                fprintf(stderr, "\r\033[K%s: %s / %s (%.0f%%)  %s/s%s%s%s", p->label, a, b,
                        100.0 * (double)p->done / (double)p->total, rate, eta, *p->note ? "  " : "", p->note);
        } else
                fprintf(stderr, "\r\033[K%s: %s  %s/s%s%s", p->label, a, rate, *p->note ? "  " : "", p->note);
        fflush(stderr);
        p->drawn = true;
        p->last_draw = now;
}

void progress_update(struct progress *p, uint64_t done) {
        double now;
        if (!p)
                return;
        p->done = done;
        now = now_monotonic();
        if (now - p->last_draw >= 0.2)
                draw(p, now);
}

void progress_restart(struct progress *p, const char *label, uint64_t total) {
        if (!p)
                return;
        if (p->drawn)
                draw(p, now_monotonic());
        snprintf(p->label, sizeof p->label, "%s", label);
        p->total = total;
        p->done = 0;
        p->start = now_monotonic();
        p->last_draw = 0;
}

void progress_note(struct progress *p, const char *fmt, ...) {
        va_list ap;
        if (!p)
                return;
        va_start(ap, fmt);
        vsnprintf(p->note, sizeof p->note, fmt, ap);
        va_end(ap);
}

void progress_free(struct progress *p) {
        if (!p)
                return;
        if (p->drawn) {
                draw(p, now_monotonic());
                fputc('\n', stderr);
        }
        free(p);
}
