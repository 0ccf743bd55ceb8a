/* textfile.c — bounded reads of text documents with their content hash. */
#include "ingest/textfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"
#include "util/utf8.h"

enum kb_text_format kb_textfile_format(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (!dot)
        return KB_FORMAT_NONE;
    static const char *const text_ext[] = { ".txt", ".text" };
    static const char *const md_ext[] = { ".md", ".markdown", ".mdown", ".mkd" };
    for (size_t i = 0; i < sizeof text_ext / sizeof *text_ext; i++)
        if (!strcasecmp(dot, text_ext[i]))
            return KB_FORMAT_TEXT;
    for (size_t i = 0; i < sizeof md_ext / sizeof *md_ext; i++)
        if (!strcasecmp(dot, md_ext[i]))
            return KB_FORMAT_MARKDOWN;
    return KB_FORMAT_NONE;
}

const char *kb_textfile_format_name(enum kb_text_format format)
{
    switch (format) {
    case KB_FORMAT_TEXT: return "text";
    case KB_FORMAT_MARKDOWN: return "markdown";
    default: return NULL;
    }
}

enum kb_text_format kb_textfile_format_parse(const char *name)
{
    if (name && !strcmp(name, "text"))
        return KB_FORMAT_TEXT;
    if (name && !strcmp(name, "markdown"))
        return KB_FORMAT_MARKDOWN;
    return KB_FORMAT_NONE;
}

static size_t text_line_of(const char *text, size_t offset)
{
    size_t line = 1;
    for (size_t i = 0; i < offset; i++)
        line += text[i] == '\n';
    return line;
}

int kb_text_check(const char *text, size_t len, struct kb_err *err)
{
    if (len == 0)
        return kb_err_set(err, KB_EFORMAT, "empty file");
    const char *nul = memchr(text, '\0', len);
    if (nul)
        return kb_err_set(err, KB_EFORMAT, "binary file (NUL byte at byte %zu)",
                          (size_t)(nul - text));
    size_t bad;
    if (!kb_utf8_valid(text, len, &bad))
        return kb_err_set(err, KB_EFORMAT, "not valid UTF-8 at line %zu, byte %zu",
                          text_line_of(text, bad), bad);
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r\n\f\v", text[i]))
            return 0;
    return kb_err_set(err, KB_EFORMAT, "whitespace only");
}

/* Reads up to n bytes at buf; returns how many (fewer only at the end of the file), or -1
 * with errno set. */
static ssize_t textfile_read_full(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int textfile_same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* Whether the file behind fd is still what `before` described: same size, modification and
 * status-change times (to the nanosecond the filesystem keeps), and nothing past the end. */
static int textfile_unchanged(int fd, const struct stat *before)
{
    struct stat after;
    char extra;
    if (read(fd, &extra, 1) != 0 || fstat(fd, &after) != 0)
        return 0;
    return after.st_size == before->st_size &&
           textfile_same_time(after.st_mtim, before->st_mtim) &&
           textfile_same_time(after.st_ctim, before->st_ctim);
}

/* Reads the `size` bytes fstat gave into a new NUL-terminated buffer: first the head, which
 * `sniff` may refuse before the rest is read (so a huge binary costs 64 KiB), then the rest;
 * then checks that the file did not change meanwhile. */
static int textfile_slurp(int fd, const struct stat *st, kb_textfile_sniff_cb sniff,
                          void *payload, char **out, struct kb_err *err)
{
    size_t size = (size_t)st->st_size;
    size_t head = size < KB_TEXTFILE_HEAD_BYTES ? size : KB_TEXTFILE_HEAD_BYTES;
    char *data = malloc(head + 1), *grown;
    ssize_t got = data ? textfile_read_full(fd, data, head) : 0;
    int rc = 0;
    if (!data)
        return kb_err_set(err, KB_ENOMEM, "out of memory reading %zu bytes", head);
    if (got >= 0 && (size_t)got == head && sniff && (rc = sniff(data, head, payload, err)))
        goto done;
    if (got >= 0 && (size_t)got == head && size > head) {
        if (!(grown = realloc(data, size + 1))) {
            rc = kb_err_set(err, KB_ENOMEM, "out of memory reading %zu bytes", size);
            goto done;
        }
        data = grown;
        ssize_t rest = textfile_read_full(fd, data + head, size - head);
        got = rest < 0 ? rest : got + rest;
    }
    if (got < 0)
        rc = kb_err_set(err, KB_EIO, "%s", strerror(errno));
    else if ((size_t)got != size || !textfile_unchanged(fd, st))
        rc = kb_err_set(err, KB_EIO, "file changed while being read");
done:
    if (rc) {
        free(data);
        return rc;
    }
    data[size] = '\0';
    *out = data;
    return 0;
}

int kb_textfile_read_sniffed(struct kb_textfile *out, const char *path, uint64_t max_bytes,
                             kb_textfile_sniff_cb sniff, void *payload, struct kb_err *err)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    int fd, rc = kb_file_open_regular(path, &fd, &st, err);
    char *data = NULL;
    if (rc)
        return rc;
    if ((uint64_t)st.st_size > KB_TEXTFILE_MAX_BYTES && max_bytes > KB_TEXTFILE_MAX_BYTES) {
        rc = kb_err_set(err, KB_ENOMEM, "larger than the %llu-byte limit on what kb reads "
                        "into memory (%lld bytes)", (unsigned long long)KB_TEXTFILE_MAX_BYTES,
                        (long long)st.st_size);
        goto done;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        rc = kb_err_set(err, KB_ENOMEM, "larger than the %llu-byte limit (%lld bytes)",
                        (unsigned long long)max_bytes, (long long)st.st_size);
        goto done;
    }
    if ((rc = textfile_slurp(fd, &st, sniff, payload, &data, err)))
        goto done;
    kb_sha256_hex(data, (size_t)st.st_size, out->hash);
    out->data = data;
    out->len = (size_t)st.st_size;
done:
    close(fd);
    return rc;
}

int kb_textfile_read_bytes(struct kb_textfile *out, const char *path, uint64_t max_bytes,
                           struct kb_err *err)
{
    return kb_textfile_read_sniffed(out, path, max_bytes, NULL, NULL, err);
}

int kb_textfile_read(struct kb_textfile *out, const char *path, uint64_t max_bytes,
                     struct kb_err *err)
{
    int rc = kb_textfile_read_bytes(out, path, max_bytes, err);
    if (rc)
        return rc;
    size_t skip = (out->len >= 3 && !memcmp(out->data, "\xEF\xBB\xBF", 3)) ? 3 : 0;
    if ((rc = kb_text_check(out->data + skip, out->len - skip, err))) {
        kb_textfile_free(out);
        return rc;
    }
    if (skip)
        memmove(out->data, out->data + skip, out->len - skip + 1);
    out->len -= skip;
    return 0;
}

void kb_textfile_free(struct kb_textfile *file)
{
    if (!file)
        return;
    free(file->data);
    file->data = NULL;
    file->len = 0;
}
