/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Azure: what a request's transfer sees. curl's callbacks (the response
 * body into the request's buffer or sink, the headers a caller asked for,
 * the upload body), and what curl's and HTTP's outcomes mean as -errno:
 * which failures are transient (error_transient() then retries them) and
 * which are final. HTTP and curl errors become -errno here and nowhere
 * else; azure-http.c runs the attempts and decides on retries.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "azure_i.h"
#include "common.h"

/* ---- curl callbacks: the response body and headers, the request body ---- */

size_t az_on_write(char *p, size_t size, size_t nmemb, void *u) {
        struct az_req *r = u;
        size_t n = size * nmemb;

        if (r->in_error_body)
                return n; /* the error's XML: x-ms-error-code says enough */
        switch (r->out) {
        case AZ_OUT_MEM:
                if (r->resp_len + n + 1 > r->resp_cap) {
                        size_t ncap = MAX(2 * r->resp_cap, r->resp_len + n + 1);
                        char *np;
                        if (r->have_cl && r->content_length + 1 > ncap && r->content_length < (1ull << 32))
                                ncap = (size_t)r->content_length + 1;
                        np = realloc(r->resp, ncap);
                        if (!np)
                                return 0;
                        r->resp = np;
                        r->resp_cap = ncap;
                }
                memcpy(r->resp + r->resp_len, p, n);
                r->resp[r->resp_len + n] = 0;
                break;
        case AZ_OUT_BUF:
                if (r->resp_len + n > r->out_cap) {
                        r->overflow = true;
                        return 0;
                }
                memcpy((char *)r->out_buf + r->resp_len, p, n);
                break;
        case AZ_OUT_FD:
                if (write_full(r->out_fd, p, n) < 0)
                        return 0;
                break;
        }
        r->resp_len += n;
        return n;
}

/* Copy a header's value (trimmed) into buf. */
static bool header_value(const char *line, size_t n, const char *name, char *buf, size_t cap) {
        size_t k = strlen(name), m;

        if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
                return false;
        line += k + 1;
        n -= k + 1;
        while (n > 0 && (*line == ' ' || *line == '\t')) {
                line++;
                n--;
        }
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n' || line[n - 1] == ' '))
                n--;
        m = MIN(n, cap - 1);
        memcpy(buf, line, m);
        buf[m] = 0;
        return true;
}

size_t az_on_header(char *p, size_t size, size_t nmemb, void *u) {
        az_header_line(u, p, size * nmemb);
        return size * nmemb;
}

void az_header_line(struct az_req *r, const char *p, size_t n) {
        char v[64];

        if (n > 5 && strncmp(p, "HTTP/", 5) == 0) {
                const char *sp = memchr(p, ' ', n);
                char code[8] = "";
                /* the line is not NUL-terminated: the code is copied first */
                if (sp)
                        memcpy(code, sp + 1, MIN(n - (size_t)(sp + 1 - p), sizeof code - 1));
                r->status = strtol(code, NULL, 10);
                r->in_error_body = r->status >= 300;
                r->error_code[0] = 0;
                r->meta_put[0] = 0;
                r->have_cl = false;
                r->retry_after = 0;
                r->date = 0;
        } else if (header_value(p, n, "Date", v, sizeof v)) {
                time_t t = curl_getdate(v, NULL);
                r->date = t > 0 ? t : 0;
        } else if (header_value(p, n, "x-ms-error-code", r->error_code, sizeof r->error_code)) {
        } else if (header_value(p, n, "x-ms-meta-rpfsput", r->meta_put, sizeof r->meta_put)) {
        } else if (header_value(p, n, "Content-Length", v, sizeof v)) {
                char *end;
                unsigned long long cl = strtoull(v, &end, 10);
                r->have_cl = *v && !*end;
                r->content_length = cl;
        } else if (header_value(p, n, "Retry-After", v, sizeof v)) {
                char *end;
                double d = strtod(v, &end);
                if (*v && !*end && d > 0)
                        r->retry_after = MIN(d, 600);
        }
}

size_t az_on_read(char *buf, size_t size, size_t nmemb, void *u) {
        struct az_req *r = u;
        size_t n = MIN(size * nmemb, r->body_len - r->body_pos);

        memcpy(buf, (const char *)r->body + r->body_pos, n);
        r->body_pos += n;
        return n;
}

int az_on_seek(void *u, curl_off_t off, int origin) {
        struct az_req *r = u;

        if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->body_len)
                return CURL_SEEKFUNC_CANTSEEK;
        r->body_pos = (size_t)off;
        return CURL_SEEKFUNC_OK;
}

/* ---- outcomes as -errno ---- */

/* curl's failure as an errno value, for error_transient() to classify:
 * the transport failures are transient, everything else is not (the
 * result the caller sees after retries is -EIO either way). */
int az_curl_errno(CURLcode cc) {
        switch (cc) {
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_SSL_CONNECT_ERROR:
                return -ECONNRESET;
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_WEIRD_SERVER_REPLY:
                return -ECONNABORTED;
        default:
                return -ENOTRECOVERABLE;
        }
}

/* The errno value of an HTTP status that is worth retrying (408, 429, 500,
 * 502, 503, 504: timeouts, throttling, a failing server), for
 * error_transient(); 0 for the others. */
int az_status_retry_errno(long status) {
        switch (status) {
        case 408:
        case 504:
                return -ETIMEDOUT;
        case 429:
        case 503:
                return -EAGAIN;
        case 500:
        case 502:
                return -EIO;
        default:
                return 0;
        }
}

bool az_status_transient(long status) {
        return error_transient(az_status_retry_errno(status));
}

int az_status_errno(long status) {
        if (status >= 200 && status < 300)
                return 0;
        switch (status) {
        case 401:
        case 403:
                return -EACCES;
        case 404:
                return -ENOENT;
        case 409:
        case 412:
                return -EEXIST;
        case 416:
                return -EBADMSG;
        default:
                return az_status_transient(status) ? -EIO : -EPROTO;
        }
}
