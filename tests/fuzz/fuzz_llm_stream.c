/* fuzz_llm_stream.c — libFuzzer target: the streamed-reply decoders (SSE for OpenAI and
 * Anthropic, NDJSON for Ollama). Input: one byte choosing the protocol and a cut stride, then
 * the reply. The reply is decoded whole and again fed in pieces; both must give the same text,
 * the same status and only the bytes the protocol carried. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_text {
    struct kb_buf text;
    size_t pieces;
};

static int fuzz_on_token(const char *text, size_t len, void *payload)
{
    struct fuzz_text *t = payload;
    if (len == 0)
        abort(); /* the decoder never passes empty pieces */
    t->pieces++;
    if (kb_buf_append(&t->text, text, len))
        abort();
    return 0;
}

/* Decodes `reply` fed `stride` bytes at a time (0 = whole); returns the status. */
static int fuzz_decode(enum kb_llm_proto proto, const char *reply, size_t len, size_t stride,
                       struct fuzz_text *out, struct kb_llm_usage *usage)
{
    struct kb_llm_decoder dec;
    struct kb_err err = { 0, "" };
    kb_llm_decoder_init(&dec, proto, fuzz_on_token, out);
    int rc = 0;
    for (size_t at = 0; at < len && !rc;) {
        size_t n = stride && len - at > stride ? stride : len - at;
        rc = kb_llm_decoder_feed(&dec, reply + at, n, &err);
        at += n;
    }
    if (!rc)
        rc = kb_llm_decoder_finish(&dec, &err);
    if (rc && !err.msg[0])
        abort(); /* every failure says why */
    *usage = dec.usage;
    kb_llm_decoder_free(&dec);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum kb_llm_proto protos[] = { KB_LLM_PROTO_OPENAI, KB_LLM_PROTO_OLLAMA,
                                                KB_LLM_PROTO_ANTHROPIC };
    if (size < 1)
        return 0;
    enum kb_llm_proto proto = protos[data[0] % 3];
    size_t stride = 1 + data[0] / 3 % 17;
    const char *reply = (const char *)data + 1;
    size_t len = size - 1;
    struct fuzz_text whole = { KB_BUF_INIT, 0 }, cut = { KB_BUF_INIT, 0 };
    struct kb_llm_usage u_whole, u_cut;
    int rc_whole = fuzz_decode(proto, reply, len, 0, &whole, &u_whole);
    int rc_cut = fuzz_decode(proto, reply, len, stride, &cut, &u_cut);
    if (rc_whole != rc_cut || whole.text.len != cut.text.len ||
        (whole.text.len && memcmp(whole.text.data, cut.text.data, whole.text.len)) ||
        u_whole.prompt_tokens != u_cut.prompt_tokens || u_whole.reported != u_cut.reported ||
        u_whole.completion_tokens != u_cut.completion_tokens)
        abort(); /* a split changed the outcome */
    if (whole.text.len > len)
        abort(); /* more text out than bytes in */
    char *msg = kb_llm_error_text(reply, len, "sk-fuzz");
    if (!msg || strstr(msg, "sk-fuzz"))
        abort(); /* the key is always masked */
    free(msg);
    kb_buf_free(&whole.text);
    kb_buf_free(&cut.text);
    return 0;
}
