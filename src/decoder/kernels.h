/* kernels.h — the decoder's matrix-vector dot products on quantized weights, as ggml computes
 * them: the activations are quantized too (to Q8_0 blocks of 32, or Q8_K super-blocks of 256
 * with sums of each 16), and each block's products are summed in integers, then scaled. A
 * scalar version of each kernel is the twin the vectorised ones (AVX2, chosen at run time) are
 * tested against. 16- and 32-bit float weights meet float activations (rounded to the weights'
 * type, as ggml does). Types without a kernel here use the float reference (quant.h). */
#ifndef KB_DECODER_KERNELS_H
#define KB_DECODER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Q8_0 activations: 34 bytes per 32 values (f16 scale, 32 int8). Q8_K: 292 bytes per 256
 * values (f32 scale, 256 int8, 16 int16 sums of 16). */
#define KB_Q8_0_BYTES 34
#define KB_Q8_K_BYTES 292

/* F16, BF16: floats rounded to the weights' 16-bit type first, as ggml does; F32: as they are. */
enum kb_act_type { KB_ACT_NONE = 0, KB_ACT_Q8_0, KB_ACT_Q8_K, KB_ACT_F16, KB_ACT_BF16,
                   KB_ACT_F32 };

/* The activation type a weight type's integer kernel takes; KB_ACT_NONE: the float path. */
enum kb_act_type kb_act_type_for(uint32_t weight_type);
/* Bytes of n activations quantized to `act` (n a multiple of its block). */
size_t kb_act_bytes(enum kb_act_type act, size_t n);
/* Quantizes x[0..n) as ggml's quantize_row_q8_0 / quantize_row_q8_K do. */
void kb_act_quantize(enum kb_act_type act, const float *x, void *out, size_t n);

/* The dot product of a weight row of type `type` with activations quantized to
 * kb_act_type_for(type). kb_dot_q picks the fastest kernel this CPU runs; kb_dot_q_scalar is
 * the portable twin. */
float kb_dot_q(uint32_t type, const void *row, const void *act, size_t n);
float kb_dot_q_scalar(uint32_t type, const void *row, const void *act, size_t n);

/* Which kernels kb_dot_q uses: "avx2" or "scalar". */
const char *kb_kernels_name(void);

#endif
