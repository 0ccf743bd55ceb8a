/* file.c — opening regular files without blocking, and reading them whole. */
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* Records errno's reason and returns code, with errno kept for the caller. */
static int file_fail(struct kb_err *err, int code, int saved)
{
    if (code == KB_EFORMAT)
        kb_err_set(err, code, "not a regular file");
    else
        kb_err_set(err, code, "%s", strerror(saved));
    errno = saved;
    return code;
}

int kb_file_open_regular(const char *path, int *fd, struct stat *st, struct kb_err *err)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (*fd < 0)
        return file_fail(err, errno == ENOENT ? KB_ENOTFOUND : KB_EIO, errno);
    int code = 0, saved = 0;
    if (fstat(*fd, st) != 0) {
        code = KB_EIO;
        saved = errno;
    } else if (!S_ISREG(st->st_mode)) {
        code = KB_EFORMAT;
        saved = EINVAL;
    }
    if (!code)
        return 0;
    close(*fd);
    *fd = -1;
    return file_fail(err, code, saved);
}

int kb_file_read_fd(struct kb_buf *buf, int fd, struct kb_err *err)
{
    size_t cap = buf->max ? buf->max : KB_BUF_DEFAULT_MAX;
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kb_err_set(err, KB_EIO, "%s", strerror(errno));
        if (n == 0)
            return 0;
        if (buf->len + (size_t)n > cap)
            return kb_err_set(err, KB_ENOMEM, "grew past the %zu-byte limit while read", cap);
        if (kb_buf_append(buf, chunk, (size_t)n))
            return kb_err_set(err, KB_ENOMEM, "out of memory (%zu bytes)", buf->len + (size_t)n);
    }
}

int kb_file_read_regular(struct kb_buf *buf, const char *path, struct kb_err *err)
{
    struct stat st;
    int fd, rc = kb_file_open_regular(path, &fd, &st, err);
    if (rc)
        return rc;
    size_t cap = buf->max ? buf->max : KB_BUF_DEFAULT_MAX;
    if (buf->len > cap || (uint64_t)st.st_size > (uint64_t)(cap - buf->len))
        rc = kb_err_set(err, KB_ENOMEM, "larger than the %zu-byte limit (%lld bytes)", cap,
                        (long long)st.st_size);
    else
        rc = kb_file_read_fd(buf, fd, err);
    close(fd);
    return rc;
}
