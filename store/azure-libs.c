/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Azure backend's libraries, loaded on first use: libcurl, libxml2 and
 * libcrypto are dlopen()ed when an azure:// vault is first used, not when
 * rpfs starts. Loading them (with what libcurl pulls in: GnuTLS, Kerberos,
 * LDAP, libssh2, ICU for libxml2) took 28 ms of CPU and 540 page faults of
 * every rpfs start here (`perf stat -r 30` on programs linked with and
 * without them: 7.6 ms against 35.8 ms), also for commands on a directory
 * vault, whose users never touch Azure: `rpfs status` run by a monitoring
 * system, shell completion listing points, each command of a script.
 *
 * Each function the backend calls is defined here under its own name, with
 * the library's prototype (so azure-*.c call them as usual), and forwards
 * to the library's own definition, found with dlsym() once. When a
 * library cannot be loaded, the first call says why (once), and the
 * functions fail the way the library's do when out of memory: NULL, or an
 * error code.
 */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "azure_i.h"
#include "common.h"

enum { LIB_CURL, LIB_XML, LIB_CRYPTO, N_LIBS };
static const char *const lib_names[N_LIBS] = { "libcurl.so.4", "libxml2.so.2", "libcrypto.so.3" };
static void *lib_handle[N_LIBS];
static pthread_once_t lib_once[N_LIBS] = { PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT };

#define LIB_OPEN(i)                                                                                        \
        static void open_##i(void) {                                                                       \
                lib_handle[i] = dlopen(lib_names[i], RTLD_NOW | RTLD_LOCAL);                               \
                if (!lib_handle[i])                                                                        \
                        log_error("the Azure backend needs %s: %s", lib_names[i], dlerror());              \
        }
LIB_OPEN(LIB_CURL)
LIB_OPEN(LIB_XML)
LIB_OPEN(LIB_CRYPTO)
static void (*const lib_open[N_LIBS])(void) = { open_LIB_CURL, open_LIB_XML, open_LIB_CRYPTO };

/* Symbol name of library lib, or NULL (the library or the symbol missing). */
static void *lib_sym(int lib, const char *name) {
        void *p;
        pthread_once(&lib_once[lib], lib_open[lib]);
        if (!lib_handle[lib])
                return NULL;
        p = dlsym(lib_handle[lib], name);
        if (!p)
                log_error("%s has no %s: %s", lib_names[lib], name, dlerror());
        return p;
}

/* The real function NAME of type TYPE, looked up once (racing threads find
 * the same pointer). */
#define REAL(lib, type, name)                                                                              \
        static __typeof__(type) real_;                                                                     \
        __typeof__(type) fn_ = __atomic_load_n(&real_, __ATOMIC_ACQUIRE);                                  \
        if (!fn_) {                                                                                        \
                fn_ = (type)lib_sym(lib, name);                                                            \
                __atomic_store_n(&real_, fn_, __ATOMIC_RELEASE);                                           \
        }

/* ---- libcurl ---- */

CURLcode curl_global_init(long flags) {
        REAL(LIB_CURL, CURLcode (*)(long), "curl_global_init");
        return fn_ ? fn_(flags) : CURLE_FAILED_INIT;
}

CURL *curl_easy_init(void) {
        REAL(LIB_CURL, CURL *(*)(void), "curl_easy_init");
        return fn_ ? fn_() : NULL;
}

void curl_easy_cleanup(CURL *c) {
        REAL(LIB_CURL, void (*)(CURL *), "curl_easy_cleanup");
        if (fn_)
                fn_(c);
}

void curl_easy_reset(CURL *c) {
        REAL(LIB_CURL, void (*)(CURL *), "curl_easy_reset");
        if (fn_)
                fn_(c);
}

/* r = fn_(h, opt, ARG), ARG the option's one argument from ap, by the
 * option's type (curl.h's CURLOPTTYPE_* ranges, for easy and multi
 * options alike): long, curl_off_t, or a pointer (objects, strings, lists,
 * callbacks). */
#define FORWARD_OPTION(r, h, opt, ap)                                                                      \
        do {                                                                                               \
                if ((opt) < CURLOPTTYPE_OBJECTPOINT)                                                       \
                        r = fn_(h, opt, va_arg(ap, long));                                                 \
                else if ((opt) >= CURLOPTTYPE_OFF_T && (opt) < CURLOPTTYPE_BLOB)                           \
                        r = fn_(h, opt, va_arg(ap, curl_off_t));                                           \
                else                                                                                       \
                        r = fn_(h, opt, va_arg(ap, void *));                                               \
        } while (0)

CURLcode curl_easy_setopt(CURL *c, CURLoption opt, ...) {
        REAL(LIB_CURL, CURLcode (*)(CURL *, CURLoption, ...), "curl_easy_setopt");
        CURLcode r;
        va_list ap;

        if (!fn_)
                return CURLE_FAILED_INIT;
        va_start(ap, opt);
        FORWARD_OPTION(r, c, opt, ap);
        va_end(ap);
        return r;
}

const char *curl_easy_strerror(CURLcode code) {
        REAL(LIB_CURL, const char *(*)(CURLcode), "curl_easy_strerror");
        return fn_ ? fn_(code) : "libcurl is not available";
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s) {
        REAL(LIB_CURL, struct curl_slist *(*)(struct curl_slist *, const char *), "curl_slist_append");
        return fn_ ? fn_(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l) {
        REAL(LIB_CURL, void (*)(struct curl_slist *), "curl_slist_free_all");
        if (fn_)
                fn_(l);
}

time_t curl_getdate(const char *s, const time_t *unused) {
        REAL(LIB_CURL, time_t (*)(const char *, const time_t *), "curl_getdate");
        return fn_ ? fn_(s, unused) : -1;
}

CURLSH *curl_share_init(void) {
        REAL(LIB_CURL, CURLSH *(*)(void), "curl_share_init");
        return fn_ ? fn_() : NULL;
}

/* CURLSHOPT_SHARE and _UNSHARE take an int (a CURL_LOCK_DATA_*), the
 * others a pointer (the lock functions, their user data). */
CURLSHcode curl_share_setopt(CURLSH *sh, CURLSHoption opt, ...) {
        REAL(LIB_CURL, CURLSHcode (*)(CURLSH *, CURLSHoption, ...), "curl_share_setopt");
        CURLSHcode r;
        va_list ap;

        if (!fn_)
                return CURLSHE_NOMEM;
        va_start(ap, opt);
        if (opt == CURLSHOPT_SHARE || opt == CURLSHOPT_UNSHARE)
                r = fn_(sh, opt, va_arg(ap, int));
        else
                r = fn_(sh, opt, va_arg(ap, void *));
        va_end(ap);
        return r;
}

CURLSHcode curl_share_cleanup(CURLSH *sh) {
        REAL(LIB_CURL, CURLSHcode (*)(CURLSH *), "curl_share_cleanup");
        return fn_ ? fn_(sh) : CURLSHE_INVALID;
}

CURLM *curl_multi_init(void) {
        REAL(LIB_CURL, CURLM *(*)(void), "curl_multi_init");
        return fn_ ? fn_() : NULL;
}

CURLMcode curl_multi_cleanup(CURLM *m) {
        REAL(LIB_CURL, CURLMcode (*)(CURLM *), "curl_multi_cleanup");
        return fn_ ? fn_(m) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...) {
        REAL(LIB_CURL, CURLMcode (*)(CURLM *, CURLMoption, ...), "curl_multi_setopt");
        CURLMcode r;
        va_list ap;

        if (!fn_)
                return CURLM_OUT_OF_MEMORY;
        va_start(ap, opt);
        FORWARD_OPTION(r, m, opt, ap);
        va_end(ap);
        return r;
}

CURLMcode curl_multi_add_handle(CURLM *m, CURL *c) {
        REAL(LIB_CURL, CURLMcode (*)(CURLM *, CURL *), "curl_multi_add_handle");
        return fn_ ? fn_(m, c) : CURLM_OUT_OF_MEMORY;
}

CURLMcode curl_multi_remove_handle(CURLM *m, CURL *c) {
        REAL(LIB_CURL, CURLMcode (*)(CURLM *, CURL *), "curl_multi_remove_handle");
        return fn_ ? fn_(m, c) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_perform(CURLM *m, int *running) {
        REAL(LIB_CURL, CURLMcode (*)(CURLM *, int *), "curl_multi_perform");
        return fn_ ? fn_(m, running) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_poll(CURLM *m, struct curl_waitfd *extra, unsigned n_extra, int timeout_ms, int *numfds) {
        REAL(LIB_CURL, CURLMcode (*)(CURLM *, struct curl_waitfd *, unsigned, int, int *), "curl_multi_poll");
        return fn_ ? fn_(m, extra, n_extra, timeout_ms, numfds) : CURLM_BAD_HANDLE;
}

CURLMsg *curl_multi_info_read(CURLM *m, int *left) {
        REAL(LIB_CURL, CURLMsg *(*)(CURLM *, int *), "curl_multi_info_read");
        return fn_ ? fn_(m, left) : NULL;
}

/* ---- libxml2 ---- */

void xmlInitParser(void) {
        REAL(LIB_XML, void (*)(void), "xmlInitParser");
        if (fn_)
                fn_();
}

xmlDocPtr xmlReadMemory(const char *buf, int size, const char *url, const char *encoding, int options) {
        REAL(LIB_XML, xmlDocPtr (*)(const char *, int, const char *, const char *, int), "xmlReadMemory");
        return fn_ ? fn_(buf, size, url, encoding, options) : NULL;
}

xmlNodePtr xmlDocGetRootElement(const xmlDoc *doc) {
        REAL(LIB_XML, xmlNodePtr (*)(const xmlDoc *), "xmlDocGetRootElement");
        return fn_ ? fn_(doc) : NULL;
}

xmlChar *xmlNodeGetContent(const xmlNode *n) {
        REAL(LIB_XML, xmlChar *(*)(const xmlNode *), "xmlNodeGetContent");
        return fn_ ? fn_(n) : NULL;
}

void xmlFreeDoc(xmlDocPtr doc) {
        REAL(LIB_XML, void (*)(xmlDocPtr), "xmlFreeDoc");
        if (fn_)
                fn_(doc);
}

/* libxml2's xmlFree is a variable holding its deallocator. */
void az_xml_free(void *p) {
        REAL(LIB_XML, xmlFreeFunc *, "xmlFree");
        if (fn_ && p)
                (*fn_)(p);
}

/* ---- libcrypto ---- */

const EVP_MD *EVP_sha256(void) {
        REAL(LIB_CRYPTO, const EVP_MD *(*)(void), "EVP_sha256");
        return fn_ ? fn_() : NULL;
}

unsigned char *HMAC(const EVP_MD *md, const void *key, int key_len, const unsigned char *data, size_t data_len,
                    unsigned char *out, unsigned int *out_len) {
        REAL(LIB_CRYPTO,
             unsigned char *(*)(const EVP_MD *, const void *, int, const unsigned char *, size_t, unsigned char *,
                                unsigned int *),
             "HMAC");
        return fn_ && md ? fn_(md, key, key_len, data, data_len, out, out_len) : NULL;
}

int EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n) {
        REAL(LIB_CRYPTO, int (*)(unsigned char *, const unsigned char *, int), "EVP_EncodeBlock");
        return fn_ ? fn_(t, f, n) : -1;
}

int EVP_DecodeBlock(unsigned char *t, const unsigned char *f, int n) {
        REAL(LIB_CRYPTO, int (*)(unsigned char *, const unsigned char *, int), "EVP_DecodeBlock");
        return fn_ ? fn_(t, f, n) : -1;
}
