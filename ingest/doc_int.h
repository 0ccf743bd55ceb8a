/* doc_int.h — private to ingest/: the text writer the parsers share, and the parsers. */
#ifndef KB_INGEST_DOC_INT_H
#define KB_INGEST_DOC_INT_H

#include "ingest/doc.h"
#include "util/buf.h"

/* Most bytes of text one document may produce. */
#define KB_DOC_MAX_TEXT ((size_t)256 << 20)

/* Builds Markdown-shaped text: runs of whitespace fold to one space, blocks are separated by
 * one blank line, headings are ATX lines. Errors are sticky: once rc is set (KB_ENOMEM at
 * the cap) further calls do nothing, and the parser returns rc at the end. */
struct kb_docw {
    struct kb_buf buf;
    struct kb_doc *doc;
    int space;          /* whitespace seen and not yet written */
    int rc;
    size_t n_headings;  /* headings written so far; the first one's level and offset, and */
    int first_level;    /* the smallest level written and where its first heading starts */
    size_t first_at;
    int min_level;
    size_t min_at;
};

void kb_docw_init(struct kb_docw *w, struct kb_doc *doc);
void kb_docw_text(struct kb_docw *w, const char *s, size_t n);    /* inline text */
void kb_docw_break(struct kb_docw *w);                             /* end of a block */
void kb_docw_newline(struct kb_docw *w);                           /* end of a line (rows, <br>) */
void kb_docw_raw(struct kb_docw *w, const char *s, size_t n);     /* verbatim (pre, code) */
/* Starts a heading line "### " for `level` (1-6); the caller writes its text, then breaks. */
void kb_docw_heading(struct kb_docw *w, int level);
/* Appends whole blocks of text another writer produced (a blank line before and after). */
void kb_docw_blocks(struct kb_docw *w, const char *text, size_t n);
/* Removes the line breaks ending the text, so that the next text continues its last line. */
void kb_docw_reopen_line(struct kb_docw *w);
void kb_docw_mark(struct kb_docw *w, uint32_t page, const char *label);
/* Moves the text into w->doc (text, len); KB_EFORMAT "no text" when it is blank. */
int kb_docw_finish(struct kb_docw *w, struct kb_err *err);
void kb_docw_free(struct kb_docw *w);

/* What an HTML text is part of: a web page (or an email), whose <header> and <footer>
 * outside any article, section or main are site chrome and dropped; or an EPUB chapter, which
 * has no site around it, so that all its headers and footers are text. */
enum kb_html_mode {
    KB_HTML_PAGE,
    KB_HTML_CHAPTER
};

/* HTML (any charset; `charset` from a BOM or meta already applied: input is UTF-8). Headings
 * are shifted down by `level_shift`. Fills w's text and, when the page has one, doc->title. */
int kb_html_emit(struct kb_docw *w, const char *utf8, size_t len, int level_shift,
                 enum kb_html_mode mode, struct kb_err *err);
/* Generic XML and DocBook, parsed with network, DTDs and entity substitution off. */
int kb_xml_parse(struct kb_doc *doc, const char *raw, size_t len, struct kb_err *err);
/* Parses XML with the same safe options; returns an xmlDoc* (opaque here: the caller, a
 * parser that includes libxml2, frees it with xmlFreeDoc), or NULL with err set. */
void *kb_xml_read_safe(const char *raw, size_t len, struct kb_err *err);
/* DOCX, ODT and EPUB, read from the zip in memory under size caps. */
int kb_zipdoc_parse(struct kb_doc *doc, enum kb_doc_kind kind, const char *raw, size_t len,
                    struct kb_err *err);
/* PDF through the pdftotext program (poppler-utils), one mark per page. */
int kb_pdf_read(struct kb_doc *doc, const char *path, size_t max_text, struct kb_err *err);
/* CSV/TSV/PSV: each row as "header: value" lines. */
int kb_csv_parse(struct kb_doc *doc, const char *text, size_t len, struct kb_err *err);
/* RST and Org: headings rewritten as ATX lines, line count kept. */
int kb_markup_parse(struct kb_doc *doc, const char *text, size_t len, struct kb_err *err);
/* Simple RFC 5322 / MIME email: headers, text/plain (or text/html) parts. */
int kb_email_parse(struct kb_doc *doc, const char *raw, size_t len, struct kb_err *err);

#endif
