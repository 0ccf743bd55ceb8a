/* llm_int.h — the llm module's private parts: stream parsers, protocol decoders, HTTP. */
#ifndef KB_LLM_LLM_INT_H
#define KB_LLM_LLM_INT_H

#include <time.h>

#include "llm/backend.h"
#include "llm/llm.h"

/* ---- stream.c: incremental parsers, safe for input split at any byte ---- */

#define KB_LLM_MAX_LINE ((size_t)4 << 20)  /* one SSE line or NDJSON record */

/* Splits bytes into lines at '\n' (a '\r' before it is dropped). */
struct kb_llm_lines {
    struct kb_buf line;
};
typedef int (*kb_llm_line_fn)(const char *line, size_t len, void *payload);

/* SSE (https://html.spec.whatwg.org/multipage/server-sent-events.html): `event:` and `data:`
 * fields, dispatched at a blank line; comments (":") and other fields ignored. */
struct kb_llm_sse {
    struct kb_llm_lines lines;
    struct kb_buf event, data;
    int has_data;
};


/* Turns a backend's streamed reply into answer text. Text reaches on_token only as complete
 * UTF-8: an incomplete sequence at the end of a delta waits for the next one. */
struct kb_llm_decoder {
    enum kb_llm_proto proto;
    struct kb_llm_lines lines;     /* NDJSON */
    struct kb_llm_sse sse;         /* SSE */
    char pending[4];               /* an incomplete UTF-8 sequence held back */
    size_t n_pending;
    kb_token_cb on_token;
    void *payload;
    struct kb_llm_usage usage;
    size_t n_deltas;               /* answer pieces received (a token estimate) */
    size_t n_emitted;              /* bytes passed to on_token */
    int done;                      /* the end-of-stream marker was seen */
    struct kb_err *err;
};

void kb_llm_decoder_init(struct kb_llm_decoder *dec, enum kb_llm_proto proto,
                         kb_token_cb on_token, void *payload);
/* Feeds reply bytes. Returns 0, KB_EFORMAT (a record that is not the protocol's JSON) or
 * KB_EUNAVAILABLE (the stream carried an error event; its message is kept). */
int kb_llm_decoder_feed(struct kb_llm_decoder *dec, const char *data, size_t len,
                        struct kb_err *err);
/* Ends the stream: flushes a last unterminated record; KB_EUNAVAILABLE when the stream ended
 * before its end marker. */
int kb_llm_decoder_finish(struct kb_llm_decoder *dec, struct kb_err *err);
void kb_llm_decoder_free(struct kb_llm_decoder *dec);

/* ---- template.c ---- */

/* Appends the [system] (user = 0) or [user] part with {{question}}, {{context}} and
 * {{history}} replaced by values[0..2]. Values are inserted as they are, never re-scanned. */
int kb_llm_template_fill(struct kb_buf *out, const struct kb_llm_template *tpl, int user,
                         const char *const values[3]);

/* ---- request.c ---- */

/* The endpoint URL for cfg->backend and cfg->url. Caller frees. */
char *kb_llm_request_url(const struct kb_llm_config *cfg);
/* The JSON request body. Caller frees. */
char *kb_llm_request_body(const struct kb_llm_config *cfg, const kb_message *messages,
                          size_t n_messages);
/* The server's error text from an error reply body (JSON "error.message", "error", or the
 * first line), as kb_llm_server_text gives it. Caller frees; NULL when out of memory. */
char *kb_llm_error_text(const char *body, size_t len, const char *key);
/* Text from a server (an error message, a header value) fit to quote in one line: every
 * spelling of `key` masked (kb_llm_redact), control characters dropped (tab and newline become
 * spaces), cut to 300 bytes of whole UTF-8 characters. Caller frees; NULL when out of memory. */
char *kb_llm_server_text(const char *text, size_t len, const char *key);

/* ---- redact.c ---- */

/* Appends text[0..len) to out with every spelling of `key` that redact.c lists (the bytes
 * themselves, percent-encoded, JSON-escaped, base64) replaced by "***". A NULL or empty key
 * masks nothing. Returns 0 or KB_ENOMEM. */
int kb_llm_redact(struct kb_buf *out, const char *text, size_t len, const char *key);

/* ---- http.c ---- */

#define KB_LLM_MAX_REPLY ((size_t)10 << 20)  /* 10 MB */

enum kb_llm_abort {
    KB_LLM_ABORT_NONE = 0,
    KB_LLM_ABORT_CAP,          /* reply over max_reply bytes */
    KB_LLM_ABORT_FIRST_TOKEN,  /* no token within first_token_timeout */
    KB_LLM_ABORT_STALL,        /* no bytes for stall_timeout */
    KB_LLM_ABORT_CONSUMER,     /* on_data refused the bytes */
    KB_LLM_ABORT_CANCEL        /* *cancel turned non-zero */
};

struct kb_llm_http_req {
    const char *url;
    const char *const *headers;  /* "Name: value" lines */
    size_t n_headers;
    const char *body;
    unsigned connect_timeout_ms, first_token_timeout_ms, stall_timeout_ms;
    size_t max_reply;
    const size_t *token_progress; /* grows when a token was emitted; watched for first token */
    int (*on_data)(const char *data, size_t len, void *payload); /* 2xx bodies only */
    void *payload;
    const volatile int *cancel;   /* watched at least once a second; may be NULL */
};

struct kb_llm_http_res {
    long status;               /* 0 when no reply came */
    double retry_after_s;      /* from Retry-After; < 0 when absent or unreadable */
    struct kb_buf error_body;  /* non-2xx body, capped at 64 KiB */
    enum kb_llm_abort abort;
    int transport_failed;      /* connection-level failure; `message` says which */
    int connect_timed_out;     /* of those: no connection within connect_timeout_ms */
    int tls_refused;           /* of those: the server's TLS certificate did not verify */
    char message[256];         /* libcurl's description of a transport failure */
    char location[1024];       /* the Location header (a 3xx names where to go), or "" */
};

/* One POST. Returns 0 when a reply status arrived and the body was read to its end (any
 * status), else -1 with res->abort or res->transport_failed saying why. */
int kb_llm_http_post(const struct kb_llm_http_req *req, struct kb_llm_http_res *res);
void kb_llm_http_res_free(struct kb_llm_http_res *res);

/* Seconds to wait for a Retry-After value (RFC 9110 section 10.2.3): delay-seconds (digits;
 * more than six of them read as a day), or an HTTP-date in any of its three forms
 * (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850, asctime) measured from `now`; a date
 * already past is 0. Returns -1 for anything else. The caller bounds the wait. */
double kb_llm_retry_after_parse(const char *value, time_t now);

/* ---- chat.c ---- */

/* The wait before retry `attempt` (0-based): the server's Retry-After (res_retry_after_s >= 0)
 * capped at KB_LLM_MAX_RETRY_AFTER_S, else exponential backoff from 0.5 s up to 8 s. */
#define KB_LLM_MAX_RETRY_AFTER_S 30.0
double kb_llm_retry_delay_s(double retry_after_s, int attempt);

#endif
