/* file.h — opening the files kb reads (documents, model files) without ever blocking on one
 * that is not a regular file: a FIFO without a writer or a device would hang a plain open or
 * read forever. */
#ifndef KB_UTIL_FILE_H
#define KB_UTIL_FILE_H

#include <sys/stat.h>

#include "util/buf.h"
#include "util/err.h"

/* Opens `path` read-only with O_NONBLOCK (so the open itself cannot wait for a FIFO's writer)
 * and checks on the descriptor, not the name, that it is a regular file: 0 with *fd open (the
 * caller closes it) and *st filled. Otherwise *fd is -1, errno says why, and the return and
 * err are KB_ENOTFOUND when absent (errno ENOENT), KB_EIO with the system's reason, or
 * KB_EFORMAT "not a regular file" (errno EINVAL). err's message does not name the path
 * (callers do); err may be NULL. */
int kb_file_open_regular(const char *path, int *fd, struct stat *st, struct kb_err *err);

/* Appends what is left to read of fd to buf. 0; KB_EIO with the system's reason; KB_ENOMEM
 * when memory runs out or the buffer's cap would be passed. */
int kb_file_read_fd(struct kb_buf *buf, int fd, struct kb_err *err);

/* Appends the whole of the regular file `path` to buf, opened as kb_file_open_regular does:
 * 0, or its errors, or kb_file_read_fd's; a file larger than the buffer's cap is KB_ENOMEM
 * "larger than the N-byte limit (M bytes)", unread. */
int kb_file_read_regular(struct kb_buf *buf, const char *path, struct kb_err *err);

#endif
