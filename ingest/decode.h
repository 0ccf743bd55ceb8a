/* decode.h — bytes of unknown encoding to UTF-8: BOMs, UTF-8, legacy cp1252, binary refusal. */
#ifndef KB_INGEST_DECODE_H
#define KB_INGEST_DECODE_H

#include <stddef.h>

#include "util/err.h"

/* Why `raw` is not text, or NULL when it may be: a NUL byte without a UTF-16/32 BOM, or more
 * than 10% control bytes (other than tab, newline, CR, form feed) in the first 64 KiB. The
 * reason is written into `why` (at least 96 bytes) and returned. */
const char *kb_decode_binary_reason(const char *raw, size_t len, char *why, size_t why_size);

/* The charset a BOM names ("UTF-8", "UTF-16LE", "UTF-32BE", ...) and the BOM's length, or
 * NULL with *bom_len 0. */
const char *kb_decode_bom(const char *raw, size_t len, size_t *bom_len);

/* Converts raw[0..len) to a new NUL-terminated UTF-8 string (*out, free()), BOM removed.
 * Order: a BOM decides; else valid UTF-8 is kept; else `charset` (a name iconv knows, e.g.
 * from an HTML meta tag) when given; else cp1252. KB_EFORMAT with err saying
 * "not valid UTF-8 at line L, byte N" (and the legacy attempt) when nothing decodes,
 * "binary file (...)" for binary content; KB_ENOMEM past `max_out` bytes of output. */
int kb_decode_to_utf8(char **out, size_t *out_len, const char *raw, size_t len,
                      const char *charset, size_t max_out, struct kb_err *err);

/* Converts with iconv from `charset` to UTF-8 (no BOM handling). KB_EFORMAT when a byte does
 * not convert (err names its offset), KB_EINVALID for an unknown charset. */
int kb_decode_iconv(char **out, size_t *out_len, const char *raw, size_t len,
                    const char *charset, size_t max_out, struct kb_err *err);

#endif
