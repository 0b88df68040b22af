/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs init: create an empty vault.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char init_help[] =
        "Usage: rpfs init VAULT [--block-size SIZE] [--compression zstd:LEVEL|none] [--encrypt [--key-file FILE]]\n"
        "\n"
        "Create an empty vault. VAULT is a directory that does not exist or is empty,\n"
        "or azure://ACCOUNT/CONTAINER[/PREFIX] (the container is created if missing;\n"
        "nothing may exist under the prefix yet).\n"
        "\n"
        "  --block-size SIZE        block size, a power of two from 4K to 4M (default 64K)\n"
        "  --compression zstd:N     zstd level 1..19 (default zstd:1); 'none' stores blocks as they are\n"
        "  --encrypt                encrypt everything stored (blocks, manifests, points, policies);\n"
        "                           the first key is --key-file FILE, else the file RPFS_KEY_FILE names,\n"
        "                           else the passphrase in RPFS_PASSPHRASE, else one asked on the terminal\n"
        "  --key-file FILE          the key file of the first key slot (see 'rpfs key')\n"
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
                { "encrypt", no_argument, NULL, 'e' },
                { "key-file", required_argument, NULL, 'k' },
                {}
        };
        uint64_t bs = STORE_DEFAULT_BLOCK_SIZE;
        struct store_options o = cli->store;
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
                case 'e':
                        o.encrypt = true;
                        break;
                case 'k':
                        o.key_file = optarg;
                        break;
                default:
                        return cli->exit;
                }
        }
        if (argc - optind != 1)
                return cli_usage_error("init", "expected exactly one VAULT argument");
        if (o.key_file && !o.encrypt)
                return cli_usage_error("init", "--key-file needs --encrypt");
        r = store_init_with(argv[optind], &o, (uint32_t)bs, level);
        if (r == -EEXIST) {
                log_error("%s: already exists and is not empty; refusing to create a vault there", argv[optind]);
                return 1;
        }
        if (r < 0) {
                log_error("%s: cannot create vault: %s", argv[optind], cli_vault_strerror(argv[optind], r));
                return 1;
        }
        if (!cli->quiet)
                printf("created %svault %s (block size %llu, compression %s%s%.0d)\n", o.encrypt ? "encrypted " : "",
                       argv[optind], (unsigned long long)bs, level ? "zstd" : "none", level ? ":" : "", level);
        return 0;
}
