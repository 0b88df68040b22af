/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Points catalog and manifests: commit, exclusivity, list order,
 * latest/latest-app, manifest round trip and chunk sharing. */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "retention.h"
#include "store.h"

static int failures;
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #x); failures++; } } while (0)

static void hash_of(uint64_t i, struct hash128 *h) {
        store_hash(&i, sizeof i, h);
}

static int make_point(struct store *s, const char *vm, const char *id, bool app, uint64_t n_blocks, uint64_t salt,
                      uint64_t *ret_new_blobs) {
        struct store_writer *w;
        struct store_codec *c;
        struct ret_manifest_writer *m;
        struct ret_point p = { 0 };
        struct ret_disk d = { 0 };
        int r;

        CHECK(store_writer_new(s, &w) == 0);
        CHECK(store_codec_new(s, &c) == 0);
        CHECK(ret_manifest_writer_new(w, c, &m) == 0);
        for (uint64_t i = 0; i < n_blocks; i++) {
                struct hash128 h;
                if (i % 7 == 3)
                        memset(&h, 0, sizeof h);
                else
                        hash_of(i == 1000 ? i + salt : i, &h);
                CHECK(ret_manifest_writer_add(m, &h) == 0);
        }
        CHECK(ret_manifest_writer_finish(m, &d) == 0);
        ret_manifest_writer_free(m);
        CHECK(store_writer_flush(w) == 0);
        store_writer_stats(w, NULL, ret_new_blobs);
        store_writer_free(w);
        store_codec_free(c);

        snprintf(d.name, sizeof d.name, "disk0");
        snprintf(d.format, sizeof d.format, "raw");
        d.size = n_blocks * 65536 - 100;
        d.n_blocks = n_blocks;
        snprintf(p.vm, sizeof p.vm, "%s", vm);
        snprintf(p.id, sizeof p.id, "%s", id);
        CHECK(point_id_parse(id, &p.time) == 0);
        p.app = app;
        p.block_size = 65536;
        p.disks = &d;
        p.n_disks = 1;
        r = ret_point_commit(s, &p);
        free(d.chunks);
        return r;
}

int main(void) {
        char dir[] = "/tmp/rpfs-test-ret-XXXXXX", vault[256], cmd[300];
        struct store *s;
        struct ret_point **v, *p;
        struct ret_manifest *m;
        size_t n;
        uint64_t blobs1 = 0, blobs2 = 0;

        CHECK(mkdtemp(dir) != NULL);
        snprintf(vault, sizeof vault, "%s/v", dir);
        CHECK(store_init(vault, 65536, 3) == 0);
        CHECK(store_open(vault, &s) == 0);

        CHECK(make_point(s, "web01", "20261122T101500Z", false, 3000, 0, &blobs1) == 0);
        CHECK(blobs1 == 7); /* ceil(3000/512) chunks and their tree (one root node) */
        CHECK(make_point(s, "web01", "20261122T101500Z", false, 10, 0, NULL) == -EEXIST);
        /* One changed block: only its chunk and the root node are new. */
        CHECK(make_point(s, "web01", "20261122T103000Z", true, 3000, 1, &blobs2) == 0);
        CHECK(blobs2 == 2);
        CHECK(make_point(s, "web01", "20261122T104500Z", false, 3000, 2, NULL) == 0);
        CHECK(make_point(s, "db01", "20261122T090000Z", false, 10, 0, NULL) == 0);

        CHECK(ret_points_list(s, NULL, &v, &n) == 0);
        CHECK(n == 4);
        if (n == 4) {
                CHECK(strcmp(v[0]->vm, "db01") == 0);
                CHECK(strcmp(v[1]->id, "20261122T101500Z") == 0);
                CHECK(strcmp(v[3]->id, "20261122T104500Z") == 0);
                CHECK(v[2]->app && !v[1]->app);
        }
        ret_points_free(v, n);
        CHECK(ret_points_list(s, "web01", &v, &n) == 0 && n == 3);
        ret_points_free(v, n);
        CHECK(ret_points_list(s, "nosuch", &v, &n) == 0 && n == 0);
        ret_points_free(v, n);

        CHECK(ret_point_resolve(s, "web01", "latest", &p) == 0 && strcmp(p->id, "20261122T104500Z") == 0);
        ret_point_free(p);
        CHECK(ret_point_resolve(s, "web01", "latest-app", &p) == 0 && strcmp(p->id, "20261122T103000Z") == 0);
        ret_point_free(p);
        CHECK(ret_point_resolve(s, "db01", "latest-app", &p) == -ENOENT);
        CHECK(ret_point_resolve(s, "web01", "20261122T000000Z", &p) == -ENOENT);

        /* Manifest round trip. */
        CHECK(ret_point_load(s, "web01", "20261122T103000Z", &p) == 0);
        CHECK(p->n_disks == 1 && p->disks[0].n_blocks == 3000 && p->disks[0].size == 3000 * 65536 - 100);
        CHECK(ret_point_disk(p, "disk0") != NULL && ret_point_disk(p, "disk1") == NULL);
        CHECK(ret_manifest_open(s, &p->disks[0], &m) == 0);
        for (uint64_t i = 0; i < 3000; i += (i < 1100 ? 1 : 13)) {
                struct hash128 got, want;
                if (i % 7 == 3)
                        memset(&want, 0, sizeof want);
                else
                        hash_of(i == 1000 ? i + 1 : i, &want);
                CHECK(ret_manifest_get(m, i, &got) == 0);
                CHECK(memcmp(&got, &want, sizeof got) == 0);
        }
        {
                struct hash128 got;
                CHECK(ret_manifest_get(m, 3000, &got) == -ENOENT);
        }
        ret_manifest_free(m);
        ret_point_free(p);

        store_free(s);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
        if (failures)
                fprintf(stderr, "%d check(s) failed\n", failures);
        return failures ? 1 : 0;
}
