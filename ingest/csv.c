/* csv.c — CSV/TSV/PSV tables as text a search can find: each row a block of "header: value". */
#include "ingest/doc_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CSV_MAX_FIELDS 4096
#define CSV_MAX_TITLE_ROWS 3   /* title lines above a header that are looked past */

/* How often delimiter `c` splits the line at text[*pos] (quotes respected); *pos moves to the
 * next line. */
static size_t csv_count_in_line(const char *text, size_t len, size_t *pos, char c)
{
    size_t n = 0, i = *pos;
    int quoted = 0;
    for (; i < len && (quoted || text[i] != '\n'); i++) {
        if (text[i] == '"')
            quoted = !quoted;
        else if (!quoted && text[i] == c)
            n++;
    }
    *pos = i + (i < len);
    return n;
}

/* The delimiter that splits the first line most often; when the first lines hold no candidate
 * at all (a title above the table), the first line that does decides. */
static char csv_delimiter(const char *text, size_t len)
{
    static const char cands[] = ",;\t|";
    size_t line_at = 0;
    for (int line = 0; line < CSV_MAX_TITLE_ROWS + 1 && line_at < len; line++) {
        size_t best_n = 0, next = line_at;
        char best = ',';
        for (const char *c = cands; *c; c++) {
            size_t pos = line_at, n = csv_count_in_line(text, len, &pos, *c);
            next = pos;
            if (n > best_n) {
                best_n = n;
                best = *c;
            }
        }
        if (best_n)
            return best;
        line_at = next;
    }
    return ',';
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

/* Cells of a record that are not empty. */
static size_t csv_filled(const struct kb_buf *fields, size_t n, const char **first)
{
    size_t filled = 0;
    *first = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *v = csv_nth(fields, i);
        if (*v && !filled++)
            *first = v;
    }
    return filled;
}

/* Reads the header record. A spreadsheet saved as CSV often has a title above its table
 * ("Stanley Cups,," over "Team,Location,Stanley Cups"): leading records with at most one
 * filled cell, followed by a record with two or more, are title rows. Their text goes into
 * *title (NUL-separated, may stay empty) and the wider record is the header. Returns the
 * header's field count; *row is the header's 1-based row number. */
static size_t csv_header(const char *text, size_t len, size_t *pos, char delim,
                         struct kb_buf *header, struct kb_buf *field, struct kb_buf *title,
                         size_t *row)
{
    const char *first;
    size_t n = 0;
    for (size_t at = 0, skipped = 0; skipped <= CSV_MAX_TITLE_ROWS; skipped++) {
        n = csv_record(text, len, &at, delim, header, field);
        if (csv_filled(header, n, &first) >= 2 && skipped > 0) {
            *pos = at;
            *row = skipped + 1;
            return n;
        }
        if (at >= len || csv_filled(header, n, &first) >= 2)
            break;
        if (first) {
            kb_buf_append(title, first, strlen(first));
            kb_buf_append(title, "", 1);
        }
    }
    kb_buf_reset(title);   /* no wider record below: the first record is the header */
    *pos = 0;
    *row = 1;
    return csv_record(text, len, pos, delim, header, field);
}

/* One data row as "header: value" lines; a column without a header is "column N". */
static void csv_row(struct kb_docw *w, const struct kb_buf *header, size_t n_head,
                    const struct kb_buf *fields, size_t n)
{
    char label[32];
    for (size_t i = 0; i < n; i++) {
        const char *v = csv_nth(fields, i), *h = i < n_head ? csv_nth(header, i) : "";
        if (!*v)
            continue;
        if (!*h) {
            snprintf(label, sizeof label, "column %zu", i + 1);
            h = label;
        }
        kb_docw_text(w, h, strlen(h));
        kb_docw_text(w, ": ", 2);
        kb_docw_text(w, v, strlen(v));
        kb_docw_newline(w);
    }
}

int kb_csv_parse(struct kb_doc *doc, const char *text, size_t len, struct kb_err *err)
{
    struct kb_buf header = KB_BUF_INIT, fields = KB_BUF_INIT, field = KB_BUF_INIT;
    struct kb_buf title = KB_BUF_INIT;
    struct kb_docw w;
    kb_docw_init(&w, doc);
    char delim = doc->kind == KB_DOC_TSV ? '\t' : csv_delimiter(text, len);
    size_t pos = 0, head_row = 1;
    size_t n_head = csv_header(text, len, &pos, delim, &header, &field, &title, &head_row);
    /* The title rows open the text, marked as the rows they are, and name the document. */
    if (title.len)
        kb_docw_mark(&w, 0, "row 1");
    for (size_t at = 0; at < title.len; at += strlen(title.data + at) + 1) {
        kb_docw_text(&w, title.data + at, strlen(title.data + at));
        kb_docw_break(&w);
    }
    if (title.len && !doc->title)
        doc->title = strdup(title.data);
    char label[32];
    for (size_t row = head_row + 1; pos < len && w.rc == 0; row++) {
        size_t n = csv_record(text, len, &pos, delim, &fields, &field);
        if (n == 0 || (n == 1 && !*csv_nth(&fields, 0)))
            continue;
        kb_docw_break(&w);
        snprintf(label, sizeof label, "row %zu", row);
        kb_docw_mark(&w, 0, label);
        csv_row(&w, &header, n_head, &fields, n);
    }
    /* A table with only a header row still says what its columns are. */
    for (size_t i = 0; doc->n_marks == 0 && i < n_head; i++) {
        kb_docw_text(&w, csv_nth(&header, i), strlen(csv_nth(&header, i)));
        kb_docw_newline(&w);
    }
    int rc = kb_docw_finish(&w, err);
    kb_docw_free(&w);
    kb_buf_free(&header);
    kb_buf_free(&fields);
    kb_buf_free(&field);
    kb_buf_free(&title);
    return rc;
}
