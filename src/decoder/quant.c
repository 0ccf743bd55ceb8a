/* quant.c — ggml's block layouts, read byte by byte (little-endian, no struct padding
 * assumed), and the scalar reference dequantization of every type kb computes with. The
 * layouts are those of ggml-common.h: a _0 block is a scale and 32 quants (value = q * d), a
 * _1 block adds a minimum (value = q * d + m), the _5 types keep each quant's fifth bit in a
 * 32-bit mask, and the K types group 256 values into sub-blocks with 6- or 8-bit scales. */
#include "decoder/quant.h"

#include <string.h>

#include "util/half.h"

static const struct kb_qtype qtypes[] = {
    [KB_Q_F32] = { "F32", 1, 4, 1 },
    [KB_Q_F16] = { "F16", 1, 2, 1 },
    [KB_Q_Q4_0] = { "Q4_0", KB_QK, 2 + 16, 1 },
    [KB_Q_Q4_1] = { "Q4_1", KB_QK, 4 + 16, 1 },
    [KB_Q_Q5_0] = { "Q5_0", KB_QK, 2 + 4 + 16, 1 },
    [KB_Q_Q5_1] = { "Q5_1", KB_QK, 4 + 4 + 16, 1 },
    [KB_Q_Q8_0] = { "Q8_0", KB_QK, 2 + 32, 1 },
    [KB_Q_Q8_1] = { "Q8_1", KB_QK, 4 + 32, 0 },
    [KB_Q_Q2_K] = { "Q2_K", KB_QK_K, 16 + 64 + 4, 0 },
    [KB_Q_Q3_K] = { "Q3_K", KB_QK_K, 32 + 64 + 12 + 2, 0 },
    [KB_Q_Q4_K] = { "Q4_K", KB_QK_K, 4 + 12 + 128, 1 },
    [KB_Q_Q5_K] = { "Q5_K", KB_QK_K, 4 + 12 + 32 + 128, 1 },
    [KB_Q_Q6_K] = { "Q6_K", KB_QK_K, 128 + 64 + 16 + 2, 1 },
    [KB_Q_Q8_K] = { "Q8_K", KB_QK_K, 4 + 256 + 32, 0 },
    [KB_Q_IQ4_NL] = { "IQ4_NL", KB_QK, 2 + 16, 0 },
    [KB_Q_IQ4_XS] = { "IQ4_XS", KB_QK_K, 2 + 2 + 4 + 128, 0 },
    [KB_Q_I8] = { "I8", 1, 1, 0 },
    [KB_Q_I16] = { "I16", 1, 2, 0 },
    [KB_Q_I32] = { "I32", 1, 4, 0 },
    [KB_Q_I64] = { "I64", 1, 8, 0 },
    [KB_Q_F64] = { "F64", 1, 8, 0 },
    [KB_Q_BF16] = { "BF16", 1, 2, 1 },
};

const struct kb_qtype *kb_qtype(uint32_t id)
{
    if (id >= sizeof qtypes / sizeof *qtypes || !qtypes[id].name)
        return NULL;
    return &qtypes[id];
}

static float half_at(const uint8_t *p)
{
    return kb_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* ---- the 32-element types ---------------------------------------------------------------- */

/* Q4_0: d (f16), then 16 bytes: element j in the low nibble of byte j, element j + 16 in its
 * high nibble; value = (nibble - 8) * d. Q4_1: d, m (f16), value = nibble * d + m. */
static void dq_q4(const uint8_t *b, float *y, int with_min)
{
    float d = half_at(b), m = with_min ? half_at(b + 2) : 0;
    const uint8_t *qs = b + (with_min ? 4 : 2);
    int off = with_min ? 0 : 8;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0x0F) - off) * d + m;
        y[j + 16] = (float)((qs[j] >> 4) - off) * d + m;
    }
}

/* Q5_0 / Q5_1: as Q4 with a fifth bit per element from the 32-bit mask qh (bit j for element
 * j); Q5_0 subtracts 16. */
static void dq_q5(const uint8_t *b, float *y, int with_min)
{
    float d = half_at(b), m = with_min ? half_at(b + 2) : 0;
    const uint8_t *h = b + (with_min ? 4 : 2), *qs = h + 4;
    uint32_t qh = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
                  (uint32_t)h[3] << 24;
    int off = with_min ? 0 : 16;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = (float)(lo - off) * d + m;
        y[j + 16] = (float)(hi - off) * d + m;
    }
}

/* Q8_0: d (f16), 32 int8 quants. */
static void dq_q8_0(const uint8_t *b, float *y)
{
    float d = half_at(b);
    for (int j = 0; j < 32; j++)
        y[j] = (float)(int8_t)b[2 + j] * d;
}

/* ---- the K types -------------------------------------------------------------------------- */

/* Sub-block j's 6-bit scale and minimum of Q4_K/Q5_K: 12 bytes pack 8 pairs; the first four
 * in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins), the last four split between the low
 * or high nibble of bytes 8-11 and the top 2 bits of bytes 0-7. */
static void k_scale_min(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K: d, dmin (f16), scales[12], qs[128]. Each 64 values: 32 bytes, low nibbles for the
 * first sub-block of 32, high nibbles for the second; value = d * sc * q - dmin * m.
 * Q5_K: the same with qh[32] before qs, bit 2i / 2i+1 of qh[l] the fifth bit of the i-th pair
 * of sub-blocks. */
static void dq_q45_k(const uint8_t *b, float *y, int five)
{
    float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + (five ? 48 : 16);
    for (int j = 0, is = 0; j < KB_QK_K; j += 64, is += 2) {
        int sc, m;
        k_scale_min(is, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        k_scale_min(is + 1, scales, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        int u1 = 1 << is, u2 = 2 << is;
        for (int l = 0; l < 32; l++) {
            int lo = ql[l] & 0x0F, hi = ql[l] >> 4;
            if (five) {
                lo += qh[l] & u1 ? 16 : 0;
                hi += qh[l] & u2 ? 16 : 0;
            }
            y[j + l] = d1 * (float)lo - m1;
            y[j + 32 + l] = d2 * (float)hi - m2;
        }
        ql += 32;
    }
}

/* Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], d (f16). Each 128
 * values: ql[0..63] and qh[0..31]; element l + 32i takes its low bits from ql[l] (i = 0),
 * ql[l + 32] (1), the high nibbles of ql[l] (2) and ql[l + 32] (3), its high bits from bits
 * 2i of qh[l]; value = d * scale[l / 16 + 2i] * (q - 32). */
static void dq_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = half_at(b + 208);
    for (int n = 0; n < KB_QK_K; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q2 = ((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[n + l] = d * (float)sc[is] * (float)q1;
            y[n + l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[n + l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[n + l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

void kb_dequant_row(uint32_t id, const void *row, float *out, size_t n)
{
    const uint8_t *b = row;
    const struct kb_qtype *q = kb_qtype(id);
    size_t blocks = n / q->block;
    switch (id) {
    case KB_Q_F32:
        memcpy(out, row, n * sizeof *out);
        return;
    case KB_Q_F16:
        for (size_t i = 0; i < n; i++)
            out[i] = half_at(b + 2 * i);
        return;
    case KB_Q_BF16:
        for (size_t i = 0; i < n; i++)
            out[i] = kb_bf16_to_f32((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
        return;
    default:
        break;
    }
    for (size_t i = 0; i < blocks; i++, b += q->bytes, out += q->block) {
        switch (id) {
        case KB_Q_Q4_0: dq_q4(b, out, 0); break;
        case KB_Q_Q4_1: dq_q4(b, out, 1); break;
        case KB_Q_Q5_0: dq_q5(b, out, 0); break;
        case KB_Q_Q5_1: dq_q5(b, out, 1); break;
        case KB_Q_Q8_0: dq_q8_0(b, out); break;
        case KB_Q_Q4_K: dq_q45_k(b, out, 0); break;
        case KB_Q_Q5_K: dq_q45_k(b, out, 1); break;
        case KB_Q_Q6_K: dq_q6_k(b, out); break;
        default: memset(out, 0, q->block * sizeof *out); break; /* never: callers check */
        }
    }
}

float kb_dot_row_ref(uint32_t id, const void *row, const float *x, size_t n, float *scratch)
{
    kb_dequant_row(id, row, scratch, n);
    double sum = 0;
    /* As ggml multiplies 16-bit weights: with the activations rounded to the same type. */
    if (id == KB_Q_F16)
        for (size_t i = 0; i < n; i++)
            sum += (double)scratch[i] * kb_f16_to_f32(kb_f32_to_f16(x[i]));
    else if (id == KB_Q_BF16)
        for (size_t i = 0; i < n; i++)
            sum += (double)scratch[i] * kb_bf16_to_f32(kb_f32_to_bf16(x[i]));
    else
        for (size_t i = 0; i < n; i++)
            sum += (double)scratch[i] * x[i];
    return (float)sum;
}
