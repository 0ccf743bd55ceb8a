/* utf8.c — UTF-8 validation on top of utf8proc, with an ASCII fast path, and escaping of
 * control characters for terminals and logs. */
#include "util/utf8.h"

#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

int kb_utf8_valid(const char *text, size_t len, size_t *bad_offset)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        size_t left = len - i;
        utf8proc_ssize_t n = utf8proc_iterate(p + i, left > 4 ? 4 : (utf8proc_ssize_t)left, &cp);
        if (n <= 0 || cp < 0) {
            if (bad_offset)
                *bad_offset = i;
            return 0;
        }
        i += (size_t)n;
    }
    return 1;
}

/* \xNN for one byte. */
static int utf8_hex_escape(char esc[8], unsigned char byte)
{
    static const char hex[] = "0123456789abcdef";
    esc[0] = '\\';
    esc[1] = 'x';
    esc[2] = hex[byte >> 4];
    esc[3] = hex[byte & 15];
    return 4;
}

/* The escape for the character at p (`left` bytes remain) in esc with its length, or 0 when
 * the character is copied as it is; *width is how many bytes of text it stands for. */
static int utf8_escape_one(const unsigned char *p, size_t left, char esc[8], size_t *width)
{
    *width = 1;
    if (p[0] == '\n' || p[0] == '\r' || p[0] == '\t') {
        esc[0] = '\\';
        esc[1] = p[0] == '\n' ? 'n' : p[0] == '\r' ? 'r' : 't';
        return 2;
    }
    if (p[0] < 0x20 || p[0] == 0x7f)
        return utf8_hex_escape(esc, p[0]);
    if (p[0] < 0x80)
        return 0;
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate(p, left > 4 ? 4 : (utf8proc_ssize_t)left, &cp);
    if (n <= 0 || cp < 0)
        return utf8_hex_escape(esc, p[0]); /* not UTF-8: this byte alone */
    *width = (size_t)n;
    if (cp > 0x9f)
        return 0;
    memcpy(esc, "\\u00", 4); /* a C1 control, U+0080..U+009F */
    esc[4] = "0123456789abcdef"[cp >> 4];
    esc[5] = "0123456789abcdef"[cp & 15];
    return 6;
}

size_t kb_escape_ctl(char *out, size_t out_size, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t need = 0, used = 0;
    int full = out_size == 0;
    for (size_t i = 0; i < len;) {
        char esc[8];
        size_t width;
        int n = utf8_escape_one(p + i, len - i, esc, &width);
        size_t piece = n ? (size_t)n : width;
        if (!full && used + piece < out_size) {
            memcpy(out + used, n ? esc : text + i, piece);
            used += piece;
        } else {
            full = 1; /* nothing after the first piece that does not fit */
        }
        need += piece;
        i += width;
    }
    if (out_size)
        out[used] = '\0';
    return need;
}
