/* fault.h — fail the Nth allocation or the Nth write of a test program, to prove that every
 * failure path of kb reports an error, leaks nothing and leaves the KB consistent.
 *
 * What is counted (only between fault_arm and fault_disarm):
 *  - FAULT_ALLOC: malloc, calloc, realloc, strdup and strndup called by kb's own code and the
 *    static libraries linked with it (the test links with -Wl,--wrap=... for each), and every
 *    allocation SQLite makes (its SQLITE_CONFIG_MALLOC hook).
 *  - FAULT_WRITE: write, pwrite, fwrite, fflush, fclose, fsync, fdatasync, ftruncate and
 *    rename called by that same code (FAISS's index writer included), and every xWrite, xSync
 *    and xTruncate of SQLite's files (a VFS that wraps the default one).
 * Not counted: allocations inside shared libraries other than SQLite (libxml2, OpenBLAS,
 * PCRE2, cJSON, libzip) and C++ operator new. */
#ifndef KB_TESTS_FAULT_H
#define KB_TESTS_FAULT_H

#include <stddef.h>

enum fault_kind { FAULT_ALLOC = 0, FAULT_WRITE = 1 };

/* Installs the SQLite hooks. Call first, before anything opens a database. 0 on success. */
int fault_install(void);

/* Counts calls of `kind` from now on; the `nth` one (1-based) fails once, with errno ENOMEM
 * (allocations) or ENOSPC/EIO (writes). nth = 0 only counts. */
void fault_arm(enum fault_kind kind, size_t nth);

/* Stops counting. Returns how many calls of the armed kind were counted. */
size_t fault_disarm(void);

/* Whether the armed failure has been injected since fault_arm. */
int fault_fired(void);

/* A description of where the last injected failure happened ("fwrite", "sqlite xSync"). */
const char *fault_where(void);

#endif
