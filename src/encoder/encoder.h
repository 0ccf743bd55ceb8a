/* encoder.h — a BERT-family sentence encoder: Hugging Face model folder in, unit vectors out.
 *
 * A model folder holds config.json (BertModel), model.safetensors (F32/F16/BF16, names with or
 * without a "bert." prefix, pooler ignored), the tokenizer files (see wordpiece.h) and, when it
 * came from sentence-transformers, modules.json + 1_Pooling/config.json (+ a Normalize module).
 * Optional settings: config_sentence_transformers.json "prompts" {"query", "passage"/"document"}
 * and kb_model.json {"query_prefix", "passage_prefix", "pooling": "cls"|"mean",
 * "normalize": bool, "max_tokens": n, "matryoshka_min_dim": n}, which wins over the others.
 * Without modules.json the model pools the [CLS] token and L2-normalises (with modules.json:
 * normalised only when it lists a Normalize module). max_tokens = min(max_position_embeddings,
 * sentence_bert_config max_seq_length, tokenizer_config model_max_length), unless kb_model.json
 * sets it.
 * A handle is not thread-safe: its scratch buffers (grown to the largest batch seen) live in
 * it; use one handle per thread. */
#ifndef KB_ENCODER_ENCODER_H
#define KB_ENCODER_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct kb_encoder;
struct kb_wordpiece;

enum kb_pooling { KB_POOL_CLS, KB_POOL_MEAN };

struct kb_encoder_info {
    int hidden_dim;          /* = embedding dimension */
    int min_dim;             /* the shortest prefix of a vector that is still an embedding:
                                hidden_dim, or kb_model.json's matryoshka_min_dim for a model
                                trained for shorter ones (Matryoshka representation learning) */
    int n_layers;
    int n_heads;
    int intermediate_dim;
    int max_positions;       /* max_position_embeddings */
    int max_tokens;          /* longest input incl. [CLS]/[SEP]: min(max_positions, settings) */
    int type_vocab_size;
    int vocab_size;
    float layer_norm_eps;
    enum kb_pooling pooling;
    int normalize;           /* L2-normalise the pooled vector */
    const char *dtype;       /* "F32", "F16" or "BF16": how the weights are stored */
    const char *query_prefix;   /* "" when none */
    const char *passage_prefix; /* "" when none */
};

/* Encoding flags. */
#define KB_ENCODER_QUERY 0x1u   /* prepend the model's query prefix (else the passage prefix) */

/* Opens a model folder: parses and validates config.json and the safetensors header (offsets
 * inside the file, shapes against the config, dtype), mmaps the weights read-only, opens the
 * tokenizer. Errors are one line naming the file and tensor/field: KB_ENOTFOUND (missing
 * file), KB_EFORMAT (corrupt or inconsistent), KB_ENOMEM. */
int kb_encoder_open(struct kb_encoder **out, const char *model_dir, struct kb_err *err);
void kb_encoder_free(struct kb_encoder *enc);

const struct kb_encoder_info *kb_encoder_info(const struct kb_encoder *enc);

/* The encoder's tokenizer (borrowed). */
const struct kb_wordpiece *kb_encoder_tokenizer(const struct kb_encoder *enc);

/* Embeds n_texts token-id sequences (each already with [CLS]/[SEP], at most max_tokens long)
 * into out[n_texts * hidden_dim]. Sequences of different lengths are batched without
 * computing over padding. A sequence gives the same vector alone or in any batch. */
int kb_encoder_embed_ids(struct kb_encoder *enc, const int32_t *const *ids,
                         const size_t *n_ids, size_t n_texts, float *out, struct kb_err *err);

/* Tokenizes (prefix per flags, truncation to max_tokens) and embeds n_texts UTF-8 texts into
 * out[n_texts * hidden_dim]. */
int kb_encoder_embed(struct kb_encoder *enc, const char *const *texts, size_t n_texts,
                     unsigned flags, float *out, struct kb_err *err);

/* Embeds n_seqs sequences of token ids given without [CLS]/[SEP] (a text as the tokenizer
 * splits it): each runs as [CLS] + the prefix's tokens (per flags) + ids + [SEP], truncated to
 * max_tokens with [SEP] kept last, which is the sequence kb_encoder_embed makes of the text
 * whenever the prefix ends where a word does (every known prefix ends in a space or ':').
 * An empty sequence is an empty text. An id outside the vocabulary is KB_EINVALID naming the
 * sequence and the id. */
int kb_encoder_embed_tokens(struct kb_encoder *enc, const int32_t *const *ids,
                            const size_t *n_ids, size_t n_seqs, unsigned flags, float *out,
                            struct kb_err *err);

#endif
