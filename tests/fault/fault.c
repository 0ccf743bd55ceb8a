/* fault.c — see fault.h. The test program is linked with -Wl,--wrap=SYMBOL for each wrapped
 * function, so the calls of the static libraries it links (kb's own, FAISS's) land in
 * __wrap_SYMBOL here, and __real_SYMBOL reaches the C library (or AddressSanitizer's
 * interceptor in a sanitizer build). */
#define _GNU_SOURCE
#include "fault.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static atomic_int armed = -1;           /* the armed kind, or -1 */
static atomic_size_t counted;
static size_t fail_at;
static atomic_int fired;
static const char *_Atomic where = "";

/* Whether this call of `kind` is the one that fails. */
static int fault_hit(enum fault_kind kind, const char *name)
{
    if (atomic_load(&armed) != (int)kind)
        return 0;
    size_t n = atomic_fetch_add(&counted, 1) + 1;
    if (fail_at == 0 || n != fail_at)
        return 0;
    atomic_store(&fired, 1);
    atomic_store(&where, name);
    return 1;
}

void fault_arm(enum fault_kind kind, size_t nth)
{
    atomic_store(&armed, -1);
    atomic_store(&counted, 0);
    atomic_store(&fired, 0);
    atomic_store(&where, "");
    fail_at = nth;
    atomic_store(&armed, (int)kind);
}

size_t fault_disarm(void)
{
    atomic_store(&armed, -1);
    return atomic_load(&counted);
}

int fault_fired(void)
{
    return atomic_load(&fired);
}

const char *fault_where(void)
{
    return atomic_load(&where);
}

/* ---- allocations --------------------------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

void *__wrap_malloc(size_t n)
{
    if (fault_hit(FAULT_ALLOC, "malloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (fault_hit(FAULT_ALLOC, "calloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    if (fault_hit(FAULT_ALLOC, "realloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    if (fault_hit(FAULT_ALLOC, "strdup")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    if (fault_hit(FAULT_ALLOC, "strndup")) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strndup(s, n);
}

/* ---- writes ------------------------------------------------------------------------------ */

ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);
size_t __real_fwrite(const void *buf, size_t size, size_t n, FILE *f);
int __real_fflush(FILE *f);
int __real_fclose(FILE *f);
int __real_fsync(int fd);
int __real_fdatasync(int fd);
int __real_ftruncate(int fd, off_t len);
int __real_rename(const char *from, const char *to);

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    if (fault_hit(FAULT_WRITE, "write")) {
        errno = ENOSPC;
        return -1;
    }
    return __real_write(fd, buf, n);
}

ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (fault_hit(FAULT_WRITE, "pwrite")) {
        errno = ENOSPC;
        return -1;
    }
    return __real_pwrite(fd, buf, n, off);
}

/* A short write, as when the disk fills up part way. */
size_t __wrap_fwrite(const void *buf, size_t size, size_t n, FILE *f)
{
    if (fault_hit(FAULT_WRITE, "fwrite")) {
        errno = ENOSPC;
        return n / 2;
    }
    return __real_fwrite(buf, size, n, f);
}

int __wrap_fflush(FILE *f)
{
    if (f && fault_hit(FAULT_WRITE, "fflush")) {
        errno = ENOSPC;
        return EOF;
    }
    return __real_fflush(f);
}

/* The stream is closed either way, as fclose does when its final flush fails. */
int __wrap_fclose(FILE *f)
{
    int rc = __real_fclose(f);
    if (fault_hit(FAULT_WRITE, "fclose")) {
        errno = ENOSPC;
        return EOF;
    }
    return rc;
}

int __wrap_fsync(int fd)
{
    if (fault_hit(FAULT_WRITE, "fsync")) {
        errno = EIO;
        return -1;
    }
    return __real_fsync(fd);
}

int __wrap_fdatasync(int fd)
{
    if (fault_hit(FAULT_WRITE, "fdatasync")) {
        errno = EIO;
        return -1;
    }
    return __real_fdatasync(fd);
}

int __wrap_ftruncate(int fd, off_t len)
{
    if (fault_hit(FAULT_WRITE, "ftruncate")) {
        errno = EIO;
        return -1;
    }
    return __real_ftruncate(fd, len);
}

int __wrap_rename(const char *from, const char *to)
{
    if (fault_hit(FAULT_WRITE, "rename")) {
        errno = EIO;
        return -1;
    }
    return __real_rename(from, to);
}

/* ---- SQLite: its allocator and a VFS over the default one ------------------------------- */

static sqlite3_mem_methods sq_real_mem;

static void *sq_malloc(int n)
{
    return fault_hit(FAULT_ALLOC, "sqlite malloc") ? NULL : sq_real_mem.xMalloc(n);
}

static void *sq_realloc(void *p, int n)
{
    return fault_hit(FAULT_ALLOC, "sqlite realloc") ? NULL : sq_real_mem.xRealloc(p, n);
}

static sqlite3_vfs *sq_real_vfs;
static sqlite3_vfs sq_vfs;

struct sq_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same block */
};

#define SQ_REAL(f) (((struct sq_file *)(f))->real)

static int sq_close(sqlite3_file *f)
{
    int rc = SQ_REAL(f)->pMethods ? SQ_REAL(f)->pMethods->xClose(SQ_REAL(f)) : SQLITE_OK;
    f->pMethods = NULL;
    return rc;
}
static int sq_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return SQ_REAL(f)->pMethods->xRead(SQ_REAL(f), buf, n, off);
}
static int sq_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    if (fault_hit(FAULT_WRITE, "sqlite xWrite"))
        return SQLITE_FULL;
    return SQ_REAL(f)->pMethods->xWrite(SQ_REAL(f), buf, n, off);
}
static int sq_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    if (fault_hit(FAULT_WRITE, "sqlite xTruncate"))
        return SQLITE_IOERR_TRUNCATE;
    return SQ_REAL(f)->pMethods->xTruncate(SQ_REAL(f), size);
}
static int sq_sync(sqlite3_file *f, int flags)
{
    if (fault_hit(FAULT_WRITE, "sqlite xSync"))
        return SQLITE_IOERR_FSYNC;
    return SQ_REAL(f)->pMethods->xSync(SQ_REAL(f), flags);
}
static int sq_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return SQ_REAL(f)->pMethods->xFileSize(SQ_REAL(f), size);
}
static int sq_lock(sqlite3_file *f, int l)
{
    return SQ_REAL(f)->pMethods->xLock(SQ_REAL(f), l);
}
static int sq_unlock(sqlite3_file *f, int l)
{
    return SQ_REAL(f)->pMethods->xUnlock(SQ_REAL(f), l);
}
static int sq_check_lock(sqlite3_file *f, int *out)
{
    return SQ_REAL(f)->pMethods->xCheckReservedLock(SQ_REAL(f), out);
}
static int sq_control(sqlite3_file *f, int op, void *arg)
{
    return SQ_REAL(f)->pMethods->xFileControl(SQ_REAL(f), op, arg);
}
static int sq_sector(sqlite3_file *f)
{
    return SQ_REAL(f)->pMethods->xSectorSize(SQ_REAL(f));
}
static int sq_device(sqlite3_file *f)
{
    return SQ_REAL(f)->pMethods->xDeviceCharacteristics(SQ_REAL(f));
}
static int sq_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    return SQ_REAL(f)->pMethods->xShmMap(SQ_REAL(f), region, size, extend, out);
}
static int sq_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return SQ_REAL(f)->pMethods->xShmLock(SQ_REAL(f), offset, n, flags);
}
static void sq_shm_barrier(sqlite3_file *f)
{
    SQ_REAL(f)->pMethods->xShmBarrier(SQ_REAL(f));
}
static int sq_shm_unmap(sqlite3_file *f, int del)
{
    return SQ_REAL(f)->pMethods->xShmUnmap(SQ_REAL(f), del);
}
static int sq_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
    return SQ_REAL(f)->pMethods->xFetch(SQ_REAL(f), off, n, out);
}
static int sq_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return SQ_REAL(f)->pMethods->xUnfetch(SQ_REAL(f), off, p);
}

static const sqlite3_io_methods sq_io = {
    3, sq_close, sq_read, sq_write, sq_truncate, sq_sync, sq_size, sq_lock, sq_unlock,
    sq_check_lock, sq_control, sq_sector, sq_device, sq_shm_map, sq_shm_lock, sq_shm_barrier,
    sq_shm_unmap, sq_fetch, sq_unfetch,
};

static int sq_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    struct sq_file *sf = (struct sq_file *)f;
    sf->real = (sqlite3_file *)(sf + 1);
    int rc = sq_real_vfs->xOpen(sq_real_vfs, name, sf->real, flags, out_flags);
    /* SQLite calls xClose only when pMethods is set, also after a failed open. */
    f->pMethods = sf->real->pMethods ? &sq_io : NULL;
    return rc;
}

static int sq_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return sq_real_vfs->xDelete(sq_real_vfs, name, sync_dir);
}
static int sq_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return sq_real_vfs->xAccess(sq_real_vfs, name, flags, out);
}
static int sq_full_path(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return sq_real_vfs->xFullPathname(sq_real_vfs, name, n, out);
}
static void *sq_dl_open(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return sq_real_vfs->xDlOpen(sq_real_vfs, name);
}
static void sq_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    sq_real_vfs->xDlError(sq_real_vfs, n, out);
}
static void (*sq_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    (void)vfs;
    return sq_real_vfs->xDlSym(sq_real_vfs, h, sym);
}
static void sq_dl_close(sqlite3_vfs *vfs, void *h)
{
    (void)vfs;
    sq_real_vfs->xDlClose(sq_real_vfs, h);
}
static int sq_random(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return sq_real_vfs->xRandomness(sq_real_vfs, n, out);
}
static int sq_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return sq_real_vfs->xSleep(sq_real_vfs, us);
}
static int sq_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return sq_real_vfs->xCurrentTime(sq_real_vfs, out);
}
static int sq_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return sq_real_vfs->xGetLastError(sq_real_vfs, n, out);
}
static int sq_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return sq_real_vfs->xCurrentTimeInt64(sq_real_vfs, out);
}

int fault_install(void)
{
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sq_real_mem) != SQLITE_OK)
        return -1;
    sqlite3_mem_methods mem = sq_real_mem;
    mem.xMalloc = sq_malloc;
    mem.xRealloc = sq_realloc;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mem) != SQLITE_OK)
        return -1;
    if (sqlite3_initialize() != SQLITE_OK || !(sq_real_vfs = sqlite3_vfs_find(NULL)))
        return -1;
    sq_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct sq_file) + sq_real_vfs->szOsFile,
        .mxPathname = sq_real_vfs->mxPathname,
        .zName = "kb-fault",
        .xOpen = sq_open,
        .xDelete = sq_delete,
        .xAccess = sq_access,
        .xFullPathname = sq_full_path,
        .xDlOpen = sq_dl_open,
        .xDlError = sq_dl_error,
        .xDlSym = sq_dl_sym,
        .xDlClose = sq_dl_close,
        .xRandomness = sq_random,
        .xSleep = sq_sleep,
        .xCurrentTime = sq_time,
        .xGetLastError = sq_last_error,
        .xCurrentTimeInt64 = sq_time64,
    };
    return sqlite3_vfs_register(&sq_vfs, 1) == SQLITE_OK ? 0 : -1;
}
