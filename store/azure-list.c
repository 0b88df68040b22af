/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * List Blobs for the Azure backend: the XML of one page parsed with
 * libxml2 (az_parse_list), and the list operation, which asks for pages of
 * AZ_LIST_PAGE names under the prefix (following NextMarker) and hands
 * the caller only names rpfs could have written, with no request in
 * flight while its callback runs.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "azure_i.h"
#include "common.h"

#define AZ_LIST_PAGE "5000"

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void) {
        xmlInitParser();
}

void az_xml_init(void) {
        pthread_once(&xml_once, xml_init);
}

static const xmlNode *child(const xmlNode *n, const char *name) {
        for (const xmlNode *c = n ? n->children : NULL; c; c = c->next)
                if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
                        return c;
        return NULL;
}

int az_parse_list(const char *xml, size_t len, az_list_fn fn, void *userdata, char **ret_marker) {
        xmlDoc *doc;
        const xmlNode *root, *blobs, *nm;
        int r = 0;

        *ret_marker = NULL;
        if (len > INT_MAX)
                return -EPROTO;
        doc = xmlReadMemory(xml, (int)len, NULL, NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
        if (!doc)
                return -EPROTO;
        root = xmlDocGetRootElement(doc);
        if (!root || strcmp((const char *)root->name, "EnumerationResults") != 0) {
                r = -EPROTO;
                goto out;
        }
        blobs = child(root, "Blobs");
        for (const xmlNode *c = blobs ? blobs->children : NULL; c && r >= 0; c = c->next) {
                const xmlNode *name, *cl;
                xmlChar *s, *sz = NULL;
                uint64_t size = 0;

                if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "Blob") != 0)
                        continue;
                name = child(c, "Name");
                cl = child(child(c, "Properties"), "Content-Length");
                s = name ? xmlNodeGetContent(name) : NULL;
                if (!s) {
                        r = -EPROTO;
                        break;
                }
                if (cl && (sz = xmlNodeGetContent(cl)))
                        size = strtoull((const char *)sz, NULL, 10);
                r = fn(userdata, (const char *)s, size);
                az_xml_free(s);
                az_xml_free(sz);
        }
        nm = child(root, "NextMarker");
        if (r >= 0 && nm) {
                xmlChar *m = xmlNodeGetContent(nm);
                if (m && *m) {
                        *ret_marker = strdup((const char *)m);
                        if (!*ret_marker)
                                r = -ENOMEM;
                }
                az_xml_free(m);
        }
out:
        xmlFreeDoc(doc);
        return r;
}

struct entry {
        char *name;
        uint64_t size;
};

struct page {
        struct backend_azure *a;
        size_t skip; /* strlen of the vault prefix */
        const char *want; /* full prefix the names must start with */
        struct entry *v;
        size_t n, cap;
};

/* Only names rpfs could have written: [A-Za-z0-9._-] components, none
 * starting with '.'. Anything else in the container is not ours. */
static bool ours(const char *s) {
        bool start = true;
        for (; *s; s++) {
                if (*s == '/') {
                        if (start)
                                return false;
                        start = true;
                        continue;
                }
                if (start && *s == '.')
                        return false;
                start = false;
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '.' || *s == '_' || *s == '-'))
                        return false;
        }
        return !start;
}

static int page_add(void *userdata, const char *name, uint64_t size) {
        struct page *p = userdata;

        if (strncmp(name, p->want, strlen(p->want)) != 0 || !ours(name + p->skip))
                return 0;
        if (array_reserve(&p->v, &p->cap, p->n + 1, sizeof *p->v) < 0)
                return -ENOMEM;
        p->v[p->n].name = strdup(name + p->skip);
        if (!p->v[p->n].name)
                return -ENOMEM;
        p->v[p->n++].size = size;
        return 0;
}

static void page_clear(struct page *p) {
        for (size_t i = 0; i < p->n; i++)
                free(p->v[i].name);
        p->n = 0;
}

/* Fetch one page of names under the full prefix `want`. */
static int list_page(struct backend_azure *a, const char *want, const char *max, const char *marker,
                     struct page *p, char **ret_marker) {
        struct az_req q = { .method = "GET", .out = AZ_OUT_MEM };
        int r;

        az_req_query(&q, "restype", "container");
        az_req_query(&q, "comp", "list");
        if (*want)
                az_req_query(&q, "prefix", want);
        az_req_query(&q, "maxresults", max);
        if (marker)
                az_req_query(&q, "marker", marker);
        r = az_http_run(a->http, &q, 1);
        if (r >= 0)
                r = az_parse_list(q.resp ? q.resp : "", q.resp_len, page_add, p, ret_marker);
        az_req_done(&q);
        return r;
}

int az_list(struct backend *b, const char *prefix, store_list_cb cb, void *userdata) {
        struct backend_azure *a = AZ_B(b);
        _cleanup_free_ char *want = az_full_name(a, prefix), *marker = NULL;
        struct page p = { .a = a, .skip = strlen(a->cfg->prefix) };
        int r;

        if (!want)
                return -ENOMEM;
        p.want = want;
        do {
                char *next = NULL;

                r = list_page(a, want, AZ_LIST_PAGE, marker, &p, &next);
                free(marker);
                marker = next;
                /* No request is in flight while the callbacks run: they
                 * may use the backend themselves. */
                for (size_t i = 0; r >= 0 && i < p.n; i++)
                        r = cb(userdata, p.v[i].name, p.v[i].size);
                page_clear(&p);
        } while (r >= 0 && marker);
        free(p.v);
        return r < 0 ? r : 0;
}
