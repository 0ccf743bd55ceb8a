/* blas.h — the one matrix multiply the encoder needs, on the best BLAS this machine has.
 *
 * kb_blas_sgemm computes C = alpha * op(A) op(B) + beta * C in row-major order, op being
 * identity or transpose (cblas_sgemm(CblasRowMajor, ...) semantics). The implementation picks
 * the BLAS at first use and configures it deliberately (kernel for this CPU, thread count);
 * see docs/ARCHITECTURE.md, "BLAS". */
#ifndef KB_ENCODER_BLAS_H
#define KB_ENCODER_BLAS_H

void kb_blas_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* A one-line description of the BLAS in use ("OpenBLAS 0.3.21 SkylakeX, 2 threads"). */
const char *kb_blas_describe(void);

/* Sets the number of BLAS threads (0 = number of online CPUs). */
void kb_blas_set_threads(int n_threads);

#endif
