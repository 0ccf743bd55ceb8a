/* test_model.c — the public encoder-model calls that kb serve's /v1/embeddings stands on:
 * kb_model_embed_ids (texts given as the model's token ids) and kb_model_min_dim (how short a
 * vector may be cut), on the encoder_models fixture's random-weight models.
 * Needs the encoder_models fixture (KB_ENCODER_MODELS); skips with 77 without it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "helpers.h"
#include "kb/kb.h"

static const char *models;

static char *model_path(const char *name)
{
    return th_path(models, name);
}

static kb_model *open_model(const char *dir)
{
    kb_model *m = NULL;
    if (kb_model_open(&m, dir))
        fail_msg("%s: %s", dir, kb_model_errmsg(m));
    return m;
}

/* Embeds each text as a text and as its token ids; the two vectors must agree. */
static void check_ids_like_texts(const char *name, unsigned flags)
{
    static char long_text[6000];
    for (size_t i = 0; i + 7 < sizeof long_text; i += 7)
        memcpy(long_text + i, "tides, ", 7); /* past every model's max_tokens */
    const char *texts[] = { "Hello, world!", "", "the keeper trims the wick at dusk",
                            "Ünïcödé and CJK 中文 mixed", long_text };
    enum { N = sizeof texts / sizeof *texts };
    char *dir = model_path(name);
    kb_model *m = open_model(dir);
    kb_model_info info;
    assert_int_equal(kb_model_get_info(m, &info), 0);
    size_t dim = (size_t)info.dim;
    int32_t *ids[N];
    size_t n_ids[N];
    for (size_t i = 0; i < N; i++)
        assert_int_equal(kb_model_tokenize(m, texts[i], KB_TOKENIZE_NO_SPECIAL, &ids[i],
                                           &n_ids[i]), 0);
    float *want = malloc(N * dim * sizeof *want), *got = malloc(N * dim * sizeof *got);
    assert_non_null(want);
    assert_non_null(got);
    assert_int_equal(kb_model_embed(m, texts, N, flags, want), 0);
    assert_int_equal(kb_model_embed_ids(m, (const int32_t *const *)ids, n_ids, N, flags, got), 0);
    for (size_t i = 0; i < N * dim; i++)
        if (fabsf(want[i] - got[i]) > 1e-6f)
            fail_msg("%s%s: text %zu, dimension %zu: %g from the text, %g from its ids", name,
                     flags ? " (query)" : "", i / dim, i % dim, want[i], got[i]);
    /* alone, the last sequence (cut to max_tokens) gives the same vector again */
    assert_int_equal(kb_model_embed_ids(m, (const int32_t *const *)&ids[N - 1], &n_ids[N - 1],
                                        1, flags, got), 0);
    for (size_t j = 0; j < dim; j++)
        assert_true(fabsf(got[j] - want[(N - 1) * dim + j]) <= 1e-6f);
    for (size_t i = 0; i < N; i++)
        kb_free(ids[i]);
    free(want);
    free(got);
    kb_model_close(m);
    free(dir);
}

static void model__token_ids_embed_like_the_texts_they_came_from(void **state)
{
    (void)state;
    /* passage and query prefixes from kb_model.json ("passage: ", "query: "); a query prompt
     * from sentence-transformers (BGE's instruction, none for passages); no prefixes */
    check_ids_like_texts("fullvocab_bf16_kbsettings", 0);
    check_ids_like_texts("fullvocab_bf16_kbsettings", KB_EMBED_QUERY);
    check_ids_like_texts("bge_f16_cls", KB_EMBED_QUERY);
    check_ids_like_texts("tiny_f16_mean", 0);
}

static void model__token_ids_outside_the_vocabulary_are_refused(void **state)
{
    (void)state;
    char *dir = model_path("tiny_f16_mean");
    kb_model *m = open_model(dir);
    float vec[64];
    const int32_t good[] = { 5, 6 }, neg[] = { 5, -1 }, big[] = { 4000 };
    const int32_t *seqs[] = { good, neg };
    size_t lens[] = { 2, 2 };
    assert_int_equal(kb_model_embed_ids(m, seqs, lens, 2, 0, vec), KB_EINVALID);
    assert_non_null(strstr(kb_model_errmsg(m), "token id -1 of sequence 1"));
    seqs[1] = big;
    lens[1] = 1;
    assert_int_equal(kb_model_embed_ids(m, seqs, lens, 2, 0, vec), KB_EINVALID);
    assert_non_null(strstr(kb_model_errmsg(m), "token id 4000 of sequence 1 is outside the "
                                               "model's vocabulary (ids 0 to 3999)"));
    assert_int_equal(kb_model_embed_ids(m, NULL, lens, 1, 0, vec), KB_EINVALID);
    assert_int_equal(kb_model_embed_ids(m, seqs, lens, 0, 0, NULL), 0);
    kb_model_close(m);
    assert_int_equal(kb_model_embed_ids(m, seqs, lens, 1, 0, vec), KB_EINVALID);
    assert_int_equal(kb_model_embed_ids(NULL, seqs, lens, 1, 0, vec), KB_EINVALID);
    free(dir);
}

/* Copies the fixture's model `name` into a new folder, then writes kb_model.json there. */
static char *copy_model(const char *name, const char *kb_model_json)
{
    static const char *const files[] = { "config.json", "model.safetensors", "vocab.txt",
                                         "tokenizer_config.json", "modules.json",
                                         "1_Pooling/config.json", "sentence_bert_config.json",
                                         "config_sentence_transformers.json" };
    char *src = model_path(name), *dst = th_tempdir();
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *from = th_path(src, files[i]);
        FILE *in = fopen(from, "rb");
        free(from);
        if (!in)
            continue;
        struct stat st;
        assert_int_equal(fstat(fileno(in), &st), 0);
        char *data = malloc((size_t)st.st_size + 1);
        assert_non_null(data);
        assert_int_equal(fread(data, 1, (size_t)st.st_size, in), (size_t)st.st_size);
        fclose(in);
        th_write(dst, files[i], data, (size_t)st.st_size);
        free(data);
    }
    th_write(dst, "kb_model.json", kb_model_json, (size_t)-1);
    free(src);
    return dst;
}

static void model__min_dim_is_the_dim_unless_kb_model_json_sets_matryoshka_min_dim(void **state)
{
    (void)state;
    char *dir = model_path("tiny_f16_mean");
    kb_model *m = open_model(dir);
    assert_int_equal(kb_model_min_dim(m), 32);
    kb_model_close(m);
    assert_int_equal(kb_model_min_dim(m), 0);
    assert_int_equal(kb_model_min_dim(NULL), 0);
    free(dir);

    char *copy = copy_model("tiny_f16_mean", "{\"matryoshka_min_dim\": 8}");
    m = open_model(copy);
    assert_int_equal(kb_model_min_dim(m), 8);
    kb_model_close(m);
    th_rmtree(copy);
    free(copy);

    static const char *const bad[] = { "{\"matryoshka_min_dim\": 33}",
                                       "{\"matryoshka_min_dim\": 0}",
                                       "{\"matryoshka_min_dim\": 8.5}",
                                       "{\"matryoshka_min_dim\": \"8\"}" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        copy = copy_model("tiny_f16_mean", bad[i]);
        m = NULL;
        assert_int_equal(kb_model_open(&m, copy), KB_EFORMAT);
        assert_string_equal(kb_model_errmsg(m), "kb_model.json: matryoshka_min_dim must be an "
                                                "integer from 1 to 32 (hidden_size)");
        kb_model_close(m);
        th_rmtree(copy);
        free(copy);
    }
}

int main(void)
{
    models = getenv("KB_ENCODER_MODELS");
    char *weights = models ? th_path(models, "tiny_f16_mean/model.safetensors") : NULL;
    struct stat st;
    int have = weights && stat(weights, &st) == 0;
    free(weights);
    if (!have) {
        printf("skip: the encoder_models fixture's models are missing\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(model__token_ids_embed_like_the_texts_they_came_from),
        cmocka_unit_test(model__token_ids_outside_the_vocabulary_are_refused),
        cmocka_unit_test(model__min_dim_is_the_dim_unless_kb_model_json_sets_matryoshka_min_dim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
