/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Azure: where the vault is and how requests are authorised.
 *
 * The vault URL names the account and container; the endpoint comes from
 * the --endpoint option (store_options), else RPFS_AZURE_ENDPOINT, else the connection string's
 * BlobEndpoint, else https://ACCOUNT.blob.core.windows.net. Credentials
 * come from the environment only, first match wins:
 *   AZURE_STORAGE_CONNECTION_STRING  AccountKey= or SharedAccessSignature=
 *   AZURE_STORAGE_KEY                the account key (Shared Key)
 *   AZURE_STORAGE_SAS_TOKEN          a SAS query string
 * With none, requests go unauthenticated (public containers).
 *
 * Shared Key signing follows the documented canonicalisation: a fixed list
 * of standard headers, then every x-ms-* header (lower-case, sorted), then
 * "/ACCOUNT" + the URL path as sent + each query parameter (lower-case
 * name, decoded value, sorted), signed with HMAC-SHA256 under the decoded
 * account key.
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "azure_i.h"
#include "common.h"

/* The well-known Azurite / storage emulator account (public, documented). */
#define DEV_ACCOUNT "devstoreaccount1"
#define DEV_KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define DEV_ENDPOINT "http://127.0.0.1:10000/devstoreaccount1"

void az_cfg_free(struct az_cfg *c) {
        if (!c)
                return;
        free(c->account);
        free(c->container);
        free(c->prefix);
        free(c->endpoint);
        free(c->ep_path);
        if (c->key)
                explicit_bzero(c->key, c->key_len);
        free(c->key);
        if (c->sas)
                explicit_bzero(c->sas, strlen(c->sas));
        free(c->sas);
        free(c);
}

static bool account_ok(const char *s, size_t n) {
        if (n < 3 || n > 24)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

/* Azure's rules: 3-63 of [a-z0-9-], starting with a letter or digit, no
 * "--", not ending in '-'. */
static bool container_ok(const char *s, size_t n) {
        if (n < 3 || n > 63 || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
                if (s[i] == '-' && i > 0 && s[i - 1] == '-')
                        return false;
        }
        return true;
}

/* Prefix components: [A-Za-z0-9._-], not "." or "..". */
static bool prefix_ok(const char *s) {
        const char *p = s;
        while (*p) {
                size_t n = strcspn(p, "/");
                if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                for (size_t i = 0; i < n; i++)
                        if (!(isalnum((unsigned char)p[i]) || p[i] == '.' || p[i] == '_' || p[i] == '-'))
                                return false;
                p += n;
                if (*p == '/')
                        p++;
        }
        return true;
}

static int parse_url(struct az_cfg *c, const char *url) {
        const char *a, *slash, *cont, *rest;
        size_t n;

        if (strncmp(url, "azure://", 8) != 0)
                return -EINVAL;
        a = url + 8;
        slash = strchr(a, '/');
        if (!slash || !account_ok(a, (size_t)(slash - a)))
                return -EINVAL;
        cont = slash + 1;
        n = strcspn(cont, "/");
        if (!container_ok(cont, n))
                return -EINVAL;
        rest = cont + n;
        while (*rest == '/')
                rest++;
        c->account = strndup(a, (size_t)(slash - a));
        c->container = strndup(cont, n);
        if (!c->account || !c->container)
                return -ENOMEM;
        n = strlen(rest);
        while (n > 0 && rest[n - 1] == '/')
                n--;
        c->prefix = malloc(n + 2);
        if (!c->prefix)
                return -ENOMEM;
        memcpy(c->prefix, rest, n);
        c->prefix[n] = 0;
        if (!prefix_ok(c->prefix))
                return -EINVAL;
        if (n > 0) {
                c->prefix[n] = '/';
                c->prefix[n + 1] = 0;
        }
        return 0;
}

/* Find key's value in a connection string "K=V;K=V" (case-insensitive
 * keys; values may contain '='). malloc'd copy in *ret, or NULL. */
static int conn_get(const char *cs, const char *key, char **ret) {
        size_t klen = strlen(key);
        const char *p = cs;

        *ret = NULL;
        while (*p) {
                size_t n = strcspn(p, ";");
                while (n > 0 && isspace((unsigned char)*p)) {
                        p++;
                        n--;
                }
                if (n > klen && p[klen] == '=' && strncasecmp(p, key, klen) == 0) {
                        *ret = strndup(p + klen + 1, n - klen - 1);
                        return *ret ? 0 : -ENOMEM;
                }
                p += n;
                if (*p == ';')
                        p++;
        }
        return 0;
}

static int set_endpoint(struct az_cfg *c, const char *ep) {
        const char *host, *path;
        size_t n = strlen(ep);

        while (n > 0 && ep[n - 1] == '/')
                n--;
        if (strncmp(ep, "https://", 8) == 0)
                host = ep + 8;
        else if (strncmp(ep, "http://", 7) == 0)
                host = ep + 7;
        else
                return -EINVAL;
        if ((size_t)(host - ep) >= n || strpbrk(ep, "?# \t\r\n"))
                return -EINVAL;
        free(c->endpoint);
        free(c->ep_path);
        c->endpoint = strndup(ep, n);
        path = strchr(host, '/');
        if (path && (size_t)(path - ep) < n)
                c->ep_path = strndup(path, n - (size_t)(path - ep));
        else
                c->ep_path = strdup("");
        return c->endpoint && c->ep_path ? 0 : -ENOMEM;
}

static int set_key(struct az_cfg *c, const char *b64) {
        int r = az_unbase64(b64, &c->key, &c->key_len);
        if (r < 0 || c->key_len == 0)
                return -ENOKEY;
        return 0;
}

static int set_sas(struct az_cfg *c, const char *sas) {
        while (*sas == '?')
                sas++;
        if (!*sas || strpbrk(sas, " \t\r\n#"))
                return -ENOKEY;
        c->sas = strdup(sas);
        return c->sas ? 0 : -ENOMEM;
}

/* Credentials and endpoint from AZURE_STORAGE_CONNECTION_STRING. */
static int from_connection_string(struct az_cfg *c, const char *cs, bool *ret_auth) {
        _cleanup_free_ char *name = NULL, *key = NULL, *ep = NULL, *sas = NULL, *dev = NULL,
                            *proto = NULL, *suffix = NULL;
        int r;

        *ret_auth = false;
        if ((r = conn_get(cs, "AccountName", &name)) < 0 || (r = conn_get(cs, "AccountKey", &key)) < 0 ||
            (r = conn_get(cs, "BlobEndpoint", &ep)) < 0 || (r = conn_get(cs, "SharedAccessSignature", &sas)) < 0 ||
            (r = conn_get(cs, "UseDevelopmentStorage", &dev)) < 0 ||
            (r = conn_get(cs, "DefaultEndpointsProtocol", &proto)) < 0 ||
            (r = conn_get(cs, "EndpointSuffix", &suffix)) < 0)
                goto out;
        if (dev && strcasecmp(dev, "true") == 0) {
                if (!name && !(name = strdup(DEV_ACCOUNT))) {
                        r = -ENOMEM;
                        goto out;
                }
                if (!key && !sas && !(key = strdup(DEV_KEY))) {
                        r = -ENOMEM;
                        goto out;
                }
                if (!ep && !(ep = strdup(DEV_ENDPOINT))) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        /* A key is bound to its account: refuse to sign for another one. */
        if (key && name && strcmp(name, c->account) != 0) {
                r = -ENOKEY;
                goto out;
        }
        if (ep) {
                r = set_endpoint(c, ep);
                if (r < 0)
                        goto out;
        } else if (suffix) {
                char buf[512];
                if (snprintf(buf, sizeof buf, "%s://%s.blob.%s", proto ? proto : "https", c->account, suffix) >=
                    (int)sizeof buf) {
                        r = -EINVAL;
                        goto out;
                }
                r = set_endpoint(c, buf);
                if (r < 0)
                        goto out;
        }
        if (key) {
                r = set_key(c, key);
                *ret_auth = r >= 0;
        } else if (sas) {
                r = set_sas(c, sas);
                *ret_auth = r >= 0;
        }
out:
        if (key)
                explicit_bzero(key, strlen(key));
        if (sas)
                explicit_bzero(sas, strlen(sas));
        return r;
}

int az_cfg_load(const char *url, struct az_cfg **ret) {
        return az_cfg_load_with(url, NULL, ret);
}

int az_cfg_load_with(const char *url, const char *endpoint, struct az_cfg **ret) {
        struct az_cfg *c = calloc(1, sizeof *c);
        const char *cs = getenv("AZURE_STORAGE_CONNECTION_STRING");
        const char *ep = endpoint ? endpoint : getenv("RPFS_AZURE_ENDPOINT");
        const char *key = getenv("AZURE_STORAGE_KEY");
        const char *sas = getenv("AZURE_STORAGE_SAS_TOKEN");
        bool auth = false;
        int r;

        if (!c)
                return -ENOMEM;
        r = parse_url(c, url);
        if (r < 0)
                goto fail;
        if (cs && *cs) {
                r = from_connection_string(c, cs, &auth);
                if (r < 0)
                        goto fail;
        }
        if (!auth && key && *key) {
                r = set_key(c, key);
                if (r < 0)
                        goto fail;
                auth = true;
        }
        if (!auth && sas && *sas) {
                r = set_sas(c, sas);
                if (r < 0)
                        goto fail;
        }
        if (ep && *ep)
                r = set_endpoint(c, ep);
        else if (!c->endpoint) {
                char buf[128];
                snprintf(buf, sizeof buf, "https://%s.blob.core.windows.net", c->account);
                r = set_endpoint(c, buf);
        }
        if (r < 0)
                goto fail;
        *ret = c;
        return 0;
fail:
        az_cfg_free(c);
        return r;
}

/* ---- encodings ---- */

char *az_encode(const char *s, bool keep_slash) {
        size_t n = strlen(s);
        char *out = malloc(3 * n + 1), *o = out;

        if (!out)
                return NULL;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/'))
                        *o++ = (char)*p;
                else {
                        *o++ = '%';
                        *o++ = "0123456789ABCDEF"[*p >> 4];
                        *o++ = "0123456789ABCDEF"[*p & 15];
                }
        }
        *o = 0;
        return out;
}

char *az_base64(const void *p, size_t len) {
        char *out = malloc(4 * ((len + 2) / 3) + 1);
        if (!out)
                return NULL;
        EVP_EncodeBlock((unsigned char *)out, p, (int)len);
        return out;
}

int az_unbase64(const char *s, uint8_t **ret, size_t *ret_len) {
        size_t n = strlen(s), pad = 0;
        uint8_t *out;
        int m;

        if (n == 0 || n % 4 != 0 || n > (1u << 20))
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!(isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '/' || (s[i] == '=' && i >= n - 2)))
                        return -EINVAL;
        if (s[n - 1] == '=')
                pad++;
        if (s[n - 2] == '=')
                pad++;
        out = malloc(n / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        m = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
        if (m < 0 || (size_t)m < pad) {
                free(out);
                return -EINVAL;
        }
        *ret = out;
        *ret_len = (size_t)m - pad;
        return 0;
}

void az_http_date(time_t t, char buf[static 32]) {
        static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
        static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
        struct tm tm;

        gmtime_r(&t, &tm);
        snprintf(buf, 32, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
                 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- Shared Key ---- */

struct sbuf {
        char *p;
        size_t len, cap;
        bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n) {
        if (b->oom)
                return;
        if (b->len + n + 1 > b->cap) {
                size_t ncap = MAX(b->cap * 2, b->len + n + 256);
                char *np = realloc(b->p, ncap);
                if (!np) {
                        b->oom = true;
                        return;
                }
                b->p = np;
                b->cap = ncap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = 0;
}

static void sb_str(struct sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_lower(struct sbuf *b, const char *s) {
        for (; *s; s++) {
                char c = (char)tolower((unsigned char)*s);
                sb_add(b, &c, 1);
        }
}

/* A header value with leading/trailing white space trimmed and inner runs
 * of white space folded to one space (the canonical form). */
static void sb_value(struct sbuf *b, const char *v) {
        bool space = false;
        while (*v == ' ' || *v == '\t')
                v++;
        for (; *v; v++) {
                if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
                        space = true;
                        continue;
                }
                if (space)
                        sb_add(b, " ", 1);
                space = false;
                sb_add(b, v, 1);
        }
}

static int cmp_kv_ci(const void *a, const void *b) {
        const struct az_kv *x = *(const struct az_kv *const *)a, *y = *(const struct az_kv *const *)b;
        int c = strcasecmp(x->name, y->name);
        return c ? c : strcmp(x->value, y->value);
}

static const char *header_get(const struct az_sign_input *in, const char *name) {
        for (size_t i = 0; i < in->n_headers; i++)
                if (strcasecmp(in->headers[i].name, name) == 0)
                        return in->headers[i].value;
        return NULL;
}

int az_string_to_sign(const struct az_sign_input *in, char **ret) {
        static const char *const std[] = {
                "Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type", "Date",
                "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since", "Range",
        };
        const struct az_kv *sorted[32];
        struct sbuf b = { 0 };
        size_t n = 0;

        sb_str(&b, in->method);
        sb_add(&b, "\n", 1);
        for (size_t i = 0; i < ELEMENTSOF(std); i++) {
                const char *v = header_get(in, std[i]);
                /* Since 2015-02-21 a zero Content-Length is signed as empty. */
                if (v && !(i == 2 && strcmp(v, "0") == 0))
                        sb_value(&b, v);
                sb_add(&b, "\n", 1);
        }

        for (size_t i = 0; i < in->n_headers && n < ELEMENTSOF(sorted); i++)
                if (strncasecmp(in->headers[i].name, "x-ms-", 5) == 0)
                        sorted[n++] = &in->headers[i];
        qsort(sorted, n, sizeof *sorted, cmp_kv_ci);
        for (size_t i = 0; i < n; i++) {
                sb_lower(&b, sorted[i]->name);
                sb_add(&b, ":", 1);
                sb_value(&b, sorted[i]->value);
                sb_add(&b, "\n", 1);
        }

        sb_add(&b, "/", 1);
        sb_str(&b, in->account);
        sb_str(&b, in->path);
        n = 0;
        for (size_t i = 0; i < in->n_query && n < ELEMENTSOF(sorted); i++)
                sorted[n++] = &in->query[i];
        qsort(sorted, n, sizeof *sorted, cmp_kv_ci);
        for (size_t i = 0; i < n; i++) {
                /* Repeated names are one line, values comma-separated. */
                if (i > 0 && strcasecmp(sorted[i]->name, sorted[i - 1]->name) == 0) {
                        sb_add(&b, ",", 1);
                } else {
                        sb_add(&b, "\n", 1);
                        sb_lower(&b, sorted[i]->name);
                        sb_add(&b, ":", 1);
                }
                sb_str(&b, sorted[i]->value);
        }
        if (b.oom || !b.p) {
                free(b.p);
                return -ENOMEM;
        }
        *ret = b.p;
        return 0;
}

int az_sign(const uint8_t *key, size_t key_len, const char *sts, char out[static 64]) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;

        if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)sts, strlen(sts), mac, &mac_len) ||
            mac_len != 32)
                return -EIO;
        EVP_EncodeBlock((unsigned char *)out, mac, (int)mac_len);
        explicit_bzero(mac, sizeof mac);
        return 0;
}
