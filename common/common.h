/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * common: logging, error helpers, cleanup attributes, small parsers and
 * time/ID formatting shared by every rpfs module. Uses nothing internal.
 *
 * Thread rule: every function here is safe to call from any thread
 * (logging takes an internal lock per line).
 */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(a, b) (((a) + (b) - 1) / (b))

static inline void freep(void *p) { free(*(void **)p); }
#include <dirent.h>
static inline void closedirp(DIR **d) { if (*d) closedir(*d); }
static inline void closep(int *fd) { if (*fd >= 0) { int e = errno; close(*fd); errno = e; } }
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* Take ownership out of a cleanup variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define TAKE_FD(fd) ({ int _t = (fd); (fd) = -1; _t; })

/* ---- logging ---------------------------------------------------------- */
enum log_level { LOG_ERR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Set the maximum level printed to stderr (default LOG_INFO). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Program name printed before each line ("rpfs: "). */
void log_set_prefix(const char *prefix);

void log_msg(enum log_level level, const char *fmt, ...) _printf_(2, 3);
/* Logs "<message>: <strerror(-r)>" and returns r (r is a negative errno). */
int log_msg_errno(enum log_level level, int r, const char *fmt, ...) _printf_(3, 4);

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_error_errno(r, ...) log_msg_errno(LOG_ERR, (r), __VA_ARGS__)
#define log_warn_errno(r, ...) log_msg_errno(LOG_WARN, (r), __VA_ARGS__)

/* ---- byte order ------------------------------------------------------- */
/* Fields of on-disk and on-wire structures, encoded and decoded byte by
 * byte (any alignment). The one set every module uses. */
static inline uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t get_le32(const uint8_t *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get_le64(const uint8_t *p) { return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32; }
static inline uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get_be32(const uint8_t *p) {
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline uint64_t get_be64(const uint8_t *p) { return (uint64_t)get_be32(p) << 32 | get_be32(p + 4); }
static inline void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put_le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void put_le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put_be32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i)); }
static inline void put_be64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i)); }

/* ---- small parsers ---------------------------------------------------- */
/* Parse "64K", "1M", "20G", "512" (bytes; K/M/G/T are powers of 1024,
 * optional trailing "iB"/"B"). Returns 0, or -EINVAL, -ERANGE. */
int parse_size(const char *s, uint64_t *ret);
/* Format bytes as "1.5 GiB" into buf (at least 16 bytes). Returns buf. */
const char *format_bytes(uint64_t bytes, char *buf, size_t len);

/* Point IDs are UTC times in ISO 8601 basic form: "20261122T101500Z". */
#define POINT_ID_LEN 16
/* Parse a point ID into seconds since the epoch. 0 or -EINVAL. */
int point_id_parse(const char *s, time_t *ret);
/* Format t as a point ID into buf (>= POINT_ID_LEN + 1 bytes). */
void point_id_format(time_t t, char buf[static POINT_ID_LEN + 1]);
/* Format t as ISO 8601 extended "2026-11-22T10:15:00Z" (buf >= 21 bytes). */
void time_format_iso(time_t t, char buf[static 21]);

/* A name usable as a VM or disk name: 1..64 chars of [A-Za-z0-9._-],
 * not starting with '.' or '-'. */
bool name_is_valid(const char *s);

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void hex_encode(const void *p, size_t len, char *out);
/* Decode exactly 2*len hex chars. 0 or -EINVAL. */
int hex_decode(const char *s, void *out, size_t len);

/* Monotonic clock in seconds. */
double now_monotonic(void);

/* true when every byte of p[0..len) is zero (len need not be aligned). */
bool mem_is_zero(const void *p, size_t len);

/* Full pread/pwrite loops. Return 0 (all bytes), -EIO on short read at
 * EOF for pread_full, or -errno. */
int pread_full(int fd, void *buf, size_t len, uint64_t off);
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
int write_full(int fd, const void *buf, size_t len);

/* A file written under a temporary name, then put in place: the one
 * write-temp-then-rename. tmpfile_open() creates DIR/.tmp-<random> beside
 * path (O_EXCL; names starting with '.' are skipped by listings) with the
 * given mode; the caller writes to t->fd; tmpfile_commit() makes the data
 * durable (fdatasync), renames it over path (or, with TMPFILE_EXCLUSIVE,
 * links it so that an existing file is never replaced: -EEXIST), and
 * fsyncs the directory, so that after a crash path is the old file or the
 * whole new one. TMPFILE_NOSYNC leaves durability to a later sync (only
 * writeback is started). Either commit or abort (removes the temporary)
 * ends it; both close t->fd. */
struct tmpfile {
        int fd;
        char path[4096];
        char tmp[4096];
};
enum { TMPFILE_EXCLUSIVE = 1 << 0, TMPFILE_NOSYNC = 1 << 1 };
int tmpfile_open(struct tmpfile *t, const char *path, mode_t mode);
int tmpfile_commit(struct tmpfile *t, unsigned flags);
void tmpfile_abort(struct tmpfile *t);
/* A whole file written durably through a tmpfile (exclusive: never
 * replaces an existing file, -EEXIST). */
int write_file_atomic(const char *path, const void *data, size_t len, bool exclusive);
/* The same, the file created with mode (before the umask): 0600 for what
 * only its owner may read (failback journals). */
int write_file_atomic_mode(const char *path, const void *data, size_t len, bool exclusive, mode_t mode);
/* Read a whole (small) file into a NUL-terminated malloc'd buffer. */
int read_file_all(const char *path, char **ret, size_t *ret_len);
/* rpfs's directories, into buf: the cache ($RPFS_CACHE_DIR, else
 * $XDG_CACHE_HOME/rpfs, else ~/.cache/rpfs, else /var/cache/rpfs) and the
 * state of failbacks ($RPFS_STATE_DIR, else $XDG_STATE_HOME/rpfs/failback,
 * else ~/.local/state/rpfs/failback, else /var/lib/rpfs/failback). */
void rpfs_cache_dir(char *buf, size_t len);
void rpfs_state_dir(char *buf, size_t len);
/* mkdir -p. */
int mkdir_p(const char *path, mode_t mode);
/* One mount of /proc/self/mountinfo, its paths unescaped. */
struct mount_info {
        dev_t dev;          /* of the mounted file system */
        const char *mnt;    /* mount point */
        const char *fstype; /* "ext4", "fuse.rpfs", ... */
        const char *src;    /* source: a device path, or a name */
};
/* Call fn for each mount of this process's namespace, oldest first, until
 * it returns true. Returns whether one did (false also when mountinfo
 * cannot be read). */
bool mountinfo_each(bool (*fn)(const struct mount_info *m, void *arg), void *arg);
/* The blocks of bs bytes of fd from byte start (block-aligned) up to byte
 * end: hole[i] = 1 when block i holds no data at all (SEEK_DATA/SEEK_HOLE),
 * 0 when it holds some; every block counts as data where the filesystem
 * cannot tell. hole_until (NULL, or 0 at first) caches "no data before this
 * offset" across calls that go forward. Returns true when all are holes. */
bool fd_map_holes(int fd, uint64_t start, uint64_t end, uint32_t bs, uint8_t *hole, uint64_t *hole_until);
/* A large buffer (free() it) aligned for O_DIRECT and backed by huge pages
 * where the kernel allows (fewer page faults; cheaper to pin for direct
 * I/O). NULL when out of memory. */
void *alloc_large(size_t len);
/* Room for at least need elements of size bytes in *v (capacity *cap,
 * doubled from 16): 0, or -ENOMEM with *v and *cap unchanged. */
int array_reserve(void *v, size_t *cap, size_t need, size_t size);

/* ---- errors that pass by themselves, and how long to retry them ------- */
/* The one classification: true for an error that may pass without anyone
 * acting (Site Recovery's "recoverable"): the network or a remote store
 * failing (-EIO, -ETIMEDOUT, -ECONNRESET, -ECONNREFUSED, -ECONNABORTED,
 * -EHOSTUNREACH, -ENETUNREACH, -ENETDOWN), throttling or a busy remote
 * (-EAGAIN, -EBUSY), low disk space (-ENOSPC, -EDQUOT), low memory
 * (-ENOMEM). Everything else needs a person: refused credentials, missing
 * or corrupt data, a remote that breaks the protocol (-EPROTO), bad input. */
bool error_transient(int r);

/* Retry profiles for transient errors (--retry-profile). */
enum retry_profile {
        RETRY_DEFAULT = 0,   /* 1, 2, 4, 8, 16, 30 s, then give up */
        RETRY_SITE_RECOVERY, /* 1, 2, 4, 8, 10 min, then every 30 min, for as long as it lasts */
        RETRY_NONE,          /* give up at once */
};
/* "default", "site-recovery", "none". 0 or -EINVAL. */
int retry_profile_parse(const char *s, enum retry_profile *ret);
/* Seconds to wait before retry number attempt (1-based), or -1 when the
 * profile gives up. */
double retry_delay(enum retry_profile p, unsigned attempt);

/* ---- worker pool ------------------------------------------------------ */
/*
 * A bounded pool of threads. pool_submit() blocks while the queue is full.
 * Internally locked: submit from any thread. pool_free() waits for all
 * submitted work to finish.
 */
struct pool;
typedef void (*pool_fn)(void *arg);
/* n_threads 0 = number of online CPUs. queue_max >= 1. */
int pool_new(unsigned n_threads, unsigned queue_max, struct pool **ret);
int pool_submit(struct pool *p, pool_fn fn, void *arg);
/* Wait until every submitted job has returned. */
void pool_wait(struct pool *p);
unsigned pool_threads(const struct pool *p);
void pool_free(struct pool *p);
unsigned cpu_count(void);

/* ---- ordered ring ----------------------------------------------------- */
/*
 * N slots for batches that are processed in parallel and consumed in the
 * order they were submitted: the producer fills the next free slot in
 * place (ring_acquire), submits it to a worker pool (ring_submit); a job
 * processes it and reports its result (ring_done), in any order, from any
 * thread; the consumer takes slots back strictly in submission order,
 * waiting for the oldest to be done (ring_take), reads it in place and
 * hands it back for reuse (ring_release). The slots are the ring's memory,
 * so nothing is copied; a full ring is what bounds the memory in flight.
 *
 * A producer that is also the consumer takes the oldest back while the
 * ring is full, and fills the next slot otherwise:
 *
 *         for (;;) {
 *                 if (ring_full(ring) || no_more) {
 *                         b = ring_take(ring, &result);
 *                         if (!b) break;              // all consumed
 *                         ...consume b...
 *                         ring_release(ring, b);
 *                         continue;
 *                 }
 *                 b = ring_acquire(ring);
 *                 ...fill b...
 *                 ring_submit(ring, b, pool, work);   // work ends in ring_done()
 *         }
 *
 * Thread rule: internally locked. One producer thread (ring_acquire,
 * ring_submit, ring_full) and one consumer thread (ring_take,
 * ring_release), which may be the same thread; ring_done from any thread.
 */
struct ring;
/* n_slots >= 1 slots of slot_size bytes each, zeroed, aligned for any
 * type. -EINVAL for a zero size, -ENOMEM. */
int ring_new(unsigned n_slots, size_t slot_size, struct ring **ret);
unsigned ring_size(const struct ring *r);
/* Slot i (< ring_size), to set up what slots point to. */
void *ring_slot(struct ring *r, unsigned i);
/* Give p (from malloc() or alloc_large(), or NULL) to the ring: freed by
 * ring_free(). Returns p; NULL when p is NULL or out of memory (then p is
 * freed), so that `b->buf = ring_own(ring, malloc(len))` needs one check. */
void *ring_own(struct ring *r, void *p);
/* true when every slot is submitted or taken: ring_acquire would wait
 * for the consumer. */
bool ring_full(struct ring *r);
/* The next slot to fill, in order; waits while the ring is full. The same
 * slot until it is submitted (a producer that gives up on a slot just does
 * not submit it). */
void *ring_acquire(struct ring *r);
/* Submit slot (the one ring_acquire returned) as the newest: fn(slot) on
 * pool p (on this thread when p is NULL, or when p cannot queue it). fn,
 * or whatever it passes the slot on to, must end with ring_done() and not
 * touch the slot after that. */
void ring_submit(struct ring *r, void *slot, struct pool *p, pool_fn fn);
/* A submitted slot is done; result (0 or -errno) goes to its ring_take. */
void ring_done(struct ring *r, void *slot, int result);
/* The oldest submitted slot not yet taken, once it is done (waits for it),
 * with the result its job gave in *ret_result (NULL: not wanted); NULL
 * when no slot is submitted. The slot is the caller's until
 * ring_release(). */
void *ring_take(struct ring *r, int *ret_result);
/* Hand back the oldest taken slot (slot is that one): free for reuse. */
void ring_release(struct ring *r, void *slot);
/* Waits for submitted jobs' ring_done, then frees the ring and what it
 * was given with ring_own(). NULL accepted. */
void ring_free(struct ring *r);

/* ---- progress --------------------------------------------------------- */
/*
 * A one-line progress display on stderr, only when stderr is a terminal
 * (or when forced). One per thread (call from the owning thread only).
 */
struct progress;
/* label: short verb ("replicate"), total: bytes expected (0 if unknown). */
struct progress *progress_new(const char *label, uint64_t total);
/* Update with bytes done so far; redraws at most every 200 ms. */
void progress_update(struct progress *p, uint64_t done);
/* Start a new stage on the same line: new label and total, done = 0, the
 * rate measured from now. NULL accepted. */
void progress_restart(struct progress *p, const char *label, uint64_t total);
/* Extra text drawn after the rate and ETA ("fetched 12 MiB"), kept until
 * changed; "" clears it. NULL accepted. */
void progress_note(struct progress *p, const char *fmt, ...) _printf_(2, 3);
/* Final redraw and newline (only if anything was drawn). NULL accepted. */
void progress_free(struct progress *p);
