/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The partitions of a point's disk, for <disk>.p<N>.raw and point.json.
 *
 * libblkid reads the partition table (GPT, MBR with its logical
 * partitions) and probes each partition's filesystem. It needs a file
 * descriptor, and the disk lives in the vault: the probe gets a sparse
 * memory file of the disk's size holding what the probers read (the
 * disk's first and last MiB: MBR, both GPT headers and their entries;
 * each partition's first MiB: the superblocks), read through the mount's
 * verified read path. The rest of it is holes, never read from the vault.
 * Found once per point and disk, on first use, and kept (points never
 * change).
 */
#include <blkid.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fs_i.h"

#define PROBE_SPAN (1u << 20)

/* Copy [off, off + len) of f's disk into fd at the same offset. */
static int copy_range(struct fs *fs, struct fs_file *f, int fd, uint64_t off, uint64_t len) {
        _cleanup_free_ char *buf = NULL;
        int r;

        len = MIN(len, f->d->size - MIN(off, f->d->size));
        if (len == 0)
                return 0;
        buf = malloc((size_t)len);
        if (!buf)
                return -ENOMEM;
        r = fs_read_disk(fs, f, buf, (size_t)len, off);
        if (r < 0)
                return r;
        if (pwrite(fd, buf, (size_t)len, (off_t)off) != (ssize_t)len)
                return -errno ? -errno : -EIO;
        return 0;
}

static void set_str(char *dst, size_t n, const char *src) {
        snprintf(dst, n, "%s", src ? src : "");
}

/* The filesystem inside q (type, label, UUID), probed at its offset of fd. */
static void probe_fs(int fd, struct fs_part *q) {
        blkid_probe pr = blkid_new_probe();
        const char *v;

        if (!pr)
                return;
        if (blkid_probe_set_device(pr, fd, (blkid_loff_t)q->start, (blkid_loff_t)q->size) == 0) {
                blkid_probe_enable_superblocks(pr, 1);
                blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID);
                blkid_probe_enable_partitions(pr, 0);
                if (blkid_do_safeprobe(pr) == 0) {
                        if (blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0)
                                set_str(q->fs_type, sizeof q->fs_type, v);
                        if (blkid_probe_lookup_value(pr, "LABEL", &v, NULL) == 0)
                                set_str(q->fs_label, sizeof q->fs_label, v);
                        if (blkid_probe_lookup_value(pr, "UUID", &v, NULL) == 0)
                                set_str(q->fs_uuid, sizeof q->fs_uuid, v);
                }
        }
        blkid_free_probe(pr);
}

/* One partition of the list into q; false for what is not shown (an MBR
 * extended partition, which only holds the logical ones: its start and
 * end go to *ext). */
static bool part_from(blkid_partition par, uint64_t disk_size, struct fs_part *q, uint64_t ext[2]) {
        int64_t start = blkid_partition_get_start(par), size = blkid_partition_get_size(par);
        const char *ts = blkid_partition_get_type_string(par);

        memset(q, 0, sizeof *q);
        if (start < 0 || size <= 0 || blkid_partition_get_partno(par) <= 0)
                return false;
        if (blkid_partition_is_extended(par)) {
                ext[0] = (uint64_t)start * 512;
                ext[1] = ext[0] + (uint64_t)size * 512;
                return false;
        }
        q->number = (unsigned)blkid_partition_get_partno(par);
        q->start = (uint64_t)start * 512;
        q->size = (uint64_t)size * 512;
        if (q->start >= disk_size)
                return false;
        q->size = MIN(q->size, disk_size - q->start);
        if (ts)
                set_str(q->type, sizeof q->type, ts);
        else
                snprintf(q->type, sizeof q->type, "0x%x", (unsigned)blkid_partition_get_type(par));
        set_str(q->name, sizeof q->name, blkid_partition_get_name(par));
        set_str(q->part_uuid, sizeof q->part_uuid, blkid_partition_get_uuid(par));
        return true;
}

/* Read the table of the disk in fd (its head and tail filled in); the
 * extended partition's bounds into ext (0, 0: none). */
static int probe_table(int fd, uint64_t size, struct fs_disk_views *v, uint64_t ext[2]) {
        blkid_probe pr = blkid_new_probe();
        blkid_partlist ls;
        int n, r = 0;

        if (!pr)
                return -ENOMEM;
        if (blkid_probe_set_device(pr, fd, 0, (blkid_loff_t)size) != 0) {
                r = -EIO;
                goto out;
        }
        blkid_probe_enable_superblocks(pr, 0);
        blkid_probe_enable_partitions(pr, 1);
        blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
        if (blkid_do_safeprobe(pr) != 0)
                goto out; /* no table (or an ambiguous one): no partitions */
        ls = blkid_probe_get_partitions(pr);
        n = ls ? blkid_partlist_numof_partitions(ls) : 0;
        if (!ls || n < 0)
                goto out;
        set_str(v->table, sizeof v->table, blkid_parttable_get_type(blkid_partlist_get_table(ls)));
        v->parts = calloc((size_t)MAX(n, 1), sizeof *v->parts);
        if (!v->parts) {
                r = -ENOMEM;
                goto out;
        }
        for (int i = 0; i < n; i++)
                if (part_from(blkid_partlist_get_partition(ls, i), size, &v->parts[v->n_parts], ext))
                        v->n_parts++;
out:
        blkid_free_probe(pr);
        return r;
}

/* The table, with the logical partitions of an MBR extended partition:
 * each is found through the boot record before it (EBR), a chain that
 * libblkid follows in what it reads. The probe file holds the extended
 * partition's first MiB and the MiB after each logical partition found,
 * where partitioning tools put the next EBR; probed again while that
 * finds more. An EBR elsewhere ends the chain there. */
static int probe_logical(struct fs *fs, struct fs_file *f, int fd, struct fs_disk_views *v) {
        uint64_t ext[2] = { 0, 0 }, loaded_to = 0;
        size_t before;
        int r;

        for (unsigned round = 0; round < 256; round++) {
                uint64_t next = 0;

                before = v->n_parts;
                free(v->parts);
                v->parts = NULL;
                v->n_parts = 0;
                r = probe_table(fd, f->d->size, v, ext);
                if (r < 0 || ext[1] == 0 || (round > 0 && v->n_parts == before))
                        return r;
                /* The next EBR to load: at the extended partition's start,
                 * then after the last logical partition. */
                next = ext[0];
                for (size_t k = 0; k < v->n_parts; k++)
                        if (v->parts[k].start >= ext[0] && v->parts[k].start < ext[1])
                                next = MAX(next, v->parts[k].start + v->parts[k].size);
                if (next >= ext[1] || (round > 0 && next <= loaded_to))
                        return 0;
                r = copy_range(fs, f, fd, next, MIN((uint64_t)PROBE_SPAN, ext[1] - next));
                if (r < 0)
                        return r;
                loaded_to = next;
        }
        return 0;
}

/* Find disk's partitions into v (zeroed). */
static int parts_find(struct fs *fs, struct fs_point *pt, size_t disk, struct fs_disk_views *v) {
        struct fs_file f = { .kind = FK_RAW, .pt = pt, .d = &pt->p->disks[disk], .disk_index = disk };
        uint64_t size = f.d->size;
        int fd, r;

        pthread_mutex_init(&f.lock, NULL);
        fd = memfd_create("rpfs-probe", MFD_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                goto out;
        }
        if (ftruncate(fd, (off_t)size) < 0) {
                r = -errno;
                goto out;
        }
        r = copy_range(fs, &f, fd, 0, PROBE_SPAN);
        if (r >= 0 && size > PROBE_SPAN)
                r = copy_range(fs, &f, fd, size - MIN(size - PROBE_SPAN, (uint64_t)PROBE_SPAN), PROBE_SPAN);
        if (r >= 0)
                r = probe_logical(fs, &f, fd, v);
        for (size_t k = 0; r >= 0 && k < v->n_parts; k++) {
                struct fs_part *q = &v->parts[k];
                r = copy_range(fs, &f, fd, q->start, MIN(q->size, (uint64_t)PROBE_SPAN));
                if (r >= 0)
                        probe_fs(fd, q);
                if (r >= 0)
                        r = fs_disk_data_bytes(fs, f.d, q->start, q->start + q->size, &q->data_bytes);
        }
out:
        if (fd >= 0)
                close(fd);
        pthread_mutex_destroy(&f.lock);
        if (r < 0) {
                free(v->parts);
                memset(v, 0, sizeof *v);
        }
        return r;
}

int fs_parts_get(struct fs *fs, struct fs_point *pt, size_t disk, const struct fs_disk_views **ret) {
        struct fs_disk_views *v = fs_views_of(pt, disk), found = { 0 };
        int r;

        if (!v)
                return -ENOMEM;
        pthread_mutex_lock(&pt->views_lock);
        if (v->parts_done) {
                pthread_mutex_unlock(&pt->views_lock);
                *ret = v;
                return 0;
        }
        pthread_mutex_unlock(&pt->views_lock);

        /* Found without the lock (reads from the vault); the first to
         * finish keeps its result. */
        r = parts_find(fs, pt, disk, &found);
        if (r < 0)
                return log_error_errno(r, "%s/%s %s: cannot read its partition table", pt->p->vm, pt->p->id,
                                       pt->p->disks[disk].name);
        pthread_mutex_lock(&pt->views_lock);
        if (!v->parts_done) {
                memcpy(v->table, found.table, sizeof v->table);
                v->parts = found.parts;
                v->n_parts = found.n_parts;
                v->parts_done = true;
        } else
                free(found.parts);
        pthread_mutex_unlock(&pt->views_lock);
        *ret = v;
        return 0;
}
