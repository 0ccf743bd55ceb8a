/* err.c — one-line error messages with a status code. */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int kb_err_set(struct kb_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    /* Messages are one line: fold any newline that came from a file name or a library. */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    err->code = code;
    return code;
}

void kb_err_prefix(struct kb_err *err, const char *prefix)
{
    if (!err)
        return;
    char old[KB_ERR_SIZE];
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > KB_ERR_SIZE - 3)
        n = KB_ERR_SIZE - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = KB_ERR_SIZE - n - 3;
    size_t old_len = strnlen(old, rest);
    memcpy(err->msg + n + 2, old, old_len);
    err->msg[n + 2 + old_len] = '\0';
}

void kb_err_clear(struct kb_err *err)
{
    if (!err)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}
