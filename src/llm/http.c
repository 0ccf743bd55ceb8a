/* http.c — one streamed HTTP POST over libcurl, with connect, first-token and stall timeouts
 * and a reply-size cap. TLS peers are always verified; redirects are not followed. */
#include "llm/llm_int.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HTTP_MAX_ERROR_BODY ((size_t)64 << 10)

struct http_xfer {
    const struct kb_llm_http_req *req;
    struct kb_llm_http_res *res;
    CURL *curl;
    double start_ms, last_byte_ms;
    size_t received;
    int got_bytes;
};

double kb_llm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t http_on_body(char *data, size_t size, size_t n, void *payload)
{
    struct http_xfer *x = payload;
    size_t len = size * n;
    x->last_byte_ms = kb_llm_now_ms();
    x->got_bytes = 1;
    x->received += len;
    if (x->received > x->req->max_reply) {
        x->res->abort = KB_LLM_ABORT_CAP;
        return 0;
    }
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->res->status);
    if (x->res->status < 200 || x->res->status > 299) {
        struct kb_buf *eb = &x->res->error_body;
        size_t room = HTTP_MAX_ERROR_BODY - eb->len;
        kb_buf_append(eb, data, len < room ? len : room);
        return len;
    }
    if (x->req->on_data(data, len, x->req->payload)) {
        x->res->abort = KB_LLM_ABORT_CONSUMER;
        return 0;
    }
    return len;
}

double kb_llm_retry_after_parse(const char *value, time_t now)
{
    while (*value == ' ' || *value == '\t')
        value++;
    size_t len = strlen(value);
    while (len && (value[len - 1] == ' ' || value[len - 1] == '\t' || value[len - 1] == '\r' ||
                   value[len - 1] == '\n'))
        len--;
    char text[64];
    if (len == 0 || len >= sizeof text)
        return -1;
    memcpy(text, value, len);
    text[len] = '\0';
    if (strspn(text, "0123456789") == len) {
        /* delay-seconds; anything past a day is as good as a day (the caller bounds it). */
        return len > 6 ? 86400.0 : strtod(text, NULL);
    }
    time_t when = curl_getdate(text, &now);
    if (when == (time_t)-1)
        return -1;
    return when > now ? difftime(when, now) : 0;
}

/* The value in a header line (libcurl passes "Name: value\r\n") when the header is `name`
 * (lower case, colon included), without the spaces around it; NULL for another header. */
static const char *http_header_value(const char *line, size_t len, const char *name,
                                     size_t *value_len)
{
    size_t n = strlen(name);
    if (len < n || strncasecmp(line, name, n))
        return NULL;
    const char *v = line + n, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        end--;
    *value_len = (size_t)(end - v);
    return v;
}

/* Reads Retry-After (delay-seconds or an HTTP-date) into res->retry_after_s and Location into
 * res->location. */
static size_t http_on_header(char *line, size_t size, size_t n, void *payload)
{
    struct http_xfer *x = payload;
    size_t len = size * n, vlen;
    const char *v;
    if ((v = http_header_value(line, len, "retry-after:", &vlen)) && vlen < 128) {
        char value[128];
        memcpy(value, v, vlen);
        value[vlen] = '\0';
        double s = kb_llm_retry_after_parse(value, time(NULL));
        if (s >= 0)
            x->res->retry_after_s = s;
    } else if ((v = http_header_value(line, len, "location:", &vlen))) {
        char *loc = x->res->location;
        size_t keep = vlen < sizeof x->res->location - 1 ? vlen : sizeof x->res->location - 1;
        memcpy(loc, v, keep);
        loc[keep] = '\0';
    }
    return len;
}

/* Called by libcurl several times a second, and about once a second while nothing arrives:
 * enforces cancellation and the first-token and stall timeouts. */
static int http_on_progress(void *payload, curl_off_t dltotal, curl_off_t dlnow,
                            curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    struct http_xfer *x = payload;
    const struct kb_llm_http_req *req = x->req;
    if (req->cancel && *req->cancel) {
        x->res->abort = KB_LLM_ABORT_CANCEL;
        return 1;
    }
    double now = kb_llm_now_ms();
    int have_token = req->token_progress && *req->token_progress > 0;
    long status = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    int streaming = status >= 200 && status <= 299;
    if (streaming && !have_token && req->first_token_timeout_ms &&
        now - x->start_ms > req->first_token_timeout_ms) {
        x->res->abort = KB_LLM_ABORT_FIRST_TOKEN;
        return 1;
    }
    if (x->got_bytes && req->stall_timeout_ms && now - x->last_byte_ms > req->stall_timeout_ms) {
        x->res->abort = KB_LLM_ABORT_STALL;
        return 1;
    }
    /* Before any reply at all, the first-token limit bounds the wait too. */
    if (!status && req->first_token_timeout_ms && now - x->start_ms > req->first_token_timeout_ms) {
        x->res->abort = KB_LLM_ABORT_FIRST_TOKEN;
        return 1;
    }
    return 0;
}

static struct curl_slist *http_headers(const struct kb_llm_http_req *req)
{
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < req->n_headers; i++) {
        struct curl_slist *next = curl_slist_append(list, req->headers[i]);
        if (!next) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = next;
    }
    /* No "Expect: 100-continue" round trip for large prompts. */
    struct curl_slist *next = curl_slist_append(list, "Expect:");
    if (!next)
        curl_slist_free_all(list);
    return next;
}

static void http_setup(CURL *curl, struct http_xfer *x, struct curl_slist *headers,
                       char *errbuf)
{
    const struct kb_llm_http_req *req = x->req;
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "kb");
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, http_on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, http_on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
}

int kb_llm_http_post(const struct kb_llm_http_req *req, struct kb_llm_http_res *res)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    memset(res, 0, sizeof *res);
    res->retry_after_s = -1;
    if (req->cancel && *req->cancel) { /* e.g. during the wait before a retry */
        res->abort = KB_LLM_ABORT_CANCEL;
        return -1;
    }
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = http_headers(req);
    struct http_xfer x = { req, res, curl, kb_llm_now_ms(), 0, 0, 0 };
    if (!curl || !headers) {
        res->transport_failed = 1;
        snprintf(res->message, sizeof res->message, "out of memory");
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        return -1;
    }
    http_setup(curl, &x, headers, errbuf);
    CURLcode cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &res->status);
    if (cc != CURLE_OK && res->abort == KB_LLM_ABORT_NONE) {
        res->transport_failed = 1;
        /* No CURLOPT_TIMEOUT is set: a timeout before any reply is the connect timeout. */
        res->connect_timed_out = cc == CURLE_OPERATION_TIMEDOUT && res->status == 0;
        res->tls_refused = cc == CURLE_PEER_FAILED_VERIFICATION;
        snprintf(res->message, sizeof res->message, "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror(cc));
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return cc == CURLE_OK ? 0 : -1;
}

void kb_llm_http_res_free(struct kb_llm_http_res *res)
{
    kb_buf_free(&res->error_body);
}
