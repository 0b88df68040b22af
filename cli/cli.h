/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the rpfs commands share (private to cli/): the global options, option
 * parsing, opening a vault, usage errors, number parsing and JSON output.
 * rpfs.c dispatches to one cmd_<name>() per command, in cmd-<name>.c.
 *
 * Exit status of every command: 0 success, 1 failure, 2 usage error
 * (failback adds its own, see its --help).
 *
 * Thread rule: the rpfs command is single-threaded here; struct cli belongs
 * to main() and is passed to the command it runs.
 */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "store.h"

#define EXIT_USAGE 2

/* The global options (-v, -q, --endpoint URL), read before the command by
 * main() and after it by the command's cli_getopt(). */
struct cli {
        bool quiet;                 /* -q, --quiet: print nothing on success */
        struct store_options store; /* how every command reaches its vault (--endpoint) */
        int exit;                   /* the status to end with after cli_getopt() returned CLI_EXIT */
};
#define CLI_INIT ((struct cli){ .store = STORE_OPTIONS_DEFAULT })

/* What cli_getopt() returns when the command must end at once with status
 * cli->exit. No option has this value. */
#define CLI_EXIT 0x10000

/* What a command's option parser returns when the command goes on; any
 * other value is the exit status to end with. */
#define CLI_PARSED (-1)

/*
 * getopt_long() over a command's own options and the global ones, which
 * are defined here once and handled here: -v/--verbose, -q/--quiet,
 * --endpoint URL, -h/--help, -V/--version. Options may come before, between
 * and after the arguments.
 *
 * shortopts: the command's own short options ("o:", "" for none), without
 * the leading ':'; a leading '+' stops at the first argument (main() uses
 * it to stop at the command). longopts: the command's own long options,
 * ending in {} (NULL for none). Their values must not be 'v', 'q', 'h', 'V'
 * or >= 0x100. help: the command's --help text, printed to stdout by -h.
 * help NULL (main(), before the command): 'h', '?' (unknown option) and ':'
 * (missing argument, also an empty --endpoint) are returned to the caller,
 * which explains them; otherwise they are explained here as usage errors
 * of the command argv[0].
 *
 * Returns the value of the command's next own option (optarg set), -1
 * after the last option (optind: the first argument), or CLI_EXIT: the
 * caller returns cli->exit at once (0 after --help or --version; EXIT_USAGE
 * after a usage error, already explained on stderr).
 */
int cli_getopt(struct cli *cli, int argc, char **argv, const char *shortopts, const struct option *longopts,
               const char *help);

/* Log what getopt's '?' (an unknown option, or one given a value it does
 * not take) or ':' (a missing argument) returned by cli_getopt() was about:
 * "unknown option '--foo'", "option '-o' requires an argument". */
void cli_log_bad_option(int c, char **argv);

/* Log "rpfs: <message>" and "Try 'rpfs CMD --help'." on stderr. Returns
 * EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) _printf_(2, 3);

/* Why an operation on the vault at url failed, in a person's terms: the
 * vault kind's own explanation (Azure: authentication, container, network)
 * or strerror(-r). Static string. */
const char *cli_vault_strerror(const char *url, int r);

/* Open the vault at url as cli->store says. Failures are logged in terms of
 * the user's path ("not an rpfs vault", "no such vault", ...). Returns 0 or
 * -errno (see store_open()). *ret is freed with store_free(). */
int cli_open_vault(const struct cli *cli, const char *url, struct store **ret);

/* Parse s as a whole decimal integer in [min, max] into *ret (strtol rules:
 * leading blanks and a sign are allowed). 0, or -EINVAL when s is empty, has
 * trailing characters or is out of range; *ret is then untouched. */
int cli_parse_int(const char *s, long min, long max, long *ret);

/* Print o as JSON on stdout, keys in insertion order, and flush. flags:
 * JSON_COMPACT (one JSON line) or JSON_INDENT(n). Takes the reference to o
 * (NULL: prints nothing). 0, or -ENOMEM when o could not be printed. */
int cli_json_print(json_t *o, size_t flags);

/* The directory of failback journals: $RPFS_STATE_DIR, else
 * $XDG_STATE_HOME/rpfs/failback, else ~/.local/state/rpfs/failback, else
 * /var/lib/rpfs/failback; into buf (len bytes, truncated if longer). */

/* The commands, one per cmd-<name>.c. argv[0] is the command's name; each
 * returns the exit status. */
int cmd_init(struct cli *cli, int argc, char **argv);
int cmd_key(struct cli *cli, int argc, char **argv);
int cmd_replicate(struct cli *cli, int argc, char **argv);
int cmd_points(struct cli *cli, int argc, char **argv);
int cmd_export(struct cli *cli, int argc, char **argv);
int cmd_failback(struct cli *cli, int argc, char **argv);
int cmd_mount(struct cli *cli, int argc, char **argv);
int cmd_stats(struct cli *cli, int argc, char **argv);
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_diff(struct cli *cli, int argc, char **argv);
int cmd_policy(struct cli *cli, int argc, char **argv);
int cmd_hold(struct cli *cli, int argc, char **argv);
int cmd_release(struct cli *cli, int argc, char **argv);
int cmd_prune(struct cli *cli, int argc, char **argv);
int cmd_check(struct cli *cli, int argc, char **argv);
int cmd_group(struct cli *cli, int argc, char **argv);
int cmd_reprotect(struct cli *cli, int argc, char **argv);
