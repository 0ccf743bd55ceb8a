/* Tests of the vector index (index/vindex.h) on real FAISS: exactness, recall, removal, files. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "index/vindex.h"

#define N_QUERIES 20
#define SCORE_TOL 1e-5
#define TIE_TOL 1e-6 /* reference scores this close are a tie at float precision */

/* xorshift64* (Vigna): fixed seeds, fresh non-trivial data. */
static uint64_t rng_next(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1DULL;
}

static float rng_symmetric(uint64_t *state)
{
    return (float)((double)(rng_next(state) >> 11) / 4503599627370496.0 - 1.0);
}

static void normalise(float *row, int dim)
{
    double norm2 = 0;
    for (int j = 0; j < dim; j++)
        norm2 += (double)row[j] * row[j];
    for (int j = 0; j < dim; j++)
        row[j] = (float)(row[j] / sqrt(norm2));
}

/* n unit rows; with n_centers > 0 each is a random centre plus noise of similar length. */
static float *make_rows(size_t n, int dim, int n_centers, uint64_t seed)
{
    uint64_t rng = seed;
    float *centers = n_centers ? malloc(sizeof(float) * (size_t)n_centers * dim) : NULL;
    float *rows = malloc(sizeof(float) * n * dim);
    assert_non_null(rows);
    for (int c = 0; c < n_centers; c++) {
        for (int j = 0; j < dim; j++)
            centers[c * dim + j] = rng_symmetric(&rng);
        normalise(centers + c * dim, dim);
    }
    float noise = n_centers ? (float)sqrt(3.0 / dim) : 1.0f;
    for (size_t i = 0; i < n; i++) {
        const float *c = n_centers ? centers + (rng_next(&rng) % n_centers) * dim : NULL;
        for (int j = 0; j < dim; j++)
            rows[i * dim + j] = (c ? c[j] : 0) + noise * rng_symmetric(&rng);
        normalise(rows + i * dim, dim);
    }
    free(centers);
    return rows;
}

/* Ids that are neither dense nor ordered like the rows: 1000 + 7919 * i mod a prime. */
static int64_t *make_ids(size_t n)
{
    int64_t *ids = malloc(sizeof *ids * n);
    assert_non_null(ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = 1000 + (int64_t)((i * 7919) % 1000003);
    return ids;
}

struct data {
    size_t n;
    int dim;
    float *base, *queries;
    int64_t *ids;
    unsigned char *removed; /* (n): 1 for rows removed from the index */
};

/* n base rows and N_QUERIES queries from the same distribution (same centres, own noise). */
static void data_make(struct data *d, size_t n, int dim, int n_centers, uint64_t seed)
{
    d->n = n;
    d->dim = dim;
    d->base = make_rows(n + N_QUERIES, dim, n_centers, seed);
    d->queries = d->base + n * dim;
    d->ids = make_ids(n);
    d->removed = calloc(n, 1);
    assert_non_null(d->removed);
}

static void data_free(struct data *d)
{
    free(d->base);
    free(d->ids);
    free(d->removed);
}

static double dot_double(const float *a, const float *b, int dim)
{
    double sum = 0;
    for (int j = 0; j < dim; j++)
        sum += (double)a[j] * b[j];
    return sum;
}

/* Row of id in d, or -1. */
static long row_of(const struct data *d, int64_t id)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->ids[i] == id)
            return (long)i;
    return -1;
}

/* Exact top-k in double precision over the rows not removed: rows[0..*n_out). */
static void brute_force(const struct data *d, const float *query, size_t k, long *rows,
                        double *scores, size_t *n_out)
{
    *n_out = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (d->removed[i])
            continue;
        double s = dot_double(d->base + i * d->dim, query, d->dim);
        size_t at = *n_out < k ? (*n_out)++ : k;
        if (at == k && !(s > scores[k - 1]))
            continue;
        if (at == k)
            at = k - 1;
        while (at > 0 && (s > scores[at - 1] ||
                          (s == scores[at - 1] && d->ids[i] < d->ids[rows[at - 1]]))) {
            scores[at] = scores[at - 1];
            rows[at] = rows[at - 1];
            at--;
        }
        scores[at] = s;
        rows[at] = (long)i;
    }
}

/* FLAT results for every query equal the brute force: same ids, same order, scores close. */
static void assert_exact(const struct kb_vindex *vi, const struct data *d, size_t k)
{
    int64_t *ids = malloc(sizeof *ids * k);
    float *scores = malloc(sizeof *scores * k);
    long *want_rows = malloc(sizeof *want_rows * k);
    double *want = malloc(sizeof *want * k);
    struct kb_err err = {0};
    for (int q = 0; q < N_QUERIES; q++) {
        const float *query = d->queries + q * d->dim;
        size_t n_out = 0, n_want = 0;
        assert_int_equal(kb_vindex_search(vi, query, k, ids, scores, &n_out, &err), 0);
        brute_force(d, query, k, want_rows, want, &n_want);
        assert_int_equal(n_out, n_want);
        for (size_t r = 0; r < n_out; r++) {
            long row = row_of(d, ids[r]);
            assert_true(row >= 0 && !d->removed[row]);
            double got_ref = dot_double(d->base + row * d->dim, query, d->dim);
            assert_true(fabs(scores[r] - want[r]) <= SCORE_TOL);
            if (ids[r] != d->ids[want_rows[r]])
                assert_true(fabs(got_ref - want[r]) <= TIE_TOL);
        }
    }
    free(ids);
    free(scores);
    free(want_rows);
    free(want);
}

static struct kb_vindex *build(const struct data *d, const char *spec_text)
{
    struct kb_vindex_spec spec;
    struct kb_vindex *vi = NULL;
    struct kb_err err = {0};
    assert_int_equal(kb_vindex_spec_parse(&spec, d->dim, spec_text, &err), 0);
    if (kb_vindex_build(&vi, &spec, d->ids, d->base, d->n, &err) != 0)
        fail_msg("build %s: %s", spec_text, err.msg);
    assert_int_equal(kb_vindex_count(vi), d->n);
    assert_int_equal(kb_vindex_dim(vi), d->dim);
    return vi;
}

/* Mean over the queries of |vi's top 10 ∩ exact top 10| / 10. */
static double recall_at_10(const struct kb_vindex *vi, const struct kb_vindex *exact,
                           const struct data *d)
{
    int64_t got[10], want[10];
    float scores[10];
    size_t found = 0, n_got, n_want;
    for (int q = 0; q < N_QUERIES; q++) {
        const float *query = d->queries + q * d->dim;
        assert_int_equal(kb_vindex_search(vi, query, 10, got, scores, &n_got, NULL), 0);
        assert_int_equal(kb_vindex_search(exact, query, 10, want, scores, &n_want, NULL), 0);
        assert_int_equal(n_want, 10);
        for (size_t i = 0; i < n_got; i++)
            for (size_t j = 0; j < 10; j++)
                found += got[i] == want[j];
    }
    return (double)found / (N_QUERIES * 10);
}

static void make_temp_path(char *path, size_t size)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, size, "%s/kb_vindex_XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *bytes = malloc(*n ? *n : 1);
    assert_int_equal(fread(bytes, 1, *n, f), *n);
    fclose(f);
    return bytes;
}

static void write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* ------------------------------------------------------------------------------------------ */

static void vindex__flat_search_equals_brute_force(void **state)
{
    (void)state;
    static const int dims[] = {64, 100, 384}; /* 100: the kernel's 16-lane and scalar tails */
    static const size_t ks[] = {1, 10, 57};
    for (size_t t = 0; t < 3; t++) {
        struct data d;
        data_make(&d, dims[t] == 64 ? 20000 : 3000, dims[t], 0, 42 + t);
        struct kb_vindex *vi = build(&d, "flat");
        for (size_t i = 0; i < 3; i++)
            assert_exact(vi, &d, ks[i]);
        assert_exact(vi, &d, d.n + 5); /* k > n: every vector, in order */
        kb_vindex_free(vi);
        data_free(&d);
    }
}

/* The split over threads changes nothing, bit for bit. */
static void vindex__flat_results_do_not_depend_on_threads(void **state)
{
    (void)state;
    struct data d;
    data_make(&d, 40000, 64, 50, 7);
    struct kb_vindex *vi = build(&d, "flat");
    int64_t ids[2][50];
    float scores[2][50];
    size_t n_out[2];
    for (int q = 0; q < N_QUERIES; q++) {
        for (int t = 0; t < 2; t++) {
            kb_vindex_set_threads(vi, t ? 4 : 1);
            assert_int_equal(kb_vindex_search(vi, d.queries + q * d.dim, 50, ids[t], scores[t],
                                              &n_out[t], NULL), 0);
        }
        assert_int_equal(n_out[0], 50);
        assert_int_equal(n_out[1], 50);
        assert_memory_equal(ids[0], ids[1], sizeof ids[0]);
        assert_memory_equal(scores[0], scores[1], sizeof scores[0]);
    }
    kb_vindex_free(vi);
    data_free(&d);
}

static void vindex__ivf_and_hnsw_reach_recall_of_095(void **state)
{
    (void)state;
    struct data d;
    data_make(&d, 20000, 128, 200, 11);
    struct kb_vindex *exact = build(&d, "flat");
    static const char *specs[] = {"ivf", "hnsw"};
    for (int i = 0; i < 2; i++) {
        struct kb_vindex *vi = build(&d, specs[i]);
        struct kb_vindex_spec spec;
        char text[64];
        kb_vindex_get_spec(vi, &spec);
        kb_vindex_spec_format(&spec, text, sizeof text);
        double recall = recall_at_10(vi, exact, &d);
        print_message("%s (%s) recall@10 on 20000 x 128 clustered: %.3f\n", specs[i], text,
                      recall);
        assert_true(recall >= 0.95);
        kb_vindex_free(vi);
    }
    kb_vindex_free(exact);
    data_free(&d);
}

/* Removes every query's best hit and a tenth of the rest, plus an id never stored. */
static void remove_some(struct kb_vindex *vi, struct data *d)
{
    int64_t *gone = malloc(sizeof *gone * (d->n + N_QUERIES + 1));
    size_t n_gone = 0;
    for (int q = 0; q < N_QUERIES; q++) {
        int64_t best;
        float score;
        size_t n_out;
        assert_int_equal(kb_vindex_search(vi, d->queries + q * d->dim, 1, &best, &score, &n_out,
                                          NULL), 0);
        long row = row_of(d, best);
        if (!d->removed[row]) {
            d->removed[row] = 1;
            gone[n_gone++] = best;
        }
    }
    for (size_t i = 0; i < d->n; i += 10)
        if (!d->removed[i]) {
            d->removed[i] = 1;
            gone[n_gone++] = d->ids[i];
        }
    size_t before = kb_vindex_count(vi);
    gone[n_gone] = 5; /* never stored */
    struct kb_err err = {0};
    assert_int_equal(kb_vindex_remove(vi, gone, n_gone + 1, &err), 0);
    assert_int_equal(kb_vindex_count(vi), before - n_gone);
    free(gone);
}

/* kb_vindex_ids lists exactly the ids of the rows not removed. */
static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void assert_ids_are_stored_rows(const struct kb_vindex *vi, const struct data *d)
{
    int64_t *ids = NULL, *want = malloc(sizeof *want * d->n);
    size_t n = 0, n_want = 0;
    assert_int_equal(kb_vindex_ids(vi, &ids, &n, NULL), 0);
    for (size_t i = 0; i < d->n; i++)
        if (!d->removed[i])
            want[n_want++] = d->ids[i];
    assert_int_equal(n, n_want);
    qsort(ids, n, sizeof *ids, cmp_id);
    qsort(want, n_want, sizeof *want, cmp_id);
    assert_memory_equal(ids, want, sizeof *ids * n);
    free(ids);
    free(want);
}

static void vindex__removed_ids_are_never_returned(void **state)
{
    (void)state;
    static const char *specs[] = {"flat", "ivf:nprobe=64"}; /* IVF probing every list: exact */
    for (int i = 0; i < 2; i++) {
        struct data d;
        data_make(&d, 3000, 64, 30, 99);
        struct kb_vindex *vi = build(&d, specs[i]);
        remove_some(vi, &d);
        assert_exact(vi, &d, 10);
        assert_ids_are_stored_rows(vi, &d);
        kb_vindex_free(vi);
        data_free(&d);
    }
}

/* Vectors added after the build are found: each query itself, under a new id, comes first. */
static void vindex__added_vectors_are_found(void **state)
{
    (void)state;
    static const char *specs[] = {"flat", "ivf", "hnsw"};
    for (int i = 0; i < 3; i++) {
        struct data d;
        data_make(&d, 3000, 64, 30, 5);
        struct kb_vindex *vi = build(&d, specs[i]);
        int64_t new_ids[N_QUERIES];
        for (int q = 0; q < N_QUERIES; q++)
            new_ids[q] = 2000000 + q;
        assert_int_equal(kb_vindex_add(vi, new_ids, d.queries, N_QUERIES, NULL), 0);
        assert_int_equal(kb_vindex_count(vi), d.n + N_QUERIES);
        for (int q = 0; q < N_QUERIES; q++) {
            int64_t ids[3];
            float scores[3];
            size_t n_out;
            assert_int_equal(kb_vindex_search(vi, d.queries + q * d.dim, 3, ids, scores, &n_out,
                                              NULL), 0);
            assert_true(n_out >= 1);
            assert_int_equal(ids[0], new_ids[q]);
            assert_true(fabs(scores[0] - 1.0) < 1e-5);
        }
        kb_vindex_free(vi);
        data_free(&d);
    }
}

static void vindex__hnsw_cannot_remove_and_says_rebuild(void **state)
{
    (void)state;
    struct data d;
    data_make(&d, 500, 32, 0, 3);
    struct kb_vindex *vi = build(&d, "hnsw:m=16,ef=32");
    struct kb_err err = {0};
    assert_int_equal(kb_vindex_remove(vi, d.ids, 1, &err), KB_EINVALID);
    assert_non_null(strstr(err.msg, "rebuild needed"));
    assert_int_equal(kb_vindex_count(vi), d.n);
    assert_ids_are_stored_rows(vi, &d);
    kb_vindex_free(vi);
    data_free(&d);
}

static void assert_same_results(const struct kb_vindex *a, const struct kb_vindex *b,
                                const struct data *d)
{
    for (int q = 0; q < N_QUERIES; q++) {
        int64_t ids[2][20];
        float scores[2][20];
        size_t n[2];
        assert_int_equal(kb_vindex_search(a, d->queries + q * d->dim, 20, ids[0], scores[0],
                                          &n[0], NULL), 0);
        assert_int_equal(kb_vindex_search(b, d->queries + q * d->dim, 20, ids[1], scores[1],
                                          &n[1], NULL), 0);
        assert_int_equal(n[0], n[1]);
        assert_memory_equal(ids[0], ids[1], sizeof ids[0][0] * n[0]);
        assert_memory_equal(scores[0], scores[1], sizeof scores[0][0] * n[0]);
    }
}

static void vindex__file_round_trip_gives_identical_results(void **state)
{
    (void)state;
    static const char *specs[] = {"flat", "ivf:nlist=20,nprobe=5", "hnsw:m=8,ef=40"};
    char path[256];
    make_temp_path(path, sizeof path);
    for (int i = 0; i < 3; i++) {
        struct data d;
        data_make(&d, 2000, 48, 20, 17);
        struct kb_vindex *vi = build(&d, specs[i]), *back = NULL, *back2 = NULL;
        if (i < 2)
            remove_some(vi, &d);
        struct kb_vindex_spec spec, spec_back;
        kb_vindex_get_spec(vi, &spec);
        struct kb_err err = {0};
        assert_int_equal(kb_vindex_write(vi, path, &err), 0);
        if (kb_vindex_read(&back, path, &spec, &err) != 0)
            fail_msg("%s: %s", specs[i], err.msg);
        kb_vindex_get_spec(back, &spec_back);
        assert_memory_equal(&spec, &spec_back, sizeof spec);
        assert_same_results(vi, back, &d);
        assert_ids_are_stored_rows(back, &d);
        assert_int_equal(kb_vindex_read(&back2, path, NULL, &err), 0); /* the file's own spec */
        kb_vindex_get_spec(back2, &spec_back);
        assert_memory_equal(&spec, &spec_back, sizeof spec);
        kb_vindex_free(back2);
        kb_vindex_free(back);
        kb_vindex_free(vi);
        data_free(&d);
    }
    unlink(path);
}

/* Reading path fails with code (any error when code is 0) and a message naming path. */
static void assert_read_fails(const char *path, int code, const char *expected_part)
{
    struct kb_vindex *vi = NULL;
    struct kb_err err = {0};
    int rc = kb_vindex_read(&vi, path, NULL, &err);
    if (rc == 0)
        fail_msg("%s: read a damaged file", path);
    if (code)
        assert_int_equal(rc, code);
    assert_null(vi);
    assert_non_null(strstr(err.msg, path));
    assert_null(strchr(err.msg, '\n'));
    if (expected_part && !strstr(err.msg, expected_part))
        fail_msg("message '%s' lacks '%s'", err.msg, expected_part);
}

/* Cut at many places, a file of each kind fails cleanly; so does one with a byte too many. */
static void assert_truncations_fail(const char *path, const unsigned char *bytes, size_t n)
{
    for (size_t cut = 0; cut < n; cut += cut < 256 ? 1 : 1 + n / 97) {
        write_bytes(path, bytes, cut);
        assert_read_fails(path, cut == 0 ? KB_EFORMAT : 0, NULL);
    }
    write_bytes(path, bytes, n - 1);
    assert_read_fails(path, KB_ECORRUPT, "past the end of the file");
    unsigned char *longer = malloc(n + 1);
    memcpy(longer, bytes, n);
    longer[n] = 0;
    write_bytes(path, longer, n + 1);
    assert_read_fails(path, KB_ECORRUPT, "after its end");
    free(longer);
}

/*
 * Flips bytes of a valid file one at a time: each read either fails cleanly or gives an index
 * that searches without crashing (damage to vector values is invisible to a layout check;
 * kb's sha256 of the file catches it).
 */
static void assert_bit_flips_are_safe(const char *path, unsigned char *bytes, size_t n,
                                      const struct data *d)
{
    uint64_t rng = 1234;
    for (int t = 0; t < 300; t++) {
        size_t at = t < 120 ? (size_t)t : (size_t)(rng_next(&rng) % n);
        unsigned char saved = bytes[at];
        bytes[at] ^= (unsigned char)(1 + rng_next(&rng) % 255);
        write_bytes(path, bytes, n);
        struct kb_vindex *vi = NULL;
        struct kb_err err = {0};
        if (kb_vindex_read(&vi, path, NULL, &err) == 0) {
            int64_t ids[10];
            float scores[10];
            size_t n_out;
            if (kb_vindex_dim(vi) == d->dim)
                kb_vindex_search(vi, d->queries, 10, ids, scores, &n_out, &err);
            kb_vindex_free(vi);
        } else {
            assert_non_null(strstr(err.msg, path));
        }
        bytes[at] = saved;
    }
}

static void vindex__damaged_files_fail_with_clear_errors(void **state)
{
    (void)state;
    static const char *specs[] = {"flat", "ivf:nlist=8", "hnsw:m=4"};
    char path[256];
    make_temp_path(path, sizeof path);
    for (int i = 0; i < 3; i++) {
        struct data d;
        data_make(&d, 400, 16, 8, 23);
        struct kb_vindex *vi = build(&d, specs[i]);
        assert_int_equal(kb_vindex_write(vi, path, NULL), 0);
        kb_vindex_free(vi);
        size_t n;
        unsigned char *bytes = slurp(path, &n);
        assert_truncations_fail(path, bytes, n);
        assert_bit_flips_are_safe(path, bytes, n, &d);
        free(bytes);
        data_free(&d);
    }
    unsigned char garbage[4096];
    uint64_t rng = 42;
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (unsigned char)rng_next(&rng);
    write_bytes(path, garbage, sizeof garbage);
    assert_read_fails(path, KB_EFORMAT, "not a vector index");
    memcpy(garbage, "IxM2", 4); /* a plausible start, then noise */
    write_bytes(path, garbage, sizeof garbage);
    assert_read_fails(path, 0, NULL);
    write_bytes(path, "", 0);
    assert_read_fails(path, KB_EFORMAT, "empty");
    unlink(path);
    assert_read_fails(path, KB_ENOTFOUND, "cannot open");
}

static void vindex__reading_another_kind_than_expected_fails(void **state)
{
    (void)state;
    struct data d;
    data_make(&d, 500, 16, 0, 31);
    struct kb_vindex *vi = build(&d, "flat"), *back = NULL;
    char path[256];
    make_temp_path(path, sizeof path);
    assert_int_equal(kb_vindex_write(vi, path, NULL), 0);
    struct kb_vindex_spec expect = {KB_VINDEX_HNSW, 16, 0, 0, 0, 0};
    struct kb_err err = {0};
    assert_int_equal(kb_vindex_read(&back, path, &expect, &err), KB_ECORRUPT);
    assert_non_null(strstr(err.msg, "expected hnsw"));
    expect = (struct kb_vindex_spec){KB_VINDEX_FLAT, 32, 0, 0, 0, 0};
    assert_int_equal(kb_vindex_read(&back, path, &expect, &err), KB_ECORRUPT);
    assert_null(back);
    unlink(path);
    kb_vindex_free(vi);
    data_free(&d);
}

static void vindex__ids_lists_exactly_the_stored_ids(void **state)
{
    (void)state;
    static const char *specs[] = {"flat", "ivf", "hnsw"};
    for (int i = 0; i < 3; i++) {
        struct data d;
        data_make(&d, 2500, 24, 10, 77);
        struct kb_vindex *vi = build(&d, specs[i]);
        assert_ids_are_stored_rows(vi, &d);
        if (i < 2) {
            remove_some(vi, &d);
            assert_ids_are_stored_rows(vi, &d);
        }
        kb_vindex_free(vi);
        data_free(&d);
    }
}

static void vindex__spec_parse_and_format_round_trip(void **state)
{
    (void)state;
    static const struct { const char *text, *formatted; } cases[] = {
        {"flat", "flat"},
        {"ivf", "ivf"},
        {"ivf:nlist=1024,nprobe=32", "ivf:nlist=1024,nprobe=32"},
        {"ivf:nprobe=8,nlist=64", "ivf:nlist=64,nprobe=8"},
        {"ivf:nprobe=8", "ivf:nprobe=8"},
        {"hnsw", "hnsw"},
        {"hnsw:m=32,ef=64", "hnsw:m=32,ef=64"},
        {"hnsw:ef=100", "hnsw:ef=100"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct kb_vindex_spec spec, again;
        struct kb_err err = {0};
        char text[64];
        if (kb_vindex_spec_parse(&spec, 384, cases[i].text, &err) != 0)
            fail_msg("'%s': %s", cases[i].text, err.msg);
        assert_int_equal(spec.dim, 384);
        int len = kb_vindex_spec_format(&spec, text, sizeof text);
        assert_int_equal(len, (int)strlen(cases[i].formatted));
        assert_string_equal(text, cases[i].formatted);
        assert_int_equal(kb_vindex_spec_parse(&again, 384, text, &err), 0);
        assert_memory_equal(&spec, &again, sizeof spec);
    }
}

static void vindex__spec_parse_rejects_bad_text_naming_it(void **state)
{
    (void)state;
    static const char *bad[] = {
        "", "Flat", "ivf:", "ivf:nlist", "ivf:nlist=", "ivf:nlist=abc", "ivf:nlist=0",
        "ivf:nlist=-4", "ivf:nlist=12x", "ivf:nlist=8,", "ivf:m=8", "hnsw:nlist=8",
        "flat:nlist=8", "ivf:nlist=99999999999", "lsh", "ivf,nlist=8",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct kb_vindex_spec spec;
        struct kb_err err = {0};
        if (kb_vindex_spec_parse(&spec, 384, bad[i], &err) != KB_EINVALID)
            fail_msg("'%s' was accepted", bad[i]);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
        if (!strstr(err.msg, quoted))
            fail_msg("message '%s' does not quote %s", err.msg, quoted);
    }
}

static void vindex__spec_auto_is_exact_when_small_and_ivf_when_large(void **state)
{
    (void)state;
    struct kb_vindex_spec spec;
    kb_vindex_spec_auto(&spec, 384, 1000);
    assert_int_equal(spec.kind, KB_VINDEX_FLAT);
    kb_vindex_spec_auto(&spec, 384, KB_VINDEX_FLAT_MAX_FLOATS / 384);
    assert_int_equal(spec.kind, KB_VINDEX_FLAT);
    kb_vindex_spec_auto(&spec, 384, KB_VINDEX_FLAT_MAX_FLOATS / 384 + 1);
    assert_int_equal(spec.kind, KB_VINDEX_IVF);
    kb_vindex_spec_auto(&spec, 384, 1000000);
    assert_int_equal(spec.kind, KB_VINDEX_IVF);
    assert_int_equal(spec.nlist, 4000);
    assert_int_equal(spec.nprobe, 250);
    assert_int_equal(spec.dim, 384);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vindex__flat_search_equals_brute_force),
        cmocka_unit_test(vindex__flat_results_do_not_depend_on_threads),
        cmocka_unit_test(vindex__ivf_and_hnsw_reach_recall_of_095),
        cmocka_unit_test(vindex__removed_ids_are_never_returned),
        cmocka_unit_test(vindex__added_vectors_are_found),
        cmocka_unit_test(vindex__hnsw_cannot_remove_and_says_rebuild),
        cmocka_unit_test(vindex__file_round_trip_gives_identical_results),
        cmocka_unit_test(vindex__damaged_files_fail_with_clear_errors),
        cmocka_unit_test(vindex__reading_another_kind_than_expected_fails),
        cmocka_unit_test(vindex__ids_lists_exactly_the_stored_ids),
        cmocka_unit_test(vindex__spec_parse_and_format_round_trip),
        cmocka_unit_test(vindex__spec_parse_rejects_bad_text_naming_it),
        cmocka_unit_test(vindex__spec_auto_is_exact_when_small_and_ivf_when_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
