/* half.h — 16-bit floats as model files store them: IEEE binary16 and bfloat16, converted
 * exactly (subnormals, infinities and NaN payloads included). */
#ifndef KB_UTIL_HALF_H
#define KB_UTIL_HALF_H

#include <stdint.h>

float kb_f16_to_f32(uint16_t h);
float kb_bf16_to_f32(uint16_t h);

/* Rounded to nearest, ties to even: to binary16 (overflow to infinity, subnormals kept), and
 * to bfloat16 as ggml rounds (subnormals flushed to zero, NaN kept quiet). */
uint16_t kb_f32_to_f16(float f);
uint16_t kb_f32_to_bf16(float f);

#endif
