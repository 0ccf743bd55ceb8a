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
 * KB_ENOMEM "larger than the N-byte limit", KB_EFORMAT "binary file (NUL byte at byte N)",
 * "not valid UTF-8 at line L, byte N", "empty file", "whitespace only", KB_EIO with the
 * system's reason, or "file changed while being read". */
int kb_textfile_read(struct kb_textfile *out, const char *path, uint64_t max_bytes,
                     struct kb_err *err);

/* Most bytes kb reads of one file into memory, whatever max_bytes (--max-file-size) says:
 * larger files are refused unread. */
#define KB_TEXTFILE_MAX_BYTES ((uint64_t)1 << 30)

/* How many bytes of a file a sniff callback sees before the rest is read. */
#define KB_TEXTFILE_HEAD_BYTES ((size_t)64 << 10)

/* Looks at a file's first bytes (head: the first min(size, KB_TEXTFILE_HEAD_BYTES) of them)
 * before the rest is read; 0 to read on, or a negative kb_status with err set to refuse the
 * file. */
typedef int (*kb_textfile_sniff_cb)(const char *head, size_t len, void *payload,
                                    struct kb_err *err);

/* Reads `path`'s bytes unchecked (NUL-terminated copy, hash of the bytes) through one file
 * descriptor: refuses what is not a regular file ("not a regular file"), larger than
 * max_bytes ("larger than the N-byte limit (M bytes)") or than KB_TEXTFILE_MAX_BYTES, both
 * KB_ENOMEM and unread; passes the head to `sniff` (may be NULL), whose refusal is returned
 * as it is; reads exactly the size fstat gave. The file was changed while being read
 * (KB_EIO "file changed while being read") when fewer bytes arrive, any byte follows them,
 * or a second fstat afterwards shows another size, modification time or status-change time
 * (nanoseconds, as fine as the filesystem keeps them). */
int kb_textfile_read_sniffed(struct kb_textfile *out, const char *path, uint64_t max_bytes,
                             kb_textfile_sniff_cb sniff, void *payload, struct kb_err *err);

/* kb_textfile_read_sniffed without a sniff. */
int kb_textfile_read_bytes(struct kb_textfile *out, const char *path, uint64_t max_bytes,
                           struct kb_err *err);

/* Checks in-memory text the same way (UTF-8, NUL bytes, empty); text is not copied. */
int kb_text_check(const char *text, size_t len, struct kb_err *err);

void kb_textfile_free(struct kb_textfile *file);

#endif
