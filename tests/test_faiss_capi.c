/* Tests of the FAISS C API as kb links it (kb::faiss_c): exact search, removal, files, IVF, errors. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

enum {
    N_BASE = 2000,
    N_QUERIES = 20,
    DIM = 64,
    K = 10,
    ID_BASE = 1000, /* vector i is added under id ID_BASE + i */
};

/* Scores are inner products of unit vectors, so 1e-4 is far above float rounding. */
#define SCORE_TOL 1e-4f

/* Shared by every test; built once, read-only after setup. */
struct fixture {
    float *base;    /* (N_BASE, DIM), rows of unit length */
    float *queries; /* (N_QUERIES, DIM), rows of unit length */
    idx_t *ids;     /* (N_BASE), ID_BASE + i */
};

/* Search results for N_QUERIES queries: (N_QUERIES, K) each. */
struct hits {
    float scores[N_QUERIES * K];
    idx_t labels[N_QUERIES * K];
};

/* xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators"). */
static uint64_t rng_next(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [-1, 1). */
static float rng_symmetric(uint64_t *state)
{
    return (float)((double)(rng_next(state) >> 11) / 4503599627370496.0 - 1.0);
}

static void fill_unit_rows(float *rows, size_t n_rows, uint64_t *state)
{
    for (size_t i = 0; i < n_rows; i++) {
        float *row = rows + i * DIM;
        double norm2 = 0;
        for (size_t j = 0; j < DIM; j++) {
            row[j] = rng_symmetric(state);
            norm2 += (double)row[j] * row[j];
        }
        float inv = (float)(1.0 / sqrt(norm2));
        for (size_t j = 0; j < DIM; j++)
            row[j] *= inv;
    }
}

static float dot(const float *a, const float *b)
{
    double sum = 0;
    for (size_t j = 0; j < DIM; j++)
        sum += (double)a[j] * b[j];
    return (float)sum;
}

static int setup_fixture(void **state)
{
    static struct fixture fx;
    uint64_t rng = 0x9E3779B97F4A7C15ULL;

    fx.base = malloc(sizeof(float) * N_BASE * DIM);
    fx.queries = malloc(sizeof(float) * N_QUERIES * DIM);
    fx.ids = malloc(sizeof(idx_t) * N_BASE);
    if (!fx.base || !fx.queries || !fx.ids)
        return -1;
    fill_unit_rows(fx.base, N_BASE, &rng);
    fill_unit_rows(fx.queries, N_QUERIES, &rng);
    for (idx_t i = 0; i < N_BASE; i++)
        fx.ids[i] = ID_BASE + i;
    *state = &fx;
    return 0;
}

static int teardown_fixture(void **state)
{
    struct fixture *fx = *state;
    free(fx->base);
    free(fx->queries);
    free(fx->ids);
    return 0;
}

/* Brute-force inner-product top-K over the base rows whose id is not in removed[0..n_removed). */
static void brute_force_top_k(const struct fixture *fx, const idx_t *removed, size_t n_removed,
                              struct hits *out)
{
    for (size_t q = 0; q < N_QUERIES; q++) {
        float *scores = out->scores + q * K;
        idx_t *labels = out->labels + q * K;
        for (size_t r = 0; r < K; r++) {
            scores[r] = -INFINITY;
            labels[r] = -1;
        }
        for (size_t i = 0; i < N_BASE; i++) {
            int is_removed = 0;
            for (size_t j = 0; j < n_removed; j++)
                is_removed |= removed[j] == fx->ids[i];
            float score = dot(fx->queries + q * DIM, fx->base + i * DIM);
            if (is_removed || score <= scores[K - 1])
                continue;
            /* insertion into the descending list */
            size_t r = K - 1;
            for (; r > 0 && scores[r - 1] < score; r--) {
                scores[r] = scores[r - 1];
                labels[r] = labels[r - 1];
            }
            scores[r] = score;
            labels[r] = fx->ids[i];
        }
    }
}

static void search_queries(const FaissIndex *index, const struct fixture *fx, struct hits *out)
{
    assert_int_equal(faiss_Index_search(index, N_QUERIES, fx->queries, K, out->scores,
                                        out->labels), 0);
}

/*
 * got equals want rank by rank, within SCORE_TOL. A different id at a rank is accepted only
 * if it truly scores what want has there (a tie), recomputed from the base vectors.
 */
static void assert_hits_equal(const struct fixture *fx, const struct hits *got,
                              const struct hits *want)
{
    for (size_t q = 0; q < N_QUERIES; q++) {
        for (size_t r = 0; r < K; r++) {
            size_t at = q * K + r;
            assert_true(fabsf(got->scores[at] - want->scores[at]) <= SCORE_TOL);
            if (got->labels[at] == want->labels[at])
                continue;
            idx_t row = got->labels[at] - ID_BASE;
            assert_true(row >= 0 && row < N_BASE);
            float score = dot(fx->queries + q * DIM, fx->base + row * DIM);
            assert_true(fabsf(score - want->scores[at]) <= SCORE_TOL);
        }
    }
}

/* Mean over queries of |got's top K ∩ want's top K| / K. */
static double recall_at_k(const struct hits *got, const struct hits *want)
{
    size_t found = 0;
    for (size_t q = 0; q < N_QUERIES; q++)
        for (size_t r = 0; r < K; r++)
            for (size_t s = 0; s < K; s++)
                found += got->labels[q * K + r] == want->labels[q * K + s];
    return (double)found / (N_QUERIES * K);
}

static void assert_failed_with_message(int rc, const char *expected_part)
{
    assert_int_not_equal(rc, 0);
    const char *message = faiss_get_last_error();
    assert_non_null(message);
    assert_true(message[0] != '\0');
    if (expected_part)
        assert_non_null(strstr(message, expected_part));
}

static FaissIndex *new_index_with_base(const struct fixture *fx, const char *description)
{
    FaissIndex *index = NULL;
    assert_int_equal(faiss_index_factory(&index, DIM, description, METRIC_INNER_PRODUCT), 0);
    assert_non_null(index);
    if (!faiss_Index_is_trained(index))
        assert_int_equal(faiss_Index_train(index, N_BASE, fx->base), 0);
    assert_int_equal(faiss_Index_add_with_ids(index, N_BASE, fx->base, fx->ids), 0);
    assert_int_equal(faiss_Index_ntotal(index), N_BASE);
    return index;
}

/* A path for a scratch file; the caller unlinks it. */
static void make_temp_path(char *path, size_t path_size)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, path_size, "%s/kb_faiss_capi_XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
}

static void write_bytes(const char *path, const void *bytes, size_t n_bytes)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n_bytes, f), n_bytes);
    assert_int_equal(fclose(f), 0);
}

/* ------------------------------------------------------------------------------------------ */

static void faiss_capi__flat_search_equals_brute_force(void **state)
{
    const struct fixture *fx = *state;
    FaissIndex *index = new_index_with_base(fx, "IDMap2,Flat");
    assert_int_equal(faiss_Index_d(index), DIM);
    assert_int_equal(faiss_Index_metric_type(index), METRIC_INNER_PRODUCT);
    assert_int_equal(faiss_Index_is_trained(index), 1);

    struct hits got, want;
    search_queries(index, fx, &got);
    brute_force_top_k(fx, NULL, 0, &want);
    assert_hits_equal(fx, &got, &want);

    assert_int_equal(faiss_Index_reset(index), 0);
    assert_int_equal(faiss_Index_ntotal(index), 0);
    faiss_Index_free(index);
}

static void faiss_capi__idmap2_over_flat_ip_equals_brute_force(void **state)
{
    const struct fixture *fx = *state;
    FaissIndexFlatIP *flat = NULL;
    FaissIndexIDMap2 *index = NULL;
    assert_int_equal(faiss_IndexFlatIP_new_with(&flat, DIM), 0);
    assert_int_equal(faiss_IndexIDMap2_new(&index, flat), 0);
    assert_int_equal(faiss_Index_metric_type(index), METRIC_INNER_PRODUCT);
    assert_int_equal(faiss_Index_add_with_ids(index, N_BASE, fx->base, fx->ids), 0);

    struct hits got, want;
    search_queries(index, fx, &got);
    brute_force_top_k(fx, NULL, 0, &want);
    assert_hits_equal(fx, &got, &want);

    /* the map does not own the flat index: map first, then what it wraps */
    faiss_Index_free(index);
    faiss_Index_free(flat);
}

/*
 * Removes every query's best hit (so each query must find something else) and 999, an id
 * never added; then index must hold and return exactly the rest. index searches exactly.
 */
static void assert_remove_ids_removes_exactly_the_batch(FaissIndex *index,
                                                        const struct fixture *fx)
{
    struct hits before, got, want;
    search_queries(index, fx, &before);
    idx_t removed[N_QUERIES + 1];
    size_t n_removed = 0;
    for (size_t q = 0; q < N_QUERIES; q++) {
        int seen = 0;
        for (size_t j = 0; j < n_removed; j++)
            seen |= removed[j] == before.labels[q * K];
        if (!seen)
            removed[n_removed++] = before.labels[q * K];
    }
    removed[n_removed] = ID_BASE - 1;

    FaissIDSelectorBatch *batch = NULL;
    size_t n_dropped = 0;
    assert_int_equal(faiss_IDSelectorBatch_new(&batch, n_removed + 1, removed), 0);
    assert_int_equal(faiss_Index_remove_ids(index, (const FaissIDSelector *)batch, &n_dropped), 0);
    faiss_IDSelector_free((FaissIDSelector *)batch);
    assert_int_equal(n_dropped, n_removed);
    assert_int_equal(faiss_Index_ntotal(index), N_BASE - (idx_t)n_removed);

    search_queries(index, fx, &got);
    for (size_t at = 0; at < N_QUERIES * K; at++)
        for (size_t j = 0; j < n_removed; j++)
            assert_int_not_equal(got.labels[at], removed[j]);
    brute_force_top_k(fx, removed, n_removed, &want);
    assert_hits_equal(fx, &got, &want);
}

static void faiss_capi__remove_ids_removes_exactly_the_batch(void **state)
{
    const struct fixture *fx = *state;
    FaissIndex *index = new_index_with_base(fx, "IDMap2,Flat");
    assert_remove_ids_removes_exactly_the_batch(index, fx);
    faiss_Index_free(index);
}

/* IVF keeps ids itself; an IDMap2 around it would map the wrong rows after removal (FAISS.md). */
static void faiss_capi__ivf_remove_ids_removes_exactly_the_batch(void **state)
{
    const struct fixture *fx = *state;
    FaissIndex *index = new_index_with_base(fx, "IVF16,Flat");
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(index);
    assert_non_null(ivf);
    faiss_IndexIVF_set_nprobe(ivf, 16); /* every list: exact, as the brute force is */
    assert_remove_ids_removes_exactly_the_batch(index, fx);
    faiss_Index_free(index);
}

static void faiss_capi__index_read_back_from_file_searches_the_same(void **state)
{
    const struct fixture *fx = *state;
    FaissIndex *index = new_index_with_base(fx, "IDMap2,Flat");
    char path[256];
    make_temp_path(path, sizeof path);
    assert_int_equal(faiss_write_index_fname(index, path), 0);

    FaissIndex *loaded = NULL;
    assert_int_equal(faiss_read_index_fname(path, 0, &loaded), 0);
    unlink(path);
    assert_non_null(loaded);
    assert_int_equal(faiss_Index_d(loaded), DIM);
    assert_int_equal(faiss_Index_ntotal(loaded), N_BASE);
    assert_int_equal(faiss_Index_metric_type(loaded), METRIC_INNER_PRODUCT);

    struct hits got, want;
    search_queries(index, fx, &want);
    search_queries(loaded, fx, &got);
    assert_memory_equal(got.labels, want.labels, sizeof got.labels);
    assert_hits_equal(fx, &got, &want);
    faiss_Index_free(loaded);
    faiss_Index_free(index);
}

/* Writes a real index to path, then cuts the file to its first half. */
static void write_truncated_index(const struct fixture *fx, const char *path)
{
    FaissIndex *index = new_index_with_base(fx, "IDMap2,Flat");
    assert_int_equal(faiss_write_index_fname(index, path), 0);
    faiss_Index_free(index);

    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n_bytes = ftell(f);
    assert_true(n_bytes > (long)(N_BASE * DIM * sizeof(float)));
    rewind(f);
    unsigned char *bytes = malloc((size_t)n_bytes);
    assert_non_null(bytes);
    assert_int_equal(fread(bytes, 1, (size_t)n_bytes, f), n_bytes);
    fclose(f);
    write_bytes(path, bytes, (size_t)n_bytes / 2);
    free(bytes);
}

/*
 * FAISS 1.7.3's read_index() leaks the half-read index when a file ends early: it holds it in a
 * raw pointer while a read throws (faiss/impl/index_read.cpp). That is libfaiss's leak, not the
 * shim's, so LeakSanitizer (KB_SANITIZE) ignores leaks allocated beneath the function below and
 * nowhere else. Seeing that frame through libfaiss, built without frame pointers, takes the
 * slow unwinder. Both hooks are read only by a sanitizer runtime.
 */
const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);

const char *__asan_default_options(void)
{
    return "fast_unwind_on_malloc=0";
}

const char *__lsan_default_suppressions(void)
{
    return "leak:read_of_truncated_file_fails\n";
}

/* noinline, and the asserts after the call keep it from being a tail call: LSan must see it. */
__attribute__((noinline)) static void read_of_truncated_file_fails(const char *path)
{
    FaissIndex *loaded = NULL;
    int rc = faiss_read_index_fname(path, 0, &loaded);
    assert_failed_with_message(rc, "read error");
    assert_null(loaded);
}

static void faiss_capi__unreadable_index_file_is_an_error_not_a_crash(void **state)
{
    const struct fixture *fx = *state;
    char path[256];
    make_temp_path(path, sizeof path);
    FaissIndex *loaded = NULL;

    write_truncated_index(fx, path);
    read_of_truncated_file_fails(path);

    unsigned char garbage[4096];
    uint64_t rng = 42;
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (unsigned char)rng_next(&rng);
    write_bytes(path, garbage, sizeof garbage);
    assert_failed_with_message(faiss_read_index_fname(path, 0, &loaded), "not recognized");
    assert_null(loaded);

    write_bytes(path, "", 0);
    assert_failed_with_message(faiss_read_index_fname(path, 0, &loaded), NULL);
    assert_null(loaded);

    unlink(path);
    assert_failed_with_message(faiss_read_index_fname(path, 0, &loaded), path);
    assert_null(loaded);
}

/* Sets nprobe through ParameterSpace, as kb does, and returns the recall@K it gives. */
static double ivf_recall(FaissIndex *index, const struct fixture *fx, double nprobe)
{
    FaissParameterSpace *space = NULL;
    assert_int_equal(faiss_ParameterSpace_new(&space), 0);
    assert_int_equal(faiss_ParameterSpace_set_index_parameter(space, index, "nprobe", nprobe), 0);
    faiss_ParameterSpace_free(space);

    struct hits got, want;
    search_queries(index, fx, &got);
    brute_force_top_k(fx, NULL, 0, &want);
    return recall_at_k(&got, &want);
}

static void faiss_capi__ivf_probing_every_list_equals_brute_force(void **state)
{
    const struct fixture *fx = *state;
    FaissIndex *index = new_index_with_base(fx, "IDMap2,IVF16,Flat");
    assert_int_equal(faiss_Index_is_trained(index), 1);
    assert_null(faiss_IndexIVF_cast(index)); /* the IDMap2, not the IVF it wraps */

    assert_true(ivf_recall(index, fx, 16) == 1.0);
    double recall = ivf_recall(index, fx, 4);
    print_message("IVF16 nprobe=4 recall@%d: %.3f\n", K, recall);
    assert_true(recall >= 0.5);
    faiss_Index_free(index);
}

static void faiss_capi__ivf_exposes_nlist_and_nprobe(void **state)
{
    const struct fixture *fx = *state;
    FaissIndex *index = NULL;
    assert_int_equal(faiss_index_factory(&index, DIM, "IVF16,Flat", METRIC_INNER_PRODUCT), 0);
    assert_int_equal(faiss_Index_is_trained(index), 0);
    assert_int_equal(faiss_Index_train(index, N_BASE, fx->base), 0);
    assert_int_equal(faiss_Index_is_trained(index), 1);
    assert_int_equal(faiss_Index_add_with_ids(index, N_BASE, fx->base, fx->ids), 0);

    FaissIndexIVF *ivf = faiss_IndexIVF_cast(index);
    assert_non_null(ivf);
    assert_int_equal(faiss_IndexIVF_nlist(ivf), 16);
    assert_int_equal(faiss_IndexIVF_nprobe(ivf), 1);
    faiss_IndexIVF_set_nprobe(ivf, 16);
    assert_int_equal(faiss_IndexIVF_nprobe(ivf), 16);

    struct hits got, want;
    search_queries(index, fx, &got);
    brute_force_top_k(fx, NULL, 0, &want);
    assert_hits_equal(fx, &got, &want);

    assert_true(ivf_recall(index, fx, 2) < 1.0); /* ParameterSpace reached the same field */
    assert_int_equal(faiss_IndexIVF_nprobe(ivf), 2);
    faiss_Index_free(index);
}

static void faiss_capi__bad_factory_string_is_an_error_with_a_message(void **state)
{
    (void)state;
    FaissIndex *index = NULL;
    int rc = faiss_index_factory(&index, DIM, "NoSuchIndex42", METRIC_INNER_PRODUCT);
    assert_int_equal(rc, FAISS_EXCEPT);
    assert_failed_with_message(rc, "NoSuchIndex42");
    assert_null(index);
}

static void faiss_capi__unknown_parameter_is_an_error_with_a_message(void **state)
{
    const struct fixture *fx = *state;
    FaissIndex *index = new_index_with_base(fx, "IDMap2,Flat");
    FaissParameterSpace *space = NULL;
    assert_int_equal(faiss_ParameterSpace_new(&space), 0);
    assert_failed_with_message(
        faiss_ParameterSpace_set_index_parameter(space, index, "no_such_knob", 1), "no_such_knob");
    faiss_ParameterSpace_free(space);
    faiss_Index_free(index);
}

/* Made in a fresh thread: what that thread sees before and after a failure of its own. */
struct thread_errors {
    int had_error_at_start;
    int rc;
    char message[256];
};

static void *fail_in_thread(void *payload)
{
    struct thread_errors *seen = payload;
    FaissIndex *index = NULL;
    seen->had_error_at_start = faiss_get_last_error() != NULL;
    seen->rc = faiss_index_factory(&index, DIM, "ThreadsOwnError", METRIC_L2);
    const char *message = faiss_get_last_error();
    snprintf(seen->message, sizeof seen->message, "%s", message ? message : "");
    return NULL;
}

static void faiss_capi__last_error_is_kept_per_thread(void **state)
{
    (void)state;
    FaissIndex *index = NULL;
    assert_int_not_equal(faiss_index_factory(&index, DIM, "MainThreadError", METRIC_L2), 0);

    struct thread_errors seen = {0};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, fail_in_thread, &seen), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);

    assert_int_equal(seen.had_error_at_start, 0);
    assert_int_not_equal(seen.rc, 0);
    assert_non_null(strstr(seen.message, "ThreadsOwnError"));
    assert_non_null(strstr(faiss_get_last_error(), "MainThreadError"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(faiss_capi__flat_search_equals_brute_force),
        cmocka_unit_test(faiss_capi__idmap2_over_flat_ip_equals_brute_force),
        cmocka_unit_test(faiss_capi__remove_ids_removes_exactly_the_batch),
        cmocka_unit_test(faiss_capi__ivf_remove_ids_removes_exactly_the_batch),
        cmocka_unit_test(faiss_capi__index_read_back_from_file_searches_the_same),
        cmocka_unit_test(faiss_capi__unreadable_index_file_is_an_error_not_a_crash),
        cmocka_unit_test(faiss_capi__ivf_probing_every_list_equals_brute_force),
        cmocka_unit_test(faiss_capi__ivf_exposes_nlist_and_nprobe),
        cmocka_unit_test(faiss_capi__bad_factory_string_is_an_error_with_a_message),
        cmocka_unit_test(faiss_capi__unknown_parameter_is_an_error_with_a_message),
        cmocka_unit_test(faiss_capi__last_error_is_kept_per_thread),
    };
    return cmocka_run_group_tests(tests, setup_fixture, teardown_fixture);
}
