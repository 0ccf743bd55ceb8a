/* quant.h — the tensor types of GGUF files (ggml's type ids and block layouts) and the scalar
 * reference for each type kb computes with: a row dequantized to floats, and a row's dot
 * product with float activations. Fast kernels are tested against these. */
#ifndef KB_DECODER_QUANT_H
#define KB_DECODER_QUANT_H

#include <stddef.h>
#include <stdint.h>

enum kb_qtype_id {
    KB_Q_F32 = 0, KB_Q_F16 = 1, KB_Q_Q4_0 = 2, KB_Q_Q4_1 = 3, KB_Q_Q5_0 = 6, KB_Q_Q5_1 = 7,
    KB_Q_Q8_0 = 8, KB_Q_Q8_1 = 9, KB_Q_Q2_K = 10, KB_Q_Q3_K = 11, KB_Q_Q4_K = 12,
    KB_Q_Q5_K = 13, KB_Q_Q6_K = 14, KB_Q_Q8_K = 15, KB_Q_IQ4_NL = 20, KB_Q_IQ4_XS = 23,
    KB_Q_I8 = 24, KB_Q_I16 = 25, KB_Q_I32 = 26, KB_Q_I64 = 27, KB_Q_F64 = 28, KB_Q_BF16 = 30
};

#define KB_QK 32    /* elements per block of the _0/_1 types */
#define KB_QK_K 256 /* elements per super-block of the K types */

struct kb_qtype {
    const char *name;
    uint32_t block;     /* elements per block */
    uint32_t bytes;     /* bytes per block */
    int computes;       /* kb can dequantize and multiply with it */
};

/* The type with this id, or NULL for an id kb does not know the layout of. */
const struct kb_qtype *kb_qtype(uint32_t id);

/* The n floats of a row of type `id` (n a multiple of its block). */
void kb_dequant_row(uint32_t id, const void *row, float *out, size_t n);

/* The dot product of a row of type `id` with x[0..n): the reference, through
 * kb_dequant_row, with `scratch` of n floats. F16 and BF16 rows meet x rounded to their own
 * type, as in ggml (whose results kb is checked against). */
float kb_dot_row_ref(uint32_t id, const void *row, const float *x, size_t n, float *scratch);

#endif
