/* http.c — kb serve's reply helpers (JSON bodies, stable error codes, what errors may say),
 * its log lines and request checks. */
#include "server/server_int.h"
#include "util/buf.h"
#include "util/utf8.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    char raw[1024];
    struct kb_buf esc = KB_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* what the client sent may be quoted: a message stays one line of valid UTF-8, even
     * where the cut at 1 KiB split a character */
    kb_utf8_escape(&esc, raw, strlen(raw), KB_ESCAPE_LINE);
    const char *msg = esc.data ? esc.data : "";
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
    kb_buf_free(&esc);
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

void srv_log(const char *fmt, ...)
{
    char line[2048];
    struct kb_buf esc = KB_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    kb_utf8_escape(&esc, line, strlen(line), KB_ESCAPE_LINE);
    fprintf(stderr, "kb serve: %s\n", esc.data ? esc.data : "");
    kb_buf_free(&esc);
}

/* ---- what an error may say ---- */

static int http_add_private_path(struct srv *s, const char *path)
{
    if (!path)
        return 0;
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    if (n < 2) /* "" or "/": would match every message with a slash */
        return 0;
    char **paths = realloc(s->private_paths, (s->n_private_paths + 1) * sizeof *paths);
    if (!paths)
        return KB_ENOMEM;
    s->private_paths = paths;
    if (!(paths[s->n_private_paths] = strndup(path, n)))
        return KB_ENOMEM;
    s->n_private_paths++;
    return 0;
}

int srv_private_paths_init(struct srv *s)
{
    static const char *const vars[] = { "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                                        "XDG_CACHE_HOME", "HF_HOME", "TMPDIR" };
    char real[PATH_MAX];
    int rc = http_add_private_path(s, s->cfg->kb_dir);
    if (!rc && realpath(s->cfg->kb_dir, real))
        rc = http_add_private_path(s, real);
    if (!rc && getcwd(real, sizeof real))
        rc = http_add_private_path(s, real);
    for (size_t i = 0; !rc && i < sizeof vars / sizeof *vars; i++)
        rc = http_add_private_path(s, getenv(vars[i]));
    /* a model named by its folder (a hub name has no leading slash) */
    if (!rc && s->model_name[0] == '/')
        rc = http_add_private_path(s, s->model_name);
    return rc;
}

void srv_private_paths_free(struct srv *s)
{
    for (size_t i = 0; i < s->n_private_paths; i++)
        free(s->private_paths[i]);
    free(s->private_paths);
    s->private_paths = NULL;
    s->n_private_paths = 0;
}

int srv_names_private_path(const struct srv *s, const char *text)
{
    for (size_t i = 0; i < s->n_private_paths; i++)
        if (strstr(text, s->private_paths[i]))
            return 1;
    return 0;
}

/* The sentence sent in place of kb's message (which went to the log). */
static const char *http_fixed_message(const char *code, int kb_status)
{
    static const struct { const char *code, *message; } fixed[] = {
        { "internal", "internal error (the server's log has the details)" },
        { "config_error", "the server's LLM or prompt configuration is invalid (the server's "
                          "log has the details)" },
        { "llm_unavailable", "the LLM backend is unreachable, timed out or failed (the "
                             "server's log has the details)" },
        { "llm_auth", "the LLM backend refused the server's API key (the server's log has the "
                      "details)" },
        { "locked", "another write holds the knowledge base's lock; retry" },
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (!strcmp(fixed[i].code, code))
            return fixed[i].message;
    return kb_strerror(kb_status);
}

const char *srv_public_message(struct srv *s, int kb_status, const char *message)
{
    unsigned http;
    const char *code = srv_code(kb_status, &http);
    const char *text = message && *message ? message : kb_strerror(kb_status);
    if (http < 500 && !srv_names_private_path(s, text))
        return text;
    if (kb_status != KB_ELOCKED && kb_status != KB_ECANCELED) /* neither is news */
        srv_log("%u %s: %s", http, code, text);
    return http_fixed_message(code, kb_status);
}

int srv_fail(struct srv *s, struct srv_reply *out, int kb_status, const char *message)
{
    unsigned http;
    const char *code = srv_code(kb_status, &http);
    srv_error(out, http, code, "%s", srv_public_message(s, kb_status, message));
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

/* A key as a message may show it: printable ASCII, at most 64 characters ('?' for others). */
static const char *http_field_name(char buf[72], const char *key, size_t len)
{
    size_t n = 0;
    for (; n < len && n < 64; n++)
        buf[n] = key[n] >= 0x20 && key[n] < 0x7f ? key[n] : '?';
    if (len > 64) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* A \u0000 in the string that ended at text[end] (its closing quote): the error names the
 * field whose value holds it (the last key before it), or says it is in a key. */
static int http_nul_error(struct srv_reply *out, const char *text, size_t end, size_t len,
                          const char *key, size_t key_len)
{
    char name[72];
    size_t i = end + 1;
    while (i < len && strchr(" \t\r\n", text[i]))
        i++;
    if (i < len && text[i] == ':')
        return srv_error(out, 400, "invalid_request", "a key holds \\u0000 (a NUL character), "
                         "which no string in a request may hold");
    if (!key)
        return srv_error(out, 400, "invalid_request", "a string holds \\u0000 (a NUL "
                         "character), which no string in a request may hold");
    return srv_error(out, 400, "invalid_request", "'%s' holds \\u0000 (a NUL character), "
                     "which no string in a request may hold", http_field_name(name, key, key_len));
}

int srv_json_scan(struct srv_reply *out, const char *text, size_t len, unsigned max_depth)
{
    unsigned depth = 0;
    const char *key = NULL, *last = NULL; /* the last key seen, the last string */
    size_t key_len = 0, last_len = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '"') {
            size_t start = ++i;
            int nul = 0;
            for (; i < len && text[i] != '"'; i++) {
                if ((unsigned char)text[i] < 0x20)
                    return srv_error(out, 400, "invalid_json", "a control character inside a "
                                     "string at byte %zu (JSON needs it escaped)", i);
                if (text[i] == '\\' && ++i < len && text[i] == 'u' && len - i > 4 &&
                    !memcmp(text + i + 1, "0000", 4))
                    nul = 1;
            }
            if (nul)
                return http_nul_error(out, text, i, len, key, key_len);
            last = text + start;
            last_len = (i < len ? i : len) - start;
        } else if (c == ':') {
            key = last;
            key_len = last_len;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return srv_error(out, 400, "too_deep", "JSON nested deeper than %u levels",
                                 max_depth);
        } else if ((c == ']' || c == '}') && depth) {
            depth--;
        }
    }
    return 0;
}

static int http_cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int srv_json_unique_keys(struct srv_reply *out, const cJSON *doc)
{
    size_t n = 0, i = 0;
    const cJSON *c;
    if (!cJSON_IsObject(doc) && !cJSON_IsArray(doc))
        return 0;
    for (c = doc->child; c; c = c->next, n++)
        if (srv_json_unique_keys(out, c)) /* depth was bounded by srv_json_scan */
            return -1;
    if (!cJSON_IsObject(doc) || n < 2)
        return 0;
    const char **keys = malloc(n * sizeof *keys);
    if (!keys)
        return srv_error(out, 500, "internal", "out of memory");
    for (c = doc->child; c; c = c->next)
        keys[i++] = c->string ? c->string : "";
    qsort(keys, n, sizeof *keys, http_cmp_keys); /* a million keys: no n^2 compares */
    int rc = 0;
    for (i = 1; i < n && !rc; i++)
        if (!strcmp(keys[i - 1], keys[i])) {
            char name[72];
            rc = srv_error(out, 400, "invalid_request", "'%s' appears twice in one object",
                           http_field_name(name, keys[i], strlen(keys[i])));
        }
    free(keys);
    return rc;
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
                   size_t max_bytes, const char **value)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item || cJSON_IsNull(item)) {
        if (required)
            return srv_error(out, 400, "invalid_request", "'%s' is required", name);
        return 0;
    }
    if (!cJSON_IsString(item))
        return srv_error(out, 400, "invalid_request", "'%s' must be a string", name);
    size_t len = strlen(item->valuestring);
    if (max_bytes && len > max_bytes)
        return srv_error(out, 400, "limit_exceeded", "'%s' is over %zu bytes (%zu)", name,
                         max_bytes, len);
    if (!srv_utf8_valid(item->valuestring, len))
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
    if (!cJSON_IsNumber(item))
        return srv_error(out, 400, "invalid_request", "'%s' must be an integer", name);
    double v = item->valuedouble;
    /* the range first: converting 1e300 to an integer type is undefined */
    if (!(v >= (double)min && v <= (double)max))
        return srv_error(out, 400, "limit_exceeded", "'%s' must be from %zu to %zu", name,
                         min, max);
    if (v != (double)(size_t)v)
        return srv_error(out, 400, "invalid_request", "'%s' must be an integer", name);
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
    if (srv_get_string(out, obj, "mode", 0, SRV_MAX_NAME_BYTES, &name))
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
