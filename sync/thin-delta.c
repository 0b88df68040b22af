/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LVM thin `thin_delta` XML for rpfs replicate --changed: what changed
 * between two thin devices or snapshots of one pool (left: the older, the
 * base; right: the newer, replicated now):
 *
 *   <superblock ... data_block_size="128" ...>
 *     <diff left="1" right="2">
 *       <same begin="0" length="2"/>           not changed
 *       <different begin="2" length="2"/>      remapped: changed
 *       <left_only begin="10" length="2"/>     unmapped since: reads zeros, changed
 *       <right_only begin="20" length="1"/>    newly mapped: changed
 *     </diff>
 *   </superblock>
 *
 * --verbose output puts <range begin= length= .../> elements inside
 * <same>, <different>, <left_only>, <right_only>; both are read. begin and
 * length count thin-pool data blocks; data_block_size is in 512-byte
 * sectors. A small strict scanner, not a general XML parser: elements
 * other than these, text, or a malformed tag are refused with the line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "extents_i.h"

struct td {
        const char *p;          /* scan position */
        const char *text;
        uint64_t bs;            /* block bytes, 0 until known */
        int container;          /* verbose: 1 inside a changed kind, 0 inside <same>, -1 outside */
        bool in_diff, diff_seen;
        char *why;
        size_t wl;
};

static unsigned td_line(const struct td *t) {
        unsigned n = 1;
        for (const char *c = t->text; c < t->p; c++)
                n += *c == '\n';
        return n;
}

static int td_bad(struct td *t, const char *what) {
        snprintf(t->why, t->wl, "line %u: thin_delta XML: %s", td_line(t), what);
        return -EINVAL;
}

/* The value of attribute name in tag [tag, end): a decimal u64. 0, or
 * -ENOENT when absent, -EINVAL when malformed. */
static int td_attr(const char *tag, const char *end, const char *name, uint64_t *ret) {
        size_t nl = strlen(name);
        for (const char *a = tag; a + nl + 2 < end; a++) {
                const char *v = a + nl + 2;
                uint64_t x = 0;
                if ((a[-1] != ' ' && a[-1] != '\t' && a[-1] != '\n') || memcmp(a, name, nl) != 0 || a[nl] != '=' ||
                    a[nl + 1] != '"')
                        continue;
                if (*v < '0' || *v > '9')
                        return -EINVAL;
                for (; v < end && *v >= '0' && *v <= '9'; v++) {
                        if (x > (UINT64_MAX - (uint64_t)(*v - '0')) / 10)
                                return -EINVAL;
                        x = x * 10 + (uint64_t)(*v - '0');
                }
                if (v >= end || *v != '"')
                        return -EINVAL;
                *ret = x;
                return 0;
        }
        return -ENOENT;
}

static bool td_is(const char *name, size_t n, const char *want) {
        return strlen(want) == n && memcmp(name, want, n) == 0;
}

/* A range element (begin, length in blocks): added when changed. */
static int td_range(struct td *t, const char *tag, const char *end, bool changed, struct sync_extent **v,
                    size_t *n, size_t *cap) {
        uint64_t b, l;

        if (td_attr(tag, end, "begin", &b) < 0 || td_attr(tag, end, "length", &l) < 0)
                return td_bad(t, "a range needs numeric begin= and length=");
        if (!t->in_diff)
                return td_bad(t, "a range outside <diff>");
        if (!t->bs)
                return td_bad(t, "no data_block_size in <superblock>: give --changed-block-size");
        if (!changed)
                return 0;
        if (b > UINT64_MAX / t->bs || l > UINT64_MAX / t->bs)
                return td_bad(t, "range too large");
        return sync_extent_add(v, n, cap, b * t->bs, l * t->bs);
}

static int td_superblock(struct td *t, const char *tag, const char *end) {
        uint64_t sectors;
        int r = td_attr(tag, end, "data_block_size", &sectors);

        if (r == -EINVAL || (r == 0 && (sectors == 0 || sectors > (UINT64_C(1) << 40))))
                return td_bad(t, "bad data_block_size");
        if (r == 0 && t->bs && t->bs != sectors * 512) {
                snprintf(t->why, t->wl, "thin_delta data_block_size is %" PRIu64 " bytes (%" PRIu64
                         " sectors), --changed-block-size says %" PRIu64, sectors * 512, sectors, t->bs);
                return -EINVAL;
        }
        if (r == 0)
                t->bs = sectors * 512;
        return 0;
}

/* One element tag <name ...>, </name> or <name .../> at t->p ('<'). */
static int td_tag(struct td *t, struct sync_extent **v, size_t *n, size_t *cap) {
        const char *s = t->p + 1, *end = strchr(s, '>'), *name;
        bool close = *s == '/', empty;
        size_t nl;

        if (!end)
                return td_bad(t, "unterminated tag");
        empty = end[-1] == '/';
        name = s + close;
        nl = strspn(name, "abcdefghijklmnopqrstuvwxyz_");
        if (td_is(name, nl, "range"))
                return close ? 0 : t->container < 0 ? td_bad(t, "<range> outside <same>/<different>/...")
                                                    : td_range(t, name, end, t->container == 1, v, n, cap);
        bool kind_changed = td_is(name, nl, "different") || td_is(name, nl, "left_only") || td_is(name, nl, "right_only");
        if (kind_changed || td_is(name, nl, "same")) {
                if (close) {
                        t->container = -1;
                        return 0;
                }
                if (!empty) {
                        t->container = kind_changed;
                        return t->in_diff ? 0 : td_bad(t, "an element outside <diff>");
                }
                return td_range(t, name, end, kind_changed, v, n, cap);
        }
        if (td_is(name, nl, "diff")) {
                if (!close && t->diff_seen)
                        return td_bad(t, "more than one <diff>");
                t->in_diff = !close && !empty;
                t->diff_seen = true;
                return 0;
        }
        if (td_is(name, nl, "superblock"))
                return close ? 0 : td_superblock(t, name, end);
        return td_bad(t, "unexpected element (not thin_delta output?)");
}

int sync_thin_delta_parse(const char *text, uint64_t block_size, struct sync_extent **v, size_t *n, size_t *cap,
                          char *why, size_t wl) {
        struct td t = { .p = text, .text = text, .bs = block_size, .container = -1, .why = why, .wl = wl };
        int r;

        while (*t.p) {
                const char *e;
                t.p += strspn(t.p, " \t\r\n");
                if (!*t.p)
                        break;
                if (*t.p != '<')
                        return td_bad(&t, "text outside tags");
                if (strncmp(t.p, "<?", 2) == 0 || strncmp(t.p, "<!--", 4) == 0) {
                        e = strstr(t.p, t.p[1] == '?' ? "?>" : "-->");
                        if (!e)
                                return td_bad(&t, "unterminated declaration or comment");
                        t.p = e + (t.p[1] == '?' ? 2 : 3);
                        continue;
                }
                r = td_tag(&t, v, n, cap);
                if (r < 0)
                        return r;
                t.p = strchr(t.p, '>') + 1;
        }
        if (!t.diff_seen)
                return td_bad(&t, "no <diff> element");
        return 0;
}
