/* csv.c — CSV/TSV/PSV tables as text a search can find: each row a block of "header: value". */
#include "ingest/doc_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CSV_MAX_FIELDS 4096

/* The delimiter that splits the first line most often (quotes respected). */
static char csv_delimiter(const char *text, size_t len)
{
    static const char cands[] = ",;\t|";
    size_t best_n = 0;
    char best = ',';
    for (const char *c = cands; *c; c++) {
        size_t n = 0;
        int quoted = 0;
        for (size_t i = 0; i < len && (quoted || text[i] != '\n'); i++) {
            if (text[i] == '"')
                quoted = !quoted;
            else if (!quoted && text[i] == *c)
                n++;
        }
        if (n > best_n) {
            best_n = n;
            best = *c;
        }
    }
    return best;
}

/* Reads one field starting at *pos into `out` (unquoted, "" -> "); returns 1 when the record
 * goes on after it, 0 when it ended the record (newline or end of text). */
static int csv_field(const char *text, size_t len, size_t *pos, char delim, struct kb_buf *out)
{
    size_t i = *pos;
    kb_buf_reset(out);
    int quoted = i < len && text[i] == '"';
    i += quoted;
    while (i < len) {
        char c = text[i];
        if (quoted && c == '"' && i + 1 < len && text[i + 1] == '"') {
            kb_buf_append(out, "\"", 1);
            i += 2;
        } else if (quoted && c == '"') {
            quoted = 0;
            i++;
        } else if (!quoted && (c == delim || c == '\n' || c == '\r')) {
            break;
        } else {
            kb_buf_append(out, &c, 1);
            i++;
        }
    }
    int more = i < len && text[i] == delim;
    if (i < len && text[i] == '\r')
        i++;
    if (i < len && (text[i] == '\n' || text[i] == delim))
        i++;
    *pos = i;
    return more;
}

/* Splits a record into a NUL-separated buffer of fields; returns the field count. */
static size_t csv_record(const char *text, size_t len, size_t *pos, char delim,
                         struct kb_buf *fields, struct kb_buf *field)
{
    size_t n = 0;
    kb_buf_reset(fields);
    int more = 1;
    while (more && *pos < len) {
        more = csv_field(text, len, pos, delim, field);
        if (n < CSV_MAX_FIELDS) {
            kb_buf_append(fields, field->data ? field->data : "", field->len);
            kb_buf_append(fields, "", 1);
            n++;
        }
    }
    return n;
}

static const char *csv_nth(const struct kb_buf *fields, size_t i)
{
    const char *p = fields->data;
    while (i--)
        p += strlen(p) + 1;
    return p;
}

int kb_csv_parse(struct kb_doc *doc, const char *text, size_t len, struct kb_err *err)
{
    struct kb_buf header = KB_BUF_INIT, fields = KB_BUF_INIT, field = KB_BUF_INIT;
    struct kb_docw w;
    kb_docw_init(&w, doc);
    char delim = doc->kind == KB_DOC_TSV ? '\t' : csv_delimiter(text, len);
    size_t pos = 0, n_head = csv_record(text, len, &pos, delim, &header, &field);
    char label[32];
    for (size_t row = 2; pos < len && w.rc == 0; row++) {
        size_t n = csv_record(text, len, &pos, delim, &fields, &field);
        if (n == 0 || (n == 1 && !*csv_nth(&fields, 0)))
            continue;
        kb_docw_break(&w);
        snprintf(label, sizeof label, "row %zu", row);
        kb_docw_mark(&w, 0, label);
        for (size_t i = 0; i < n; i++) {
            const char *v = csv_nth(&fields, i), *h = i < n_head ? csv_nth(&header, i) : "";
            if (!*v)
                continue;
            if (*h) {
                kb_docw_text(&w, h, strlen(h));
                kb_docw_text(&w, ": ", 2);
            }
            kb_docw_text(&w, v, strlen(v));
            kb_docw_newline(&w);
        }
    }
    /* A table with only a header row still says what its columns are. */
    for (size_t i = 0; w.buf.len == 0 && i < n_head; i++) {
        kb_docw_text(&w, csv_nth(&header, i), strlen(csv_nth(&header, i)));
        kb_docw_newline(&w);
    }
    int rc = kb_docw_finish(&w, err);
    kb_docw_free(&w);
    kb_buf_free(&header);
    kb_buf_free(&fields);
    kb_buf_free(&field);
    return rc;
}
