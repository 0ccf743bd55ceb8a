/* markup.c — reStructuredText and Org headings rewritten as ATX headings, line for line, so
 * the Markdown chunker finds heading paths and line ranges still point into the source. */
#include "ingest/doc_int.h"

#include <stdlib.h>
#include <string.h>

struct markup_line {
    const char *s;
    size_t len;     /* without the newline (and a CR before it) */
};

static struct markup_line markup_line_at(const char *text, size_t len, size_t pos, size_t *next)
{
    const char *nl = memchr(text + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - text) : len;
    *next = nl ? end + 1 : len;
    if (end > pos && text[end - 1] == '\r')
        end--;
    return (struct markup_line){ text + pos, end - pos };
}

/* An RST adornment line: one punctuation character repeated (at least 3 times). */
static char rst_adornment(struct markup_line l)
{
    static const char punct[] = "=-~^\"'`*+#<>:._";
    if (l.len < 3 || !strchr(punct, l.s[0]))
        return 0;
    for (size_t i = 1; i < l.len; i++)
        if (l.s[i] != l.s[0])
            return 0;
    return l.s[0];
}

static size_t markup_trimmed_len(struct markup_line l)
{
    size_t a = 0, b = l.len;
    while (a < b && (l.s[a] == ' ' || l.s[a] == '\t'))
        a++;
    while (b > a && (l.s[b - 1] == ' ' || l.s[b - 1] == '\t'))
        b--;
    return b - a;
}

/* Level of an adornment style (char, overlined), numbered in order of first use. */
static int rst_level(char *styles, size_t *n_styles, char c, int over)
{
    char key = (char)(over ? c | 0x80 : c);
    for (size_t i = 0; i < *n_styles; i++)
        if (styles[i] == key)
            return (int)i + 1;
    if (*n_styles < 6)
        styles[(*n_styles)++] = key;
    return (int)*n_styles;
}

/* "## title" in place of the title's line, without the blank lines kb_docw_heading adds. */
static void markup_heading(struct kb_docw *w, int level, struct markup_line t)
{
    kb_docw_raw(w, "######", (size_t)level);
    kb_docw_raw(w, " ", 1);
    kb_docw_raw(w, t.s, t.len);
}

static void rst_convert(struct kb_docw *w, const char *text, size_t len)
{
    char styles[6];
    size_t n_styles = 0, pos = 0, next, next2, next3;
    while (pos < len && w->rc == 0) {
        struct markup_line l = markup_line_at(text, len, pos, &next);
        struct markup_line u = markup_line_at(text, len, next, &next2);
        char over = rst_adornment(l), under = rst_adornment(u);
        if (over && next < len) {   /* overline, title, underline */
            struct markup_line t = u, u2 = markup_line_at(text, len, next2, &next3);
            if (rst_adornment(u2) == over && markup_trimmed_len(t) &&
                !rst_adornment(t)) {
                kb_docw_raw(w, "\n", 1);
                markup_heading(w, rst_level(styles, &n_styles, over, 1), t);
                kb_docw_raw(w, "\n\n", 2);
                pos = next3;
                continue;
            }
        }
        if (!over && under && markup_trimmed_len(l) && u.len >= markup_trimmed_len(l)) {
            markup_heading(w, rst_level(styles, &n_styles, under, 0), l);
            kb_docw_raw(w, "\n\n", 2);
            pos = next2;
            continue;
        }
        kb_docw_raw(w, l.s, l.len);
        kb_docw_raw(w, "\n", 1);
        pos = next;
    }
}

static void org_convert(struct kb_docw *w, const char *text, size_t len)
{
    size_t pos = 0, next;
    while (pos < len && w->rc == 0) {
        struct markup_line l = markup_line_at(text, len, pos, &next);
        size_t stars = 0;
        while (stars < l.len && l.s[stars] == '*')
            stars++;
        if (stars && stars < l.len && l.s[stars] == ' ') {
            kb_docw_raw(w, "######", stars > 6 ? 6 : stars);
            kb_docw_raw(w, l.s + stars, l.len - stars);
        } else if (l.len && l.s[0] == '#' && (l.len == 1 || l.s[1] == ' ')) {
            ;   /* an Org comment: not exported, so not text (the line stays, blank) */
        } else {
            kb_docw_raw(w, l.s, l.len);
        }
        kb_docw_raw(w, "\n", 1);
        pos = next;
    }
}

int kb_markup_parse(struct kb_doc *doc, const char *text, size_t len, struct kb_err *err)
{
    struct kb_docw w;
    kb_docw_init(&w, doc);
    if (doc->kind == KB_DOC_RST)
        rst_convert(&w, text, len);
    else
        org_convert(&w, text, len);
    doc->markdown = 1;
    int rc = kb_docw_finish(&w, err);
    kb_docw_free(&w);
    return rc;
}
