/* gemm_small.h — the encoder's matrix multiply for few rows (single queries). */
#ifndef KB_ENCODER_GEMM_SMALL_H
#define KB_ENCODER_GEMM_SMALL_H

/* 1 when the fast path exists on this CPU (AVX-512); elsewhere kb_enc_gemm_small still
 * works, slowly, and callers should use the BLAS. */
int kb_enc_gemm_small_usable(void);

/* out (m, .) columns [c0, c1) = in (m, k) @ wt (k, n) (+ out when beta), wt being a Linear
 * weight stored transposed. Row strides ldo, ldi, ldw in floats. Column ranges are
 * independent, so threads may each take one (multiples of 64 keep the fast path). */
void kb_enc_gemm_small(float *out, int ldo, const float *in, int ldi, const float *wt, int ldw,
                       int m, int k, int c0, int c1, int beta);

#endif
