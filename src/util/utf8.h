/* utf8.h — UTF-8 validation, checked once when text enters kb, and escaping for terminals. */
#ifndef KB_UTIL_UTF8_H
#define KB_UTIL_UTF8_H

#include <stddef.h>

/* Returns 1 when text[0..len) is valid UTF-8 (no overlongs, surrogates or values past
 * U+10FFFF), else 0 with *bad_offset set to the first invalid byte. */
int kb_utf8_valid(const char *text, size_t len, size_t *bad_offset);

/* The most bytes kb_escape_ctl writes for `len` bytes of text, its NUL included. */
#define KB_ESCAPE_CTL_SIZE(len) ((len) * 4 + 1)

/* Copies text[0..len) into out (out_size bytes) for a terminal or a log line: newline,
 * carriage return and tab become \n \r \t, other bytes below 0x20 and 0x7f become \xNN,
 * C1 controls (U+0080..U+009F) become \u00NN, and each byte that is not part of valid
 * UTF-8 becomes \xNN. Everything else, valid UTF-8 and backslashes included, is copied as
 * it is, so the result is for reading, not for decoding back. The output is NUL-terminated
 * whenever out_size > 0; when it does not fit it stops before the first character or escape
 * that would not fit whole. Returns the length the whole escaped text needs (without the
 * NUL), like snprintf: at most 4 * len. */
size_t kb_escape_ctl(char *out, size_t out_size, const char *text, size_t len);

#endif
