/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * thin_delta XML as --changed extents (sync/thin-delta.c): the plain and
 * --verbose output of thin-provisioning-tools' thin_delta (kept here as
 * that tool printed it, and generated again when the tool is installed:
 * thin_restore writes pool metadata into a plain file from XML, thin_delta
 * reads it; no device-mapper needed), block sizes from the XML and from
 * --changed-block-size, and malformed input refused with its line.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common.h"
#include "sync.h"
#include "unit.h"

/* thin_delta --snap1 1 --snap2 2 of the metadata below (0.9.0). */
static const char plain[] =
        "<superblock uuid=\"\" time=\"1\" transaction=\"2\" data_block_size=\"128\" nr_data_blocks=\"1024\">\n"
        "  <diff left=\"1\" right=\"2\">\n"
        "    <same begin=\"0\" length=\"2\"/>\n"
        "    <different begin=\"2\" length=\"2\"/>\n"
        "    <left_only begin=\"10\" length=\"2\"/>\n"
        "    <right_only begin=\"20\" length=\"1\"/>\n"
        "    <right_only begin=\"30\" length=\"3\"/>\n"
        "  </diff>\n"
        "</superblock>\n";

static const char verbose[] =
        "<superblock uuid=\"\" time=\"1\" transaction=\"2\" data_block_size=\"128\" nr_data_blocks=\"1024\">\n"
        "  <diff left=\"1\" right=\"2\">\n"
        "    <same>\n"
        "      <range begin=\"0\" data_begin=\"0\" length=\"2\"/>\n"
        "    </same>\n"
        "    <different>\n"
        "      <range begin=\"2\" left_data_begin=\"2\" right_data_begin=\"100\" length=\"2\"/>\n"
        "    </different>\n"
        "    <left_only>\n"
        "      <range begin=\"10\" data_begin=\"10\" length=\"2\"/>\n"
        "    </left_only>\n"
        "    <right_only>\n"
        "      <range begin=\"20\" data_begin=\"200\" length=\"1\"/>\n"
        "      <range begin=\"30\" data_begin=\"300\" length=\"3\"/>\n"
        "    </right_only>\n"
        "  </diff>\n"
        "</superblock>\n";

/* The pool metadata thin_restore makes: device 1 (the base), device 2
 * (its snapshot, then written). */
static const char metadata[] =
        "<superblock uuid=\"\" time=\"1\" transaction=\"2\" data_block_size=\"128\" nr_data_blocks=\"1024\">\n"
        "  <device dev_id=\"1\" mapped_blocks=\"6\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n"
        "    <range_mapping origin_begin=\"0\" data_begin=\"0\" length=\"4\" time=\"0\"/>\n"
        "    <range_mapping origin_begin=\"10\" data_begin=\"10\" length=\"2\" time=\"0\"/>\n"
        "  </device>\n"
        "  <device dev_id=\"2\" mapped_blocks=\"7\" transaction=\"1\" creation_time=\"1\" snap_time=\"1\">\n"
        "    <range_mapping origin_begin=\"0\" data_begin=\"0\" length=\"2\" time=\"0\"/>\n"
        "    <range_mapping origin_begin=\"2\" data_begin=\"100\" length=\"2\" time=\"1\"/>\n"
        "    <single_mapping origin_block=\"20\" data_block=\"200\" time=\"1\"/>\n"
        "    <range_mapping origin_begin=\"30\" data_begin=\"300\" length=\"3\" time=\"1\"/>\n"
        "  </device>\n"
        "</superblock>\n";

#define K64 65536u
#define DISK (UINT64_C(64) << 20)

static char path[256];

static int load(const char *text, uint64_t bs, uint64_t size, struct sync_extent **v, size_t *n, char *why) {
        FILE *f = fopen(path, "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0)
                return -EIO;
        return sync_extents_load_bs(path, size, bs, v, n, why, 256);
}

/* The changed ranges of the sample at block size bs: 2+2 and 10+2 merge
 * into 2..4 and 10..12; 20+1; 30+3. */
static void check_sample(const char *name, const char *text, uint64_t opt_bs, uint64_t bs) {
        struct sync_extent *v = NULL;
        size_t n = 0;
        char why[256] = "";
        int r = load(text, opt_bs, DISK, &v, &n, why);

        if (r < 0)
                fprintf(stderr, "%s: %d %s\n", name, r, why);
        CHECK(r == 0 && n == 4);
        if (r == 0 && n == 4) {
                CHECK(v[0].start == 2 * bs && v[0].length == 2 * bs);
                CHECK(v[1].start == 10 * bs && v[1].length == 2 * bs);
                CHECK(v[2].start == 20 * bs && v[2].length == bs);
                CHECK(v[3].start == 30 * bs && v[3].length == 3 * bs);
                printf("ok %-10s 4 changed ranges at %" PRIu64 "-byte blocks\n", name, bs);
        }
        free(v);
}

static void check_bad(const char *name, const char *text, uint64_t bs, const char *want) {
        struct sync_extent *v = NULL;
        size_t n = 0;
        char why[256] = "";
        int r = load(text, bs, DISK, &v, &n, why);

        if (r >= 0 || !strstr(why, want))
                fprintf(stderr, "%s: gave %d '%s', want an error with '%s'\n", name, r, why, want);
        CHECK(r < 0 && strstr(why, want));
        if (r < 0)
                printf("ok %-10s refused: %s\n", name, why);
        free(v);
}

/* Real thin_delta output, when thin-provisioning-tools is installed. */
static void check_tool(void) {
        char cmd[1024];
        _cleanup_free_ char *out = NULL;
        size_t len;

        snprintf(cmd, sizeof cmd,
                 "command -v thin_restore >/dev/null && cd %s && cat > md.xml && truncate -s 8M md.bin && "
                 "thin_restore -q -i md.xml -o md.bin && thin_delta --snap1 1 --snap2 2 md.bin > plain.xml && "
                 "thin_delta --verbose --snap1 1 --snap2 2 md.bin > verbose.xml",
                 unit_dir);
        FILE *p = popen(cmd, "w");
        if (!p || fputs(metadata, p) < 0 || pclose(p) != 0) {
                printf("skip part: thin_restore/thin_delta (thin-provisioning-tools) not usable\n");
                return;
        }
        for (int i = 0; i < 2; i++) {
                snprintf(cmd, sizeof cmd, "%s/%s", unit_dir, i ? "verbose.xml" : "plain.xml");
                CHECK(read_file_all(cmd, &out, &len) == 0);
                if (out) {
                        CHECK(strcmp(out, i ? verbose : plain) == 0); /* the tool's format, as kept above */
                        check_sample(i ? "tool-verb" : "tool", out, 0, 128 * 512);
                }
                free(out);
                out = NULL;
        }
}

int main(void) {
        unit_tmpdir("thin-delta");
        snprintf(path, sizeof path, "%s/delta.xml", unit_dir);
        check_sample("plain", plain, 0, K64);
        check_sample("verbose", verbose, 0, K64);
        check_sample("plain-opt", plain, K64, K64);
        check_tool();

        /* no data_block_size: --changed-block-size gives it */
        char nobs[sizeof plain];
        const char *at = strstr(plain, " data_block_size=\"128\"");
        snprintf(nobs, sizeof nobs, "%.*s%s", (int)(at - plain), plain, at + strlen(" data_block_size=\"128\""));
        check_sample("no-bs-opt", nobs, 1 << 20, 1 << 20);
        check_bad("no-bs", nobs, 0, "give --changed-block-size");
        check_bad("bs-differ", plain, 1 << 20, "--changed-block-size says");
        check_bad("past-end", nobs, 4 << 20, "passes the disk's end");
        check_bad("not-delta", "<superblock>\n<device dev_id=\"1\">\n", 0, "line 2: thin_delta XML: unexpected element");
        check_bad("no-diff", "<superblock data_block_size=\"128\">\n</superblock>\n", 0, "no <diff>");
        check_bad("bad-num", "<superblock data_block_size=\"128\"><diff>\n<different begin=\"x\" length=\"1\"/>", 0,
                  "line 2: thin_delta XML: a range needs");
        check_bad("overflow", "<superblock data_block_size=\"128\"><diff><right_only begin=\"99999999999999999999\" length=\"1\"/>",
                  0, "a range needs");
        check_bad("huge", "<superblock data_block_size=\"128\"><diff><right_only begin=\"999999999999999999\" length=\"1\"/>",
                  0, "range too large");
        check_bad("text", "<superblock data_block_size=\"128\"><diff>hello", 0, "text outside tags");
        check_bad("unterm", "<superblock data_block_size=\"128\"><diff><same begin=\"1\"", 0, "unterminated tag");
        check_bad("outside", "<superblock data_block_size=\"128\"><right_only begin=\"1\" length=\"1\"/>", 0,
                  "a range outside <diff>");
        check_bad("two-diffs", "<superblock data_block_size=\"128\"><diff></diff><diff></diff>", 0, "more than one");
        return unit_exit();
}
