/* kb.c — the facade's handle: open, close, errors, status, check, live-handle registry. */
#include "kb/kb_int.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KB_VERSION_STRING
#define KB_VERSION_STRING "0.0.0"
#endif

/* The registry of live handles: an open-addressing set of (pointer, kind), linear probing,
 * at most half full, emptied slots closed by shifting back (Knuth 6.4 Algorithm R). It is
 * freed when the last handle goes, so a program that closes everything leaks nothing. */
struct handle_slot {
    const void *ptr;          /* NULL: empty */
    enum kb_handle_kind kind;
};

static pthread_mutex_t handle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle_slot *handle_slots;
static size_t handle_cap, handle_count; /* cap: 0 or a power of two */

static size_t handle_home(const void *ptr, size_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)ptr * 0x9E3779B97F4A7C15u; /* Fibonacci hashing */
    return (size_t)(h >> 32) & (cap - 1);
}

/* The slot holding ptr, or the empty slot where it would go. Needs cap > count. */
static size_t handle_find(const void *ptr)
{
    size_t i = handle_home(ptr, handle_cap);
    while (handle_slots[i].ptr && handle_slots[i].ptr != ptr)
        i = (i + 1) & (handle_cap - 1);
    return i;
}

static int handle_grow(void)
{
    size_t cap = handle_cap ? handle_cap * 2 : 16;
    struct handle_slot *slots = calloc(cap, sizeof *slots), *old = handle_slots;
    if (!slots)
        return KB_ENOMEM;
    size_t old_cap = handle_cap;
    handle_slots = slots;
    handle_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].ptr)
            handle_slots[handle_find(old[i].ptr)] = old[i];
    free(old);
    return 0;
}

int kb_handle_add(const void *ptr, enum kb_handle_kind kind)
{
    int rc = 0;
    pthread_mutex_lock(&handle_lock);
    if (2 * (handle_count + 1) > handle_cap)
        rc = handle_grow();
    if (rc == 0) {
        size_t i = handle_find(ptr);
        if (!handle_slots[i].ptr)
            handle_count++;
        handle_slots[i] = (struct handle_slot){ ptr, kind };
    }
    pthread_mutex_unlock(&handle_lock);
    return rc;
}

/* Empties slot i and moves later members of its probe run back into the gap. */
static void handle_delete_at(size_t i)
{
    size_t mask = handle_cap - 1, j = i;
    handle_slots[i].ptr = NULL;
    for (;;) {
        j = (j + 1) & mask;
        if (!handle_slots[j].ptr)
            return;
        size_t home = handle_home(handle_slots[j].ptr, handle_cap);
        /* j's entry may fill the gap at i unless its home lies cyclically in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            handle_slots[i] = handle_slots[j];
            handle_slots[j].ptr = NULL;
            i = j;
        }
    }
}

int kb_handle_remove(const void *ptr, enum kb_handle_kind kind)
{
    int found = 0;
    pthread_mutex_lock(&handle_lock);
    if (ptr && handle_count) {
        size_t i = handle_find(ptr);
        found = handle_slots[i].ptr == ptr && handle_slots[i].kind == kind;
        if (found && (handle_delete_at(i), --handle_count == 0)) {
            free(handle_slots);
            handle_slots = NULL;
            handle_cap = 0;
        }
    }
    pthread_mutex_unlock(&handle_lock);
    return found;
}

int kb_handle_live(const void *ptr, enum kb_handle_kind kind)
{
    int found = 0;
    pthread_mutex_lock(&handle_lock);
    if (ptr && handle_count) {
        size_t i = handle_find(ptr);
        found = handle_slots[i].ptr == ptr && handle_slots[i].kind == kind;
    }
    pthread_mutex_unlock(&handle_lock);
    return found;
}

int kb_fail(kb *kb, int code, const char *fmt, ...)
{
    if (!kb)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kb->err.msg, sizeof kb->err.msg, fmt, ap);
    va_end(ap);
    kb->err.code = code;
    return code;
}

int kb_usable(kb *kb, int need_write)
{
    if (!kb || !kb_handle_live(kb, KB_HANDLE_KB))
        return KB_EINVALID; /* NULL, closed or never opened: nowhere to keep a message */
    if (!kb->store)
        return kb_fail(kb, KB_EINVALID, "knowledge base is not open");
    if (need_write && (kb->flags & KB_OPEN_READONLY))
        return kb_fail(kb, KB_EINVALID, "knowledge base was opened read-only");
    kb_err_clear(&kb->err);
    return 0;
}

static pthread_once_t http_once = PTHREAD_ONCE_INIT;

static void http_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void kb_http_init(void)
{
    pthread_once(&http_once, http_init_once);
}

int kb_open(kb **out, const char *dir, unsigned flags)
{
    if (!out)
        return KB_EINVALID;
    kb_http_init();
    kb *kb = calloc(1, sizeof *kb);
    *out = NULL;
    if (!kb)
        return KB_ENOMEM;
    if (kb_handle_add(kb, KB_HANDLE_KB)) {
        free(kb);
        return KB_ENOMEM;
    }
    *out = kb;
    kb->flags = flags;
    if (!dir || !*dir)
        return kb_fail(kb, KB_EINVALID, "no knowledge base directory given");
    if ((flags & KB_OPEN_CREATE) && (flags & KB_OPEN_READONLY))
        return kb_fail(kb, KB_EINVALID, "KB_OPEN_CREATE and KB_OPEN_READONLY exclude each other");
    unsigned sflags = ((flags & KB_OPEN_CREATE) ? KB_STORE_CREATE : 0) |
                      ((flags & KB_OPEN_READONLY) ? KB_STORE_READONLY : 0);
    int rc = kb_store_open(&kb->store, dir, sflags, &kb->err);
    /* The service's bearer tokens are made with the KB (kb serve reports any problem with
     * them; a KB is usable without). */
    if (rc == 0 && (flags & KB_OPEN_CREATE))
        kb_service_tokens(dir, 1, NULL, NULL);
    return rc;
}

void kb_close(kb *kb)
{
    if (!kb_handle_remove(kb, KB_HANDLE_KB))
        return; /* NULL, already closed, or not a handle kb_open gave */
    kb_vec_close(kb);
    kb_search_close(kb);
    kb_store_close(kb->store);
    free(kb);
}

const char *kb_errmsg(const kb *kb)
{
    if (!kb)
        return "no knowledge base handle";
    if (!kb_handle_live(kb, KB_HANDLE_KB))
        return "not an open knowledge base handle (closed already?)";
    return kb->err.msg;
}

const char *kb_strerror(int status)
{
    switch (status) {
    case KB_OK: return "success";
    case KB_EINVALID: return "invalid argument";
    case KB_ENOMEM: return "out of memory or over a size limit";
    case KB_ENOTFOUND: return "not found";
    case KB_ENOTKB: return "not a knowledge base";
    case KB_EVERSION: return "written by a newer version of kb";
    case KB_ELOCKED: return "locked by another writer";
    case KB_EIO: return "input/output error";
    case KB_EFORMAT: return "malformed input";
    case KB_ECANTCREATE: return "cannot create";
    case KB_ECORRUPT: return "knowledge base is damaged";
    case KB_EPARTIAL: return "some inputs were skipped";
    case KB_EUNAVAILABLE: return "service unavailable";
    case KB_EAUTH: return "credentials refused";
    case KB_ECONFIG: return "configuration error";
    case KB_ECANCELED: return "canceled";
    default: return "error";
    }
}

const char *kb_version(void)
{
    return KB_VERSION_STRING;
}

int kb_stat(kb *kb, kb_status_info *out)
{
    int rc = kb_usable(kb, 0);
    if (rc)
        return rc;
    if (!out)
        return kb_fail(kb, KB_EINVALID, "kb_stat: out is NULL");
    struct kb_store_stats st;
    if ((rc = kb_store_stats(kb->store, &st, &kb->err)))
        return rc;
    out->n_documents = (size_t)st.n_documents;
    out->n_chunks = (size_t)st.n_chunks;
    out->text_bytes = (uint64_t)st.text_bytes;
    out->schema_version = st.schema_version;
    return kb_vec_stat(kb, out);
}

int kb_check(kb *kb)
{
    int rc = kb_usable(kb, 0);
    rc = rc ? rc : kb_store_check(kb->store, &kb->err);
    return rc ? rc : kb_vec_check(kb);
}
