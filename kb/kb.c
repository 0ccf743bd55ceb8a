/* kb.c — the facade's handle: open, close, errors, status, check. */
#include "kb/kb_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KB_VERSION_STRING
#define KB_VERSION_STRING "0.0.0"
#endif

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
    if (!kb)
        return KB_EINVALID;
    if (!kb->store)
        return kb_fail(kb, KB_EINVALID, "knowledge base is not open");
    if (need_write && (kb->flags & KB_OPEN_READONLY))
        return kb_fail(kb, KB_EINVALID, "knowledge base was opened read-only");
    kb_err_clear(&kb->err);
    return 0;
}

int kb_open(kb **out, const char *dir, unsigned flags)
{
    if (!out)
        return KB_EINVALID;
    kb *kb = calloc(1, sizeof *kb);
    *out = kb;
    if (!kb)
        return KB_ENOMEM;
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
    if (!kb)
        return;
    kb_vec_close(kb);
    kb_store_close(kb->store);
    free(kb);
}

const char *kb_errmsg(const kb *kb)
{
    return kb ? kb->err.msg : "no knowledge base handle";
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
