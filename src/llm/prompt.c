/* prompt.c — renders retrieved passages into chat messages within a token budget, filled in
 * rank order: merge neighbouring chunks, drop (near-)duplicates, shorten the passage that
 * does not fit, quote passages so they stay data. */
#include "llm/llm_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PROMPT_MESSAGE_OVERHEAD 4   /* tokens a chat format spends per message */
#define PROMPT_NEAR_DUPLICATE 0.8   /* share of a passage's word 3-grams already sent */
#define PROMPT_MIN_SHORTENED 192    /* bytes of text below which a cut passage is not sent */
#define PROMPT_SHORTENED_MARK " [\xE2\x80\xA6]" /* " […]" ends a passage cut short */
#define PROMPT_NOTE_SHORTENED "shortened to fit the token budget"
#define PROMPT_NOTE_OVER "over the token budget"

/* A passage being assembled: one hit, or neighbouring hits of one section merged. */
struct prompt_cand {
    const kb_result *best;          /* the best-ranked hit in it: path, heading, score */
    uint64_t byte_start, byte_end;
    uint32_t line_start, line_end;
    uint32_t page_start, page_end;  /* PDF pages it spans; 0 when not paged */
    struct kb_buf location;         /* "page 3", "row 2 – row 9", ...; empty for none */
    struct kb_buf text;
    uint64_t *grams;                /* sorted hashes of word 3-grams */
    size_t n_grams;
    const char *note;               /* non-NULL: left out and why, or placed but shortened */
    int number;                     /* [number] in the prompt; 0 until placed */
};

size_t kb_llm_estimate_tokens(size_t len)
{
    return (len + 2) / 3;
}

/* ---- near-duplicate detection on word 3-grams (FNV-1a hashes) ---- */

static int prompt_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Words are runs of ASCII alphanumerics and non-ASCII bytes, compared case-folded. */
static size_t prompt_words(const char *text, uint64_t **out)
{
    size_t n = 0, cap = 0;
    uint64_t *hashes = NULL;
    for (const unsigned char *p = (const unsigned char *)text; *p;) {
        if (!isalnum(*p) && *p < 0x80) {
            p++;
            continue;
        }
        uint64_t h = 1469598103934665603ull;
        for (; *p && (isalnum(*p) || *p >= 0x80); p++)
            h = (h ^ (uint64_t)tolower(*p)) * 1099511628211ull;
        if (n == cap) {
            uint64_t *grown = realloc(hashes, (cap = cap ? cap * 2 : 64) * sizeof *hashes);
            if (!grown)
                break;
            hashes = grown;
        }
        hashes[n++] = h;
    }
    *out = hashes;
    return n;
}

static void prompt_grams(struct prompt_cand *c)
{
    uint64_t *words;
    size_t n = prompt_words(c->text.data ? c->text.data : "", &words);
    free(c->grams);
    c->grams = NULL;
    c->n_grams = 0;
    if (n == 0)
        return;
    size_t m = n >= 3 ? n - 2 : 1;
    c->grams = malloc(m * sizeof *c->grams);
    for (size_t i = 0; c->grams && i < m; i++)
        c->grams[i] = n >= 3 ? words[i] * 31 * 31 + words[i + 1] * 31 + words[i + 2] : words[0];
    if (c->grams) {
        qsort(c->grams, m, sizeof *c->grams, prompt_cmp_u64);
        c->n_grams = m;
    }
    free(words);
}

/* The share of a's 3-grams that b has too. */
static double prompt_contained(const struct prompt_cand *a, const struct prompt_cand *b)
{
    size_t i = 0, j = 0, common = 0;
    while (i < a->n_grams && j < b->n_grams) {
        if (a->grams[i] == b->grams[j]) {
            common++;
            i++;
        } else if (a->grams[i] < b->grams[j]) {
            i++;
        } else {
            j++;
        }
    }
    return a->n_grams ? (double)common / (double)a->n_grams : 1.0;
}

/* ---- locations ---- */

#define PROMPT_LOCATION_JOIN " \xE2\x80\x93 " /* " – ", as kb/ingest.c joins two labels */

/* The last page a hit spans: N of its "pages M-N", else the page it starts on. */
static uint32_t prompt_last_page(const kb_result *r)
{
    unsigned first, last;
    if (r->page && r->location && sscanf(r->location, "pages %u-%u", &first, &last) == 2 &&
        last >= r->page)
        return (uint32_t)last;
    return r->page;
}

/* The first label of a location ("row 2" of "row 2 – row 9") as a length of `loc`. */
static size_t prompt_first_label(const char *loc)
{
    const char *join = strstr(loc, PROMPT_LOCATION_JOIN);
    return join ? (size_t)(join - loc) : strlen(loc);
}

/* The last label of a location ("row 9" of "row 2 – row 9"). */
static const char *prompt_last_label(const char *loc)
{
    const char *last = loc;
    for (const char *p = loc; (p = strstr(p, PROMPT_LOCATION_JOIN)); p += 1)
        last = p + sizeof PROMPT_LOCATION_JOIN - 1;
    return last;
}

/* The location of a passage that now also covers hit r (kb.h, kb_source.location): a page
 * range when both are paged, else from the first label of the one that starts first to the
 * last label of the one that ends last. */
static int prompt_merge_location(struct prompt_cand *c, const kb_result *r)
{
    const char *rloc = r->location ? r->location : "", *cloc = c->location.data;
    struct kb_buf merged = KB_BUF_INIT;
    int rc = 0;
    if (c->page_start && r->page) {
        uint32_t r_last = prompt_last_page(r);
        c->page_start = r->page < c->page_start ? r->page : c->page_start;
        c->page_end = r_last > c->page_end ? r_last : c->page_end;
        rc = c->page_end > c->page_start
                 ? kb_buf_printf(&merged, "pages %u-%u", c->page_start, c->page_end)
                 : kb_buf_printf(&merged, "page %u", c->page_start);
    } else if (!cloc || !*cloc || !*rloc) {
        rc = kb_buf_puts(&merged, cloc && *cloc ? cloc : rloc);
    } else {
        const char *head = r->byte_start < c->byte_start ? rloc : cloc;
        const char *tail = prompt_last_label(r->byte_end > c->byte_end ? rloc : cloc);
        size_t head_len = prompt_first_label(head);
        rc = kb_buf_append(&merged, head, head_len);
        if (!rc && (strlen(tail) != head_len || strncmp(head, tail, head_len)))
            rc = kb_buf_puts(&merged, PROMPT_LOCATION_JOIN) || kb_buf_puts(&merged, tail);
    }
    if (rc) {
        kb_buf_free(&merged);
        return KB_ENOMEM;
    }
    kb_buf_free(&c->location);
    c->location = merged;
    return 0;
}

/* ---- assembling passages ---- */

/* Whether hit r belongs to placed passage c: same section, lines next to or inside it. A
 * shortened passage takes no more. */
static int prompt_neighbour(const struct prompt_cand *c, const kb_result *r)
{
    return c->number && !c->note && !strcmp(c->best->path, r->path) &&
           !strcmp(c->best->heading_path, r->heading_path) &&
           r->line_start <= c->line_end + 2 && r->line_end + 2 >= c->line_start;
}

/* Appends `tail` after `head`, splicing away the bytes they share in the document. */
static int prompt_splice(struct kb_buf *out, const char *head, uint64_t head_end,
                         const char *tail, uint64_t tail_start, uint64_t tail_end)
{
    size_t tail_len = strlen(tail);
    int rc = kb_buf_puts(out, head);
    if (rc || tail_end <= head_end)
        return rc;
    if (tail_start <= head_end && head_end - tail_start <= tail_len)
        return kb_buf_puts(out, tail + (head_end - tail_start));
    return kb_buf_puts(out, "\n\n") || kb_buf_puts(out, tail) ? KB_ENOMEM : 0;
}

/* Merges hit r into its neighbour c: the text covers both ranges in document order, the
 * location both locations. */
static int prompt_merge(struct prompt_cand *c, const kb_result *r)
{
    struct kb_buf merged = KB_BUF_INIT;
    if (prompt_merge_location(c, r))
        return KB_ENOMEM;
    const char *ctext = c->text.data ? c->text.data : "";
    int rc = r->byte_start >= c->byte_start
                 ? prompt_splice(&merged, ctext, c->byte_end, r->text, r->byte_start, r->byte_end)
                 : prompt_splice(&merged, r->text, r->byte_end, ctext, c->byte_start, c->byte_end);
    if (rc) {
        kb_buf_free(&merged);
        return KB_ENOMEM;
    }
    kb_buf_free(&c->text);
    c->text = merged;
    c->byte_start = r->byte_start < c->byte_start ? r->byte_start : c->byte_start;
    c->byte_end = r->byte_end > c->byte_end ? r->byte_end : c->byte_end;
    c->line_start = r->line_start < c->line_start ? r->line_start : c->line_start;
    c->line_end = r->line_end > c->line_end ? r->line_end : c->line_end;
    prompt_grams(c);
    return 0;
}

/* Sets c->note when c repeats a passage placed earlier. */
static void prompt_dedupe(struct prompt_cand *c, const struct prompt_cand *kept, size_t n_kept)
{
    for (size_t i = 0; i < n_kept && !c->note; i++) {
        if (!kept[i].number)
            continue;
        if (c->text.len == kept[i].text.len &&
            !memcmp(c->text.data, kept[i].text.data, c->text.len))
            c->note = "duplicate";
        else if (prompt_contained(c, &kept[i]) >= PROMPT_NEAR_DUPLICATE)
            c->note = "near-duplicate";
    }
}

/* ---- quoting ---- */

char *kb_llm_quote_passage(const char *src)
{
    struct kb_buf out = KB_BUF_INIT;
    int rc = 0;
    for (const char *p = src; *p && !rc; p++) {
        const char *q = p + 1;
        if (*p == '<') {
            while (*q == ' ' || *q == '\t' || *q == '\n')
                q++;
            if (*q == '/')
                q++;
            while (*q == ' ' || *q == '\t' || *q == '\n')
                q++;
        }
        if (*p == '<' && !strncasecmp(q, "passage", 7))
            rc = kb_buf_puts(&out, "&lt;");
        else
            rc = kb_buf_append(&out, p, 1);
    }
    if (rc) {
        kb_buf_free(&out);
        return NULL;
    }
    return kb_buf_detach(&out);
}

/* An attribute value: quotes, angle brackets and ampersands escaped, newlines as spaces. */
static int prompt_attr(struct kb_buf *out, const char *value)
{
    int rc = 0;
    for (const char *p = value; *p && !rc; p++) {
        switch (*p) {
        case '"': rc = kb_buf_puts(out, "&quot;"); break;
        case '<': rc = kb_buf_puts(out, "&lt;"); break;
        case '>': rc = kb_buf_puts(out, "&gt;"); break;
        case '&': rc = kb_buf_puts(out, "&amp;"); break;
        case '\n': case '\r': case '\t': rc = kb_buf_puts(out, " "); break;
        default: rc = kb_buf_append(out, p, 1);
        }
    }
    return rc;
}

static int prompt_passage(struct kb_buf *out, int number, const struct prompt_cand *c)
{
    char *quoted = kb_llm_quote_passage(c->text.data ? c->text.data : "");
    int rc = !quoted || kb_buf_printf(out, "<passage id=\"%d\" source=\"", number) ||
             prompt_attr(out, c->best->path) || kb_buf_puts(out, "\"");
    if (!rc && *c->best->heading_path)
        rc = kb_buf_puts(out, " section=\"") || prompt_attr(out, c->best->heading_path) ||
             kb_buf_puts(out, "\"");
    if (!rc)
        rc = kb_buf_printf(out, " lines=\"%u-%u\"", c->line_start, c->line_end) != 0;
    if (!rc && c->location.len)
        rc = kb_buf_puts(out, " location=\"") || prompt_attr(out, c->location.data) ||
             kb_buf_puts(out, "\"");
    if (!rc)
        rc = kb_buf_printf(out, ">\n%s\n</passage>", quoted) != 0;
    free(quoted);
    return rc ? KB_ENOMEM : 0;
}

/* ---- messages ---- */

static size_t prompt_cost(size_t len)
{
    return kb_llm_estimate_tokens(len) + PROMPT_MESSAGE_OVERHEAD;
}

/* msgs[0] = the [system] part, msgs[1] = the [user] part, with these values. */
static int prompt_messages(struct kb_buf msgs[2], const struct kb_llm_render *in,
                           const char *context, const char *history)
{
    const char *values[3] = { in->question, context, history };
    kb_buf_reset(&msgs[0]);
    kb_buf_reset(&msgs[1]);
    int rc = kb_llm_template_fill(&msgs[0], in->tpl, 0, values);
    return rc ? rc : kb_llm_template_fill(&msgs[1], in->tpl, 1, values);
}

static size_t prompt_total(const struct kb_buf msgs[2])
{
    return (msgs[0].len ? prompt_cost(msgs[0].len) : 0) + prompt_cost(msgs[1].len);
}

#define PROMPT_HISTORY_HEADER "Earlier in this conversation:\n\n"

/* The newest turns of `history` that fit `budget` tokens, oldest first, after a header line;
 * *n_used says how many. Earlier answers may quote passages, so they are quoted like them. */
static int prompt_history(struct kb_buf *out, size_t *n_used, const kb_message *turns, size_t n,
                          size_t budget)
{
    size_t first = n, used = kb_llm_estimate_tokens(sizeof PROMPT_HISTORY_HEADER);
    while (first > 0) {
        size_t cost = kb_llm_estimate_tokens(strlen(turns[first - 1].content) + 16);
        if (used + cost > budget)
            break;
        used += cost;
        first--;
    }
    *n_used = n - first;
    int rc = first < n ? kb_buf_puts(out, PROMPT_HISTORY_HEADER) : 0;
    for (size_t i = first; i < n && !rc; i++) {
        char *quoted = kb_llm_quote_passage(turns[i].content);
        rc = quoted ? kb_buf_printf(out, "%s: %s\n\n",
                                    !strcmp(turns[i].role, "assistant") ? "Assistant" : "User",
                                    quoted)
                    : KB_ENOMEM;
        free(quoted);
    }
    return rc ? KB_ENOMEM : 0;
}

/* ---- placing passages within the budget, in rank order ---- */

/* *cost = the tokens passage c takes in the context as [number], separator included. */
static int prompt_passage_cost(size_t *cost, const struct prompt_cand *c, int number,
                       struct kb_buf *scratch)
{
    kb_buf_reset(scratch);
    int rc = prompt_passage(scratch, number, c);
    *cost = kb_llm_estimate_tokens(scratch->len + 2);
    return rc;
}

/* A new passage of hit r alone. */
static int prompt_start(struct prompt_cand *c, const kb_result *r)
{
    c->best = r;
    c->byte_start = r->byte_start;
    c->byte_end = r->byte_end;
    c->line_start = r->line_start;
    c->line_end = r->line_end;
    c->page_start = r->page;
    c->page_end = prompt_last_page(r);
    if (kb_buf_puts(&c->location, r->location ? r->location : "") ||
        kb_buf_puts(&c->text, r->text))
        return KB_ENOMEM;
    prompt_grams(c);
    return 0;
}

static void prompt_cand_free(struct prompt_cand *c)
{
    kb_buf_free(&c->text);
    kb_buf_free(&c->location);
    free(c->grams);
}

/* Merges hit r into placed passage c when the grown passage still fits the `*left` tokens
 * (*merged = 1, *left less the growth); else c stays as it was (*merged = 0). */
static int prompt_grow(struct prompt_cand *c, const kb_result *r, size_t *left, int *merged,
                       struct kb_buf *scratch)
{
    struct prompt_cand trial = *c;
    size_t before, after;
    trial.text = (struct kb_buf)KB_BUF_INIT;
    trial.location = (struct kb_buf)KB_BUF_INIT;
    trial.grams = NULL;
    trial.n_grams = 0;
    *merged = 0;
    int rc = kb_buf_puts(&trial.text, c->text.data ? c->text.data : "") ||
                     kb_buf_puts(&trial.location, c->location.data ? c->location.data : "")
                 ? KB_ENOMEM
                 : 0;
    if (!rc)
        rc = prompt_merge(&trial, r);
    if (!rc)
        rc = prompt_passage_cost(&before, c, c->number, scratch) ||
                     prompt_passage_cost(&after, &trial, c->number, scratch)
                 ? KB_ENOMEM
                 : 0;
    if (rc || after > before + *left) {
        prompt_cand_free(&trial);
        return rc;
    }
    *left = *left + before - after;
    prompt_cand_free(c);
    *c = trial;
    *merged = 1;
    return 0;
}

/* The length of the longest prefix of text (strlen > max) of at most `max` bytes that ends a
 * line or a sentence, else a word; trailing white space not counted. 0 when there is none. */
static size_t prompt_cut(const char *text, size_t max)
{
    size_t word = 0, keep = 0;
    for (size_t i = max; i > 0 && !keep; i--) {
        char prev = text[i - 1], next = text[i];
        if (prev == '\n' || (strchr(".!?", prev) && isspace((unsigned char)next)))
            keep = i;
        else if (!word && isspace((unsigned char)next))
            word = i;
    }
    keep = keep ? keep : word;
    while (keep > 0 && isspace((unsigned char)text[keep - 1]))
        keep--;
    return keep;
}

/* Cuts passage c, about to be [number], to what fits in `left` tokens, at a line or sentence
 * end, marked; *fits = 0 (c unchanged) when less than PROMPT_MIN_SHORTENED bytes would. */
static int prompt_shorten(struct prompt_cand *c, int number, size_t left, size_t *cost,
                          int *fits, struct kb_buf *scratch)
{
    char *whole = strdup(c->text.data ? c->text.data : "");
    size_t whole_len = whole ? strlen(whole) : 0, empty;
    *fits = 0;
    kb_buf_reset(&c->text);
    int rc = whole ? prompt_passage_cost(&empty, c, number, scratch) : KB_ENOMEM;
    /* The passage costs (bytes + 4) / 3 tokens: its text may have 3 * left - 2 bytes less the
     * delimiter's and the mark's; quoting can add a few, found by measuring. */
    size_t fixed = scratch->len + 2 + sizeof PROMPT_SHORTENED_MARK - 1;
    size_t max = 3 * left > fixed ? 3 * left - fixed : 0;
    max = max < whole_len ? max : (whole_len ? whole_len - 1 : 0);
    while (!rc && !*fits && max >= PROMPT_MIN_SHORTENED) {
        size_t keep = prompt_cut(whole, max);
        if (keep < PROMPT_MIN_SHORTENED)
            break;
        kb_buf_reset(&c->text);
        rc = kb_buf_append(&c->text, whole, keep) || kb_buf_puts(&c->text, PROMPT_SHORTENED_MARK)
                 ? KB_ENOMEM
                 : prompt_passage_cost(cost, c, number, scratch);
        *fits = !rc && *cost <= left;
        if (*fits) {
            uint32_t lines = 0;
            for (size_t i = 0; i < keep; i++)
                lines += whole[i] == '\n';
            c->line_end = c->line_start + lines < c->line_end ? c->line_start + lines : c->line_end;
            c->note = PROMPT_NOTE_SHORTENED;
        }
        max = keep - 1;
    }
    if (!rc && !*fits) {
        kb_buf_reset(&c->text);
        rc = kb_buf_puts(&c->text, whole) ? KB_ENOMEM : 0;
    }
    free(whole);
    return rc;
}

/* Places passage c as [number] if it fits the `*left` tokens, else shortened to fit, else
 * notes it as left out. */
static int prompt_admit(struct prompt_cand *c, int number, size_t *left, struct kb_buf *scratch)
{
    size_t cost;
    int fits = 1, rc = prompt_passage_cost(&cost, c, number, scratch);
    if (!rc && cost > *left)
        rc = prompt_shorten(c, number, *left, &cost, &fits, scratch);
    if (rc)
        return rc;
    if (!fits) {
        c->note = PROMPT_NOTE_OVER;
        return 0;
    }
    c->number = number;
    *left -= cost;
    return 0;
}

/* Hits (best first) -> passages within `left` tokens, in rank order so that no passage is
 * left out for a worse one: a hit next to a placed passage of its section grows it if the
 * grown passage fits (else it is left out); any other is a passage of its own, left out when
 * it repeats one placed, else placed whole, or shortened to what is left, or left out. */
static int prompt_place(struct prompt_cand *cands, size_t *n_cands,
                        const kb_result *const *hits, size_t n_hits, size_t left)
{
    struct kb_buf scratch = KB_BUF_INIT;
    int number = 0, rc = 0;
    for (size_t h = 0; h < n_hits && !rc; h++) {
        int neighbour = 0, merged = 0;
        for (size_t i = 0; i < *n_cands && !merged && !rc; i++) {
            if (!prompt_neighbour(&cands[i], hits[h]))
                continue;
            neighbour = 1;
            rc = prompt_grow(&cands[i], hits[h], &left, &merged, &scratch);
        }
        if (rc || merged)
            continue;
        struct prompt_cand *c = &cands[(*n_cands)++];
        rc = prompt_start(c, hits[h]);
        if (!rc && neighbour)
            c->note = PROMPT_NOTE_OVER;
        if (!rc)
            prompt_dedupe(c, cands, *n_cands - 1);
        if (!rc && !c->note)
            rc = prompt_admit(c, number + 1, &left, &scratch);
        number += !rc && c->number;
    }
    kb_buf_free(&scratch);
    return rc;
}

/* The placed passages, in the order of their numbers. */
static int prompt_context(struct kb_buf *context, const struct prompt_cand *cands, size_t n)
{
    int rc = 0, placed = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!cands[i].number)
            continue;
        if (placed++ && kb_buf_puts(context, "\n\n"))
            return KB_ENOMEM;
        rc = prompt_passage(context, cands[i].number, &cands[i]);
    }
    if (!rc && !placed)
        rc = kb_buf_puts(context, "(no passages were found for this question)");
    return rc ? KB_ENOMEM : 0;
}

static int prompt_source(kb_source *s, const struct prompt_cand *c)
{
    s->number = c->number;
    s->line_start = c->line_start;
    s->line_end = c->line_end;
    s->score = c->best->score;
    s->path = strdup(c->best->path);
    s->title = strdup(c->best->title);
    s->heading_path = strdup(c->best->heading_path);
    s->text = strdup(c->text.data ? c->text.data : "");
    s->note = strdup(c->note ? c->note : "");
    s->format = strdup(c->best->format ? c->best->format : "");
    s->location = strdup(c->location.data ? c->location.data : "");
    s->page = c->page_start;
    return s->path && s->title && s->heading_path && s->text && s->note && s->format &&
                   s->location
               ? 0
               : KB_ENOMEM;
}

static int prompt_output(kb_prompt_result *out, struct kb_buf msgs[2],
                         const struct prompt_cand *cands, size_t n)
{
    out->messages = calloc(2, sizeof *out->messages);
    out->sources = calloc(n ? n : 1, sizeof *out->sources);
    out->dropped = calloc(n ? n : 1, sizeof *out->dropped);
    if (!out->messages || !out->sources || !out->dropped)
        return KB_ENOMEM;
    for (int part = 0; part < 2; part++) {
        if (part == 0 && !msgs[0].len)
            continue;
        kb_message *m = &out->messages[out->n_messages++];
        m->role = strdup(part ? "user" : "system");
        m->content = kb_buf_detach(&msgs[part]);
        if (!m->role || !m->content)
            return KB_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        kb_source *s = cands[i].number ? &out->sources[out->n_sources++]
                                       : &out->dropped[out->n_dropped++];
        if (prompt_source(s, &cands[i]))
            return KB_ENOMEM;
    }
    return 0;
}

int kb_llm_prompt_render(kb_prompt_result *out, const struct kb_llm_render *in,
                         struct kb_err *err)
{
    if (in->max_tokens >= in->context_window)
        return kb_err_set(err, KB_ECONFIG, "max_answer_tokens (%zu) must be below "
                          "context_window (%zu)", in->max_tokens, in->context_window);
    struct prompt_cand *cands = calloc(in->n_hits ? in->n_hits : 1, sizeof *cands);
    struct kb_buf msgs[2] = { KB_BUF_INIT, KB_BUF_INIT }, context = KB_BUF_INIT,
                  history = KB_BUF_INIT;
    size_t n = 0, budget = in->context_window - in->max_tokens, history_used = 0;
    int rc = cands ? prompt_messages(msgs, in, "", "") : KB_ENOMEM;
    size_t fixed = prompt_total(msgs), left = budget > fixed ? budget - fixed : 0;
    if (!rc)
        rc = prompt_history(&history, &history_used, in->history, in->n_history, left / 4);
    left -= left > kb_llm_estimate_tokens(history.len) ? kb_llm_estimate_tokens(history.len) : left;
    if (!rc)
        rc = prompt_place(cands, &n, in->hits, in->n_hits, left);
    if (!rc)
        rc = prompt_context(&context, cands, n);
    if (!rc)
        rc = prompt_messages(msgs, in, context.data, history.data ? history.data : "");
    if (!rc) {
        out->budget_tokens = budget;
        out->prompt_tokens = prompt_total(msgs);
        out->history_used = history_used;
        rc = prompt_output(out, msgs, cands, n);
    }
    for (size_t i = 0; i < n; i++)
        prompt_cand_free(&cands[i]);
    free(cands);
    kb_buf_free(&msgs[0]);
    kb_buf_free(&msgs[1]);
    kb_buf_free(&context);
    kb_buf_free(&history);
    return rc == KB_ENOMEM ? kb_err_set(err, rc, "out of memory rendering the prompt") : rc;
}

static void prompt_free_sources(kb_source *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free((char *)s[i].path);
        free((char *)s[i].title);
        free((char *)s[i].heading_path);
        free((char *)s[i].text);
        free((char *)s[i].note);
        free((char *)s[i].format);
        free((char *)s[i].location);
    }
    free(s);
}

void kb_llm_prompt_clear(kb_prompt_result *p)
{
    for (size_t i = 0; p->messages && i < p->n_messages; i++) {
        free((char *)p->messages[i].role);
        free((char *)p->messages[i].content);
    }
    free(p->messages);
    prompt_free_sources(p->sources, p->n_sources);
    prompt_free_sources(p->dropped, p->n_dropped);
    free((char *)p->template_name);
    free((char *)p->backend);
    free((char *)p->url);
    free((char *)p->model);
    memset(p, 0, sizeof *p);
}
