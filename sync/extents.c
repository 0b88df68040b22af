/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Changed-extents files for rpfs replicate --changed: one "OFFSET LENGTH"
 * a line (decimal bytes, '#' starts a comment), or a JSON array of
 * {"start": N, "length": N} objects (the shape of VMware's
 * QueryChangedDiskAreas and qemu's dirty-bitmap extents). Parsed strictly;
 * the ranges are sorted and merged, and none may pass the disk's end.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "formats.h"
#include "extents_i.h"
#include "sync.h"

int sync_extent_add(struct sync_extent **v, size_t *n, size_t *cap, uint64_t start, uint64_t len) {
        if (*n == *cap) {
                size_t c = *cap ? *cap * 2 : 64;
                struct sync_extent *nv = realloc(*v, c * sizeof *nv);
                if (!nv)
                        return -ENOMEM;
                *v = nv;
                *cap = c;
        }
        (*v)[(*n)++] = (struct sync_extent){ start, len };
        return 0;
}

/* A decimal number of up to 20 digits fitting uint64_t; *p advanced. */
static bool parse_u64(const char **p, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;
        if (*s < '0' || *s > '9')
                return false;
        for (; *s >= '0' && *s <= '9'; s++) {
                if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
                        return false;
                v = v * 10 + (uint64_t)(*s - '0');
        }
        *p = s;
        *ret = v;
        return true;
}

static int parse_text(char *text, struct sync_extent **v, size_t *n, size_t *cap, char *why, size_t wl) {
        unsigned line = 0;
        for (char *s = text, *nl; s && *s; s = nl) {
                const char *p = s;
                uint64_t a, b;
                nl = strchr(s, '\n');
                if (nl)
                        *nl++ = 0;
                line++;
                char *hash = strchr(s, '#');
                if (hash)
                        *hash = 0;
                p += strspn(p, " \t\r");
                if (!*p)
                        continue;
                if (!parse_u64(&p, &a) || !strchr(" \t", *p) || !*p)
                        goto bad;
                p += strspn(p, " \t");
                if (!parse_u64(&p, &b))
                        goto bad;
                p += strspn(p, " \t\r");
                if (*p)
                        goto bad;
                if (sync_extent_add(v, n, cap, a, b) < 0)
                        return -ENOMEM;
                continue;
        bad:
                snprintf(why, wl, "line %u: expected 'OFFSET LENGTH' in decimal bytes", line);
                return -EINVAL;
        }
        return 0;
}

static int parse_json(const char *text, struct sync_extent **v, size_t *n, size_t *cap, char *why, size_t wl) {
        json_error_t err;
        json_t *a = json_loads(text, 0, &err), *o;
        size_t i;
        int r = 0;

        if (!a) {
                snprintf(why, wl, "line %d: invalid JSON: %s", err.line, err.text);
                return -EINVAL;
        }
        if (!json_is_array(a)) {
                snprintf(why, wl, "JSON: expected an array of {\"start\": N, \"length\": N}");
                r = -EINVAL;
        }
        json_array_foreach(a, i, o) {
                json_t *js = json_object_get(o, "start"), *jl = json_object_get(o, "length");
                if (r < 0)
                        break;
                if (!json_is_object(o) || !json_is_integer(js) || !json_is_integer(jl) ||
                    json_integer_value(js) < 0 || json_integer_value(jl) < 0 || json_object_size(o) != 2) {
                        snprintf(why, wl, "JSON element %zu: expected {\"start\": N, \"length\": N} with N >= 0", i);
                        r = -EINVAL;
                        break;
                }
                r = sync_extent_add(v, n, cap, (uint64_t)json_integer_value(js), (uint64_t)json_integer_value(jl));
        }
        json_decref(a);
        return r;
}

static int ext_cmp(const void *a, const void *b) {
        const struct sync_extent *x = a, *y = b;
        return x->start < y->start ? -1 : x->start > y->start;
}

/* Sort, drop empty ranges, merge overlapping and adjacent ones; refuse
 * ranges past size. */
static int ext_normalize(struct sync_extent *v, size_t *n, uint64_t size, char *why, size_t wl) {
        size_t k = 0;
        for (size_t i = 0; i < *n; i++)
                if (v[i].start > size || v[i].length > size - v[i].start) {
                        snprintf(why, wl, "range %" PRIu64 "+%" PRIu64 " passes the disk's end (%" PRIu64 " bytes)",
                                 v[i].start, v[i].length, size);
                        return -ERANGE;
                }
        qsort(v, *n, sizeof *v, ext_cmp);
        for (size_t i = 0; i < *n; i++) {
                if (v[i].length == 0)
                        continue;
                if (k > 0 && v[i].start <= v[k - 1].start + v[k - 1].length) {
                        uint64_t end = MAX(v[k - 1].start + v[k - 1].length, v[i].start + v[i].length);
                        v[k - 1].length = end - v[k - 1].start;
                } else
                        v[k++] = v[i];
        }
        *n = k;
        return 0;
}

int sync_extents_load(const char *path, uint64_t size, struct sync_extent **ret, size_t *ret_n, char *why,
                      size_t why_len) {
        return sync_extents_load_bs(path, size, 0, ret, ret_n, why, why_len);
}

int sync_extents_load_bs(const char *path, uint64_t size, uint64_t block_size, struct sync_extent **ret,
                         size_t *ret_n, char *why, size_t why_len) {
        _cleanup_free_ char *text = NULL;
        struct sync_extent *v = NULL;
        size_t n = 0, cap = 0, len;
        const char *p;
        int r;

        *why = 0;
        r = read_file_all(path, &text, &len);
        if (r < 0) {
                snprintf(why, why_len, "%s", strerror(-r));
                return r;
        }
        if (strlen(text) != len) {
                snprintf(why, why_len, "not a text file (NUL byte)");
                return -EINVAL;
        }
        p = text + strspn(text, " \t\r\n");
        if (*p == '[' || *p == '{')
                r = parse_json(text, &v, &n, &cap, why, why_len);
        else if (*p == '<')
                r = sync_thin_delta_parse(text, block_size, &v, &n, &cap, why, why_len);
        else if (block_size)
                r = (snprintf(why, why_len, "--changed-block-size is for thin_delta XML only"), -EINVAL);
        else
                r = parse_text(text, &v, &n, &cap, why, why_len);
        if (r >= 0)
                r = ext_normalize(v, &n, size, why, why_len);
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int sync_extents_overlay(struct fmt_image *img, struct sync_extent **ret, size_t *ret_n) {
        struct sync_extent *v = NULL;
        size_t n = 0, cap = 0;
        uint64_t off = 0, s, e;
        int r;

        for (;;) {
                r = fmt_next_own(img, off, &s, &e);
                if (r == -ENXIO)
                        break;
                if (r < 0 || e <= s || s < off) {
                        free(v);
                        return r < 0 ? r : -EIO;
                }
                if (n > 0 && v[n - 1].start + v[n - 1].length == s)
                        v[n - 1].length += e - s;
                else if (sync_extent_add(&v, &n, &cap, s, e - s) < 0) {
                        free(v);
                        return -ENOMEM;
                }
                off = e;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}
