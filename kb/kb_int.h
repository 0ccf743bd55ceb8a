/* kb_int.h — the facade's private state, shared by the files in kb/. */
#ifndef KB_KB_INT_H
#define KB_KB_INT_H

#include "kb/kb.h"
#include "index/store.h"
#include "kb/vec_int.h"
#include "util/err.h"

struct kb {
    struct kb_store *store;   /* NULL after a failed open */
    unsigned flags;
    struct kb_err err;
    struct kb_vec vec;        /* embeddings and the vector index (kb/vectors.c) */
};

/* Records a failure on the handle and returns its code. */
int kb_fail(kb *kb, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Checks a handle at the API boundary: KB_EINVALID (message kept) when unusable. */
int kb_usable(kb *kb, int need_write);

#endif
