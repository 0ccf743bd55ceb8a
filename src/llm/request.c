/* request.c — what a backend is sent (endpoint, JSON body, from its row in backend.h) and how
 * its errors read. */
#include "llm/llm_int.h"
#include "util/utf8.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static int request_ends_with(const char *s, size_t len, const char *tail)
{
    size_t n = strlen(tail);
    return len >= n && !memcmp(s + len - n, tail, n);
}

/* Whether the base URL's path ends in an API version: a last segment "v" digits [letters
 * digits] ("/v1", "/api/v1", "/compatibility/v1", "/v1beta", "/v2alpha1"), or "/openai" after
 * one (Gemini's "/v1beta/openai"). */
static int request_versioned(const char *base, size_t len)
{
    const char *host = strstr(base, "://");
    size_t start = host ? (size_t)(host + 3 - base) : 0, seg = len;
    while (seg > start && base[seg - 1] != '/')
        seg--;
    if (seg <= start || seg == len)
        return 0; /* no path after the host */
    if (request_ends_with(base, len, "/openai"))
        return request_versioned(base, seg - 1);
    size_t i = seg + 1;
    if (base[seg] != 'v' || i >= len || !isdigit((unsigned char)base[i]))
        return 0;
    while (i < len && isdigit((unsigned char)base[i]))
        i++;
    while (i < len && islower((unsigned char)base[i]))
        i++;
    while (i < len && isdigit((unsigned char)base[i]))
        i++;
    return i == len;
}

char *kb_llm_request_url(const struct kb_llm_config *cfg)
{
    const struct kb_llm_backend *be = kb_llm_backend_find(cfg->backend);
    const char *base = cfg->url ? cfg->url : "";
    size_t len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        len--;
    if (!be)
        return NULL;
    const char *add = request_ends_with(base, len, be->path) ||
                              request_ends_with(base, len, be->path_after_version)
                          ? ""
                      : request_versioned(base, len) ? be->path_after_version
                                                     : be->path;
    struct kb_buf url = KB_BUF_INIT;
    if (kb_buf_append(&url, base, len) || kb_buf_puts(&url, add)) {
        kb_buf_free(&url);
        return NULL;
    }
    return kb_buf_detach(&url);
}

char *kb_llm_request_body(const struct kb_llm_config *cfg, const kb_message *messages,
                          size_t n_messages)
{
    const struct kb_llm_backend *be = kb_llm_backend_find(cfg->backend);
    cJSON *doc = be ? cJSON_CreateObject() : NULL;
    if (!doc)
        return NULL;
    cJSON_AddStringToObject(doc, "model", cfg->model ? cfg->model : "");
    be->body(doc, cfg, messages, n_messages);
    char *body = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return body;
}

#define REQUEST_MAX_ERROR_TEXT 300

/* Masks `key` (kb_llm_redact), drops control characters (tab and newline become spaces), then
 * masks again, because dropping them can join a key that a server spelt with control characters
 * in between; cuts to REQUEST_MAX_ERROR_TEXT bytes of whole UTF-8 characters only after
 * masking, so no cut leaves part of a key. */
char *kb_llm_server_text(const char *text, size_t len, const char *key)
{
    struct kb_buf masked = KB_BUF_INIT, clean = KB_BUF_INIT, out = KB_BUF_INIT;
    int rc = kb_llm_redact(&masked, text, len, key);
    for (size_t i = 0; !rc && i < masked.len; i++) {
        unsigned char c = (unsigned char)masked.data[i];
        if (c >= 0x20 && c != 0x7F)
            rc = kb_buf_append(&clean, &c, 1);
        else if (c == '\n' || c == '\t')
            rc = kb_buf_append(&clean, " ", 1);
    }
    if (!rc)
        rc = kb_llm_redact(&out, clean.data ? clean.data : "", clean.len, key);
    if (!rc && out.len > REQUEST_MAX_ERROR_TEXT)
        out.len = kb_utf8_complete(out.data, REQUEST_MAX_ERROR_TEXT);
    while (!rc && out.len && out.data[out.len - 1] == ' ')
        out.len--;
    if (!rc && out.data)
        out.data[out.len] = '\0';
    kb_buf_free(&masked);
    kb_buf_free(&clean);
    if (rc)
        kb_buf_free(&out);
    return rc ? NULL : kb_buf_detach(&out);
}

char *kb_llm_error_text(const char *body, size_t len, const char *key)
{
    cJSON *doc = len ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(doc, "error");
    const cJSON *msg = cJSON_IsObject(error) ? cJSON_GetObjectItemCaseSensitive(error, "message")
                                              : error;
    if (!msg)
        msg = cJSON_GetObjectItemCaseSensitive(doc, "message");
    char *text;
    if (cJSON_IsString(msg)) {
        text = kb_llm_server_text(msg->valuestring, strlen(msg->valuestring), key);
    } else {
        const char *nl = memchr(body, '\n', len);
        text = kb_llm_server_text(body, nl ? (size_t)(nl - body) : len, key);
    }
    cJSON_Delete(doc);
    return text;
}
