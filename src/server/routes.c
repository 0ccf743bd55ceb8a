/* routes.c — kb serve's endpoints: search, prompt, status, embeddings, documents (ask.c has
 * /v1/ask). Request and response fields follow `kb ... --json` (docs/SERVE.md). */
#include "server/server_int.h"
#include "cli/out.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define ROUTES_MAX_DOCUMENTS 1000
#define ROUTES_MAX_HISTORY 64

static const char *routes_mode_name(kb_mode mode)
{
    return mode == KB_MODE_BM25 ? "bm25" : mode == KB_MODE_VECTOR ? "vector" : "hybrid";
}

static int routes_search_opts(struct srv *s, const cJSON *body, struct srv_reply *out,
                              const char **query, kb_search_options *o)
{
    int docs = 0;
    const cJSON *ma = cJSON_GetObjectItemCaseSensitive(body, "modified_after");
    /* Checked as a double before the conversion: out of int64_t's range it is undefined. */
    if (ma && !(cJSON_IsNumber(ma) && ma->valuedouble >= 0 &&
                ma->valuedouble <= (double)KB_TIME_MAX))
        return srv_error(out, 400, "invalid_request", "'modified_after' must be Unix seconds "
                         "from 0 to %lld (2262-04-11)", (long long)KB_TIME_MAX);
    o->modified_after = ma ? (int64_t)ma->valuedouble : 0;
    if (srv_get_string(out, body, "query", 1, SRV_MAX_QUERY_BYTES, query) ||
        srv_get_size(out, body, "k", 1, s->cfg->max_k, &o->k) ||
        srv_get_mode(out, body, &o->mode) || srv_get_bool(out, body, "documents", &docs) ||
        srv_get_string(out, body, "path", 0, SRV_MAX_ID_BYTES, &o->path_glob) ||
        srv_get_string(out, body, "format", 0, SRV_MAX_NAME_BYTES, &o->format))
        return -1;
    o->group_by_document = docs;
    return 0;
}

int srv_route_search(struct srv *s, const cJSON *body, struct srv_reply *out)
{
    kb_search_options o = KB_SEARCH_OPTIONS_INIT;
    const char *query = NULL;
    int status;
    if (routes_search_opts(s, body, out, &query, &o))
        return -1;
    kb *kb = srv_pool_borrow(s, out);
    if (!kb)
        return -1;
    kb_results *res = NULL;
    status = kb_search(kb, query, &o, &res);
    if (status) {
        srv_fail(s, out, status, kb_errmsg(kb));
        srv_pool_put(s, kb);
        return -1;
    }
    srv_pool_put(s, kb);
    cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "results");
    cJSON_AddStringToObject(doc, "mode", routes_mode_name(kb_results_mode(res)));
    for (size_t i = 0; i < kb_results_count(res); i++)
        cJSON_AddItemToArray(arr, cli_json_result(kb_results_get(res, i), i + 1));
    kb_results_free(res);
    return srv_json(out, 200, doc);
}

static int routes_history(struct srv_reply *out, const cJSON *body, kb_message **history,
                          size_t *n)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(body, "history"), *m;
    if (!h || cJSON_IsNull(h))
        return 0;
    if (!cJSON_IsArray(h))
        return srv_error(out, 400, "invalid_request", "'history' must be an array of messages");
    size_t count = (size_t)cJSON_GetArraySize(h);
    if (count > ROUTES_MAX_HISTORY)
        return srv_error(out, 400, "limit_exceeded", "'history' holds more than %d messages",
                         ROUTES_MAX_HISTORY);
    if (count && !(*history = calloc(count, sizeof **history)))
        return srv_error(out, 500, "internal", "out of memory");
    cJSON_ArrayForEach(m, h) {
        kb_message *msg = &(*history)[(*n)++];
        if (!cJSON_IsObject(m))
            return srv_error(out, 400, "invalid_request", "'history' entries are {role, content}");
        if (srv_get_string(out, m, "role", 1, SRV_MAX_NAME_BYTES, &msg->role) ||
            srv_get_string(out, m, "content", 1, 0, &msg->content))
            return -1;
        if (strcmp(msg->role, "user") && strcmp(msg->role, "assistant"))
            return srv_error(out, 400, "invalid_request", "'role' in 'history' must be user or "
                             "assistant");
    }
    return 0;
}

/* A template over HTTP is a name, never a path (kb ask takes a path with a slash): letters,
 * digits, '-' and '_', so a client can make the server read no file but NAME.prompt in its
 * prompts folder. */
static int routes_template_name_ok(const char *name)
{
    return *name && !name[strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789-_")];
}

int srv_ask_options(struct srv *s, struct srv_reply *out, const cJSON *body,
                    const char **question, kb_ask_options *opts, kb_message **history)
{
    size_t max_tokens = 0, window = 0;
    *history = NULL;
    if (srv_get_string(out, body, "question", 1, SRV_MAX_QUERY_BYTES, question) ||
        srv_get_size(out, body, "k", 1, s->cfg->max_k, &opts->k) ||
        srv_get_mode(out, body, &opts->mode) ||
        srv_get_string(out, body, "template", 0, SRV_MAX_TEMPLATE_BYTES, &opts->template_name) ||
        srv_get_size(out, body, "max_tokens", 1, SRV_MAX_TOKENS, &max_tokens) ||
        srv_get_size(out, body, "context_window", 2, SRV_MAX_CONTEXT_WINDOW, &window) ||
        routes_history(out, body, history, &opts->n_history))
        return -1;
    if (opts->template_name && !routes_template_name_ok(opts->template_name))
        return srv_error(out, 400, "invalid_request", "'template' must be a template name: "
                         "1 to %d letters, digits, '-' or '_'", SRV_MAX_TEMPLATE_BYTES);
    if (window && max_tokens && max_tokens >= window)
        return srv_error(out, 400, "limit_exceeded", "'context_window' (%zu) must be larger "
                         "than 'max_tokens' (%zu)", window, max_tokens);
    opts->max_tokens = (unsigned)max_tokens;
    opts->context_window = (unsigned)window;
    opts->history = *history;
    return 0;
}

const char *srv_ask_failure(struct srv *s, const kb_ask_options *opts, int status,
                            const char *message, unsigned *http, const char **code)
{
    if (status == KB_EFORMAT)
        status = KB_ECONFIG; /* the template file */
    /* kb names the two numbers: "max_answer_tokens (1024) must be below context_window
     * (2)"; a bad config file would name the file, a private path */
    if (status == KB_ECONFIG && opts->context_window && message &&
        strstr(message, "context_window") && !srv_names_private_path(s, message)) {
        *http = 400;
        *code = "limit_exceeded";
        return message;
    }
    *code = srv_code(status, http);
    return srv_public_message(s, status, message);
}

int srv_route_prompt(struct srv *s, const cJSON *body, struct srv_reply *out)
{
    kb_ask_options opts = KB_ASK_OPTIONS_INIT;
    kb_message *history = NULL;
    kb_prompt_result *p = NULL;
    const char *question = NULL;
    int status, rc = -1;
    if (srv_ask_options(s, out, body, &question, &opts, &history))
        goto done;
    kb *kb = srv_pool_borrow(s, out);
    if (!kb)
        goto done;
    status = kb_prompt(kb, question, &opts, &p);
    if (status) {
        unsigned http;
        const char *code, *msg = srv_ask_failure(s, &opts, status, kb_errmsg(kb), &http, &code);
        srv_error(out, http, code, "%s", msg);
    }
    srv_pool_put(s, kb);
    if (status)
        goto done;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "messages", cli_json_messages(p));
    cJSON_AddItemToObject(doc, "sources", cli_json_sources(p->sources, p->n_sources, 1));
    cJSON_AddItemToObject(doc, "dropped", cli_json_sources(p->dropped, p->n_dropped, 0));
    cJSON_AddStringToObject(doc, "template", p->template_name);
    cJSON_AddNumberToObject(doc, "prompt_tokens", (double)p->prompt_tokens);
    cJSON_AddNumberToObject(doc, "budget_tokens", (double)p->budget_tokens);
    rc = srv_json(out, 200, doc);
done:
    kb_prompt_free(p);
    free(history);
    return rc;
}

int srv_route_status(struct srv *s, struct srv_reply *out)
{
    kb_status_info info;
    int status;
    kb *kb = srv_pool_borrow(s, out);
    if (!kb)
        return -1;
    status = kb_stat(kb, &info);
    if (status)
        srv_fail(s, out, status, kb_errmsg(kb));
    srv_pool_put(s, kb);
    if (status)
        return -1;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "version", kb_version());
    cJSON_AddNumberToObject(doc, "documents", (double)info.n_documents);
    cJSON_AddNumberToObject(doc, "chunks", (double)info.n_chunks);
    cJSON_AddNumberToObject(doc, "text_bytes", (double)info.text_bytes);
    cJSON_AddNumberToObject(doc, "schema_version", info.schema_version);
    if (*info.model) cJSON_AddStringToObject(doc, "model", info.model);
    if (info.dim) cJSON_AddNumberToObject(doc, "dim", info.dim);
    cJSON_AddNumberToObject(doc, "vectors", (double)info.n_vectors);
    if (*info.index) cJSON_AddStringToObject(doc, "index", info.index);
    cJSON_AddNumberToObject(doc, "handles", (double)s->n_readers);
    return srv_json(out, 200, doc);
}

/* ---- /v1/documents ---- */

static int routes_document(struct srv_reply *out, const cJSON *item, kb_document *d)
{
    d->format = "text";
    if (!cJSON_IsObject(item))
        return srv_error(out, 400, "invalid_request", "'documents' entries must be objects");
    if (srv_get_string(out, item, "id", 1, SRV_MAX_ID_BYTES, &d->id) ||
        srv_get_string(out, item, "title", 0, SRV_MAX_TITLE_BYTES, &d->title) ||
        srv_get_string(out, item, "text", 1, 0, &d->text) ||
        srv_get_string(out, item, "format", 0, SRV_MAX_NAME_BYTES, &d->format))
        return -1;
    if (strcmp(d->format, "text") && strcmp(d->format, "markdown"))
        return srv_error(out, 400, "invalid_request", "'format' must be text or markdown");
    d->text_len = strlen(d->text);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(item, "metadata");
    if (meta && !cJSON_IsNull(meta)) {
        if (!cJSON_IsObject(meta))
            return srv_error(out, 400, "invalid_request", "'metadata' must be an object");
        if (!(d->metadata = cJSON_PrintUnformatted(meta)))
            return srv_error(out, 500, "internal", "out of memory");
        if (strlen(d->metadata) > SRV_MAX_METADATA_BYTES)
            return srv_error(out, 400, "limit_exceeded", "'metadata' is over %d bytes as JSON",
                             SRV_MAX_METADATA_BYTES);
    }
    return 0;
}

static int routes_cmp_ids(const void *a, const void *b)
{
    const kb_document *x = *(const kb_document *const *)a, *y = *(const kb_document *const *)b;
    int c = strcmp(x->id, y->id);
    return c ? c : x < y ? -1 : x > y;
}

/* Two documents of one request with the same id would replace each other in one transaction:
 * a 400 naming the id (and the two positions). */
static int routes_unique_ids(struct srv_reply *out, const kb_document *docs, size_t n)
{
    const kb_document **sorted = malloc(n * sizeof *sorted);
    if (!sorted)
        return srv_error(out, 500, "internal", "out of memory");
    for (size_t i = 0; i < n; i++)
        sorted[i] = &docs[i];
    qsort(sorted, n, sizeof *sorted, routes_cmp_ids);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (!strcmp(sorted[i - 1]->id, sorted[i]->id))
            rc = srv_error(out, 400, "invalid_request", "'documents' %zu and %zu have the same "
                           "'id' '%.200s'; an id names one document", (size_t)(sorted[i - 1] - docs),
                           (size_t)(sorted[i] - docs), sorted[i]->id);
    free(sorted);
    return rc;
}

int srv_route_add_documents(struct srv *s, const cJSON *body, struct srv_reply *out)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(body, "documents"), *item;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0)
        return srv_error(out, 400, "invalid_request", "'documents' must be a non-empty array");
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    if (n > ROUTES_MAX_DOCUMENTS)
        return srv_error(out, 400, "limit_exceeded", "more than %d documents in one request",
                         ROUTES_MAX_DOCUMENTS);
    kb_document *docs = calloc(n, sizeof *docs);
    if (!docs)
        return srv_error(out, 500, "internal", "out of memory");
    int rc = -1, status;
    cJSON_ArrayForEach(item, arr)
        if (routes_document(out, item, &docs[i++]))
            goto done;
    if (routes_unique_ids(out, docs, n))
        goto done;
    kb_ingest_options opts = KB_INGEST_OPTIONS_INIT;
    kb_ingest_stats stats = { 0 };
    opts.lock_wait_ms = SRV_LOCK_WAIT_MS;
    kb *kb = srv_pool_get_writer(s, &status);
    if (!kb) {
        rc = srv_fail(s, out, status, status == KB_ELOCKED ? "another write is in progress" : NULL);
        goto done;
    }
    status = kb_add_documents(kb, docs, n, &opts, &stats);
    if (status)
        srv_fail(s, out, status, kb_errmsg(kb));
    srv_pool_put_writer(s);
    if (status)
        goto done;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "added", (double)stats.added);
    cJSON_AddNumberToObject(doc, "updated", (double)stats.updated);
    cJSON_AddNumberToObject(doc, "unchanged", (double)stats.unchanged);
    cJSON_AddNumberToObject(doc, "chunks", (double)stats.chunks);
    cJSON_AddNumberToObject(doc, "embedded", (double)stats.embedded);
    rc = srv_json(out, 200, doc);
done:
    for (size_t j = 0; j < n; j++)
        cJSON_free((char *)docs[j].metadata);
    free(docs);
    return rc;
}

int srv_route_delete_document(struct srv *s, const char *id, struct srv_reply *out)
{
    int status;
    size_t n_deleted = 0;
    size_t len = strlen(id);
    if (!len || !srv_utf8_valid(id, len))
        return srv_error(out, 400, "invalid_request", "the document id is empty or not UTF-8");
    if (len > SRV_MAX_ID_BYTES)
        return srv_error(out, 400, "limit_exceeded", "the document id is over %d bytes",
                         SRV_MAX_ID_BYTES);
    kb *kb = srv_pool_get_writer(s, &status);
    if (!kb)
        return srv_fail(s, out, status,
                        status == KB_ELOCKED ? "another write is in progress" : NULL);
    status = kb_delete_documents(kb, &id, 1, SRV_LOCK_WAIT_MS, &n_deleted);
    if (status)
        srv_fail(s, out, status, kb_errmsg(kb));
    srv_pool_put_writer(s);
    if (status)
        return -1;
    if (!n_deleted)
        return srv_error(out, 404, "not_found", "no document '%.200s'", id);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "deleted", (double)n_deleted);
    return srv_json(out, 200, doc);
}
