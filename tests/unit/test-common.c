/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

static int failures;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x); failures++; } } while (0)

static atomic_int counter;
static void job(void *arg) { atomic_fetch_add(&counter, *(int *)arg); }

int main(void) {
        uint64_t v;
        time_t t;
        char buf[64];
        uint8_t bytes[4] = { 0xde, 0xad, 0x00, 0x7f }, back[4];

        /* the one classification of transient errors, and the profiles */
        CHECK(error_transient(-EIO) && error_transient(-ETIMEDOUT) && error_transient(-ECONNREFUSED));
        CHECK(error_transient(-EAGAIN) && error_transient(-ENOSPC) && error_transient(-ENOMEM));
        CHECK(!error_transient(-EACCES) && !error_transient(-EBADMSG) && !error_transient(-ENOENT));
        CHECK(!error_transient(-EPROTO) && !error_transient(-EINVAL) && !error_transient(0));
        {
                enum retry_profile rp;
                CHECK(retry_profile_parse("site-recovery", &rp) == 0 && rp == RETRY_SITE_RECOVERY);
                CHECK(retry_profile_parse("none", &rp) == 0 && rp == RETRY_NONE);
                CHECK(retry_profile_parse("default", &rp) == 0 && rp == RETRY_DEFAULT);
                CHECK(retry_profile_parse("forever", &rp) == -EINVAL);
                CHECK(retry_delay(RETRY_DEFAULT, 1) == 1 && retry_delay(RETRY_DEFAULT, 6) == 30);
                CHECK(retry_delay(RETRY_DEFAULT, 7) < 0 && retry_delay(RETRY_NONE, 1) < 0);
                CHECK(retry_delay(RETRY_SITE_RECOVERY, 5) == 600 && retry_delay(RETRY_SITE_RECOVERY, 50) == 1800);
        }
        /* byte order */
        {
                uint8_t b8[8];
                put_le64(b8, 0x0102030405060708ull);
                CHECK(b8[0] == 8 && b8[7] == 1 && get_le64(b8) == 0x0102030405060708ull && get_le32(b8) == 0x05060708u);
                put_be64(b8, 0x0102030405060708ull);
                CHECK(b8[0] == 1 && b8[7] == 8 && get_be64(b8) == 0x0102030405060708ull && get_be16(b8) == 0x0102);
                put_be32(b8, 0xdeadbeef);
                put_le16(b8 + 4, 0x1234);
                CHECK(get_be32(b8) == 0xdeadbeef && get_le16(b8 + 4) == 0x1234);
        }

        CHECK(parse_size("64K", &v) == 0 && v == 65536);
        CHECK(parse_size("1M", &v) == 0 && v == 1048576);
        CHECK(parse_size("20G", &v) == 0 && v == 20ULL << 30);
        CHECK(parse_size("4MiB", &v) == 0 && v == 4ULL << 20);
        CHECK(parse_size("512", &v) == 0 && v == 512);
        CHECK(parse_size("", &v) == -EINVAL);
        CHECK(parse_size("12Q", &v) == -EINVAL);
        CHECK(parse_size("-1K", &v) == -EINVAL);
        CHECK(parse_size("99999999999999999999", &v) == -ERANGE);
        CHECK(parse_size("99999999999T", &v) == -ERANGE);

        CHECK(point_id_parse("20261122T101500Z", &t) == 0);
        point_id_format(t, buf);
        CHECK(strcmp(buf, "20261122T101500Z") == 0);
        time_format_iso(t, buf);
        CHECK(strcmp(buf, "2026-11-22T10:15:00Z") == 0);
        CHECK(point_id_parse("2026-11-22T10:15:00Z", &t) == -EINVAL);
        CHECK(point_id_parse("20261322T101500Z", &t) == -EINVAL);
        CHECK(point_id_parse("20261122T246000Z", &t) == -EINVAL);
        CHECK(point_id_parse("20261122T101500", &t) == -EINVAL);
        CHECK(point_id_parse("2026112xT101500Z", &t) == -EINVAL);

        CHECK(name_is_valid("web01"));
        CHECK(name_is_valid("db.prod_2-a"));
        CHECK(!name_is_valid(""));
        CHECK(!name_is_valid(".hidden"));
        CHECK(!name_is_valid("-x"));
        CHECK(!name_is_valid("a/b"));
        CHECK(!name_is_valid("a b"));

        hex_encode(bytes, 4, buf);
        CHECK(strcmp(buf, "dead007f") == 0);
        CHECK(hex_decode("dead007f", back, 4) == 0 && memcmp(back, bytes, 4) == 0);
        CHECK(hex_decode("dead007", back, 4) == -EINVAL);
        CHECK(hex_decode("deadz07f", back, 4) == -EINVAL);

        {
                static uint8_t z[65536];
                CHECK(mem_is_zero(z, sizeof z));
                CHECK(mem_is_zero(z, 3));
                z[65535] = 1;
                CHECK(!mem_is_zero(z, sizeof z));
                z[65535] = 0;
                z[7] = 1;
                CHECK(!mem_is_zero(z, sizeof z));
                z[7] = 0;
                z[20] = 1;
                CHECK(!mem_is_zero(z, sizeof z));
        }

        CHECK(strcmp(format_bytes(1536, buf, sizeof buf), "1.50 KiB") == 0);
        CHECK(strcmp(format_bytes(12, buf, sizeof buf), "12 B") == 0);

        {
                struct pool *p;
                static int one = 1;
                CHECK(pool_new(3, 2, &p) == 0);
                for (int i = 0; i < 1000; i++)
                        pool_submit(p, job, &one);
                pool_wait(p);
                CHECK(atomic_load(&counter) == 1000);
                pool_free(p);
        }

        {
                char dir[] = "/tmp/rpfs-test-common-XXXXXX", path[128], *data;
                size_t len;
                CHECK(mkdtemp(dir) != NULL);
                snprintf(path, sizeof path, "%s/a/b/c", dir);
                CHECK(mkdir_p(path, 0755) == 0);
                snprintf(path, sizeof path, "%s/a/f", dir);
                CHECK(write_file_atomic(path, "hello", 5, true) == 0);
                CHECK(write_file_atomic(path, "other", 5, true) == -EEXIST);
                CHECK(read_file_all(path, &data, &len) == 0 && len == 5 && strcmp(data, "hello") == 0);
                free(data);
                CHECK(write_file_atomic(path, "replaced", 8, false) == 0);
                CHECK(read_file_all(path, &data, &len) == 0 && len == 8);
                free(data);
                /* tmpfile: nothing under path until commit; abort leaves nothing */
                {
                        struct tmpfile tf;
                        char cmd[256], p2[160];
                        snprintf(p2, sizeof p2, "%s/a/g", dir);
                        CHECK(tmpfile_open(&tf, p2, 0600) == 0);
                        CHECK(write_full(tf.fd, "xy", 2) == 0);
                        CHECK(access(p2, F_OK) < 0);
                        CHECK(tmpfile_commit(&tf, 0) == 0 && tf.fd == -1);
                        CHECK(read_file_all(p2, &data, &len) == 0 && len == 2);
                        free(data);
                        CHECK(tmpfile_open(&tf, p2, 0600) == 0);
                        CHECK(write_full(tf.fd, "zz", 2) == 0);
                        CHECK(tmpfile_commit(&tf, TMPFILE_EXCLUSIVE) == -EEXIST);
                        CHECK(tmpfile_open(&tf, p2, 0600) == 0);
                        tmpfile_abort(&tf);
                        /* only f and g are left in a/ (plus b/): no temporary */
                        snprintf(cmd, sizeof cmd, "test $(ls -A %s/a | wc -l) -eq 3", dir);
                        CHECK(system(cmd) == 0);
                }
                snprintf(path, sizeof path, "rm -rf %s", dir);
                CHECK(system(path) == 0);
        }

        /* large buffers: aligned for O_DIRECT (2 MiB when huge), whole */
        {
                static const size_t sizes[] = { 4096, 65536 + 512, 2u << 20, (16u << 20) + 4096 };
                for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
                        uint8_t *p = alloc_large(sizes[i]);
                        CHECK(p != NULL);
                        if (!p)
                                continue;
                        CHECK((uintptr_t)p % (sizes[i] >= (2u << 20) ? (2u << 20) : 4096) == 0);
                        memset(p, 0xa5, sizes[i]);
                        CHECK(p[0] == 0xa5 && p[sizes[i] - 1] == 0xa5);
                        free(p);
                }
        }

        if (failures)
                fprintf(stderr, "%d check(s) failed\n", failures);
        return failures ? 1 : 0;
}
