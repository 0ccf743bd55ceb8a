/* gemm_small.h — the encoder's matrix multiply for few rows (single queries). */
#ifndef KB_ENCODER_GEMM_SMALL_H
#define KB_ENCODER_GEMM_SMALL_H

/* 1 when the fast path exists on this CPU (AVX-512); elsewhere kb_enc_gemm_small still
 * works, slowly, and callers should use the BLAS. */
int kb_enc_gemm_small_usable(void);

/* The packed layout of a Linear weight W (n, k) (n outputs, k inputs, row-major as PyTorch
 * stores it): W^T cut into panels of 64 columns, panel j a row-major (k, width) block at
 * offset 64 j k, width = min(64, n - 64 j). n * k floats in all. */
void kb_enc_gemm_small_pack(float *dst, const float *w, int n, int k);

/* out (m, .) columns [c0, c1) = in (m, k) @ W^T (+ out when beta), wp being W packed as
 * above. Row strides ldo, ldi in floats; c0 a multiple of 64, c1 one or n. Column ranges are
 * independent, so threads may each take one. */
void kb_enc_gemm_small(float *out, int ldo, const float *in, int ldi, const float *wp, int n,
                       int m, int k, int c0, int c1, int beta);

#endif
