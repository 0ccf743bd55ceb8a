/* test_util.c — buffers, UTF-8 validation and escaping, hashing, paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kb/kb.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/path.h"
#include "util/utf8.h"

static void buf__refuses_to_grow_past_its_cap(void **state)
{
    (void)state;
    struct kb_buf b = KB_BUF_INIT;
    b.max = 10;
    assert_int_equal(kb_buf_puts(&b, "hello"), 0);
    assert_int_equal(kb_buf_puts(&b, "world"), 0);
    assert_int_equal(kb_buf_puts(&b, "!"), KB_ENOMEM);
    assert_string_equal(b.data, "helloworld");
    assert_int_equal(kb_buf_printf(&b, "%d", 1), KB_ENOMEM);
    kb_buf_free(&b);
}

static void utf8__rejects_overlongs_surrogates_and_truncation(void **state)
{
    (void)state;
    size_t bad = 99;
    assert_true(kb_utf8_valid("h\xC3\xA9llo \xE6\x97\xA5\xF0\x9F\x98\x80", 14, &bad));
    assert_false(kb_utf8_valid("ab\xC0\xAF", 4, &bad));   /* overlong '/' */
    assert_int_equal(bad, 2);
    assert_false(kb_utf8_valid("\xED\xA0\x80", 3, &bad)); /* UTF-16 surrogate */
    assert_int_equal(bad, 0);
    assert_false(kb_utf8_valid("abc\xE6\x97", 5, &bad));  /* truncated */
    assert_int_equal(bad, 3);
    assert_false(kb_utf8_valid("\xF4\x90\x80\x80", 4, &bad)); /* past U+10FFFF */
}

static void sha256__matches_published_vectors(void **state)
{
    (void)state;
    char hex[KB_SHA256_HEX_SIZE];
    kb_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const void *parts[] = { "a", "bc" };
    size_t lens[] = { 1, 2 };
    kb_sha256_hex_parts(parts, lens, 2, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void path__absolute_folds_dots_and_slashes(void **state)
{
    (void)state;
    char *p = kb_path_absolute("/a//b/./c/../d/");
    assert_string_equal(p, "/a/b/d");
    free(p);
    p = kb_path_absolute("/../..");
    assert_string_equal(p, "/");
    free(p);
    assert_true(kb_path_is_under("/a/b", "/a"));
    assert_true(kb_path_is_under("/a", "/a"));
    assert_false(kb_path_is_under("/ab", "/a"));
    p = kb_path_join("/", "x");
    assert_string_equal(p, "/x");
    free(p);
}

static void escape__controls_become_visible_and_utf8_stays_whole(void **state)
{
    (void)state;
    char out[64];
    /* ESC [ 3 1 m, CR LF, tab, DEL, NUL: what forges a log line or recolours a terminal */
    const char in[] = "a\x1b[31mb\r\nc\td\x7f\0e";
    assert_int_equal(kb_escape_ctl(out, sizeof out, in, sizeof in - 1), 27);
    assert_string_equal(out, "a\\x1b[31mb\\r\\nc\\td\\x7f\\x00e");
    /* valid UTF-8 is kept; a C1 control (U+009B, CSI) and stray bytes are escaped */
    kb_escape_ctl(out, sizeof out, "h\xC3\xA9 \xE6\x97\xA5\xF0\x9F\x98\x80 \\", 13);
    assert_string_equal(out, "h\xC3\xA9 \xE6\x97\xA5\xF0\x9F\x98\x80 \\");
    kb_escape_ctl(out, sizeof out, "\xC2\x9B" "1m\x9b\xff\xC3", 7);
    assert_string_equal(out, "\\u009b1m\\x9b\\xff\\xc3");
    /* too small: stops before the first escape that does not fit, always NUL-terminated */
    assert_int_equal(kb_escape_ctl(out, 4, "ab\ncd", 5), 6);
    assert_string_equal(out, "ab");
    assert_int_equal(kb_escape_ctl(out, 5, "ab\ncd", 5), 6);
    assert_string_equal(out, "ab\\n");
    assert_int_equal(kb_escape_ctl(NULL, 0, "\x01\x02", 2), 8);
    assert_true(kb_escape_ctl(out, sizeof out, "\x01\x02\x03", 3) <= 3 * 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf__refuses_to_grow_past_its_cap),
        cmocka_unit_test(utf8__rejects_overlongs_surrogates_and_truncation),
        cmocka_unit_test(sha256__matches_published_vectors),
        cmocka_unit_test(path__absolute_folds_dots_and_slashes),
        cmocka_unit_test(escape__controls_become_visible_and_utf8_stays_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
