/* membw.c — the memory-bandwidth floor for decoding: the rate at which THREADS threads can
 * stream-read a buffer far larger than the caches (each thread sums its own slice with AVX2
 * loads), best of a few passes, in GB/s. Usage: membw [MB] [THREADS]   (default 1024 2) */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slice {
    const __m256i *p;
    size_t n;
    long long sink;
};

static void *read_slice(void *arg)
{
    struct slice *s = arg;
    __m256i acc = _mm256_setzero_si256();
    for (size_t i = 0; i < s->n; i += 4) {
        acc = _mm256_add_epi64(acc, _mm256_load_si256(s->p + i));
        acc = _mm256_add_epi64(acc, _mm256_load_si256(s->p + i + 1));
        acc = _mm256_add_epi64(acc, _mm256_load_si256(s->p + i + 2));
        acc = _mm256_add_epi64(acc, _mm256_load_si256(s->p + i + 3));
    }
    long long out[4];
    _mm256_storeu_si256((__m256i *)out, acc);
    s->sink = out[0] + out[1] + out[2] + out[3];
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t mb = argc > 1 ? (size_t)atol(argv[1]) : 1024;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    size_t bytes = mb << 20, n = bytes / 32;
    __m256i *buf = aligned_alloc(64, bytes);
    if (!buf || threads < 1 || threads > 64)
        return 1;
    memset(buf, 1, bytes);
    double best = 0;
    for (int pass = 0; pass < 5; pass++) {
        pthread_t tid[64];
        struct slice s[64];
        double t0 = now();
        for (int t = 0; t < threads; t++) {
            size_t from = n / threads * t / 4 * 4, to = t + 1 == threads ? n : n / threads * (t + 1) / 4 * 4;
            s[t] = (struct slice){ buf + from, to - from, 0 };
            pthread_create(&tid[t], NULL, read_slice, &s[t]);
        }
        for (int t = 0; t < threads; t++)
            pthread_join(tid[t], NULL);
        double gbs = (double)bytes / (now() - t0) / 1e9;
        best = gbs > best ? gbs : best;
    }
    printf("%.1f\n", best);
    free(buf);
    return 0;
}
