/* utf8.c — UTF-8 validation on top of utf8proc, with an ASCII fast path, and the escaping of
 * text for terminals and logs. */
#include "util/utf8.h"

#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

#include "util/buf.h"

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

size_t kb_utf8_seq_len(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    if (!len)
        return 0;
    if (s[0] < 0x80)
        return 1;
    size_t n = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 && s[0] < 0xF0 ? 3
               : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : 0;
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xE0 && s[1] < 0xA0) || (n == 3 && s[0] == 0xED && s[1] >= 0xA0) ||
        (n == 4 && s[0] == 0xF0 && s[1] < 0x90) || (n == 4 && s[0] == 0xF4 && s[1] >= 0x90))
        return 0;
    return n;
}

size_t kb_utf8_complete(const char *text, size_t len)
{
    /* Find the last lead byte within the final 4; hold it back if its sequence is short. */
    for (size_t back = 1; back <= 4 && back <= len; back++) {
        unsigned char c = (unsigned char)text[len - back];
        if ((c & 0xC0) == 0x80)
            continue;
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? len - back : len;
    }
    return len;
}

int kb_utf8_escape(struct kb_buf *out, const char *text, size_t len, enum kb_escape_mode mode)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, plain = 0; /* text[plain..i) is copied as it is, in one append */
    int rc = 0;
    while (i < len && !rc) {
        size_t n = kb_utf8_seq_len(text + i, len - i);
        unsigned c = s[i];
        int c1 = n == 2 && c == 0xC2 && s[i + 1] < 0xA0;
        int ctl = n == 1 && (c < 0x20 || c == 0x7F);
        int kept = mode == KB_ESCAPE_TEXT && (c == '\n' || c == '\t');
        if (n && !c1 && (!ctl || kept)) {
            i += n;
            continue;
        }
        rc = kb_buf_append(out, text + plain, i - plain);
        if (rc)
            break;
        if (c1)
            rc = kb_buf_printf(out, "\\u%04x", (unsigned)s[i + 1]);
        else if (c == '\n' || c == '\r' || c == '\t')
            rc = kb_buf_puts(out, c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t");
        else
            rc = kb_buf_printf(out, "\\x%02x", c);
        i += c1 ? 2 : 1;
        plain = i;
    }
    if (!rc)
        rc = kb_buf_append(out, text + plain, i - plain);
    return rc;
}

size_t kb_utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
