/* test_blas.c — kb_blas_sgemm against a double-precision loop, and the kernel choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/blas.h"

static float blas_test_rand(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return (float)((*state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* C = A op B for every transposition, odd sizes, non-trivial alpha/beta and leading dims. */
static void blas__sgemm_matches_a_double_loop_for_every_transposition(void **state)
{
    (void)state;
    unsigned seed = 7;
    const int m = 37, n = 53, k = 129;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
            float *a = malloc(sizeof *a * (size_t)lda * (ta ? k : m));
            float *b = malloc(sizeof *b * (size_t)ldb * (tb ? n : k));
            float *c = malloc(sizeof *c * (size_t)ldc * m);
            double *want = malloc(sizeof *want * (size_t)m * n);
            for (int i = 0; i < lda * (ta ? k : m); i++) a[i] = blas_test_rand(&seed);
            for (int i = 0; i < ldb * (tb ? n : k); i++) b[i] = blas_test_rand(&seed);
            for (int i = 0; i < ldc * m; i++) c[i] = blas_test_rand(&seed);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int p = 0; p < k; p++)
                        s += (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
                             (tb ? b[j * ldb + p] : b[p * ldb + j]);
                    want[i * n + j] = 0.5 * s + 0.25 * c[i * ldc + j];
                }
            kb_blas_sgemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c, ldc);
            double worst = 0;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    worst = fmax(worst, fabs(c[i * ldc + j] - want[i * n + j]));
            assert_true(worst < 1e-4);
            free(a), free(b), free(c), free(want);
        }
}

/* On a CPU with AVX-512, the kernel in use must be an AVX-512 one whatever OpenBLAS guessed. */
static void blas__uses_the_strongest_kernel_the_cpu_supports(void **state)
{
    (void)state;
    const char *desc = kb_blas_describe();
    printf("# BLAS: %s\n", desc);
    assert_non_null(strstr(desc, "thread"));
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl")) {
        printf("# no AVX-512 on this CPU: kernel choice not checked\n");
        return;
    }
    const char *forced = getenv("OPENBLAS_CORETYPE");
    if (forced && *forced) {
        printf("# OPENBLAS_CORETYPE=%s is set: kernel choice not checked\n", forced);
        return;
    }
    assert_true(strstr(desc, "SkylakeX") || strstr(desc, "Cooperlake") ||
                strstr(desc, "SapphireRapids"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(blas__sgemm_matches_a_double_loop_for_every_transposition),
        cmocka_unit_test(blas__uses_the_strongest_kernel_the_cpu_supports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
