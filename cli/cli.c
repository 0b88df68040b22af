/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by the rpfs commands; see cli.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"

/* Values of the global long options: above every command's (< 0x100), so
 * that a global long option given a value it does not take is told apart
 * from a short option. */
enum {
        OPT_VERBOSE = 0x100,
        OPT_QUIET,
        OPT_ENDPOINT,
        OPT_HELP,
        OPT_VERSION,
};

/* The global options, appended to every command's own. */
static const struct option global_options[] = {
        { "verbose", no_argument, NULL, OPT_VERBOSE },
        { "quiet", no_argument, NULL, OPT_QUIET },
        { "endpoint", required_argument, NULL, OPT_ENDPOINT },
        { "help", no_argument, NULL, OPT_HELP },
        { "version", no_argument, NULL, OPT_VERSION },
};
#define GLOBAL_SHORTOPTS "vqhV"
#define MAX_OPTIONS 48

/* The hint after every usage error of command cmd. */
static void try_help(const char *cmd) {
        fprintf(stderr, "Try 'rpfs %s --help'.\n", cmd);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        log_error("%s", buf);
        try_help(cmd);
        return EXIT_USAGE;
}

void cli_log_bad_option(int c, char **argv) {
        const char *arg = argv[optind - 1];
        if (c == ':' && optopt == OPT_ENDPOINT)
                log_error("option '--endpoint' requires a URL");
        else if (c == ':')
                log_error("option '%s' requires an argument", arg);
        else if (optopt && optopt != '?' && optopt < OPT_VERBOSE)
                log_error("unknown option '-%c'", optopt);
        else
                log_error("unknown option '%s'", arg);
}

static int cli_exit(struct cli *cli, int status) {
        cli->exit = status;
        return CLI_EXIT;
}

/* Apply global option c (with its argument arg). Returns 0, CLI_EXIT, or ':'
 * for an empty --endpoint (then explained as a missing URL). */
static int global_option(struct cli *cli, int c, const char *arg) {
        switch (c) {
        case 'v':
        case OPT_VERBOSE:
                log_set_level(LOG_DEBUG);
                return 0;
        case 'q':
        case OPT_QUIET:
                cli->quiet = true;
                return 0;
        case 'V':
        case OPT_VERSION:
                printf("rpfs %s\n", RPFS_VERSION);
                return cli_exit(cli, 0);
        case OPT_ENDPOINT:
                if (!*arg) {
                        optopt = OPT_ENDPOINT;
                        return ':';
                }
                if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0) {
                        log_error("invalid --endpoint '%s': expected an http:// or https:// URL", arg);
                        return cli_exit(cli, EXIT_USAGE);
                }
                cli->store.endpoint = arg;
                return 0;
        }
        return -1;
}

int cli_getopt(struct cli *cli, int argc, char **argv, const char *shortopts, const struct option *longopts,
               const char *help) {
        struct option all[MAX_OPTIONS];
        char shorts[64];
        bool in_order = shortopts[0] == '+';
        size_t n = 0;

        for (; longopts && longopts[n].name; n++) {
                if (n + ELEMENTSOF(global_options) + 1 >= MAX_OPTIONS)
                        abort(); /* a command with too many options: raise MAX_OPTIONS */
                all[n] = longopts[n];
        }
        memcpy(all + n, global_options, sizeof global_options);
        all[n + ELEMENTSOF(global_options)] = (struct option){ 0 };
        snprintf(shorts, sizeof shorts, "%s:%s" GLOBAL_SHORTOPTS, in_order ? "+" : "", shortopts + in_order);

        for (;;) {
                int c = getopt_long(argc, argv, shorts, all, NULL);
                int r = global_option(cli, c, optarg);

                if (r == 0)
                        continue;
                if (r == CLI_EXIT)
                        return CLI_EXIT;
                if (r == ':')
                        c = ':';
                if (c == OPT_HELP)
                        c = 'h';
                if (!help || (c != 'h' && c != '?' && c != ':'))
                        return c;
                if (c == 'h') {
                        fputs(help, stdout);
                        return cli_exit(cli, 0);
                }
                cli_log_bad_option(c, argv);
                try_help(argv[0]);
                return cli_exit(cli, EXIT_USAGE);
        }
}

/* ---- vaults ---- */

const char *cli_vault_strerror(const char *url, int r) {
        const char *hint = store_error_hint(url, r);
        return hint ? hint : strerror(-r);
}

int cli_open_vault(const struct cli *cli, const char *url, struct store **ret) {
        int r = store_open_with(url, &cli->store, ret);
        const char *hint;

        switch (r) {
        case 0:
                return 0;
        case -EMEDIUMTYPE:
                log_error("%s: not an rpfs vault (no valid config.json; create one with 'rpfs init')", url);
                break;
        case -EPROTONOSUPPORT:
                log_error("%s: the vault's format version is newer than this rpfs supports (version %d); "
                          "upgrade rpfs", url, STORE_FORMAT_VERSION);
                break;
        case -ENOENT:
        case -ENOTDIR:
                hint = store_error_hint(url, -ENOENT);
                log_error("%s: no such vault%s%s", url, hint ? ": " : "", hint ? hint : "");
                break;
        default:
                log_error("%s: cannot open vault: %s", url, cli_vault_strerror(url, r));
        }
        return r;
}

/* ---- values ---- */

int cli_parse_int(const char *s, long min, long max, long *ret) {
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (*end || end == s || errno || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int cli_json_print(json_t *o, size_t flags) {
        char *text;

        if (!o)
                return 0;
        text = json_dumps(o, flags | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        puts(text);
        fflush(stdout);
        free(text);
        return 0;
}

