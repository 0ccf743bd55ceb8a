/* test_llm_http.c — the pieces of a backend exchange that are pure functions: Retry-After
 * values (cases in tests/data/llm/retry_after.tsv), the retry wait and its bounds, and the
 * server error text kb quotes, with the API key masked however the server spelt it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "llm/llm_int.h"

#define HTTP_TEST_NOW ((time_t)784111777) /* Sun, 06 Nov 1994 08:49:37 GMT */

static FILE *open_data(const char *name)
{
    const char *dir = getenv("KB_TEST_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/llm/%s", dir ? dir : "tests/data", name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    return f;
}

static void http__retry_after_reads_seconds_and_every_http_date_form(void **state)
{
    (void)state;
    FILE *f = open_data("retry_after.tsv");
    char line[256];
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        line[strcspn(line, "\n")] = '\0';
        char *tab = strrchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        double want = strtod(tab + 1, NULL);
        double got = kb_llm_retry_after_parse(line, HTTP_TEST_NOW);
        if (got != want)
            fail_msg("Retry-After '%s': got %g, want %g", line, got, want);
        cases++;
    }
    fclose(f);
    assert_true(cases >= 10);
}

static void http__retry_after_value_as_libcurl_passes_it(void **state)
{
    (void)state;
    /* The header callback hands over everything after the colon, line ending included. */
    assert_true(kb_llm_retry_after_parse(" Sun, 06 Nov 1994 08:49:40 GMT\r\n", HTTP_TEST_NOW)
                == 3.0);
    assert_true(kb_llm_retry_after_parse(" 7\r\n", HTTP_TEST_NOW) == 7.0);
}

static void http__retry_wait_is_bounded_and_backs_off(void **state)
{
    (void)state;
    assert_true(kb_llm_retry_delay_s(2.0, 0) == 2.0);
    assert_true(kb_llm_retry_delay_s(0.0, 3) == 0.0);
    assert_true(kb_llm_retry_delay_s(86400.0, 0) == KB_LLM_MAX_RETRY_AFTER_S);
    assert_true(kb_llm_retry_delay_s(-1, 0) == 0.5);
    assert_true(kb_llm_retry_delay_s(-1, 1) == 1.0);
    assert_true(kb_llm_retry_delay_s(-1, 2) == 2.0);
    assert_true(kb_llm_retry_delay_s(-1, 10) == 8.0);
}

static void expect_masked(const char *body, size_t len, const char *key, const char *want)
{
    char *text = kb_llm_error_text(body, len, key);
    assert_non_null(text);
    assert_null(strstr(text, key));
    if (want)
        assert_string_equal(text, want);
    free(text);
}

static void http__error_text_masks_the_key_however_it_is_spelt(void **state)
{
    (void)state;
    static const char json[] = "{\"error\":{\"message\":\"Incorrect API key provided: sk-abc1\"}}";
    expect_masked(json, sizeof json - 1, "sk-abc1", "Incorrect API key provided: ***");
    /* Control characters are dropped from what is shown: a key spelt with them in between
     * must not come out joined (found by fuzz_llm_stream). */
    static const char split[] = "bad key sk-a\x01" "bc\x00" "1 and sk-abc1\n";
    expect_masked(split, sizeof split - 1, "sk-abc1", "bad key *** and ***");
    static const char tabbed[] = "key:\tsk-abc1\tis wrong";
    expect_masked(tabbed, sizeof tabbed - 1, "sk-abc1", "key: *** is wrong");
}

static void http__error_text_is_cut_at_a_character_after_masking(void **state)
{
    (void)state;
    /* 290 bytes of 'é' then the key: the cut at 300 bytes must neither show part of the key
     * nor split a character. */
    struct kb_buf body = KB_BUF_INIT;
    for (int i = 0; i < 145; i++)
        assert_int_equal(kb_buf_puts(&body, "\xC3\xA9"), 0);
    assert_int_equal(kb_buf_puts(&body, "sk-0123456789abcdef and more text after the key"), 0);
    char *text = kb_llm_error_text(body.data, body.len, "sk-0123456789abcdef");
    assert_non_null(text);
    assert_true(strlen(text) <= 300);
    assert_null(strstr(text, "sk-0"));
    assert_non_null(strstr(text, "\xC3\xA9***"));
    free(text);
    kb_buf_reset(&body);
    assert_int_equal(kb_buf_puts(&body, "x"), 0);
    for (int i = 0; i < 151; i++) /* byte 300 is the middle of the 150th 'é' */
        assert_int_equal(kb_buf_puts(&body, "\xC3\xA9"), 0);
    text = kb_llm_error_text(body.data, body.len, NULL);
    assert_int_equal(strlen(text), 299);
    free(text);
    kb_buf_free(&body);
}

/* ---- the key as servers echo it: spellings made here from the key, never written out ---- */

static const char *const redact_keys[] = {
    "sk-abc1",                                     /* short: base64 runs of 7 to 9 characters */
    "sk-proj-Zx9_Q~r.T0aB3cD4eF5gH6",              /* unreserved punctuation only */
    "k+y/=%&?#\"\\ :@[]{}!$'()*,;<>^`|",           /* every character an encoder escapes */
    "sk-\xD0\xBA\xD0\xBB\xD1\x8E\xD1\x87-\xF0\x9F\x98\x80-end", /* UTF-8: 2- and 4-byte characters */
};

enum {
    URL_ALL = 1,    /* every byte as %XX, not only those outside RFC 3986's unreserved set */
    URL_LOWER = 2,  /* lower-case hex digits */
    URL_MIXED = 4   /* the case of the hex digits alternating */
};

static void url_encode(struct kb_buf *out, const char *key, int how)
{
    static const char unreserved[] = "-._~";
    for (size_t i = 0; key[i]; i++) {
        unsigned char c = (unsigned char)key[i];
        int plain = (c < 0x80 && ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
                                  || strchr(unreserved, c))) && !(how & URL_ALL);
        int lower = (how & URL_LOWER) || ((how & URL_MIXED) && i % 2);
        assert_int_equal(plain ? kb_buf_append(out, &c, 1)
                               : kb_buf_printf(out, lower ? "%%%02x" : "%%%02X", c), 0);
    }
}

enum {
    JSON_SLASH = 1,  /* '/' as \/ (PHP's json_encode) */
    JSON_ALL_U = 2,  /* every character as \uXXXX, past U+FFFF as a surrogate pair */
    JSON_LOWER = 4   /* lower-case hex digits in \u escapes */
};

/* The key's next character from UTF-8 (the keys above are valid UTF-8). */
static unsigned utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    unsigned n = s[0] < 0x80 ? 1 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
    unsigned cp = n == 1 ? s[0] : s[0] & (0x3F >> (n - 1));
    for (unsigned i = 1; i < n; i++)
        cp = cp << 6 | (s[i] & 0x3F);
    *p = s + n;
    return cp;
}

static void json_escape(struct kb_buf *out, const char *key, int how)
{
    const char *u = how & JSON_LOWER ? "\\u%04x" : "\\u%04X";
    for (const unsigned char *p = (const unsigned char *)key; *p;) {
        const unsigned char *at = p;
        unsigned cp = utf8_next(&p);
        int rc;
        if (how & JSON_ALL_U)
            rc = cp < 0x10000 ? kb_buf_printf(out, u, cp)
                              : kb_buf_printf(out, u, 0xD800 + ((cp - 0x10000) >> 10)) ||
                                kb_buf_printf(out, u, 0xDC00 + ((cp - 0x10000) & 0x3FF));
        else if (cp == '"' || cp == '\\' || (cp == '/' && (how & JSON_SLASH)))
            rc = kb_buf_printf(out, "\\%c", (char)cp);
        else
            rc = kb_buf_append(out, at, (size_t)(p - at));
        assert_int_equal(rc, 0);
    }
}

/* RFC 4648 base64 of data[0..len), the URL-safe alphabet when url_safe, '=' padding when pad. */
static void base64(struct kb_buf *out, const char *data, size_t len, int url_safe, int pad)
{
    const char *abc = url_safe
        ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *d = (const unsigned char *)data;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < len ? (unsigned)d[i + 1] << 8 : 0) |
                     (i + 2 < len ? d[i + 2] : 0);
        size_t n = len - i >= 3 ? 4 : len - i + 1;
        for (size_t j = 0; j < 4; j++) {
            char c = j < n ? abc[v >> (18 - 6 * j) & 0x3F] : '=';
            if (j < n || pad)
                assert_int_equal(kb_buf_append(out, &c, 1), 0);
        }
    }
}

/* "bad credentials <spelt> were sent" as a server's first line comes back with *** for it. */
static void expect_spelling_masked(const char *key, const char *spelt, const char *how)
{
    struct kb_buf body = KB_BUF_INIT;
    assert_int_equal(kb_buf_printf(&body, "bad credentials %s were sent", spelt), 0);
    char *text = kb_llm_error_text(body.data, body.len, key);
    assert_non_null(text);
    if (strcmp(text, "bad credentials *** were sent"))
        fail_msg("%s of key '%s': got '%s'", how, key, text);
    free(text);
    kb_buf_free(&body);
}

static void http__error_text_masks_the_key_percent_encoded(void **state)
{
    (void)state;
    static const int hows[] = { 0, URL_LOWER, URL_ALL, URL_ALL | URL_LOWER, URL_ALL | URL_MIXED,
                                URL_MIXED };
    for (size_t k = 0; k < sizeof redact_keys / sizeof *redact_keys; k++)
        for (size_t h = 0; h < sizeof hows / sizeof *hows; h++) {
            struct kb_buf spelt = KB_BUF_INIT;
            url_encode(&spelt, redact_keys[k], hows[h]);
            char how[32];
            snprintf(how, sizeof how, "percent-encoding %d", hows[h]);
            expect_spelling_masked(redact_keys[k], spelt.data, how);
            kb_buf_free(&spelt);
        }
}

static void http__error_text_masks_the_key_json_escaped(void **state)
{
    (void)state;
    static const int hows[] = { 0, JSON_SLASH, JSON_ALL_U, JSON_ALL_U | JSON_LOWER };
    for (size_t k = 0; k < sizeof redact_keys / sizeof *redact_keys; k++)
        for (size_t h = 0; h < sizeof hows / sizeof *hows; h++) {
            struct kb_buf spelt = KB_BUF_INIT;
            json_escape(&spelt, redact_keys[k], hows[h]);
            char how[32];
            snprintf(how, sizeof how, "JSON escaping %d", hows[h]);
            expect_spelling_masked(redact_keys[k], spelt.data, how);
            /* The same inside a JSON error whose message quotes the request as JSON: cJSON
             * undoes one level of escaping, the masking the other. */
            struct kb_buf inner = KB_BUF_INIT;
            assert_int_equal(kb_buf_printf(&inner, "invalid request {\"api_key\":\"%s\"}",
                                           spelt.data), 0);
            cJSON *doc = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(doc, "error");
            cJSON_AddStringToObject(err, "message", inner.data);
            char *reply = cJSON_PrintUnformatted(doc);
            char *text = kb_llm_error_text(reply, strlen(reply), redact_keys[k]);
            if (!text || strcmp(text, "invalid request {\"api_key\":\"***\"}"))
                fail_msg("%s inside a JSON message, key '%s': got '%s'", how, redact_keys[k],
                         text ? text : "(null)");
            free(text);
            cJSON_free(reply);
            cJSON_Delete(doc);
            kb_buf_free(&inner);
            kb_buf_free(&spelt);
        }
}

static void http__error_text_masks_the_key_in_base64_at_every_alignment(void **state)
{
    (void)state;
    /* Before the key: 0, 1, 2, 4 and 5 bytes (each of the three alignments in a 3-byte group),
     * as in HTTP Basic credentials "user:key"; after it: nothing or more data. */
    static const char *const before[] = { "", "u", "u:", "api:", "user:" };
    static const char *const after[] = { "", "\n", ":x" };
    for (size_t k = 0; k < sizeof redact_keys / sizeof *redact_keys; k++)
        for (size_t b = 0; b < 5; b++)
            for (size_t a = 0; a < 3; a++)
                for (int variant = 0; variant < 4; variant++) {
                    struct kb_buf data = KB_BUF_INIT, spelt = KB_BUF_INIT;
                    assert_int_equal(kb_buf_printf(&data, "%s%s%s", before[b], redact_keys[k],
                                                   after[a]), 0);
                    assert_int_equal(kb_buf_puts(&spelt, "Basic "), 0);
                    base64(&spelt, data.data, data.len, variant & 1, variant & 2);
                    char *text = kb_llm_error_text(spelt.data, spelt.len, redact_keys[k]);
                    if (!text || strcmp(text, "Basic ***"))
                        fail_msg("base64 (variant %d) of '%s%s' + '%s': got '%s' from '%s'",
                                 variant, before[b], redact_keys[k], after[a],
                                 text ? text : "(null)", spelt.data);
                    free(text);
                    kb_buf_free(&data);
                    kb_buf_free(&spelt);
                }
}

static void http__error_text_leaves_other_escapes_and_base64_alone(void **state)
{
    (void)state;
    static const char body[] =
        "see https://example.com/a%2Fb?q=%41 and \\u0041\\/x, token dXNlcjpwYXNzd29yZA==";
    expect_masked(body, sizeof body - 1, "sk-abc1", body);
    /* A key spelt one way next to another spelling of it: both go. */
    static const char both[] = "sk-abc1 sk%2Dabc1 c2stYWJjMQ==";
    expect_masked(both, sizeof both - 1, "sk-abc1", "*** *** ***");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http__retry_after_reads_seconds_and_every_http_date_form),
        cmocka_unit_test(http__retry_after_value_as_libcurl_passes_it),
        cmocka_unit_test(http__retry_wait_is_bounded_and_backs_off),
        cmocka_unit_test(http__error_text_masks_the_key_however_it_is_spelt),
        cmocka_unit_test(http__error_text_is_cut_at_a_character_after_masking),
        cmocka_unit_test(http__error_text_masks_the_key_percent_encoded),
        cmocka_unit_test(http__error_text_masks_the_key_json_escaped),
        cmocka_unit_test(http__error_text_masks_the_key_in_base64_at_every_alignment),
        cmocka_unit_test(http__error_text_leaves_other_escapes_and_base64_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
