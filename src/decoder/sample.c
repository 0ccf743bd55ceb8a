/* sample.c — token sampling. The draw follows llama2.c's run.c step for step (xorshift64*
 * generator, softmax in float, top-p over the candidates above (1 - p) / (n - 1) sorted by
 * probability, the coin scaled by the kept mass) so that a seed gives its answer again and
 * llama2.c's published samples can be checked; top-k, min-p and the repetition penalty (as
 * llama.cpp defines them) are applied before it when asked for. */
#include "decoder/sample.h"

#include <math.h>
#include <stdlib.h>

struct cand {
    float p;
    int32_t id;
};

struct kb_sampler {
    struct kb_sample_params p;
    size_t n_vocab;
    uint64_t rng;
    struct cand *cands;
};

struct kb_sampler *kb_sampler_new(const struct kb_sample_params *p, size_t n_vocab)
{
    struct kb_sampler *s = calloc(1, sizeof *s);
    if (!s || !(s->cands = malloc((n_vocab ? n_vocab : 1) * sizeof *s->cands))) {
        free(s);
        return NULL;
    }
    s->p = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed;
    return s;
}

void kb_sampler_free(struct kb_sampler *s)
{
    if (s)
        free(s->cands);
    free(s);
}

/* llama2.c's random_u32 / random_f32. */
static uint32_t rng_u32(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}

static float rng_f32(uint64_t *state)
{
    return (float)(rng_u32(state) >> 8) / 16777216.0f;
}

static int32_t greedy(const float *x, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

/* Descending probability; equal ones by id, so the order never depends on the sort. */
static int cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* llama.cpp's penalty: a positive logit divided by it, a negative one multiplied. */
static void penalize(const struct kb_sampler *s, float *logits, const int32_t *recent,
                     size_t n_recent)
{
    if (s->p.repeat_penalty <= 0 || s->p.repeat_penalty == 1.0f || !recent)
        return;
    size_t from = s->p.repeat_last_n && n_recent > s->p.repeat_last_n
                  ? n_recent - s->p.repeat_last_n : 0;
    for (size_t i = from; i < n_recent; i++) {
        int32_t id = recent[i];
        if (id < 0 || (size_t)id >= s->n_vocab)
            continue;
        int seen = 0; /* each token once, however often it came */
        for (size_t j = from; j < i && !seen; j++)
            seen = recent[j] == id;
        if (!seen)
            logits[id] = logits[id] > 0 ? logits[id] / s->p.repeat_penalty
                                        : logits[id] * s->p.repeat_penalty;
    }
}

/* Leaves only the k largest logits (others -inf). */
static void top_k(struct kb_sampler *s, float *logits)
{
    size_t n = s->n_vocab, k = s->p.top_k;
    if (!k || k >= n)
        return;
    for (size_t i = 0; i < n; i++)
        s->cands[i] = (struct cand){ logits[i], (int32_t)i };
    qsort(s->cands, n, sizeof *s->cands, cmp_cand);
    for (size_t i = k; i < n; i++)
        logits[s->cands[i].id] = -INFINITY;
}

static void softmax(float *x, size_t n)
{
    float max = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (size_t i = 0; i < n; i++)
        x[i] /= sum;
}

/* min-p: drops tokens less likely than min_p times the likeliest (probabilities rescaled). */
static void min_p(const struct kb_sampler *s, float *probs)
{
    if (s->p.min_p <= 0)
        return;
    size_t n = s->n_vocab;
    float max = probs[greedy(probs, n)], floor = s->p.min_p * max, sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        if (probs[i] < floor)
            probs[i] = 0.0f;
        sum += probs[i];
    }
    for (size_t i = 0; i < n; i++)
        probs[i] /= sum;
}

static int32_t draw_all(const float *probs, size_t n, float coin)
{
    float cdf = 0.0f;
    for (size_t i = 0; i < n; i++) {
        cdf += probs[i];
        if (coin < cdf)
            return (int32_t)i;
    }
    return (int32_t)(n - 1);
}

static int32_t draw_top_p(struct kb_sampler *s, const float *probs, float coin)
{
    size_t n = s->n_vocab, n0 = 0;
    float topp = s->p.top_p, cutoff = (1.0f - topp) / (float)(n - 1);
    for (size_t i = 0; i < n; i++)
        if (probs[i] >= cutoff)
            s->cands[n0++] = (struct cand){ probs[i], (int32_t)i };
    qsort(s->cands, n0, sizeof *s->cands, cmp_cand);
    float cumulative = 0.0f;
    size_t last = n0 - 1;
    for (size_t i = 0; i < n0; i++) {
        cumulative += s->cands[i].p;
        if (cumulative > topp) {
            last = i;
            break;
        }
    }
    float r = coin * cumulative, cdf = 0.0f;
    for (size_t i = 0; i <= last; i++) {
        cdf += s->cands[i].p;
        if (r < cdf)
            return s->cands[i].id;
    }
    return s->cands[last].id;
}

int32_t kb_sampler_next(struct kb_sampler *s, float *logits, const int32_t *recent,
                        size_t n_recent)
{
    size_t n = s->n_vocab;
    penalize(s, logits, recent, n_recent);
    if (s->p.temperature <= 0)
        return greedy(logits, n);
    for (size_t i = 0; i < n; i++)
        logits[i] /= s->p.temperature;
    top_k(s, logits);
    softmax(logits, n);
    min_p(s, logits);
    float coin = rng_f32(&s->rng);
    if (s->p.top_p <= 0 || s->p.top_p >= 1 || n < 2)
        return draw_all(logits, n, coin);
    return draw_top_p(s, logits, coin);
}
