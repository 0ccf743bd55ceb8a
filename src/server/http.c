/* http.c — kb serve's reply helpers (JSON bodies, stable error codes) and request checks. */
#include "server/server_int.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int srv_json(struct srv_reply *out, unsigned status, cJSON *doc)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!text)
        return srv_error(out, 500, "internal", "out of memory");
    size_t len = strlen(text);
    /* the body ends with a newline so curl output and logs stay readable */
    char *body = realloc(text, len + 2);
    if (!body) {
        free(text);
        return srv_error(out, 500, "internal", "out of memory");
    }
    body[len] = '\n';
    body[len + 1] = '\0';
    out->resp = MHD_create_response_from_buffer(len + 1, body, MHD_RESPMEM_MUST_FREE);
    if (!out->resp) {
        free(body);
        out->status = 500;
        return -1;
    }
    MHD_add_response_header(out->resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    out->status = status;
    return 0;
}

int srv_error(struct srv_reply *out, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (out->resp)
        MHD_destroy_response(out->resp);
    out->resp = NULL;
    out->status = status;
    cJSON *doc = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(doc, "error");
    if (err) {
        cJSON_AddStringToObject(err, "code", code);
        cJSON_AddStringToObject(err, "message", msg);
    }
    char *text = err ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (text) {
        out->resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!out->resp)
            free(text);
    }
    if (!out->resp) /* out of memory: a fixed body MHD does not copy */
        out->resp = MHD_create_response_from_buffer(
            sizeof "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}" - 1,
            (void *)"{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}",
            MHD_RESPMEM_PERSISTENT);
    if (out->resp)
        MHD_add_response_header(out->resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return -1;
}

const char *srv_code(int kb_status, unsigned *http_status)
{
    static const struct { int status; unsigned http; const char *code; } map[] = {
        { KB_EINVALID, 400, "invalid_request" }, { KB_EFORMAT, 400, "invalid_request" },
        { KB_ENOTFOUND, 404, "not_found" }, { KB_ELOCKED, 503, "locked" },
        { KB_EUNAVAILABLE, 502, "llm_unavailable" }, { KB_EAUTH, 502, "llm_auth" },
        { KB_ECONFIG, 500, "config_error" },
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (map[i].status == kb_status) {
            *http_status = map[i].http;
            return map[i].code;
        }
    *http_status = 500;
    return "internal";
}

int srv_fail(struct srv_reply *out, int kb_status, const char *message)
{
    unsigned http;
    const char *code = srv_code(kb_status, &http);
    srv_error(out, http, code, "%s", message && *message ? message : kb_strerror(kb_status));
    if (kb_status == KB_ELOCKED && out->resp)
        MHD_add_response_header(out->resp, MHD_HTTP_HEADER_RETRY_AFTER, "5");
    return -1;
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 when invalid (RFC 3629 table). */
static size_t http_utf8_seq(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len = p[0] >= 0xC2 && p[0] <= 0xDF ? 2 : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
               : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : 0;
    if (!len || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] > 0x9F) ||
        (p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] > 0x8F))
        return 0; /* overlong, surrogate, past U+10FFFF */
    return len;
}

int srv_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = http_utf8_seq(p + i, len - i);
        if (!n)
            return 0;
        i += n;
    }
    return 1;
}

unsigned srv_json_depth(const char *text, size_t len, unsigned max)
{
    unsigned depth = 0, deepest = 0;
    int in_string = 0;
    for (size_t i = 0; i < len && deepest <= max; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest)
                deepest = depth;
        } else if ((c == ']' || c == '}') && depth) {
            depth--;
        }
    }
    return deepest;
}

int srv_token_equal(const char *given, const char *expected)
{
    size_t n = strlen(expected);
    unsigned char diff = 0;
    int ended = 0;
    /* read `given` no further than its NUL, but always loop n times */
    for (size_t i = 0; i < n; i++) {
        unsigned char g = ended ? 0 : (unsigned char)given[i];
        ended |= g == 0;
        diff |= (unsigned char)(g ^ (unsigned char)expected[i]);
    }
    diff |= (unsigned char)(ended ? 1 : given[n]);
    return diff == 0;
}

int srv_get_string(struct srv_reply *out, const cJSON *obj, const char *name, int required,
                   const char **value)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item || cJSON_IsNull(item)) {
        if (required)
            return srv_error(out, 400, "invalid_request", "'%s' is required", name);
        return 0;
    }
    if (!cJSON_IsString(item))
        return srv_error(out, 400, "invalid_request", "'%s' must be a string", name);
    if (!srv_utf8_valid(item->valuestring, strlen(item->valuestring)))
        return srv_error(out, 400, "invalid_request", "'%s' is not valid UTF-8", name);
    if (required && !*item->valuestring)
        return srv_error(out, 400, "invalid_request", "'%s' is empty", name);
    *value = item->valuestring;
    return 0;
}

int srv_get_size(struct srv_reply *out, const cJSON *obj, const char *name, size_t min,
                 size_t max, size_t *value)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item || cJSON_IsNull(item))
        return 0;
    double v = cJSON_IsNumber(item) ? item->valuedouble : -1;
    if (!cJSON_IsNumber(item) || v != (double)(long long)v)
        return srv_error(out, 400, "invalid_request", "'%s' must be an integer", name);
    if (v < (double)min || v > (double)max)
        return srv_error(out, 400, "limit_exceeded", "'%s' must be from %zu to %zu", name,
                         min, max);
    *value = (size_t)v;
    return 0;
}

int srv_get_bool(struct srv_reply *out, const cJSON *obj, const char *name, int *value)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item || cJSON_IsNull(item))
        return 0;
    if (!cJSON_IsBool(item))
        return srv_error(out, 400, "invalid_request", "'%s' must be true or false", name);
    *value = cJSON_IsTrue(item);
    return 0;
}

int srv_get_mode(struct srv_reply *out, const cJSON *obj, kb_mode *mode)
{
    const char *name = NULL;
    if (srv_get_string(out, obj, "mode", 0, &name))
        return -1;
    if (!name)
        return 0;
    if (!strcmp(name, "bm25"))
        *mode = KB_MODE_BM25;
    else if (!strcmp(name, "vector"))
        *mode = KB_MODE_VECTOR;
    else if (!strcmp(name, "hybrid"))
        *mode = KB_MODE_HYBRID;
    else
        return srv_error(out, 400, "invalid_request", "'mode' must be bm25, vector or hybrid");
    return 0;
}
