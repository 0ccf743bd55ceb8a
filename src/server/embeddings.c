/* embeddings.c — POST /v1/embeddings and GET /v1/models: OpenAI's request and response shapes
 * over the KB's own encoder model, opened once and shared (one caller at a time), so that
 * OpenAI's clients work against kb serve as they ship (docs/SERVE.md, "Embeddings"). */
#include "server/server_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EMBED_MAX_INPUTS 2048     /* OpenAI's limit on the inputs of one request */
#define EMBED_MAX_TOKENS 300000   /* OpenAI's limit on the tokens of one request, all inputs */
#define EMBED_MAX_DIMENSIONS 65536

/* One request, checked. */
struct embed_req {
    size_t n;                     /* inputs */
    const char **texts;           /* n texts (borrowed from the body), or NULL for token ids */
    int32_t **ids;                /* n token-id arrays (each malloc'ed), or NULL for texts */
    size_t *n_ids;
    const char *model;            /* as the client named it; NULL when left out */
    unsigned flags;               /* KB_EMBED_QUERY */
    int base64;                   /* encoding_format "base64" */
    size_t dimensions;            /* 0: the model's own */
};

static void embed_req_free(struct embed_req *r)
{
    for (size_t i = 0; r->ids && i < r->n; i++)
        free(r->ids[i]);
    free(r->ids);
    free(r->n_ids);
    free(r->texts);
}

void srv_model_id(const char *name, char *id, size_t id_size)
{
    struct stat st;
    size_t len = strlen(name);
    int folder = strchr("/.~", name[0]) || !strchr(name, '/') ||
                 (stat(name, &st) == 0 && S_ISDIR(st.st_mode));
    while (folder && len > 1 && name[len - 1] == '/')
        len--;
    const char *last = name + len;
    while (folder && last > name && last[-1] != '/')
        last--;
    snprintf(id, id_size, "%.*s", (int)(len - (size_t)(last - name)), last);
}

/* ---- the request ---- */

static const char embed_shapes[] = "'input' must be a string, an array of strings, an array "
                                   "of token ids or an array of token-id arrays";

/* One token-id array into a malloc'ed copy: integers from 0 (kb checks the vocabulary). */
static int embed_token_array(struct srv_reply *out, const cJSON *arr, size_t index,
                             int32_t **ids, size_t *n_ids)
{
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    const cJSON *v;
    if (!(*ids = malloc((n ? n : 1) * sizeof **ids)))
        return srv_error(out, 500, "internal", "out of memory");
    cJSON_ArrayForEach(v, arr) {
        /* the range first: converting 1e300 to an integer type is undefined */
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= INT32_MAX) ||
            v->valuedouble != (double)(int32_t)v->valuedouble)
            return srv_error(out, 400, "invalid_request", "'input' %zu: token ids must be "
                             "integers from 0, the model's own ids (kb tokenize --ids "
                             "--no-special)", index);
        (*ids)[i++] = (int32_t)v->valuedouble;
    }
    *n_ids = n;
    return 0;
}

/* n token-id arrays: `in` itself (one tokenized input) or its entries. */
static int embed_token_inputs(struct srv_reply *out, const cJSON *in, int nested,
                              struct embed_req *r)
{
    const cJSON *item;
    size_t i = 0;
    if (!(r->ids = calloc(r->n, sizeof *r->ids)) || !(r->n_ids = calloc(r->n, sizeof *r->n_ids)))
        return srv_error(out, 500, "internal", "out of memory");
    if (!nested)
        return embed_token_array(out, in, 0, &r->ids[0], &r->n_ids[0]);
    cJSON_ArrayForEach(item, in) {
        if (!cJSON_IsArray(item))
            return srv_error(out, 400, "invalid_request", "%s (entry %zu is not)",
                             embed_shapes, i);
        if (embed_token_array(out, item, i, &r->ids[i], &r->n_ids[i]))
            return -1;
        i++;
    }
    return 0;
}

static int embed_text_inputs(struct srv_reply *out, const cJSON *in, struct embed_req *r)
{
    const cJSON *item;
    size_t i = 0;
    if (!(r->texts = calloc(r->n, sizeof *r->texts)))
        return srv_error(out, 500, "internal", "out of memory");
    if (cJSON_IsString(in))
        r->texts[i++] = in->valuestring;
    else
        cJSON_ArrayForEach(item, in) {
            if (!cJSON_IsString(item))
                return srv_error(out, 400, "invalid_request", "%s (entry %zu is not a string "
                                 "as the first is)", embed_shapes, i);
            r->texts[i++] = item->valuestring;
        }
    for (i = 0; i < r->n; i++)
        if (!srv_utf8_valid(r->texts[i], strlen(r->texts[i])))
            return srv_error(out, 400, "invalid_request", "'input' %zu is not valid UTF-8", i);
    return 0;
}

/* "input" in any of OpenAI's four shapes; the first entry of an array decides which. */
static int embed_inputs(struct srv_reply *out, const cJSON *body, struct embed_req *r)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(body, "input");
    if (cJSON_IsString(in)) {
        r->n = 1;
        return embed_text_inputs(out, in, r);
    }
    if (!cJSON_IsArray(in) || !in->child)
        return srv_error(out, 400, "invalid_request", "%s, and not empty", embed_shapes);
    if (cJSON_IsNumber(in->child)) {
        r->n = 1;
        return embed_token_inputs(out, in, 0, r);
    }
    r->n = (size_t)cJSON_GetArraySize(in);
    if (r->n > EMBED_MAX_INPUTS)
        return srv_error(out, 400, "limit_exceeded", "'input' holds %zu inputs; at most %d "
                         "in one request", r->n, EMBED_MAX_INPUTS);
    if (cJSON_IsString(in->child))
        return embed_text_inputs(out, in, r);
    if (cJSON_IsArray(in->child))
        return embed_token_inputs(out, in, 1, r);
    return srv_error(out, 400, "invalid_request", "%s", embed_shapes);
}

static int embed_fields(struct srv_reply *out, const cJSON *body, struct embed_req *r)
{
    const char *format = NULL, *input_type = NULL;
    if (srv_get_string(out, body, "model", 0, SRV_MAX_NAME_BYTES, &r->model) ||
        srv_get_string(out, body, "encoding_format", 0, SRV_MAX_NAME_BYTES, &format) ||
        srv_get_string(out, body, "input_type", 0, SRV_MAX_NAME_BYTES, &input_type) ||
        srv_get_size(out, body, "dimensions", 1, EMBED_MAX_DIMENSIONS, &r->dimensions))
        return -1;
    if (format && !strcmp(format, "base64"))
        r->base64 = 1;
    else if (format && strcmp(format, "float"))
        return srv_error(out, 400, "invalid_request", "'encoding_format' must be float or "
                         "base64");
    /* kb's extension, as other providers name it: "query" embeds with the model's query
     * prefix (retrieval queries); passages (or documents) are the default, like kb embed */
    if (input_type && !strcmp(input_type, "query"))
        r->flags |= KB_EMBED_QUERY;
    else if (input_type && strcmp(input_type, "passage") && strcmp(input_type, "document"))
        return srv_error(out, 400, "invalid_request", "'input_type' must be query, passage or "
                         "document");
    return 0;
}

/* 1 when `name` is the model's id or one of its --model-alias names. */
static int embed_model_named(const struct srv *s, const char *name)
{
    if (!strcmp(name, s->model_id))
        return 1;
    for (size_t i = 0; i < s->cfg->n_model_aliases; i++)
        if (!strcmp(name, s->cfg->model_aliases[i]))
            return 1;
    return 0;
}

/* ---- under the model ---- */

/* `dimensions` against the model: its own dimension always; fewer only for a model trained
 * for shorter vectors, from its kb_model_min_dim on. */
static int embed_check_dimensions(struct srv_reply *out, size_t want, int dim, int min_dim)
{
    if (!want || want == (size_t)dim)
        return 0;
    if (min_dim >= dim)
        return srv_error(out, 400, "limit_exceeded", "'dimensions' must be %d, this model's "
                         "dimension: it is not trained for shorter vectors (Matryoshka; see "
                         "matryoshka_min_dim in kb_model.json)", dim);
    if (want < (size_t)min_dim || want > (size_t)dim)
        return srv_error(out, 400, "limit_exceeded", "'dimensions' must be from %d to %d for "
                         "this model", min_dim, dim);
    return 0;
}

/* The model tokens of one text as the encoder sees it: prefix, [CLS] and [SEP] included,
 * before the cut to max_tokens. */
static int embed_text_tokens(kb_model *model, const char *prefix, const char *text, size_t *n)
{
    size_t n_prefix = strlen(prefix), n_text = strlen(text);
    char *joined = n_prefix ? malloc(n_prefix + n_text + 1) : NULL;
    int32_t *ids = NULL;
    if (n_prefix && !joined)
        return KB_ENOMEM;
    if (joined) {
        memcpy(joined, prefix, n_prefix);
        memcpy(joined + n_prefix, text, n_text + 1);
    }
    int rc = kb_model_tokenize(model, joined ? joined : text, 0, &ids, n);
    kb_free(ids);
    free(joined);
    return rc;
}

/* Counts every input's tokens before anything is embedded: their total is held to
 * EMBED_MAX_TOKENS (as sent, so a request's cost is known up front); *used is what the
 * encoder runs, each input cut to max_tokens (the usage reported). */
static int embed_count(struct srv *s, struct srv_reply *out, kb_model *model,
                       const kb_model_info *info, const struct embed_req *r, size_t *used)
{
    const char *prefix = r->flags & KB_EMBED_QUERY ? info->query_prefix : info->passage_prefix;
    size_t n_prefix = 0, total = 0, n = 0;
    int32_t *ids = NULL;
    int rc = 0;
    if (!r->texts && *prefix && !(rc = kb_model_tokenize(model, prefix, KB_TOKENIZE_NO_SPECIAL,
                                                         &ids, &n_prefix)))
        kb_free(ids);
    for (size_t i = 0; !rc && i < r->n; i++) {
        if (r->texts)
            rc = embed_text_tokens(model, prefix, r->texts[i], &n);
        else
            n = 2 + n_prefix + r->n_ids[i];
        total += n;
        *used += n < (size_t)info->max_tokens ? n : (size_t)info->max_tokens;
        if (!rc && total > EMBED_MAX_TOKENS)
            return srv_error(out, 400, "limit_exceeded", "'input' holds more than %d tokens "
                             "in all (the model's, before each input is cut to its %d)",
                             EMBED_MAX_TOKENS, info->max_tokens);
    }
    return rc ? srv_fail(s, out, rc, kb_model_errmsg(model)) : 0;
}

/* Runs the encoder; a token id outside the vocabulary is the client's mistake. */
static int embed_vectors(struct srv *s, struct srv_reply *out, kb_model *model,
                         const struct embed_req *r, float *vecs)
{
    int status = r->texts ? kb_model_embed(model, r->texts, r->n, r->flags, vecs)
                          : kb_model_embed_ids(model, (const int32_t *const *)r->ids, r->n_ids,
                                               r->n, r->flags, vecs);
    if (!status)
        return 0;
    if (status == KB_EINVALID && r->ids)
        return srv_error(out, 400, "invalid_request", "'input': %s",
                         srv_public_message(s, status, kb_model_errmsg(model)));
    return srv_fail(s, out, status, kb_model_errmsg(model));
}

/* The vectors of the request under the model lock: *vecs (n x *dim, malloc'ed), the tokens
 * run and whether the model's vectors are unit length. */
static int embed_run(struct srv *s, struct srv_reply *out, const struct embed_req *r,
                     float **vecs, int *dim, size_t *tokens, int *normalized)
{
    int status;
    kb_model *model = srv_model_get(s, &status);
    if (!model && status == KB_ENOTFOUND && !*s->model_name)
        return srv_error(out, 400, "no_model", "this knowledge base has no encoder model");
    if (!model) { /* a folder that went away or broke: the server's problem, not the request's */
        srv_log("the encoder model %s cannot be opened: %s", s->model_name, kb_strerror(status));
        return srv_error(out, 500, "internal", "the knowledge base's encoder model cannot be "
                         "opened (the server's log has the details)");
    }
    kb_model_info info = { 0 };
    int rc = -1;
    if ((status = kb_model_get_info(model, &info)))
        srv_fail(s, out, status, kb_model_errmsg(model));
    else if (!embed_check_dimensions(out, r->dimensions, info.dim, kb_model_min_dim(model)) &&
             !embed_count(s, out, model, &info, r, tokens)) {
        if (!(*vecs = malloc(r->n * (size_t)info.dim * sizeof **vecs)))
            srv_error(out, 500, "internal", "out of memory");
        else
            rc = embed_vectors(s, out, model, r, *vecs);
    }
    srv_model_put(s);
    *dim = info.dim;
    *normalized = info.normalize;
    return rc;
}

/* ---- the response ---- */

/* Keeps the first `keep` of each row's `dim` values, rows packed (in place), renormalised when
 * the model's vectors are unit length (Matryoshka truncation). */
static void embed_cut(float *vecs, size_t n, size_t dim, size_t keep, int normalized)
{
    for (size_t i = 0; keep < dim && i < n; i++) {
        float *row = vecs + i * keep;
        memmove(row, vecs + i * dim, keep * sizeof *row);
        double sum = 0;
        for (size_t j = 0; j < keep; j++)
            sum += (double)row[j] * row[j];
        if (!normalized || sum <= 0)
            continue;
        double norm = sqrt(sum);
        for (size_t j = 0; j < keep; j++)
            row[j] = (float)(row[j] / norm);
    }
}

/* OpenAI's encoding_format "base64": the float32 values, little-endian, in base64 (RFC 4648
 * section 4, padded). */
static cJSON *embed_base64(const float *v, size_t n)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789+/";
    size_t n_bytes = n * 4, j = 0;
    unsigned char *bytes = malloc(n_bytes + 1);
    char *text = malloc((n_bytes + 2) / 3 * 4 + 1);
    cJSON *item = NULL;
    if (bytes && text) {
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &v[i], sizeof u);
            for (int b = 0; b < 4; b++)
                bytes[i * 4 + (size_t)b] = (unsigned char)(u >> (8 * b));
        }
        for (size_t i = 0; i < n_bytes; i += 3) {
            uint32_t w = (uint32_t)bytes[i] << 16 |
                         (i + 1 < n_bytes ? (uint32_t)bytes[i + 1] << 8 : 0) |
                         (i + 2 < n_bytes ? bytes[i + 2] : 0);
            text[j++] = alphabet[w >> 18 & 63];
            text[j++] = alphabet[w >> 12 & 63];
            text[j++] = i + 1 < n_bytes ? alphabet[w >> 6 & 63] : '=';
            text[j++] = i + 2 < n_bytes ? alphabet[w & 63] : '=';
        }
        text[j] = '\0';
        item = cJSON_CreateString(text);
    }
    free(bytes);
    free(text);
    return item;
}

static cJSON *embed_response(const char *model, const float *vecs, size_t n, size_t dim,
                             int base64, size_t tokens)
{
    cJSON *doc = cJSON_CreateObject(), *data = cJSON_CreateArray();
    cJSON_AddStringToObject(doc, "object", "list");
    cJSON_AddItemToObject(doc, "data", data);
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "object", "embedding");
        cJSON_AddNumberToObject(e, "index", (double)i);
        /* floats as kb embed --json prints them: every float32 value exactly */
        cJSON_AddItemToObject(e, "embedding", base64 ? embed_base64(vecs + i * dim, dim)
                                                     : cJSON_CreateFloatArray(vecs + i * dim,
                                                                              (int)dim));
        cJSON_AddItemToArray(data, e);
    }
    cJSON_AddStringToObject(doc, "model", model);
    cJSON *usage = cJSON_AddObjectToObject(doc, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", (double)tokens);
    return doc;
}

int srv_route_embeddings(struct srv *s, const cJSON *body, struct srv_reply *out)
{
    struct embed_req r;
    float *vecs = NULL;
    size_t tokens = 0;
    int dim = 0, normalized = 0, rc = -1;
    memset(&r, 0, sizeof r);
    if (embed_inputs(out, body, &r) || embed_fields(out, body, &r))
        goto done;
    /* the client's own string is not repeated: it may be a path of this machine */
    if (r.model && *r.model && *s->model_name && !embed_model_named(s, r.model)) {
        rc = srv_error(out, 404, "model_not_found", "'model' must be left out or name the "
                       "model this server embeds with: '%s' or an alias (GET /v1/models lists "
                       "them)", s->model_id);
        goto done;
    }
    if (embed_run(s, out, &r, &vecs, &dim, &tokens, &normalized))
        goto done;
    size_t keep = r.dimensions ? r.dimensions : (size_t)dim;
    embed_cut(vecs, r.n, (size_t)dim, keep, normalized);
    rc = srv_json(out, 200, embed_response(r.model && *r.model ? r.model : s->model_id, vecs,
                                           r.n, keep, r.base64, tokens));
done:
    free(vecs);
    embed_req_free(&r);
    return rc;
}

/* ---- GET /v1/models ---- */

static cJSON *models_entry(cJSON *data, const char *id, const char *type)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "kb");
    cJSON_AddStringToObject(m, "type", type);
    cJSON_AddItemToArray(data, m);
    return m;
}

/* The encoder model under its id and each alias, with its dimensions when it opens. */
static void models_embedding(struct srv *s, cJSON *data)
{
    int status, dim = 0, min_dim = 0;
    kb_model_info info;
    kb_model *model = srv_model_get(s, &status);
    if (model) {
        if (!kb_model_get_info(model, &info))
            dim = info.dim, min_dim = kb_model_min_dim(model);
        srv_model_put(s);
    }
    for (size_t i = 0; i <= s->cfg->n_model_aliases; i++) {
        cJSON *m = models_entry(data, i ? s->cfg->model_aliases[i - 1] : s->model_id,
                                "embedding");
        if (i)
            cJSON_AddStringToObject(m, "alias_of", s->model_id);
        if (dim) {
            cJSON_AddNumberToObject(m, "dimensions", dim);
            cJSON_AddNumberToObject(m, "min_dimensions", min_dim);
        }
    }
}

/* The LLM /v1/ask answers with, as kb_prompt resolves it from the config file and the
 * environment: no call of kb.h gives the resolved configuration alone, and kb_prompt
 * contacts no backend (it costs one keyword search for one passage). A "local" model is a
 * file of this machine: its last component alone. */
static int models_chat(struct srv *s, struct srv_reply *out, cJSON *data)
{
    kb_ask_options opts = KB_ASK_OPTIONS_INIT;
    kb_prompt_result *p = NULL;
    char id[256];
    opts.k = 1;
    opts.mode = KB_MODE_BM25;
    kb *kb = srv_pool_borrow(s, out);
    if (!kb)
        return -1;
    int status = kb_prompt(kb, "models", &opts, &p);
    if (status) /* a broken configuration: /v1/ask tells its clients; this lists no LLM */
        srv_log("GET /v1/models: no chat model listed: %s", kb_errmsg(kb));
    srv_pool_put(s, kb);
    if (!status && p->backend && p->model && *p->model) {
        if (!strcmp(p->backend, "local") || strchr("/.~", p->model[0]))
            srv_model_id(p->model, id, sizeof id);
        else
            snprintf(id, sizeof id, "%s", p->model);
        cJSON_AddStringToObject(models_entry(data, id, "chat"), "backend", p->backend);
    }
    kb_prompt_free(p);
    return 0;
}

int srv_route_models(struct srv *s, struct srv_reply *out)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(doc, "data");
    if (*s->model_name)
        models_embedding(s, data);
    if (models_chat(s, out, data)) {
        cJSON_Delete(doc);
        return -1;
    }
    return srv_json(out, 200, doc);
}
