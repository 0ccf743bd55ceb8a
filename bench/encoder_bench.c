/* encoder_bench.c — kb's encoder speed against the physical floor of this machine.
 *
 * Prints, for one model folder at a given sequence length:
 *  - floor: tokens/s of the forward pass's matrix multiplies alone (the same sgemm calls the
 *    encoder makes, on the same BLAS, nothing else) — what no fp32 implementation can beat;
 *  - kb: tokens/s of kb_model_embed end to end (tokenizer, batching, everything) on real text;
 *  - query: p50/p90 latency of embedding one short query.
 * Usage: encoder_bench MODEL_DIR TEXTS_FILE [SEQ] [SECONDS]
 * TEXTS_FILE holds one text per line (each at least SEQ tokens long, so it truncates to SEQ:
 * set max_tokens to SEQ in the model's kb_model.json). Figures are medians of 5 windows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include "encoder/blas.h"
#include "util/threads.h"
#include "kb/kb.h"

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp);
    return v[n / 2];
}

/* One forward pass's sgemms for `batch` sequences of `seq` tokens. */
static void bench_gemms(const kb_model_info *info, int inter, int batch, int seq, float *x,
                        float *w, float *y, float *big)
{
    int t = batch * seq, h = info->dim, dh = h / info->n_heads;
    for (int l = 0; l < info->n_layers; l++) {
        for (int p = 0; p < 4; p++) /* Q, K, V, attention output */
            kb_blas_sgemm(0, 1, t, h, h, 1, x, h, w, h, 0, y, h);
        for (int s = 0; s < batch; s++)
            for (int hd = 0; hd < info->n_heads; hd++) {
                const float *q = x + (size_t)s * seq * h + hd * dh;
                kb_blas_sgemm(0, 1, seq, seq, dh, 1, q, h, q, h, 0, big, seq);   /* QK^T */
                kb_blas_sgemm(0, 0, seq, dh, seq, 1, big, seq, q, h, 0, y + (size_t)s * seq * h + hd * dh, h); /* PV */
            }
        kb_blas_sgemm(0, 1, t, inter, h, 1, x, h, w, h, 0, big, inter);  /* FFN up */
        kb_blas_sgemm(0, 1, t, h, inter, 1, big, inter, w, inter, 0, y, h); /* FFN down */
    }
}

static double bench_floor(const kb_model_info *info, int inter, int batch, int seq, double secs)
{
    size_t t = (size_t)batch * seq, h = (size_t)info->dim;
    float *x = calloc(t * h, sizeof *x), *y = calloc(t * h, sizeof *y);
    float *w = calloc(h * (size_t)inter, sizeof *w);
    float *big = calloc(t * (size_t)(inter > seq ? inter : seq), sizeof *big);
    for (size_t i = 0; i < t * h; i++) x[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < h * (size_t)inter; i++) w[i] = (float)(i % 7) * 0.01f;
    double rates[5];
    bench_gemms(info, inter, batch, seq, x, w, y, big);
    for (int r = 0; r < 5; r++) {
        double t0 = bench_now(), tokens = 0;
        while (bench_now() - t0 < secs / 5) {
            bench_gemms(info, inter, batch, seq, x, w, y, big);
            tokens += (double)t;
        }
        rates[r] = tokens / (bench_now() - t0);
    }
    free(x), free(y), free(w), free(big);
    return bench_median(rates, 5);
}

/* The same GEMMs split over threads, each running half the batch on a single-threaded BLAS
 * (how kb runs bulk work); the floor is the better of the two ways. */
struct bench_floor_job {
    const kb_model_info *info;
    int inter, batch, seq;
    double secs, rate;
};

static void *bench_floor_thread(void *arg)
{
    struct bench_floor_job *j = arg;
    j->rate = bench_floor(j->info, j->inter, j->batch, j->seq, j->secs);
    return NULL;
}

static double bench_floor_parallel(const kb_model_info *info, int inter, int batch, int seq,
                                   double secs, int n_threads)
{
    struct bench_floor_job jobs[16];
    pthread_t tids[16];
    kb_blas_set_threads(1);
    for (int t = 0; t < n_threads; t++) {
        jobs[t] = (struct bench_floor_job){ info, inter, batch / n_threads, seq, secs, 0 };
        pthread_create(&tids[t], NULL, bench_floor_thread, &jobs[t]);
    }
    double total = 0;
    for (int t = 0; t < n_threads; t++) {
        pthread_join(tids[t], NULL);
        total += jobs[t].rate;
    }
    kb_blas_set_threads(0);
    return total;
}

static char **bench_read_lines(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char **lines = NULL, *line = NULL;
    size_t cap = 0, len_cap = 0;
    *n = 0;
    while (getline(&line, &len_cap, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
        if (*n == cap)
            lines = realloc(lines, sizeof *lines * (cap = cap ? cap * 2 : 256));
        lines[(*n)++] = strdup(line);
    }
    free(line);
    fclose(f);
    return lines;
}

/* Query latency alone: one short query embedded n times; prints p50/p90 in ms. */
static int bench_queries(kb_model *model, float *vecs, int n)
{
    const char *query[] = { "how do statins affect the risk of heart disease in older adults" };
    double *lat = malloc(sizeof *lat * (size_t)(n > 10 ? n : 10));
    if (!lat)
        return 1;
    n = n > 10 ? n : 10;
    for (int i = 0; i < n; i++) {
        double t0 = bench_now();
        kb_model_embed(model, query, 1, KB_EMBED_QUERY, vecs);
        lat[i] = (bench_now() - t0) * 1e3;
    }
    qsort(lat, (size_t)n, sizeof *lat, bench_cmp);
    printf("{\"runtime\":\"kb\",\"queries\":%d,\"query_p50_ms\":%.3f,\"query_p90_ms\":%.3f}\n", n,
           lat[n / 2], lat[n * 9 / 10]);
    free(lat);
    free(vecs);
    kb_model_close(model);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: encoder_bench MODEL_DIR TEXTS_FILE [SEQ] [SECONDS]\n"
                        "       SECONDS 0: query latency only (KB_BENCH_QUERIES runs)\n");
        return 2;
    }
    int seq = argc > 3 ? atoi(argv[3]) : 128, batch = 32;
    double secs = argc > 4 ? atof(argv[4]) : 10;
    kb_model *model = NULL;
    if (kb_model_open(&model, argv[1])) {
        fprintf(stderr, "encoder_bench: %s\n", kb_model_errmsg(model));
        return 1;
    }
    kb_model_info info;
    kb_model_get_info(model, &info);
    size_t n_texts = 0;
    char **texts = bench_read_lines(argv[2], &n_texts);
    if (!texts || n_texts < (size_t)batch) {
        fprintf(stderr, "encoder_bench: %s: need at least %d lines\n", argv[2], batch);
        return 1;
    }
    int inter = 4 * info.dim; /* BERT's intermediate size; read exactly below when known */
    const char *env_inter = getenv("KB_BENCH_INTERMEDIATE");
    if (env_inter)
        inter = atoi(env_inter);
    float *vecs = malloc(sizeof *vecs * (size_t)batch * info.dim);
    if (secs <= 0) {
        const char *env_q = getenv("KB_BENCH_QUERIES");
        return bench_queries(model, vecs, env_q ? atoi(env_q) : 2000);
    }
    /* Each batch: tokens = batch * min(seq, tokens of text); texts are long, so = batch * seq. */
    kb_model_embed(model, (const char *const *)texts, (size_t)batch, 0, vecs);
    double rates[5];
    size_t next = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = bench_now(), tokens = 0;
        while (bench_now() - t0 < secs / 5) {
            if (next + (size_t)batch > n_texts)
                next = 0;
            if (kb_model_embed(model, (const char *const *)texts + next, (size_t)batch, 0,
                               vecs)) {
                fprintf(stderr, "encoder_bench: %s\n", kb_model_errmsg(model));
                return 1;
            }
            next += (size_t)batch;
            tokens += (double)batch * seq;
        }
        rates[r] = tokens / (bench_now() - t0);
    }
    double kb_rate = bench_median(rates, 5);
    double floor_blas = bench_floor(&info, inter, batch, seq, secs);
    int n_threads = kb_threads_default();
    double floor_split = n_threads > 1 && n_threads <= 16
                             ? bench_floor_parallel(&info, inter, batch, seq, secs, n_threads)
                             : 0;
    double floor_rate = floor_blas > floor_split ? floor_blas : floor_split;
    /* Query latency: one short query (about 10 words, < 32 tokens). */
    const char *query[] = { "how do statins affect the risk of heart disease in older adults" };
    double lat[300];
    for (int i = 0; i < 300; i++) {
        double t0 = bench_now();
        kb_model_embed(model, query, 1, KB_EMBED_QUERY, vecs);
        lat[i] = (bench_now() - t0) * 1e3;
    }
    qsort(lat, 300, sizeof *lat, bench_cmp);
    printf("{\"runtime\":\"kb\",\"model\":\"%s\",\"dim\":%d,\"layers\":%d,\"seq\":%d,\"batch\":%d,"
           "\"blas\":\"%s\",\"floor_blas_threads\":%.0f,\"floor_split_batch\":%.0f,"
           "\"floor_tokens_per_s\":%.0f,\"tokens_per_s\":%.0f,"
           "\"fraction_of_floor\":%.3f,\"query_p50_ms\":%.2f,\"query_p90_ms\":%.2f}\n",
           argv[1], info.dim, info.n_layers, seq, batch, kb_blas_describe(), floor_blas,
           floor_split, floor_rate,
           kb_rate, kb_rate / floor_rate, lat[150], lat[270]);
    for (size_t i = 0; i < n_texts; i++)
        free(texts[i]);
    free(texts);
    free(vecs);
    kb_model_close(model);
    return 0;
}
