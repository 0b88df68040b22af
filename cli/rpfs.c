/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The rpfs command: the global options, then one of the commands below,
 * each in cmd-<name>.c. The global options (-v, -q, --endpoint URL, -h, -V)
 * may also come after the command: every command reads them through
 * cli_getopt() (cli.c), where they are defined. Exit status: 0 success,
 * 1 failure, 2 usage error.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* The column at which the commands' summaries start in the main help. */
#define SUMMARY_COLUMN 58

static const struct command {
        const char *name;
        int (*run)(struct cli *cli, int argc, char **argv);
        const char *synopsis; /* the main help's line: synopsis ... summary */
        const char *summary;  /* a '\n' continues it on the next line, in its column */
} commands[] = {
        { "init", cmd_init, "init VAULT [--block-size 64K] [--compression zstd:1] [--encrypt]", "create a vault" },
        { "replicate", cmd_replicate, "replicate VAULT VM --disk [NAME=]PATH ...", "store a new recovery point" },
        { "points", cmd_points, "points VAULT [VM] [--json]", "list recovery points" },
        { "export", cmd_export, "export VAULT VM DISK [--point P] -o OUT", "write a point's disk as a raw image" },
        { "failback", cmd_failback, "failback VAULT VM --target DISK=PATH ...",
          "bring on-prem disks to a point (delta, full,\ntwo-phase, resumable)" },
        { "mount", cmd_mount, "mount VAULT MOUNTPOINT [--cache DIR] [--seed VM/DISK=PATH]",
          "show points as image files (FUSE)" },
        { "stats", cmd_stats, "stats MOUNTPOINT [--json]", "what a mount has served" },
        { "status", cmd_status, "status VAULT [VM ...] [--json | --prometheus FILE]", "RPO health (monitoring plugin)" },
        { "diff", cmd_diff, "diff VAULT VM FROM TO [--disk D] [--json]", "changed extents between two points" },
        { "policy", cmd_policy, "policy VAULT [--vm VM] [--retention 24h] ...", "show or set the retention policy" },
        { "hold", cmd_hold, "hold VAULT VM POINT [--until T] [--reason TEXT]", "keep a point whatever the policy" },
        { "release", cmd_release, "release VAULT VM POINT", "remove a hold" },
        { "prune", cmd_prune, "prune VAULT [VM ...] [--dry-run] [--json]", "drop the points the policy lets go" },
        { "check", cmd_check, "check VAULT [VM ...] [--read-data[=PERCENT]] [--json]", "verify that every point is whole" },
        { "group", cmd_group, "group VAULT create G VM... | list | show G", "replication groups" },
        { "reprotect", cmd_reprotect, "reprotect VAULT VM --disk [NAME=]PATH ...",
          "protect a failed-back VM again (changes since its point)" },
        { "key", cmd_key, "key VAULT list | add [--key-file F] | remove ID", "key slots of an encrypted vault" },
};

static const char main_help_head[] =
        "Usage: rpfs [--verbose] [--endpoint URL] COMMAND [ARGS...]\n"
        "\n"
        "rpfs keeps VM disks as immutable recovery points in a vault and brings them back.\n"
        "\n"
        "Commands:\n";

static const char main_help_tail[] =
        "\n"
        "VAULT is a local directory or an Azure Blob container, azure://ACCOUNT/CONTAINER[/PREFIX].\n"
        "'rpfs COMMAND --help' describes each command.\n"
        "\n"
        "Global options, before or after the command:\n"
        "  -v, --verbose     debug messages     -V, --version   print the version\n"
        "  -q, --quiet       print nothing on success\n"
        "  -h, --help        show this help (after a command: the command's help)\n"
        "  --endpoint URL    Azure Blob endpoint (default https://ACCOUNT.blob.core.windows.net,\n"
        "                    or BlobEndpoint= of AZURE_STORAGE_CONNECTION_STRING); for Azurite:\n"
        "                    http://127.0.0.1:10000/devstoreaccount1\n"
        "Azure credentials come from the environment only: AZURE_STORAGE_CONNECTION_STRING,\n"
        "AZURE_STORAGE_KEY (with the account from the URL) or AZURE_STORAGE_SAS_TOKEN.\n";

/* The main help, its command list made from the table. */
static void main_help(FILE *f) {
        fputs(main_help_head, f);
        for (size_t k = 0; k < ELEMENTSOF(commands); k++) {
                int pad = SUMMARY_COLUMN - 2 - (int)strlen(commands[k].synopsis);

                fprintf(f, "  %s%*s", commands[k].synopsis, pad < 2 ? 2 : pad, "");
                for (const char *p = commands[k].summary; *p; p++) {
                        fputc(*p, f);
                        if (*p == '\n')
                                fprintf(f, "%*s", SUMMARY_COLUMN, "");
                }
                fputc('\n', f);
        }
        fputs(main_help_tail, f);
}

/* Whether argv is "VAULT MOUNTPOINT -o ..." as mount.fuse3 runs it for a
 * `mount -t fuse.rpfs` or an /etc/fstab line: then it is `rpfs mount`. */
static bool mount_helper_call(int argc, char **argv) {
        struct stat st;

        if (argc < 2 || stat(argv[1], &st) < 0 || !S_ISDIR(st.st_mode))
                return false;
        for (int i = 2; i < argc; i++)
                if (strcmp(argv[i], "-o") == 0)
                        return true;
        return false;
}

/* After a usage error before or instead of the command (already logged):
 * the main help on stderr. */
static int main_usage(void) {
        main_help(stderr);
        return EXIT_USAGE;
}

int main(int argc, char **argv) {
        struct cli cli = CLI_INIT;
        int c;

        log_set_prefix("rpfs");
        opterr = 0;
        /* The global options before the command ('+': stop at it). */
        while ((c = cli_getopt(&cli, argc, argv, "+", NULL, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        main_help(stdout);
                        return 0;
                case '?':
                case ':':
                        cli_log_bad_option(c, argv);
                        return main_usage();
                default:
                        return cli.exit;
                }
        }
        if (optind >= argc) {
                log_error("missing command");
                return main_usage();
        }
        for (size_t k = 0; k < ELEMENTSOF(commands); k++)
                if (strcmp(argv[optind], commands[k].name) == 0) {
                        int i = optind;
                        optind = 0; /* a fresh getopt for the command: it permutes */
                        return commands[k].run(&cli, argc - i, argv + i);
                }
        if (mount_helper_call(argc - optind, argv + optind)) {
                int i = optind;
                argv[i - 1] = (char *)"mount"; /* argv[0] or a global option already read */
                optind = 0;
                return cmd_mount(&cli, argc - i + 1, argv + i - 1);
        }
        log_error("unknown command '%s'", argv[optind]);
        return main_usage();
}
