/* test_util.c — buffers, UTF-8 validation and escaping, hashing, paths, regular-file reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "kb/kb.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/half.h"
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

static char *escaped(const char *text, size_t len, enum kb_escape_mode mode)
{
    struct kb_buf b = KB_BUF_INIT;
    assert_int_equal(kb_utf8_escape(&b, text, len, mode), 0);
    assert_int_equal(kb_buf_puts(&b, ""), 0);
    return kb_buf_detach(&b);
}

/* A FIFO without a writer would block open() and read() forever: kb_file_open_regular opens
 * without waiting and refuses it, a folder and a device as "not a regular file" (errno EINVAL);
 * kb_sha256_file does the same; a regular file reads whole, within the buffer's cap. */
static void file__reads_regular_files_and_refuses_the_rest_at_once(void **state)
{
    (void)state;
    char dir[] = "/tmp/kb-util-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    struct kb_err err = { 0 };
    struct stat st;
    int fd;
    alarm(20); /* a blocking open or read fails the test rather than hanging it */
    snprintf(path, sizeof path, "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    const char *refused[] = { path, dir, "/dev/null" };
    char digest[KB_SHA256_HEX_SIZE];
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        assert_int_equal(kb_file_open_regular(refused[i], &fd, &st, &err), KB_EFORMAT);
        assert_int_equal(fd, -1);
        assert_string_equal(err.msg, "not a regular file");
        struct kb_buf b = KB_BUF_INIT;
        assert_int_equal(kb_file_read_regular(&b, refused[i], &err), KB_EFORMAT);
        kb_buf_free(&b);
        errno = 0;
        assert_int_equal(kb_sha256_file(refused[i], 0, 0, digest), -1);
        assert_int_equal(errno, EINVAL);
    }
    unlink(path);
    assert_int_equal(kb_file_open_regular(path, &fd, &st, &err), KB_ENOTFOUND);
    assert_int_equal(kb_sha256_file(path, 0, 0, digest), -1);
    assert_int_equal(errno, ENOENT);
    FILE *f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    struct kb_buf b = KB_BUF_INIT;
    assert_int_equal(kb_file_read_regular(&b, path, &err), 0);
    assert_string_equal(b.data, "abc");
    b.max = 5; /* 3 held, 3 more would pass the cap: refused unread */
    assert_int_equal(kb_file_read_regular(&b, path, &err), KB_ENOMEM);
    assert_string_equal(err.msg, "larger than the 5-byte limit (3 bytes)");
    assert_string_equal(b.data, "abc");
    kb_buf_free(&b);
    assert_int_equal(kb_sha256_file(path, 0, 0, digest), 0);
    assert_string_equal(digest,
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(kb_sha256_file(path, 1, 1, digest), 0); /* "b" */
    assert_string_equal(digest,
                        "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d");
    alarm(0);
    unlink(path);
    rmdir(dir);
}

static void utf8__escape_leaves_no_control_character_for_a_terminal(void **state)
{
    (void)state;
#define IN(s) s, sizeof s - 1
    static const struct { const char *in; size_t len; const char *line, *text; } cases[] = {
        { IN("plain caf\xC3\xA9 \xE6\x97\xA5"), "plain caf\xC3\xA9 \xE6\x97\xA5",
          "plain caf\xC3\xA9 \xE6\x97\xA5" },
        { IN("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m", "\\x1b[31mred\\x1b[0m" },
        { IN("a\r\nb\tc"), "a\\r\\nb\\tc", "a\\r\nb\tc" },
        { IN("nul\0bell\a del\x7f"), "nul\\x00bell\\x07 del\\x7f", "nul\\x00bell\\x07 del\\x7f" },
        /* C1 controls as UTF-8 (U+009B is CSI on some terminals), and raw bytes not UTF-8 */
        { IN("\xC2\x9B" "2J \xC2\x85 \xC2\xA0"), "\\u009b2J \\u0085 \xC2\xA0",
          "\\u009b2J \\u0085 \xC2\xA0" },
        { IN("\x9b" "2J \xff \xC3"), "\\x9b2J \\xff \\xc3", "\\x9b2J \\xff \\xc3" },
        { IN(""), "", "" },
    };
#undef IN
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *line = escaped(cases[i].in, cases[i].len, KB_ESCAPE_LINE);
        char *text = escaped(cases[i].in, cases[i].len, KB_ESCAPE_TEXT);
        assert_string_equal(line, cases[i].line);
        assert_string_equal(text, cases[i].text);
        free(line);
        free(text);
    }
    /* every byte value alone: the result holds no C0, DEL or lone high byte */
    for (unsigned c = 0; c < 256; c++) {
        char in = (char)c;
        char *line = escaped(&in, 1, KB_ESCAPE_LINE);
        for (const unsigned char *p = (const unsigned char *)line; *p; p++)
            assert_true(*p >= 0x20 && *p < 0x7F);
        free(line);
    }
}

static void half__rounding_to_binary16_and_bfloat16_is_to_nearest_even(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) { /* every value comes back as itself */
        float f = kb_f16_to_f32((uint16_t)h);
        if (f == f)
            assert_int_equal(kb_f32_to_f16(f), h);
        else
            assert_true((kb_f32_to_f16(f) & 0x7c00) == 0x7c00 && (kb_f32_to_f16(f) & 0x3ff));
    }
    assert_int_equal(kb_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);          /* tie: down to even */
    assert_int_equal(kb_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);      /* tie: up to even */
    assert_int_equal(kb_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01); /* past the tie */
    assert_int_equal(kb_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(kb_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(kb_f32_to_f16(65520.0f), 0x7c00);                 /* rounds to infinity */
    assert_int_equal(kb_f32_to_f16(-0x1p-25f), 0x8000);               /* tie to even: -0 */
    assert_int_equal(kb_f32_to_f16(0x1p-25f * 3), 0x0002);            /* subnormal tie: up */
    assert_int_equal(kb_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(kb_f32_to_bf16(kb_bf16_to_f32(0x3f80) + 0x1p-8f), 0x3f80); /* tie: even */
    assert_int_equal(kb_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    assert_int_equal(kb_f32_to_bf16(0x1p-130f), 0x0000);               /* subnormal: flushed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(half__rounding_to_binary16_and_bfloat16_is_to_nearest_even),
        cmocka_unit_test(utf8__escape_leaves_no_control_character_for_a_terminal),
        cmocka_unit_test(buf__refuses_to_grow_past_its_cap),
        cmocka_unit_test(utf8__rejects_overlongs_surrogates_and_truncation),
        cmocka_unit_test(sha256__matches_published_vectors),
        cmocka_unit_test(path__absolute_folds_dots_and_slashes),
        cmocka_unit_test(file__reads_regular_files_and_refuses_the_rest_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
