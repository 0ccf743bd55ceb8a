/* encoder_int.h — the encoder's insides: weights, scratch state, the forward pass and its
 * vector math. Shared by encoder.c (loading), forward.c (compute) and the tests. */
#ifndef KB_ENCODER_ENCODER_INT_H
#define KB_ENCODER_ENCODER_INT_H

#include "encoder/encoder.h"
#include "encoder/safetensors.h"

/* One transformer layer; every matrix is (out, in) row-major as PyTorch's nn.Linear stores
 * it, so y = x W^T + b. H = hidden, I = intermediate. */
struct enc_layer {
    /* Linear weights are (out, in) as in the file (or a converted copy) */
    const float *q_w, *q_b;         /* (H, H), (H) */
    const float *k_w, *k_b;
    const float *v_w, *v_b;
    const float *attn_out_w, *attn_out_b;   /* (H, H), (H) */
    const float *attn_ln_g, *attn_ln_b;     /* (H) */
    const float *inter_w, *inter_b;         /* (I, H), (I) */
    const float *out_w, *out_b;             /* (H, I), (H) */
    const float *out_ln_g, *out_ln_b;       /* (H) */
    /* the same Linear weights packed for gemm_small.h, when enc_weights.packed; q, k and v
     * as one (3H, H) matrix with its (3H) bias, so a query computes them in one pass */
    const float *qkv_p, *qkv_b, *attn_out_p, *inter_p, *out_p;
};

struct enc_weights {
    const float *word_emb;          /* (vocab, H) */
    const float *pos_emb;           /* (max_positions, H) */
    const float *type_emb;          /* (type_vocab, H); only row 0 is used */
    const float *emb_ln_g, *emb_ln_b;
    struct enc_layer *layers;       /* n_layers */
    int packed;                     /* the layers' *_p are set: few-row multiplies (a query)
                                       run on gemm_small.h, the rest on the BLAS */
};

/* Scratch for one batch of packed tokens (llama2.c RunState): allocated at the first call
 * and grown only when a batch with more tokens arrives. T = capacity in tokens. */
struct enc_state {
    size_t cap_tokens;
    size_t cap_seq;                 /* longest sequence the scores buffers hold */
    int cap_parts;                  /* scores buffers: one per part of a pool job */
    float *x;                       /* (T, H) the residual stream */
    float *qkv;                     /* (T, 3H): q, k and v of a token side by side */
    float *ctx;                     /* (T, H) attention output before the output dense */
    float *tmp;                     /* (T, H) */
    float *inter;                   /* (T, I) */
    float *scores;                  /* cap_parts x (cap_seq, cap_seq): one head of one sequence */
    struct kb_pool *pool;       /* helpers for few-row matrix multiplies, or NULL */
};

#define KB_ENC_MAX_THREADS 16

/* A handle, or a prototype: the model as loaded from its folder, read-only from then on and
 * shared by every handle of the process opened on the same unchanged files (util/shared.h).
 * A handle is a copy of its prototype's fields that borrows all their pointers (weights,
 * tokenizer, prefixes) and owns only n_threads, rs and pool. */
struct kb_encoder {
    struct kb_encoder_info info;
    char *query_prefix, *passage_prefix;
    struct kb_safetensors st;
    struct enc_weights w;
    float **owned;                  /* converted or realigned tensors */
    size_t n_owned;
    struct kb_wordpiece *wp;        /* NULL when opened without a tokenizer */
    int n_threads;                  /* forward passes run at once on bulk work (KB_THREADS) */
    struct enc_state rs[KB_ENC_MAX_THREADS]; /* scratch, one per thread */
    struct kb_pool *pool;       /* n_threads - 1 helpers for single queries */
    struct kb_encoder *proto;       /* a handle's prototype (NULL in a prototype) */
    int shared;                     /* proto came from the process cache (else it is ours) */
};

/* Opening flags for kb_encoder_open_ex. */
#define KB_ENCODER_OPEN_NO_TOKENIZER 0x1u   /* the model alone: kb_encoder_embed is refused */

/* kb_encoder_open with flags; kb_encoder_open(out, dir, err) is open_ex(out, dir, 0, err). */
int kb_encoder_open_ex(struct kb_encoder **out, const char *model_dir, unsigned flags,
                       struct kb_err *err);

/* Runs the model on one packed batch: n_seq sequences, seq_ids[s] of seq_len[s] tokens,
 * writing pooled (and, when configured, normalised) vectors to out[n_seq * H], in scratch
 * rs (one per thread: passes on different states may run at once). The caller has checked
 * ids and lengths. KB_ENOMEM when scratch cannot grow. */
int kb_enc_forward(const struct kb_encoder *enc, struct enc_state *rs,
                   const int32_t *const *seq_ids,
                   const size_t *seq_len, size_t n_seq, float *out, struct kb_err *err);

void kb_enc_state_free(struct enc_state *rs);

/* Vector math used by the forward pass (exposed for the accuracy tests). In place on n
 * floats. erf: |error| < 5e-7 everywhere; exp: relative error < 1e-6 for x in [-87, 0],
 * 0 below (inputs are max-subtracted scores, so x <= 0). */
void kb_enc_vec_erf(float *x, size_t n);
void kb_enc_vec_exp(float *x, size_t n);
void kb_enc_vec_gelu(float *x, size_t n);

#endif
