/* docw.c — the Markdown-shaped text writer the document parsers share. */
#include "ingest/doc_int.h"

#include <string.h>

void kb_docw_init(struct kb_docw *w, struct kb_doc *doc)
{
    memset(w, 0, sizeof *w);
    w->buf.max = KB_DOC_MAX_TEXT;
    w->doc = doc;
}

static void docw_put(struct kb_docw *w, const char *s, size_t n)
{
    if (w->rc == 0)
        w->rc = kb_buf_append(&w->buf, s, n);
}

static int docw_at_line_start(const struct kb_docw *w)
{
    return w->buf.len == 0 || w->buf.data[w->buf.len - 1] == '\n';
}

static int docw_is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

void kb_docw_text(struct kb_docw *w, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && w->rc == 0) {
        size_t run = strcspn(s + i, " \t\r\n\f\v");
        if (run > n - i)
            run = n - i;
        if (run) {
            if (w->space && !docw_at_line_start(w))
                docw_put(w, " ", 1);
            w->space = 0;
            docw_put(w, s + i, run);
            i += run;
        }
        while (i < n && docw_is_space(s[i])) {
            w->space = 1;
            i++;
        }
        if (i < n && !s[i])   /* a NUL never enters the text */
            i++;
    }
}

void kb_docw_newline(struct kb_docw *w)
{
    w->space = 0;
    if (!docw_at_line_start(w))
        docw_put(w, "\n", 1);
}

void kb_docw_break(struct kb_docw *w)
{
    kb_docw_newline(w);
    size_t n = w->buf.len;
    if (n >= 1 && !(n >= 2 && w->buf.data[n - 2] == '\n'))
        docw_put(w, "\n", 1);
}

void kb_docw_raw(struct kb_docw *w, const char *s, size_t n)
{
    w->space = 0;
    for (size_t i = 0; i < n;) {   /* spans between the CRs and NULs that are left out */
        size_t run = 0;
        while (i + run < n && s[i + run] != '\r' && s[i + run] != '\0')
            run++;
        docw_put(w, s + i, run);
        i += run + 1;
    }
}

void kb_docw_heading(struct kb_docw *w, int level)
{
    level = level < 1 ? 1 : level > 6 ? 6 : level;
    kb_docw_break(w);
    if (!w->n_headings++) {
        w->first_level = level;
        w->first_at = w->buf.len;
    }
    if (!w->min_level || level < w->min_level) {
        w->min_level = level;
        w->min_at = w->buf.len;
    }
    docw_put(w, "######", (size_t)level);
    docw_put(w, " ", 1);
    w->space = 0;
}

void kb_docw_blocks(struct kb_docw *w, const char *text, size_t n)
{
    kb_docw_break(w);
    docw_put(w, text, n);
    kb_docw_break(w);
}

void kb_docw_reopen_line(struct kb_docw *w)
{
    while (w->buf.len && w->buf.data[w->buf.len - 1] == '\n')
        w->buf.data[--w->buf.len] = '\0';
    w->space = 0;
}

void kb_docw_mark(struct kb_docw *w, uint32_t page, const char *label)
{
    if (w->rc == 0)
        w->rc = kb_doc_mark_add(w->doc, w->buf.len, page, label);
}

int kb_docw_finish(struct kb_docw *w, struct kb_err *err)
{
    if (w->rc)
        return kb_err_set(err, w->rc, "text larger than %zu bytes", w->buf.max);
    size_t i = 0;
    while (i < w->buf.len && strchr(" \t\r\n\f\v#", w->buf.data[i]))
        i++;
    if (i == w->buf.len)
        return kb_err_set(err, KB_EFORMAT, "no text");
    w->doc->len = w->buf.len;
    w->doc->text = kb_buf_detach(&w->buf);
    return 0;
}

void kb_docw_free(struct kb_docw *w)
{
    kb_buf_free(&w->buf);
}
