/* ask.c — POST /v1/ask: an answer with numbered sources, as one JSON document or streamed as
 * server-sent events (a worker thread runs kb_ask; the connection's thread sends its events). */
#include "server/server_int.h"
#include "cli/out.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ASK_MAX_PENDING (16u << 20)   /* events not yet sent: past this the stream is cut */
#define ASK_KEEPALIVE_S 10           /* an SSE comment after this much silence */

/* A streamed answer's thread. Joined, never detached: the server must not exit while one is
 * still ending, because a thread's own state (OpenSSL's among it) is freed only as it exits,
 * and a process that exits first leaks it. */
struct srv_worker {
    pthread_t tid;
    int done;                     /* nothing left to do but exit (under s->lock) */
    struct srv_worker *next;
};

/* One streamed answer, shared by the worker and the response; freed by whichever lets go
 * last. */
struct ask_stream {
    struct srv *s;
    struct srv_worker *worker;
    kb *kb;
    char *question;
    cJSON *body;                  /* a copy of the request: opts' strings point into it */
    kb_ask_options opts;
    kb_message *history;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char *pending;                /* SSE bytes not yet handed to MHD */
    size_t len, alloc;
    int done, abandoned, overflow, refs;
};

static void ask_unref(struct ask_stream *st)
{
    pthread_mutex_lock(&st->lock);
    int last = --st->refs == 0;
    pthread_mutex_unlock(&st->lock);
    if (!last)
        return;
    pthread_mutex_destroy(&st->lock);
    pthread_cond_destroy(&st->cond);
    cJSON_Delete(st->body);
    free(st->history);
    free(st->pending);
    free(st);
}

/* Queues `data: JSON\n\n` (takes `obj`). Called with st->lock not held. */
static void ask_event(struct ask_stream *st, cJSON *obj)
{
    char *json = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    pthread_mutex_lock(&st->lock);
    size_t need = json ? strlen(json) + 8 : 0;
    if (json && !st->abandoned && st->len + need <= ASK_MAX_PENDING) {
        if (st->len + need + 1 > st->alloc) {
            size_t alloc = (st->len + need + 1) * 2;
            char *p = realloc(st->pending, alloc);
            if (p) {
                st->pending = p;
                st->alloc = alloc;
            }
        }
        if (st->len + need + 1 <= st->alloc)
            st->len += (size_t)snprintf(st->pending + st->len, st->alloc - st->len,
                                        "data: %s\n\n", json);
        else
            st->overflow = 1;
    } else if (json && !st->abandoned) {
        st->overflow = 1;
    }
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    free(json);
}

static int ask_on_token(const char *text, size_t len, void *payload)
{
    struct ask_stream *st = payload;
    char *piece = malloc(len + 1);
    cJSON *obj = piece ? cJSON_CreateObject() : NULL;
    if (obj) {
        memcpy(piece, text, len);
        piece[len] = '\0';
        cJSON_AddStringToObject(obj, "type", "token");
        cJSON_AddStringToObject(obj, "text", piece);
    }
    free(piece);
    ask_event(st, obj);
    /* The client went away: stop the answer (kb_ask then ends the LLM request). */
    pthread_mutex_lock(&st->lock);
    int stop = st->abandoned;
    pthread_mutex_unlock(&st->lock);
    return stop;
}

/* Usage and timings, or the notice that no backend is configured. */
static void ask_add_answer(cJSON *doc, const kb_answer *a, int with_text)
{
    const kb_prompt_result *p = a->prompt;
    if (with_text && p->backend)
        cJSON_AddStringToObject(doc, "answer", a->text);
    if (p->backend) cJSON_AddStringToObject(doc, "backend", p->backend);
    if (p->model) cJSON_AddStringToObject(doc, "model", p->model);
    cJSON_AddStringToObject(doc, "template", p->template_name);
    if (!p->backend) {
        cJSON_AddStringToObject(doc, "notice", "no LLM backend configured: the best passages "
                                               "are the sources");
        return;
    }
    cJSON *usage = cJSON_AddObjectToObject(doc, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)a->prompt_tokens);
    cJSON_AddNumberToObject(usage, "completion_tokens", (double)a->completion_tokens);
    cJSON *t = cJSON_AddObjectToObject(doc, "timings");
    cJSON_AddNumberToObject(t, "retrieve_ms", a->retrieve_ms);
    cJSON_AddNumberToObject(t, "first_token_ms", a->first_token_ms);
    cJSON_AddNumberToObject(t, "total_ms", a->total_ms);
}

static cJSON *ask_error_json(struct ask_stream *st, int status)
{
    unsigned http;
    const char *code, *message = srv_ask_failure(st->s, &st->opts, status, kb_errmsg(st->kb),
                                                 &http, &code);
    cJSON *err = cJSON_CreateObject();
    cJSON_AddStringToObject(err, "code", code);
    cJSON_AddStringToObject(err, "message", message);
    return err;
}

/* The worker: runs the answer, then sources and a summary (with "error" when it failed). */
static void *ask_worker(void *arg)
{
    struct ask_stream *st = arg;
    struct srv *s = st->s;
    kb_answer *a = NULL;
    int status = kb_ask(st->kb, st->question, &st->opts, &a);
    if (a && a->prompt) {
        int answered = a->prompt->backend && !status;
        cJSON *src = cJSON_CreateObject();
        cJSON_AddStringToObject(src, "type", "sources");
        cJSON_AddItemToObject(src, "sources", cli_json_sources(a->prompt->sources,
                                                               a->prompt->n_sources, !answered));
        ask_event(st, src);
    }
    cJSON *sum = cJSON_CreateObject();
    cJSON_AddStringToObject(sum, "type", "summary");
    if (a && a->prompt)
        ask_add_answer(sum, a, !status);
    if (status)
        cJSON_AddItemToObject(sum, "error", ask_error_json(st, status));
    ask_event(st, sum);
    kb_answer_free(a);
    srv_pool_put(s, st->kb);
    pthread_mutex_lock(&st->lock);
    st->done = 1;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    struct srv_worker *self = st->worker;
    ask_unref(st);
    pthread_mutex_lock(&s->lock);
    self->done = 1;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

void srv_ask_join(struct srv *s, int all)
{
    struct srv_worker *mine = NULL;
    pthread_mutex_lock(&s->lock);
    for (struct srv_worker **p = &s->workers, *w; (w = *p);) {
        if (all || w->done) {
            *p = w->next;
            w->next = mine;
            mine = w;
        } else {
            p = &w->next;
        }
    }
    pthread_mutex_unlock(&s->lock);
    while (mine) {
        struct srv_worker *next = mine->next;
        pthread_join(mine->tid, NULL);
        free(mine);
        mine = next;
    }
}

/* MHD's content reader: hands over queued events, waiting for more (in 1 s steps, so that a
 * stopping server is noticed) and sending a comment after ASK_KEEPALIVE_S of silence, which
 * also finds clients that went away. */
static ssize_t ask_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct ask_stream *st = cls;
    (void)pos;
    ssize_t n = 0;
    int waited = 0;
    pthread_mutex_lock(&st->lock);
    while (!st->len && !st->done && !st->overflow && !st->s->stopping) {
        if (waited++ >= ASK_KEEPALIVE_S) {
            static const char ka[] = ": keep-alive\n\n";
            n = (ssize_t)(max < sizeof ka - 1 ? max : sizeof ka - 1);
            memcpy(buf, ka, (size_t)n);
            pthread_mutex_unlock(&st->lock);
            return n;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&st->cond, &st->lock, &ts);
    }
    if (st->len) {
        n = (ssize_t)(st->len < max ? st->len : max);
        memcpy(buf, st->pending, (size_t)n);
        memmove(st->pending, st->pending + n, st->len - (size_t)n);
        st->len -= (size_t)n;
    } else {
        n = st->done ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
    }
    pthread_mutex_unlock(&st->lock);
    return n;
}

/* The response is gone (sent, client disconnected, or server stopping): later tokens are
 * dropped, and the next one stops the answer (ask_on_token), so the worker lets go of its
 * handle soon after. */
static void ask_release(void *cls)
{
    struct ask_stream *st = cls;
    pthread_mutex_lock(&st->lock);
    st->abandoned = 1;
    st->len = 0;
    pthread_mutex_unlock(&st->lock);
    ask_unref(st);
}

static int ask_stream_start(struct srv *s, struct ask_stream *st, struct srv_reply *out)
{
    if (!(st->worker = calloc(1, sizeof *st->worker)) ||
        !(out->resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, ask_read, st,
                                                        ask_release))) {
        free(st->worker);
        srv_pool_put(s, st->kb);
        ask_unref(st);
        return srv_error(out, 500, "internal", "out of memory");
    }
    MHD_add_response_header(out->resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(out->resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    out->status = 200;
    st->refs = 2; /* the worker and the response */
    srv_ask_join(s, 0); /* the threads of answers that ended since the last one started */
    int rc = pthread_create(&st->worker->tid, NULL, ask_worker, st);
    if (rc) {
        free(st->worker);
        srv_pool_put(s, st->kb);
        st->done = 1;
        st->refs = 1; /* the response's, released with it */
        srv_log("cannot start a thread: %s", strerror(rc));
        return srv_error(out, 500, "internal", "internal error (the server's log has the "
                         "details)");
    }
    pthread_mutex_lock(&s->lock);
    st->worker->next = s->workers;
    s->workers = st->worker;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int ask_stream(struct srv *s, const cJSON *body, struct srv_reply *out)
{
    struct ask_stream *st = calloc(1, sizeof *st);
    if (!st)
        return srv_error(out, 500, "internal", "out of memory");
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    st->s = s;
    st->refs = 1;
    st->opts = (kb_ask_options)KB_ASK_OPTIONS_INIT;
    if (!(st->body = cJSON_Duplicate(body, 1))) {
        ask_unref(st);
        return srv_error(out, 500, "internal", "out of memory");
    }
    const char *question;
    if (srv_ask_options(s, out, st->body, &question, &st->opts, &st->history)) {
        ask_unref(st);
        return -1;
    }
    st->question = (char *)question;
    st->opts.on_token = ask_on_token;
    st->opts.payload = st;
    st->opts.cancel = s->cfg->stop; /* a stopping server ends the answer within a second */
    if (!(st->kb = srv_pool_borrow(s, out))) {
        ask_unref(st);
        return -1;
    }
    return ask_stream_start(s, st, out);
}

/* Without "stream", the tokens are only watched: a client that hung up stops the answer. */
static int ask_whole_token(const char *text, size_t len, void *payload)
{
    (void)text;
    (void)len;
    return srv_client_gone(*(const int *)payload);
}

/* Without "stream": one document once the answer is complete. */
static int ask_whole(struct srv *s, const cJSON *body, struct srv_reply *out)
{
    kb_ask_options opts = KB_ASK_OPTIONS_INIT;
    kb_message *history = NULL;
    kb_answer *a = NULL;
    const char *question;
    int status, rc = -1;
    if (srv_ask_options(s, out, body, &question, &opts, &history))
        goto done;
    opts.on_token = ask_whole_token;
    opts.payload = &out->client_fd;
    opts.cancel = s->cfg->stop;
    kb *kb = srv_pool_borrow(s, out);
    if (!kb)
        goto done;
    status = kb_ask(kb, question, &opts, &a);
    if (status) {
        unsigned http;
        const char *code, *msg = srv_ask_failure(s, &opts, status, kb_errmsg(kb), &http, &code);
        srv_error(out, http, code, "%s", msg);
    }
    srv_pool_put(s, kb);
    if (status)
        goto done;
    cJSON *doc = cJSON_CreateObject();
    ask_add_answer(doc, a, 1);
    cJSON_AddItemToObject(doc, "sources", cli_json_sources(a->prompt->sources,
                                                           a->prompt->n_sources,
                                                           !a->prompt->backend));
    rc = srv_json(out, 200, doc);
done:
    kb_answer_free(a);
    free(history);
    return rc;
}

int srv_route_ask(struct srv *s, const cJSON *body, struct srv_reply *out)
{
    int stream = 0;
    if (srv_get_bool(out, body, "stream", &stream))
        return -1;
    return stream ? ask_stream(s, body, out) : ask_whole(s, body, out);
}
