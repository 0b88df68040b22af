/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Between cmd-failback.c and cmd-failback-group.c (rpfs failback --group). */
#pragma once

#include <limits.h>

#include "cli.h"
#include "sync.h"

/* What the command line asks for; o is what sync_failback() gets. */
struct failback_args {
        struct sync_failback_opts o;
        struct sync_fb_target *targets; /* argc entries */
        char *names;                    /* their disk names, 65 bytes each */
        size_t n;
        const char *cache;      /* --cache, NULL: the default if it exists */
        const char *action_opt; /* the action option given ("--prepare", ...), NULL: none */
        bool json, status;
        const char *group;      /* --group G */
        const char **gtargets;  /* --group: the VM/DISK=PATH arguments (argc entries) */
        size_t n_g;
        char vault_abs[PATH_MAX], state_dir[PATH_MAX], cache_dir[PATH_MAX];
};

/* Open the vault (not for --commit), run o, report. The exit status. */
int failback_run(const struct cli *cli, struct sync_failback_opts *o, bool json);
/* --status of o's targets. The exit status. */
int failback_status(const struct sync_failback_opts *o, bool json);
/* rpfs failback VAULT --group G --target VM/DISK=PATH ... (a parsed, set up). */
int failback_group(const struct cli *cli, char **argv, struct failback_args *a);
