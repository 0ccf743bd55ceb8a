/* redact.c — the API key masked in text that kb shows, however the server echoing it spelt it.
 *
 * Each spelling found is one span of the text, replaced by "***":
 *  - the key's bytes as they are;
 *  - percent-encoded (RFC 3986 section 2.1): any of its bytes as %XX, hex digits in either case,
 *    encoded and plain bytes mixed (a URL-encoder escapes only reserved characters; some escape
 *    all);
 *  - JSON-escaped (RFC 8259 section 7): \" \\ \/ \b \f \n \r \t and \uXXXX in either case, with
 *    a UTF-16 surrogate pair for a character past U+FFFF, mixed with plain bytes;
 *  - base64 (RFC 4648 sections 4 and 5, standard or URL-safe alphabet, padded or not), of the key
 *    alone or inside longer encoded data such as HTTP Basic credentials base64("user:" key).
 *    Where the key starts in the encoded data (its offset mod 3) decides how it shows: for each
 *    of the three alignments, the characters made only of the key's bits are a fixed run,
 *    searched for in both alphabets. A run found masks the whole base64 token around it,
 *    padding included. A key too short to leave REDACT_MIN_B64 such characters at every
 *    alignment (under 5 bytes) is not searched for in base64.
 * Percent and JSON escapes are read in one decoded view of the text, so a key spelt with both
 * is found too. Not found: a key split by other text, encodings nested in each other (base64 of
 * percent-encoded bytes, a percent-encoded JSON string), hex and any other transform. */
#include "llm/llm_int.h"
#include "util/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REDACT_MIN_B64 6  /* 36 bits: a chance match in other base64 is ~1 in 7e10 */

/* A span of the text to mask: [from, to). Kept in a kb_buf, one after another. */
struct redact_span {
    size_t from, to;
};

static int redact_add(struct kb_buf *spans, size_t from, size_t to)
{
    struct redact_span span = { from, to };
    return kb_buf_append(spans, &span, sizeof span) ? KB_ENOMEM : 0;
}

static int redact_hex(const char *t, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;
        if (d == 16)
            return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

/* A JSON \uXXXX escape at t (a surrogate pair as one): the bytes in out, the length in *out_n;
 * returns the text bytes it takes, 0 when t holds none. */
static size_t redact_json_u(const char *t, size_t n, char *out, size_t *out_n)
{
    unsigned hi, lo;
    if (n < 6 || t[0] != '\\' || t[1] != 'u' || redact_hex(t + 2, 4, &hi))
        return 0;
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return 0;
    if (hi < 0xD800 || hi > 0xDBFF) {
        *out_n = kb_utf8_put(hi, out);
        return 6;
    }
    if (n < 12 || t[6] != '\\' || t[7] != 'u' || redact_hex(t + 8, 4, &lo) || lo < 0xDC00 ||
        lo > 0xDFFF)
        return 0;
    *out_n = kb_utf8_put(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), out);
    return 12;
}

/* One unit of text at t: a percent or JSON escape, else one plain byte. Writes the bytes it
 * stands for to out (*out_n of them) and returns the text bytes it takes. */
static size_t redact_unit(const char *t, size_t n, char *out, size_t *out_n)
{
    static const char short_in[] = "\"\\/bfnrt", short_out[] = "\"\\/\b\f\n\r\t";
    unsigned v;
    *out_n = 1;
    if (t[0] == '%' && n >= 3 && !redact_hex(t + 1, 2, &v)) {
        out[0] = (char)v;
        return 3;
    }
    if (t[0] == '\\' && n >= 2) {
        const char *s = t[1] ? strchr(short_in, t[1]) : NULL;
        if (s) {
            out[0] = short_out[s - short_in];
            return 2;
        }
        size_t used = redact_json_u(t, n, out, out_n);
        if (used)
            return used;
        *out_n = 1;
    }
    out[0] = t[0];
    return 1;
}

/* The key's bytes as they are. */
static int redact_plain(struct kb_buf *s, const char *text, size_t len, const char *key,
                        size_t klen)
{
    int rc = 0;
    for (size_t i = 0; !rc && len - i >= klen; i++)
        if (!memcmp(text + i, key, klen))
            rc = redact_add(s, i, i + klen);
    return rc;
}

/* The key percent- or JSON-escaped: searched in the text with every escape decoded, each
 * decoded byte remembering where in the text its unit starts. */
static int redact_escaped(struct kb_buf *s, const char *text, size_t len, const char *key,
                          size_t klen)
{
    /* A unit never stands for more bytes than it takes, so len (+ 3 for the last unit's
     * writes) bytes are room enough. */
    char *plain = malloc(len + 4);
    size_t *unit_at = malloc((len + 4) * sizeof *unit_at);
    size_t n = 0;
    int rc = plain && unit_at ? 0 : KB_ENOMEM;
    for (size_t i = 0; !rc && i < len;) {
        size_t got, used = redact_unit(text + i, len - i, plain + n, &got);
        for (size_t j = 0; j < got; j++)
            unit_at[n + j] = i;
        n += got;
        i += used;
    }
    for (size_t p = 0; !rc && n - p >= klen; p++) {
        if (memcmp(plain + p, key, klen))
            continue;
        size_t last = p + klen - 1, next = last + 1; /* the span ends where the next unit starts */
        while (next < n && unit_at[next] == unit_at[last])
            next++;
        rc = redact_add(s, unit_at[p], next < n ? unit_at[next] : len);
    }
    free(plain);
    free(unit_at);
    return rc;
}

static const char redact_b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int redact_b64_char(char c, int url_safe)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == (url_safe ? '-' : '+') || c == (url_safe ? '_' : '/');
}

/* The base64 characters made only of the key's bits when the key starts `align` bytes into a
 * 3-byte group (RFC 4648 section 4), in the URL-safe alphabet when `url_safe`, into run (room
 * for 8 * klen / 6 + 1 bytes). Returns their count, 0 when under REDACT_MIN_B64. */
static size_t redact_b64_run(const char *key, size_t klen, unsigned align, int url_safe,
                             char *run)
{
    size_t bits_from = 8 * (size_t)align, bits_to = bits_from + 8 * klen;
    size_t first = (bits_from + 5) / 6, end = bits_to / 6; /* whole 6-bit groups in the key */
    if (end < first + REDACT_MIN_B64)
        return 0;
    for (size_t j = first; j < end; j++) {
        unsigned v = 0;
        for (size_t b = 6 * j; b < 6 * j + 6; b++) {
            size_t byte = b / 8 - align;
            v = v << 1 | ((unsigned char)key[byte] >> (7 - b % 8) & 1);
        }
        char c = redact_b64_std[v];
        run[j - first] = !url_safe ? c : c == '+' ? '-' : c == '/' ? '_' : c;
    }
    return end - first;
}

/* The key in base64: each run found masks its whole token. */
static int redact_base64(struct kb_buf *s, const char *text, size_t len, const char *key,
                         size_t klen)
{
    char *run = malloc(8 * klen / 6 + 1);
    int rc = run ? 0 : KB_ENOMEM;
    for (unsigned v = 0; !rc && v < 6; v++) {
        int url_safe = v >= 3;
        size_t rlen = redact_b64_run(key, klen, v % 3, url_safe, run);
        for (size_t i = 0; rlen && !rc && len - i >= rlen; i++) {
            if (memcmp(text + i, run, rlen))
                continue;
            size_t from = i, to = i + rlen;
            while (from > 0 && redact_b64_char(text[from - 1], url_safe))
                from--;
            while (to < len && redact_b64_char(text[to], url_safe))
                to++;
            while (to < len && text[to] == '=')
                to++;
            rc = redact_add(s, from, to);
            i = to - 1;
        }
    }
    free(run);
    return rc;
}

static int redact_span_cmp(const void *a, const void *b)
{
    const struct redact_span *x = a, *y = b;
    return x->from < y->from ? -1 : x->from > y->from;
}

/* Appends the text with the spans (sorted, overlapping ones joined) replaced by "***". */
static int redact_emit(struct kb_buf *out, const char *text, size_t len, struct kb_buf *spans)
{
    struct redact_span *at = (struct redact_span *)(void *)spans->data;
    size_t n = spans->len / sizeof *at, done = 0;
    int rc = 0;
    if (n)
        qsort(at, n, sizeof *at, redact_span_cmp);
    for (size_t i = 0; !rc && i < n; i++) {
        size_t from = at[i].from, to = at[i].to;
        while (i + 1 < n && at[i + 1].from < to) {
            i++;
            to = at[i].to > to ? at[i].to : to;
        }
        rc = kb_buf_append(out, text + done, from - done) || kb_buf_puts(out, "***");
        done = to;
    }
    return rc || kb_buf_append(out, text + done, len - done) ? KB_ENOMEM : 0;
}

int kb_llm_redact(struct kb_buf *out, const char *text, size_t len, const char *key)
{
    size_t klen = key ? strlen(key) : 0;
    struct kb_buf spans = KB_BUF_INIT;
    int rc = 0;
    if (klen) {
        rc = redact_plain(&spans, text, len, key, klen);
        if (!rc)
            rc = redact_escaped(&spans, text, len, key, klen);
        if (!rc)
            rc = redact_base64(&spans, text, len, key, klen);
    }
    if (!rc)
        rc = redact_emit(out, text, len, &spans);
    kb_buf_free(&spans);
    return rc ? KB_ENOMEM : 0;
}
