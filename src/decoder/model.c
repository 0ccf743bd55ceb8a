/* model.c — llama and qwen2 decoders over a GGUF file: hyperparameters and tensors checked at
 * open, then the forward pass one token at a time (the scalar reference: every matrix-vector
 * product goes through kb_dot_row_ref). Positions rotate as llama.cpp's LLAMA_ROPE_TYPE_NORM
 * (llama: adjacent pairs) or _NEOX (qwen2: the two halves of each head), with Llama 3's
 * per-frequency factors (rope_freqs.weight) when the file has them. */
#include "decoder/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/kernels.h"
#include "decoder/quant.h"
#include "util/half.h"
#include "util/pool.h"
#include "util/threads.h"

struct dec_layer {
    const struct kb_gguf_tensor *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv;
    const struct kb_gguf_tensor *ffn_norm, *w_gate, *w_up, *w_down;
};

struct kb_dec_model {
    struct kb_gguf *g;
    struct kb_dec_hparams hp;
    const struct kb_gguf_tensor *tok_embd, *out_norm, *output;
    struct dec_layer *layers;
    float *inv_freq;          /* n_rot / 2 rotation frequencies, factors applied */
    size_t max_row;           /* the longest row of any matrix */
};

/* Prompt tokens run through the layers together, so that each weight row read is used by
 * up to this many tokens (prefill); generation runs one at a time. */
#define DEC_BATCH 32

struct kb_dec_state {
    const struct kb_dec_model *m;
    uint32_t n_ctx, pos;
    unsigned flags;
    size_t kv_dim, q_dim, wide; /* wide: the larger of n_embd and q_dim */
    float *k_cache, *v_cache; /* [layer][pos][kv_dim] */
    /* DEC_BATCH rows each, one per token of a batch: */
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2;
    float *scores, *logits, *norm_w, *bias;
    uint8_t *act;             /* each token's input to a product, quantized */
    size_t act_stride;
    struct kb_pool *pool;     /* helpers splitting the rows of a product, or NULL */
    float **part_scratch;     /* a row's dequantized floats, per part (the float path) */
    int n_parts;
};

/* Products smaller than this run on the calling thread alone: a hand-off costs more. */
#define DEC_PARALLEL_MIN_WEIGHTS (1u << 16)

/* ---- opening -------------------------------------------------------------------------- */

static int hp_u32(struct kb_dec_model *m, const char *key, uint32_t *out, int required,
                  struct kb_err *err)
{
    char full[96];
    snprintf(full, sizeof full, "%s.%s", m->hp.arch, key);
    int rc = kb_gguf_get_u32(m->g, full, out, err);
    if (rc == KB_ENOTFOUND && !required)
        return 0;
    if (rc == KB_ENOTFOUND)
        return kb_err_set(err, KB_EFORMAT, "%s: key '%s' is missing", m->g->path, full);
    return rc;
}

static int hp_f32(struct kb_dec_model *m, const char *key, float *out, struct kb_err *err)
{
    char full[96];
    snprintf(full, sizeof full, "%s.%s", m->hp.arch, key);
    int rc = kb_gguf_get_f32(m->g, full, out, err);
    return rc == KB_ENOTFOUND ? 0 : rc;
}

static int model_hparams(struct kb_dec_model *m, struct kb_err *err)
{
    struct kb_dec_hparams *hp = &m->hp;
    struct kb_gguf_str arch;
    int rc = kb_gguf_get_str(m->g, "general.architecture", &arch, err);
    if (rc == KB_ENOTFOUND)
        return kb_err_set(err, KB_EFORMAT, "%s: key 'general.architecture' is missing",
                          m->g->path);
    if (rc)
        return rc;
    if (!((arch.len == 5 && !memcmp(arch.p, "llama", 5)) ||
          (arch.len == 5 && !memcmp(arch.p, "qwen2", 5))))
        return kb_err_set(err, KB_EFORMAT, "%s: architecture '%.*s' is not one kb runs (llama, "
                          "qwen2)", m->g->path, (int)(arch.len < 64 ? arch.len : 64), arch.p);
    memcpy(hp->arch, arch.p, arch.len);
    hp->arch[arch.len] = '\0';
    hp->rope_neox = !strcmp(hp->arch, "qwen2");
    hp->norm_eps = 1e-5f;
    hp->rope_base = 10000.0f;
    if ((rc = hp_u32(m, "embedding_length", &hp->n_embd, 1, err)) ||
        (rc = hp_u32(m, "block_count", &hp->n_layer, 1, err)) ||
        (rc = hp_u32(m, "feed_forward_length", &hp->n_ff, 1, err)) ||
        (rc = hp_u32(m, "attention.head_count", &hp->n_head, 1, err)) ||
        (rc = hp_u32(m, "context_length", &hp->n_ctx_train, 0, err)) ||
        (rc = hp_f32(m, "attention.layer_norm_rms_epsilon", &hp->norm_eps, err)) ||
        (rc = hp_f32(m, "rope.freq_base", &hp->rope_base, err)))
        return rc;
    hp->n_head_kv = hp->n_head;
    if ((rc = hp_u32(m, "attention.head_count_kv", &hp->n_head_kv, 0, err)))
        return rc;
    if (!hp->n_embd || !hp->n_layer || !hp->n_ff || !hp->n_head || !hp->n_head_kv ||
        hp->n_embd % hp->n_head || hp->n_head % hp->n_head_kv || hp->n_layer > 1024 ||
        !(hp->norm_eps > 0) || !(hp->rope_base > 0))
        return kb_err_set(err, KB_EFORMAT, "%s: impossible hyperparameters (embedding %u, "
                          "%u layers, %u heads, %u KV heads, ffn %u)", m->g->path, hp->n_embd,
                          hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff);
    hp->head_dim = hp->n_embd / hp->n_head;
    uint32_t key_len = hp->head_dim;
    if ((rc = hp_u32(m, "attention.key_length", &key_len, 0, err)))
        return rc;
    if (key_len != hp->head_dim)
        return kb_err_set(err, KB_EFORMAT, "%s: attention.key_length %u differs from the "
                          "embedding per head (%u); kb does not run such models", m->g->path,
                          key_len, hp->head_dim);
    hp->n_rot = hp->head_dim;
    if ((rc = hp_u32(m, "rope.dimension_count", &hp->n_rot, 0, err)))
        return rc;
    if (hp->n_rot == 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return kb_err_set(err, KB_EFORMAT, "%s: rope.dimension_count %u does not fit heads of "
                          "%u", m->g->path, hp->n_rot, hp->head_dim);
    return 0;
}

/* The tensor `name` with the given shape (ne1 = 0: a vector), of a type kb computes with;
 * NULL in *out when absent and !required. */
static int model_tensor(struct kb_dec_model *m, const char *name, uint64_t ne0, uint64_t ne1,
                        int required, const struct kb_gguf_tensor **out, struct kb_err *err)
{
    const struct kb_gguf_tensor *t = kb_gguf_tensor(m->g, name);
    *out = t;
    if (!t)
        return required ? kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' is missing", m->g->path,
                                     name) : 0;
    int vector = ne1 == 0;
    if (t->ne[0] != ne0 || t->ne[1] != (vector ? 1 : ne1) || t->ne[2] != 1 || t->ne[3] != 1)
        return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' is [%llu, %llu, %llu, %llu]; the "
                          "model's sizes need [%llu%s%.0llu]", m->g->path, name,
                          (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                          (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                          (unsigned long long)ne0, vector ? "" : ", ",
                          (unsigned long long)ne1);
    const struct kb_qtype *q = kb_qtype(t->type);
    if (!q->computes)
        return kb_err_set(err, KB_EFORMAT, "%s: tensor '%s' has type %s, which kb cannot "
                          "compute with", m->g->path, name, q->name);
    if (!vector && t->ne[0] > m->max_row)
        m->max_row = (size_t)t->ne[0];
    return 0;
}

static int model_layer(struct kb_dec_model *m, uint32_t i, struct kb_err *err)
{
    const struct kb_dec_hparams *hp = &m->hp;
    struct dec_layer *l = &m->layers[i];
    uint64_t e = hp->n_embd, q = (uint64_t)hp->n_head * hp->head_dim;
    uint64_t kv = (uint64_t)hp->n_head_kv * hp->head_dim, f = hp->n_ff;
    struct { const char *suffix; uint64_t ne0, ne1; int required; const struct kb_gguf_tensor **t; }
    want[] = {
        { "attn_norm.weight", e, 0, 1, &l->attn_norm }, { "attn_q.weight", e, q, 1, &l->wq },
        { "attn_k.weight", e, kv, 1, &l->wk }, { "attn_v.weight", e, kv, 1, &l->wv },
        { "attn_output.weight", q, e, 1, &l->wo }, { "attn_q.bias", q, 0, 0, &l->bq },
        { "attn_k.bias", kv, 0, 0, &l->bk }, { "attn_v.bias", kv, 0, 0, &l->bv },
        { "ffn_norm.weight", e, 0, 1, &l->ffn_norm }, { "ffn_gate.weight", e, f, 1, &l->w_gate },
        { "ffn_up.weight", e, f, 1, &l->w_up }, { "ffn_down.weight", f, e, 1, &l->w_down },
    };
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%u.%s", i, want[k].suffix);
        int rc = model_tensor(m, name, want[k].ne0, want[k].ne1, want[k].required, want[k].t,
                              err);
        if (rc)
            return rc;
    }
    return 0;
}

/* inv_freq[i] = base^(-2i / n_rot), divided by Llama 3's factor for i when the file has
 * rope_freqs.weight. */
static int model_rope(struct kb_dec_model *m, struct kb_err *err)
{
    const struct kb_dec_hparams *hp = &m->hp;
    const struct kb_gguf_tensor *ff;
    int rc = model_tensor(m, "rope_freqs.weight", hp->n_rot / 2, 0, 0, &ff, err);
    if (rc)
        return rc;
    m->inv_freq = malloc(hp->n_rot / 2 * sizeof *m->inv_freq);
    float *factors = malloc(hp->n_rot / 2 * sizeof *factors);
    if (!m->inv_freq || !factors) {
        free(factors);
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", m->g->path);
    }
    if (ff)
        kb_dequant_row(ff->type, ff->data, factors, hp->n_rot / 2);
    for (uint32_t i = 0; i < hp->n_rot / 2; i++) {
        double f = pow((double)hp->rope_base, -2.0 * i / (double)hp->n_rot);
        m->inv_freq[i] = (float)(ff ? f / factors[i] : f);
    }
    free(factors);
    return 0;
}

static int model_load(struct kb_dec_model *m, struct kb_err *err)
{
    int rc = model_hparams(m, err);
    if (rc)
        return rc;
    struct kb_dec_hparams *hp = &m->hp;
    const struct kb_gguf_tensor *te = kb_gguf_tensor(m->g, "token_embd.weight");
    if (!te)
        return kb_err_set(err, KB_EFORMAT, "%s: tensor 'token_embd.weight' is missing",
                          m->g->path);
    if (te->ne[1] > INT32_MAX)
        return kb_err_set(err, KB_EFORMAT, "%s: a vocabulary of %llu tokens", m->g->path,
                          (unsigned long long)te->ne[1]);
    hp->n_vocab = (uint32_t)te->ne[1];
    if ((rc = model_tensor(m, "token_embd.weight", hp->n_embd, hp->n_vocab, 1, &m->tok_embd,
                           err)) ||
        (rc = model_tensor(m, "output_norm.weight", hp->n_embd, 0, 1, &m->out_norm, err)) ||
        (rc = model_tensor(m, "output.weight", hp->n_embd, hp->n_vocab, 0, &m->output, err)) ||
        (rc = model_rope(m, err)))
        return rc;
    if (!m->output)
        m->output = m->tok_embd; /* tied embeddings */
    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers)
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", m->g->path);
    for (uint32_t i = 0; i < hp->n_layer && !rc; i++)
        rc = model_layer(m, i, err);
    return rc;
}

int kb_dec_model_load(struct kb_dec_model **out, struct kb_gguf *g, struct kb_err *err)
{
    *out = NULL;
    struct kb_dec_model *m = calloc(1, sizeof *m);
    if (!m) {
        kb_gguf_close(g);
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", g->path);
    }
    m->g = g;
    int rc = model_load(m, err);
    if (rc) {
        kb_dec_model_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

int kb_dec_model_open(struct kb_dec_model **out, const char *path, struct kb_err *err)
{
    *out = NULL;
    struct kb_gguf *g;
    int rc = kb_gguf_open(&g, path, err);
    return rc ? rc : kb_dec_model_load(out, g, err);
}

void kb_dec_model_close(struct kb_dec_model *m)
{
    if (!m)
        return;
    kb_gguf_close(m->g);
    free(m->layers);
    free(m->inv_freq);
    free(m);
}

const struct kb_dec_hparams *kb_dec_model_hparams(const struct kb_dec_model *m)
{
    return &m->hp;
}

const struct kb_gguf *kb_dec_model_gguf(const struct kb_dec_model *m)
{
    return m->g;
}

/* ---- state ---------------------------------------------------------------------------- */

int kb_dec_state_new(struct kb_dec_state **out, const struct kb_dec_model *m, uint32_t n_ctx,
                     unsigned flags, struct kb_err *err)
{
    *out = NULL;
    const struct kb_dec_hparams *hp = &m->hp;
    struct kb_dec_state *s = calloc(1, sizeof *s);
    if (!s)
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    s->m = m;
    s->flags = flags;
    s->n_ctx = n_ctx ? n_ctx : 1;
    s->kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    s->q_dim = (size_t)hp->n_head * hp->head_dim;
    s->wide = hp->n_embd > s->q_dim ? hp->n_embd : s->q_dim;
    size_t cache = (size_t)hp->n_layer * s->n_ctx * s->kv_dim, B = DEC_BATCH;
    size_t widest = m->max_row > s->wide ? m->max_row : s->wide;
    s->act_stride = kb_act_bytes(KB_ACT_F32, widest) + 64; /* the largest form of an input */
    s->k_cache = malloc(cache * sizeof(float));
    s->v_cache = malloc(cache * sizeof(float));
    s->x = malloc(B * hp->n_embd * sizeof(float));
    s->xb = malloc(B * s->wide * sizeof(float));
    s->q = malloc(B * s->q_dim * sizeof(float));
    s->k = malloc(B * s->kv_dim * sizeof(float));
    s->v = malloc(B * s->kv_dim * sizeof(float));
    s->att = malloc(B * s->q_dim * sizeof(float));
    s->hb = malloc(B * hp->n_ff * sizeof(float));
    s->hb2 = malloc(B * hp->n_ff * sizeof(float));
    s->scores = malloc(s->n_ctx * sizeof(float));
    s->logits = malloc(hp->n_vocab * sizeof(float));
    s->norm_w = malloc(s->wide * sizeof(float));
    s->bias = malloc(s->wide * sizeof(float));
    s->act = malloc(B * s->act_stride);
    int threads = kb_threads_default();
    s->pool = threads > 1 ? kb_pool_start(threads - 1) : NULL; /* NULL: one thread */
    int parts = kb_pool_parts(s->pool);
    s->part_scratch = calloc((size_t)parts, sizeof *s->part_scratch);
    for (int i = 0; s->part_scratch && i < parts; i++, s->n_parts++)
        if (!(s->part_scratch[i] = malloc(widest * sizeof(float))))
            break;
    if (!s->k_cache || !s->v_cache || !s->x || !s->xb || !s->q || !s->k || !s->v || !s->att ||
        !s->hb || !s->hb2 || !s->scores || !s->logits || !s->norm_w || !s->bias || !s->act ||
        s->n_parts != parts) {
        kb_dec_state_free(s);
        return kb_err_set(err, KB_ENOMEM, "out of memory for a context of %u tokens", n_ctx);
    }
    *out = s;
    return 0;
}

void kb_dec_state_free(struct kb_dec_state *s)
{
    if (!s)
        return;
    float *bufs[] = { s->k_cache, s->v_cache, s->x, s->xb, s->q, s->k, s->v, s->att, s->hb,
                      s->hb2, s->scores, s->logits, s->norm_w, s->bias };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    for (int i = 0; s->part_scratch && i < s->n_parts; i++)
        free(s->part_scratch[i]);
    free(s->part_scratch);
    kb_pool_stop(s->pool);
    free(s->act);
    free(s);
}

uint32_t kb_dec_state_pos(const struct kb_dec_state *s)
{
    return s->pos;
}

void kb_dec_state_truncate(struct kb_dec_state *s, uint32_t pos)
{
    if (pos < s->pos)
        s->pos = pos;
}

const float *kb_dec_state_logits(const struct kb_dec_state *s)
{
    return s->logits;
}

/* ---- the forward pass ----------------------------------------------------------------- */

/* Y[t] = W X[t] for the nb tokens of a batch, split by rows between the pool's parts: each row
 * is read once for all of them. */
struct matvec_job {
    struct kb_dec_state *s;
    const struct kb_gguf_tensor *w;
    const float *x;
    float *y;
    size_t x_stride, y_stride, nb;
    enum kb_act_type act;
};

static void matvec_part(void *arg, int part, int n_parts)
{
    const struct matvec_job *j = arg;
    const struct kb_gguf_tensor *w = j->w;
    size_t n = (size_t)w->ne[0], rows = (size_t)w->ne[1];
    size_t from = rows * (size_t)part / (size_t)n_parts;
    size_t to = rows * (size_t)(part + 1) / (size_t)n_parts;
    for (size_t r = from; r < to; r++) {
        const uint8_t *row = w->data + r * w->row_bytes;
        for (size_t t = 0; t < j->nb; t++)
            j->y[t * j->y_stride + r] =
                j->act != KB_ACT_NONE
                ? kb_dot_q(w->type, row, j->s->act + t * j->s->act_stride, n)
                : kb_dot_row_ref(w->type, row, j->x + t * j->x_stride, n,
                                 j->s->part_scratch[part]);
    }
}

/* The products of a batch: with the activations quantized as ggml does for the types that
 * have integer kernels, else through the float reference. */
static void matvec(struct kb_dec_state *s, const struct kb_gguf_tensor *w, const float *x,
                   size_t x_stride, float *y, size_t y_stride, size_t nb)
{
    struct matvec_job j = { s, w, x, y, x_stride, y_stride, nb, kb_act_type_for(w->type) };
    for (size_t t = 0; j.act != KB_ACT_NONE && t < nb; t++)
        kb_act_quantize(j.act, x + t * x_stride, s->act + t * s->act_stride, (size_t)w->ne[0]);
    if (s->pool && w->ne[0] * w->ne[1] * nb >= DEC_PARALLEL_MIN_WEIGHTS)
        kb_pool_run(s->pool, matvec_part, &j);
    else
        matvec_part(&j, 0, 1);
}

static void add_bias(struct kb_dec_state *s, const struct kb_gguf_tensor *b, float *y,
                     size_t stride, size_t nb)
{
    if (!b)
        return;
    kb_dequant_row(b->type, b->data, s->bias, (size_t)b->ne[0]);
    for (size_t t = 0; t < nb; t++)
        for (uint64_t i = 0; i < b->ne[0]; i++)
            y[t * stride + i] += s->bias[i];
}

/* out[t] = RMSNorm(x[t]) * w for each token of the batch. */
static void rmsnorm(struct kb_dec_state *s, float *out, size_t out_stride, const float *x,
                    const struct kb_gguf_tensor *w, size_t n, size_t nb)
{
    kb_dequant_row(w->type, w->data, s->norm_w, n);
    for (size_t t = 0; t < nb; t++, out += out_stride, x += n) {
        double ss = 0;
        for (size_t i = 0; i < n; i++)
            ss += (double)x[i] * x[i];
        float scale = (float)(1.0 / sqrt(ss / (double)n + (double)s->m->hp.norm_eps));
        for (size_t i = 0; i < n; i++)
            out[i] = x[i] * scale * s->norm_w[i];
    }
}

/* Rotates each of n_heads heads of v (head_dim apart) for position pos. */
static void rope(const struct kb_dec_model *m, float *v, uint32_t n_heads, uint32_t pos)
{
    const struct kb_dec_hparams *hp = &m->hp;
    uint32_t half = hp->n_rot / 2;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * hp->head_dim;
        for (uint32_t i = 0; i < half; i++) {
            float theta = (float)pos * m->inv_freq[i];
            float c = cosf(theta), sn = sinf(theta);
            uint32_t a = hp->rope_neox ? i : 2 * i, b = hp->rope_neox ? i + half : 2 * i + 1;
            float x0 = x[a], x1 = x[b];
            x[a] = x0 * c - x1 * sn;
            x[b] = x0 * sn + x1 * c;
        }
    }
}

static void round_f16(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = kb_f16_to_f32(kb_f32_to_f16(x[i]));
}

/* Token t's attention output (s->att row t) over positions 0..pos of the layer's cache. */
static void attention(struct kb_dec_state *s, uint32_t layer, size_t t, uint32_t pos)
{
    const struct kb_dec_hparams *hp = &s->m->hp;
    size_t hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const float *kc = s->k_cache + (size_t)layer * s->n_ctx * s->kv_dim;
    const float *vc = s->v_cache + (size_t)layer * s->n_ctx * s->kv_dim;
    float scale = 1.0f / sqrtf((float)hd);
    for (uint32_t h = 0; h < hp->n_head; h++) {
        const float *q = s->q + t * s->q_dim + h * hd;
        size_t kvo = (h / group) * hd;
        float max = -INFINITY;
        for (uint32_t p = 0; p <= pos; p++) {
            const float *k = kc + p * s->kv_dim + kvo;
            float dot = 0;
            for (size_t i = 0; i < hd; i++)
                dot += q[i] * k[i];
            s->scores[p] = dot * scale;
            if (s->scores[p] > max)
                max = s->scores[p];
        }
        double sum = 0;
        for (uint32_t p = 0; p <= pos; p++) {
            s->scores[p] = expf(s->scores[p] - max);
            sum += s->scores[p];
        }
        float *out = s->att + t * s->q_dim + h * hd;
        memset(out, 0, hd * sizeof *out);
        for (uint32_t p = 0; p <= pos; p++) {
            const float *v = vc + p * s->kv_dim + kvo;
            float w = (float)(s->scores[p] / sum);
            if (s->flags & KB_DEC_KV_F16)
                w = kb_f16_to_f32(kb_f32_to_f16(w));
            for (size_t i = 0; i < hd; i++)
                out[i] += w * v[i];
        }
    }
}

/* Queries, keys and values of the batch's nb tokens at positions pos0..; keys and values go
 * into the cache before any token attends, so each sees the ones before it. */
static void layer_attention(struct kb_dec_state *s, uint32_t li, size_t nb, uint32_t pos0)
{
    const struct kb_dec_model *m = s->m;
    const struct kb_dec_hparams *hp = &m->hp;
    const struct dec_layer *l = &m->layers[li];
    size_t e = hp->n_embd;
    rmsnorm(s, s->xb, s->wide, s->x, l->attn_norm, e, nb);
    matvec(s, l->wq, s->xb, s->wide, s->q, s->q_dim, nb);
    matvec(s, l->wk, s->xb, s->wide, s->k, s->kv_dim, nb);
    matvec(s, l->wv, s->xb, s->wide, s->v, s->kv_dim, nb);
    add_bias(s, l->bq, s->q, s->q_dim, nb);
    add_bias(s, l->bk, s->k, s->kv_dim, nb);
    add_bias(s, l->bv, s->v, s->kv_dim, nb);
    for (size_t t = 0; t < nb; t++) {
        float *q = s->q + t * s->q_dim, *k = s->k + t * s->kv_dim, *v = s->v + t * s->kv_dim;
        rope(m, q, hp->n_head, pos0 + (uint32_t)t);
        rope(m, k, hp->n_head_kv, pos0 + (uint32_t)t);
        if (s->flags & KB_DEC_KV_F16) {
            round_f16(k, s->kv_dim);
            round_f16(v, s->kv_dim);
            round_f16(q, s->q_dim);
        }
        size_t at = ((size_t)li * s->n_ctx + pos0 + t) * s->kv_dim;
        memcpy(s->k_cache + at, k, s->kv_dim * sizeof(float));
        memcpy(s->v_cache + at, v, s->kv_dim * sizeof(float));
    }
    for (size_t t = 0; t < nb; t++)
        attention(s, li, t, pos0 + (uint32_t)t);
    matvec(s, l->wo, s->att, s->q_dim, s->xb, s->wide, nb);
    for (size_t t = 0; t < nb; t++)
        for (size_t i = 0; i < e; i++)
            s->x[t * e + i] += s->xb[t * s->wide + i];
}

static void layer_ffn(struct kb_dec_state *s, uint32_t li, size_t nb)
{
    const struct kb_dec_hparams *hp = &s->m->hp;
    const struct dec_layer *l = &s->m->layers[li];
    size_t e = hp->n_embd, f = hp->n_ff;
    rmsnorm(s, s->xb, s->wide, s->x, l->ffn_norm, e, nb);
    matvec(s, l->w_gate, s->xb, s->wide, s->hb, f, nb);
    matvec(s, l->w_up, s->xb, s->wide, s->hb2, f, nb);
    for (size_t i = 0; i < nb * f; i++) {
        float g = s->hb[i];
        s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i];
    }
    matvec(s, l->w_down, s->hb, f, s->xb, s->wide, nb);
    for (size_t t = 0; t < nb; t++)
        for (size_t i = 0; i < e; i++)
            s->x[t * e + i] += s->xb[t * s->wide + i];
}

/* nb tokens at the next positions; the logits of the last when want_logits. */
static void batch_forward(struct kb_dec_state *s, const int32_t *tokens, size_t nb,
                          int want_logits)
{
    const struct kb_dec_model *m = s->m;
    const struct kb_gguf_tensor *te = m->tok_embd;
    size_t e = m->hp.n_embd;
    for (size_t t = 0; t < nb; t++)
        kb_dequant_row(te->type, te->data + (uint64_t)tokens[t] * te->row_bytes, s->x + t * e, e);
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        layer_attention(s, l, nb, s->pos);
        layer_ffn(s, l, nb);
    }
    if (want_logits) {
        rmsnorm(s, s->xb, s->wide, s->x + (nb - 1) * e, m->out_norm, e, 1);
        matvec(s, m->output, s->xb, s->wide, s->logits, 0, 1);
    }
    s->pos += (uint32_t)nb;
}

int kb_dec_eval(struct kb_dec_state *s, const int32_t *tokens, size_t n, struct kb_err *err)
{
    const struct kb_dec_hparams *hp = &s->m->hp;
    if (n > s->n_ctx - s->pos)
        return kb_err_set(err, KB_EINVALID, "%zu tokens do not fit: %u of the context's %u "
                          "positions are left", n, s->n_ctx - s->pos, s->n_ctx);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= hp->n_vocab)
            return kb_err_set(err, KB_EINVALID, "token id %d is outside the vocabulary "
                              "(0 to %u)", tokens[i], hp->n_vocab - 1);
    for (size_t i = 0; i < n; i += DEC_BATCH) {
        size_t nb = n - i < DEC_BATCH ? n - i : DEC_BATCH;
        batch_forward(s, tokens + i, nb, i + nb == n);
    }
    return 0;
}
