/* stream.c — incremental parsers for streamed LLM replies: lines, SSE, NDJSON, and the
 * OpenAI / Ollama / Anthropic records they carry. Any split of the input gives one output. */
#include "llm/llm_int.h"
#include "util/utf8.h"

#include <cjson/cJSON.h>
#include <string.h>

static int lines_feed(struct kb_llm_lines *ls, const char *data, size_t len,
                      kb_llm_line_fn fn, void *payload)
{
    ls->line.max = KB_LLM_MAX_LINE;
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (kb_buf_append(&ls->line, data, take))
            return KB_ENOMEM;
        if (!nl)
            return 0;
        size_t n = ls->line.len;
        if (n > 0 && ls->line.data[n - 1] == '\r')
            n--;
        int rc = fn(ls->line.data, n, payload);
        kb_buf_reset(&ls->line);
        if (rc)
            return rc;
        data += take + 1;
        len -= take + 1;
    }
    return 0;
}

/* ---- emitting text ---- */

static int dec_emit(struct kb_llm_decoder *dec, const char *text, size_t len)
{
    struct kb_buf joined = KB_BUF_INIT;
    if (kb_buf_append(&joined, dec->pending, dec->n_pending) ||
        kb_buf_append(&joined, text, len)) {
        kb_buf_free(&joined);
        return kb_err_set(dec->err, KB_ENOMEM, "out of memory reading the reply");
    }
    size_t ok = kb_utf8_complete(joined.data, joined.len);
    int stop = ok && dec->on_token && dec->on_token(joined.data, ok, dec->payload);
    dec->n_emitted += ok;
    dec->n_pending = joined.len - ok;
    memcpy(dec->pending, joined.data + ok, dec->n_pending);
    kb_buf_free(&joined);
    return stop ? kb_err_set(dec->err, KB_ECANCELED, "the answer was stopped by its reader") : 0;
}

static int dec_delta(struct kb_llm_decoder *dec, const cJSON *text)
{
    if (!cJSON_IsString(text) || !text->valuestring[0])
        return 0;
    dec->n_deltas++;
    return dec_emit(dec, text->valuestring, strlen(text->valuestring));
}

static uint64_t dec_count(const cJSON *obj, const char *name)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(n) && n->valuedouble > 0 ? (uint64_t)n->valuedouble : 0;
}

/* A stream-level error record: {"error": "text"} or {"error": {"message": "text"}}. */
static int dec_error(struct kb_llm_decoder *dec, const cJSON *error)
{
    const cJSON *msg = cJSON_IsObject(error) ? cJSON_GetObjectItemCaseSensitive(error, "message")
                                              : error;
    return kb_err_set(dec->err, KB_EUNAVAILABLE, "the server reported an error mid-stream: %s",
                      cJSON_IsString(msg) ? msg->valuestring : "(no message)");
}

static cJSON *dec_parse(struct kb_llm_decoder *dec, const char *data, size_t len, int *rc)
{
    cJSON *doc = cJSON_ParseWithLength(data, len);
    if (!doc)
        *rc = kb_err_set(dec->err, KB_EFORMAT, "the reply has a record that is not JSON: %.60s",
                         data);
    return doc;
}

/* One OpenAI chat.completion.chunk (or the [DONE] marker). */
static int dec_openai(struct kb_llm_decoder *dec, const char *data, size_t len)
{
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        dec->done = 1;
        return 0;
    }
    int rc = 0;
    cJSON *doc = dec_parse(dec, data, len, &rc);
    if (!doc)
        return rc;
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(doc, "error");
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "choices"), 0);
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(doc, "usage");
    if (error)
        rc = dec_error(dec, error);
    else
        rc = dec_delta(dec, cJSON_GetObjectItemCaseSensitive(delta, "content"));
    /* Servers that never send [DONE] still end the choice with a finish_reason. */
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(choice, "finish_reason")))
        dec->done = 1;
    if (cJSON_IsObject(usage)) {
        dec->usage.prompt_tokens = dec_count(usage, "prompt_tokens");
        dec->usage.completion_tokens = dec_count(usage, "completion_tokens");
        dec->usage.reported = 1;
    }
    cJSON_Delete(doc);
    return rc;
}

/* One Anthropic Messages event; its "type" field names it (the `event:` line repeats it). */
static int dec_anthropic(struct kb_llm_decoder *dec, const char *data, size_t len)
{
    int rc = 0;
    cJSON *doc = dec_parse(dec, data, len, &rc);
    if (!doc)
        return rc;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(doc, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(doc, "delta");
    if (!strcmp(t, "content_block_delta")) {
        rc = dec_delta(dec, cJSON_GetObjectItemCaseSensitive(delta, "text"));
    } else if (!strcmp(t, "message_start")) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(doc, "message");
        dec->usage.prompt_tokens =
            dec_count(cJSON_GetObjectItemCaseSensitive(msg, "usage"), "input_tokens");
    } else if (!strcmp(t, "message_delta")) {
        dec->usage.completion_tokens =
            dec_count(cJSON_GetObjectItemCaseSensitive(doc, "usage"), "output_tokens");
        dec->usage.reported = 1;
    } else if (!strcmp(t, "message_stop")) {
        dec->done = 1;
    } else if (!strcmp(t, "error")) {
        rc = dec_error(dec, cJSON_GetObjectItemCaseSensitive(doc, "error"));
    }
    cJSON_Delete(doc);
    return rc;
}

/* One Ollama /api/chat record. */
static int dec_ollama(const char *line, size_t len, void *payload)
{
    struct kb_llm_decoder *dec = payload;
    if (len == 0)
        return 0;
    int rc = 0;
    cJSON *doc = dec_parse(dec, line, len, &rc);
    if (!doc)
        return rc;
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(doc, "error");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(doc, "message");
    if (error)
        rc = dec_error(dec, error);
    else
        rc = dec_delta(dec, cJSON_GetObjectItemCaseSensitive(msg, "content"));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "done"))) {
        dec->done = 1;
        dec->usage.prompt_tokens = dec_count(doc, "prompt_eval_count");
        dec->usage.completion_tokens = dec_count(doc, "eval_count");
        dec->usage.reported = 1;
    }
    cJSON_Delete(doc);
    return rc;
}

/* Dispatches the SSE event gathered so far. */
static int sse_dispatch(struct kb_llm_decoder *dec)
{
    struct kb_llm_sse *sse = &dec->sse;
    if (!sse->has_data) {
        kb_buf_reset(&sse->event);
        return 0;
    }
    const char *data = sse->data.data ? sse->data.data : "";
    int rc = dec->proto == KB_LLM_PROTO_OPENAI ? dec_openai(dec, data, sse->data.len)
                                               : dec_anthropic(dec, data, sse->data.len);
    kb_buf_reset(&sse->event);
    kb_buf_reset(&sse->data);
    sse->has_data = 0;
    return rc;
}

/* One SSE line: "field: value" (one space after the colon is dropped). */
static int sse_line(const char *line, size_t len, void *payload)
{
    struct kb_llm_decoder *dec = payload;
    struct kb_llm_sse *sse = &dec->sse;
    if (len == 0)
        return sse_dispatch(dec);
    const char *colon = memchr(line, ':', len);
    if (colon == line)
        return 0;
    size_t name_len = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = (size_t)(line + len - value);
    if (value_len && *value == ' ') {
        value++;
        value_len--;
    }
    int rc = 0;
    if (name_len == 4 && !memcmp(line, "data", 4)) {
        sse->data.max = KB_LLM_MAX_LINE;
        if (sse->has_data)
            rc = kb_buf_append(&sse->data, "\n", 1);
        rc = rc ? rc : kb_buf_append(&sse->data, value, value_len);
        sse->has_data = 1;
    } else if (name_len == 5 && !memcmp(line, "event", 5)) {
        kb_buf_reset(&sse->event);
        rc = kb_buf_append(&sse->event, value, value_len);
    }
    return rc ? kb_err_set(dec->err, KB_ENOMEM, "a reply event is over %zu bytes",
                           KB_LLM_MAX_LINE) : 0;
}

void kb_llm_decoder_init(struct kb_llm_decoder *dec, enum kb_llm_proto proto,
                         kb_token_cb on_token, void *payload)
{
    memset(dec, 0, sizeof *dec);
    dec->proto = proto;
    dec->on_token = on_token;
    dec->payload = payload;
}

int kb_llm_decoder_feed(struct kb_llm_decoder *dec, const char *data, size_t len,
                        struct kb_err *err)
{
    dec->err = err;
    int rc;
    if (dec->proto == KB_LLM_PROTO_OLLAMA)
        rc = lines_feed(&dec->lines, data, len, dec_ollama, dec);
    else
        rc = lines_feed(&dec->sse.lines, data, len, sse_line, dec);
    if (rc == KB_ENOMEM && (!err || !err->msg[0]))
        kb_err_set(err, rc, "a reply line is over %zu bytes", KB_LLM_MAX_LINE);
    return rc;
}

int kb_llm_decoder_finish(struct kb_llm_decoder *dec, struct kb_err *err)
{
    int rc = 0;
    dec->err = err;
    /* A last NDJSON record without its newline counts when it is whole; an SSE event counts
     * when its lines are complete (a cut line means a cut reply). */
    struct kb_buf *rest = dec->proto == KB_LLM_PROTO_OLLAMA ? &dec->lines.line
                                                            : &dec->sse.lines.line;
    cJSON *last = rest->len ? cJSON_ParseWithLength(rest->data, rest->len) : NULL;
    if (dec->proto == KB_LLM_PROTO_OLLAMA && last)
        rc = dec_ollama(rest->data, rest->len, dec);
    else if (dec->proto != KB_LLM_PROTO_OLLAMA && !rest->len)
        rc = sse_dispatch(dec);
    cJSON_Delete(last);
    dec->n_pending = 0; /* an incomplete UTF-8 sequence at the very end is dropped */
    if (!rc && !dec->done)
        rc = kb_err_set(err, KB_EUNAVAILABLE, "the reply ended before the end of the stream");
    return rc;
}

void kb_llm_decoder_free(struct kb_llm_decoder *dec)
{
    kb_buf_free(&dec->lines.line);
    kb_buf_free(&dec->sse.lines.line);
    kb_buf_free(&dec->sse.event);
    kb_buf_free(&dec->sse.data);
}
