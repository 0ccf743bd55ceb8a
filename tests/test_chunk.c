/* test_chunk.c — the chunker and the stand-in token counter: cases as data under
 * tests/data/chunk/ (format in its README), invariants on generated documents, option errors
 * and token counts. KB_UPDATE_EXPECTED=1 rewrites the expected files from the output. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/chunk.h"
#include "util/buf.h"
#include "util/utf8.h"

#define CASE_HEAD_CHARS 40
#define CASE_TAIL_CHARS 20

/* ---- helpers ------------------------------------------------------------------------------ */

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static size_t count_words(const char *text)
{
    return kb_tokcount_words(text, strlen(text), NULL);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct kb_buf buf = KB_BUF_INIT;
    char block[4096];
    size_t n;
    while ((n = fread(block, 1, sizeof block, f)) > 0)
        assert_int_equal(kb_buf_append(&buf, block, n), 0);
    fclose(f);
    *len = buf.len;
    return kb_buf_detach(&buf);
}

static struct kb_chunk_options options(unsigned target, unsigned overlap,
                                       enum kb_chunk_format format)
{
    struct kb_chunk_options opts = { target, overlap, format, &kb_tokcounter_words };
    return opts;
}

/* line[pos]: the 1-based line of byte pos, one line per "\n". */
static uint32_t *line_table(const char *text, size_t len)
{
    uint32_t *line = malloc((len + 1) * sizeof *line);
    assert_non_null(line);
    line[0] = 1;
    for (size_t pos = 0; pos < len; pos++)
        line[pos + 1] = line[pos] + (text[pos] == '\n');
    return line;
}

static void check_chunk(const char *what, size_t i, const char *text, size_t len,
                        const uint32_t *line, const struct kb_chunk *c,
                        const struct kb_chunk_options *opts)
{
    size_t n = c->byte_end - c->byte_start, bad;
    if (c->byte_start >= c->byte_end || c->byte_end > len)
        fail_msg("%s: chunk %zu: bad range [%zu, %zu)", what, i, c->byte_start, c->byte_end);
    if (is_space((unsigned char)text[c->byte_start]) ||
        is_space((unsigned char)text[c->byte_end - 1]))
        fail_msg("%s: chunk %zu: range [%zu, %zu) is not trimmed", what, i, c->byte_start,
                 c->byte_end);
    if (!kb_utf8_valid(text + c->byte_start, n, &bad))
        fail_msg("%s: chunk %zu: cuts a UTF-8 character (byte %zu)", what, i,
                 c->byte_start + bad);
    size_t direct = opts->counter->count(text + c->byte_start, n, opts->counter->payload);
    if (c->n_tokens != direct || direct > opts->target_tokens)
        fail_msg("%s: chunk %zu: n_tokens %zu, direct count %zu, target %u", what, i,
                 c->n_tokens, direct, opts->target_tokens);
    if (c->line_start != line[c->byte_start] || c->line_end != line[c->byte_end - 1])
        fail_msg("%s: chunk %zu: lines %u-%u, want %u-%u", what, i, c->line_start, c->line_end,
                 line[c->byte_start], line[c->byte_end - 1]);
    if (!c->heading_path || !kb_utf8_valid(c->heading_path, strlen(c->heading_path), &bad))
        fail_msg("%s: chunk %zu: heading path missing or not UTF-8", what, i);
}

/* Checks what every chunk list must satisfy; `what` names the input in failure messages. */
static void check_invariants(const char *what, const char *text, size_t len,
                             const struct kb_chunk_list *list, const struct kb_chunk_options *opts)
{
    char *covered = calloc(len + 1, 1);
    uint32_t *line = line_table(text, len);
    assert_non_null(covered);
    for (size_t i = 0; i < list->count; i++) {
        const struct kb_chunk *c = &list->items[i];
        check_chunk(what, i, text, len, line, c, opts);
        if (i > 0 && c->byte_start <= list->items[i - 1].byte_start)
            fail_msg("%s: chunk %zu: starts at %zu, not after chunk %zu at %zu", what, i,
                     c->byte_start, i - 1, list->items[i - 1].byte_start);
        memset(covered + c->byte_start, 1, c->byte_end - c->byte_start);
    }
    for (size_t pos = 0; pos < len; pos++)
        if (!covered[pos] && !is_space((unsigned char)text[pos]))
            fail_msg("%s: byte %zu (line %u) is in no chunk", what, pos, line[pos]);
    free(line);
    free(covered);
}

/* ---- cases as data ------------------------------------------------------------------------ */

static void parse_options(const char *name, const char *spec, struct kb_chunk_options *opts)
{
    char key[32], value[32];
    int used;
    for (const char *p = spec; sscanf(p, " %31[^= \n]=%31s%n", key, value, &used) == 2; p += used) {
        if (!strcmp(key, "target"))
            opts->target_tokens = (unsigned)atoi(value);
        else if (!strcmp(key, "overlap"))
            opts->overlap_tokens = (unsigned)atoi(value);
        else if (!strcmp(key, "format") && !strcmp(value, "markdown"))
            opts->format = KB_CHUNK_MARKDOWN;
        else if (!strcmp(key, "format") && !strcmp(value, "text"))
            opts->format = KB_CHUNK_TEXT;
        else
            fail_msg("%s/options: unknown setting %s=%s", name, key, value);
    }
}

/* Appends text[start, end) with backslash, newline, CR and tab written as \\ \n \r \t. */
static void append_escaped(struct kb_buf *out, const char *text, size_t start, size_t end)
{
    for (size_t pos = start; pos < end; pos++) {
        unsigned char ch = (unsigned char)text[pos];
        const char *esc = ch == '\\' ? "\\\\" : ch == '\n' ? "\\n"
                        : ch == '\r' ? "\\r" : ch == '\t' ? "\\t" : NULL;
        assert_int_equal(esc ? kb_buf_puts(out, esc) : kb_buf_append(out, &text[pos], 1), 0);
    }
}

/* Moves pos forward (dir > 0) or back over n_chars UTF-8 characters, staying in [start, end]. */
static size_t skip_chars(const char *text, size_t pos, size_t start, size_t end, int dir,
                         size_t n_chars)
{
    for (; n_chars > 0 && (dir > 0 ? pos < end : pos > start); n_chars--) {
        do
            pos += dir > 0 ? 1 : (size_t)-1;
        while (pos > start && pos < end && ((unsigned char)text[pos] & 0xc0) == 0x80);
    }
    return pos;
}

/* One expected line: "start-end<TAB>n_tokens<TAB>heading path<TAB>first 40 characters<TAB>
 * last 20 characters" (see tests/data/chunk/README.md). */
static void format_chunk(struct kb_buf *out, const char *text, const struct kb_chunk *c)
{
    assert_int_equal(kb_buf_printf(out, "%u-%u\t%zu\t%s\t", c->line_start, c->line_end,
                                   c->n_tokens, c->heading_path), 0);
    size_t head = skip_chars(text, c->byte_start, c->byte_start, c->byte_end, 1, CASE_HEAD_CHARS);
    size_t tail = skip_chars(text, c->byte_end, c->byte_start, c->byte_end, -1, CASE_TAIL_CHARS);
    append_escaped(out, text, c->byte_start, head);
    assert_int_equal(kb_buf_puts(out, "\t"), 0);
    append_escaped(out, text, tail, c->byte_end);
    assert_int_equal(kb_buf_puts(out, "\n"), 0);
}

/* The expected file without its comment and blank lines. */
static char *expected_lines(const char *raw)
{
    struct kb_buf out = KB_BUF_INIT;
    for (const char *line = raw; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (line[0] != '#' && line[0] != '\n')
            assert_int_equal(kb_buf_append(&out, line, n), 0);
        line += n;
    }
    return kb_buf_detach(&out);
}

static void report_difference(const char *name, const char *want, const char *got)
{
    size_t line = 1;
    while (*want && *want == *got) {
        line += *want == '\n';
        want++, got++;
    }
    while (line > 1 && want[-1] != '\n')
        want--, got--;
    fail_msg("%s: expected line %zu differs\n  want: %.*s\n  got:  %.*s", name, line,
             (int)strcspn(want, "\n"), want, (int)strcspn(got, "\n"), got);
}

static char *case_path(const char *dir, const char *name, const char *file)
{
    struct kb_buf path = KB_BUF_INIT;
    assert_int_equal(kb_buf_printf(&path, "%s/%s/%s", dir, name, file), 0);
    return kb_buf_detach(&path);
}

static char *read_case_file(const char *dir, const char *name, const char *file, size_t *len)
{
    char *path = case_path(dir, name, file);
    char *data = read_file(path, len);
    free(path);
    return data;
}

static void run_case(const char *dir, const char *name)
{
    size_t len, spec_len, raw_len;
    char *spec = read_case_file(dir, name, "options", &spec_len);
    if (!spec)
        fail_msg("%s: no options file", name);
    struct kb_chunk_options opts = options(40, 0, KB_CHUNK_MARKDOWN);
    char *text = read_case_file(dir, name, "input.txt", &len);
    if (text)
        opts.format = KB_CHUNK_TEXT;
    else if (!(text = read_case_file(dir, name, "input.md", &len)))
        fail_msg("%s: no input.md or input.txt", name);
    parse_options(name, spec, &opts);

    struct kb_chunk_list list;
    struct kb_err err = { 0 };
    if (kb_chunk_text(&list, text, len, &opts, &err))
        fail_msg("%s: %s", name, err.msg);
    check_invariants(name, text, len, &list, &opts);
    struct kb_buf got = KB_BUF_INIT;
    assert_int_equal(kb_buf_printf(&got, "title\t%s\n", list.title ? list.title : "(none)"), 0);
    for (size_t i = 0; i < list.count; i++)
        format_chunk(&got, text, &list.items[i]);

    if (getenv("KB_UPDATE_EXPECTED")) {
        char *path = case_path(dir, name, "expected");
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fputs(got.data, f);
        fclose(f);
        free(path);
    }
    char *raw = read_case_file(dir, name, "expected", &raw_len);
    if (!raw)
        fail_msg("%s: no expected file", name);
    char *want = expected_lines(raw);
    if (strcmp(want, got.data))
        report_difference(name, want, got.data);
    free(want);
    free(raw);
    kb_buf_free(&got);
    kb_chunk_list_free(&list);
    free(text);
    free(spec);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void chunk__matches_expected_output_for_every_case(void **state)
{
    (void)state;
    const char *data = getenv("KB_TEST_DATA");
    if (!data)
        fail_msg("KB_TEST_DATA is not set");
    char *dir = case_path(data, "chunk", "");
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("%s: cannot open", dir);
    char *names[256];
    size_t n_names = 0;
    for (struct dirent *e; (e = readdir(d)) && n_names < 256;) {
        char *options_path = case_path(dir, e->d_name, "options");
        FILE *f = e->d_name[0] != '.' ? fopen(options_path, "rb") : NULL;
        if (f) {
            fclose(f);
            names[n_names++] = strdup(e->d_name);
        }
        free(options_path);
    }
    closedir(d);
    qsort(names, n_names, sizeof *names, compare_names);
    assert_true(n_names >= 15);
    for (size_t i = 0; i < n_names; i++) {
        run_case(dir, names[i]);
        free(names[i]);
    }
    free(dir);
}

/* ---- options and edge inputs -------------------------------------------------------------- */

static void expect_invalid(struct kb_chunk_options opts, const char *field)
{
    struct kb_chunk_list list = { .count = 99 };
    struct kb_err err = { 0 };
    assert_int_equal(kb_chunk_text(&list, "Some text.", 10, &opts, &err), KB_EINVALID);
    assert_int_equal(err.code, KB_EINVALID);
    if (!strstr(err.msg, field))
        fail_msg("message '%s' does not name %s", err.msg, field);
    assert_int_equal(list.count, 0);
    assert_null(list.items);
    assert_null(list.title);
}

static void chunk__rejects_bad_options_naming_the_field(void **state)
{
    (void)state;
    expect_invalid(options(7, 0, KB_CHUNK_TEXT), "target_tokens");
    expect_invalid(options(40, 20, KB_CHUNK_TEXT), "overlap_tokens");
    expect_invalid(options(9, 4, KB_CHUNK_TEXT), "overlap_tokens");
    struct kb_chunk_options opts = options(40, 0, KB_CHUNK_TEXT);
    opts.counter = NULL;
    expect_invalid(opts, "counter");
    opts = options(40, 0, (enum kb_chunk_format)7);
    expect_invalid(opts, "format");
}

static void chunk__accepts_smallest_target_and_largest_overlap(void **state)
{
    (void)state;
    struct kb_chunk_options opts = options(8, 3, KB_CHUNK_TEXT);
    struct kb_chunk_list list;
    const char *text = "One two three. Four five six. Seven eight nine. Ten eleven twelve.";
    assert_int_equal(kb_chunk_text(&list, text, strlen(text), &opts, NULL), 0);
    check_invariants("small target", text, strlen(text), &list, &opts);
    assert_true(list.count > 1);
    kb_chunk_list_free(&list);
}

static void chunk__rejects_invalid_utf8(void **state)
{
    (void)state;
    struct kb_chunk_options opts = options(40, 0, KB_CHUNK_MARKDOWN);
    struct kb_chunk_list list;
    struct kb_err err = { 0 };
    assert_int_equal(kb_chunk_text(&list, "ab\xc3(", 4, &opts, &err), KB_EINVALID);
    assert_non_null(strstr(err.msg, "UTF-8"));
    assert_int_equal(list.count, 0);
}

static void chunk__gives_no_chunks_for_empty_or_blank_text(void **state)
{
    (void)state;
    const char *inputs[] = { "", " ", "\n\n\r\n", " \t\n  \n\f\v " };
    for (int format = KB_CHUNK_TEXT; format <= KB_CHUNK_MARKDOWN; format++) {
        for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
            struct kb_chunk_options opts = options(8, 0, (enum kb_chunk_format)format);
            struct kb_chunk_list list;
            assert_int_equal(kb_chunk_text(&list, inputs[i], strlen(inputs[i]), &opts, NULL), 0);
            assert_int_equal(list.count, 0);
            assert_null(list.title);
            kb_chunk_list_free(&list);
        }
    }
    struct kb_chunk_options opts = options(8, 0, KB_CHUNK_TEXT);
    struct kb_chunk_list list;
    assert_int_equal(kb_chunk_text(&list, NULL, 0, &opts, NULL), 0);
    assert_int_equal(list.count, 0);
}

static void chunk__list_free_accepts_null_and_is_repeatable(void **state)
{
    (void)state;
    kb_chunk_list_free(NULL);
    struct kb_chunk_options opts = options(40, 0, KB_CHUNK_MARKDOWN);
    struct kb_chunk_list list;
    assert_int_equal(kb_chunk_text(&list, "# T\n\nbody", 9, &opts, NULL), 0);
    assert_string_equal(list.title, "T");
    kb_chunk_list_free(&list);
    assert_int_equal(list.count, 0);
    assert_null(list.title);
    kb_chunk_list_free(&list);
}

/* ---- giant words and overlap -------------------------------------------------------------- */

static void check_word_pieces(const char *what, const char *text, unsigned target)
{
    size_t len = strlen(text);
    struct kb_chunk_options opts = options(target, 0, KB_CHUNK_TEXT);
    struct kb_chunk_list list;
    assert_int_equal(kb_chunk_text(&list, text, len, &opts, NULL), 0);
    check_invariants(what, text, len, &list, &opts);
    assert_true(list.count > 1);
    for (size_t i = 0; i < list.count; i++) {
        const unsigned char *start = (const unsigned char *)text + list.items[i].byte_start;
        /* never before a combining acute accent (U+0301: cc 81) */
        if (start[0] == 0xcc && start[1] == 0x81)
            fail_msg("%s: chunk %zu starts with a combining mark", what, i);
        if (i > 0 && list.items[i].byte_start != list.items[i - 1].byte_end)
            fail_msg("%s: chunk %zu does not continue chunk %zu", what, i, i - 1);
    }
    kb_chunk_list_free(&list);
}

static void chunk__splits_giant_word_at_character_boundaries(void **state)
{
    (void)state;
    struct kb_buf word = KB_BUF_INIT;
    for (int i = 0; i < 2000; i++)
        assert_int_equal(kb_buf_puts(&word, i % 3 ? "\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac"  /* é日本 */
                                                  : "x/\xc3\xa9+"), 0);
    check_word_pieces("mixed word", word.data, 8);
    check_word_pieces("mixed word", word.data, 300);
    kb_buf_reset(&word);
    for (int i = 0; i < 3000; i++)  /* "e" + U+0301, and a slash every so often */
        assert_int_equal(kb_buf_puts(&word, i % 50 ? "e\xcc\x81" : "/"), 0);
    check_word_pieces("combining word", word.data, 8);
    kb_buf_free(&word);
}

static void chunk__overlap_repeats_trailing_sentences_within_budget(void **state)
{
    (void)state;
    struct kb_buf text = KB_BUF_INIT;
    for (int i = 0; i < 60; i++)
        assert_int_equal(kb_buf_printf(&text, "Sentence number %d has a few words. ", i), 0);
    struct kb_chunk_options opts = options(40, 12, KB_CHUNK_TEXT);
    struct kb_chunk_list list;
    assert_int_equal(kb_chunk_text(&list, text.data, text.len, &opts, NULL), 0);
    check_invariants("overlap", text.data, text.len, &list, &opts);
    assert_true(list.count > 5);
    for (size_t i = 1; i < list.count; i++) {
        const struct kb_chunk *prev = &list.items[i - 1], *c = &list.items[i];
        assert_true(c->byte_start < prev->byte_end);  /* "... words." is 8 tokens: it fits */
        assert_true(c->byte_end > prev->byte_end);
        size_t repeated = kb_tokcount_words(text.data + c->byte_start,
                                            prev->byte_end - c->byte_start, NULL);
        assert_true(repeated <= opts.overlap_tokens);
        assert_memory_equal(text.data + c->byte_start, "Sentence", 8);
    }
    kb_chunk_list_free(&list);
    kb_buf_free(&text);
}

/* ---- PCRE2 limits ------------------------------------------------------------------------- */

/* Chunks `text` (one paragraph of sentences) with the given match limit; returns how many
 * chunks end at a full stop. */
static size_t chunks_ending_at_stops(const char *text, uint32_t match_limit, size_t *n_chunks)
{
    size_t len = strlen(text), stops = 0;
    struct kb_chunk_options opts = options(20, 0, KB_CHUNK_TEXT);
    struct kb_chunk_list list;
    assert_int_equal(kb_chunk_text_limited(&list, text, len, &opts, match_limit, NULL), 0);
    check_invariants("limited", text, len, &list, &opts);
    for (size_t i = 0; i < list.count; i++)
        stops += text[list.items[i].byte_end - 1] == '.';
    *n_chunks = list.count;
    kb_chunk_list_free(&list);
    return stops;
}

static void chunk__falls_back_to_word_cuts_when_a_sentence_match_hits_its_limit(void **state)
{
    (void)state;
    struct kb_buf text = KB_BUF_INIT;
    for (int i = 0; i < 40; i++)   /* 7 words and a full stop: 8 tokens, 2 fit in 20 */
        assert_int_equal(kb_buf_printf(&text, "Sentence %d says a little bit more. ", i), 0);
    size_t n_default, n_limited;
    size_t stops = chunks_ending_at_stops(text.data, 0, &n_default);
    assert_int_equal(stops, n_default);            /* every chunk ends a sentence */
    stops = chunks_ending_at_stops(text.data, 1, &n_limited);
    assert_true(n_limited > 1);
    assert_true(stops < n_limited);                /* cut at words: the limit was hit */
    kb_buf_free(&text);
}

/* Text built against the sentence pattern: long runs of terminators and closing quotes with
 * no space after, abbreviations and initials back to back, then ordinary sentences. */
static void chunk__chunks_text_built_to_make_the_sentence_pattern_backtrack(void **state)
{
    (void)state;
    static const char *const runs[] = { "!", "?.", ".\"", "\xe2\x80\xa6)", "Mr.", "e.g.", "A.",
                                         "\xe3\x80\x82", "\xe2\x80\x9d." };
    struct kb_buf text = KB_BUF_INIT;
    assert_int_equal(kb_buf_puts(&text, "Start "), 0);
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        for (int i = 0; i < 20000; i++)
            assert_int_equal(kb_buf_puts(&text, runs[r]), 0);
        assert_int_equal(kb_buf_puts(&text, "x. Then a plain sentence follows. "), 0);
    }
    for (int format = KB_CHUNK_TEXT; format <= KB_CHUNK_MARKDOWN; format++) {
        struct kb_chunk_options opts = options(64, 8, (enum kb_chunk_format)format);
        struct kb_chunk_list list;
        assert_int_equal(kb_chunk_text(&list, text.data, text.len, &opts, NULL), 0);
        check_invariants("backtracking bait", text.data, text.len, &list, &opts);
        kb_chunk_list_free(&list);
    }
    kb_buf_free(&text);
}

/* ---- generated documents ------------------------------------------------------------------ */

static uint64_t rng_state;

static uint32_t rng_next(void)  /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static unsigned rng_below(unsigned n)
{
    return rng_next() % n;
}

static const char *const gen_words[] = {
    "the", "kb", "index", "chunk", "e.g.", "i.e.", "Dr.", "Mr.", "etc.", "J.", "vs.",
    "caf\xc3\xa9", "na\xc3\xafve", "e\xcc\x81t\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
    "\xf0\x9f\x98\x80", "(see", "this)", "\"quoted\"", "x=1;", "a/b/c", "#tag", "***", "---",
    "```", "~~~", "=", "#", "\xc2\xa0", "\xe2\x80\xa6", "U.S.", "3.14", "ok?", "yes!", "\t",
    "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",  /* family: ZWJ */
    "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "> quote", "- item", "\xef\xbb\xbf",
};

static void gen_word(struct kb_buf *doc)
{
    if (rng_below(60) == 0) {  /* a giant word: base64-ish with multi-byte characters */
        unsigned n = 50 + rng_below(3000);
        for (unsigned i = 0; i < n; i++) {
            unsigned r = rng_below(20);
            const char *piece = r == 0 ? "\xc3\xa9" : r == 1 ? "\xe6\x97\xa5" : r == 2 ? "+" :
                                r == 3 ? "/" : r == 4 ? "e\xcc\x81" : NULL;
            char letter = (char)('a' + rng_below(26));
            assert_int_equal(piece ? kb_buf_puts(doc, piece) : kb_buf_append(doc, &letter, 1), 0);
        }
        return;
    }
    const char *word = gen_words[rng_below(sizeof gen_words / sizeof *gen_words)];
    assert_int_equal(kb_buf_puts(doc, word), 0);
}

static void gen_paragraph(struct kb_buf *doc, const char *nl)
{
    static const char *const ends[] = { ". ", "! ", "? ", "\xe2\x80\xa6 ", ".\" ", ".) ", " " };
    unsigned n_words = 1 + rng_below(rng_below(4) ? 40 : 400);
    for (unsigned i = 0; i < n_words; i++) {
        gen_word(doc);
        if (rng_below(12) == 0)
            assert_int_equal(kb_buf_puts(doc, rng_below(3) ? nl : "\xe3\x80\x82"), 0);
        else
            assert_int_equal(kb_buf_puts(doc, rng_below(8) ? " " : ends[rng_below(7)]), 0);
    }
    assert_int_equal(kb_buf_puts(doc, nl), 0);
}

static void gen_block(struct kb_buf *doc, const char *nl)
{
    static const char *const indents[] = { "", " ", "   ", "    ", "\t" };
    unsigned kind = rng_below(10);
    const char *indent = indents[rng_below(5)];
    if (kind == 0) {
        int hashes = (int)(1 + rng_below(7));  /* 7: not a heading */
        assert_int_equal(kb_buf_printf(doc, "%s%.*s ", indent, hashes, "#######"), 0);
        gen_paragraph(doc, nl);
    } else if (kind == 1) {
        gen_paragraph(doc, nl);
        assert_int_equal(kb_buf_printf(doc, "%s%s", rng_below(2) ? "===" : "---", nl), 0);
    } else if (kind == 2) {
        const char *fence = rng_below(2) ? "```" : "~~~~";
        assert_int_equal(kb_buf_printf(doc, "%s%s%s", indent, fence, nl), 0);
        for (unsigned i = rng_below(30); i > 0; i--) {
            if (rng_below(4) == 0)
                assert_int_equal(kb_buf_printf(doc, "# comment%s", nl), 0);
            else if (rng_below(4) == 0)
                assert_int_equal(kb_buf_puts(doc, nl), 0);
            else
                gen_paragraph(doc, nl);
        }
        if (rng_below(8))
            assert_int_equal(kb_buf_printf(doc, "%s%s", fence, nl), 0);
    } else if (kind == 3) {
        for (unsigned i = 1 + rng_below(10); i > 0; i--) {
            assert_int_equal(kb_buf_puts(doc, rng_below(2) ? "- " : "12. "), 0);
            gen_paragraph(doc, nl);
        }
    } else {
        gen_paragraph(doc, nl);
    }
    for (unsigned i = rng_below(3); i > 0; i--)
        assert_int_equal(kb_buf_printf(doc, "%s%s", rng_below(4) ? "" : "  ", nl), 0);
}

static void check_generated(struct kb_buf *doc, unsigned n_docs,
                            const struct kb_tokcounter *counter, uint64_t seed)
{
    char what[64];
    rng_state = seed;
    for (unsigned d = 0; d < n_docs; d++) {
        const char *nl = rng_below(4) ? "\n" : "\r\n";
        kb_buf_reset(doc);
        if (rng_below(10) == 0)
            assert_int_equal(kb_buf_printf(doc, "---%stitle: x%s---%s", nl, nl, nl), 0);
        for (unsigned b = rng_below(rng_below(4) ? 12 : 60); b > 0; b--)
            gen_block(doc, nl);
        unsigned target = 8 + rng_below(293);
        struct kb_chunk_options opts = options(target, rng_below(target / 2),
                                               rng_below(5) ? KB_CHUNK_MARKDOWN : KB_CHUNK_TEXT);
        opts.counter = counter;
        struct kb_chunk_list list;
        struct kb_err err = { 0 };
        snprintf(what, sizeof what, "doc %u (target %u, overlap %u)", d, target,
                 opts.overlap_tokens);
        const char *text = doc->data ? doc->data : "";
        if (kb_chunk_text(&list, text, doc->len, &opts, &err))
            fail_msg("%s: %s", what, err.msg);
        check_invariants(what, text, doc->len, &list, &opts);
        kb_chunk_list_free(&list);
    }
}

static void chunk__keeps_invariants_on_random_markdown(void **state)
{
    (void)state;
    struct kb_buf doc = KB_BUF_INIT;
    check_generated(&doc, 400, &kb_tokcounter_words, 0x9e3779b97f4a7c15ULL);
    kb_buf_free(&doc);
}

/* Counts more for longer text than its pieces add up to, so sum-based estimates run over
 * and every chunk must be cut back by its direct count. */
static size_t count_superadditive(const char *text, size_t len, void *payload)
{
    (void)payload;
    return kb_tokcount_words(text, len, NULL) + len / 32;
}

static void chunk__stays_within_target_when_counts_are_not_additive(void **state)
{
    (void)state;
    struct kb_tokcounter counter = { count_superadditive, NULL };
    struct kb_buf doc = KB_BUF_INIT;
    check_generated(&doc, 150, &counter, 0x2545f4914f6cdd1dULL);
    kb_buf_free(&doc);
}

/* ---- the stand-in token counter ----------------------------------------------------------- */

static void tokcount__counts_runs_of_ascii_letters_and_digits(void **state)
{
    (void)state;
    assert_int_equal(count_words(""), 0);
    assert_int_equal(count_words(" \t\r\n "), 0);
    assert_int_equal(count_words("hello"), 1);
    assert_int_equal(count_words("  hello   world\n"), 2);
    assert_int_equal(count_words("abc123 x9"), 2);
}

static void tokcount__counts_each_punctuation_mark_alone(void **state)
{
    (void)state;
    assert_int_equal(count_words("don't"), 3);
    assert_int_equal(count_words("a.b"), 3);
    assert_int_equal(count_words("..."), 3);
    assert_int_equal(count_words("x=1;"), 4);
    assert_int_equal(count_words("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"), 32);
    assert_int_equal(count_words("\xc2\xab" "bonjour" "\xc2\xbb"), 3);   /* « » */
    assert_int_equal(count_words("5\xe2\x82\xac"), 2);                  /* € is a symbol */
    assert_int_equal(count_words("a\xe2\x80\x94" "b"), 3);              /* em dash */
}

static void tokcount__counts_a_cjk_run_as_one_token(void **state)
{
    (void)state;
    assert_int_equal(count_words("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"), 1);   /* 日本語 */
    /* 日本語、テスト。: two runs and two punctuation marks */
    assert_int_equal(count_words("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x80\x81"
                                 "\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88\xe3\x80\x82"), 4);
}

static void tokcount__counts_each_emoji_as_a_symbol(void **state)
{
    (void)state;
    assert_int_equal(count_words("\xf0\x9f\x98\x80"), 1);                       /* 😀 */
    assert_int_equal(count_words("hi\xf0\x9f\x98\x80\xf0\x9f\x98\x80there"), 4);
    assert_int_equal(count_words("\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd"), 2);  /* 👍 + skin tone */
}

static void tokcount__keeps_combining_marks_in_their_word(void **state)
{
    (void)state;
    assert_int_equal(count_words("e\xcc\x81t\xc3\xa9"), 1);        /* e + U+0301, t, é */
    assert_int_equal(count_words("\xcc\x81"), 1);                  /* a lone mark is a word */
    assert_int_equal(count_words("na\xc3\xafve caf\xc3\xa9"), 2);
}

static void tokcount__splits_at_unicode_spaces(void **state)
{
    (void)state;
    assert_int_equal(count_words("a\xc2\xa0" "b"), 2);             /* no-break space */
    assert_int_equal(count_words("a\xe3\x80\x80" "b"), 2);         /* ideographic space */
    assert_int_equal(count_words("a\xe2\x80\xa8" "b"), 2);         /* line separator */
    assert_int_equal(count_words("a\xc2\x85" "b"), 2);             /* NEL */
}

static void tokcount__is_additive_across_white_space(void **state)
{
    (void)state;
    struct kb_buf doc = KB_BUF_INIT;
    rng_state = 42;
    for (int round = 0; round < 200; round++) {
        kb_buf_reset(&doc);
        size_t sum = 0;
        for (unsigned i = rng_below(30); i > 0; i--) {
            size_t before = doc.len;
            gen_word(&doc);
            sum += kb_tokcount_words(doc.data + before, doc.len - before, NULL);
            assert_int_equal(kb_buf_puts(&doc, rng_below(2) ? " " : "\n"), 0);
        }
        assert_int_equal(kb_tokcount_words(doc.data, doc.len, NULL), sum);
    }
    kb_buf_free(&doc);
    assert_ptr_equal(kb_tokcounter_words.count, kb_tokcount_words);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chunk__matches_expected_output_for_every_case),
        cmocka_unit_test(chunk__rejects_bad_options_naming_the_field),
        cmocka_unit_test(chunk__accepts_smallest_target_and_largest_overlap),
        cmocka_unit_test(chunk__rejects_invalid_utf8),
        cmocka_unit_test(chunk__gives_no_chunks_for_empty_or_blank_text),
        cmocka_unit_test(chunk__list_free_accepts_null_and_is_repeatable),
        cmocka_unit_test(chunk__splits_giant_word_at_character_boundaries),
        cmocka_unit_test(chunk__overlap_repeats_trailing_sentences_within_budget),
        cmocka_unit_test(chunk__falls_back_to_word_cuts_when_a_sentence_match_hits_its_limit),
        cmocka_unit_test(chunk__chunks_text_built_to_make_the_sentence_pattern_backtrack),
        cmocka_unit_test(chunk__keeps_invariants_on_random_markdown),
        cmocka_unit_test(chunk__stays_within_target_when_counts_are_not_additive),
        cmocka_unit_test(tokcount__counts_runs_of_ascii_letters_and_digits),
        cmocka_unit_test(tokcount__counts_each_punctuation_mark_alone),
        cmocka_unit_test(tokcount__counts_a_cjk_run_as_one_token),
        cmocka_unit_test(tokcount__counts_each_emoji_as_a_symbol),
        cmocka_unit_test(tokcount__keeps_combining_marks_in_their_word),
        cmocka_unit_test(tokcount__splits_at_unicode_spaces),
        cmocka_unit_test(tokcount__is_additive_across_white_space),
    };
    return cmocka_run_group_tests_name("chunk", tests, NULL, NULL);
}
