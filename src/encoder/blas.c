/* blas.c — kb_blas_sgemm over OpenBLAS's cblas_sgemm (configuration: see blas.h). */
#include "encoder/blas.h"

#include <cblas.h>

void kb_blas_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}

const char *kb_blas_describe(void)
{
    return "OpenBLAS (linked)";
}

void kb_blas_set_threads(int n_threads)
{
    (void)n_threads;
}
