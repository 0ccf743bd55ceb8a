/* sample.h — choosing the next token from the logits: greedy at temperature 0; otherwise a
 * repetition penalty, temperature, top-k, min-p and top-p, then a draw from a seeded
 * xorshift generator. With top-k, min-p and the penalty off, the steps and their float
 * arithmetic are llama2.c's (run.c), so its sampled outputs are reproduced exactly. */
#ifndef KB_DECODER_SAMPLE_H
#define KB_DECODER_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

struct kb_sample_params {
    float temperature;        /* <= 0: greedy */
    uint32_t top_k;           /* 0: off */
    float top_p;              /* <= 0 or >= 1: off */
    float min_p;              /* 0: off */
    float repeat_penalty;     /* 1 (or 0): off */
    uint32_t repeat_last_n;   /* tokens the penalty looks back over */
    uint64_t seed;
};

struct kb_sampler;

/* NULL when memory ran out. */
struct kb_sampler *kb_sampler_new(const struct kb_sample_params *p, size_t n_vocab);
void kb_sampler_free(struct kb_sampler *s);
/* The next token. `logits` (n_vocab) is used as scratch and changed; `recent` holds the
 * tokens so far (for the repetition penalty). */
int32_t kb_sampler_next(struct kb_sampler *s, float *logits, const int32_t *recent,
                        size_t n_recent);

#endif
