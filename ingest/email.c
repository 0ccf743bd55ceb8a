/* email.c — simple RFC 5322 / MIME messages: Subject, From, To and Date (RFC 2047 encoded-words
 * decoded, any charset iconv knows), then the text parts
 * (text/plain preferred in multipart/alternative, else text/html), transfer encodings and
 * charsets decoded. Attachments that are not inline text are left out. */
#define _GNU_SOURCE   /* memmem, strcasestr */
#include "ingest/doc_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest/decode.h"
#include "util/utf8.h"

#define EMAIL_MAX_DEPTH 8

struct email_part {
    const char *head, *body;
    size_t head_len, body_len;
};

/* Splits a part at its first blank line. */
static struct email_part email_split(const char *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] == '\n' && (s[i + 1] == '\n' || (s[i + 1] == '\r' && i + 2 < len && s[i + 2] == '\n'))) {
            size_t body = i + 2 + (s[i + 1] == '\r');
            return (struct email_part){ s, s + body, i + 1, len - body };
        }
    }
    return (struct email_part){ s, s + len, len, 0 };
}

/* The unfolded value of header `name` into out (truncated to size); 1 when present. */
static int email_header(const struct email_part *p, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < p->head_len; i++) {
        if ((i == 0 || p->head[i - 1] == '\n') && i + n < p->head_len &&
            !strncasecmp(p->head + i, name, n) && p->head[i + n] == ':') {
            size_t k = 0, j = i + n + 1;
            for (; j < p->head_len && k + 1 < size; j++) {
                if (p->head[j] == '\n' && !(j + 1 < p->head_len && strchr(" \t", p->head[j + 1])))
                    break;
                if (p->head[j] != '\r' && p->head[j] != '\n')
                    out[k++] = p->head[j] == '\t' ? ' ' : p->head[j];
            }
            while (k && out[k - 1] == ' ')
                k--;
            out[k] = '\0';
            memmove(out, out + strspn(out, " "), strlen(out + strspn(out, " ")) + 1);
            return 1;
        }
    }
    out[0] = '\0';
    return 0;
}

/* A parameter (boundary, charset) of a header value; "" when absent. */
static void email_param(const char *value, const char *param, char *out, size_t size)
{
    size_t n = strlen(param);
    out[0] = '\0';
    for (const char *p = value; (p = strcasestr(p, param)); p += n) {
        if (p != value && !strchr(" ;\t", p[-1]))
            continue;
        p += n;
        p += strspn(p, " ");
        if (*p != '=')
            continue;
        p++;
        int quoted = *p == '"';
        p += quoted;
        size_t k = 0;
        while (*p && k + 1 < size && (quoted ? *p != '"' : !strchr(" ;\t", *p)))
            out[k++] = *p++;
        out[k] = '\0';
        return;
    }
}

static int email_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void email_unqp(struct kb_buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '=' && i + 1 < len && (s[i + 1] == '\n' || s[i + 1] == '\r')) {
            i += s[i + 1] == '\r' && i + 2 < len && s[i + 2] == '\n' ? 2 : 1;
        } else if (s[i] == '=' && i + 2 < len && email_hex(s[i + 1]) >= 0 && email_hex(s[i + 2]) >= 0) {
            char c = (char)(email_hex(s[i + 1]) << 4 | email_hex(s[i + 2]));
            kb_buf_append(out, &c, 1);
            i += 2;
        } else {
            kb_buf_append(out, s + i, 1);
        }
    }
}

static void email_unbase64(struct kb_buf *out, const char *s, size_t len)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len && s[i] != '='; i++) {
        const char *p = s[i] ? strchr(alphabet, s[i]) : NULL;
        if (!p)
            continue;
        acc = acc << 6 | (unsigned)(p - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char c = (char)(acc >> bits & 0xFF);
            kb_buf_append(out, &c, 1);
        }
    }
}

/* ---- RFC 2047 encoded-words in headers ------------------------------------------------ */

/* The "Q" encoding: like quoted-printable, and "_" is a space. */
static void email_unq(struct kb_buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i] == '_' ? ' ' : s[i];
        if (s[i] == '=' && i + 2 < len && email_hex(s[i + 1]) >= 0 && email_hex(s[i + 2]) >= 0) {
            c = (char)(email_hex(s[i + 1]) << 4 | email_hex(s[i + 2]));
            i += 2;
        }
        kb_buf_append(out, &c, 1);
    }
}

/* Decodes the encoded-word at p ("=?charset?B?text?=" or "?Q?"; a "*lang" after the charset,
 * RFC 2231, is dropped) and appends it to out as UTF-8. Returns its length, or 0 when p is
 * not a well-formed encoded-word or its charset does not convert (left as written). */
static size_t email_word(struct kb_buf *out, const char *p)
{
    char charset[64];
    size_t n = strcspn(p + 2, "?*"), lang = n + strcspn(p + 2 + n, "?");
    const char *enc = p + 2 + lang;
    if (strncmp(p, "=?", 2) || !n || n >= sizeof charset || enc[0] != '?' || !enc[1] ||
        !strchr("BbQq", enc[1]) || enc[2] != '?')
        return 0;
    const char *text = enc + 3, *end = strstr(text, "?=");
    if (!end || memchr(text, ' ', (size_t)(end - text)))
        return 0;
    memcpy(charset, p + 2, n);
    charset[n] = '\0';
    struct kb_buf raw = KB_BUF_INIT;
    raw.max = 4096;
    (enc[1] == 'B' || enc[1] == 'b' ? email_unbase64 : email_unq)(&raw, text, (size_t)(end - text));
    char *utf8 = NULL;
    size_t len = 0;
    int rc = kb_decode_iconv(&utf8, &len, raw.data ? raw.data : "", raw.len, charset, 4096, NULL);
    if (rc == 0)
        kb_buf_append(out, utf8, len);
    free(utf8);
    kb_buf_free(&raw);
    return rc == 0 ? (size_t)(end + 2 - p) : 0;
}

/* Decodes the encoded-words of a header value in place (white space between two of them is
 * dropped, RFC 2047 section 6.2), truncating at a character boundary to fit `size`. */
static void email_decode_words(char *value, size_t size)
{
    if (!strstr(value, "=?"))
        return;
    struct kb_buf out = KB_BUF_INIT;
    size_t after_word = SIZE_MAX;   /* where the last encoded-word's text ended in out */
    for (const char *p = value; *p;) {
        size_t at = out.len, used = 0;
        if (p[0] == '=' && p[1] == '?' && (used = email_word(&out, p))) {
            size_t gap = after_word;
            while (gap < at && (out.data[gap] == ' ' || out.data[gap] == '\t'))
                gap++;
            if (after_word != SIZE_MAX && gap == at) {
                memmove(out.data + after_word, out.data + at, out.len - at);
                out.len -= at - after_word;
            }
            after_word = out.len;
            p += used;
            continue;
        }
        kb_buf_append(&out, p++, 1);
    }
    size_t n = out.len < size - 1 ? out.len : size - 1;
    while (n && n < out.len && ((unsigned char)out.data[n] & 0xC0) == 0x80)
        n--;
    if (out.data) {
        memcpy(value, out.data, n);
        value[n] = '\0';
    }
    kb_buf_free(&out);
}

/* ---- bodies ------------------------------------------------------------------------------ */

static int email_part(struct kb_docw *w, struct email_part p, int depth, struct kb_err *err);

static int email_multipart(struct kb_docw *w, struct email_part p, const char *type,
                           const char *boundary, int depth, struct kb_err *err)
{
    char delim[200];
    int n = snprintf(delim, sizeof delim, "--%s", boundary);
    int alternative = !strncasecmp(type, "multipart/alternative", 21), rc = 0;
    struct email_part parts[64];
    size_t n_parts = 0;
    const char *end = p.body + p.body_len, *at = p.body, *start = NULL;
    while (at && at < end) {
        const char *hit = memmem(at, (size_t)(end - at), delim, (size_t)n);
        if (hit && hit != p.body && hit[-1] != '\n') {
            at = hit + n;
            continue;
        }
        if (start && n_parts < 64)
            parts[n_parts++] = email_split(start, (size_t)((hit ? hit : end) - start));
        if (!hit || (hit + n + 1 < end && hit[n] == '-' && hit[n + 1] == '-'))
            break;
        const char *nl = memchr(hit, '\n', (size_t)(end - hit));
        start = at = nl ? nl + 1 : end;
    }
    /* In an alternative, the plain-text version if there is one, else the last. */
    size_t pick = n_parts ? n_parts - 1 : 0;
    for (size_t i = 0; alternative && i < n_parts; i++) {
        char ct[200];
        email_header(&parts[i], "Content-Type", ct, sizeof ct);
        if (!ct[0] || !strncasecmp(ct, "text/plain", 10)) {
            pick = i;
            break;
        }
    }
    for (size_t i = 0; i < n_parts && rc == 0; i++)
        if (!alternative || i == pick)
            rc = email_part(w, parts[i], depth + 1, err);
    return rc;
}

static int email_text(struct kb_docw *w, const char *raw, size_t len, const char *charset,
                      int html, struct kb_err *err)
{
    char *text = NULL;
    size_t n = 0;
    int rc = kb_decode_to_utf8(&text, &n, raw, len, charset[0] ? charset : NULL,
                               KB_DOC_MAX_TEXT, err);
    if (rc)
        return rc;
    kb_docw_break(w);
    if (html)
        rc = kb_html_emit(w, text, n, 1, KB_HTML_PAGE, err);
    else
        kb_docw_raw(w, text, n);
    kb_docw_break(w);
    free(text);
    return rc;
}

static int email_part(struct kb_docw *w, struct email_part p, int depth, struct kb_err *err)
{
    char type[200], cte[64], disp[200], param[160];
    if (depth > EMAIL_MAX_DEPTH)
        return 0;
    email_header(&p, "Content-Type", type, sizeof type);
    email_header(&p, "Content-Transfer-Encoding", cte, sizeof cte);
    email_header(&p, "Content-Disposition", disp, sizeof disp);
    if (!strncasecmp(type, "multipart/", 10)) {
        email_param(type, "boundary", param, sizeof param);
        return param[0] ? email_multipart(w, p, type, param, depth, err) : 0;
    }
    int html = !strncasecmp(type, "text/html", 9);
    if ((type[0] && strncasecmp(type, "text/plain", 10) && !html) ||
        !strncasecmp(disp, "attachment", 10))
        return 0;
    struct kb_buf body = KB_BUF_INIT;
    body.max = KB_DOC_MAX_TEXT;
    if (!strcasecmp(cte, "quoted-printable"))
        email_unqp(&body, p.body, p.body_len);
    else if (!strcasecmp(cte, "base64"))
        email_unbase64(&body, p.body, p.body_len);
    else
        kb_buf_append(&body, p.body, p.body_len);
    email_param(type, "charset", param, sizeof param);
    int rc = body.len ? email_text(w, body.data, body.len, param, html, err) : 0;
    kb_buf_free(&body);
    return rc;
}

int kb_email_parse(struct kb_doc *doc, const char *raw, size_t len, struct kb_err *err)
{
    static const char *const shown[] = { "From", "To", "Date", NULL };
    struct email_part top = email_split(raw, len);
    char value[512];
    struct kb_docw w;
    kb_docw_init(&w, doc);
    if (!email_header(&top, "From", value, sizeof value) && !email_header(&top, "Subject", value, sizeof value))
        return kb_err_set(err, KB_EFORMAT, "not an email (no From or Subject header)");
    if (email_header(&top, "Subject", value, sizeof value) && value[0] &&
        (email_decode_words(value, sizeof value), 1) &&
        kb_utf8_valid(value, strlen(value), &(size_t){ 0 })) {
        kb_docw_heading(&w, 1);
        kb_docw_text(&w, value, strlen(value));
        kb_docw_break(&w);
        doc->title = strdup(value);
    }
    for (size_t i = 0; shown[i]; i++) {
        if (email_header(&top, shown[i], value, sizeof value) && value[0] &&
            (email_decode_words(value, sizeof value), 1) &&
            kb_utf8_valid(value, strlen(value), &(size_t){ 0 })) {
            kb_docw_text(&w, shown[i], strlen(shown[i]));
            kb_docw_text(&w, ": ", 2);
            kb_docw_text(&w, value, strlen(value));
            kb_docw_newline(&w);
        }
    }
    int rc = email_part(&w, top, 0, err);
    doc->markdown = 1;
    if (rc == 0)
        rc = kb_docw_finish(&w, err);
    kb_docw_free(&w);
    return rc;
}
