/* embeddings.c — POST /v1/embeddings: OpenAI's request and response shape over the KB's own
 * encoder model, opened once and shared (one caller at a time). */
#include "server/server_int.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* The inputs as an array of borrowed strings: "input" is a string or an array of them. */
static int embed_inputs(struct srv *s, struct srv_reply *out, const cJSON *body,
                        const char ***texts, size_t *n)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(body, "input"), *item;
    if (cJSON_IsString(in)) {
        *n = 1;
    } else if (cJSON_IsArray(in) && cJSON_GetArraySize(in) > 0) {
        *n = (size_t)cJSON_GetArraySize(in);
    } else {
        return srv_error(out, 400, "invalid_request",
                         "'input' must be a string or a non-empty array of strings");
    }
    if (*n > s->cfg->max_k)
        return srv_error(out, 400, "limit_exceeded", "'input' holds more than %zu texts",
                         s->cfg->max_k);
    if (!(*texts = calloc(*n, sizeof **texts)))
        return srv_error(out, 500, "internal", "out of memory");
    size_t i = 0;
    if (cJSON_IsString(in))
        (*texts)[i++] = in->valuestring;
    else
        cJSON_ArrayForEach(item, in) {
            if (!cJSON_IsString(item))
                return srv_error(out, 400, "invalid_request",
                                 "'input' entries must be strings (token arrays are not taken)");
            (*texts)[i++] = item->valuestring;
        }
    for (i = 0; i < *n; i++)
        if (!srv_utf8_valid((*texts)[i], strlen((*texts)[i])))
            return srv_error(out, 400, "invalid_request", "'input' %zu is not valid UTF-8", i);
    return 0;
}

/* Model tokens of one input as the encoder sees it (truncated to its maximum). */
static size_t embed_count_tokens(kb_model *model, const char *text, int max_tokens)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (kb_model_tokenize(model, text, 0, &ids, &n))
        n = 0;
    kb_free(ids);
    return max_tokens > 0 && n > (size_t)max_tokens ? (size_t)max_tokens : n;
}

static cJSON *embed_response(const char *name, const float *vecs, size_t n, int dim,
                             size_t tokens)
{
    cJSON *doc = cJSON_CreateObject(), *data = cJSON_CreateArray();
    cJSON_AddStringToObject(doc, "object", "list");
    cJSON_AddItemToObject(doc, "data", data);
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject(), *v = cJSON_CreateArray();
        cJSON_AddStringToObject(e, "object", "embedding");
        cJSON_AddNumberToObject(e, "index", (double)i);
        for (int j = 0; j < dim; j++)
            cJSON_AddItemToArray(v, cJSON_CreateNumber(vecs[i * (size_t)dim + (size_t)j]));
        cJSON_AddItemToObject(e, "embedding", v);
        cJSON_AddItemToArray(data, e);
    }
    cJSON_AddStringToObject(doc, "model", name);
    cJSON *usage = cJSON_AddObjectToObject(doc, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", (double)tokens);
    return doc;
}

/* Embeds under the model lock: vectors and the token count. */
static int embed_run(struct srv *s, struct srv_reply *out, const char **texts, size_t n,
                     unsigned flags, cJSON **doc)
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
    kb_model_info info;
    float *vecs = NULL;
    size_t tokens = 0;
    status = kb_model_get_info(model, &info);
    if (!status && !(vecs = malloc(n * (size_t)info.dim * sizeof *vecs)))
        status = KB_ENOMEM;
    if (!status)
        status = kb_model_embed(model, texts, n, flags, vecs);
    if (status)
        srv_fail(s, out, status, kb_model_errmsg(model));
    for (size_t i = 0; !status && i < n; i++)
        tokens += embed_count_tokens(model, texts[i], info.max_tokens);
    srv_model_put(s);
    if (!status)
        *doc = embed_response(s->model_name, vecs, n, info.dim, tokens);
    free(vecs);
    return status ? -1 : 0;
}

int srv_route_embeddings(struct srv *s, const cJSON *body, struct srv_reply *out)
{
    const char **texts = NULL, *model = NULL, *input_type = NULL;
    size_t n = 0;
    unsigned flags = 0;
    cJSON *doc = NULL;
    int rc = -1;
    if (embed_inputs(s, out, body, &texts, &n) ||
        srv_get_string(out, body, "model", 0, SRV_MAX_NAME_BYTES, &model) ||
        srv_get_string(out, body, "input_type", 0, SRV_MAX_NAME_BYTES, &input_type))
        goto done;
    if (model && *model && strcmp(model, s->model_name)) {
        /* a model given as a folder is a path of this machine: not in an error */
        if (srv_names_private_path(s, s->model_name) || s->model_name[0] == '/')
            rc = srv_error(out, 404, "model_not_found", "'model' must be left out or be the "
                           "'model' this server's embeddings carry");
        else
            rc = srv_error(out, 404, "model_not_found", "'model' must be left out or be '%s', "
                           "the only model this server embeds with", s->model_name);
        goto done;
    }
    /* kb's extension: "input_type": "query" uses the model's query prefix (retrieval queries);
     * the default embeds passages, like `kb embed`. */
    if (input_type && !strcmp(input_type, "query"))
        flags |= KB_EMBED_QUERY;
    else if (input_type && strcmp(input_type, "passage")) {
        rc = srv_error(out, 400, "invalid_request", "'input_type' must be query or passage");
        goto done;
    }
    if (!embed_run(s, out, texts, n, flags, &doc))
        rc = srv_json(out, 200, doc);
done:
    free(texts);
    return rc;
}
