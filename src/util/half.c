/* half.c — binary16 and bfloat16 to float, by their bit layouts. */
#include "util/half.h"

#include <math.h>
#include <string.h>

float kb_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t expo = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (expo == 0x1f) {
        bits = sign | 0x7f800000u | mant << 13;          /* inf, nan (payload kept) */
    } else if (expo != 0) {
        bits = sign | (expo + 112) << 23 | mant << 13;  /* normal: rebias 15 -> 127 */
    } else {
        float v = (float)mant * 0x1p-24f;              /* zero or subnormal: exact */
        memcpy(&bits, &v, 4);
        bits |= sign;
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

float kb_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

uint16_t kb_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u)                         /* nan: quiet, top payload bits kept */
        return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
    if (a >= 0x477ff000u)                        /* 65520 and up round to infinity */
        return (uint16_t)(sign | 0x7c00);
    if (a < 0x38800000u) {                       /* below 2^-14: a multiple of 2^-24 */
        float v;
        memcpy(&v, &a, 4);
        return (uint16_t)(sign | (uint16_t)lrintf(v * 0x1p24f));
    }
    uint32_t h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ff), rest = a & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

uint16_t kb_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 64);
    if (!(x & 0x7f800000u))
        return (uint16_t)((x & 0x80000000u) >> 16);
    return (uint16_t)((x + (0x7fffu + ((x >> 16) & 1))) >> 16);
}
