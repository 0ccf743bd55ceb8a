/* gemm_small.c — out = in @ wt for few input rows (a query), on AVX-512.
 *
 * A BLAS sgemm with a handful of rows spends its time packing and waking threads. Here the
 * weights are packed once at load (gemm_small.h): panels of 64 output columns, each a
 * contiguous (k, 64) block, so that each step broadcasts one input value and multiplies a
 * run of 64 contiguous weights: blocks of 6 input rows x 64 columns keep 24 vector
 * accumulators in registers (4 loads + 6 broadcasts per 24 FMAs). A query's weights do not
 * fit in the caches, so the first block of rows streams its panel from memory: contiguous
 * panels let that stream run at memory speed (prefetched ahead), where (k, n) rows 64
 * columns wide left the hardware prefetcher behind; the later blocks of rows find the panel
 * in L2 and prefetch the next one. bge-small query on a 2-core Ice Lake: 13.6 ms with the
 * (k, n) layout, ~8 ms packed and prefetched (docs/BENCHMARKS.md). */
#include "encoder/gemm_small.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#define GS_ROWS 6
#define GS_COLS 64
#ifndef GS_PREFETCH
#define GS_PREFETCH 16 /* rows of a panel prefetched ahead by its first block of rows */
#endif
#ifndef GS_NEXT
#define GS_NEXT 1      /* later blocks of rows prefetch the next panel */
#endif

/* out rows [0, rows) x the 64 columns of panel wt (k, 64): rows <= GS_ROWS, a compile-time
 * constant after inlining, so the accumulators live in registers. The first block of rows
 * (ahead) prefetches its own panel GS_PREFETCH rows ahead into L1, as it comes from memory;
 * the others find it in L2 and meanwhile fetch 2 lines per step of what comes next (pf, into
 * L2), so the next panel's first block does not wait on memory either. */
static inline __attribute__((always_inline, target("avx512f"))) void
gs_block(int rows, float *out, int ldo, const float *in, int ldi, const float *wt, int k,
         int beta, int ahead, const char *pf)
{
    __m512 acc[GS_ROWS][4];
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            acc[r][j] = beta ? _mm512_loadu_ps(out + (size_t)r * ldo + 16 * j)
                             : _mm512_setzero_ps();
    for (int p = 0; p < k; p++) {
        const float *w = wt + (size_t)p * GS_COLS;
        if (ahead) {
            /* prefetches never fault, so running past the panel's end is harmless */
            uintptr_t f = (uintptr_t)w + GS_PREFETCH * GS_COLS * sizeof(float);
            _mm_prefetch((const char *)f, _MM_HINT_T0);
            _mm_prefetch((const char *)(f + 64), _MM_HINT_T0);
            _mm_prefetch((const char *)(f + 128), _MM_HINT_T0);
            _mm_prefetch((const char *)(f + 192), _MM_HINT_T0);
        } else if (pf) {
            uintptr_t f = (uintptr_t)pf + (size_t)p * 128;
            _mm_prefetch((const char *)f, _MM_HINT_T1);
            _mm_prefetch((const char *)(f + 64), _MM_HINT_T1);
        }
        __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16);
        __m512 w2 = _mm512_loadu_ps(w + 32), w3 = _mm512_loadu_ps(w + 48);
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++) {
            __m512 x = _mm512_set1_ps(in[(size_t)r * ldi + p]);
            acc[r][0] = _mm512_fmadd_ps(x, w0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(x, w1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(x, w2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(x, w3, acc[r][3]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            _mm512_storeu_ps(out + (size_t)r * ldo + 16 * j, acc[r][j]);
}

/* out (m, 64) = in (m, k) @ panel (k, 64) (+ out), all rows; next is the panel (k, 64) to
 * be multiplied after this one, or NULL. Block b >= 1 of rows prefetches next's lines
 * [2k (b - 1), 2k b): two later blocks cover all its 4k lines. */
static __attribute__((target("avx512f"))) void
gs_panel(float *out, int ldo, const float *in, int ldi, const float *panel, const float *next,
         int m, int k, int beta)
{
    int r = 0, b = 0;
    for (; r + GS_ROWS <= m; r += GS_ROWS, b++) {
        const char *pf = next && b >= 1 && b <= 2
                             ? (const char *)next + (size_t)(b - 1) * (size_t)k * 128 : NULL;
        gs_block(GS_ROWS, out + (size_t)r * ldo, ldo, in + (size_t)r * ldi, ldi, panel, k,
                 beta, b == 0, pf);
    }
    float *o = out + (size_t)r * ldo;
    const float *x = in + (size_t)r * ldi;
    const char *pf = next && b >= 1 && b <= 2
                         ? (const char *)next + (size_t)(b - 1) * (size_t)k * 128 : NULL;
    int ahead = b == 0;
    switch (m - r) {
    case 5: gs_block(5, o, ldo, x, ldi, panel, k, beta, ahead, pf); break;
    case 4: gs_block(4, o, ldo, x, ldi, panel, k, beta, ahead, pf); break;
    case 3: gs_block(3, o, ldo, x, ldi, panel, k, beta, ahead, pf); break;
    case 2: gs_block(2, o, ldo, x, ldi, panel, k, beta, ahead, pf); break;
    case 1: gs_block(1, o, ldo, x, ldi, panel, k, beta, ahead, pf); break;
    default: break;
    }
}

/* Plain loops over one panel of `width` columns (a last narrow panel, or no AVX-512). */
static void gs_scalar(float *out, int ldo, const float *in, int ldi, const float *panel,
                      int width, int m, int k, int beta)
{
    for (int r = 0; r < m; r++)
        for (int c = 0; c < width; c++) {
            float s = beta ? out[(size_t)r * ldo + c] : 0.0f;
            for (int p = 0; p < k; p++)
                s += in[(size_t)r * ldi + p] * panel[(size_t)p * width + c];
            out[(size_t)r * ldo + c] = s;
        }
}

void kb_enc_gemm_small_pack(float *dst, const float *w, int n, int k)
{
    for (int c0 = 0; c0 < n; c0 += GS_COLS) {
        int width = n - c0 < GS_COLS ? n - c0 : GS_COLS;
        float *panel = dst + (size_t)c0 * (size_t)k;
        /* panel[p][c] = w[c0 + c][p], in strips of 16 rows of w so both sides stay cached */
        for (int p0 = 0; p0 < k; p0 += 16)
            for (int c = 0; c < width; c++)
                for (int p = p0; p < k && p < p0 + 16; p++)
                    panel[(size_t)p * width + c] = w[(size_t)(c0 + c) * k + p];
    }
}

int kb_enc_gemm_small_usable(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

void kb_enc_gemm_small(float *out, int ldo, const float *in, int ldi, const float *wp, int n,
                       int m, int k, int c0, int c1, int beta)
{
    int fast = kb_enc_gemm_small_usable();
    for (int c = c0; c < c1; c += GS_COLS) {
        int width = n - c < GS_COLS ? n - c : GS_COLS;
        const float *panel = wp + (size_t)c * (size_t)k;
        const float *next = GS_NEXT && c + 2 * GS_COLS <= c1 ? panel + (size_t)GS_COLS * k : NULL;
        if (fast && width == GS_COLS)
            gs_panel(out + c, ldo, in, ldi, panel, next, m, k, beta);
        else
            gs_scalar(out + c, ldo, in, ldi, panel, width, m, k, beta);
    }
}
