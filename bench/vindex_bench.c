/* vindex_bench.c — vector index query latency and recall against the memory-bandwidth floor.
 *
 * For N clustered unit vectors of dimension DIM (fixed seed), prints:
 *  - floor: the time to stream the N x DIM float matrix once with the search's threads (a sum),
 *    which no exact single-query search can beat;
 *  - flat-kb: kb_vindex_search on a FLAT index (kb's kernel);
 *  - flat-faiss: FAISS's own search of the same IDMap2,Flat index (one query at a time);
 *  - ivf, hnsw: kb_vindex_search on approximate indexes, with build time and recall@10 against
 *    flat-kb's exact results.
 * Latencies are p50/p95 over QUERIES single queries; every figure is the median of RUNS runs.
 * Usage: vindex_bench N [DIM] [QUERIES] [RUNS] [KINDS]   (KINDS: e.g. "flat,ivf,hnsw") */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

#include "index/vindex_int.h"

#define BENCH_K 10
#define BENCH_CENTERS 1000

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

/* The q-quantile (0..1) of v[0..n), sorting v. */
static double bench_quantile(double *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp);
    return v[(int)(q * (n - 1) + 0.5)];
}

static uint64_t bench_rng(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static float bench_uniform(uint64_t *s)
{
    return (float)((double)(bench_rng(s) >> 11) / 4503599627370496.0 - 1.0);
}

static void bench_normalise(float *x, int dim)
{
    double n2 = 0;
    for (int j = 0; j < dim; j++)
        n2 += (double)x[j] * x[j];
    float inv = (float)(1 / sqrt(n2));
    for (int j = 0; j < dim; j++)
        x[j] *= inv;
}

/* n rows: a random one of BENCH_CENTERS unit centres plus noise of about the same length. */
static float *bench_clustered(size_t n, int dim, const float *centers, uint64_t *rng)
{
    float *rows = malloc(n * (size_t)dim * sizeof *rows);
    float noise = (float)sqrt(3.0 / dim); /* uniform(-a, a) has variance a^2/3: |noise| ~ 1 */
    for (size_t i = 0; rows && i < n; i++) {
        const float *c = centers + (bench_rng(rng) % BENCH_CENTERS) * (size_t)dim;
        for (int j = 0; j < dim; j++)
            rows[i * dim + j] = c[j] + noise * bench_uniform(rng);
        bench_normalise(rows + i * dim, dim);
    }
    return rows;
}

struct bench_stream {
    const float *rows;
    size_t n;
    double sum;
};

typedef float bench_v16 __attribute__((vector_size(64)));

/* Sum of rows[0..n) with two 16-lane accumulators, as wide as the CPU allows. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static double bench_stream_sum(const float *rows, size_t n)
{
    bench_v16 acc0 = {0}, acc1 = {0}, x0, x1;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        memcpy(&x0, rows + i, sizeof x0);
        memcpy(&x1, rows + i + 16, sizeof x1);
        acc0 += x0;
        acc1 += x1;
    }
    acc0 += acc1;
    float lane[16];
    memcpy(lane, &acc0, sizeof lane);
    double sum = 0;
    for (int l = 0; l < 16; l++)
        sum += lane[l];
    return sum;
}

static void *bench_stream_run(void *payload)
{
    struct bench_stream *s = payload;
    s->sum = bench_stream_sum(s->rows, s->n);
    return NULL;
}

/* Seconds to read n floats once, split over n_threads threads (median of runs). */
static double bench_floor(const float *rows, size_t n, int n_threads, int runs)
{
    double t[64];
    for (int r = 0; r < runs; r++) {
        struct bench_stream parts[64];
        pthread_t threads[64];
        double start = bench_now();
        for (int p = 0; p < n_threads; p++) {
            parts[p] = (struct bench_stream){rows + n * p / n_threads, n / n_threads, 0};
            pthread_create(&threads[p], NULL, bench_stream_run, &parts[p]);
        }
        for (int p = 0; p < n_threads; p++)
            pthread_join(threads[p], NULL);
        t[r] = bench_now() - start;
        if (parts[0].sum == 12345.678) /* keep the sums alive */
            puts("");
    }
    return bench_quantile(t, runs, 0.5);
}

typedef int (*bench_search_fn)(const struct kb_vindex *vi, const float *q, int64_t *ids,
                               float *scores, size_t *n_out);

static int bench_kb_search(const struct kb_vindex *vi, const float *q, int64_t *ids,
                           float *scores, size_t *n_out)
{
    return kb_vindex_search(vi, q, BENCH_K, ids, scores, n_out, NULL);
}

static int bench_faiss_search(const struct kb_vindex *vi, const float *q, int64_t *ids,
                              float *scores, size_t *n_out)
{
    *n_out = BENCH_K;
    return faiss_Index_search(vi->index, 1, q, BENCH_K, scores, ids);
}

/* p50/p95 latency (ms) over the queries, medians over runs; the last run's ids into got. */
static void bench_latency(const struct kb_vindex *vi, bench_search_fn search, const float *queries,
                          int n_queries, int dim, int runs, int64_t *got, double out[2])
{
    double p50[64], p95[64], *lat = malloc(sizeof *lat * (size_t)n_queries);
    float scores[BENCH_K];
    for (int r = 0; r < runs; r++) {
        for (int q = 0; q < n_queries; q++) {
            size_t n_out = 0;
            int64_t *ids = got + (size_t)q * BENCH_K;
            memset(ids, 0xff, sizeof *ids * BENCH_K);
            double start = bench_now();
            if (search(vi, queries + (size_t)q * dim, ids, scores, &n_out) != 0)
                fprintf(stderr, "search failed\n");
            lat[q] = (bench_now() - start) * 1e3;
        }
        p50[r] = bench_quantile(lat, n_queries, 0.5);
        p95[r] = bench_quantile(lat, n_queries, 0.95);
    }
    out[0] = bench_quantile(p50, runs, 0.5);
    out[1] = bench_quantile(p95, runs, 0.5);
    free(lat);
}

static double bench_recall(const int64_t *got, const int64_t *exact, int n_queries)
{
    size_t found = 0;
    for (int q = 0; q < n_queries; q++)
        for (int i = 0; i < BENCH_K; i++)
            for (int j = 0; j < BENCH_K; j++)
                found += got[q * BENCH_K + i] == exact[q * BENCH_K + j];
    return (double)found / ((double)n_queries * BENCH_K);
}

struct bench_data {
    size_t n;
    int dim, n_queries, runs;
    float *base, *queries;
    int64_t *ids, *exact, *got;
};

/* Builds one index from spec text, times its queries, prints a line. */
static void bench_kind(struct bench_data *d, const char *spec_text, bench_search_fn search,
                       const char *label)
{
    struct kb_vindex_spec spec;
    struct kb_vindex *vi = NULL;
    struct kb_err err = {0};
    char spec_buf[64];
    double lat[2];
    kb_vindex_spec_parse(&spec, d->dim, spec_text, &err);
    double start = bench_now();
    if (kb_vindex_build(&vi, &spec, d->ids, d->base, d->n, &err) < 0) {
        fprintf(stderr, "%s: %s\n", label, err.msg);
        return;
    }
    double build = bench_now() - start;
    kb_vindex_get_spec(vi, &spec);
    kb_vindex_spec_format(&spec, spec_buf, sizeof spec_buf);
    int exact = spec.kind == KB_VINDEX_FLAT && search == bench_kb_search;
    bench_latency(vi, search, d->queries, d->n_queries, d->dim, d->runs,
                  exact ? d->exact : d->got, lat);
    printf("%-11s n=%-7zu %-24s p50 %7.3f ms  p95 %7.3f ms  build %6.1f s", label, d->n,
           spec_buf, lat[0], lat[1], build);
    if (!exact)
        printf("  recall@10 %.3f", bench_recall(d->got, d->exact, d->n_queries));
    printf("\n");
    fflush(stdout);
    kb_vindex_free(vi);
}

static int bench_data_make(struct bench_data *d)
{
    uint64_t rng = 0x5DEECE66DULL;
    float *centers = malloc(sizeof *centers * BENCH_CENTERS * (size_t)d->dim);
    for (size_t i = 0; centers && i < (size_t)BENCH_CENTERS * d->dim; i++)
        centers[i] = bench_uniform(&rng);
    for (int c = 0; centers && c < BENCH_CENTERS; c++)
        bench_normalise(centers + (size_t)c * d->dim, d->dim);
    d->base = centers ? bench_clustered(d->n, d->dim, centers, &rng) : NULL;
    d->queries = centers ? bench_clustered((size_t)d->n_queries, d->dim, centers, &rng) : NULL;
    d->ids = malloc(sizeof *d->ids * d->n);
    d->exact = malloc(sizeof *d->exact * (size_t)d->n_queries * BENCH_K);
    d->got = malloc(sizeof *d->got * (size_t)d->n_queries * BENCH_K);
    free(centers);
    if (!d->base || !d->queries || !d->ids || !d->exact || !d->got)
        return -1;
    for (size_t i = 0; i < d->n; i++)
        d->ids[i] = (int64_t)(i * 7 + 3);
    return 0;
}

int main(int argc, char **argv)
{
    struct bench_data d = {0};
    if (argc < 2) {
        fprintf(stderr, "usage: %s N [DIM] [QUERIES] [RUNS] [KINDS]\n", argv[0]);
        return 2;
    }
    d.n = strtoul(argv[1], NULL, 10);
    d.dim = argc > 2 ? atoi(argv[2]) : 384;
    d.n_queries = argc > 3 ? atoi(argv[3]) : 200;
    d.runs = argc > 4 ? atoi(argv[4]) : 5;
    const char *kinds = argc > 5 ? argv[5] : "flat,ivf,hnsw";
    if (d.runs < 1 || d.runs > 64 || d.n_queries < 1 || bench_data_make(&d) < 0)
        return 2;

    struct kb_vindex_spec probe;
    struct kb_vindex *vi = NULL;
    kb_vindex_spec_parse(&probe, d.dim, "flat", NULL);
    kb_vindex_build(&vi, &probe, d.ids, d.base, 16, NULL);
    int n_threads = vi ? vi->n_threads : 1;
    kb_vindex_free(vi);
    printf("floor       n=%-7zu stream %zu x %d floats, %d threads: %.3f ms\n", d.n, d.n, d.dim,
           n_threads, 1e3 * bench_floor(d.base, d.n * d.dim, n_threads, 9));

    bench_kind(&d, "flat", bench_kb_search, "flat-kb"); /* fills d.exact first */
    if (strstr(kinds, "faiss"))
        bench_kind(&d, "flat", bench_faiss_search, "flat-faiss");
    if (strstr(kinds, "ivf"))
        bench_kind(&d, getenv("BENCH_IVF") ? getenv("BENCH_IVF") : "ivf", bench_kb_search, "ivf");
    if (strstr(kinds, "hnsw"))
        bench_kind(&d, getenv("BENCH_HNSW") ? getenv("BENCH_HNSW") : "hnsw", bench_kb_search,
                   "hnsw");
    free(d.base);
    free(d.queries);
    free(d.ids);
    free(d.exact);
    free(d.got);
    return 0;
}
