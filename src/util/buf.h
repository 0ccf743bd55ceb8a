/* buf.h — growable byte buffers that stay NUL-terminated and refuse to grow past a cap. */
#ifndef KB_UTIL_BUF_H
#define KB_UTIL_BUF_H

#include <stddef.h>

struct kb_buf {
    char *data;     /* NUL-terminated when non-NULL */
    size_t len;
    size_t alloc;
    size_t max;     /* the most bytes it may hold; 0 = KB_BUF_DEFAULT_MAX */
};

#define KB_BUF_DEFAULT_MAX ((size_t)1 << 30)
#define KB_BUF_INIT { NULL, 0, 0, 0 }

/* Each returns 0 or KB_ENOMEM (allocation failed or the cap would be passed). */
int kb_buf_append(struct kb_buf *buf, const void *data, size_t len);
int kb_buf_puts(struct kb_buf *buf, const char *str);
int kb_buf_printf(struct kb_buf *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int kb_buf_reserve(struct kb_buf *buf, size_t extra);
void kb_buf_reset(struct kb_buf *buf);
/* Appends a whole file's bytes. 0; KB_ENOMEM when it would pass the cap; or -1 with errno set
 * when the file cannot be opened or read (callers name the file in their own message). */
int kb_buf_read_file(struct kb_buf *buf, const char *path);
/* Hands the data to the caller (free() it) and empties the buffer; "" when empty. */
char *kb_buf_detach(struct kb_buf *buf);
void kb_buf_free(struct kb_buf *buf);

#endif
