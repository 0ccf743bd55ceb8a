/* chunk.c — cuts a document into sections at Markdown headings, then packs paragraphs, code
 * blocks, sentences, lines, words or (last resort) characters into chunks of at most
 * target_tokens tokens, with optional overlap between the chunks of one section. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "ingest/chunk.h"
#include "util/buf.h"
#include "util/utf8.h"

#include <assert.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define CHUNK_HEADING_SEP " \xe2\x80\xba "  /* " › " */
#define CHUNK_MD_LEVELS 6
#define CHUNK_NONE SIZE_MAX
/* How far a character cut may move to keep a combining mark with its base. */
#define CHUNK_CLUSTER_MAX 64
/* Backtracking allowed per sentence match: an ordinary paragraph needs a few hundred steps;
 * past the limit, sentences are no longer cut (see chunk_sentence_cut). */
#define CHUNK_MATCH_LIMIT 200000
#define CHUNK_DEPTH_LIMIT 1000

/* How an oversized piece is cut, coarsest first; each level falls back to the next. */
enum chunk_level { CHUNK_SENTENCE, CHUNK_LINE, CHUNK_WORD, CHUNK_CHAR };

/* A piece small enough to pack: [start, end) trimmed, counted once. */
struct chunk_atom {
    size_t start, end, n_tokens;
};

/* Heading lines [start, body_start), then the body up to end; level 0 before any heading. */
struct chunk_section {
    size_t start, body_start, end;
    char *path;
    int level;
};

/* One line: content [start, end) without its "\n" or "\r\n"; the next line starts at next. */
struct chunk_line {
    size_t start, end, next;
};

/* Line numbers of emitted chunks only move forward, so counting resumes where it stopped. */
struct chunk_cursor {
    size_t pos;
    uint32_t line;
};

/* Markdown block state carried from line to line while finding headings. */
struct chunk_md_state {
    int in_fence, in_para, para_setext_ok;
    char fence_char;
    size_t fence_len, para_start;
};

struct chunker {
    const char *text;
    size_t len, target, overlap, bom_len;
    uint32_t match_limit;
    int markdown;
    const struct kb_tokcounter *counter;
    struct kb_err *err;
    struct kb_chunk_list *out;
    char *title;
    char *heading_stack[CHUNK_MD_LEVELS + 1];  /* titles of the open headings, by level */
    struct chunk_section *sections;
    size_t n_sections, alloc_sections;
    struct chunk_atom *atoms;                   /* reused from section to section */
    size_t n_atoms, alloc_atoms;
    pcre2_match_data *match;                    /* for the sentence pattern, made on first need */
    pcre2_match_context *match_ctx;             /* its match and depth limits */
    int sentence_off;                           /* a match hit a limit: cut lines, words */
    struct chunk_cursor at_start, at_end;
};

/* A sentence ends at a run of terminators and any closing quotes or brackets, followed by
 * white space; a CJK full stop needs no space after it. Not a sentence end: an initial
 * ("J. R. R. Tolkien"), a title before a name ("Dr. Smith"), or a common abbreviation that
 * the sentence goes on after ("e.g. the", "No. 5"). PCRE2 10.42 wants every top-level
 * branch of a lookbehind to have one fixed length, so the words are grouped by length,
 * which also keeps the number of branches tried at each full stop small. The match ends
 * where the cut goes. */
#define CHUNK_CLOSERS "[\"'\\x{201D}\\x{2019}\\x{BB})\\]}]"
#define CHUNK_SPACE "[ \\t\\r\\n\\f\\x{0B}]"
static const char chunk_sentence_pattern[] =
    "[.!?\\x{2026}]+"
    "(?<!\\b\\p{Lu}\\.|\\b(?:Mr|Ms|Dr|St|Jr|Sr|Mt|Lt)\\.|\\b(?:Mrs|Rev|Gen|Col|Sgt)\\."
    "|\\b(?:Prof|Capt)\\.)"
    "(?!(?<=(?i)\\b(?:vs|cf|al|no|pp|ca)\\.|\\b(?:e\\.g|i\\.e|etc|esp|viz|fig|vol)\\."
    "|\\b(?:incl|resp)\\.|\\bapprox\\.)"
    CHUNK_CLOSERS "*" CHUNK_SPACE "+[\\p{Ll}\\p{N}(,;:])"
    CHUNK_CLOSERS "*(?=" CHUNK_SPACE ")"
    "|[\\x{3002}\\x{FF01}\\x{FF1F}]+[\\x{300D}\\x{300F}\\x{FF09}\"'\\x{201D}\\x{2019})\\]]*";

/* ---- small helpers ------------------------------------------------------------------------ */

static int chunk_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void chunk_trim(const char *text, size_t *start, size_t *end)
{
    while (*start < *end && chunk_is_space((unsigned char)text[*start]))
        (*start)++;
    while (*end > *start && chunk_is_space((unsigned char)text[*end - 1]))
        (*end)--;
}

static int chunk_blank(const char *text, size_t start, size_t end)
{
    chunk_trim(text, &start, &end);
    return start == end;
}

static size_t chunk_count(const struct chunker *ch, size_t start, size_t end)
{
    return ch->counter->count(ch->text + start, end - start, ch->counter->payload);
}

static int chunk_nomem(struct chunker *ch)
{
    return kb_err_set(ch->err, KB_ENOMEM, "chunk: out of memory");
}

/* Makes room for `need` items of `size` bytes in *items. */
static int chunk_grow(void **items, size_t *alloc, size_t need, size_t size)
{
    if (need <= *alloc)
        return 0;
    size_t n = *alloc ? *alloc : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2 / size)
            return KB_ENOMEM;
        n *= 2;
    }
    void *grown = realloc(*items, n * size);
    if (!grown)
        return KB_ENOMEM;
    *items = grown;
    *alloc = n;
    return 0;
}

static struct chunk_line chunk_line_at(const char *text, size_t pos, size_t limit)
{
    const char *nl = memchr(text + pos, '\n', limit - pos);
    struct chunk_line ln = { pos, nl ? (size_t)(nl - text) : limit, 0 };
    ln.next = nl ? ln.end + 1 : limit;
    if (ln.end > ln.start && text[ln.end - 1] == '\r')
        ln.end--;
    return ln;
}

/* 1-based line of byte `pos`: one line per "\n", so "\r\n" counts once. */
static uint32_t chunk_line_of(struct chunk_cursor *cur, const char *text, size_t pos)
{
    if (pos < cur->pos) {
        cur->pos = 0;
        cur->line = 1;
    }
    const char *p = text + cur->pos, *end = text + pos;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p)))) {
        cur->line++;
        p++;
    }
    cur->pos = pos;
    return cur->line;
}

/* ---- Markdown lines ----------------------------------------------------------------------- */

static size_t chunk_run(const char *text, size_t pos, size_t end, char c)
{
    size_t n = 0;
    while (pos + n < end && text[pos + n] == c)
        n++;
    return n;
}

static int chunk_rest_blank(const char *text, size_t pos, size_t end)
{
    while (pos < end && (text[pos] == ' ' || text[pos] == '\t'))
        pos++;
    return pos == end;
}

/* Skips up to three spaces; CHUNK_NONE when the line is indented four columns or more (an
 * indented code line in CommonMark, never a heading or fence). */
static size_t chunk_md_indent(const char *text, struct chunk_line ln)
{
    size_t pos = ln.start;
    while (pos < ln.end && text[pos] == ' ' && pos - ln.start < 4)
        pos++;
    if (pos - ln.start == 4 || (pos < ln.end && text[pos] == '\t'))
        return CHUNK_NONE;
    return pos;
}

/* An ATX heading "## Title ##": returns its level and the title's range, or 0. */
static int chunk_md_atx(const char *text, struct chunk_line ln, size_t *title_start,
                        size_t *title_end)
{
    size_t pos = chunk_md_indent(text, ln);
    if (pos == CHUNK_NONE)
        return 0;
    size_t level = chunk_run(text, pos, ln.end, '#');
    if (level < 1 || level > CHUNK_MD_LEVELS)
        return 0;
    pos += level;
    if (pos < ln.end && text[pos] != ' ' && text[pos] != '\t')
        return 0;
    size_t start = pos, end = ln.end;
    chunk_trim(text, &start, &end);
    /* A closing run of #'s goes when a space precedes it or it is all there is. */
    size_t hashes = end;
    while (hashes > start && text[hashes - 1] == '#')
        hashes--;
    if (hashes < end && (hashes == start || text[hashes - 1] == ' ' || text[hashes - 1] == '\t')) {
        end = hashes;
        chunk_trim(text, &start, &end);
    }
    *title_start = start;
    *title_end = end;
    return (int)level;
}

static int chunk_md_fence_open(const char *text, struct chunk_line ln, char *fence_char,
                               size_t *fence_len)
{
    size_t pos = chunk_md_indent(text, ln);
    if (pos == CHUNK_NONE || pos == ln.end || (text[pos] != '`' && text[pos] != '~'))
        return 0;
    size_t n = chunk_run(text, pos, ln.end, text[pos]);
    /* A backtick fence's info string cannot hold a backtick (that is inline code). */
    if (n < 3 || (text[pos] == '`' && memchr(text + pos + n, '`', ln.end - pos - n)))
        return 0;
    *fence_char = text[pos];
    *fence_len = n;
    return 1;
}

/* The closing fence: the same character, at least as many, nothing after but spaces. */
static int chunk_md_fence_close(const char *text, struct chunk_line ln, char fence_char,
                                size_t fence_len)
{
    size_t pos = chunk_md_indent(text, ln);
    if (pos == CHUNK_NONE)
        return 0;
    size_t n = chunk_run(text, pos, ln.end, fence_char);
    return n >= fence_len && chunk_rest_blank(text, pos + n, ln.end);
}

/* A setext underline: "===" gives level 1, "---" level 2 (two dashes at least: a lone "-" is
 * an empty list item), else 0. */
static int chunk_md_setext(const char *text, struct chunk_line ln)
{
    size_t pos = chunk_md_indent(text, ln);
    if (pos == CHUNK_NONE || pos == ln.end || (text[pos] != '=' && text[pos] != '-'))
        return 0;
    size_t n = chunk_run(text, pos, ln.end, text[pos]);
    if (!chunk_rest_blank(text, pos + n, ln.end))
        return 0;
    return text[pos] == '=' ? 1 : n >= 2 ? 2 : 0;
}

/* "---", "***", "___", spaces allowed between. */
static int chunk_md_thematic_break(const char *text, struct chunk_line ln)
{
    size_t pos = chunk_md_indent(text, ln);
    if (pos == CHUNK_NONE || pos == ln.end)
        return 0;
    char c = text[pos];
    if (c != '-' && c != '*' && c != '_')
        return 0;
    size_t n = 0;
    for (; pos < ln.end; pos++) {
        if (text[pos] == c)
            n++;
        else if (text[pos] != ' ' && text[pos] != '\t')
            return 0;
    }
    return n >= 3;
}

/* A list item or block quote: a paragraph holding one cannot become a setext heading. */
static int chunk_md_container(const char *text, struct chunk_line ln)
{
    size_t pos = chunk_md_indent(text, ln);
    if (pos == CHUNK_NONE || pos == ln.end)
        return 0;
    if (text[pos] == '>')
        return 1;
    size_t digits = 0;
    while (pos + digits < ln.end && digits < 10 && text[pos + digits] >= '0' &&
           text[pos + digits] <= '9')
        digits++;
    if (digits >= 1 && digits <= 9 && pos + digits < ln.end &&
        (text[pos + digits] == '.' || text[pos + digits] == ')'))
        pos += digits;
    else if (text[pos] != '-' && text[pos] != '*' && text[pos] != '+')
        return 0;
    pos++;
    return pos == ln.end || text[pos] == ' ' || text[pos] == '\t';
}

/* Whether the line, trailing spaces aside, is exactly `word`. */
static int chunk_line_is(const char *text, struct chunk_line ln, const char *word)
{
    size_t n = strlen(word);
    return ln.end - ln.start >= n && memcmp(text + ln.start, word, n) == 0 &&
           chunk_rest_blank(text, ln.start + n, ln.end);
}

/* YAML front matter ("---", "key: value" lines, "---" or "...") at the very start is part of
 * the preamble, never a heading. Returns where heading detection begins. */
static size_t chunk_md_front_matter(const char *text, size_t pos, size_t len)
{
    struct chunk_line ln = chunk_line_at(text, pos, len);
    if (!chunk_line_is(text, ln, "---") || ln.next >= len)
        return pos;
    struct chunk_line key = chunk_line_at(text, ln.next, len);
    size_t p = key.start;
    while (p < key.end && text[p] != ':' && text[p] != ' ')
        p++;
    if (p == key.start || p == key.end || text[p] != ':')
        return pos;
    for (size_t at = key.next; at < len;) {
        struct chunk_line end = chunk_line_at(text, at, len);
        if (chunk_line_is(text, end, "---") || chunk_line_is(text, end, "..."))
            return end.next;
        at = end.next;
    }
    return pos;
}

/* ---- sections ----------------------------------------------------------------------------- */

static int chunk_section_push(struct chunker *ch, size_t start, size_t body_start, char *path,
                              int level)
{
    if (chunk_grow((void **)&ch->sections, &ch->alloc_sections, ch->n_sections + 1,
                   sizeof *ch->sections)) {
        free(path);
        return chunk_nomem(ch);
    }
    if (ch->n_sections)
        ch->sections[ch->n_sections - 1].end = start;
    ch->sections[ch->n_sections++] =
        (struct chunk_section){ start, body_start, ch->len, path, level };
    return 0;
}

/* The heading's text with every run of white space (line breaks included) made one space. */
static char *chunk_heading_text(const char *text, size_t start, size_t end)
{
    chunk_trim(text, &start, &end);
    char *title = malloc(end - start + 1);
    if (!title)
        return NULL;
    size_t n = 0;
    for (size_t pos = start; pos < end; pos++) {
        if (!chunk_is_space((unsigned char)text[pos]))
            title[n++] = text[pos];
        else if (title[n - 1] != ' ')
            title[n++] = ' ';
    }
    title[n] = '\0';
    return title;
}

/* "Install › Linux": the non-empty titles of the open headings, outermost first. */
static char *chunk_heading_path(struct chunker *ch)
{
    struct kb_buf path = KB_BUF_INIT;
    for (int level = 1; level <= CHUNK_MD_LEVELS; level++) {
        const char *title = ch->heading_stack[level];
        if (!title || !title[0])
            continue;
        if ((path.len && kb_buf_puts(&path, CHUNK_HEADING_SEP)) || kb_buf_puts(&path, title)) {
            kb_buf_free(&path);
            return NULL;
        }
    }
    return kb_buf_detach(&path);
}

/* A heading of `level` titled text[title_start, title_end) whose lines span
 * [start, body_start): closes the levels at and below it and opens a section. */
static int chunk_heading(struct chunker *ch, int level, size_t title_start, size_t title_end,
                         size_t start, size_t body_start)
{
    char *title = chunk_heading_text(ch->text, title_start, title_end);
    if (!title)
        return chunk_nomem(ch);
    if (level == 1 && !ch->title && title[0] && !(ch->title = strdup(title))) {
        free(title);
        return chunk_nomem(ch);
    }
    for (int l = level; l <= CHUNK_MD_LEVELS; l++) {
        free(ch->heading_stack[l]);
        ch->heading_stack[l] = NULL;
    }
    ch->heading_stack[level] = title;
    char *path = chunk_heading_path(ch);
    if (!path)
        return chunk_nomem(ch);
    /* A heading on the first line owns the byte order mark before it. */
    return chunk_section_push(ch, start == ch->bom_len ? 0 : start, body_start, path, level);
}

static int chunk_md_line(struct chunker *ch, struct chunk_md_state *st, struct chunk_line ln)
{
    const char *text = ch->text;
    size_t title_start, title_end;
    int level;
    if (st->in_fence) {
        if (chunk_md_fence_close(text, ln, st->fence_char, st->fence_len))
            st->in_fence = 0;
        return 0;
    }
    if (chunk_blank(text, ln.start, ln.end)) {
        st->in_para = 0;
        return 0;
    }
    if (chunk_md_fence_open(text, ln, &st->fence_char, &st->fence_len)) {
        st->in_fence = 1;
        st->in_para = 0;
        return 0;
    }
    if ((level = chunk_md_atx(text, ln, &title_start, &title_end))) {
        st->in_para = 0;
        return chunk_heading(ch, level, title_start, title_end, ln.start, ln.next);
    }
    if (st->in_para && st->para_setext_ok && (level = chunk_md_setext(text, ln))) {
        st->in_para = 0;
        return chunk_heading(ch, level, st->para_start, ln.start, st->para_start, ln.next);
    }
    if (chunk_md_thematic_break(text, ln)) {
        st->in_para = 0;
        return 0;
    }
    if (!st->in_para) {
        st->in_para = 1;
        st->para_start = ln.start;
        st->para_setext_ok = chunk_md_indent(text, ln) != CHUNK_NONE;
    }
    if (chunk_md_container(text, ln))
        st->para_setext_ok = 0;
    return 0;
}

/* Splits a Markdown document into sections; the first (the preamble) has no heading. */
static int chunk_md_sections(struct chunker *ch)
{
    char *preamble = strdup("");
    if (!preamble)
        return chunk_nomem(ch);
    int rc = chunk_section_push(ch, 0, 0, preamble, 0);
    if (ch->len >= 3 && memcmp(ch->text, "\xef\xbb\xbf", 3) == 0)
        ch->bom_len = 3;
    size_t pos = chunk_md_front_matter(ch->text, ch->bom_len, ch->len);
    struct chunk_md_state st = { 0 };
    while (!rc && pos < ch->len) {
        struct chunk_line ln = chunk_line_at(ch->text, pos, ch->len);
        rc = chunk_md_line(ch, &st, ln);
        pos = ln.next;
    }
    return rc;
}

/* ---- cutting oversized pieces ------------------------------------------------------------- */

static int chunk_atom_push(struct chunker *ch, size_t start, size_t end, size_t n_tokens)
{
    if (chunk_grow((void **)&ch->atoms, &ch->alloc_atoms, ch->n_atoms + 1, sizeof *ch->atoms))
        return chunk_nomem(ch);
    ch->atoms[ch->n_atoms++] = (struct chunk_atom){ start, end, n_tokens };
    return 0;
}

/* The sentence pattern, compiled and JIT-compiled once per process (a compiled pattern is
 * read-only, so threads share it); compile_code is 0 or the compile error. */
static struct {
    pthread_once_t once;
    pcre2_code *re;
    int compile_code;
    PCRE2_SIZE compile_offset;
} chunk_sentence = { PTHREAD_ONCE_INIT, NULL, 0, 0 };

static void chunk_sentence_init(void)
{
    chunk_sentence.re = pcre2_compile((PCRE2_SPTR)chunk_sentence_pattern, PCRE2_ZERO_TERMINATED,
                                      PCRE2_UTF | PCRE2_UCP, &chunk_sentence.compile_code,
                                      &chunk_sentence.compile_offset, NULL);
    /* Without JIT (not built in, or no executable memory) matching is slower but the same. */
    if (chunk_sentence.re)
        (void)pcre2_jit_compile(chunk_sentence.re, PCRE2_JIT_COMPLETE);
}

static int chunk_sentence_prepare(struct chunker *ch)
{
    pthread_once(&chunk_sentence.once, chunk_sentence_init);
    if (!chunk_sentence.re && chunk_sentence.compile_code != PCRE2_ERROR_HEAP_FAILED) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(chunk_sentence.compile_code, msg, sizeof msg);
        return kb_err_set(ch->err, KB_ERROR, "chunk: sentence pattern at offset %zu: %s",
                          (size_t)chunk_sentence.compile_offset, (const char *)msg);
    }
    if (chunk_sentence.re && !ch->match)
        ch->match = pcre2_match_data_create(1, NULL);
    if (chunk_sentence.re && !ch->match_ctx && (ch->match_ctx = pcre2_match_context_create(NULL))) {
        pcre2_set_match_limit(ch->match_ctx, ch->match_limit);
        pcre2_set_depth_limit(ch->match_ctx, CHUNK_DEPTH_LIMIT);
    }
    return chunk_sentence.re && ch->match && ch->match_ctx ? 0 : chunk_nomem(ch);
}

/* Where the sentence starting at pos ends: after its terminator and closers, or at end. When
 * a match runs into its limits (text built to make the pattern backtrack), the chunker stops
 * cutting at sentences for this document and cuts at lines and words instead. */
static int chunk_sentence_cut(struct chunker *ch, size_t pos, size_t end, size_t *cut)
{
    int rc;
    *cut = end;
    if (ch->sentence_off)
        return 0;
    if ((rc = chunk_sentence_prepare(ch)))
        return rc;
    /* The subject runs from the document start so lookbehinds see what precedes pos. */
    rc = pcre2_match(chunk_sentence.re, (PCRE2_SPTR)ch->text, end, pos, PCRE2_NO_UTF_CHECK,
                     ch->match, ch->match_ctx);
    if (rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_HEAP_FAILED)
        return chunk_nomem(ch);
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
        rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
        ch->sentence_off = 1;
    else if (rc >= 0)
        *cut = pcre2_get_ovector_pointer(ch->match)[1];
    else if (rc != PCRE2_ERROR_NOMATCH)
        ch->sentence_off = 1;   /* any other failure: the simpler cuts need no pattern */
    return 0;
}

/* The end of the first piece of text[pos, end) at `level` (end when it is all one piece). */
static int chunk_next_cut(struct chunker *ch, enum chunk_level level, size_t pos, size_t end,
                          size_t *cut)
{
    const char *text = ch->text;
    switch (level) {
    case CHUNK_SENTENCE:
        return chunk_sentence_cut(ch, pos, end, cut);
    case CHUNK_LINE: {
        const char *nl = memchr(text + pos, '\n', end - pos);
        *cut = nl ? (size_t)(nl - text) + 1 : end;
        return 0;
    }
    default:
        while (pos < end && chunk_is_space((unsigned char)text[pos]))
            pos++;
        while (pos < end && !chunk_is_space((unsigned char)text[pos]))
            pos++;
        *cut = pos;
        return 0;
    }
}

/* Whether a cut before byte pos keeps characters whole: not inside a UTF-8 sequence, not
 * before a combining mark, skin-tone modifier or zero-width joiner, not after a joiner. */
static int chunk_can_cut(const char *text, size_t pos, size_t end)
{
    const unsigned char *p = (const unsigned char *)text;
    if (pos >= end)
        return 1;
    if ((p[pos] & 0xc0) == 0x80)
        return 0;
    if (pos >= 3 && p[pos - 3] == 0xe2 && p[pos - 2] == 0x80 && p[pos - 1] == 0x8d)
        return 0;
    if (p[pos] < 0x80)
        return 1;
    utf8proc_int32_t cp;
    size_t avail = end - pos > 4 ? 4 : end - pos;
    if (utf8proc_iterate(p + pos, (utf8proc_ssize_t)avail, &cp) <= 0)
        return 1;
    utf8proc_category_t cat = utf8proc_category(cp);
    return !(cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC ||
             cat == UTF8PROC_CATEGORY_ME || cp == 0x200d || (cp >= 0x1f3fb && cp <= 0x1f3ff));
}

static size_t chunk_next_char(const char *text, size_t pos, size_t end)
{
    pos++;
    while (pos < end && ((unsigned char)text[pos] & 0xc0) == 0x80)
        pos++;
    return pos;
}

/* The first cut after pos: one character with its marks, or just the character when the
 * cluster runs past CHUNK_CLUSTER_MAX bytes. */
static size_t chunk_cut_after(const char *text, size_t pos, size_t end)
{
    size_t first = chunk_next_char(text, pos, end), at = first;
    while (at < end && at - pos < CHUNK_CLUSTER_MAX && !chunk_can_cut(text, at, end))
        at = chunk_next_char(text, at, end);
    return chunk_can_cut(text, at, end) ? at : first;
}

/* The last cut at or before x and after floor, CHUNK_NONE when there is none. */
static size_t chunk_cut_before(const char *text, size_t floor, size_t x, size_t end)
{
    for (size_t at = x; at > floor && x - at < CHUNK_CLUSTER_MAX; at--)
        if (chunk_can_cut(text, at, end))
            return at;
    for (size_t at = x; at > floor; at--)
        if (((unsigned char)text[at] & 0xc0) != 0x80)
            return at;
    return CHUNK_NONE;
}

/* The longest prefix of text[pos, end) that fits the target, found by galloping then
 * bisecting so that a long word costs O(n log n) counting, not O(n^2). */
static size_t chunk_char_cut(struct chunker *ch, size_t pos, size_t end, size_t *n_tokens)
{
    const char *text = ch->text;
    size_t good = chunk_cut_after(text, pos, end), bad = CHUNK_NONE, step = 64;
    *n_tokens = chunk_count(ch, pos, good);
    if (*n_tokens > ch->target)
        return good;  /* one character over target: the counter leaves no choice */
    while (good < end && bad == CHUNK_NONE) {
        size_t probe = end - good <= step ? end : chunk_cut_before(text, good, good + step, end);
        step *= 2;
        if (probe == CHUNK_NONE)
            continue;
        size_t n = chunk_count(ch, pos, probe);
        if (n <= ch->target) {
            good = probe;
            *n_tokens = n;
        } else {
            bad = probe;
        }
    }
    while (bad != CHUNK_NONE) {
        size_t mid = chunk_cut_before(text, good, good + (bad - good) / 2, end);
        if (mid == CHUNK_NONE)
            mid = chunk_cut_after(text, good, end);
        if (mid >= bad)
            break;
        size_t n = chunk_count(ch, pos, mid);
        if (n <= ch->target) {
            good = mid;
            *n_tokens = n;
        } else {
            bad = mid;
        }
    }
    return good;
}

static int chunk_split_chars(struct chunker *ch, size_t start, size_t end)
{
    int rc = 0;
    for (size_t pos = start; pos < end && !rc;) {
        size_t n_tokens, cut = chunk_char_cut(ch, pos, end, &n_tokens);
        rc = chunk_atom_push(ch, pos, cut, n_tokens);
        pos = cut;
    }
    return rc;
}

static int chunk_unit(struct chunker *ch, size_t start, size_t end, enum chunk_level level);

/* Cuts an oversized piece at the first level that yields more than one piece. */
static int chunk_split(struct chunker *ch, size_t start, size_t end, enum chunk_level level)
{
    size_t cut;
    int rc;
    for (;; level++) {
        if (level == CHUNK_CHAR)
            return chunk_split_chars(ch, start, end);
        if ((rc = chunk_next_cut(ch, level, start, end, &cut)))
            return rc;
        if (cut < end)
            break;
    }
    for (size_t pos = start;;) {
        if ((rc = chunk_unit(ch, pos, cut, level + 1)) || cut >= end)
            return rc;
        pos = cut;
        if ((rc = chunk_next_cut(ch, level, pos, end, &cut)))
            return rc;
    }
}

/* Adds text[start, end) as one atom when it fits, else cut at `level` and finer. */
static int chunk_unit(struct chunker *ch, size_t start, size_t end, enum chunk_level level)
{
    chunk_trim(ch->text, &start, &end);
    if (start == end)
        return 0;
    size_t n_tokens = chunk_count(ch, start, end);
    if (n_tokens <= ch->target)
        return chunk_atom_push(ch, start, end, n_tokens);
    return chunk_split(ch, start, end, level);
}

/* Whether every line of text[start, end) holds a '|': the rows of a table (Markdown pipe
 * tables, and the "cell | cell" rows the document parsers write), cut between rows first. */
static int chunk_is_table(const char *text, size_t start, size_t end)
{
    for (size_t pos = start; pos < end;) {
        struct chunk_line ln = chunk_line_at(text, pos, end);
        if (!memchr(text + ln.start, '|', ln.end - ln.start))
            return 0;
        pos = ln.next;
    }
    return 1;
}

static int chunk_paragraph(struct chunker *ch, size_t start, size_t end)
{
    return chunk_unit(ch, start, end,
                      chunk_is_table(ch->text, start, end) ? CHUNK_LINE : CHUNK_SENTENCE);
}

/* Paragraphs (split at blank lines) and, in Markdown, fenced code blocks, which stay whole
 * across blank lines; an unclosed fence runs to the end. */
static int chunk_blocks(struct chunker *ch, size_t start, size_t end)
{
    const char *text = ch->text;
    size_t para = CHUNK_NONE, para_end = 0, code = CHUNK_NONE, fence_len = 0;
    char fence_char = 0;
    int rc = 0;
    for (size_t pos = start; pos < end && !rc;) {
        struct chunk_line ln = chunk_line_at(text, pos, end);
        pos = ln.next;
        if (code != CHUNK_NONE) {
            if (chunk_md_fence_close(text, ln, fence_char, fence_len)) {
                rc = chunk_unit(ch, code, ln.end, CHUNK_LINE);
                code = CHUNK_NONE;
            }
        } else if (chunk_blank(text, ln.start, ln.end) ||
                   (ch->markdown && chunk_md_fence_open(text, ln, &fence_char, &fence_len))) {
            if (para != CHUNK_NONE)
                rc = chunk_paragraph(ch, para, para_end);
            para = CHUNK_NONE;
            if (!chunk_blank(text, ln.start, ln.end))
                code = ln.start;
        } else {
            para = para == CHUNK_NONE ? ln.start : para;
            para_end = ln.end;
        }
    }
    if (!rc && code != CHUNK_NONE)
        rc = chunk_unit(ch, code, end, CHUNK_LINE);
    if (!rc && para != CHUNK_NONE)
        rc = chunk_paragraph(ch, para, para_end);
    return rc;
}

/* ---- packing ------------------------------------------------------------------------------ */

static int chunk_emit(struct chunker *ch, size_t start, size_t end, size_t n_tokens,
                      const char *path)
{
    struct kb_chunk_list *out = ch->out;
    assert(start < end && (!out->count || start > out->items[out->count - 1].byte_start));
    if (chunk_grow((void **)&out->items, &out->alloc, out->count + 1, sizeof *out->items))
        return chunk_nomem(ch);
    char *heading_path = strdup(path);
    if (!heading_path)
        return chunk_nomem(ch);
    out->items[out->count++] = (struct kb_chunk){
        .byte_start = start,
        .byte_end = end,
        .line_start = chunk_line_of(&ch->at_start, ch->text, start),
        .line_end = chunk_line_of(&ch->at_end, ch->text, end - 1),
        .heading_path = heading_path,
        .n_tokens = n_tokens,
    };
    return 0;
}

/* Shrinks atoms [*first, *last) until one direct count fits the target: the sum of the
 * atoms' counts was only an estimate. Drops new atoms from the end first (bisecting), then
 * overlap from the front; atoms[fresh] always stays. Returns the direct count. */
static size_t chunk_fit(struct chunker *ch, size_t *first, size_t fresh, size_t *last)
{
    const struct chunk_atom *a = ch->atoms;
    size_t n = chunk_count(ch, a[*first].start, a[*last - 1].end);
    while (n > ch->target) {
        if (*last - 1 > fresh) {
            size_t lo = fresh + 1, hi = *last - 1;
            while (lo < hi) {
                size_t mid = lo + (hi - lo + 1) / 2;
                if (chunk_count(ch, a[*first].start, a[mid - 1].end) <= ch->target)
                    lo = mid;
                else
                    hi = mid - 1;
            }
            *last = lo;
        } else if (*first < fresh) {
            (*first)++;
        } else {
            break;  /* a lone atom: counted alone, it can only be a character over target */
        }
        n = chunk_count(ch, a[*first].start, a[*last - 1].end);
    }
    return n;
}

/* Packs the section's atoms greedily into chunks; each chunk after the first repeats the
 * trailing atoms of the one before, up to overlap tokens, but never all of them, so every
 * chunk starts later and ends later than the one before. */
static int chunk_pack(struct chunker *ch, const char *path)
{
    const struct chunk_atom *a = ch->atoms;
    size_t n_atoms = ch->n_atoms, first = 0, fresh = 0;
    int rc = 0;
    while (fresh < n_atoms && !rc) {
        size_t sum = 0, last = fresh;
        for (size_t k = first; k < fresh; k++)
            sum += a[k].n_tokens;
        while (first < fresh && sum + a[fresh].n_tokens > ch->target)
            sum -= a[first++].n_tokens;
        while (last < n_atoms && sum + a[last].n_tokens <= ch->target)
            sum += a[last++].n_tokens;
        if (last == fresh)
            last++;  /* a lone character over target (see chunk_char_cut) */
        size_t n_tokens = chunk_fit(ch, &first, fresh, &last);
        rc = chunk_emit(ch, a[first].start, a[last - 1].end, n_tokens, path);
        size_t chunk_first = first, overlap = 0;
        fresh = first = last;
        while (ch->overlap && first - 1 > chunk_first &&
               overlap + a[first - 1].n_tokens <= ch->overlap)
            overlap += a[--first].n_tokens;
    }
    return rc;
}

static int chunk_section(struct chunker *ch, size_t start, size_t body_start, size_t end,
                         const char *path)
{
    size_t s = start, e = end;
    chunk_trim(ch->text, &s, &e);
    if (s == e)
        return 0;
    size_t n_tokens = chunk_count(ch, s, e);
    if (n_tokens <= ch->target)
        return chunk_emit(ch, s, e, n_tokens, path);
    ch->n_atoms = 0;
    int rc = 0;
    if (body_start > start)
        rc = chunk_unit(ch, start, body_start, CHUNK_LINE);
    if (!rc)
        rc = chunk_blocks(ch, body_start, end);
    return rc ? rc : chunk_pack(ch, path);
}

/* Chunks each section; a section that is only a heading joins the next one when that is
 * below it (which gives the deeper heading path), never a sibling or a higher section: an
 * EPUB chapter or a part that holds only its title stays apart from what follows. */
static int chunk_sections(struct chunker *ch)
{
    size_t merged_start = CHUNK_NONE;
    int rc = 0;
    for (size_t i = 0; i < ch->n_sections && !rc; i++) {
        const struct chunk_section *sec = &ch->sections[i];
        size_t start = merged_start != CHUNK_NONE ? merged_start : sec->start;
        int heading_only = sec->body_start > sec->start &&
                           chunk_blank(ch->text, sec->body_start, sec->end);
        if (heading_only && i + 1 < ch->n_sections && ch->sections[i + 1].level > sec->level) {
            merged_start = start;
            continue;
        }
        merged_start = CHUNK_NONE;
        rc = chunk_section(ch, start, sec->body_start, sec->end, sec->path);
    }
    return rc;
}

/* ---- entry points ------------------------------------------------------------------------- */

static int chunk_check_args(const char *text, size_t len, const struct kb_chunk_options *opts,
                            struct kb_err *err)
{
    size_t bad;
    if (!opts)
        return kb_err_set(err, KB_EINVALID, "chunk options: NULL");
    if (opts->target_tokens < 8)
        return kb_err_set(err, KB_EINVALID,
                          "chunk options: target_tokens is %u, must be at least 8",
                          opts->target_tokens);
    if (opts->overlap_tokens >= opts->target_tokens / 2)
        return kb_err_set(err, KB_EINVALID,
                          "chunk options: overlap_tokens is %u, must be less than "
                          "target_tokens / 2 (%u)",
                          opts->overlap_tokens, opts->target_tokens / 2);
    if (!opts->counter || !opts->counter->count)
        return kb_err_set(err, KB_EINVALID, "chunk options: counter is NULL");
    if (opts->format != KB_CHUNK_TEXT && opts->format != KB_CHUNK_MARKDOWN)
        return kb_err_set(err, KB_EINVALID, "chunk options: format %d is unknown",
                          (int)opts->format);
    if (!text && len)
        return kb_err_set(err, KB_EINVALID, "chunk: text is NULL");
    if (len && !kb_utf8_valid(text, len, &bad))
        return kb_err_set(err, KB_EINVALID, "chunk: text is not valid UTF-8 at byte %zu", bad);
    return 0;
}

static void chunker_release(struct chunker *ch)
{
    for (size_t i = 0; i < ch->n_sections; i++)
        free(ch->sections[i].path);
    free(ch->sections);
    for (int level = 0; level <= CHUNK_MD_LEVELS; level++)
        free(ch->heading_stack[level]);
    free(ch->atoms);
    free(ch->title);
    pcre2_match_data_free(ch->match);
    pcre2_match_context_free(ch->match_ctx);
}

int kb_chunk_text(struct kb_chunk_list *out, const char *text, size_t len,
                  const struct kb_chunk_options *opts, struct kb_err *err)
{
    return kb_chunk_text_limited(out, text, len, opts, 0, err);
}

int kb_chunk_text_limited(struct kb_chunk_list *out, const char *text, size_t len,
                          const struct kb_chunk_options *opts, uint32_t match_limit,
                          struct kb_err *err)
{
    if (!out)
        return kb_err_set(err, KB_EINVALID, "chunk: out is NULL");
    memset(out, 0, sizeof *out);
    int rc = chunk_check_args(text, len, opts, err);
    if (rc)
        return rc;
    struct kb_chunk_list list = { 0 };
    struct chunker ch = {
        .text = text, .len = len,
        .target = opts->target_tokens, .overlap = opts->overlap_tokens,
        .match_limit = match_limit ? match_limit : CHUNK_MATCH_LIMIT,
        .markdown = opts->format == KB_CHUNK_MARKDOWN,
        .counter = opts->counter, .err = err, .out = &list,
        .at_start = { 0, 1 }, .at_end = { 0, 1 },
    };
    if (ch.markdown) {
        rc = chunk_md_sections(&ch);
    } else {
        char *path = strdup("");
        rc = path ? chunk_section_push(&ch, 0, 0, path, 0) : chunk_nomem(&ch);
    }
    if (!rc)
        rc = chunk_sections(&ch);
    if (!rc) {
        list.title = ch.title;
        ch.title = NULL;
        *out = list;
    } else {
        kb_chunk_list_free(&list);
    }
    chunker_release(&ch);
    return rc;
}

void kb_chunk_list_free(struct kb_chunk_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i].heading_path);
    free(list->items);
    free(list->title);
    memset(list, 0, sizeof *list);
}
