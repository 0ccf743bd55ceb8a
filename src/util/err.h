/* err.h — the error record internals pass around; translated to kb_errmsg() at the facade. */
#ifndef KB_UTIL_ERR_H
#define KB_UTIL_ERR_H

#include "kb/kb.h"

#define KB_ERR_SIZE 512

struct kb_err {
    int code;
    char msg[KB_ERR_SIZE];
};

/* Records a one-line message (printf format) and returns `code`, so callers can write
 * `return kb_err_set(err, KB_EIO, "%s: %s", path, strerror(errno));`. `err` may be NULL. */
int kb_err_set(struct kb_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with "prefix: ". */
void kb_err_prefix(struct kb_err *err, const char *prefix);

void kb_err_clear(struct kb_err *err);

#endif
