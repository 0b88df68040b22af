/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Failback journals and fingerprints.
 *
 * A journal is one small JSON object per target, replaced atomically
 * (temp file, fsync, rename, fsync of the directory), so that after a crash
 * it is the old or the new version, never a torn one. Its high-water mark
 * done_blocks only moves after fdatasync of the target: every block below
 * it is durably at the recorded point, whatever happened after.
 *
 * A fingerprint tells whether anything wrote to a target since rpfs last
 * did, without reading it all:
 *   - regular file: device, inode, size, mtime and ctime. Every write
 *     changes mtime and ctime, and ctime cannot be set back by a program;
 *   - block device: device number and size, and the kernel's count of
 *     sectors written to it (/sys/dev/block/M:m/stat) when the machine has
 *     not rebooted since (same boot_id): any write at all moves it;
 *   - both: the checksums of FB_SAMPLES blocks (the first, the last and
 *     evenly spaced ones; the first holds partition tables and file system
 *     superblocks, which mounting rewrites).
 * A change the sample misses on a block device after a reboot is possible;
 * --complete is a promise by the operator that the target was left alone,
 * and this check catches the ordinary ways of breaking it.
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sysmacros.h>

#include "failback_i.h"

#define JOURNAL_FORMAT "rpfs-failback-journal"
#define JOURNAL_VERSION 1

static const char *const jstate_names[] = {
        [FB_J_NONE] = "none",
        [FB_J_SYNCING] = "syncing",
        [FB_J_CONSISTENT] = "consistent",
        [FB_J_COMMITTED] = "committed",
};

const char *fb_jstate_name(enum fb_jstate s) { return jstate_names[s]; }

int fb_journal_init(struct fb_journal *j, const char *state_dir, const char *target_real) {
        unsigned long long key = (unsigned long long)store_hash64(target_real, strlen(target_real));

        memset(j, 0, sizeof *j);
        j->lock_fd = -1;
        if (snprintf(j->path, sizeof j->path, "%s/%016llx.json", state_dir, key) >= (int)sizeof j->path ||
            snprintf(j->lock_path, sizeof j->lock_path, "%s/%016llx.lock", state_dir, key) >=
                    (int)sizeof j->lock_path ||
            snprintf(j->target, sizeof j->target, "%s", target_real) >= (int)sizeof j->target)
                return -ENAMETOOLONG;
        return 0;
}

int fb_journal_lock(struct fb_journal *j) {
        char dir[PATH_MAX], *slash;
        int r;

        if (j->lock_fd >= 0)
                return 0;
        snprintf(dir, sizeof dir, "%s", j->lock_path);
        slash = strrchr(dir, '/');
        if (slash) {
                *slash = 0;
                r = mkdir_p(dir, 0700);
                if (r < 0)
                        return r;
        }
        j->lock_fd = open(j->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (j->lock_fd < 0)
                return -errno;
        if (flock(j->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                close(j->lock_fd);
                j->lock_fd = -1;
                return r;
        }
        return 0;
}

bool fb_journal_busy(const struct fb_journal *j) {
        _cleanup_close_ int fd = -1;

        if (j->lock_fd >= 0)
                return false;
        fd = open(j->lock_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        return flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
}

void fb_journal_close(struct fb_journal *j) {
        if (j->lock_fd >= 0)
                close(j->lock_fd); /* releases the flock */
        j->lock_fd = -1;
}

/* ---- encoding ---- */

static json_t *fp_to_json(const struct fb_fingerprint *fp) {
        json_t *o, *samples;
        char hex[2 * STORE_HASH_SIZE + 1];

        if (!fp->valid)
                return json_null();
        samples = json_array();
        if (!samples)
                return NULL;
        for (size_t i = 0; i < fp->n; i++) {
                hash_to_hex(&fp->h[i], hex);
                json_array_append_new(samples, json_pack("[I, s]", (json_int_t)fp->blk[i], hex));
        }
        o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:b, s:I, s:o}", "kind",
                      fp->blockdev ? "block-device" : "file", "dev", (json_int_t)fp->dev, "ino",
                      (json_int_t)fp->ino, "rdev", (json_int_t)fp->rdev, "size", (json_int_t)fp->size,
                      "mtime_ns", (json_int_t)fp->mtime_ns, "ctime_ns", (json_int_t)fp->ctime_ns, "boot_id",
                      fp->boot_id, "have_sectors", fp->have_sectors, "sectors_written",
                      (json_int_t)fp->sectors_written, "samples", samples);
        return o;
}

static int fp_from_json(json_t *o, struct fb_fingerprint *fp) {
        json_int_t dev, ino, rdev, size, mt, ct, sec;
        const char *kind, *boot;
        int have = 0;
        json_t *samples, *e;
        size_t i;

        memset(fp, 0, sizeof *fp);
        if (!o || json_is_null(o))
                return 0;
        if (json_unpack(o, "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:b, s:I, s:o}", "kind", &kind, "dev", &dev,
                        "ino", &ino, "rdev", &rdev, "size", &size, "mtime_ns", &mt, "ctime_ns", &ct, "boot_id",
                        &boot, "have_sectors", &have, "sectors_written", &sec, "samples", &samples) < 0 ||
            !json_is_array(samples) || json_array_size(samples) > FB_SAMPLES)
                return -EBADMSG;
        fp->blockdev = strcmp(kind, "block-device") == 0;
        fp->dev = (uint64_t)dev;
        fp->ino = (uint64_t)ino;
        fp->rdev = (uint64_t)rdev;
        fp->size = (uint64_t)size;
        fp->mtime_ns = mt;
        fp->ctime_ns = ct;
        snprintf(fp->boot_id, sizeof fp->boot_id, "%s", boot);
        fp->have_sectors = have;
        fp->sectors_written = (uint64_t)sec;
        json_array_foreach(samples, i, e) {
                json_int_t blk;
                const char *hex;
                if (json_unpack(e, "[I, s]", &blk, &hex) < 0 || strlen(hex) != 2 * STORE_HASH_SIZE ||
                    hex_decode(hex, fp->h[i].b, STORE_HASH_SIZE) < 0)
                        return -EBADMSG;
                fp->blk[i] = (uint64_t)blk;
        }
        fp->n = json_array_size(samples);
        fp->valid = true;
        return 0;
}

int fb_journal_save(struct fb_journal *j) {
        _cleanup_free_ char *text = NULL;
        char started[21], updated[21];
        json_t *o, *fp;

        j->updated = time(NULL);
        if (!j->started)
                j->started = j->updated;
        time_format_iso(j->started, started);
        time_format_iso(j->updated, updated);
        fp = fp_to_json(&j->fp);
        if (!fp)
                return -ENOMEM;
        o = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:I, "
                      "s:i, s:o, s:s, s:s, s:i}",
                      "format", JOURNAL_FORMAT, "version", JOURNAL_VERSION, "target", j->target, "vault",
                      j->vault, "vm", j->vm, "disk", j->disk, "state", jstate_names[j->state], "op", j->op,
                      "method", j->method, "pass", j->pass, "point", j->point, "base",
                      j->base, "created", j->created, "block_size",
                      (json_int_t)j->block_size, "disk_size", (json_int_t)j->disk_size, "blocks",
                      (json_int_t)j->n_blocks, "done_blocks", (json_int_t)j->done_blocks, "percent",
                      (int)j->percent, "fingerprint", fp, "started", started, "updated", updated, "pid",
                      (int)getpid());
        if (!o)
                return -ENOMEM;
        text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        /* The directory exists: fb_journal_lock() made it. */
        return write_file_atomic_mode(j->path, text, strlen(text), false, 0600); /* docs/SECURITY.md */
}

static void copy_str(char *dst, size_t len, const char *src) { snprintf(dst, len, "%s", src ? src : ""); }

int fb_journal_load(struct fb_journal *j) {
        _cleanup_free_ char *text = NULL;
        json_t *o, *fp = NULL;
        json_error_t err;
        const char *fmt, *target, *vault, *vm, *disk, *state, *op, *method, *pass, *point, *base = NULL;
        const char *updated = NULL;
        json_int_t version, bs, size, blocks, done;
        int created = 0, percent = 0, r;

        j->state = FB_J_NONE;
        r = read_file_all(j->path, &text, NULL);
        if (r < 0)
                return r;
        o = json_loads(text, 0, &err);
        if (!o)
                return -EBADMSG;
        r = -EBADMSG;
        if (json_unpack(o, "{s:s, s:I}", "format", &fmt, "version", &version) < 0 ||
            strcmp(fmt, JOURNAL_FORMAT) != 0 || version != JOURNAL_VERSION)
                goto out;
        if (json_unpack(o, "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s?s, s:b, s:I, s:I, s:I, s:I, s?i, s?o, "
                           "s?s}",
                        "target", &target, "vault", &vault, "vm", &vm, "disk", &disk, "state", &state, "op", &op,
                        "method", &method, "pass", &pass, "point", &point, "base", &base, "created", &created,
                        "block_size", &bs, "disk_size", &size, "blocks", &blocks, "done_blocks", &done,
                        "percent", &percent, "fingerprint", &fp, "updated", &updated) < 0)
                goto out;
        j->state = FB_J_NONE;
        for (size_t i = 0; i < ELEMENTSOF(jstate_names); i++)
                if (strcmp(state, jstate_names[i]) == 0)
                        j->state = (enum fb_jstate)i;
        if (j->state == FB_J_NONE || done < 0 || blocks < 0 || done > blocks)
                goto out;
        copy_str(j->vault, sizeof j->vault, vault);
        copy_str(j->vm, sizeof j->vm, vm);
        copy_str(j->disk, sizeof j->disk, disk);
        copy_str(j->op, sizeof j->op, op);
        copy_str(j->method, sizeof j->method, method);
        copy_str(j->pass, sizeof j->pass, pass);
        copy_str(j->point, sizeof j->point, point);
        copy_str(j->base, sizeof j->base, base);
        j->created = created;
        j->block_size = (uint32_t)bs;
        j->disk_size = (uint64_t)size;
        j->n_blocks = (uint64_t)blocks;
        j->done_blocks = (uint64_t)done;
        j->percent = percent < 0 ? 0 : percent > 100 ? 100 : (unsigned)percent;
        j->updated = 0;
        if (updated) {
                struct tm tm = { 0 };
                if (strptime(updated, "%Y-%m-%dT%H:%M:%SZ", &tm))
                        j->updated = timegm(&tm);
        }
        r = fp_from_json(fp, &j->fp);
        (void)target;
out:
        json_decref(o);
        if (r < 0)
                j->state = FB_J_NONE;
        return r;
}

/* ---- fingerprints ---- */

static void read_boot_id(char *buf, size_t len) {
        _cleanup_free_ char *text = NULL;
        buf[0] = 0;
        if (read_file_all("/proc/sys/kernel/random/boot_id", &text, NULL) >= 0) {
                text[strcspn(text, "\n")] = 0;
                snprintf(buf, len, "%s", text);
        }
}

static bool read_sectors_written(dev_t rdev, uint64_t *ret) {
        _cleanup_free_ char *text = NULL;
        unsigned long long v[7];
        char path[64];

        snprintf(path, sizeof path, "/sys/dev/block/%u:%u/stat", major(rdev), minor(rdev));
        if (read_file_all(path, &text, NULL) < 0)
                return false;
        /* reads, merges, sectors, ms, writes, merges, sectors written */
        if (sscanf(text, "%llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) !=
            7)
                return false;
        *ret = v[6];
        return true;
}

int fb_fingerprint_take(struct fb_target *t, uint32_t bs, uint64_t disk_size, struct fb_fingerprint *fp) {
        uint64_t n = DIV_ROUND_UP(disk_size, bs);
        _cleanup_free_ uint8_t *buf = malloc(bs);
        struct stat st;
        int r;

        memset(fp, 0, sizeof *fp);
        if (!buf)
                return -ENOMEM;
        if (fstat(t->fd, &st) < 0)
                return -errno;
        fp->blockdev = S_ISBLK(st.st_mode);
        fp->dev = st.st_dev;
        fp->ino = st.st_ino;
        fp->rdev = st.st_rdev;
        fp->size = fp->blockdev ? t->size : (uint64_t)st.st_size;
        if (!fp->blockdev) {
                fp->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
                fp->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
        } else {
                read_boot_id(fp->boot_id, sizeof fp->boot_id);
                fp->have_sectors = read_sectors_written(st.st_rdev, &fp->sectors_written);
        }
        fp->n = (size_t)MIN((uint64_t)FB_SAMPLES, n);
        for (size_t i = 0; i < fp->n; i++) {
                uint64_t blk = fp->n == 1 ? 0 : i == fp->n - 1 ? n - 1 : i * (n / (fp->n - 1));
                uint64_t off = blk * bs;
                size_t len = (size_t)MIN((uint64_t)bs, disk_size - off);
                /* A file shorter than the journal's disk (replaced since,
                 * say) reads as zeros past its end: its fingerprint then
                 * differs (in size too), where a read error would stop
                 * the failback. */
                if (!fp->blockdev)
                        len = off >= fp->size ? 0 : (size_t)MIN((uint64_t)len, fp->size - off);
                r = len ? pread_full(t->fd, buf, len, off) : 0;
                if (r < 0)
                        return r;
                memset(buf + len, 0, bs - len);
                fp->blk[i] = blk;
                if (mem_is_zero(buf, bs))
                        memset(&fp->h[i], 0, sizeof fp->h[i]);
                else
                        store_hash(buf, bs, &fp->h[i]);
        }
        fp->valid = true;
        return 0;
}

int fb_fingerprint_check(const struct fb_fingerprint *a, const struct fb_fingerprint *b, char *why, size_t len) {
        if (!a->valid || !b->valid) {
                snprintf(why, len, "no fingerprint was recorded");
                return -ESTALE;
        }
        if (a->blockdev != b->blockdev || a->dev != b->dev || a->ino != b->ino || a->rdev != b->rdev) {
                snprintf(why, len, "it is another file or device now");
                return -ESTALE;
        }
        if (a->size != b->size) {
                snprintf(why, len, "its size changed from %llu to %llu bytes", (unsigned long long)a->size,
                         (unsigned long long)b->size);
                return -ESTALE;
        }
        if (!a->blockdev && (a->mtime_ns != b->mtime_ns || a->ctime_ns != b->ctime_ns)) {
                snprintf(why, len, "it was modified (its modification time changed)");
                return -ESTALE;
        }
        if (a->blockdev && a->have_sectors && b->have_sectors && strcmp(a->boot_id, b->boot_id) == 0 &&
            a->sectors_written != b->sectors_written) {
                snprintf(why, len, "the device was written to (%llu sectors)",
                         (unsigned long long)(b->sectors_written - a->sectors_written));
                return -ESTALE;
        }
        if (a->n != b->n) {
                snprintf(why, len, "its sampled blocks differ");
                return -ESTALE;
        }
        for (size_t i = 0; i < a->n; i++)
                if (a->blk[i] != b->blk[i] || memcmp(&a->h[i], &b->h[i], sizeof a->h[i]) != 0) {
                        snprintf(why, len, "block %llu changed", (unsigned long long)a->blk[i]);
                        return -ESTALE;
                }
        return 0;
}

/* ---- status ---- */

int sync_failback_status(const char *state_dir, const char *target, struct sync_fb_status *ret) {
        struct fb_target t = { .path = target, .fd = -1 };
        struct fb_journal *j = &t.j;
        int r;

        memset(ret, 0, sizeof *ret);
        r = fb_target_resolve(&t);
        if (r < 0)
                return r;
        r = fb_journal_init(j, state_dir, t.real);
        if (r < 0)
                return r;
        r = fb_journal_load(j);
        if (r < 0)
                return r;
        snprintf(ret->vault, sizeof ret->vault, "%s", j->vault);
        snprintf(ret->vm, sizeof ret->vm, "%s", j->vm);
        snprintf(ret->disk, sizeof ret->disk, "%s", j->disk);
        snprintf(ret->point, sizeof ret->point, "%s", j->point);
        snprintf(ret->base, sizeof ret->base, "%s", j->base);
        snprintf(ret->op, sizeof ret->op, "%s", j->op);
        snprintf(ret->method, sizeof ret->method, "%s", j->method);
        snprintf(ret->pass, sizeof ret->pass, "%s", j->pass);
        ret->percent = j->percent;
        ret->done_blocks = j->done_blocks;
        ret->n_blocks = j->n_blocks;
        ret->updated = j->updated;
        switch (j->state) {
        case FB_J_SYNCING:
                ret->state = fb_journal_busy(j) ? SYNC_FB_STATE_RUNNING : SYNC_FB_STATE_INTERRUPTED;
                if (ret->state == SYNC_FB_STATE_INTERRUPTED)
                        ret->percent = j->n_blocks ? (unsigned)(100 * j->done_blocks / j->n_blocks) : 0;
                break;
        case FB_J_CONSISTENT:
                ret->state = SYNC_FB_STATE_CONSISTENT;
                ret->percent = 100;
                break;
        case FB_J_COMMITTED:
                ret->state = SYNC_FB_STATE_COMMITTED;
                ret->percent = 100;
                break;
        default:
                ret->state = SYNC_FB_STATE_NONE;
        }
        return 0;
}

const char *sync_fb_status_text(const struct sync_fb_status *st, char *buf, size_t len) {
        switch (st->state) {
        case SYNC_FB_STATE_RUNNING:
                snprintf(buf, len, "in progress %u%% (%s%s%s to point %s)", st->percent, st->op,
                         *st->pass ? ", " : "", st->pass, st->point);
                break;
        case SYNC_FB_STATE_INTERRUPTED:
                snprintf(buf, len, "interrupted: rerun to finish (%s to point %s, %u%% written)", st->op,
                         st->point, st->percent);
                break;
        case SYNC_FB_STATE_CONSISTENT:
                snprintf(buf, len, "consistent at point %s%s", st->point,
                         strcmp(st->op, "prepare") == 0 ? " (prepared: run --complete, then --commit)" : "");
                break;
        case SYNC_FB_STATE_COMMITTED:
                snprintf(buf, len, "consistent at point %s, committed", st->point);
                break;
        default:
                snprintf(buf, len, "no failback recorded");
        }
        return buf;
}
