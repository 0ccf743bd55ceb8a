/* test_shared.c — read handles of one process share one copy of what they only read: the
 * encoder's weights (per model folder and unchanged files) and a generation's vector index
 * (per file and checksum), and the copy goes away with its last user (util/shared.h). Also:
 * a deletion, which reads nothing of the model, does not need it.
 * Needs the encoder_models fixture (KB_ENCODER_MODELS); skips with 77 without it. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "encoder/encoder_int.h"
#include "helpers.h"
#include "kb/kb.h"
#include "kb/kb_int.h"
#include "kb/model_int.h"
#include "util/shared.h"

static char model_dir[4096];

static const char *const topics[] = { "lighthouse keeper", "tide tables", "harbour pilot",
                                      "fog signal", "rope splicing", "ship's bell",
                                      "weather log", "signal flags" };
#define N_TOPICS (sizeof topics / sizeof *topics)

/* A KB of 40 in-memory documents embedded with the model in `model`. */
static char *make_kb_with(const char *model)
{
    char *dir = th_tempdir();
    kb *w = NULL;
    assert_int_equal(kb_open(&w, dir, KB_OPEN_CREATE), 0);
    enum { N = 40 };
    static char ids[N][32], texts[N][200];
    kb_document docs[N];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "doc-%02d", i);
        snprintf(texts[i], sizeof texts[i], "Note %d about the %s and the %s, written on day %d.",
                 i, topics[i % N_TOPICS], topics[(i * 3 + 1) % N_TOPICS], i * 7);
        docs[i] = (kb_document){ ids[i], NULL, texts[i], strlen(texts[i]), "text", NULL };
    }
    kb_ingest_options o = KB_INGEST_OPTIONS_INIT;
    o.model = model;
    if (kb_add_documents(w, docs, N, &o, NULL))
        fail_msg("ingest: %s", kb_errmsg(w));
    kb_close(w);
    return dir;
}

static char *make_kb(void)
{
    return make_kb_with(model_dir);
}

static kb_results *vector_search(kb *h, const char *query)
{
    kb_search_options o = KB_SEARCH_OPTIONS_INIT;
    o.mode = KB_MODE_VECTOR;
    o.k = 5;
    kb_results *res = NULL;
    if (kb_search(h, query, &o, &res))
        fail_msg("search '%s': %s", query, kb_errmsg(h));
    return res;
}

static void assert_same_results(const kb_results *a, const kb_results *b)
{
    assert_int_equal(kb_results_count(a), kb_results_count(b));
    for (size_t i = 0; i < kb_results_count(a); i++) {
        assert_int_equal(kb_results_get(a, i)->chunk_id, kb_results_get(b, i)->chunk_id);
        assert_true(kb_results_get(a, i)->score == kb_results_get(b, i)->score);
    }
}

static const struct kb_encoder *encoder_of(kb *h)
{
    assert_non_null(h->vec.model);
    return kb_model_encoder(h->vec.model);
}

static void shared__read_handles_share_one_index_and_one_model(void **state)
{
    (void)state;
    char *dir = make_kb();
    kb *r1 = NULL, *r2 = NULL;
    assert_int_equal(kb_open(&r1, dir, KB_OPEN_READONLY), 0);
    assert_int_equal(kb_open(&r2, dir, KB_OPEN_READONLY), 0);
    kb_results *a = vector_search(r1, "keeper of the light");
    kb_results *b = vector_search(r2, "keeper of the light");
    assert_same_results(a, b);
    assert_true(kb_results_count(a) == 5);
    kb_results_free(a);
    kb_results_free(b);

    /* One index: the same object, counted twice, read-only in both. */
    const struct kb_vindex *old_vi = r1->vec.vi;
    assert_non_null(old_vi);
    assert_ptr_equal(old_vi, r2->vec.vi);
    assert_true(r1->vec.vi_shared && r2->vec.vi_shared);
    assert_int_equal(kb_shared_users(old_vi), 2);

    /* One model: two handles (each with its own scratch) over one prototype's weights. */
    const struct kb_encoder *e1 = encoder_of(r1), *e2 = encoder_of(r2);
    assert_ptr_not_equal(e1, e2);
    assert_non_null(e1->proto);
    assert_ptr_equal(e1->proto, e2->proto);
    assert_ptr_equal(e1->w.word_emb, e2->w.word_emb);
    assert_ptr_equal(e1->w.layers[0].q_w, e2->w.layers[0].q_w);
    assert_int_equal(kb_shared_users(e1->proto), 2);
    /* ... and a public model handle on the same folder borrows it too. */
    kb_model *m = NULL;
    assert_int_equal(kb_model_open(&m, model_dir), 0);
    assert_ptr_equal(kb_model_encoder(m)->proto, e1->proto);
    assert_int_equal(kb_shared_users(e1->proto), 3);
    kb_model_close(m);
    assert_int_equal(kb_shared_users(e1->proto), 2);

    /* A new generation: a handle that searches again moves to it; the old copy stays for the
     * handle still on it and is freed with its last user. */
    kb *w = NULL;
    assert_int_equal(kb_open(&w, dir, 0), 0);
    const char *text = "The lamp room of the lighthouse keeper was painted white in spring.";
    kb_document doc = { "doc-new", NULL, text, strlen(text), "text", NULL };
    assert_int_equal(kb_add_documents(w, &doc, 1, NULL, NULL), 0);
    kb_close(w);
    kb_results *c = vector_search(r1, text);
    assert_string_equal(kb_results_get(c, 0)->path, "doc-new");
    kb_results_free(c);
    assert_ptr_not_equal(r1->vec.vi, old_vi);
    assert_int_equal(kb_shared_users(r1->vec.vi), 1);
    assert_int_equal(kb_shared_users(old_vi), 1);
    const struct kb_vindex *new_vi = r1->vec.vi;
    kb *r3 = NULL;
    assert_int_equal(kb_open(&r3, dir, KB_OPEN_READONLY), 0);
    kb_results_free(vector_search(r3, "fog"));
    assert_ptr_equal(r3->vec.vi, new_vi);
    assert_int_equal(kb_shared_users(new_vi), 2);
    kb_close(r2);
    assert_int_equal(kb_shared_users(old_vi), 0); /* freed: no handle is on it */
    kb_close(r3);
    const struct kb_encoder *proto = e1->proto;
    assert_int_equal(kb_shared_users(proto), 1);
    kb_close(r1);
    assert_int_equal(kb_shared_users(new_vi), 0);
    assert_int_equal(kb_shared_users(proto), 0);
    th_rmtree(dir);
    free(dir);
}

/* Copies the file `from` to `to`. */
static void copy_path(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* Copies src/name to dst/name when it exists. */
static void copy_file(const char *src, const char *dst, const char *name)
{
    char *from = th_path(src, name), *to = th_path(dst, name);
    struct stat st;
    if (stat(from, &st) == 0)
        copy_path(from, to);
    free(from);
    free(to);
}

/* Copies the fixture's model folder into dst (an existing folder). */
static void copy_model(const char *dst)
{
    static const char *const files[] = { "config.json", "model.safetensors", "vocab.txt",
                                         "tokenizer.json", "tokenizer_config.json",
                                         "modules.json", "1_Pooling/config.json",
                                         "kb_model.json" };
    char *pooling = th_path(dst, "1_Pooling");
    assert_int_equal(mkdir(pooling, 0700), 0);
    free(pooling);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        copy_file(model_dir, dst, files[i]);
}

static void shared__a_changed_model_file_is_loaded_afresh(void **state)
{
    (void)state;
    char *dir = th_tempdir();
    copy_model(dir);
    kb_model *m1 = NULL, *m2 = NULL, *m3 = NULL;
    assert_int_equal(kb_model_open(&m1, dir), 0);
    assert_int_equal(kb_model_open(&m2, dir), 0);
    assert_ptr_equal(kb_model_encoder(m1)->proto, kb_model_encoder(m2)->proto);
    /* config.json replaced by a new file with the same bytes: the open handles keep their copy,
     * a new open loads the folder again. */
    char *cfg = th_path(dir, "config.json"), *tmp = th_path(dir, "config.json.new");
    copy_path(cfg, tmp);
    assert_int_equal(rename(tmp, cfg), 0);
    free(tmp);
    free(cfg);
    assert_int_equal(kb_model_open(&m3, dir), 0);
    assert_ptr_not_equal(kb_model_encoder(m3)->proto, kb_model_encoder(m1)->proto);
    const char *text[] = { "the same text" };
    float v1[1024], v3[1024];
    kb_model_info info;
    assert_int_equal(kb_model_get_info(m1, &info), 0);
    assert_true(info.dim <= 1024);
    assert_int_equal(kb_model_embed(m1, text, 1, 0, v1), 0);
    assert_int_equal(kb_model_embed(m3, text, 1, 0, v3), 0);
    assert_memory_equal(v1, v3, (size_t)info.dim * sizeof *v1);
    kb_model_close(m1);
    kb_model_close(m2);
    kb_model_close(m3);
    th_rmtree(dir);
    free(dir);
}

/* Deleting documents embeds nothing, so it must work (and keep the vector index in step)
 * while the KB's model folder is unavailable, e.g. being replaced. */
static void documents__deleting_needs_no_model(void **state)
{
    (void)state;
    char *copy = th_tempdir();
    copy_model(copy);
    char *dir = make_kb_with(copy);
    char gone[4200];
    snprintf(gone, sizeof gone, "%s-moved-away", copy);
    assert_int_equal(rename(copy, gone), 0);
    kb *w = NULL;
    assert_int_equal(kb_open(&w, dir, 0), 0);
    const char *ids[] = { "doc-07" };
    size_t n_deleted = 0;
    if (kb_delete_documents(w, ids, 1, 0, &n_deleted))
        fail_msg("delete: %s", kb_errmsg(w));
    assert_int_equal(n_deleted, 1);
    assert_int_equal(kb_check(w), 0); /* vectors and the FAISS generation match the chunks */
    kb_status_info info;
    assert_int_equal(kb_stat(w, &info), 0);
    assert_int_equal(info.n_documents, 39);
    kb_close(w);
    assert_int_equal(rename(gone, copy), 0);
    th_rmtree(copy);
    free(copy);
    th_rmtree(dir);
    free(dir);
}

/* Threads, each with its own read handle, search at once over the one shared index and model
 * and get exactly what a lone handle gets. */
struct searcher {
    const char *dir;
    kb_results **want; /* per query */
    int failures;
};

static void *searcher_run(void *arg)
{
    struct searcher *s = arg;
    kb *h = NULL;
    if (kb_open(&h, s->dir, KB_OPEN_READONLY)) {
        s->failures++;
        return NULL;
    }
    kb_search_options o = KB_SEARCH_OPTIONS_INIT;
    o.mode = KB_MODE_VECTOR;
    o.k = 5;
    for (int round = 0; round < 10; round++)
        for (size_t q = 0; q < N_TOPICS; q++) {
            kb_results *res = NULL;
            if (kb_search(h, topics[q], &o, &res)) {
                s->failures++;
                continue;
            }
            const kb_results *want = s->want[q];
            if (kb_results_count(res) != kb_results_count(want))
                s->failures++;
            for (size_t i = 0; i < kb_results_count(res) && i < kb_results_count(want); i++)
                if (kb_results_get(res, i)->chunk_id != kb_results_get(want, i)->chunk_id ||
                    kb_results_get(res, i)->score != kb_results_get(want, i)->score)
                    s->failures++;
            kb_results_free(res);
        }
    kb_close(h);
    return NULL;
}

static void shared__threads_with_their_own_handles_search_one_copy_at_once(void **state)
{
    (void)state;
    char *dir = make_kb();
    kb_results *want[N_TOPICS];
    kb *lone = NULL;
    assert_int_equal(kb_open(&lone, dir, KB_OPEN_READONLY), 0);
    for (size_t q = 0; q < N_TOPICS; q++)
        want[q] = vector_search(lone, topics[q]);
    kb_close(lone);
    enum { N_THREADS = 4 };
    pthread_t tid[N_THREADS];
    struct searcher s[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        s[i] = (struct searcher){ dir, want, 0 };
        assert_int_equal(pthread_create(&tid[i], NULL, searcher_run, &s[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(tid[i], NULL);
        assert_int_equal(s[i].failures, 0);
    }
    for (size_t q = 0; q < N_TOPICS; q++)
        kb_results_free(want[q]);
    th_rmtree(dir);
    free(dir);
}

int main(void)
{
    const char *models = getenv("KB_ENCODER_MODELS");
    snprintf(model_dir, sizeof model_dir, "%s/tiny_f16_mean", models ? models : "");
    char *weights = th_path(model_dir, "model.safetensors");
    struct stat st;
    int have = models && stat(weights, &st) == 0;
    free(weights);
    if (!have) {
        printf("skip: %s/model.safetensors is missing (run the encoder_models fixture)\n",
               model_dir);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shared__read_handles_share_one_index_and_one_model),
        cmocka_unit_test(shared__a_changed_model_file_is_loaded_afresh),
        cmocka_unit_test(shared__threads_with_their_own_handles_search_one_copy_at_once),
        cmocka_unit_test(documents__deleting_needs_no_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
