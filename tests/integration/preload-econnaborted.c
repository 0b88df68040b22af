/* LD_PRELOAD library for test-mount-faults.
 *
 * When the kernel tears a FUSE connection down after an unmount, a read of
 * /dev/fuse normally fails with ENODEV. If the teardown races a worker
 * thread that is taking a request off the queue, that read fails with
 * ECONNABORTED instead (fs/fuse/dev.c). The race is rare (about 1 unmount in
 * 300 under load here; CI met it once). Preloaded into `rpfs mount`, this
 * turns every ENODEV from /dev/fuse into ECONNABORTED, so the test meets the
 * rare case on every unmount. */
#include <dlfcn.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

ssize_t read(int fd, void *buf, size_t n) {
        static ssize_t (*real_read)(int, void *, size_t);
        struct stat st;
        ssize_t r;
        int e;

        if (!real_read)
                real_read = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
        r = real_read(fd, buf, n);
        if (r >= 0)
                return r;
        e = errno;
        if (e == ENODEV && fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 10 &&
            minor(st.st_rdev) == 229)
                e = ECONNABORTED;
        errno = e;
        return r;
}
