/* kernels.c — activation quantization and the scalar integer dot products (the twins of
 * kernels_avx2.c), and the choice between them made once per process. Block layouts as in
 * quant.c; the activation formats are ggml's block_q8_0 and block_q8_K. */
#include "decoder/kernels.h"

#include <math.h>
#include <string.h>

#include "decoder/kernels_int.h"
#include "decoder/quant.h"
#include "util/half.h"

enum kb_act_type kb_act_type_for(uint32_t weight_type)
{
    switch (weight_type) {
    case KB_Q_Q4_0: case KB_Q_Q8_0: return KB_ACT_Q8_0;
    case KB_Q_Q4_K: case KB_Q_Q5_K: case KB_Q_Q6_K: return KB_ACT_Q8_K;
    case KB_Q_F16: return KB_ACT_F16;
    case KB_Q_BF16: return KB_ACT_BF16;
    case KB_Q_F32: return KB_ACT_F32;
    default: return KB_ACT_NONE;
    }
}

size_t kb_act_bytes(enum kb_act_type act, size_t n)
{
    return act == KB_ACT_Q8_0 ? n / 32 * KB_Q8_0_BYTES
           : act == KB_ACT_Q8_K ? n / 256 * KB_Q8_K_BYTES
           : act == KB_ACT_NONE ? 0 : n * sizeof(float);
}

float kb_half(const uint8_t *p)
{
    return kb_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* ggml's quantize_row_q8_0: scale by the largest magnitude to +-127, round to nearest. */
static void quantize_q8_0(const float *x, uint8_t *out, size_t n)
{
    for (size_t b = 0; b < n / 32; b++, x += 32, out += KB_Q8_0_BYTES) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t h = kb_f32_to_f16(d);
        memcpy(out, &h, 2);
        for (int j = 0; j < 32; j++)
            out[2 + j] = (uint8_t)(int8_t)lrintf(x[j] * id);
    }
}

/* ggml's quantize_row_q8_K: the value of largest magnitude maps to -127 (its sign kept in
 * the scale), and each 16 quants' sum is kept for the kernels' minimum terms. */
static void quantize_q8_k(const float *x, uint8_t *out, size_t n)
{
    for (size_t b = 0; b < n / 256; b++, x += 256, out += KB_Q8_K_BYTES) {
        float amax = 0, max = 0;
        for (int j = 0; j < 256; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        int8_t *qs = (int8_t *)(out + 4);
        int16_t sums[16];
        float d = 0;
        if (amax == 0) {
            memset(qs, 0, 256);
        } else {
            float iscale = -127.0f / max;
            for (int j = 0; j < 256; j++) {
                long v = lrintf(iscale * x[j]);
                qs[j] = (int8_t)(v < 127 ? v : 127);
            }
            d = 1.0f / iscale;
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += qs[16 * g + j];
            sums[g] = (int16_t)s;
        }
        memcpy(out, &d, 4);
        memcpy(out + 4 + 256, sums, sizeof sums);
    }
}

void kb_act_quantize(enum kb_act_type act, const float *x, void *out, size_t n)
{
    float *f = out;
    if (act == KB_ACT_Q8_0)
        quantize_q8_0(x, out, n);
    else if (act == KB_ACT_Q8_K)
        quantize_q8_k(x, out, n);
    else if (act == KB_ACT_F16)
        for (size_t i = 0; i < n; i++)
            f[i] = kb_f16_to_f32(kb_f32_to_f16(x[i]));
    else if (act == KB_ACT_BF16)
        for (size_t i = 0; i < n; i++)
            f[i] = kb_bf16_to_f32(kb_f32_to_bf16(x[i]));
    else if (act == KB_ACT_F32)
        memcpy(f, x, n * sizeof *f);
}

/* ---- scalar twins ------------------------------------------------------------------------ */

static float dot_q8_0(const uint8_t *w, const uint8_t *a, size_t n)
{
    float sum = 0;
    for (size_t b = 0; b < n / 32; b++, w += 34, a += KB_Q8_0_BYTES) {
        int s = 0;
        for (int j = 0; j < 32; j++)
            s += (int8_t)w[2 + j] * (int8_t)a[2 + j];
        sum += (float)s * (kb_half(w) * kb_half(a));
    }
    return sum;
}

static float dot_q4_0(const uint8_t *w, const uint8_t *a, size_t n)
{
    float sum = 0;
    for (size_t b = 0; b < n / 32; b++, w += 18, a += KB_Q8_0_BYTES) {
        const int8_t *y = (const int8_t *)(a + 2);
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += ((w[2 + j] & 0x0F) - 8) * y[j] + ((w[2 + j] >> 4) - 8) * y[j + 16];
        sum += (float)s * (kb_half(w) * kb_half(a));
    }
    return sum;
}

void kb_q4k_scales(const uint8_t *q, int sc[8], int m[8])
{
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = q[j] & 63;
            m[j] = q[j + 4] & 63;
        } else {
            sc[j] = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
            m[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
}

/* Q4_K: sub-block j (32 values) holds the low nibbles of qs[32 (j/2) ..] when j is even, the
 * high ones when odd; value = d sc_j q - dmin m_j, so the minimum term needs only the
 * activations' sums. Q5_K (five = 1) adds a fifth bit: bit j of qh[l] for value l of
 * sub-block j. */
static float dot_q45_k(const uint8_t *w, const uint8_t *a, size_t n, int five)
{
    float sum = 0;
    size_t bytes = five ? 176 : 144;
    for (size_t b = 0; b < n / 256; b++, w += bytes, a += KB_Q8_K_BYTES) {
        float ad;
        memcpy(&ad, a, 4);
        const int8_t *y = (const int8_t *)(a + 4);
        int16_t bsums[16];
        memcpy(bsums, a + 260, sizeof bsums);
        int sc[8], m[8];
        kb_q4k_scales(w + 4, sc, m);
        const uint8_t *qh = w + 16, *qs = w + (five ? 48 : 16);
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = qs + 32 * (j / 2);
            int dot = 0;
            for (int l = 0; l < 32; l++)
                dot += ((j & 1 ? q[l] >> 4 : q[l] & 0x0F) | (five ? (qh[l] >> j & 1) << 4 : 0)) *
                       y[32 * j + l];
            sumi += sc[j] * dot;
            summ += m[j] * (bsums[2 * j] + bsums[2 * j + 1]);
        }
        sum += ad * kb_half(w) * (float)sumi - ad * kb_half(w + 2) * (float)summ;
    }
    return sum;
}

/* Q6_K: value e of a super-block is d sc[e/16] (q - 32), q's low 4 bits in ql and high 2 in
 * qh as quant.c's dq_q6_k reads them. */
static float dot_q6_k(const uint8_t *w, const uint8_t *a, size_t n)
{
    float sum = 0;
    for (size_t b = 0; b < n / 256; b++, w += 210, a += KB_Q8_K_BYTES) {
        float ad;
        memcpy(&ad, a, 4);
        const int8_t *y = (const int8_t *)(a + 4), *sc = (const int8_t *)(w + 192);
        const uint8_t *ql = w, *qh = w + 128;
        int sumi = 0;
        for (int e = 0; e < 256; e += 16) {
            int dot = 0;
            for (int i = e; i < e + 16; i++) {
                int c = i / 128, k = i % 128 / 32, l = i % 32;
                int lo = ql[64 * c + l + 32 * (k & 1)], hi = qh[32 * c + l] >> (2 * k) & 3;
                dot += (((k < 2 ? lo & 0x0F : lo >> 4) | hi << 4) - 32) * y[i];
            }
            sumi += sc[e / 16] * dot;
        }
        sum += ad * kb_half(w + 208) * (float)sumi;
    }
    return sum;
}

float kb_dot_float_scalar(uint32_t type, const uint8_t *w, const float *x, size_t n)
{
    float sum = 0;
    for (size_t i = 0; i < n; i++) {
        float v;
        if (type == KB_Q_F32)
            memcpy(&v, w + 4 * i, 4);
        else
            v = type == KB_Q_F16 ? kb_half(w + 2 * i)
                                 : kb_bf16_to_f32((uint16_t)(w[2 * i] | w[2 * i + 1] << 8));
        sum += v * x[i];
    }
    return sum;
}

float kb_dot_q_scalar(uint32_t type, const void *row, const void *act, size_t n)
{
    switch (type) {
    case KB_Q_Q8_0: return dot_q8_0(row, act, n);
    case KB_Q_Q4_0: return dot_q4_0(row, act, n);
    case KB_Q_Q4_K: return dot_q45_k(row, act, n, 0);
    case KB_Q_Q5_K: return dot_q45_k(row, act, n, 1);
    case KB_Q_Q6_K: return dot_q6_k(row, act, n);
    case KB_Q_F16: case KB_Q_BF16: case KB_Q_F32: return kb_dot_float_scalar(type, row, act, n);
    default: return 0; /* callers use kb_act_type_for first */
    }
}

/* ---- the choice ------------------------------------------------------------------------- */

static int kernels_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

float kb_dot_q(uint32_t type, const void *row, const void *act, size_t n)
{
    return kernels_avx2() ? kb_dot_q_avx2(type, row, act, n)
                          : kb_dot_q_scalar(type, row, act, n);
}

const char *kb_kernels_name(void)
{
    return kernels_avx2() ? "avx2" : "scalar";
}
