/* model.h — a decoder-only transformer from a GGUF file (architectures `llama` and `qwen2`:
 * RMSNorm, rotary positions, grouped-query attention, SwiGLU), its weights used in place from
 * the mapping, and a KV cache for one sequence. */
#ifndef KB_DECODER_MODEL_H
#define KB_DECODER_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "decoder/gguf.h"
#include "util/err.h"

struct kb_dec_hparams {
    char arch[16];            /* "llama" or "qwen2" */
    uint32_t n_vocab, n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, n_rot, n_ctx_train;
    float norm_eps, rope_base;
    int rope_neox;            /* rotate halves (qwen2) rather than adjacent pairs (llama) */
};

struct kb_dec_model;

/* Opens and checks the model: the architecture, every hyperparameter and every tensor's type
 * and shape. KB_EFORMAT naming the file and the key or tensor at fault. */
int kb_dec_model_open(struct kb_dec_model **out, const char *path, struct kb_err *err);
/* The same over an opened file, which the model then owns (closed on failure too). */
int kb_dec_model_load(struct kb_dec_model **out, struct kb_gguf *g, struct kb_err *err);
void kb_dec_model_close(struct kb_dec_model *m);
const struct kb_dec_hparams *kb_dec_model_hparams(const struct kb_dec_model *m);
const struct kb_gguf *kb_dec_model_gguf(const struct kb_dec_model *m);

/* One sequence being decoded: its KV cache (n_ctx positions) and scratch. */
struct kb_dec_state;

/* KB_DEC_KV_F16: keys and values kept as binary16, as llama.cpp keeps them by default (the
 * query and the attention weights meet them rounded to binary16 too, as in ggml). */
#define KB_DEC_KV_F16 1u

int kb_dec_state_new(struct kb_dec_state **out, const struct kb_dec_model *m, uint32_t n_ctx,
                     unsigned flags, struct kb_err *err);
void kb_dec_state_free(struct kb_dec_state *s);
/* Positions filled so far. */
uint32_t kb_dec_state_pos(const struct kb_dec_state *s);
/* Forgets positions from `pos` on (a new conversation turn reuses what is before). */
void kb_dec_state_truncate(struct kb_dec_state *s, uint32_t pos);

/* Runs `n` tokens through the model at the next positions; the logits of the last one
 * (n_vocab floats) are left in kb_dec_state_logits. KB_EINVALID for an id outside the
 * vocabulary or more tokens than the cache holds. */
int kb_dec_eval(struct kb_dec_state *s, const int32_t *tokens, size_t n, struct kb_err *err);
const float *kb_dec_state_logits(const struct kb_dec_state *s);

#endif
