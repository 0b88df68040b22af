/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs init: create an empty vault.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char init_help[] =
        "Usage: rpfs init VAULT [--block-size SIZE] [--compression zstd:LEVEL|none]\n"
        "\n"
        "Create an empty vault. VAULT is a directory that does not exist or is empty,\n"
        "or azure://ACCOUNT/CONTAINER[/PREFIX] (the container is created if missing;\n"
        "nothing may exist under the prefix yet).\n"
        "\n"
        "  --block-size SIZE        block size, a power of two from 4K to 4M (default 64K)\n"
        "  --compression zstd:N     zstd level 1..19 (default zstd:1); 'none' stores blocks as they are\n"
        "  -h, --help               show this help\n";

/* --compression zstd:N|zstd|none into *level. 0 or an exit status. */
static int compression_option(const char *arg, int *level) {
        long v;

        if (strcmp(arg, "none") == 0) {
                *level = 0;
                return 0;
        }
        if (strncmp(arg, "zstd", 4) != 0)
                return cli_usage_error("init", "invalid --compression '%s': zstd:LEVEL or none", arg);
        *level = STORE_DEFAULT_LEVEL;
        if (arg[4] == ':') {
                if (cli_parse_int(arg + 5, 1, 19, &v) < 0)
                        return cli_usage_error("init", "invalid --compression '%s': zstd level 1..19", arg);
                *level = (int)v;
        } else if (arg[4])
                return cli_usage_error("init", "invalid --compression '%s'", arg);
        return 0;
}

int cmd_init(struct cli *cli, int argc, char **argv) {
        static const struct option opts[] = {
                { "block-size", required_argument, NULL, 'b' },
                { "compression", required_argument, NULL, 'c' },
                {}
        };
        uint64_t bs = STORE_DEFAULT_BLOCK_SIZE;
        int level = STORE_DEFAULT_LEVEL, c, r;

        while ((c = cli_getopt(cli, argc, argv, "", opts, init_help)) >= 0) {
                switch (c) {
                case 'b':
                        if (parse_size(optarg, &bs) < 0 || bs < STORE_MIN_BLOCK_SIZE || bs > STORE_MAX_BLOCK_SIZE ||
                            (bs & (bs - 1)))
                                return cli_usage_error("init", "invalid --block-size '%s': a power of two from 4K to 4M", optarg);
                        break;
                case 'c':
                        r = compression_option(optarg, &level);
                        if (r)
                                return r;
                        break;
                default:
                        return cli->exit;
                }
        }
        if (argc - optind != 1)
                return cli_usage_error("init", "expected exactly one VAULT argument");
        r = store_init_with(argv[optind], &cli->store, (uint32_t)bs, level);
        if (r == -EEXIST) {
                log_error("%s: already exists and is not empty; refusing to create a vault there", argv[optind]);
                return 1;
        }
        if (r < 0) {
                log_error("%s: cannot create vault: %s", argv[optind], cli_vault_strerror(argv[optind], r));
                return 1;
        }
        if (!cli->quiet)
                printf("created vault %s (block size %llu, compression %s%s%.0d)\n", argv[optind],
                       (unsigned long long)bs, level ? "zstd" : "none", level ? ":" : "", level);
        return 0;
}
