/* test_llm_stream.c — the streaming parsers give the same answer however the recorded replies
 * in tests/data/llm are split: at every byte offset and one byte at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm_int.h"
#include "util/utf8.h"

struct collected {
    struct kb_buf text;
    int bad_utf8;       /* a piece was not complete UTF-8 */
    size_t pieces;
};

static int on_piece(const char *text, size_t len, void *payload)
{
    struct collected *c = payload;
    size_t bad;
    if (len == 0 || !kb_utf8_valid(text, len, &bad))
        c->bad_utf8 = 1;
    c->pieces++;
    assert_int_equal(kb_buf_append(&c->text, text, len), 0);
    return 0;
}

static char *read_data(const char *name, size_t *len)
{
    const char *dir = getenv("KB_TEST_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/llm/%s", dir ? dir : "tests/data", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct kb_buf buf = KB_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(kb_buf_append(&buf, chunk, n), 0);
    fclose(f);
    *len = buf.len;
    return kb_buf_detach(&buf);
}

/* Decodes `data` fed in pieces cut at `cuts` (ascending offsets); returns the finish status. */
static int decode(enum kb_llm_proto proto, const char *data, size_t len, const size_t *cuts,
                  size_t n_cuts, struct collected *out, struct kb_llm_usage *usage)
{
    struct kb_llm_decoder dec;
    struct kb_err err = { 0, "" };
    kb_llm_decoder_init(&dec, proto, on_piece, out);
    size_t at = 0;
    int rc = 0;
    for (size_t i = 0; i <= n_cuts && !rc; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        rc = kb_llm_decoder_feed(&dec, data + at, end - at, &err);
        at = end;
    }
    if (!rc)
        rc = kb_llm_decoder_finish(&dec, &err);
    if (usage)
        *usage = dec.usage;
    kb_llm_decoder_free(&dec);
    return rc;
}

static void check_every_split(const char *file, enum kb_llm_proto proto)
{
    size_t len, alen;
    char *data = read_data(file, &len);
    char *answer = read_data("answer.txt", &alen);
    struct collected whole = { KB_BUF_INIT, 0, 0 };
    assert_int_equal(decode(proto, data, len, NULL, 0, &whole, NULL), 0);
    assert_int_equal(whole.text.len, alen);
    assert_memory_equal(whole.text.data, answer, alen);
    for (size_t cut = 1; cut < len; cut++) {
        struct collected two = { KB_BUF_INIT, 0, 0 };
        assert_int_equal(decode(proto, data, len, &cut, 1, &two, NULL), 0);
        assert_int_equal(two.text.len, alen);
        assert_memory_equal(two.text.data, answer, alen);
        assert_false(two.bad_utf8);
        kb_buf_free(&two.text);
    }
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    struct collected bytes = { KB_BUF_INIT, 0, 0 };
    assert_int_equal(decode(proto, data, len, cuts, len - 1, &bytes, NULL), 0);
    assert_memory_equal(bytes.text.data, answer, alen);
    assert_false(bytes.bad_utf8);
    assert_int_equal(bytes.pieces, whole.pieces);
    free(cuts);
    kb_buf_free(&bytes.text);
    kb_buf_free(&whole.text);
    free(data);
    free(answer);
}

static void stream__openai_sse_split_at_every_byte_gives_the_same_answer(void **state)
{
    (void)state;
    check_every_split("openai.sse", KB_LLM_PROTO_OPENAI);
    check_every_split("openai_crlf.sse", KB_LLM_PROTO_OPENAI);
}

static void stream__ollama_ndjson_split_at_every_byte_gives_the_same_answer(void **state)
{
    (void)state;
    check_every_split("ollama.ndjson", KB_LLM_PROTO_OLLAMA);
}

static void stream__anthropic_sse_split_at_every_byte_gives_the_same_answer(void **state)
{
    (void)state;
    check_every_split("anthropic.sse", KB_LLM_PROTO_ANTHROPIC);
}

static void stream__reports_the_usage_each_backend_sends(void **state)
{
    (void)state;
    static const struct { const char *file; enum kb_llm_proto proto; uint64_t in, out; } cases[] = {
        { "openai.sse", KB_LLM_PROTO_OPENAI, 712, 62 },
        { "ollama.ndjson", KB_LLM_PROTO_OLLAMA, 698, 62 },
        { "anthropic.sse", KB_LLM_PROTO_ANTHROPIC, 731, 65 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len;
        char *data = read_data(cases[i].file, &len);
        struct collected c = { KB_BUF_INIT, 0, 0 };
        struct kb_llm_usage usage;
        assert_int_equal(decode(cases[i].proto, data, len, NULL, 0, &c, &usage), 0);
        assert_true(usage.reported);
        assert_int_equal(usage.prompt_tokens, cases[i].in);
        assert_int_equal(usage.completion_tokens, cases[i].out);
        kb_buf_free(&c.text);
        free(data);
    }
}

static void stream__an_error_event_fails_with_the_server_message(void **state)
{
    (void)state;
    size_t len;
    char *data = read_data("anthropic_error.sse", &len);
    struct kb_llm_decoder dec;
    struct kb_err err = { 0, "" };
    struct collected c = { KB_BUF_INIT, 0, 0 };
    kb_llm_decoder_init(&dec, KB_LLM_PROTO_ANTHROPIC, on_piece, &c);
    assert_int_equal(kb_llm_decoder_feed(&dec, data, len, &err), KB_EUNAVAILABLE);
    assert_non_null(strstr(err.msg, "Overloaded"));
    assert_string_equal(c.text.data, "Logs are");
    kb_llm_decoder_free(&dec);
    kb_buf_free(&c.text);
    free(data);
}

/* A reader that stops the answer after its second piece. */
static int stop_after_two(const char *text, size_t len, void *payload)
{
    struct collected *c = payload;
    assert_int_equal(kb_buf_append(&c->text, text, len), 0);
    return ++c->pieces >= 2;
}

static void stream__a_callback_returning_non_zero_stops_the_answer(void **state)
{
    (void)state;
    size_t len;
    char *data = read_data("openai.sse", &len);
    struct kb_llm_decoder dec;
    struct kb_err err = { 0, "" };
    struct collected c = { KB_BUF_INIT, 0, 0 };
    kb_llm_decoder_init(&dec, KB_LLM_PROTO_OPENAI, stop_after_two, &c);
    int rc = 0;
    size_t at;
    for (at = 0; at < len && rc == 0; at++) /* a byte at a time, as slow networks deliver */
        rc = kb_llm_decoder_feed(&dec, data + at, 1, &err);
    assert_int_equal(rc, KB_ECANCELED);
    assert_int_equal(c.pieces, 2);            /* nothing after the reader said stop */
    assert_true(at < len);                    /* and the rest of the stream was not read */
    assert_int_equal(dec.n_emitted, c.text.len);
    kb_llm_decoder_free(&dec);
    kb_buf_free(&c.text);
    free(data);
}

static void stream__a_reply_cut_short_is_an_error(void **state)
{
    (void)state;
    size_t len;
    char *data = read_data("openai.sse", &len);
    struct collected c = { KB_BUF_INIT, 0, 0 };
    assert_int_equal(decode(KB_LLM_PROTO_OPENAI, data, len / 2, NULL, 0, &c, NULL),
                     KB_EUNAVAILABLE);
    kb_buf_free(&c.text);
    free(data);
}

static void stream__non_json_record_is_a_format_error(void **state)
{
    (void)state;
    static const char bad[] = "data: {\"choices\": [\n\n";
    struct collected c = { KB_BUF_INIT, 0, 0 };
    assert_int_equal(decode(KB_LLM_PROTO_OPENAI, bad, sizeof bad - 1, NULL, 0, &c, NULL),
                     KB_EFORMAT);
    kb_buf_free(&c.text);
}

static void stream__utf8_split_across_deltas_is_held_back_until_complete(void **state)
{
    (void)state;
    /* A server that cut "é" (C3 A9) and "🙂" (F0 9F 99 82) between two records. */
    static const char lines[] =
        "{\"message\":{\"content\":\"caf\xC3\"},\"done\":false}\n"
        "{\"message\":{\"content\":\"\xA9 \xF0\x9F\"},\"done\":false}\n"
        "{\"message\":{\"content\":\"\x99\x82!\"},\"done\":false}\n"
        "{\"message\":{\"content\":\"\"},\"done\":true}\n";
    struct collected c = { KB_BUF_INIT, 0, 0 };
    assert_int_equal(decode(KB_LLM_PROTO_OLLAMA, lines, sizeof lines - 1, NULL, 0, &c, NULL), 0);
    assert_string_equal(c.text.data, "caf\xC3\xA9 \xF0\x9F\x99\x82!");
    assert_false(c.bad_utf8);
    assert_int_equal(c.pieces, 3);
    kb_buf_free(&c.text);
}

static void stream__utf8_complete_prefix_stops_before_a_cut_sequence(void **state)
{
    (void)state;
    assert_int_equal(kb_utf8_complete("abc", 3), 3);
    assert_int_equal(kb_utf8_complete("ab\xC3", 3), 2);
    assert_int_equal(kb_utf8_complete("ab\xC3\xA9", 4), 4);
    assert_int_equal(kb_utf8_complete("\xF0\x9F\x99", 3), 0);
    assert_int_equal(kb_utf8_complete("\xF0\x9F\x99\x82", 4), 4);
    assert_int_equal(kb_utf8_complete("x\xE6\x97", 3), 1);
    assert_int_equal(kb_utf8_complete("", 0), 0);
}

/* Inputs fuzz_llm_stream once failed on (first byte: the protocol, as the fuzzer reads it):
 * each decodes the same whole and cut anywhere, and the error text masks the key. */
static void stream__fuzz_regressions_stay_fixed(void **state)
{
    (void)state;
    static const char *const files[] = { "fuzz_key_joined_by_control_chars.bin" };
    static const enum kb_llm_proto protos[] = { KB_LLM_PROTO_OPENAI, KB_LLM_PROTO_OLLAMA,
                                                KB_LLM_PROTO_ANTHROPIC };
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        size_t size;
        char *data = read_data(files[f], &size);
        assert_true(size > 1);
        enum kb_llm_proto proto = protos[(unsigned char)data[0] % 3];
        const char *reply = data + 1;
        size_t len = size - 1;
        struct collected whole = { KB_BUF_INIT, 0, 0 };
        int rc = decode(proto, reply, len, NULL, 0, &whole, NULL);
        for (size_t cut = 1; cut < len; cut++) {
            struct collected two = { KB_BUF_INIT, 0, 0 };
            assert_int_equal(decode(proto, reply, len, &cut, 1, &two, NULL), rc);
            assert_int_equal(two.text.len, whole.text.len);
            if (whole.text.len)
                assert_memory_equal(two.text.data, whole.text.data, whole.text.len);
            kb_buf_free(&two.text);
        }
        char *msg = kb_llm_error_text(reply, len, "sk-fuzz");
        assert_non_null(msg);
        assert_null(strstr(msg, "sk-fuzz"));
        free(msg);
        kb_buf_free(&whole.text);
        free(data);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stream__openai_sse_split_at_every_byte_gives_the_same_answer),
        cmocka_unit_test(stream__ollama_ndjson_split_at_every_byte_gives_the_same_answer),
        cmocka_unit_test(stream__anthropic_sse_split_at_every_byte_gives_the_same_answer),
        cmocka_unit_test(stream__reports_the_usage_each_backend_sends),
        cmocka_unit_test(stream__an_error_event_fails_with_the_server_message),
        cmocka_unit_test(stream__a_callback_returning_non_zero_stops_the_answer),
        cmocka_unit_test(stream__a_reply_cut_short_is_an_error),
        cmocka_unit_test(stream__non_json_record_is_a_format_error),
        cmocka_unit_test(stream__utf8_split_across_deltas_is_held_back_until_complete),
        cmocka_unit_test(stream__utf8_complete_prefix_stops_before_a_cut_sequence),
        cmocka_unit_test(stream__fuzz_regressions_stay_fixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
