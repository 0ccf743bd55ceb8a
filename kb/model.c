/* model.c — the public encoder-model handle: find a model folder, open it, tokenize, embed. */
#include "kb/kb.h"
#include "kb/model_int.h"
#include "kb/kb_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "encoder/encoder.h"
#include "encoder/hub.h"
#include "encoder/wordpiece.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/path.h"

struct kb_model {
    struct kb_encoder *enc;   /* NULL after a failed open, or for a tokenizer-only folder */
    struct kb_wordpiece *wp;  /* a tokenizer-only folder's tokenizer (no weights) */
    char *name;               /* as given */
    char *dir;                /* where the files are */
    struct kb_err err;
};

static int model_fail(kb_model *model, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int model_fail(kb_model *model, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(model->err.msg, sizeof model->err.msg, fmt, ap);
    va_end(ap);
    model->err.code = code;
    return code;
}

/* A folder as given, or a hub name looked up in the caches. */
static int model_locate(kb_model *model, const char *name_or_dir)
{
    struct stat st;
    if (stat(name_or_dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        model->dir = strdup(name_or_dir);
        return model->dir ? 0 : model_fail(model, KB_ENOMEM, "out of memory");
    }
    int looks_like_path = name_or_dir[0] == '/' || name_or_dir[0] == '.' ||
                          name_or_dir[0] == '~' || !strchr(name_or_dir, '/');
    if (looks_like_path)
        return model_fail(model, KB_ENOTFOUND, "model '%s': no such folder", name_or_dir);
    int rc = kb_hub_resolve(&model->dir, name_or_dir, &model->err);
    if (rc == KB_ENOTFOUND)
        return model_fail(model, rc,
                          "model '%s' is not downloaded (looked in kb's model cache and the "
                          "Hugging Face cache); get it with 'kb model pull %s'",
                          name_or_dir, name_or_dir);
    return rc;
}

/* A folder with neither config.json nor model.safetensors is a tokenizer alone (kb tokenize
 * works on it; embedding does not). */
static int model_has_weights(const char *dir)
{
    static const char *const files[] = { "config.json", "model.safetensors" };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *path = kb_path_join(dir, files[i]);
        struct stat st;
        int found = path && stat(path, &st) == 0;
        free(path);
        if (found)
            return 1;
    }
    return 0;
}

int kb_model_open(kb_model **out, const char *name_or_dir)
{
    if (!out)
        return KB_EINVALID;
    kb_model *model = calloc(1, sizeof *model);
    *out = NULL;
    if (!model)
        return KB_ENOMEM;
    if (kb_handle_add(model, KB_HANDLE_MODEL)) {
        free(model);
        return KB_ENOMEM;
    }
    *out = model;
    if (!name_or_dir || !*name_or_dir)
        return model_fail(model, KB_EINVALID, "no model given");
    if (!(model->name = strdup(name_or_dir)))
        return model_fail(model, KB_ENOMEM, "out of memory");
    int rc = model_locate(model, name_or_dir);
    if (rc)
        return rc;
    if (!model_has_weights(model->dir))
        return kb_wordpiece_open(&model->wp, model->dir, &model->err);
    return kb_encoder_open(&model->enc, model->dir, &model->err);
}

void kb_model_close(kb_model *model)
{
    if (!kb_handle_remove(model, KB_HANDLE_MODEL))
        return; /* NULL, already closed, or not a handle kb_model_open gave */
    kb_encoder_free(model->enc);
    kb_wordpiece_free(model->wp);
    free(model->name);
    free(model->dir);
    free(model);
}

const char *kb_model_errmsg(const kb_model *model)
{
    if (!model)
        return "no model handle";
    if (!kb_handle_live(model, KB_HANDLE_MODEL))
        return "not an open model handle (closed already?)";
    return model->err.msg;
}

/* Checks a handle at the API boundary; need_weights: not just a tokenizer. */
static int model_usable(kb_model *model, int need_weights)
{
    if (!model || !kb_handle_live(model, KB_HANDLE_MODEL))
        return KB_EINVALID; /* NULL, closed or never opened: nowhere to keep a message */
    if (!model->enc && !(model->wp && !need_weights))
        return model_fail(model, model->wp ? KB_ENOTFOUND : KB_EINVALID,
                          model->wp ? "model '%s' has a tokenizer but no weights "
                                      "(config.json, model.safetensors)"
                                    : "model '%s' is not open",
                          model->name ? model->name : "");
    kb_err_clear(&model->err);
    return 0;
}

int kb_model_get_info(const kb_model *model, kb_model_info *out)
{
    if (!model || !kb_handle_live(model, KB_HANDLE_MODEL) || !model->enc || !out)
        return KB_EINVALID; /* tokenizer-only folders have no info to give */
    const struct kb_encoder_info *info = kb_encoder_info(model->enc);
    *out = (kb_model_info){
        .name = model->name,
        .dir = model->dir,
        .dim = info->hidden_dim,
        .max_tokens = info->max_tokens,
        .n_layers = info->n_layers,
        .n_heads = info->n_heads,
        .pooling = info->pooling == KB_POOL_MEAN ? "mean" : "cls",
        .normalize = info->normalize,
        .dtype = info->dtype,
        .query_prefix = info->query_prefix,
        .passage_prefix = info->passage_prefix,
    };
    return 0;
}

static const struct kb_wordpiece *model_tokenizer(const kb_model *model)
{
    return model->enc ? kb_encoder_tokenizer(model->enc) : model->wp;
}

int kb_model_tokenize(kb_model *model, const char *text, unsigned flags, int32_t **ids,
                      size_t *n_ids)
{
    int rc = model_usable(model, 0);
    if (rc)
        return rc;
    if (!text || !ids || !n_ids)
        return model_fail(model, KB_EINVALID, "kb_model_tokenize: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    const struct kb_wordpiece *wp = model_tokenizer(model);
    unsigned wflags = (flags & KB_TOKENIZE_NO_SPECIAL) ? 0 : KB_WORDPIECE_ADD_SPECIAL;
    size_t len = strlen(text), n = 0, n_full = 0;
    /* First count, then fill: no truncation. */
    if ((rc = kb_wordpiece_encode(wp, text, len, wflags, NULL, 0, &n, &n_full, &model->err)))
        return rc;
    int32_t *buf = malloc(sizeof *buf * (n_full ? n_full : 1));
    if (!buf)
        return model_fail(model, KB_ENOMEM, "out of memory for %zu tokens", n_full);
    if ((rc = kb_wordpiece_encode(wp, text, len, wflags, buf, n_full, &n, NULL, &model->err))) {
        free(buf);
        return rc;
    }
    *ids = buf;
    *n_ids = n;
    return 0;
}

const char *kb_model_token(const kb_model *model, int32_t id)
{
    int live = model && kb_handle_live(model, KB_HANDLE_MODEL);
    const struct kb_wordpiece *wp = live ? model_tokenizer(model) : NULL;
    return wp ? kb_wordpiece_token(wp, id) : NULL;
}

int kb_model_embed(kb_model *model, const char *const *texts, size_t n_texts, unsigned flags,
                   float *out)
{
    int rc = model_usable(model, 1);
    if (rc)
        return rc;
    if ((!texts || !out) && n_texts)
        return model_fail(model, KB_EINVALID, "kb_model_embed: NULL argument");
    for (size_t i = 0; i < n_texts; i++)
        if (!texts[i])
            return model_fail(model, KB_EINVALID, "kb_model_embed: text %zu is NULL", i);
    return kb_encoder_embed(model->enc, texts, n_texts,
                            (flags & KB_EMBED_QUERY) ? KB_ENCODER_QUERY : 0, out, &model->err);
}

int kb_model_embed_ids(kb_model *model, const int32_t *const *ids, const size_t *n_ids,
                       size_t n_seqs, unsigned flags, float *out)
{
    int rc = model_usable(model, 1);
    if (rc)
        return rc;
    if ((!ids || !n_ids || !out) && n_seqs)
        return model_fail(model, KB_EINVALID, "kb_model_embed_ids: NULL argument");
    return kb_encoder_embed_tokens(model->enc, ids, n_ids, n_seqs,
                                   (flags & KB_EMBED_QUERY) ? KB_ENCODER_QUERY : 0, out,
                                   &model->err);
}

int kb_model_min_dim(const kb_model *model)
{
    if (!model || !kb_handle_live(model, KB_HANDLE_MODEL) || !model->enc)
        return 0;
    return kb_encoder_info(model->enc)->min_dim;
}

void kb_free(void *p)
{
    free(p);
}

struct kb_encoder *kb_model_encoder(kb_model *model)
{
    return model ? model->enc : NULL;
}

/* The SHA-256 of bytes [offset, offset + len) of the model's file `name` (len 0: to the end)
 * into out; a file that is there but cannot be read fails, with a message naming it. */
static int model_hash_file(kb_model *model, const char *name, uint64_t offset, uint64_t len,
                           char out[65])
{
    char *path = kb_path_join(model->dir, name);
    if (!path)
        return model_fail(model, KB_ENOMEM, "out of memory");
    int rc = kb_sha256_file(path, offset, len, out), saved = errno;
    free(path);
    if (!rc)
        return 0;
    if (saved == ENOENT)
        return model_fail(model, KB_ENOTFOUND, "%s: not found", name);
    if (saved == EINVAL)
        return model_fail(model, KB_EFORMAT, "%s: not a regular file", name);
    return model_fail(model, saved == ENOMEM ? KB_ENOMEM : KB_EIO, "%s: %s", name,
                      strerror(saved));
}

int kb_model_identity(kb_model *model, char out[65])
{
    static const char *const files[] = { "config.json", "vocab.txt", "tokenizer.json",
                                         "tokenizer_config.json", "modules.json",
                                         "1_Pooling/config.json", "config_sentence_transformers.json",
                                         "sentence_bert_config.json", "kb_model.json" };
    const size_t n_files = sizeof files / sizeof *files;
    char digests[16][65];
    const void *parts[16];
    size_t lens[16], n = 0;
    for (size_t i = 0; i < n_files; i++) {
        int rc = model_hash_file(model, files[i], 0, 0, digests[n]);
        if (rc && rc != KB_ENOTFOUND) /* there but unreadable must not change the identity */
            return rc;
        if (!rc) {
            parts[n] = digests[n];
            lens[n] = 64;
            n++;
        }
    }
    char *weights = kb_path_join(model->dir, "model.safetensors");
    struct stat st;
    if (!weights)
        return model_fail(model, KB_ENOMEM, "out of memory");
    int rc = stat(weights, &st);
    free(weights);
    if (rc)
        return model_fail(model, KB_ENOTFOUND, "model.safetensors: not found");
    uint64_t size = (uint64_t)st.st_size, mib = (uint64_t)1 << 20;
    /* The header (tensor names, shapes, offsets) lies within the first MiB for every BERT. */
    if ((rc = model_hash_file(model, "model.safetensors", 0, mib, digests[n])) ||
        (rc = model_hash_file(model, "model.safetensors", size > mib ? size - mib : 0, 0,
                              digests[n + 1])))
        return rc;
    snprintf(digests[n + 2], sizeof digests[n + 2], "%llu", (unsigned long long)size);
    for (size_t i = n; i < n + 3; i++) {
        parts[i] = digests[i];
        lens[i] = strlen(digests[i]);
    }
    kb_sha256_hex_parts(parts, lens, n + 3, out);
    return 0;
}
