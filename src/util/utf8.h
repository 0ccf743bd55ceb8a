/* utf8.h — UTF-8 validation, checked once when text enters kb, and escaping for terminals. */
#ifndef KB_UTIL_UTF8_H
#define KB_UTIL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Returns 1 when text[0..len) is valid UTF-8 (no overlongs, surrogates or values past
 * U+10FFFF), else 0 with *bad_offset set to the first invalid byte. */
int kb_utf8_valid(const char *text, size_t len, size_t *bad_offset);

/* Writes code point cp (up to U+10FFFF) as UTF-8 into out (4 bytes of room); returns its
 * length. */
size_t kb_utf8_put(uint32_t cp, char *out);

/* The length (1-4) of the valid UTF-8 sequence at text[0..len), or 0 when it is not one. */
size_t kb_utf8_seq_len(const char *text, size_t len);

/* The length of the longest prefix of text[0..len) that does not end inside a UTF-8
 * sequence (what can be passed on while the rest may still be completed). */
size_t kb_utf8_complete(const char *text, size_t len);

struct kb_buf;
/* How kb_utf8_escape treats line breaks and tabs. */
enum kb_escape_mode {
    KB_ESCAPE_LINE = 0,   /* one line: '\n', '\r' and '\t' escaped too */
    KB_ESCAPE_TEXT = 1    /* text of several lines: '\n' and '\t' kept as they are */
};
/* Appends text[0..len) to out as it may reach a terminal or a log: control characters (C0,
 * DEL, and C1 U+0080..U+009F) as \n \r \t or \xNN (\u0085 for C1), bytes that are not UTF-8
 * as \xNN; everything else as it is. Returns 0 or KB_ENOMEM. */
int kb_utf8_escape(struct kb_buf *out, const char *text, size_t len, enum kb_escape_mode mode);

#endif
