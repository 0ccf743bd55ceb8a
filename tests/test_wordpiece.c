/* test_wordpiece.c — the WordPiece tokenizer against published HF cases and our own edge cases.
 * Run with --published for the shared-data cases (exit 77 when ../shared/data is absent). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "encoder/wordpiece.h"
#include "helpers.h"

#define MAX_IDS 4096

/* ---- helpers --------------------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)n + 1);
    size_t got = fread(data, 1, (size_t)n, f);
    fclose(f);
    data[got] = '\0';
    if (len)
        *len = got;
    return data;
}

/* cJSON strings end at a NUL, so a "\u0000" escape would cut a case text short: load_json
 * rewrites it to the noncharacter U+FDD0 (in no case file) and text_of turns that back. */
static void json_protect_nul(char *text)
{
    for (char *p = text; (p = strstr(p, "\\u0000")); p += 6) {
        size_t n_backslashes = 0;
        for (char *q = p; q > text && q[-1] == '\\'; q--)
            n_backslashes++;
        if (n_backslashes % 2 == 0)  /* the backslash at p is itself an escape */
            memcpy(p + 2, "FDD0", 4);
    }
}

static cJSON *load_json(const char *path)
{
    char *text = slurp(path, NULL);
    if (!text)
        fail_msg("cannot read %s", path);
    json_protect_nul(text);
    cJSON *json = cJSON_Parse(text);
    free(text);
    if (!json)
        fail_msg("%s: not JSON", path);
    return json;
}

/* The bytes of a case's text field (malloc'ed), with U+FDD0 back to NUL. */
static char *text_of(const cJSON *c, const char *field, size_t *len)
{
    const cJSON *item = cJSON_GetObjectItem(c, field);
    assert_true(cJSON_IsString(item));
    const char *src = item->valuestring;
    char *out = malloc(strlen(src) + 1);
    size_t n = 0;
    for (size_t i = 0; src[i];) {
        const unsigned char *u = (const unsigned char *)src + i;
        if (u[0] == 0xEF && u[1] == 0xB7 && u[2] == 0x90) {
            out[n++] = '\0';
            i += 3;
        } else {
            out[n++] = src[i++];
        }
    }
    out[n] = '\0';
    *len = n;
    return out;
}

static char *data_path(const char *name)
{
    const char *dir = getenv("KB_TEST_DATA");
    assert_non_null(dir);
    return th_path(dir, name);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Encodes and checks the call succeeded; returns the count. */
static size_t encode(const struct kb_wordpiece *wp, const char *text, size_t len, unsigned flags,
                     int32_t *ids, size_t max_ids)
{
    struct kb_err err = { 0 };
    size_t n = 0, n_full = 0;
    int rc = kb_wordpiece_encode(wp, text, len, flags, ids, max_ids, &n, &n_full, &err);
    if (rc != 0)
        fail_msg("encode failed: %s", err.msg);
    assert_int_equal(n, n_full);
    return n;
}

static int ids_equal(const int32_t *got, size_t n_got, const cJSON *expected)
{
    if ((int)n_got != cJSON_GetArraySize(expected))
        return 0;
    for (size_t i = 0; i < n_got; i++)
        if (got[i] != cJSON_GetArrayItem(expected, (int)i)->valueint)
            return 0;
    return 1;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

static struct kb_wordpiece *open_dir(const char *dir)
{
    struct kb_wordpiece *wp = NULL;
    struct kb_err err = { 0 };
    if (kb_wordpiece_open(&wp, dir, &err) != 0)
        fail_msg("%s", err.msg);
    return wp;
}

/* ---- published cases (shared data) ----------------------------------------------------------- */

struct published {
    struct kb_wordpiece *wp[2];  /* bert-base-uncased/vocab.txt, all-MiniLM-L6-v2/tokenizer.json */
    size_t n_checked;
    size_t n_failed;
};

static void check_published(struct published *p, const char *source, const char *name,
                            const cJSON *c, unsigned flags)
{
    int32_t ids[MAX_IDS];
    const cJSON *expected = cJSON_GetObjectItem(c, "ids");
    size_t len = 0, pair_len = 0;
    char *text = text_of(c, "text", &len);
    char *pair = cJSON_GetObjectItem(c, "text_pair") ? text_of(c, "text_pair", &pair_len) : NULL;
    for (int k = 0; k < 2; k++) {
        size_t n = encode(p->wp[k], text, len, flags, ids, MAX_IDS);
        if (pair) {  /* [CLS] A [SEP] B [SEP], as HF's pair template */
            n += encode(p->wp[k], pair, pair_len, 0, ids + n, MAX_IDS - n);
            ids[n++] = kb_wordpiece_special_id(p->wp[k], KB_WORDPIECE_SEP);
        }
        if (!ids_equal(ids, n, expected)) {
            fprintf(stderr, "MISMATCH %s %s (%s)\n", source, name,
                    k == 0 ? "vocab.txt" : "tokenizer.json");
            print_ids("got", ids, n);
            p->n_failed++;
        }
    }
    p->n_checked++;
    free(text);
    free(pair);
}

static void published_llama_cpp(struct published *p, const char *shared)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer/llama.cpp-bert-bge/bert_bge_cases.json", shared);
    cJSON *root = load_json(path);
    const cJSON *c;
    int i = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        char name[32];
        snprintf(name, sizeof name, "#%d", i++);
        check_published(p, "llama.cpp", name, c, 0);
    }
    cJSON_Delete(root);
}

static void published_bert_cpp(struct published *p, const char *shared)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer/bert.cpp/bert_cpp_cases.json", shared);
    cJSON *root = load_json(path);
    const cJSON *c;
    int i = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        char name[32];
        snprintf(name, sizeof name, "#%d", i++);
        check_published(p, "bert.cpp", name, c, KB_WORDPIECE_ADD_SPECIAL);
    }
    cJSON_Delete(root);
}

/* transformers.js: the models whose vocabulary is bert-base-uncased's. */
static void published_transformers_js(struct published *p, const char *shared)
{
    static const char *const models[] = {
        "Xenova/bert-base-uncased", "Xenova/distilbert-base-uncased-finetuned-sst-2-english"
    };
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer/transformers.js/bert_tokenizer_cases.json", shared);
    cJSON *root = load_json(path);
    for (size_t m = 0; m < 2; m++) {
        const cJSON *c;
        cJSON *model = cJSON_GetObjectItem(root, models[m]);
        assert_non_null(model);
        cJSON_ArrayForEach(c, model)
            check_published(p, models[m], c->string, c, KB_WORDPIECE_ADD_SPECIAL);
    }
    cJSON_Delete(root);
}

/* About 1 MB of English prose from the shared documents, for a speed figure. */
static char *english_megabyte(const char *shared, size_t *len)
{
    static const char *const files[] = { "book-war-and-peace-1p.txt", "norwich-city.txt",
                                         "README.rst", "README.md" };
    char *text = malloc((1 << 20) + 65536);
    size_t n = 0;
    while (n < (1 << 20)) {
        size_t before = n;
        for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/documents/unstructured/%s", shared, files[i]);
            size_t flen = 0;
            char *part = slurp(path, &flen);
            if (!part)
                continue;
            size_t take = flen < 65536 ? flen : 65536;
            while (take > 0 && ((unsigned char)part[take] & 0xC0) == 0x80)
                take--;  /* end on a character boundary */
            memcpy(text + n, part, take);
            n += take;
            text[n++] = '\n';
            free(part);
            if (n >= (1 << 20))
                break;
        }
        if (n == before)
            break;
    }
    *len = n;
    return text;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Prints tokens/s (a figure, not an assertion: the machine is shared). */
static void report_speed(const struct kb_wordpiece *wp, const char *shared)
{
    size_t len = 0;
    char *text = english_megabyte(shared, &len);
    if (len < 1000) {
        free(text);
        return;
    }
    int32_t *ids = malloc(len * sizeof *ids);
    size_t n = 0, n_full = 0;
    double best_ids = 1e9, best_count = 1e9;
    for (int round = 0; round < 3; round++) {
        double t0 = seconds_now();
        assert_int_equal(kb_wordpiece_encode(wp, text, len, 0, ids, len, &n, &n_full, NULL), 0);
        double t1 = seconds_now();
        assert_int_equal(kb_wordpiece_encode(wp, text, len, 0, NULL, 0, &n, &n_full, NULL), 0);
        double t2 = seconds_now();
        best_ids = t1 - t0 < best_ids ? t1 - t0 : best_ids;
        best_count = t2 - t1 < best_count ? t2 - t1 : best_count;
    }
    printf("speed: %.2f MB English, %zu tokens: %.1f M tokens/s writing ids (%.0f MB/s), "
           "%.1f M tokens/s counting\n", (double)len / 1e6, n_full,
           (double)n_full / best_ids / 1e6, (double)len / best_ids / 1e6,
           (double)n_full / best_count / 1e6);
    free(ids);
    free(text);
}

static void tokenizer__matches_published_cases(void **state)
{
    const char *shared = *state;
    char dir[4096];
    struct published p = { { NULL, NULL }, 0, 0 };
    snprintf(dir, sizeof dir, "%s/tokenizer/bert-base-uncased", shared);
    p.wp[0] = open_dir(dir);
    snprintf(dir, sizeof dir, "%s/tokenizer/all-MiniLM-L6-v2", shared);
    p.wp[1] = open_dir(dir);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(kb_wordpiece_vocab_size(p.wp[k]), 30522);
        assert_int_equal(kb_wordpiece_special_id(p.wp[k], KB_WORDPIECE_CLS), 101);
        assert_int_equal(kb_wordpiece_special_id(p.wp[k], KB_WORDPIECE_SEP), 102);
        assert_int_equal(kb_wordpiece_special_id(p.wp[k], KB_WORDPIECE_PAD), 0);
        assert_int_equal(kb_wordpiece_special_id(p.wp[k], KB_WORDPIECE_UNK), 100);
        assert_int_equal(kb_wordpiece_special_id(p.wp[k], KB_WORDPIECE_MASK), 103);
    }
    published_llama_cpp(&p, shared);
    published_bert_cpp(&p, shared);
    published_transformers_js(&p, shared);
    printf("published cases: %zu checked, %zu mismatches\n", p.n_checked, p.n_failed);
    report_speed(p.wp[0], shared);
    kb_wordpiece_free(p.wp[0]);
    kb_wordpiece_free(p.wp[1]);
    assert_int_equal(p.n_failed, 0);
    assert_true(p.n_checked >= 92);
}

/* ---- synthetic vocabulary -------------------------------------------------------------------- */

/* The test's own reading of vocab.txt: token -> id by a linear scan, the last line winning. */
struct vocab_lines {
    char **tok;
    size_t n;
};

static struct vocab_lines vocab_lines_read(const char *path)
{
    struct vocab_lines v = { NULL, 0 };
    char *text = slurp(path, NULL);
    assert_non_null(text);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        v.tok = realloc(v.tok, (v.n + 1) * sizeof *v.tok);
        v.tok[v.n++] = strdup(line);
    }
    free(text);
    return v;
}

static int32_t vocab_lines_id(const struct vocab_lines *v, const char *tok)
{
    for (size_t i = v->n; i-- > 0;)
        if (strcmp(v->tok[i], tok) == 0)
            return (int32_t)i;
    fail_msg("expected token '%s' is not in the test vocabulary", tok);
    return -1;
}

static void vocab_lines_free(struct vocab_lines *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->tok[i]);
    free(v->tok);
}

enum settings { SETTINGS_DEFAULT, SETTINGS_NO_STRIP, SETTINGS_CASED, N_SETTINGS };

/* A tokenizer.json holding the test vocabulary with the given settings, in its own folder. */
static char *write_tokenizer_json(const struct vocab_lines *v, enum settings s, int max_chars)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int32_t id = 0; id < 5; id++) {
        cJSON *tok = cJSON_CreateObject();
        cJSON_AddNumberToObject(tok, "id", id);
        cJSON_AddStringToObject(tok, "content", v->tok[id]);
        cJSON_AddFalseToObject(tok, "normalized");
        cJSON_AddTrueToObject(tok, "special");
        cJSON_AddItemToArray(added, tok);
    }
    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(norm, "type", "BertNormalizer");
    cJSON_AddTrueToObject(norm, "clean_text");
    cJSON_AddTrueToObject(norm, "handle_chinese_chars");
    if (s == SETTINGS_NO_STRIP)
        cJSON_AddFalseToObject(norm, "strip_accents");
    else
        cJSON_AddNullToObject(norm, "strip_accents");
    cJSON_AddBoolToObject(norm, "lowercase", s != SETTINGS_CASED);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(root, "pre_tokenizer"), "type",
                            "BertPreTokenizer");
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "WordPiece");
    cJSON_AddStringToObject(model, "unk_token", "[UNK]");
    cJSON_AddStringToObject(model, "continuing_subword_prefix", "##");
    cJSON_AddNumberToObject(model, "max_input_chars_per_word", max_chars);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (size_t i = 0; i < v->n; i++)
        cJSON_AddNumberToObject(vocab, v->tok[i], (double)i);
    char *text = cJSON_Print(root);
    char *dir = th_tempdir();
    th_write(dir, "tokenizer.json", text, (size_t)-1);
    free(text);
    cJSON_Delete(root);
    return dir;
}

struct synth {
    struct vocab_lines lines;
    struct kb_wordpiece *txt[N_SETTINGS];   /* kb_wordpiece_open_vocab */
    struct kb_wordpiece *json[N_SETTINGS];  /* tokenizer.json */
    char *json_dir[N_SETTINGS];
};

static int synth_setup(void **state)
{
    struct synth *s = calloc(1, sizeof *s);
    char *vocab = data_path("wordpiece/vocab/vocab.txt");
    s->lines = vocab_lines_read(vocab);
    static const int lower[] = { 1, 1, 0 }, strip[] = { -1, 0, -1 };
    for (int k = 0; k < N_SETTINGS; k++) {
        struct kb_err err = { 0 };
        if (kb_wordpiece_open_vocab(&s->txt[k], vocab, lower[k], strip[k], &err) != 0)
            fail_msg("%s", err.msg);
        s->json_dir[k] = write_tokenizer_json(&s->lines, (enum settings)k, 100);
        s->json[k] = open_dir(s->json_dir[k]);
    }
    free(vocab);
    *state = s;
    return 0;
}

static int synth_teardown(void **state)
{
    struct synth *s = *state;
    for (int k = 0; k < N_SETTINGS; k++) {
        kb_wordpiece_free(s->txt[k]);
        kb_wordpiece_free(s->json[k]);
        th_rmtree(s->json_dir[k]);
        free(s->json_dir[k]);
    }
    vocab_lines_free(&s->lines);
    free(s);
    return 0;
}

static enum settings case_settings(const cJSON *c)
{
    const cJSON *s = cJSON_GetObjectItem(c, "settings");
    if (!cJSON_IsString(s) || strcmp(s->valuestring, "default") == 0)
        return SETTINGS_DEFAULT;
    return strcmp(s->valuestring, "no_strip") == 0 ? SETTINGS_NO_STRIP : SETTINGS_CASED;
}

/* Checks one case of cases.json on both loaders; returns 1 when both agree with it. */
static int check_case(const struct synth *s, const cJSON *c)
{
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    size_t len = 0;
    char *text = text_of(c, "text", &len);
    unsigned flags = cJSON_IsTrue(cJSON_GetObjectItem(c, "special")) ? KB_WORDPIECE_ADD_SPECIAL : 0;
    const cJSON *tokens = cJSON_GetObjectItem(c, "tokens");
    int32_t expected[256];
    size_t n_expected = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tokens)
        expected[n_expected++] = vocab_lines_id(&s->lines, t->valuestring);
    enum settings k = case_settings(c);
    int ok = 1;
    for (int loader = 0; loader < 2; loader++) {
        int32_t ids[256];
        size_t n = encode(loader == 0 ? s->txt[k] : s->json[k], text, len, flags, ids, 256);
        if (n != n_expected || memcmp(ids, expected, n * sizeof *ids) != 0) {
            fprintf(stderr, "case %s (%s) failed\n", name,
                    loader == 0 ? "vocab.txt" : "tokenizer.json");
            print_ids("expected", expected, n_expected);
            print_ids("got", ids, n);
            ok = 0;
        }
    }
    free(text);
    return ok;
}

static void wordpiece__edge_cases_follow_hf_algorithm(void **state)
{
    const struct synth *s = *state;
    char *path = data_path("wordpiece/cases.json");
    cJSON *root = load_json(path);
    const cJSON *c;
    size_t n_cases = 0, n_failed = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        n_failed += !check_case(s, c);
        n_cases++;
    }
    cJSON_Delete(root);
    free(path);
    assert_true(n_cases >= 50);
    assert_int_equal(n_failed, 0);
}

/* n 'x' characters (UTF-8 `x`) in a fresh string. */
static char *repeat(const char *x, size_t n)
{
    size_t len = strlen(x);
    char *s = malloc(len * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * len, x, len);
    s[len * n] = '\0';
    return s;
}

static void expect_a_pieces(const struct kb_wordpiece *wp, const char *x, size_t n_chars,
                            size_t n_expected, int32_t a_id, int32_t cont_id, int32_t unk_id)
{
    char *text = repeat(x, n_chars);
    int32_t *ids = malloc((n_chars + 2) * sizeof *ids);
    size_t n = encode(wp, text, strlen(text), 0, ids, n_chars + 2);
    assert_int_equal(n, n_expected);
    if (n_expected == 1 && n_chars > 1) {
        assert_int_equal(ids[0], unk_id);
    } else {
        assert_int_equal(ids[0], a_id);
        for (size_t i = 1; i < n; i++)
            assert_int_equal(ids[i], cont_id);
    }
    free(ids);
    free(text);
}

/* max_input_chars_per_word counts characters after normalisation, not bytes. */
static void wordpiece__long_words_become_unknown_past_the_char_limit(void **state)
{
    const struct synth *s = *state;
    int32_t a = vocab_lines_id(&s->lines, "a"), cont = vocab_lines_id(&s->lines, "##a");
    int32_t unk = vocab_lines_id(&s->lines, "[UNK]");
    for (int loader = 0; loader < 2; loader++) {
        const struct kb_wordpiece *wp = loader == 0 ? s->txt[0] : s->json[0];
        expect_a_pieces(wp, "a", 100, 100, a, cont, unk);
        expect_a_pieces(wp, "a", 101, 1, a, cont, unk);
        expect_a_pieces(wp, "\xC3\xA4", 100, 100, a, cont, unk);   /* ä: 200 bytes, 100 chars */
        expect_a_pieces(wp, "\xC3\xA4", 101, 1, a, cont, unk);
        expect_a_pieces(wp, "A\xCC\x88", 100, 100, a, cont, unk);  /* A + combining diaeresis */
    }
    /* A tokenizer.json limit of 5, and one of 1000 (scratch on the heap). */
    for (int k = 0; k < 2; k++) {
        char *dir = write_tokenizer_json(&s->lines, SETTINGS_DEFAULT, k == 0 ? 5 : 1000);
        struct kb_wordpiece *wp = open_dir(dir);
        size_t limit = k == 0 ? 5 : 1000;
        expect_a_pieces(wp, "a", limit, limit, a, cont, unk);
        expect_a_pieces(wp, "a", limit + 1, 1, a, cont, unk);
        kb_wordpiece_free(wp);
        th_rmtree(dir);
        free(dir);
    }
}

static const char *const fox = "The quick brown fox jumps over the lazy dog.";

static void wordpiece__truncation_keeps_sep_last(void **state)
{
    const struct synth *s = *state;
    const struct kb_wordpiece *wp = s->txt[0];
    int32_t full[64];
    size_t n_all = encode(wp, fox, strlen(fox), KB_WORDPIECE_ADD_SPECIAL, full, 64);
    assert_int_equal(n_all, 13);  /* [CLS] + 11 + [SEP] */
    for (size_t max = 0; max <= 15; max++) {
        for (int want_full = 0; want_full < 2; want_full++) {
            int32_t ids[16];
            size_t n = 99, n_full = 99;
            size_t *full_out = want_full ? &n_full : NULL;
            assert_int_equal(kb_wordpiece_encode(wp, fox, strlen(fox), KB_WORDPIECE_ADD_SPECIAL,
                                                 ids, max, &n, full_out, NULL), 0);
            size_t expect = max < n_all ? max : n_all;
            assert_int_equal(n, expect);
            if (want_full)
                assert_int_equal(n_full, 13);
            if (n >= 1)
                assert_int_equal(ids[0], full[0]);
            if (n >= 2) {
                assert_int_equal(ids[n - 1], full[n_all - 1]);  /* [SEP] last */
                assert_memory_equal(ids + 1, full + 1, (n - 2) * sizeof *ids);
            }
        }
    }
    /* Without specials, the first max_ids. */
    int32_t ids[3];
    size_t n = 0, n_full = 0;
    assert_int_equal(kb_wordpiece_encode(wp, fox, strlen(fox), 0, ids, 3, &n, &n_full, NULL), 0);
    assert_int_equal(n, 3);
    assert_int_equal(n_full, 11);
    assert_memory_equal(ids, full + 1, 3 * sizeof *ids);
}

static void wordpiece__counts_without_an_output_buffer(void **state)
{
    const struct synth *s = *state;
    size_t n = 99, n_full = 0;
    assert_int_equal(kb_wordpiece_encode(s->txt[0], fox, strlen(fox), KB_WORDPIECE_ADD_SPECIAL,
                                         NULL, 0, &n, &n_full, NULL), 0);
    assert_int_equal(n, 0);
    assert_int_equal(n_full, 13);
    assert_int_equal(kb_wordpiece_encode(s->txt[0], fox, strlen(fox), 0, NULL, 0, &n, &n_full,
                                         NULL), 0);
    assert_int_equal(n_full, 11);
    assert_int_equal(kb_wordpiece_encode(s->txt[0], "", 0, 0, NULL, 0, &n, &n_full, NULL), 0);
    assert_int_equal(n_full, 0);
}

static void wordpiece__rejects_invalid_utf8_naming_the_byte(void **state)
{
    const struct synth *s = *state;
    static const struct { const char *text; size_t len; const char *msg; } bad[] = {
        { "hello \xFF world", 13, "invalid UTF-8 at byte 6" },
        { "\xC0\xAF", 2, "invalid UTF-8 at byte 0" },               /* overlong */
        { "abc \xED\xA0\x80", 7, "invalid UTF-8 at byte 4" },       /* surrogate */
        { "hello wor\xE4\xB8", 11, "invalid UTF-8 at byte 9" },     /* truncated */
        { "[CLS]\x80", 6, "invalid UTF-8 at byte 5" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct kb_err err = { 0 };
        int32_t ids[8];
        size_t n = 99, n_full = 99;
        assert_int_equal(kb_wordpiece_encode(s->txt[0], bad[i].text, bad[i].len, 0, ids, 8, &n,
                                             &n_full, &err), KB_EFORMAT);
        assert_string_equal(err.msg, bad[i].msg);
        assert_int_equal(n, 0);
        /* Counting only (the early-exit path) validates too. */
        assert_int_equal(kb_wordpiece_encode(s->txt[0], bad[i].text, bad[i].len, 0, NULL, 0, &n,
                                             NULL, &err), KB_EFORMAT);
    }
}

/* ~1 MB from the case texts joined by newlines: its count is the sum of the parts' counts and
 * its ids are the parts' ids in order. */
static void wordpiece__megabyte_input_equals_the_sum_of_its_parts(void **state)
{
    const struct synth *s = *state;
    char *path = data_path("wordpiece/cases.json");
    cJSON *root = load_json(path);
    size_t cap = (1 << 20) + 4096, len = 0, n_parts_total = 0;
    char *text = malloc(cap);
    int32_t *expected = malloc(cap * sizeof *expected);
    while (len < (1 << 20)) {
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
            size_t plen = 0;
            char *part = text_of(c, "text", &plen);
            if (len + plen + 1 > cap) {
                free(part);
                break;
            }
            n_parts_total += encode(s->txt[0], part, plen, 0, expected + n_parts_total,
                                    cap - n_parts_total);
            memcpy(text + len, part, plen);
            free(part);
            len += plen;
            text[len++] = '\n';
        }
    }
    int32_t *ids = malloc(cap * sizeof *ids);
    size_t n = encode(s->txt[0], text, len, 0, ids, cap);
    assert_int_equal(n, n_parts_total);
    assert_memory_equal(ids, expected, n * sizeof *ids);
    size_t n_out = 0, n_full = 0;
    assert_int_equal(kb_wordpiece_encode(s->txt[0], text, len, KB_WORDPIECE_ADD_SPECIAL, NULL, 0,
                                         &n_out, &n_full, NULL), 0);
    assert_int_equal(n_full, n_parts_total + 2);
    free(ids);
    free(expected);
    free(text);
    cJSON_Delete(root);
    free(path);
}

struct thread_job {
    const struct kb_wordpiece *wp;
    const char *text;
    size_t len;
    int32_t *ids;
    size_t n;
};

static void *thread_encode(void *arg)
{
    struct thread_job *job = arg;
    size_t n_full = 0;
    for (int round = 0; round < 3; round++)
        if (kb_wordpiece_encode(job->wp, job->text, job->len, KB_WORDPIECE_ADD_SPECIAL, job->ids,
                                job->len + 2, &job->n, &n_full, NULL) != 0)
            job->n = 0;
    return NULL;
}

static void wordpiece__shared_tokenizer_encodes_from_many_threads(void **state)
{
    const struct synth *s = *state;
    size_t len = 0;
    char *one = repeat("Hello, w\xC3\xB6rld! [CLS] \xE4\xB8\xAD unwanted running 42. ", 4000);
    len = strlen(one);
    int32_t *reference = malloc((len + 2) * sizeof *reference);
    size_t n_ref = encode(s->json[0], one, len, KB_WORDPIECE_ADD_SPECIAL, reference, len + 2);
    struct thread_job jobs[4];
    pthread_t threads[4];
    for (int t = 0; t < 4; t++) {
        int32_t *ids = malloc((len + 2) * sizeof *ids);
        jobs[t] = (struct thread_job){ s->json[0], one, len, ids, 0 };
        assert_int_equal(pthread_create(&threads[t], NULL, thread_encode, &jobs[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(jobs[t].n, n_ref);
        assert_memory_equal(jobs[t].ids, reference, n_ref * sizeof *reference);
        free(jobs[t].ids);
    }
    free(reference);
    free(one);
}

/* The same vocabulary with "\r\n" line ends and no final newline gives the same ids. */
static void wordpiece__vocab_with_crlf_and_no_final_newline(void **state)
{
    const struct synth *s = *state;
    char *dir = th_tempdir();
    size_t cap = 1 << 16, len = 0;
    char *crlf = malloc(cap);
    for (size_t i = 0; i < s->lines.n; i++) {
        len += (size_t)snprintf(crlf + len, cap - len, "%s%s", s->lines.tok[i],
                                i + 1 < s->lines.n ? "\r\n" : "");
    }
    th_write(dir, "vocab.txt", crlf, len);
    struct kb_wordpiece *wp = open_dir(dir);
    assert_int_equal(kb_wordpiece_vocab_size(wp), s->lines.n);
    assert_int_equal(kb_wordpiece_vocab_size(wp), kb_wordpiece_vocab_size(s->txt[0]));
    for (int32_t id = 0; id < (int32_t)s->lines.n; id++)
        assert_string_equal(kb_wordpiece_token(wp, id), s->lines.tok[id]);
    int32_t a[64], b[64];
    size_t na = encode(wp, fox, strlen(fox), KB_WORDPIECE_ADD_SPECIAL, a, 64);
    size_t nb = encode(s->txt[0], fox, strlen(fox), KB_WORDPIECE_ADD_SPECIAL, b, 64);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    /* The last token, "##llo", has no newline after it and still matches. */
    assert_int_equal(encode(wp, "hello Ello", 10, 0, a, 64), 3);
    assert_int_equal(a[2], vocab_lines_id(&s->lines, "##llo"));
    kb_wordpiece_free(wp);
    free(crlf);
    th_rmtree(dir);
    free(dir);
}

/* tokenizer_config.json settings apply to vocab.txt; without one, BertTokenizer's defaults. */
static void wordpiece__tokenizer_config_sets_case_and_accents(void **state)
{
    (void)state;
    static const struct { const char *config; const char *text; const char *tokens[3]; } cases[] = {
        { NULL, "Caf\xC3\xA9 Hello", { "cafe", "hello", NULL } },
        { "{\"do_lower_case\": false}", "Caf\xC3\xA9 hello", { "[UNK]", "hello", NULL } },
        { "{\"do_lower_case\": true, \"strip_accents\": false}", "Caf\xC3\xA9",
          { "caf\xC3\xA9", NULL } },
        { "{\"do_lower_case\": false, \"strip_accents\": true}", "caf\xC3\xA9", { "cafe", NULL } },
        { "{\"tokenize_chinese_chars\": false}", "\xE4\xB8\xAD" "abc", { "[UNK]", NULL } },
    };
    char *vocab_src = data_path("wordpiece/vocab/vocab.txt");
    size_t vlen = 0;
    char *vocab = slurp(vocab_src, &vlen);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *dir = th_tempdir();
        th_write(dir, "vocab.txt", vocab, vlen);
        if (cases[i].config)
            th_write(dir, "tokenizer_config.json", cases[i].config, (size_t)-1);
        struct kb_wordpiece *wp = open_dir(dir);
        int32_t ids[8];
        size_t n = encode(wp, cases[i].text, strlen(cases[i].text), 0, ids, 8);
        size_t k = 0;
        for (; cases[i].tokens[k]; k++)
            assert_string_equal(kb_wordpiece_token(wp, ids[k]), cases[i].tokens[k]);
        assert_int_equal(n, k);
        kb_wordpiece_free(wp);
        th_rmtree(dir);
        free(dir);
    }
    free(vocab);
    free(vocab_src);
}

static void wordpiece__reports_specials_and_tokens(void **state)
{
    const struct synth *s = *state;
    for (int loader = 0; loader < 2; loader++) {
        const struct kb_wordpiece *wp = loader == 0 ? s->txt[0] : s->json[0];
        assert_int_equal(kb_wordpiece_vocab_size(wp), s->lines.n);
        assert_int_equal(kb_wordpiece_special_id(wp, KB_WORDPIECE_PAD), 0);
        assert_int_equal(kb_wordpiece_special_id(wp, KB_WORDPIECE_UNK), 1);
        assert_int_equal(kb_wordpiece_special_id(wp, KB_WORDPIECE_CLS), 2);
        assert_int_equal(kb_wordpiece_special_id(wp, KB_WORDPIECE_SEP), 3);
        assert_int_equal(kb_wordpiece_special_id(wp, KB_WORDPIECE_MASK), 4);
        assert_string_equal(kb_wordpiece_token(wp, 5), "hello");
        assert_null(kb_wordpiece_token(wp, -1));
        assert_null(kb_wordpiece_token(wp, (int32_t)s->lines.n));
    }
}

/* Each folder of bad/ holds broken tokenizer files and `expect`: the status name, then the
 * message's tail (after the folder path). */
static void wordpiece__bad_files_give_one_line_errors(void **state)
{
    (void)state;
    char *bad = data_path("wordpiece/bad");
    DIR *d = opendir(bad);
    assert_non_null(d);
    struct dirent *e;
    size_t n_cases = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *dir = th_path(bad, e->d_name);
        char *expect_path = th_path(dir, "expect");
        char *expect = slurp(expect_path, NULL);
        assert_non_null(expect);
        char *msg = strchr(expect, '\n');
        *msg++ = '\0';
        msg[strcspn(msg, "\n")] = '\0';
        struct kb_wordpiece *wp = NULL;
        struct kb_err err = { 0 };
        int rc = kb_wordpiece_open(&wp, dir, &err);
        int want = strcmp(expect, "KB_ENOTFOUND") == 0 ? KB_ENOTFOUND : KB_EFORMAT;
        if (rc != want || !strstr(err.msg, msg) || strchr(err.msg, '\n'))
            fail_msg("bad/%s: got %d '%s', want %s '...%s'", e->d_name, rc, err.msg, expect, msg);
        assert_null(wp);
        free(expect);
        free(expect_path);
        free(dir);
        n_cases++;
    }
    closedir(d);
    assert_true(n_cases >= 14);
    /* A missing folder and an empty one. */
    struct kb_wordpiece *wp = NULL;
    struct kb_err err = { 0 };
    char *missing = th_path(bad, "no-such-folder");
    assert_int_equal(kb_wordpiece_open(&wp, missing, &err), KB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no-such-folder: no such model folder"));
    char *empty = th_tempdir();
    assert_int_equal(kb_wordpiece_open(&wp, empty, &err), KB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "neither tokenizer.json nor vocab.txt"));
    char *vocab_missing = th_path(empty, "vocab.txt");
    assert_int_equal(kb_wordpiece_open_vocab(&wp, vocab_missing, 1, -1, &err), KB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "vocab.txt"));
    th_rmtree(empty);
    free(vocab_missing);
    free(empty);
    free(missing);
    free(bad);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--published") == 0) {
        const char *env = getenv("KB_SHARED_DATA");
        char *shared = strdup(env && *env ? env : "../shared/data");
        char *tok = th_path(shared, "tokenizer");
        if (!is_dir(tok)) {
            printf("skipped: %s is absent (the published tokenizer cases live there)\n", tok);
            return 77;
        }
        const struct CMUnitTest published[] = {
            cmocka_unit_test_prestate(tokenizer__matches_published_cases, shared),
        };
        int rc = cmocka_run_group_tests(published, NULL, NULL);
        free(tok);
        free(shared);
        return rc;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wordpiece__edge_cases_follow_hf_algorithm),
        cmocka_unit_test(wordpiece__long_words_become_unknown_past_the_char_limit),
        cmocka_unit_test(wordpiece__truncation_keeps_sep_last),
        cmocka_unit_test(wordpiece__counts_without_an_output_buffer),
        cmocka_unit_test(wordpiece__rejects_invalid_utf8_naming_the_byte),
        cmocka_unit_test(wordpiece__megabyte_input_equals_the_sum_of_its_parts),
        cmocka_unit_test(wordpiece__shared_tokenizer_encodes_from_many_threads),
        cmocka_unit_test(wordpiece__vocab_with_crlf_and_no_final_newline),
        cmocka_unit_test(wordpiece__tokenizer_config_sets_case_and_accents),
        cmocka_unit_test(wordpiece__reports_specials_and_tokens),
        cmocka_unit_test(wordpiece__bad_files_give_one_line_errors),
    };
    return cmocka_run_group_tests(tests, synth_setup, synth_teardown);
}
