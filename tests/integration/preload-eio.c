/* LD_PRELOAD library for test-vault-disk-faults, where device-mapper is
 * not available to make a disk fail: while the file named by
 * $RPFS_TEST_EIO_FLAG exists, every pread of a vault's pack file (a file
 * whose name ends in ".pack") fails with EIO, as a read of a failing disk
 * does. Other files, and packs while the flag file is absent, read as
 * usual. */
/* both pread and pread64 are defined here: no redirection of one to the other */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int failing(int fd) {
        const char *flag = getenv("RPFS_TEST_EIO_FLAG");
        char link[64], path[4096];
        ssize_t n;

        if (!flag || access(flag, F_OK) != 0)
                return 0;
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        n = readlink(link, path, sizeof path - 1);
        if (n < 5)
                return 0;
        path[n] = 0;
        return strcmp(path + n - 5, ".pack") == 0;
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t off) {
        static ssize_t (*real)(int, void *, size_t, off64_t);
        if (!real)
                real = (ssize_t (*)(int, void *, size_t, off64_t))dlsym(RTLD_NEXT, "pread64");
        if (failing(fd)) {
                errno = EIO;
                return -1;
        }
        return real(fd, buf, n, off);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off) {
        return pread64(fd, buf, n, off);
}
