/* blas.c — kb_blas_sgemm over OpenBLAS, configured for this CPU and thread count at first use.
 *
 * Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels once, when the library loads, and
 * misdetects recent Intel CPUs (family 6 model 207: AVX-512 + AMX) as "Prescott", which runs
 * sgemm about 5x slower. Setting OPENBLAS_CORETYPE before the process starts fixes it, but a
 * library cannot count on that, and FAISS links OpenBLAS too, so it is always loaded before
 * main(). So at first use we compare the kernel OpenBLAS chose with what the CPU supports
 * (cpuid via __builtin_cpu_supports) and, when OpenBLAS chose a weaker one and the user has not
 * forced OPENBLAS_CORETYPE, re-run its kernel selection with the right core type. The hooks
 * (gotoblas_dynamic_init/quit) are looked up with dlsym, so another BLAS simply skips this step.
 * See docs/ARCHITECTURE.md, "BLAS". */
#include "encoder/blas.h"
#include "util/threads.h"

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static char blas_description[160] = "BLAS (not yet used)";

typedef char *(*blas_corename_fn)(void);
typedef void (*blas_void_fn)(void);
typedef void (*blas_threads_fn)(int);

/* Kernel families from weakest to strongest, as OpenBLAS names them (lowercase). */
static int blas_core_rank(const char *name)
{
    static const char *const avx512[] = { "skylakex", "cooperlake", "sapphirerapids" };
    static const char *const avx2[] = { "haswell", "zen", "skylake" };
    for (size_t i = 0; i < sizeof avx512 / sizeof *avx512; i++)
        if (!strcasecmp(name, avx512[i]))
            return 3;
    for (size_t i = 0; i < sizeof avx2 / sizeof *avx2; i++)
        if (!strcasecmp(name, avx2[i]))
            return 2;
    if (!strcasecmp(name, "sandybridge") || !strcasecmp(name, "bulldozer") ||
        !strcasecmp(name, "piledriver") || !strcasecmp(name, "steamroller") ||
        !strcasecmp(name, "excavator"))
        return 1;
    return 0;
}

/* The strongest kernel family this CPU and OS can run, and OpenBLAS's name for it. */
static int blas_cpu_best(const char **name)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        *name = "SkylakeX";
        return 3;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *name = "Haswell";
        return 2;
    }
    *name = NULL;
    return 0;
}

static void blas_configure(void)
{
    blas_corename_fn corename = (blas_corename_fn)dlsym(RTLD_DEFAULT, "openblas_get_corename");
    blas_void_fn dyn_init = (blas_void_fn)dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
    blas_void_fn dyn_quit = (blas_void_fn)dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
    const char *best_name, *note = "";
    int best = blas_cpu_best(&best_name);
    const char *chosen = corename ? corename() : NULL;
    const char *forced = getenv("OPENBLAS_CORETYPE");

    if (chosen && best_name && blas_core_rank(chosen) < best) {
        if (forced && *forced) {
            note = " (OPENBLAS_CORETYPE forces a weaker kernel than this CPU supports)";
        } else if (dyn_init && dyn_quit) {
            /* OpenBLAS reads OPENBLAS_CORETYPE in its kernel selection; we set it only for the
             * call and restore the environment as the user had it. */
            setenv("OPENBLAS_CORETYPE", best_name, 1);
            dyn_quit();
            dyn_init();
            unsetenv("OPENBLAS_CORETYPE");
            note = " (kernel re-selected by kb: OpenBLAS had misdetected this CPU)";
            chosen = corename();
        } else {
            note = " (weaker kernel than this CPU supports; set OPENBLAS_CORETYPE)";
        }
    }
    kb_blas_set_threads(0);
    int (*n_threads)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
    snprintf(blas_description, sizeof blas_description, "%s %s, %d thread%s%s",
             corename ? "OpenBLAS" : "BLAS", chosen ? chosen : "(unknown kernel)",
             n_threads ? n_threads() : 1, n_threads && n_threads() == 1 ? "" : "s", note);
}

void kb_blas_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    pthread_once(&blas_once, blas_configure);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}

const char *kb_blas_describe(void)
{
    pthread_once(&blas_once, blas_configure);
    return blas_description;
}

void kb_blas_set_threads(int n_threads)
{
    blas_threads_fn set = (blas_threads_fn)dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
    if (set)
        set(n_threads > 0 ? n_threads : kb_threads_default());
}
