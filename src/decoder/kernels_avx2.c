/* kernels_avx2.c — the integer dot products with AVX2: 32 weights and 32 activation bytes per
 * step through vpmaddubsw (unsigned x signed byte pairs summed to 16 bits) and vpmaddwd (to 32
 * bits, times a scale when one applies), then one float multiply-add per block. Signed weights
 * go through the sign trick: |w| times y with w's sign. The sums are exact in integers, so
 * these equal their scalar twins but for the order of float additions. */
#include "decoder/kernels.h"

#include <immintrin.h>
#include <string.h>

#include "decoder/kernels_int.h"
#include "decoder/quant.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* The f16 at p, by the F16C instruction (kb_half's bit-by-bit conversion costs as much as a
 * whole block's products). */
AVX2 static inline float half(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

AVX2 static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* Eight 32-bit sums of w * y for 32 signed bytes each (|w|, y with w's sign). */
AVX2 static inline __m256i dot_i8(__m256i w, __m256i y)
{
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

AVX2 static float dot_q8_0(const uint8_t *w, const uint8_t *a, size_t n)
{
    __m256 acc = _mm256_setzero_ps();
    for (size_t b = 0; b < n / 32; b++, w += 34, a += KB_Q8_0_BYTES) {
        __m256i wq = _mm256_loadu_si256((const __m256i *)(w + 2));
        __m256i yq = _mm256_loadu_si256((const __m256i *)(a + 2));
        __m256 d = _mm256_set1_ps(half(w) * half(a));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(wq, yq)), acc);
    }
    return hsum_ps(acc);
}

/* 32 nibbles of 16 bytes as bytes: the low ones first (values 0-15), then the high ones. */
AVX2 static inline __m256i nibbles(const uint8_t *q)
{
    __m128i t = _mm_loadu_si128((const __m128i *)q);
    __m256i both = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

AVX2 static float dot_q4_0(const uint8_t *w, const uint8_t *a, size_t n)
{
    __m256 acc = _mm256_setzero_ps();
    for (size_t b = 0; b < n / 32; b++, w += 18, a += KB_Q8_0_BYTES) {
        __m256i wq = _mm256_sub_epi8(nibbles(w + 2), _mm256_set1_epi8(8));
        __m256i yq = _mm256_loadu_si256((const __m256i *)(a + 2));
        __m256 d = _mm256_set1_ps(half(w) * half(a));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(wq, yq)), acc);
    }
    return hsum_ps(acc);
}

/* Q4_K, and Q5_K when `five`: the fifth bits of sub-blocks j and j + 1 are bits j and j + 1
 * of the 32 bytes of qh, moved to bit 4 of each value. */
AVX2 static float dot_q45_k(const uint8_t *w, const uint8_t *a, size_t n, int five)
{
    float sum = 0;
    const __m256i low = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
    size_t bytes = five ? 176 : 144;
    for (size_t b = 0; b < n / 256; b++, w += bytes, a += KB_Q8_K_BYTES) {
        float ad;
        memcpy(&ad, a, 4);
        const uint8_t *y = a + 4, *qs = w + (five ? 48 : 16);
        __m256i qh = _mm256_loadu_si256((const __m256i *)(w + 16));
        int16_t bsums[16];
        memcpy(bsums, a + 260, sizeof bsums);
        int sc[8], m[8], summ = 0;
        kb_q4k_scales(w + 4, sc, m);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 8; j += 2, qs += 32, y += 64) {
            __m256i q = _mm256_loadu_si256((const __m256i *)qs);
            __m256i lo = _mm256_and_si256(q, low), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
            if (five) { /* bit j of qh to bit 4, then bit j + 1 */
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4));
                qh = _mm256_srli_epi16(qh, 2);
            }
            __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)y));
            __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pl, _mm256_set1_epi16((short)sc[j])));
            sumi = _mm256_add_epi32(sumi,
                                    _mm256_madd_epi16(ph, _mm256_set1_epi16((short)sc[j + 1])));
            summ += m[j] * (bsums[2 * j] + bsums[2 * j + 1]) +
                    m[j + 1] * (bsums[2 * j + 2] + bsums[2 * j + 3]);
        }
        sum += ad * half(w) * (float)hsum_epi32(sumi) - ad * half(w + 2) * (float)summ;
    }
    return sum;
}

AVX2 static float dot_q6_k(const uint8_t *w, const uint8_t *a, size_t n)
{
    float sum = 0;
    const __m256i low = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x30);
    for (size_t b = 0; b < n / 256; b++, w += 210, a += KB_Q8_K_BYTES) {
        float ad;
        memcpy(&ad, a, 4);
        const uint8_t *ql = w, *qh = w + 128, *y = a + 4;
        const int8_t *sc = (const int8_t *)(w + 192);
        int16_t bsums[16];
        memcpy(bsums, a + 260, sizeof bsums);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 2; c++, ql += 64, qh += 32, sc += 8, y += 128) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(l0, low),
                                _mm256_and_si256(_mm256_slli_epi16(h, 4), two)),
                _mm256_or_si256(_mm256_and_si256(l1, low),
                                _mm256_and_si256(_mm256_slli_epi16(h, 2), two)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low),
                                _mm256_and_si256(h, two)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                                _mm256_and_si256(_mm256_srli_epi16(h, 2), two)),
            };
            for (int k = 0; k < 4; k++) {
                __m256i p = _mm256_maddubs_epi16(q[k],
                                                 _mm256_loadu_si256((const __m256i *)(y + 32 * k)));
                __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]),
                                             _mm_set1_epi16(sc[2 * k]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s));
            }
        }
        /* the quants are stored plus 32: take 32 times each group's activation sum back */
        int sub = 0;
        const int8_t *scales = (const int8_t *)(w + 192);
        for (int g = 0; g < 16; g++)
            sub += scales[g] * bsums[g];
        sum += ad * half(w + 208) * (float)(hsum_epi32(sumi) - 32 * sub);
    }
    return sum;
}

/* Eight weights as floats: F16 by F16C, BF16 by a 16-bit shift, F32 as they are. */
AVX2 static inline __m256 load8(uint32_t type, const uint8_t *w)
{
    if (type == KB_Q_F32)
        return _mm256_loadu_ps((const float *)w);
    __m128i h = _mm_loadu_si128((const __m128i *)w);
    if (type == KB_Q_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AVX2 static float dot_float(uint32_t type, const uint8_t *w, const float *x, size_t n)
{
    size_t step = type == KB_Q_F32 ? 32 : 16, i = 0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16, w += 2 * step) {
        acc0 = _mm256_fmadd_ps(load8(type, w), _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(load8(type, w + step), _mm256_loadu_ps(x + i + 8), acc1);
    }
    /* rows of other lengths: the rest one by one */
    return hsum_ps(_mm256_add_ps(acc0, acc1)) + kb_dot_float_scalar(type, w, x + i, n - i);
}

float kb_dot_q_avx2(uint32_t type, const void *row, const void *act, size_t n)
{
    switch (type) {
    case KB_Q_Q8_0: return dot_q8_0(row, act, n);
    case KB_Q_Q4_0: return dot_q4_0(row, act, n);
    case KB_Q_Q4_K: return dot_q45_k(row, act, n, 0);
    case KB_Q_Q5_K: return dot_q45_k(row, act, n, 1);
    case KB_Q_Q6_K: return dot_q6_k(row, act, n);
    case KB_Q_F16: case KB_Q_BF16: case KB_Q_F32: return dot_float(type, row, act, n);
    default: return kb_dot_q_scalar(type, row, act, n);
    }
}
