/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The backend interface: where a vault's objects live. Objects are named
 * by relative paths ("packs/ab/ab12....pack"), written whole and atomically,
 * and never modified. Every operation is safe to call from any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store.h"

enum {
        BACKEND_PUT_EXCLUSIVE = 1 << 0, /* fail with -EEXIST if the name exists */
        BACKEND_PUT_NOSYNC = 1 << 1,    /* durability deferred to backend_sync() */
};

struct backend;

/* One ranged read of a batch (backend_get_ranges). */
struct backend_range {
        const char *name;
        uint64_t off;
        void *buf;
        size_t len;
        int result; /* out: 0 or -errno */
};

struct backend_ops {
        const char *name;
        /* Requests wait on a network: more of them in flight than cores pay. */
        bool remote;
        int (*put)(struct backend *b, const char *name, const void *data, size_t len, unsigned flags);
        int (*get)(struct backend *b, const char *name, char **ret, size_t *ret_len);
        int (*get_range)(struct backend *b, const char *name, uint64_t off, void *buf, size_t len);
        /* Optional: several ranged reads at once, in parallel where that
         * pays (a remote backend); each entry gets its own result. */
        void (*get_ranges)(struct backend *b, struct backend_range *v, size_t n);
        int (*list)(struct backend *b, const char *prefix, store_list_cb cb, void *userdata);
        int (*del)(struct backend *b, const char *name);
        /* Optional: delete several objects (absent ones count as deleted);
         * 0 or the first error. */
        int (*del_many)(struct backend *b, const char *const *names, size_t n);
        /* Make every NOSYNC put so far durable. */
        int (*sync)(struct backend *b);
        /* A local file path holding the object's bytes (for mmap); the
         * directory backend returns its own file, a remote one a cached
         * copy. *ret malloc'd. */
        int (*local_path)(struct backend *b, const char *name, char **ret);
        /* Whether the backend location exists at all / is empty. */
        int (*probe)(struct backend *b, bool *ret_exists, bool *ret_empty);
        int (*create)(struct backend *b);
        /* Optional: the store's clock (store_clock). */
        int (*clock)(struct backend *b, time_t *ret);
        void (*free)(struct backend *b);
};

struct backend {
        const struct backend_ops *ops;
};

/* The calling thread's deadline (store_thread_deadline), 0 for none. */
double store_thread_deadline_get(void);
/* Whether the calling thread's calls are background work
 * (store_thread_background). */
bool store_thread_background_get(void);

/* v[0..n) through get_ranges, or one get_range after the other. */
void backend_get_ranges(struct backend *b, struct backend_range *v, size_t n);

/* names[0..n) through del_many, or one del after the other (absent
 * objects count as deleted); 0 or the first error. */
int backend_del_many(struct backend *b, const char *const *names, size_t n);

/* Open the backend for a vault URL: "azure://ACCOUNT/CONTAINER[/PREFIX]",
 * "file://PATH" or a plain directory path. */
int backend_open(const char *url, const struct store_options *o, struct backend **ret);
int backend_dir_open(const char *path, struct backend **ret);
/* The Azure Blob backend (backend-azure.c); also -ENOKEY for unusable
 * credentials, -EINVAL for a malformed URL or endpoint. */
int backend_azure_open(const char *url, const struct store_options *o, struct backend **ret);
/* A person-readable explanation of an Azure backend error, or NULL. */
const char *backend_azure_explain(int r);
