/* embed.c — kb_encoder_embed{,_ids}: checks, tokenizing with prefixes, length-sorted batching. */
#include "encoder/encoder_int.h"

#include <stdlib.h>
#include <string.h>

#include "encoder/wordpiece.h"

#define ENC_BATCH_TOKENS 4096   /* tokens per forward pass: enough rows for sgemm to run at speed */
#define ENC_TEXT_CHUNK 256      /* texts tokenized at a time by kb_encoder_embed */

struct enc_order {
    size_t len, index;
};

static int enc_cmp_order(const void *a, const void *b)
{
    const struct enc_order *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int enc_check_ids(const struct kb_encoder *enc, const int32_t *const *ids,
                         const size_t *n_ids, size_t n_texts, struct kb_err *err)
{
    for (size_t s = 0; s < n_texts; s++) {
        if (n_ids[s] == 0 || n_ids[s] > (size_t)enc->info.max_tokens || !ids[s])
            return kb_err_set(err, KB_EINVALID, "encoder: sequence %zu has %zu tokens (must be "
                              "1 to %d)", s, n_ids[s], enc->info.max_tokens);
        for (size_t t = 0; t < n_ids[s]; t++)
            if (ids[s][t] < 0 || ids[s][t] >= enc->info.vocab_size)
                return kb_err_set(err, KB_EINVALID, "encoder: token id %d of sequence %zu is "
                                  "outside the vocabulary (%d ids)", (int)ids[s][t], s,
                                  enc->info.vocab_size);
    }
    return 0;
}

/* Runs the sorted sequences order[0..n) in batches of about ENC_BATCH_TOKENS tokens and
 * scatters each vector to its input position in out. */
static int enc_run_batches(struct kb_encoder *enc, const int32_t *const *ids,
                           const struct enc_order *order, size_t n, float *out,
                           struct kb_err *err)
{
    size_t h = (size_t)enc->info.hidden_dim;
    const int32_t **b_ids = malloc(n * sizeof *b_ids);
    size_t *b_len = malloc(n * sizeof *b_len);
    float *b_out = NULL;
    int rc = 0;
    if (!b_ids || !b_len) {
        rc = kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
        goto done;
    }
    for (size_t first = 0, last; first < n && !rc; first = last) {
        size_t n_tokens = 0;
        for (last = first; last < n && (last == first ||
             n_tokens + order[last].len <= ENC_BATCH_TOKENS); last++) {
            b_ids[last - first] = ids[order[last].index];
            b_len[last - first] = order[last].len;
            n_tokens += order[last].len;
        }
        float *grown = realloc(b_out, (last - first) * h * sizeof *b_out);
        if (!grown) {
            rc = kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
            break;
        }
        b_out = grown;
        rc = kb_enc_forward(enc, b_ids, b_len, last - first, b_out, err);
        for (size_t i = first; i < last && !rc; i++)
            memcpy(out + order[i].index * h, b_out + (i - first) * h, h * sizeof *out);
    }
done:
    free(b_ids);
    free(b_len);
    free(b_out);
    return rc;
}

int kb_encoder_embed_ids(struct kb_encoder *enc, const int32_t *const *ids,
                         const size_t *n_ids, size_t n_texts, float *out, struct kb_err *err)
{
    if (!enc || (n_texts && (!ids || !n_ids || !out)))
        return kb_err_set(err, KB_EINVALID, "encoder: missing argument");
    int rc = enc_check_ids(enc, ids, n_ids, n_texts, err);
    if (rc || n_texts == 0)
        return rc;
    struct enc_order *order = malloc(n_texts * sizeof *order);
    if (!order)
        return kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
    for (size_t s = 0; s < n_texts; s++)
        order[s] = (struct enc_order){ n_ids[s], s };
    qsort(order, n_texts, sizeof *order, enc_cmp_order);
    rc = enc_run_batches(enc, ids, order, n_texts, out, err);
    free(order);
    return rc;
}

/* Tokenizes prefix + text into ids[0..max_tokens) with [CLS]/[SEP], truncating. */
static int enc_tokenize(const struct kb_encoder *enc, const char *prefix, const char *text,
                        int32_t *ids, size_t *n_out, struct kb_err *err)
{
    size_t n_prefix = strlen(prefix), n_text = strlen(text);
    char *joined = NULL;
    if (n_prefix) {
        joined = malloc(n_prefix + n_text + 1);
        if (!joined)
            return kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
        memcpy(joined, prefix, n_prefix);
        memcpy(joined + n_prefix, text, n_text + 1);
    }
    int rc = kb_wordpiece_encode(enc->wp, joined ? joined : text, n_prefix + n_text,
                                 KB_WORDPIECE_ADD_SPECIAL, ids, (size_t)enc->info.max_tokens,
                                 n_out, NULL, err);
    free(joined);
    return rc;
}

int kb_encoder_embed(struct kb_encoder *enc, const char *const *texts, size_t n_texts,
                     unsigned flags, float *out, struct kb_err *err)
{
    if (!enc || (n_texts && (!texts || !out)))
        return kb_err_set(err, KB_EINVALID, "encoder: missing argument");
    if (!enc->wp)
        return kb_err_set(err, KB_EINVALID, "encoder: opened without a tokenizer");
    const char *prefix = flags & KB_ENCODER_QUERY ? enc->query_prefix : enc->passage_prefix;
    size_t chunk = n_texts < ENC_TEXT_CHUNK ? n_texts : ENC_TEXT_CHUNK;
    size_t max_tokens = (size_t)enc->info.max_tokens;
    int32_t *ids = malloc((chunk ? chunk : 1) * max_tokens * sizeof *ids);
    const int32_t **id_ptrs = malloc((chunk ? chunk : 1) * sizeof *id_ptrs);
    size_t *n_ids = malloc((chunk ? chunk : 1) * sizeof *n_ids);
    int rc = 0;
    if (!ids || !id_ptrs || !n_ids)
        rc = kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
    for (size_t first = 0; first < n_texts && !rc; first += chunk) {
        size_t n = n_texts - first < chunk ? n_texts - first : chunk;
        for (size_t i = 0; i < n && !rc; i++) {
            id_ptrs[i] = ids + i * max_tokens;
            rc = enc_tokenize(enc, prefix, texts[first + i], ids + i * max_tokens, &n_ids[i],
                              err);
        }
        if (!rc)
            rc = kb_encoder_embed_ids(enc, id_ptrs, n_ids, n,
                                      out + first * (size_t)enc->info.hidden_dim, err);
    }
    free(ids);
    free(id_ptrs);
    free(n_ids);
    return rc;
}
