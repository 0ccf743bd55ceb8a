/* chat.c — one streamed chat request to a backend: headers, retries with backoff, and errors
 * that say what went wrong in one line. The API key only ever goes into one header. */
#include "llm/llm_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHAT_BACKOFF_BASE_S 0.5
#define CHAT_BACKOFF_MAX_S 8.0

struct chat_state {
    const struct kb_llm_call *call;
    struct kb_llm_decoder dec;
    struct kb_buf *answer;
    double start_ms, first_token_ms;
    int decode_rc;
    struct kb_err *err;
};

static void chat_log(const struct kb_llm_call *call, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Hands a line to the caller's log with the key masked in every spelling kb_llm_redact knows
 * (a safety net: no line is built with the key in it). */
static void chat_log_text(const struct kb_llm_call *call, int level, const char *text)
{
    struct kb_buf shown = KB_BUF_INIT;
    if (call->on_log && !kb_llm_redact(&shown, text, strlen(text), call->key))
        call->on_log(level, shown.data ? shown.data : "", call->payload);
    kb_buf_free(&shown);
}

static void chat_log(const struct kb_llm_call *call, int level, const char *fmt, ...)
{
    if (!call->on_log)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    chat_log_text(call, level, line);
}

/* Returns non-zero when the caller's callback asks to stop. */
static int chat_on_token(const char *text, size_t len, void *payload)
{
    struct chat_state *st = payload;
    if (st->first_token_ms < 0)
        st->first_token_ms = kb_llm_now_ms() - st->start_ms;
    if (kb_buf_append(st->answer, text, len) && !st->decode_rc)
        st->decode_rc = kb_err_set(st->err, KB_ENOMEM, "out of memory keeping the answer");
    return st->call->on_token ? st->call->on_token(text, len, st->call->payload) : 0;
}

static int chat_on_data(const char *data, size_t len, void *payload)
{
    struct chat_state *st = payload;
    int rc = kb_llm_decoder_feed(&st->dec, data, len, st->err);
    if (rc && !st->decode_rc)
        st->decode_rc = rc;
    return st->decode_rc ? 1 : 0;
}

/* The request headers: the backend's Accept and extra header, and the key's header (the
 * caller wipes `auth`). */
static size_t chat_headers(struct kb_buf *auth, const char *headers[4],
                           const struct kb_llm_call *call)
{
    const struct kb_llm_backend *be = kb_llm_backend_find(call->cfg->backend);
    size_t n = 0;
    headers[n++] = "Content-Type: application/json";
    if (be->extra_header)
        headers[n++] = be->extra_header;
    if (be->accept)
        headers[n++] = be->accept;
    if (call->key && !kb_buf_printf(auth, be->auth_header, call->key))
        headers[n++] = auth->data;
    return n;
}

/* Where the key comes from, for the message when it is refused. */
static void chat_key_hint(const char *backend, char *out, size_t size)
{
    const struct kb_llm_backend *be = kb_llm_backend_find(backend);
    snprintf(out, size, "%s%sKB_API_KEY or key_file", be && be->key_env ? be->key_env : "",
             be && be->key_env ? ", " : "");
}

/* What an HTTP status other than 2xx means (the table in README.md "Configuration"). Each
 * status has exactly one meaning, and only CHAT_STATUS_RETRY is ever sent again. */
enum chat_status_kind {
    CHAT_STATUS_RETRY,     /* 408, 429, 5xx: again after a wait, up to max_retries; then
                              KB_EUNAVAILABLE */
    CHAT_STATUS_AUTH,      /* 401, 403: KB_EAUTH */
    CHAT_STATUS_NOT_FOUND, /* 404: KB_ENOTFOUND (unknown model or wrong URL) */
    CHAT_STATUS_REDIRECT,  /* 3xx: KB_ECONFIG; redirects are not followed on purpose */
    CHAT_STATUS_REFUSED    /* any other (400, 402, 413, 422, 1xx, 600...): KB_ECONFIG with the
                              server's message */
};

static enum chat_status_kind chat_status_kind(long st)
{
    if (st == 408 || st == 429 || (st >= 500 && st <= 599))
        return CHAT_STATUS_RETRY;
    if (st == 401 || st == 403)
        return CHAT_STATUS_AUTH;
    if (st == 404)
        return CHAT_STATUS_NOT_FOUND;
    if (st >= 300 && st <= 399)
        return CHAT_STATUS_REDIRECT;
    return CHAT_STATUS_REFUSED;
}

/* A failed attempt that came with no HTTP status, as one line on err; 0 when it had one. */
static int chat_fail_transport(const struct kb_llm_call *call, const char *url,
                               const struct kb_llm_http_res *res, struct kb_err *err)
{
    const struct kb_llm_config *cfg = call->cfg;
    const char *b = cfg->backend;
    switch (res->abort) {
    case KB_LLM_ABORT_CAP:
        return kb_err_set(err, KB_EUNAVAILABLE, "%s at %s: the reply is over the %zu MB limit; "
                          "stopped reading", b, url, KB_LLM_MAX_REPLY >> 20);
    case KB_LLM_ABORT_FIRST_TOKEN:
        return kb_err_set(err, KB_EUNAVAILABLE, "%s at %s: no answer within %.1f s "
                          "(first_token_timeout)", b, url, cfg->first_token_timeout_ms / 1e3);
    case KB_LLM_ABORT_CANCEL:
        return kb_err_set(err, KB_ECANCELED, "%s at %s: stopped on request", b, url);
    case KB_LLM_ABORT_STALL:
        return kb_err_set(err, KB_EUNAVAILABLE, "%s at %s: the reply stalled: no data for "
                          "%.1f s (stall_timeout)", b, url, cfg->stall_timeout_ms / 1e3);
    default:
        break;
    }
    if (res->connect_timed_out)
        return kb_err_set(err, KB_EUNAVAILABLE, "%s at %s: unreachable: no connection within "
                          "%.1f s (connect_timeout)", b, url, cfg->connect_timeout_ms / 1e3);
    if (res->tls_refused)
        return kb_err_set(err, KB_EUNAVAILABLE, "%s at %s: the server's TLS certificate was "
                          "refused (%s)", b, url, res->message);
    if (res->transport_failed)
        return kb_err_set(err, KB_EUNAVAILABLE, "%s at %s: unreachable (%s)", b, url,
                          res->message);
    return 0;
}

/* A 3xx: kb stays where it was pointed, and says where the server points instead. */
static int chat_fail_redirect(const struct kb_llm_call *call, const char *url,
                              const struct kb_llm_http_res *res, const char *why,
                              struct kb_err *err)
{
    const char *b = call->cfg->backend;
    char *to = kb_llm_server_text(res->location, strlen(res->location), call->key);
    int rc = to && *to
        ? kb_err_set(err, KB_ECONFIG, "%s at %s: HTTP %ld: kb does not follow redirects; set url "
                     "to the address the server gave: %s (%s)", b, url, res->status, to, why)
        : kb_err_set(err, KB_ECONFIG, "%s at %s: HTTP %ld: a redirect without a Location, which "
                     "kb would not follow anyway; set url to the backend's own address (%s)", b,
                     url, res->status, why);
    free(to);
    return rc;
}

/* A failed attempt as one line on err; returns its status, never KB_ERROR. */
static int chat_fail(const struct kb_llm_call *call, const char *url,
                     const struct kb_llm_http_res *res, int attempts, struct kb_err *err)
{
    const struct kb_llm_config *cfg = call->cfg;
    const char *b = cfg->backend;
    int rc = chat_fail_transport(call, url, res, err);
    if (rc)
        return rc;
    char *text = kb_llm_error_text(res->error_body.data ? res->error_body.data : "",
                                   res->error_body.len, call->key);
    const char *why = text && *text ? text : "no message";
    long st = res->status;
    switch (chat_status_kind(st)) {
    case CHAT_STATUS_RETRY:
        rc = kb_err_set(err, KB_EUNAVAILABLE, "%s at %s: HTTP %ld after %d attempt%s (%s)", b,
                        url, st, attempts, attempts == 1 ? "" : "s", why);
        break;
    case CHAT_STATUS_AUTH: {
        char hint[96];
        chat_key_hint(b, hint, sizeof hint);
        rc = kb_err_set(err, KB_EAUTH, "%s at %s: HTTP %ld: the API key was refused (%s); "
                        "check %s", b, url, st, why, hint);
        break;
    }
    case CHAT_STATUS_NOT_FOUND:
        rc = kb_err_set(err, KB_ENOTFOUND, "%s at %s: HTTP 404: unknown model '%s' or wrong "
                        "URL (%s)", b, url, cfg->model, why);
        break;
    case CHAT_STATUS_REDIRECT:
        rc = chat_fail_redirect(call, url, res, why, err);
        break;
    case CHAT_STATUS_REFUSED:
        rc = kb_err_set(err, KB_ECONFIG, "%s at %s: HTTP %ld: the request was refused (%s)", b,
                        url, st, why);
        break;
    }
    free(text);
    return rc;
}

double kb_llm_retry_delay_s(double retry_after_s, int attempt)
{
    if (retry_after_s >= 0)
        return retry_after_s < KB_LLM_MAX_RETRY_AFTER_S ? retry_after_s
                                                         : KB_LLM_MAX_RETRY_AFTER_S;
    double d = CHAT_BACKOFF_BASE_S;
    for (int i = 0; i < attempt && d < CHAT_BACKOFF_MAX_S; i++)
        d *= 2;
    return d < CHAT_BACKOFF_MAX_S ? d : CHAT_BACKOFF_MAX_S;
}

/* Sleeps `seconds`, in steps of at most 0.1 s so that a cancel ends the wait early (the next
 * attempt then stops before it starts). */
static void chat_sleep(double seconds, const volatile int *cancel)
{
    double end = kb_llm_now_ms() + seconds * 1e3, left;
    while (!(cancel && *cancel) && (left = end - kb_llm_now_ms()) > 0) {
        struct timespec ts = { 0, (long)((left < 100 ? left : 100) * 1e6) };
        nanosleep(&ts, NULL);
    }
}

/* What an attempt leaves to do. Kept apart from kb statuses, so no status can mean "again". */
enum chat_step {
    CHAT_STEP_DONE,   /* an answer, or a failure once the stream had begun: *rc says which */
    CHAT_STEP_RETRY,  /* no answer, and the HTTP status says another attempt may get one */
    CHAT_STEP_FAILED  /* no answer, and another attempt would fail the same way */
};

/* One attempt; fills res and the decoder in st. */
static enum chat_step chat_attempt(struct chat_state *st, struct kb_llm_http_req *req,
                                   struct kb_llm_http_res *res, int *rc)
{
    kb_llm_decoder_free(&st->dec);
    kb_llm_decoder_init(&st->dec, kb_llm_backend_find(st->call->cfg->backend)->proto,
                        chat_on_token, st);
    kb_buf_reset(st->answer);
    st->decode_rc = 0;
    st->first_token_ms = -1;
    req->token_progress = &st->dec.n_emitted;
    int posted = kb_llm_http_post(req, res);
    if (!st->decode_rc && (posted || res->status < 200 || res->status > 299))
        return !res->transport_failed && res->abort == KB_LLM_ABORT_NONE &&
               st->dec.n_emitted == 0 && chat_status_kind(res->status) == CHAT_STATUS_RETRY
                   ? CHAT_STEP_RETRY : CHAT_STEP_FAILED;
    *rc = st->decode_rc ? st->decode_rc : kb_llm_decoder_finish(&st->dec, st->err);
    if (*rc && *rc != KB_ECANCELED) {
        char prefix[600];
        snprintf(prefix, sizeof prefix, "%s at %s", st->call->cfg->backend, req->url);
        kb_err_prefix(st->err, prefix);
    }
    return CHAT_STEP_DONE;
}

/* Attempts until one answers or fails for good: 1 + max_retries of them at most. */
static int chat_attempts(struct chat_state *st, struct kb_llm_http_req *req,
                         struct kb_llm_http_res *res, struct kb_llm_chat_stats *stats)
{
    const struct kb_llm_call *call = st->call;
    for (unsigned attempt = 0;; attempt++) {
        int rc = 0;
        kb_llm_http_res_free(res);
        enum chat_step step = chat_attempt(st, req, res, &rc);
        stats->attempts = (int)attempt + 1;
        if (step == CHAT_STEP_DONE)
            return rc;
        if (step == CHAT_STEP_FAILED || attempt >= call->cfg->max_retries)
            return chat_fail(call, req->url, res, stats->attempts, st->err);
        double delay = kb_llm_retry_delay_s(res->retry_after_s, (int)attempt);
        chat_log(call, 1, "HTTP %ld from %s; retrying in %.1f s%s", res->status, req->url,
                 delay, res->retry_after_s >= 0 ? " (Retry-After)" : "");
        chat_sleep(delay, call->cancel);
    }
}

static void chat_log_request(const struct kb_llm_call *call, const char *url, const char *body,
                             const char *const *headers, size_t n_headers)
{
    chat_log(call, 1, "%s at %s, model %s", call->cfg->backend, url, call->cfg->model);
    for (size_t i = 0; i < n_headers; i++) {
        const char *colon = strchr(headers[i], ':');
        int secret = call->key && strstr(headers[i], call->key);
        chat_log(call, 2, "header %.*s: %s", (int)(colon - headers[i]), headers[i],
                 secret ? "***" : colon + 2);
    }
    chat_log_text(call, 2, body);
}

int kb_llm_chat(const struct kb_llm_call *call, struct kb_buf *answer,
                struct kb_llm_usage *usage, struct kb_llm_chat_stats *stats, struct kb_err *err)
{
    const struct kb_llm_config *cfg = call->cfg;
    char *url = kb_llm_request_url(cfg);
    char *body = kb_llm_request_body(cfg, call->messages, call->n_messages);
    struct kb_buf auth = KB_BUF_INIT;
    const char *headers[4];
    size_t n_headers = chat_headers(&auth, headers, call);
    struct chat_state st = { call, { 0 }, answer, kb_llm_now_ms(), -1, 0, err };
    struct kb_llm_http_req req = { url, headers, n_headers, body, cfg->connect_timeout_ms,
                                   cfg->first_token_timeout_ms, cfg->stall_timeout_ms,
                                   KB_LLM_MAX_REPLY, NULL, chat_on_data, &st, call->cancel };
    struct kb_llm_http_res res = { 0 };
    int rc = !url || !body ? kb_err_set(err, KB_ENOMEM, "out of memory") : 0;
    if (!rc) {
        chat_log_request(call, url, body, headers, n_headers);
        rc = chat_attempts(&st, &req, &res, stats);
    }
    stats->first_token_ms = st.first_token_ms;
    stats->total_ms = kb_llm_now_ms() - st.start_ms;
    *usage = st.dec.usage;
    if (!usage->reported)
        usage->completion_tokens = st.dec.n_deltas;
    kb_llm_decoder_free(&st.dec);
    kb_llm_http_res_free(&res);
    if (auth.data)
        explicit_bzero(auth.data, auth.len);
    kb_buf_free(&auth);
    free(url);
    free(body);
    return rc;
}
