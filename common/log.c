/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

static enum log_level max_level = LOG_INFO;
static const char *prefix = "rpfs";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_set_level(enum log_level level) { max_level = level; }
enum log_level log_get_level(void) { return max_level; }
void log_set_prefix(const char *p) { prefix = p; }

static void log_line(enum log_level level, const char *suffix, const char *fmt, va_list ap) {
        char buf[2048];
        static const char *const tags[] = { "", "warning: ", "", "debug: " };

        if (level > max_level)
                return;
        vsnprintf(buf, sizeof buf, fmt, ap);
        pthread_mutex_lock(&log_lock);
        fprintf(stderr, "%s: %s%s%s\n", prefix, tags[level], buf, suffix ? suffix : "");
        pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level level, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        log_line(level, NULL, fmt, ap);
        va_end(ap);
}

int log_msg_errno(enum log_level level, int r, const char *fmt, ...) {
        char suffix[256];
        va_list ap;

        snprintf(suffix, sizeof suffix, ": %s", strerror(r < 0 ? -r : r));
        va_start(ap, fmt);
        log_line(level, suffix, fmt, ap);
        va_end(ap);
        return r < 0 ? r : -r;
}
