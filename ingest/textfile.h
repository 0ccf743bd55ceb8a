/* textfile.h — reads a text document from disk: format by extension, size cap, UTF-8 check. */
#ifndef KB_INGEST_TEXTFILE_H
#define KB_INGEST_TEXTFILE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/hash.h"

enum kb_text_format {
    KB_FORMAT_NONE = 0,   /* not a format kb reads */
    KB_FORMAT_TEXT,
    KB_FORMAT_MARKDOWN
};

/* The format a file's name says it has (.txt/.text, .md/.markdown/.mdown/.mkd). */
enum kb_text_format kb_textfile_format(const char *path);

/* "text", "markdown" or NULL. */
const char *kb_textfile_format_name(enum kb_text_format format);

/* Parses a format name as kb_textfile_format_name writes it; KB_FORMAT_NONE when unknown. */
enum kb_text_format kb_textfile_format_parse(const char *name);

struct kb_textfile {
    char *data;        /* the text, NUL-terminated, a UTF-8 BOM removed; owned */
    size_t len;
    char hash[KB_SHA256_HEX_SIZE]; /* SHA-256 of the file's bytes as stored on disk */
};

/* Reads `path`. Fails with err->msg a one-line reason that does not repeat the path:
 * KB_ENOMEM "larger than the 64 MiB limit", KB_EFORMAT "binary file (NUL byte at byte N)",
 * "not valid UTF-8 at line L, byte N", "empty file", "whitespace only", KB_EIO with the
 * system's reason, or "file changed while being read". */
int kb_textfile_read(struct kb_textfile *out, const char *path, uint64_t max_bytes,
                     struct kb_err *err);

/* Reads `path`'s bytes unchecked (NUL-terminated copy, hash of the bytes); same size cap,
 * regular-file and change checks and errors as kb_textfile_read. */
int kb_textfile_read_bytes(struct kb_textfile *out, const char *path, uint64_t max_bytes,
                           struct kb_err *err);

/* Checks in-memory text the same way (UTF-8, NUL bytes, empty); text is not copied. */
int kb_text_check(const char *text, size_t len, struct kb_err *err);

void kb_textfile_free(struct kb_textfile *file);

#endif
