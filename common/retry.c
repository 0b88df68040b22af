/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Which errors pass by themselves, and for how long to retry them: one
 * classification and one set of profiles for every module (the mount's
 * reads, failback's journal-level retries, the Azure backend's requests
 * after translating curl and HTTP errors into errno values). */
#include "common.h"

#include <string.h>

bool error_transient(int r) {
        switch (r) {
        case -EIO:
        case -ETIMEDOUT:
        case -ECONNRESET:
        case -ECONNREFUSED:
        case -ECONNABORTED:
        case -EHOSTUNREACH:
        case -ENETUNREACH:
        case -ENETDOWN:
        case -EAGAIN:
        case -EBUSY:
        case -ENOSPC:
        case -EDQUOT:
        case -ENOMEM:
                return true;
        default:
                return false;
        }
}

int retry_profile_parse(const char *s, enum retry_profile *ret) {
        if (strcmp(s, "default") == 0)
                *ret = RETRY_DEFAULT;
        else if (strcmp(s, "site-recovery") == 0)
                *ret = RETRY_SITE_RECOVERY;
        else if (strcmp(s, "none") == 0)
                *ret = RETRY_NONE;
        else
                return -EINVAL;
        return 0;
}

double retry_delay(enum retry_profile p, unsigned attempt) {
        static const double def[] = { 1, 2, 4, 8, 16, 30 };
        static const double asr[] = { 60, 120, 240, 480, 600 };

        if (attempt == 0)
                attempt = 1;
        switch (p) {
        case RETRY_DEFAULT:
                return attempt <= ELEMENTSOF(def) ? def[attempt - 1] : -1;
        case RETRY_SITE_RECOVERY:
                return attempt <= ELEMENTSOF(asr) ? asr[attempt - 1] : 1800;
        default:
                return -1;
        }
}
