/* encoder.c — opening a BERT model folder (config, settings, safetensors weights) and batching embeddings. */
#include "encoder/encoder_int.h"
#include "encoder/gemm_small.h"
#include "util/pool.h"
#include "util/shared.h"
#include "util/threads.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "encoder/wordpiece.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/path.h"

#define ENC_MAX_JSON_BYTES ((size_t)16 << 20)

/* Reads and parses dir/name. *out is NULL (and 0 returned) when the file is absent and
 * optional; absent and required is KB_ENOTFOUND; not a regular file (a FIFO would block the
 * read forever) is KB_EFORMAT. */
static int enc_read_json(cJSON **out, const char *dir, const char *name, int required,
                         struct kb_err *err)
{
    *out = NULL;
    char *path = kb_path_join(dir, name);
    struct kb_buf text = KB_BUF_INIT;
    struct stat st;
    int fd = -1, rc;
    if (!path)
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", name);
    text.max = ENC_MAX_JSON_BYTES;
    if ((rc = kb_file_open_regular(path, &fd, &st, err)) == KB_ENOTFOUND)
        rc = required ? kb_err_set(err, KB_ENOTFOUND, "%s: not found in %s", name, dir) : 0;
    else if (rc)
        kb_err_prefix(err, path);
    else if ((uint64_t)st.st_size > ENC_MAX_JSON_BYTES)
        rc = kb_err_set(err, KB_EFORMAT, "%s: larger than 16 MB", name);
    else if ((rc = kb_file_read_fd(&text, fd, err)))
        kb_err_prefix(err, name);
    else if (!(*out = cJSON_ParseWithLength(text.data ? text.data : "", text.len)))
        rc = kb_err_set(err, KB_EFORMAT, "%s: not well-formed JSON", name);
    if (fd >= 0)
        close(fd);
    kb_buf_free(&text);
    free(path);
    return rc;
}

static int cfg_int(int *out, const cJSON *root, const char *key, double min, double max,
                   struct kb_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v)
        return kb_err_set(err, KB_EFORMAT, "config.json: field '%s' is missing", key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long long)v->valuedouble ||
        v->valuedouble < min || v->valuedouble > max)
        return kb_err_set(err, KB_EFORMAT, "config.json: field '%s' must be an integer from "
                          "%.0f to %.0f", key, min, max);
    *out = (int)v->valuedouble;
    return 0;
}

/* A string field that must equal `want` when present (or always, when required). */
static int cfg_str_is(const cJSON *root, const char *key, const char *want, int required,
                      const char *why, struct kb_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v && !required)
        return 0;
    if (!v)
        return kb_err_set(err, KB_EFORMAT, "config.json: field '%s' is missing", key);
    if (!cJSON_IsString(v) || strcmp(v->valuestring, want) != 0)
        return kb_err_set(err, KB_EFORMAT, "config.json: %s '%.64s' is not supported (%s)", key,
                          cJSON_IsString(v) ? v->valuestring : "?", why);
    return 0;
}

static int enc_parse_config(struct kb_encoder_info *info, const cJSON *cfg, struct kb_err *err)
{
    int rc;
    if ((rc = cfg_int(&info->hidden_dim, cfg, "hidden_size", 1, 16384, err)) ||
        (rc = cfg_int(&info->n_layers, cfg, "num_hidden_layers", 1, 256, err)) ||
        (rc = cfg_int(&info->n_heads, cfg, "num_attention_heads", 1, 1024, err)) ||
        (rc = cfg_int(&info->intermediate_dim, cfg, "intermediate_size", 1, 131072, err)) ||
        (rc = cfg_int(&info->max_positions, cfg, "max_position_embeddings", 1, 65536, err)) ||
        (rc = cfg_int(&info->type_vocab_size, cfg, "type_vocab_size", 1, 1024, err)) ||
        (rc = cfg_int(&info->vocab_size, cfg, "vocab_size", 1, 4000000, err)))
        return rc;
    info->min_dim = info->hidden_dim;
    if (info->hidden_dim % info->n_heads != 0)
        return kb_err_set(err, KB_EFORMAT, "config.json: hidden_size %d is not divisible by "
                          "num_attention_heads %d", info->hidden_dim, info->n_heads);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(cfg, "layer_norm_eps");
    if (!eps)
        return kb_err_set(err, KB_EFORMAT, "config.json: field 'layer_norm_eps' is missing");
    if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1))
        return kb_err_set(err, KB_EFORMAT, "config.json: field 'layer_norm_eps' must be a "
                          "number between 0 and 1");
    info->layer_norm_eps = (float)eps->valuedouble;
    if ((rc = cfg_str_is(cfg, "hidden_act", "gelu", 1, "kb implements BERT's exact erf GELU, "
                         "'gelu'", err)) ||
        (rc = cfg_str_is(cfg, "model_type", "bert", 0, "kb runs BERT models", err)) ||
        (rc = cfg_str_is(cfg, "position_embedding_type", "absolute", 0,
                         "kb implements absolute position embeddings", err)))
        return rc;
    info->max_tokens = info->max_positions;
    info->pooling = KB_POOL_CLS;
    info->normalize = 1;
    return 0;
}

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* 1_Pooling/config.json (or wherever modules.json points): cls or mean, nothing else. */
static int enc_read_pooling(struct kb_encoder_info *info, const char *dir, const char *sub,
                            struct kb_err *err)
{
    char name[512];
    snprintf(name, sizeof name, "%s/config.json", sub);
    cJSON *cfg;
    int rc = enc_read_json(&cfg, dir, name, 1, err);
    if (rc)
        return rc;
    static const char *const unsupported[] = {
        "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken" };
    int cls = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "pooling_mode_cls_token"));
    int mean = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "pooling_mode_mean_tokens"));
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported && !rc; i++)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, unsupported[i])))
            rc = kb_err_set(err, KB_EFORMAT, "%s: %s is not supported (kb pools by cls or mean)",
                            name, unsupported[i]);
    if (!rc && cls + mean != 1)
        rc = kb_err_set(err, KB_EFORMAT, "%s: exactly one of pooling_mode_cls_token and "
                        "pooling_mode_mean_tokens must be true", name);
    if (!rc)
        info->pooling = cls ? KB_POOL_CLS : KB_POOL_MEAN;
    cJSON_Delete(cfg);
    return rc;
}

/* modules.json: a Transformer, a Pooling module and optionally Normalize, in that order. */
static int enc_read_modules(struct kb_encoder_info *info, const char *dir, struct kb_err *err)
{
    cJSON *mods;
    int rc = enc_read_json(&mods, dir, "modules.json", 0, err);
    if (rc || !mods)
        return rc;
    const char *pool_dir = NULL;
    info->normalize = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, mods) {
        const char *type = json_str(m, "type"), *path = json_str(m, "path");
        if (!type || !path) {
            rc = kb_err_set(err, KB_EFORMAT, "modules.json: a module lacks 'type' or 'path'");
        } else if (ends_with(type, ".Pooling")) {
            pool_dir = path;
        } else if (ends_with(type, ".Normalize")) {
            info->normalize = 1;
        } else if (!ends_with(type, ".Transformer")) {
            rc = kb_err_set(err, KB_EFORMAT, "modules.json: module '%.100s' is not supported "
                            "(kb runs Transformer, Pooling and Normalize)", type);
        }
        if (rc)
            break;
    }
    if (!rc && pool_dir && (pool_dir[0] == '/' || strstr(pool_dir, "..") || !pool_dir[0]))
        rc = kb_err_set(err, KB_EFORMAT, "modules.json: pooling path '%.100s' leaves the model "
                        "folder", pool_dir);
    if (!rc && pool_dir)
        rc = enc_read_pooling(info, dir, pool_dir, err);
    cJSON_Delete(mods);
    return rc;
}

static int enc_set_str(char **dst, const char *src, struct kb_err *err)
{
    char *copy = strdup(src);
    if (!copy)
        return kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
    free(*dst);
    *dst = copy;
    return 0;
}

/* The shorter of max_tokens and a positive integer field of a settings file. */
static void enc_cap_tokens(struct kb_encoder_info *info, const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < info->max_tokens)
        info->max_tokens = (int)v->valuedouble;
}

/* Prefixes and the token limit from the sentence-transformers and tokenizer files. */
static int enc_read_st_settings(struct kb_encoder *enc, const char *dir, struct kb_err *err)
{
    cJSON *json;
    int rc = enc_read_json(&json, dir, "config_sentence_transformers.json", 0, err);
    const cJSON *prompts = json ? cJSON_GetObjectItemCaseSensitive(json, "prompts") : NULL;
    const char *query = json_str(prompts, "query");
    const char *passage = json_str(prompts, "passage");
    if (!passage)
        passage = json_str(prompts, "document");
    if (!rc && query)
        rc = enc_set_str(&enc->query_prefix, query, err);
    if (!rc && passage)
        rc = enc_set_str(&enc->passage_prefix, passage, err);
    cJSON_Delete(json);
    if (!rc && !(rc = enc_read_json(&json, dir, "sentence_bert_config.json", 0, err)) && json) {
        enc_cap_tokens(&enc->info, json, "max_seq_length");
        cJSON_Delete(json);
    }
    if (!rc && !(rc = enc_read_json(&json, dir, "tokenizer_config.json", 0, err)) && json) {
        enc_cap_tokens(&enc->info, json, "model_max_length");
        cJSON_Delete(json);
    }
    return rc;
}

/* kb_model.json: kb's own settings, which win over everything else. */
static int enc_read_kb_settings(struct kb_encoder *enc, const char *dir, struct kb_err *err)
{
    cJSON *json;
    int rc = enc_read_json(&json, dir, "kb_model.json", 0, err);
    if (rc || !json)
        return rc;
    struct kb_encoder_info *info = &enc->info;
    const char *s;
    const cJSON *v;
    if ((s = json_str(json, "query_prefix")))
        rc = enc_set_str(&enc->query_prefix, s, err);
    if (!rc && (s = json_str(json, "passage_prefix")))
        rc = enc_set_str(&enc->passage_prefix, s, err);
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(json, "pooling"))) {
        s = cJSON_IsString(v) ? v->valuestring : "";
        if (strcmp(s, "cls") == 0 || strcmp(s, "mean") == 0)
            info->pooling = s[0] == 'c' ? KB_POOL_CLS : KB_POOL_MEAN;
        else
            rc = kb_err_set(err, KB_EFORMAT, "kb_model.json: pooling must be \"cls\" or \"mean\"");
    }
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(json, "normalize"))) {
        if (cJSON_IsBool(v))
            info->normalize = cJSON_IsTrue(v);
        else
            rc = kb_err_set(err, KB_EFORMAT, "kb_model.json: normalize must be true or false");
    }
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(json, "max_tokens"))) {
        if (cJSON_IsNumber(v) && v->valuedouble >= 2 && v->valuedouble <= info->max_positions &&
            v->valuedouble == (double)(int)v->valuedouble)
            info->max_tokens = (int)v->valuedouble;
        else
            rc = kb_err_set(err, KB_EFORMAT, "kb_model.json: max_tokens must be an integer from "
                            "2 to %d (max_position_embeddings)", info->max_positions);
    }
    /* a model trained with Matryoshka loss keeps its meaning in a prefix of the vector; no
     * Hugging Face file says so, hence kb's own setting */
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(json, "matryoshka_min_dim"))) {
        if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= info->hidden_dim &&
            v->valuedouble == (double)(int)v->valuedouble)
            info->min_dim = (int)v->valuedouble;
        else
            rc = kb_err_set(err, KB_EFORMAT, "kb_model.json: matryoshka_min_dim must be an "
                            "integer from 1 to %d (hidden_size)", info->hidden_dim);
    }
    cJSON_Delete(json);
    return rc;
}

/* Tensor shapes in units of the config's sizes. */
enum enc_dim { DIM_NONE, DIM_HIDDEN, DIM_INTER, DIM_VOCAB, DIM_POS, DIM_TYPE };

struct enc_tensor_spec {
    const char *name;
    size_t offset;          /* of the const float * in enc_weights or enc_layer */
    enum enc_dim rows, cols;
};

#define EW(field) offsetof(struct enc_weights, field)
#define EL(field) offsetof(struct enc_layer, field)

static const struct enc_tensor_spec enc_embedding_specs[] = {
    { "embeddings.word_embeddings.weight", EW(word_emb), DIM_VOCAB, DIM_HIDDEN },
    { "embeddings.position_embeddings.weight", EW(pos_emb), DIM_POS, DIM_HIDDEN },
    { "embeddings.token_type_embeddings.weight", EW(type_emb), DIM_TYPE, DIM_HIDDEN },
    { "embeddings.LayerNorm.weight", EW(emb_ln_g), DIM_HIDDEN, DIM_NONE },
    { "embeddings.LayerNorm.bias", EW(emb_ln_b), DIM_HIDDEN, DIM_NONE },
};

static const struct enc_tensor_spec enc_layer_specs[] = {
    { "attention.self.query.weight", EL(q_w), DIM_HIDDEN, DIM_HIDDEN },
    { "attention.self.query.bias", EL(q_b), DIM_HIDDEN, DIM_NONE },
    { "attention.self.key.weight", EL(k_w), DIM_HIDDEN, DIM_HIDDEN },
    { "attention.self.key.bias", EL(k_b), DIM_HIDDEN, DIM_NONE },
    { "attention.self.value.weight", EL(v_w), DIM_HIDDEN, DIM_HIDDEN },
    { "attention.self.value.bias", EL(v_b), DIM_HIDDEN, DIM_NONE },
    { "attention.output.dense.weight", EL(attn_out_w), DIM_HIDDEN, DIM_HIDDEN },
    { "attention.output.dense.bias", EL(attn_out_b), DIM_HIDDEN, DIM_NONE },
    { "attention.output.LayerNorm.weight", EL(attn_ln_g), DIM_HIDDEN, DIM_NONE },
    { "attention.output.LayerNorm.bias", EL(attn_ln_b), DIM_HIDDEN, DIM_NONE },
    { "intermediate.dense.weight", EL(inter_w), DIM_INTER, DIM_HIDDEN },
    { "intermediate.dense.bias", EL(inter_b), DIM_INTER, DIM_NONE },
    { "output.dense.weight", EL(out_w), DIM_HIDDEN, DIM_INTER },
    { "output.dense.bias", EL(out_b), DIM_HIDDEN, DIM_NONE },
    { "output.LayerNorm.weight", EL(out_ln_g), DIM_HIDDEN, DIM_NONE },
    { "output.LayerNorm.bias", EL(out_ln_b), DIM_HIDDEN, DIM_NONE },
};

static uint64_t enc_dim_size(const struct kb_encoder_info *info, enum enc_dim d)
{
    switch (d) {
    case DIM_HIDDEN: return (uint64_t)info->hidden_dim;
    case DIM_INTER: return (uint64_t)info->intermediate_dim;
    case DIM_VOCAB: return (uint64_t)info->vocab_size;
    case DIM_POS: return (uint64_t)info->max_positions;
    case DIM_TYPE: return (uint64_t)info->type_vocab_size;
    default: return 0;
    }
}

static void enc_format_shape(char *buf, size_t size, const uint64_t *shape, int n_dims)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n_dims && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%llu", i ? ", " : "",
                               (unsigned long long)shape[i]);
    if (at < size)
        snprintf(buf + at, size - at, "]");
}

static int enc_check_tensor(const struct kb_encoder *enc, const struct kb_st_tensor *t,
                            const struct enc_tensor_spec *spec, struct kb_err *err)
{
    uint64_t want[2] = { enc_dim_size(&enc->info, spec->rows),
                         enc_dim_size(&enc->info, spec->cols) };
    int want_dims = spec->cols == DIM_NONE ? 1 : 2;
    if (t->dtype == KB_ST_OTHER)
        return kb_err_set(err, KB_EFORMAT, "model.safetensors: tensor '%s' has dtype %s; kb "
                          "reads F32, F16 and BF16", t->name, t->dtype_name);
    if (t->n_dims != want_dims || t->shape[0] != want[0] ||
        (want_dims == 2 && t->shape[1] != want[1])) {
        char got_s[160], want_s[64];
        enc_format_shape(got_s, sizeof got_s, t->shape, t->n_dims);
        enc_format_shape(want_s, sizeof want_s, want, want_dims);
        return kb_err_set(err, KB_EFORMAT, "model.safetensors: tensor '%s' has shape %s but "
                          "config.json implies %s", t->name, got_s, want_s);
    }
    return 0;
}

/* A new buffer of n floats owned by the encoder (freed with it), or NULL. */
static float *enc_alloc_owned(struct kb_encoder *enc, size_t n)
{
    float *p = malloc(n * sizeof *p);
    float **owned = realloc(enc->owned, (enc->n_owned + 1) * sizeof *owned);
    if (owned)
        enc->owned = owned;
    if (!p || !owned) {
        free(p);
        return NULL;
    }
    enc->owned[enc->n_owned++] = p;
    return p;
}

/* Finds `name` (with or without "bert."), checks it and points *dst at F32 data: in place
 * when the file holds aligned F32, else a converted copy owned by the encoder. */
static int enc_bind(struct kb_encoder *enc, const char *name, const struct enc_tensor_spec *spec,
                    const float **dst, struct kb_err *err)
{
    char prefixed[256];
    snprintf(prefixed, sizeof prefixed, "bert.%s", name);
    const struct kb_st_tensor *t = kb_safetensors_find(&enc->st, name);
    if (!t)
        t = kb_safetensors_find(&enc->st, prefixed);
    if (!t)
        return kb_err_set(err, KB_EFORMAT, "model.safetensors: tensor '%s' is missing", name);
    int rc = enc_check_tensor(enc, t, spec, err);
    if (rc)
        return rc;
    if (t->dtype == KB_ST_F32 && (uintptr_t)t->data % sizeof(float) == 0) {
        *dst = (const float *)(const void *)t->data;
        return 0;
    }
    float *copy = enc_alloc_owned(enc, t->n_elems ? t->n_elems : 1);
    if (!copy)
        return kb_err_set(err, KB_ENOMEM, "model.safetensors: out of memory for tensor '%s'",
                          t->name);
    kb_safetensors_to_f32(t, copy);
    *dst = copy;
    return 0;
}

/* *dst = w (n_out, n_in) packed for gemm_small.h, in a buffer the encoder owns. */
static int enc_pack(struct kb_encoder *enc, const float *w, int n_out, int n_in,
                    const float **dst)
{
    float *p = enc_alloc_owned(enc, (size_t)n_out * (size_t)n_in);
    if (!p)
        return KB_ENOMEM;
    kb_enc_gemm_small_pack(p, w, n_out, n_in);
    *dst = p;
    return 0;
}

/* q, k and v stacked into one (3H, H) weight and (3H) bias, packed. */
static int enc_pack_qkv(struct kb_encoder *enc, struct enc_layer *y, int h)
{
    size_t hh = (size_t)h * (size_t)h;
    float *stack = malloc(3 * hh * sizeof *stack), *bias = enc_alloc_owned(enc, 3 * (size_t)h);
    if (!stack || !bias) {
        free(stack);
        return KB_ENOMEM;
    }
    const float *w[3] = { y->q_w, y->k_w, y->v_w }, *b[3] = { y->q_b, y->k_b, y->v_b };
    for (int i = 0; i < 3; i++) {
        memcpy(stack + (size_t)i * hh, w[i], hh * sizeof *stack);
        memcpy(bias + (size_t)i * (size_t)h, b[i], (size_t)h * sizeof *bias);
    }
    int rc = enc_pack(enc, stack, 3 * h, h, &y->qkv_p);
    free(stack);
    y->qkv_b = bias;
    return rc;
}

/* On CPUs where gemm_small.h runs (AVX-512), single queries are multiplied by our own kernel
 * on packed copies of the Linear weights; batches still go to the BLAS with the weights as
 * in the file. This costs one copy of the layer weights and buys ~2x on query latency. */
static int enc_pack_layers(struct kb_encoder *enc, struct kb_err *err)
{
    if (!kb_enc_gemm_small_usable())
        return 0;
    int h = enc->info.hidden_dim, inter = enc->info.intermediate_dim;
    for (int l = 0; l < enc->info.n_layers; l++) {
        struct enc_layer *y = &enc->w.layers[l];
        if (enc_pack_qkv(enc, y, h) || enc_pack(enc, y->attn_out_w, h, h, &y->attn_out_p) ||
            enc_pack(enc, y->inter_w, inter, h, &y->inter_p) ||
            enc_pack(enc, y->out_w, h, inter, &y->out_p))
            return kb_err_set(err, KB_ENOMEM, "encoder: out of memory for layer %d", l);
    }
    enc->w.packed = 1;
    return 0;
}

static int enc_bind_all(struct kb_encoder *enc, struct kb_err *err)
{
    int rc = 0;
    size_t n_emb = sizeof enc_embedding_specs / sizeof *enc_embedding_specs;
    size_t n_layer = sizeof enc_layer_specs / sizeof *enc_layer_specs;
    for (size_t i = 0; i < n_emb && !rc; i++) {
        const struct enc_tensor_spec *spec = &enc_embedding_specs[i];
        rc = enc_bind(enc, spec->name, spec, (const float **)((char *)&enc->w + spec->offset),
                      err);
    }
    enc->w.layers = calloc((size_t)enc->info.n_layers, sizeof *enc->w.layers);
    if (!rc && !enc->w.layers)
        rc = kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
    for (int l = 0; l < enc->info.n_layers && !rc; l++) {
        for (size_t i = 0; i < n_layer && !rc; i++) {
            const struct enc_tensor_spec *spec = &enc_layer_specs[i];
            char name[200];
            snprintf(name, sizeof name, "encoder.layer.%d.%s", l, spec->name);
            rc = enc_bind(enc, name, spec,
                          (const float **)((char *)&enc->w.layers[l] + spec->offset), err);
        }
    }
    return rc;
}

/* The weights' storage dtype, as reported by kb_encoder_info. */
static const char *enc_dtype_name(const struct kb_encoder *enc)
{
    const struct kb_st_tensor *t = kb_safetensors_find(&enc->st,
                                                       "embeddings.word_embeddings.weight");
    if (!t)
        t = kb_safetensors_find(&enc->st, "bert.embeddings.word_embeddings.weight");
    return !t ? "F32" : t->dtype == KB_ST_F16 ? "F16" : t->dtype == KB_ST_BF16 ? "BF16" : "F32";
}

/* Frees a prototype (what enc_load filled; it has no scratch or helpers of its own). */
static void enc_free_proto(struct kb_encoder *enc)
{
    if (!enc)
        return;
    kb_wordpiece_free(enc->wp);
    for (size_t i = 0; i < enc->n_owned; i++)
        free(enc->owned[i]);
    free(enc->owned);
    free(enc->w.layers);
    kb_safetensors_close(&enc->st);
    free(enc->query_prefix);
    free(enc->passage_prefix);
    free(enc);
}

/* Every id the tokenizer can give must have a row in the word embeddings (config.json's
 * vocab_size of them); fewer ids than rows is common (a matrix padded to a round size). */
static int enc_check_vocab(const struct kb_encoder *enc, struct kb_err *err)
{
    size_t n_ids = kb_wordpiece_vocab_size(enc->wp);
    if (n_ids > (size_t)enc->info.vocab_size)
        return kb_err_set(err, KB_EFORMAT, "%s: %zu entries, more than config.json's "
                          "vocab_size of %d", kb_wordpiece_file(enc->wp), n_ids,
                          enc->info.vocab_size);
    return 0;
}

static int enc_load(struct kb_encoder *enc, const char *model_dir, unsigned flags,
                    struct kb_err *err)
{
    cJSON *cfg;
    int rc = enc_read_json(&cfg, model_dir, "config.json", 1, err);
    if (rc)
        return rc;
    rc = enc_parse_config(&enc->info, cfg, err);
    cJSON_Delete(cfg);
    if (rc || (rc = enc_read_modules(&enc->info, model_dir, err)) ||
        (rc = enc_read_st_settings(enc, model_dir, err)) ||
        (rc = enc_read_kb_settings(enc, model_dir, err)))
        return rc;
    char *st_path = kb_path_join(model_dir, "model.safetensors");
    if (!st_path)
        return kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
    rc = kb_safetensors_open(&enc->st, st_path, "model.safetensors", err);
    free(st_path);
    if (rc == KB_ENOTFOUND)
        kb_err_set(err, rc, "model.safetensors: not found in %s", model_dir);
    if (rc || (rc = enc_bind_all(enc, err)) || (rc = enc_pack_layers(enc, err)))
        return rc;
    enc->info.dtype = enc_dtype_name(enc);
    if (!(flags & KB_ENCODER_OPEN_NO_TOKENIZER) &&
        !(rc = kb_wordpiece_open(&enc->wp, model_dir, err)))
        rc = enc_check_vocab(enc, err);
    return rc;
}

/* Loads a model folder into a prototype: everything but the per-handle scratch and helpers. */
static int enc_load_proto(struct kb_encoder **out, const char *model_dir, unsigned flags,
                          struct kb_err *err)
{
    *out = NULL;
    struct kb_encoder *enc = calloc(1, sizeof *enc);
    if (!enc)
        return kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
    int rc = 0;
    if (!(enc->query_prefix = strdup("")) || !(enc->passage_prefix = strdup("")))
        rc = kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
    if (!rc)
        rc = enc_load(enc, model_dir, flags, err);
    if (rc) {
        enc_free_proto(enc);
        return rc;
    }
    enc->info.query_prefix = enc->query_prefix;
    enc->info.passage_prefix = enc->passage_prefix;
    *out = enc;
    return 0;
}

struct enc_load_args {
    const char *dir;
    unsigned flags;
    struct kb_err *err;
    int called;
};

static int enc_shared_load(void *arg, void **obj)
{
    struct enc_load_args *a = arg;
    struct kb_encoder *proto = NULL;
    a->called = 1;
    int rc = enc_load_proto(&proto, a->dir, a->flags, a->err);
    *obj = proto;
    return rc;
}

static void enc_shared_free(void *obj)
{
    enc_free_proto(obj);
}

/* The files a model is read from. */
static const char *const enc_files[] = {
    "config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "modules.json", "1_Pooling/config.json",
    "config_sentence_transformers.json", "sentence_bert_config.json", "kb_model.json"
};

/* The cache key of a model folder: its real path, the flags, and each file's identity (device,
 * inode, size, modification time; 0 when absent), so that a file replaced or rewritten since
 * the cached copy was loaded gives a new key. NULL when out of memory or the folder is gone. */
static char *enc_cache_key(const char *model_dir, unsigned flags)
{
    char *real = realpath(model_dir, NULL);
    if (!real)
        return NULL;
    size_t n_files = sizeof enc_files / sizeof *enc_files;
    size_t cap = strlen(real) + 32 + n_files * 96;
    char *key = malloc(cap);
    size_t len = key ? (size_t)snprintf(key, cap, "encoder\n%s\n%x", real, flags) : 0;
    for (size_t i = 0; key && i < n_files; i++) {
        char *path = kb_path_join(real, enc_files[i]);
        struct stat st;
        if (!path) {
            free(key);
            key = NULL;
            break;
        }
        if (stat(path, &st) != 0)
            memset(&st, 0, sizeof st);
        len += (size_t)snprintf(key + len, cap - len, "\n%llx:%llx:%llx:%lld.%09ld",
                                (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
                                (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec,
                                st.st_mtim.tv_nsec);
        free(path);
    }
    free(real);
    return key;
}

int kb_encoder_open_ex(struct kb_encoder **out, const char *model_dir, unsigned flags,
                       struct kb_err *err)
{
    *out = NULL;
    struct kb_encoder *enc = calloc(1, sizeof *enc);
    if (!enc)
        return kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
    /* The weights, settings and tokenizer: one read-only copy per model in the process. A
     * folder that cannot be keyed (gone, or no memory) is loaded for this handle alone, which
     * reports what is wrong with it. */
    struct kb_encoder *proto = NULL;
    struct enc_load_args args = { model_dir, flags, err, 0 };
    char *key = enc_cache_key(model_dir, flags);
    int rc = key ? kb_shared_get(key, enc_shared_load, &args, enc_shared_free, (void **)&proto)
                 : enc_load_proto(&proto, model_dir, flags, err);
    if (key && rc == KB_ENOMEM && !args.called)
        kb_err_set(err, rc, "encoder: out of memory");
    free(key);
    if (rc) {
        free(enc);
        return rc;
    }
    *enc = *proto; /* borrows every pointer; only the scratch and helpers below are its own */
    memset(enc->rs, 0, sizeof enc->rs);
    enc->proto = proto;
    enc->shared = key != NULL;
    enc->n_threads = kb_threads_default();
    if (enc->n_threads > KB_ENC_MAX_THREADS)
        enc->n_threads = KB_ENC_MAX_THREADS;
    if (enc->w.packed && enc->n_threads > 1)
        enc->pool = kb_pool_start(enc->n_threads - 1); /* NULL: queries run alone */
    *out = enc;
    return 0;
}

int kb_encoder_open(struct kb_encoder **out, const char *model_dir, struct kb_err *err)
{
    return kb_encoder_open_ex(out, model_dir, 0, err);
}

void kb_encoder_free(struct kb_encoder *enc)
{
    if (!enc)
        return;
    kb_pool_stop(enc->pool);
    for (int t = 0; t < KB_ENC_MAX_THREADS; t++)
        kb_enc_state_free(&enc->rs[t]);
    if (enc->shared)
        kb_shared_put(enc->proto);
    else
        enc_free_proto(enc->proto);
    free(enc);
}

const struct kb_encoder_info *kb_encoder_info(const struct kb_encoder *enc)
{
    return &enc->info;
}

const struct kb_wordpiece *kb_encoder_tokenizer(const struct kb_encoder *enc)
{
    return enc->wp;
}
