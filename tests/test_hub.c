/* test_hub.c — finding models by hub name in kb's cache and the Hugging Face cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "encoder/hub.h"
#include "helpers.h"

#define NAME "BAAI/bge-small-en-v1.5"
#define KB_REL "cache/kb/models/BAAI--bge-small-en-v1.5"  /* below the scratch folder */
#define HF_REL "hf/hub/models--BAAI--bge-small-en-v1.5"

struct env {
    char *root;       /* scratch folder: cache/ is XDG_CACHE_HOME, hf/ is HF_HOME */
    char *kb_dir;     /* kb's folder for NAME */
    char *hf_repo;    /* the Hugging Face cache's folder for NAME */
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    e->root = th_tempdir();
    char *cache = th_path(e->root, "cache"), *hf = th_path(e->root, "hf");
    setenv("XDG_CACHE_HOME", cache, 1);
    setenv("HF_HOME", hf, 1);
    unsetenv("HF_HUB_CACHE");
    e->kb_dir = th_path(e->root, KB_REL);
    e->hf_repo = th_path(e->root, HF_REL);
    free(cache);
    free(hf);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    th_rmtree(e->root);
    free(e->root);
    free(e->kb_dir);
    free(e->hf_repo);
    free(e);
    return 0;
}

/* Writes root/rel/name, creating folders. */
static void put(const struct env *e, const char *rel, const char *name, const char *text)
{
    char *path = th_path(rel, name);
    th_write(e->root, path, text, (size_t)-1);
    free(path);
}

/* The files that make root/rel complete; vocab is "vocab.txt" or "tokenizer.json". */
static void put_model(const struct env *e, const char *rel, const char *vocab)
{
    put(e, rel, "config.json", "{}");
    put(e, rel, "model.safetensors", "weights");
    put(e, rel, vocab, "[PAD]\n");
}

static char *resolve(int *rc, const char *name)
{
    char *dir = (char *)1;
    struct kb_err err = { 0, "" };
    *rc = kb_hub_resolve(&dir, name, &err);
    if (*rc)
        assert_null(dir);
    return dir;
}

static void resolve__prefers_kbs_cache_then_the_huggingface_cache(void **state)
{
    struct env *e = *state;
    int rc;
    char *snap = th_path(e->hf_repo, "snapshots/0123abcd");
    put(e, HF_REL, "refs/main", "0123abcd\n");
    put_model(e, HF_REL "/snapshots/0123abcd", "tokenizer.json");
    char *dir = resolve(&rc, NAME);
    assert_int_equal(rc, 0);
    assert_string_equal(dir, snap);
    free(dir);
    put_model(e, KB_REL, "vocab.txt");
    put(e, KB_REL, KB_HUB_MANIFEST, "{}");
    dir = resolve(&rc, NAME);
    assert_int_equal(rc, 0);
    assert_string_equal(dir, e->kb_dir);
    free(dir);
    free(snap);
}

static void resolve__skips_unfinished_downloads(void **state)
{
    struct env *e = *state;
    int rc;
    put_model(e, KB_REL, "vocab.txt"); /* no manifest: a pull that did not finish */
    char *dir = resolve(&rc, NAME);
    assert_int_equal(rc, KB_ENOTFOUND);
    put(e, HF_REL, "snapshots/aaaa/config.json", "{}"); /* refs/main's lacks the weights */
    put(e, HF_REL, "refs/main", "aaaa");
    char *older = th_path(e->hf_repo, "snapshots/bbbb");
    put_model(e, HF_REL "/snapshots/bbbb", "vocab.txt");
    dir = resolve(&rc, NAME);
    assert_int_equal(rc, 0);
    assert_string_equal(dir, older); /* the complete snapshot wins over the incomplete one */
    free(dir);
    free(older);
}

static void resolve__says_how_to_get_a_missing_model(void **state)
{
    (void)state;
    char *dir = (char *)1;
    struct kb_err err = { 0, "" };
    assert_int_equal(kb_hub_resolve(&dir, NAME, &err), KB_ENOTFOUND);
    assert_null(dir);
    assert_non_null(strstr(err.msg, "kb model pull " NAME));
}

static void resolve__rejects_names_that_are_not_org_slash_name(void **state)
{
    (void)state;
    static const char *const bad[] = { "bge-small", "a/b/c", "../x", "a/..", "a--b/c", "/x",
                                       "a/", "a/b c", "a/.hidden", "" };
    int rc;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        resolve(&rc, bad[i]);
        assert_int_equal(rc, KB_EINVALID);
    }
    assert_int_equal(kb_hub_check_name("sentence-transformers/all-MiniLM-L6-v2", NULL), 0);
    assert_int_equal(kb_hub_check_name("intfloat/e5-small-v2", NULL), 0);
}

static void settings__written_only_for_models_with_known_prefixes(void **state)
{
    struct env *e = *state;
    char *path = th_path(e->kb_dir, KB_HUB_SETTINGS), text[256] = "";
    put(e, KB_REL, "config.json", "{}");
    assert_int_equal(kb_hub_write_settings(e->kb_dir, "sentence-transformers/all-MiniLM-L6-v2",
                                           NULL), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(kb_hub_write_settings(e->kb_dir, "intfloat/e5-large-instruct", NULL), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(kb_hub_write_settings(e->kb_dir, "INTFLOAT/e5-base-v2", NULL), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "\"query_prefix\":\t\"query: \""));
    assert_non_null(strstr(text, "\"passage_prefix\":\t\"passage: \""));
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(resolve__prefers_kbs_cache_then_the_huggingface_cache,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(resolve__skips_unfinished_downloads, setup, teardown),
        cmocka_unit_test_setup_teardown(resolve__says_how_to_get_a_missing_model, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(resolve__rejects_names_that_are_not_org_slash_name,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(settings__written_only_for_models_with_known_prefixes,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
