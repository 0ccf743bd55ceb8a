/* utf8.h — UTF-8 validation, checked once when text enters kb. */
#ifndef KB_UTIL_UTF8_H
#define KB_UTIL_UTF8_H

#include <stddef.h>

/* Returns 1 when text[0..len) is valid UTF-8 (no overlongs, surrogates or values past
 * U+10FFFF), else 0 with *bad_offset set to the first invalid byte. */
int kb_utf8_valid(const char *text, size_t len, size_t *bad_offset);

#endif
