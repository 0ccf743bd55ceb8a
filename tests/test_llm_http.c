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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http__retry_after_reads_seconds_and_every_http_date_form),
        cmocka_unit_test(http__retry_after_value_as_libcurl_passes_it),
        cmocka_unit_test(http__retry_wait_is_bounded_and_backs_off),
        cmocka_unit_test(http__error_text_masks_the_key_however_it_is_spelt),
        cmocka_unit_test(http__error_text_is_cut_at_a_character_after_masking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
