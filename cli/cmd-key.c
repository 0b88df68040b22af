/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rpfs key: the key slots of an encrypted vault (list, add, remove).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char key_help[] =
        "Usage: rpfs key VAULT list [--json]\n"
        "       rpfs key VAULT add [--key-file FILE]\n"
        "       rpfs key VAULT remove ID\n"
        "\n"
        "The key slots of an encrypted vault: each opens it with its own passphrase\n"
        "or key file. The vault is opened with RPFS_KEY_FILE or RPFS_PASSPHRASE (or a\n"
        "prompt on the terminal). 'add' makes a slot for --key-file FILE, else for the\n"
        "passphrase in RPFS_NEW_PASSPHRASE, else for one asked twice on the terminal.\n"
        "'remove' refuses to remove the last slot. Neither rewrites any data.\n"
        "\n"
        "  --key-file FILE   the new slot's key file (add)\n"
        "  --json            list as JSON\n"
        "  -h, --help        show this help\n";

static int key_list(struct store *s, bool json) {
        struct store_key_slot *v = NULL;
        size_t n = 0;
        json_t *a;
        int r = store_key_list(s, &v, &n);

        if (r < 0)
                return r;
        if (json) {
                a = json_array();
                for (size_t i = 0; a && i < n; i++)
                        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:I, s:I, s:b}", "id", v[i].id, "type",
                                                           v[i].type, "created", v[i].created, "opslimit",
                                                           (json_int_t)v[i].opslimit, "memlimit",
                                                           (json_int_t)v[i].memlimit, "unlocked", v[i].unlocked));
                r = cli_json_print(a, JSON_INDENT(1));
        } else {
                printf("%-16s  %-10s  %-20s  %s\n", "ID", "TYPE", "CREATED", "KDF");
                for (size_t i = 0; i < n; i++) {
                        char kdf[64] = "blake2b (key file)";
                        if (strcmp(v[i].type, "passphrase") == 0)
                                snprintf(kdf, sizeof kdf, "argon2id ops=%llu mem=%lluMiB",
                                         (unsigned long long)v[i].opslimit,
                                         (unsigned long long)(v[i].memlimit >> 20));
                        printf("%-16s  %-10s  %-20s  %s%s\n", v[i].id, v[i].type, v[i].created, kdf,
                               v[i].unlocked ? "  (used now)" : "");
                }
        }
        free(v);
        return r;
}

static int key_run(struct cli *cli, struct store *s, const char *url, const char *verb, const char *arg,
                   const char *key_file, bool json) {
        char id[17];
        int r;

        if (!store_encrypted(s)) {
                log_error("%s: not an encrypted vault (it has no keys; see 'rpfs init --encrypt')", url);
                return 1;
        }
        if (strcmp(verb, "list") == 0)
                r = key_list(s, json);
        else if (strcmp(verb, "add") == 0) {
                r = store_key_add(s, key_file, id);
                if (r == 0 && !cli->quiet)
                        printf("added key slot %s\n", id);
                if (r == -ENOKEY)
                        log_error("%s: no new key given: --key-file FILE, RPFS_NEW_PASSPHRASE, or a terminal "
                                  "to ask on", url);
                else if (r == -EINVAL)
                        log_error("%s: unusable new key (empty, a key file under 16 bytes, or the two "
                                  "passphrases differ)", url);
                else if (r < 0)
                        log_error("%s: cannot add a key slot: %s", url, cli_vault_strerror(url, r));
                return r < 0 ? 1 : 0;
        } else {
                r = store_key_remove(s, arg);
                if (r == 0 && !cli->quiet)
                        printf("removed key slot %s\n", arg);
                if (r == -EBUSY)
                        log_error("%s: key slot %s is the vault's last one: add another before removing it", url,
                                  arg);
                else if (r == -ENOENT)
                        log_error("%s: no key slot %s (see 'rpfs key VAULT list')", url, arg);
                else if (r < 0)
                        log_error("%s: cannot remove key slot %s: %s", url, arg, cli_vault_strerror(url, r));
                return r < 0 ? 1 : 0;
        }
        if (r < 0)
                log_error("%s: cannot list key slots: %s", url, cli_vault_strerror(url, r));
        return r < 0 ? 1 : 0;
}

int cmd_key(struct cli *cli, int argc, char **argv) {
        static const struct option opts[] = {
                { "key-file", required_argument, NULL, 'k' },
                { "json", no_argument, NULL, 'j' },
                {}
        };
        const char *key_file = NULL, *url, *verb;
        struct store *s = NULL;
        bool json = false;
        int c, r, n;

        while ((c = cli_getopt(cli, argc, argv, "", opts, key_help)) >= 0) {
                switch (c) {
                case 'k':
                        key_file = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                default:
                        return cli->exit;
                }
        }
        n = argc - optind;
        if (n < 2)
                return cli_usage_error("key", "expected VAULT and list, add or remove ID");
        url = argv[optind];
        verb = argv[optind + 1];
        if (strcmp(verb, "remove") == 0 ? n != 3 : (strcmp(verb, "list") != 0 && strcmp(verb, "add") != 0) || n != 2)
                return cli_usage_error("key", "expected VAULT list, VAULT add or VAULT remove ID");
        if (key_file && strcmp(verb, "add") != 0)
                return cli_usage_error("key", "--key-file is for 'add' (open the vault with RPFS_KEY_FILE)");
        if (cli_open_vault(cli, url, &s) < 0)
                return 1;
        r = key_run(cli, s, url, verb, n == 3 ? argv[optind + 2] : NULL, key_file, json);
        store_free(s);
        return r;
}
