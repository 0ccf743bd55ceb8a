/* decode.c — text decoding for ingestion: BOM sniffing, UTF-8 check, iconv for the rest. */
#include "ingest/decode.h"

#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/utf8.h"

#define DECODE_SCAN_BYTES ((size_t)64 << 10)

const char *kb_decode_bom(const char *raw, size_t len, size_t *bom_len)
{
    static const struct { const char *bytes; size_t len; const char *charset; } boms[] = {
        /* UTF-32LE before UTF-16LE: FF FE 00 00 starts with the UTF-16LE BOM. */
        { "\x00\x00\xFE\xFF", 4, "UTF-32BE" }, { "\xFF\xFE\x00\x00", 4, "UTF-32LE" },
        { "\xEF\xBB\xBF", 3, "UTF-8" }, { "\xFE\xFF", 2, "UTF-16BE" }, { "\xFF\xFE", 2, "UTF-16LE" },
    };
    for (size_t i = 0; i < sizeof boms / sizeof *boms; i++)
        if (len >= boms[i].len && !memcmp(raw, boms[i].bytes, boms[i].len)) {
            *bom_len = boms[i].len;
            return boms[i].charset;
        }
    *bom_len = 0;
    return NULL;
}

/* UTF-16 without a BOM, as some Windows tools write it: mostly ASCII, so nearly every other
 * byte is zero. "UTF-16LE", "UTF-16BE" or NULL. */
static const char *decode_guess_utf16(const char *raw, size_t len)
{
    size_t scan = (len < 4096 ? len : 4096) & ~(size_t)1, le = 0, be = 0;
    if (scan < 4 || len % 2)
        return NULL;
    for (size_t i = 0; i < scan; i += 2) {
        le += raw[i] != 0 && raw[i + 1] == 0;
        be += raw[i] == 0 && raw[i + 1] != 0;
    }
    return le * 10 >= scan / 2 * 9 ? "UTF-16LE" : be * 10 >= scan / 2 * 9 ? "UTF-16BE" : NULL;
}

const char *kb_decode_binary_reason(const char *raw, size_t len, char *why, size_t why_size)
{
    size_t bom_len;
    const char *bom = kb_decode_bom(raw, len, &bom_len);
    if ((bom && strcmp(bom, "UTF-8") != 0) || (!bom && decode_guess_utf16(raw, len)))
        return NULL;   /* UTF-16/32 text is full of NUL bytes */
    const char *nul = memchr(raw, '\0', len);
    if (nul) {
        snprintf(why, why_size, "binary file (NUL byte at byte %zu)", (size_t)(nul - raw));
        return why;
    }
    size_t scan = len < DECODE_SCAN_BYTES ? len : DECODE_SCAN_BYTES, n_control = 0;
    for (size_t i = 0; i < scan; i++) {
        unsigned char c = (unsigned char)raw[i];
        n_control += (c < 0x20 && !strchr("\t\n\r\f\v\x1b", c)) || c == 0x7F;
    }
    if (scan >= 16 && n_control * 10 > scan) {
        snprintf(why, why_size, "binary file (%zu%% control bytes)", n_control * 100 / scan);
        return why;
    }
    return NULL;
}

static int decode_fail_at(const char *raw, size_t bad, const char *charset, struct kb_err *err)
{
    size_t line = 1;
    for (size_t i = 0; i < bad; i++)
        line += raw[i] == '\n';
    return kb_err_set(err, KB_EFORMAT, "not valid %s at line %zu, byte %zu", charset, line, bad);
}

/* Runs iconv over the whole input into a buffer that grows up to max_out. */
static int decode_run(iconv_t cd, char **out, size_t *out_len, const char *raw, size_t len,
                      const char *charset, size_t max_out, struct kb_err *err)
{
    /* At most max_out bytes of output (and its NUL) are ever allocated. */
    size_t alloc = len > max_out / 2 || len * 2 + 16 > max_out ? max_out + 1 : len * 2 + 16;
    size_t used = 0;
    char *buf = malloc(alloc), *in = (char *)raw;
    size_t in_left = len;
    if (!buf)
        return kb_err_set(err, KB_ENOMEM, "out of memory decoding %zu bytes", len);
    while (in_left) {
        char *dst = buf + used;
        size_t dst_left = alloc - used - 1;
        size_t r = iconv(cd, &in, &in_left, &dst, &dst_left);
        used = (size_t)(dst - buf);
        if (r != (size_t)-1)
            break;
        if (errno != E2BIG) {
            free(buf);
            return decode_fail_at(raw, (size_t)(in - raw), charset, err);
        }
        size_t more = alloc > max_out / 2 ? max_out + 1 : alloc * 2;
        char *grown = alloc > max_out ? NULL : realloc(buf, more);
        if (!grown) {
            free(buf);
            return kb_err_set(err, KB_ENOMEM, "decoded text larger than %zu bytes", max_out);
        }
        buf = grown;
        alloc = more;
    }
    buf[used] = '\0';
    *out = buf;
    *out_len = used;
    return 0;
}

int kb_decode_iconv(char **out, size_t *out_len, const char *raw, size_t len,
                    const char *charset, size_t max_out, struct kb_err *err)
{
    iconv_t cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1)
        return kb_err_set(err, KB_EINVALID, "unknown character set '%s'", charset);
    int rc = decode_run(cd, out, out_len, raw, len, charset, max_out, err);
    iconv_close(cd);
    if (rc == 0 && !kb_utf8_valid(*out, *out_len, &(size_t){ 0 })) {
        free(*out);
        *out = NULL;
        rc = kb_err_set(err, KB_EFORMAT, "%s text decodes to invalid UTF-8", charset);
    }
    return rc;
}

static int decode_copy(char **out, size_t *out_len, const char *raw, size_t len,
                       size_t max_out, struct kb_err *err)
{
    if (len > max_out)
        return kb_err_set(err, KB_ENOMEM, "text larger than %zu bytes", max_out);
    char *copy = malloc(len + 1);
    if (!copy)
        return kb_err_set(err, KB_ENOMEM, "out of memory copying %zu bytes", len);
    memcpy(copy, raw, len);
    copy[len] = '\0';
    *out = copy;
    *out_len = len;
    return 0;
}

int kb_decode_to_utf8(char **out, size_t *out_len, const char *raw, size_t len,
                      const char *charset, size_t max_out, struct kb_err *err)
{
    char why[128];
    size_t bom_len, bad = 0;
    *out = NULL;
    *out_len = 0;
    if (kb_decode_binary_reason(raw, len, why, sizeof why))
        return kb_err_set(err, KB_EFORMAT, "%s", why);
    const char *bom = kb_decode_bom(raw, len, &bom_len);
    if (!bom && (bom = decode_guess_utf16(raw, len)) != NULL)
        bom_len = 0;
    if (bom && strcmp(bom, "UTF-8") != 0)
        return kb_decode_iconv(out, out_len, raw + bom_len, len - bom_len, bom, max_out, err);
    raw += bom_len;
    len -= bom_len;
    if (kb_utf8_valid(raw, len, &bad))
        return decode_copy(out, out_len, raw, len, max_out, err);
    if (bom)
        return decode_fail_at(raw, bad, "UTF-8", err);
    if (charset && strcasecmp(charset, "utf-8") && strcasecmp(charset, "utf8") &&
        kb_decode_iconv(out, out_len, raw, len, charset, max_out, err) == 0)
        return 0;
    /* Legacy single-byte text: cp1252 is a superset of Latin-1's printable range; its five
     * unassigned bytes make text that is neither UTF-8 nor cp1252 fail here. */
    if (kb_decode_iconv(out, out_len, raw, len, "CP1252", max_out, err) == 0)
        return 0;
    decode_fail_at(raw, bad, "UTF-8", err);
    if (!err)
        return KB_EFORMAT;
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof err->msg - n, " (nor cp1252)");
    return KB_EFORMAT;
}
