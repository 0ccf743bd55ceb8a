/* kernels_int.h — what the scalar and vectorised kernels share. */
#ifndef KB_DECODER_KERNELS_INT_H
#define KB_DECODER_KERNELS_INT_H

#include <stddef.h>
#include <stdint.h>

/* The f16 at p (little-endian) as a float. */
float kb_half(const uint8_t *p);
/* Q4_K's eight 6-bit scales and minimums from its 12 packed bytes. */
void kb_q4k_scales(const uint8_t *q, int sc[8], int m[8]);
/* 16- or 32-bit float weights with float activations, one by one (the scalar kernel). */
float kb_dot_float_scalar(uint32_t type, const uint8_t *w, const float *x, size_t n);
/* kernels_avx2.c: kb_dot_q with AVX2, FMA and F16C (callers check the CPU has them). */
float kb_dot_q_avx2(uint32_t type, const void *row, const void *act, size_t n);

#endif
