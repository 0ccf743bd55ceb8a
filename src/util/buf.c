/* buf.c — growable byte buffers with a size cap. */
#include "util/buf.h"
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kb_buf_reserve(struct kb_buf *buf, size_t extra)
{
    size_t max = buf->max ? buf->max : KB_BUF_DEFAULT_MAX;
    if (extra > max || buf->len > max - extra)
        return KB_ENOMEM;
    size_t need = buf->len + extra + 1;
    if (need <= buf->alloc)
        return 0;
    size_t alloc = buf->alloc ? buf->alloc : 64;
    while (alloc < need)
        alloc = alloc > SIZE_MAX / 2 ? need : alloc * 2;
    char *data = realloc(buf->data, alloc);
    if (!data)
        return KB_ENOMEM;
    buf->data = data;
    buf->alloc = alloc;
    return 0;
}

int kb_buf_append(struct kb_buf *buf, const void *data, size_t len)
{
    int rc = kb_buf_reserve(buf, len);
    if (rc)
        return rc;
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
    return 0;
}

int kb_buf_puts(struct kb_buf *buf, const char *str)
{
    return kb_buf_append(buf, str, strlen(str));
}

int kb_buf_printf(struct kb_buf *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return KB_ERROR;
    int rc = kb_buf_reserve(buf, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
    return 0;
}

void kb_buf_reset(struct kb_buf *buf)
{
    buf->len = 0;
    if (buf->data)
        buf->data[0] = '\0';
}

char *kb_buf_detach(struct kb_buf *buf)
{
    char *data = buf->data ? buf->data : strdup("");
    buf->data = NULL;
    buf->len = buf->alloc = 0;
    return data;
}

void kb_buf_free(struct kb_buf *buf)
{
    if (!buf)
        return;
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->alloc = 0;
}

int kb_buf_read_file(struct kb_buf *buf, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = kb_buf_append(buf, chunk, n);
    if (!rc && ferror(f)) {
        errno = EIO;
        rc = -1;
    }
    int saved = errno;
    fclose(f);
    errno = saved;
    return rc;
}
