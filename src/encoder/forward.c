/* forward.c — the BERT forward pass on packed batches: every projection is one sgemm over all tokens. */
#include "encoder/encoder_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/blas.h"
#include "encoder/gemm_small.h"
#include "util/pool.h"

#define ENC_SMALL_ROWS 64   /* up to this many rows, gemm_small beats BLAS (packed weights) */

/* Element-wise kernels work on blocks of VEC floats with a fixed-count inner loop, which gcc
 * -O2 vectorises completely; target_clones adds AVX-512 and AVX2 builds picked at load. */
#define VEC 16
#define VEC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

/* erf(x) ~ x P(x^2) / Q(x^2) on |x| <= 4 (erf(4) = 1 - 1.5e-8), a (5,5) rational fitted by
 * iteratively reweighted least squares to erf on a dense grid; max error 2e-8 in exact
 * arithmetic, about 4e-7 in float. */
static const float erf_p[6] = { 1.12837898e+00f, 1.96250276e-01f, 5.34677099e-02f,
                                4.00373481e-03f, 2.88047412e-04f, 1.97485601e-06f };
static const float erf_q[6] = { 1.00000000e+00f, 5.07253438e-01f, 1.16477017e-01f,
                                1.54445777e-02f, 1.21639038e-03f, 3.74814839e-05f };

static inline float erf_one(float x)
{
    float c = x < 4.0f ? x : 4.0f;
    c = c > -4.0f ? c : -4.0f;
    float t = c * c;
    float p = ((((erf_p[5] * t + erf_p[4]) * t + erf_p[3]) * t + erf_p[2]) * t + erf_p[1]) * t
              + erf_p[0];
    float q = ((((erf_q[5] * t + erf_q[4]) * t + erf_q[3]) * t + erf_q[2]) * t + erf_q[1]) * t
              + erf_q[0];
    return c * p / q;
}

/* exp(x) = 2^n e^r with n = round(x / ln2), |r| <= ln2/2 (ln2 split in two for an exact
 * reduction) and e^r by its degree-7 Taylor polynomial (relative error 3e-9). The rounding
 * uses the 1.5 * 2^23 trick, so the integer n is read from the sum's low mantissa bits. */
static inline float exp_one(float x)
{
    float v = x > -87.0f ? x : -87.0f;
    v = v < 88.0f ? v : 88.0f;
    float t = v * 1.44269504f + 12582912.0f;
    float n = t - 12582912.0f;
    int32_t bits;
    memcpy(&bits, &t, 4);
    int32_t scale_bits = (bits - 0x4B400000 + 127) * (1 << 23);
    float r = v - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    float scale;
    memcpy(&scale, &scale_bits, 4);
    return x < -87.0f ? 0.0f : p * scale;
}

static inline float gelu_one(float x)
{
    return 0.5f * x * (1.0f + erf_one(x * 0.70710678118654752f));
}

/* for (k = 0; k < n; k++) stmt; as fixed-width blocks plus a scalar tail. */
#define VEC_FOR(k, n, stmt)                                        \
    do {                                                           \
        size_t vi_ = 0, n_ = (n);                                  \
        for (; vi_ + VEC <= n_; vi_ += VEC)                        \
            for (size_t vj_ = 0; vj_ < VEC; vj_++) {               \
                size_t k = vi_ + vj_;                              \
                stmt;                                              \
            }                                                      \
        for (; vi_ < n_; vi_++) {                                  \
            size_t k = vi_;                                        \
            stmt;                                                  \
        }                                                          \
    } while (0)

VEC_CLONES void kb_enc_vec_erf(float *x, size_t n)
{
    VEC_FOR(i, n, x[i] = erf_one(x[i]));
}

VEC_CLONES void kb_enc_vec_exp(float *x, size_t n)
{
    VEC_FOR(i, n, x[i] = exp_one(x[i]));
}

VEC_CLONES void kb_enc_vec_gelu(float *x, size_t n)
{
    VEC_FOR(i, n, x[i] = gelu_one(x[i]));
}

/* Sum of x[0..n) with VEC partial sums (vectorises; the order is fixed for a given n). */
static inline float vec_sum(const float *x, size_t n)
{
    float acc[VEC] = { 0 };
    size_t i = 0;
    for (; i + VEC <= n; i += VEC)
        for (int j = 0; j < VEC; j++)
            acc[j] += x[i + j];
    float s = 0;
    for (; i < n; i++)
        s += x[i];
    for (int j = 0; j < VEC; j++)
        s += acc[j];
    return s;
}

static inline float vec_max(const float *x, size_t n)
{
    float acc[VEC];
    for (int j = 0; j < VEC; j++)
        acc[j] = x[0];
    size_t i = 0;
    for (; i + VEC <= n; i += VEC)
        for (int j = 0; j < VEC; j++)
            acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
    float m = x[0];
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    for (int j = 0; j < VEC; j++)
        m = acc[j] > m ? acc[j] : m;
    return m;
}

/* x = LayerNorm(x + res + res_bias) * g + b over one row of n; res and res_bias may be NULL
 * (the embeddings). Two passes for the variance, as torch does, so large means do not cancel. */
VEC_CLONES static void layer_norm_row(float *restrict x, const float *restrict res,
                                      const float *restrict res_bias, const float *restrict g,
                                      const float *restrict b, size_t n, float eps)
{
    if (res)
        VEC_FOR(i, n, x[i] += res[i] + res_bias[i]);
    float mean = vec_sum(x, n) / (float)n;
    float acc[VEC] = { 0 };
    size_t i = 0;
    for (; i + VEC <= n; i += VEC)
        for (int j = 0; j < VEC; j++)
            acc[j] += (x[i + j] - mean) * (x[i + j] - mean);
    float var = 0;
    for (; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    for (int j = 0; j < VEC; j++)
        var += acc[j];
    float inv = 1.0f / sqrtf(var / (float)n + eps);
    VEC_FOR(k, n, x[k] = (x[k] - mean) * inv * g[k] + b[k]);
}

/* x = gelu(x + bias) over one row of n. */
VEC_CLONES static void bias_gelu_row(float *restrict x, const float *restrict bias, size_t n)
{
    VEC_FOR(i, n, x[i] = gelu_one(x[i] + bias[i]));
}

/* Softmax of one row in place. */
VEC_CLONES static void softmax_row(float *x, size_t n)
{
    float max = vec_max(x, n);
    VEC_FOR(i, n, x[i] = exp_one(x[i] - max));
    float inv = 1.0f / vec_sum(x, n);
    VEC_FOR(i, n, x[i] *= inv);
}

/* A few-row multiply split by columns over the pool (multiples of 64 columns per part). */
struct linear_job {
    float *out;
    const float *in, *wp, *gelu_bias;
    int ldo, n_rows, n_in, n_out, beta;
};

static void linear_part(void *arg, int part, int n_parts)
{
    const struct linear_job *j = arg;
    int blocks = (j->n_out + 63) / 64;
    int c0 = blocks * part / n_parts * 64, c1 = blocks * (part + 1) / n_parts * 64;
    if (c1 > j->n_out)
        c1 = j->n_out;
    if (c0 >= c1)
        return;
    kb_enc_gemm_small(j->out, j->ldo, j->in, j->n_in, j->wp, j->n_out, j->n_rows, j->n_in, c0,
                      c1, j->beta);
    for (int r = 0; j->gelu_bias && r < j->n_rows; r++)
        bias_gelu_row(j->out + (size_t)r * j->ldo + c0, j->gelu_bias + c0, (size_t)(c1 - c0));
}

/* out (n_rows, n_out; row stride ldo) = in (n_rows, n_in) @ W^T, then + bias (or, with
 * gelu, gelu(. + bias)). W is stored (n_out, n_in) as in the file and wp is the same packed
 * for gemm_small.h (or NULL). A plain bias is copied into every row first and the multiply
 * accumulates onto it; without one, the caller fuses the bias into the next element-wise
 * pass. Few rows (a query) go to gemm_small on the pool, each part finishing its columns'
 * GELU; the rest go to BLAS. */
static void linear(struct enc_state *rs, float *out, size_t ldo, const float *in,
                   const float *w, const float *wp, const float *bias, int gelu, size_t n_rows,
                   int n_in, int n_out)
{
    const float *add = gelu ? NULL : bias;
    for (size_t r = 0; add && r < n_rows; r++)
        memcpy(out + r * ldo, add, (size_t)n_out * sizeof *out);
    if (wp && n_rows <= ENC_SMALL_ROWS) {
        struct linear_job job = { out,         in, wp, gelu ? bias : NULL, (int)ldo,
                                  (int)n_rows, n_in, n_out, add != NULL };
        kb_pool_run(rs->pool, linear_part, &job);
        return;
    }
    kb_blas_sgemm(0, 1, (int)n_rows, n_out, n_in, 1.0f, in, n_in, w, n_in, add ? 1.0f : 0.0f,
                  out, (int)ldo);
    for (size_t r = 0; gelu && r < n_rows; r++)
        bias_gelu_row(out + r * ldo, bias, (size_t)n_out);
}

static int state_reserve(struct enc_state *rs, size_t n_tokens, size_t max_seq, size_t hidden,
                         size_t inter, struct kb_err *err)
{
    if (n_tokens > rs->cap_tokens) {
        float **bufs[] = { &rs->x, &rs->ctx, &rs->tmp };
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
            free(*bufs[i]);
            *bufs[i] = malloc(n_tokens * hidden * sizeof(float));
        }
        free(rs->qkv);
        rs->qkv = malloc(n_tokens * 3 * hidden * sizeof(float));
        free(rs->inter);
        rs->inter = malloc(n_tokens * inter * sizeof(float));
        rs->cap_tokens = n_tokens;
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            if (!*bufs[i])
                rs->cap_tokens = 0;
        if (!rs->inter || !rs->qkv)
            rs->cap_tokens = 0;
    }
    int parts = kb_pool_parts(rs->pool);
    if (max_seq > rs->cap_seq || parts > rs->cap_parts) {
        free(rs->scores);
        rs->scores = malloc((size_t)parts * max_seq * max_seq * sizeof(float));
        rs->cap_seq = rs->scores ? max_seq : 0;
        rs->cap_parts = rs->scores ? parts : 0;
    }
    if (rs->cap_tokens < n_tokens || rs->cap_seq < max_seq || rs->cap_parts < parts)
        return kb_err_set(err, KB_ENOMEM, "encoder: out of memory for a batch of %zu tokens",
                          n_tokens);
    return 0;
}

void kb_enc_state_free(struct enc_state *rs)
{
    free(rs->x);
    free(rs->qkv);
    free(rs->ctx);
    free(rs->tmp);
    free(rs->inter);
    free(rs->scores);
    memset(rs, 0, sizeof *rs);
}

/* x row of token t of a sequence = LayerNorm(word[id] + pos[t] + type[0]). */
static void embed_tokens(const struct kb_encoder *enc, struct enc_state *rs,
                         const int32_t *const *seq_ids, const size_t *seq_len, size_t n_seq)
{
    size_t h = (size_t)enc->info.hidden_dim, row = 0;
    const struct enc_weights *w = &enc->w;
    for (size_t s = 0; s < n_seq; s++) {
        for (size_t t = 0; t < seq_len[s]; t++, row++) {
            float *x = rs->x + row * h;
            const float *word = w->word_emb + (size_t)seq_ids[s][t] * h;
            const float *pos = w->pos_emb + t * h;
            for (size_t i = 0; i < h; i++)
                x[i] = word[i] + pos[i] + w->type_emb[i];
            layer_norm_row(x, NULL, NULL, w->emb_ln_g, w->emb_ln_b, h, enc->info.layer_norm_eps);
        }
    }
}

/* Self-attention of heads [h0, h1) of one sequence of n tokens (rows of qkv, ld 3H) into
 * ctx (ld H): scores (n, n) = Q_h K_h^T / sqrt(d); softmax per row; ctx_h (n, d) = scores V_h.
 * Each sequence sees only its own tokens, which is the padding mask without the padding. */
static void attend_heads(const struct kb_encoder *enc, float *scores, const float *qkv,
                         float *ctx, size_t n, int h0, int h1)
{
    int h = enc->info.hidden_dim, d = h / enc->info.n_heads;
    float scale = 1.0f / sqrtf((float)d);
    for (int head = h0; head < h1; head++) {
        const float *q = qkv + (size_t)head * d, *k = q + h, *v = q + 2 * h;
        kb_blas_sgemm(0, 1, (int)n, (int)n, d, scale, q, 3 * h, k, 3 * h, 0.0f, scores, (int)n);
        for (size_t r = 0; r < n; r++)
            softmax_row(scores + r * n, n);
        kb_blas_sgemm(0, 0, (int)n, d, (int)n, 1.0f, scores, (int)n, v, 3 * h, 0.0f,
                      ctx + (size_t)head * d, h);
    }
}

struct attend_job {
    const struct kb_encoder *enc;
    struct enc_state *rs;
    const size_t *seq_len;
    size_t n_seq;
};

/* Every sequence's heads [heads * part / n_parts, heads * (part + 1) / n_parts). */
static void attend_part(void *arg, int part, int n_parts)
{
    const struct attend_job *j = arg;
    size_t h = (size_t)j->enc->info.hidden_dim;
    int heads = j->enc->info.n_heads;
    float *scores = j->rs->scores + (size_t)part * j->rs->cap_seq * j->rs->cap_seq;
    for (size_t s = 0, row = 0; s < j->n_seq; row += j->seq_len[s], s++)
        attend_heads(j->enc, scores, j->rs->qkv + row * 3 * h, j->rs->ctx + row * h,
                     j->seq_len[s], heads * part / n_parts, heads * (part + 1) / n_parts);
}

/* One layer over n_tokens packed rows. With cls_only (the last layer of a CLS-pooled model)
 * only each sequence's first token goes on after attention, moved to row s: keys and values
 * need every token, nothing else does. */
static void run_layer(const struct kb_encoder *enc, struct enc_state *rs,
                      const struct enc_layer *l, const size_t *seq_len, size_t n_seq,
                      size_t n_tokens, int cls_only)
{
    size_t h = (size_t)enc->info.hidden_dim, inter = (size_t)enc->info.intermediate_dim;
    float eps = enc->info.layer_norm_eps;
    /* q, k, v: (T, H) each = x (T, H) @ W^T + b, side by side in qkv (T, 3H) */
    if (l->qkv_p && n_tokens <= ENC_SMALL_ROWS) {
        linear(rs, rs->qkv, 3 * h, rs->x, NULL, l->qkv_p, l->qkv_b, 0, n_tokens, (int)h,
               3 * (int)h);
    } else {
        linear(rs, rs->qkv, 3 * h, rs->x, l->q_w, NULL, l->q_b, 0, n_tokens, (int)h, (int)h);
        linear(rs, rs->qkv + h, 3 * h, rs->x, l->k_w, NULL, l->k_b, 0, n_tokens, (int)h, (int)h);
        linear(rs, rs->qkv + 2 * h, 3 * h, rs->x, l->v_w, NULL, l->v_b, 0, n_tokens, (int)h,
               (int)h);
    }
    struct attend_job job = { enc, rs, seq_len, n_seq };
    if (n_tokens <= ENC_SMALL_ROWS)
        kb_pool_run(rs->pool, attend_part, &job);
    else
        attend_part(&job, 0, 1);
    if (cls_only) {
        for (size_t s = 0, row = 0; s < n_seq; row += seq_len[s], s++)
            if (row != s) {
                memcpy(rs->x + s * h, rs->x + row * h, h * sizeof *rs->x);
                memcpy(rs->ctx + s * h, rs->ctx + row * h, h * sizeof *rs->ctx);
            }
        n_tokens = n_seq;
    }
    /* x = LN(ctx @ Wo^T + bo + x) */
    linear(rs, rs->tmp, h, rs->ctx, l->attn_out_w, l->attn_out_p, NULL, 0, n_tokens, (int)h,
           (int)h);
    for (size_t r = 0; r < n_tokens; r++)
        layer_norm_row(rs->x + r * h, rs->tmp + r * h, l->attn_out_b, l->attn_ln_g,
                       l->attn_ln_b, h, eps);
    /* inter (T, I) = gelu(x @ Wi^T + bi); x = LN(inter @ Wo2^T + bo2 + x) */
    linear(rs, rs->inter, inter, rs->x, l->inter_w, l->inter_p, l->inter_b, 1, n_tokens,
           (int)h, (int)inter);
    linear(rs, rs->tmp, h, rs->inter, l->out_w, l->out_p, NULL, 0, n_tokens, (int)inter,
           (int)h);
    for (size_t r = 0; r < n_tokens; r++)
        layer_norm_row(rs->x + r * h, rs->tmp + r * h, l->out_b, l->out_ln_g, l->out_ln_b, h,
                       eps);
}

/* out (H) = CLS row or mean of the sequence's rows, then L2-normalised when configured. */
static void pool_sequence(const struct kb_encoder *enc, const struct enc_state *rs, size_t row0,
                          size_t n, float *out)
{
    size_t h = (size_t)enc->info.hidden_dim;
    const float *x = rs->x + row0 * h;
    if (enc->info.pooling == KB_POOL_CLS) {
        memcpy(out, x, h * sizeof *out);
    } else {
        memset(out, 0, h * sizeof *out);
        for (size_t r = 0; r < n; r++)
            for (size_t i = 0; i < h; i++)
                out[i] += x[r * h + i];
        for (size_t i = 0; i < h; i++)
            out[i] /= (float)n;
    }
    if (!enc->info.normalize)
        return;
    double norm = 0;
    for (size_t i = 0; i < h; i++)
        norm += (double)out[i] * out[i];
    float inv = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.0f;
    for (size_t i = 0; i < h; i++)
        out[i] *= inv;
}

int kb_enc_forward(const struct kb_encoder *enc, struct enc_state *rs,
                   const int32_t *const *seq_ids, const size_t *seq_len, size_t n_seq,
                   float *out, struct kb_err *err)
{
    size_t n_tokens = 0, max_seq = 0;
    for (size_t s = 0; s < n_seq; s++) {
        n_tokens += seq_len[s];
        max_seq = seq_len[s] > max_seq ? seq_len[s] : max_seq;
    }
    int rc = state_reserve(rs, n_tokens, max_seq, (size_t)enc->info.hidden_dim,
                           (size_t)enc->info.intermediate_dim, err);
    if (rc)
        return rc;
    embed_tokens(enc, rs, seq_ids, seq_len, n_seq);
    int last = enc->info.n_layers - 1, cls = enc->info.pooling == KB_POOL_CLS && last >= 0;
    for (int l = 0; l <= last; l++)
        run_layer(enc, rs, &enc->w.layers[l], seq_len, n_seq, n_tokens, cls && l == last);
    /* after a CLS-only last layer, sequence s's first token is row s */
    for (size_t s = 0, row = 0; s < n_seq; row += seq_len[s], s++)
        pool_sequence(enc, rs, cls ? s : row, seq_len[s], out + s * (size_t)enc->info.hidden_dim);
    return 0;
}
