/* doc.c — format detection (extension checked against content) and dispatch to the parsers. */
#include "ingest/doc_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest/decode.h"
#include "ingest/textfile.h"

static const struct {
    enum kb_doc_kind kind;
    const char *name;
    const char *ext;    /* space-separated, with dots */
} doc_kinds[] = {
    { KB_DOC_TEXT, "text", ".txt .text" },
    { KB_DOC_MARKDOWN, "markdown", ".md .markdown .mdown .mkd" },
    { KB_DOC_HTML, "html", ".html .htm .xhtml" },
    { KB_DOC_XML, "xml", ".xml .dbk .docbook" },
    { KB_DOC_DOCX, "docx", ".docx" },
    { KB_DOC_ODT, "odt", ".odt" },
    { KB_DOC_EPUB, "epub", ".epub" },
    { KB_DOC_PDF, "pdf", ".pdf" },
    { KB_DOC_CSV, "csv", ".csv .psv" },
    { KB_DOC_TSV, "tsv", ".tsv .tab" },
    { KB_DOC_RST, "rst", ".rst .rest" },
    { KB_DOC_ORG, "org", ".org" },
    { KB_DOC_EMAIL, "email", ".eml" },
};

enum kb_doc_kind kb_doc_kind_of_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (!dot || !dot[1] || strlen(dot) > 15)
        return KB_DOC_NONE;
    char want[20];
    size_t n = strlen(dot);
    for (size_t i = 0; i < sizeof doc_kinds / sizeof *doc_kinds; i++) {
        for (const char *e = doc_kinds[i].ext; *e;) {
            size_t len = strcspn(e, " ");
            if (len == n && !strncasecmp(e, dot, n))
                return doc_kinds[i].kind;
            e += len + (e[len] == ' ');
        }
    }
    (void)want;
    return KB_DOC_NONE;
}

const char *kb_doc_kind_name(enum kb_doc_kind kind)
{
    for (size_t i = 0; i < sizeof doc_kinds / sizeof *doc_kinds; i++)
        if (doc_kinds[i].kind == kind)
            return doc_kinds[i].name;
    return NULL;
}

enum kb_doc_kind kb_doc_kind_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof doc_kinds / sizeof *doc_kinds; i++)
        if (!strcmp(doc_kinds[i].name, name))
            return doc_kinds[i].kind;
    return KB_DOC_NONE;
}

/* Signatures of things people keep next to documents (and name wrongly). */
static const struct { const char *magic; size_t len; const char *what; } doc_magics[] = {
    { "\x89PNG\r\n\x1a\n", 8, "PNG image" }, { "\xFF\xD8\xFF", 3, "JPEG image" },
    { "GIF87a", 6, "GIF image" }, { "GIF89a", 6, "GIF image" }, { "%PDF-", 5, "PDF document" },
    { "PK\x03\x04", 4, "zip archive" }, { "PK\x05\x06", 4, "zip archive" },
    { "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8, "OLE2 (legacy Office) file" },
    { "\x7F" "ELF", 4, "ELF executable" }, { "\x1F\x8B", 2, "gzip file" },
    { "BZh", 3, "bzip2 file" }, { "\xFD" "7zXZ", 5, "xz file" }, { "7z\xBC\xAF", 4, "7z archive" },
    { "OggS", 4, "Ogg media" }, { "ID3", 3, "MP3 audio" }, { "RIFF", 4, "RIFF media" },
    { "SQLite format 3", 15, "SQLite database" }, { "{\\rtf", 5, "RTF document" },
};

const char *kb_doc_sniff_mismatch(enum kb_doc_kind claimed, const char *head, size_t len)
{
    const char *what = NULL;
    for (size_t i = 0; !what && i < sizeof doc_magics / sizeof *doc_magics; i++)
        if (len >= doc_magics[i].len && !memcmp(head, doc_magics[i].magic, doc_magics[i].len))
            what = doc_magics[i].what;
    if (!what)
        return claimed == KB_DOC_PDF || claimed == KB_DOC_DOCX || claimed == KB_DOC_ODT ||
               claimed == KB_DOC_EPUB ? "not the container its name says" : NULL;
    if (!strcmp(what, "PDF document") && claimed == KB_DOC_PDF)
        return NULL;
    if (!strcmp(what, "zip archive") &&
        (claimed == KB_DOC_DOCX || claimed == KB_DOC_ODT || claimed == KB_DOC_EPUB))
        return NULL;
    return what;
}

const struct kb_doc_mark *kb_doc_mark_at(const struct kb_doc *doc, size_t offset)
{
    size_t lo = 0, hi = doc->n_marks;   /* the last mark with mark.offset <= offset */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (doc->marks[mid].offset <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? &doc->marks[lo - 1] : NULL;
}

int kb_doc_mark_add(struct kb_doc *doc, size_t offset, uint32_t page, const char *label)
{
    if (doc->n_marks == doc->alloc_marks) {
        size_t na = doc->alloc_marks ? doc->alloc_marks * 2 : 16;
        struct kb_doc_mark *m = realloc(doc->marks, na * sizeof *m);
        if (!m)
            return KB_ENOMEM;
        doc->marks = m;
        doc->alloc_marks = na;
    }
    char *copy = label ? strdup(label) : NULL;
    if (label && !copy)
        return KB_ENOMEM;
    doc->marks[doc->n_marks++] = (struct kb_doc_mark){ offset, page, copy };
    return 0;
}

void kb_doc_free(struct kb_doc *doc)
{
    if (!doc)
        return;
    for (size_t i = 0; i < doc->n_marks; i++)
        free(doc->marks[i].label);
    free(doc->marks);
    free(doc->text);
    free(doc->title);
    memset(doc, 0, sizeof *doc);
}

/* Text-shaped formats: decode, check, then the format's own shaping. */
static int doc_parse_text(struct kb_doc *doc, enum kb_doc_kind kind, const char *raw,
                          size_t len, struct kb_err *err)
{
    char *text = NULL;
    size_t n = 0;
    int rc = len ? kb_decode_to_utf8(&text, &n, raw, len, NULL, KB_DOC_MAX_TEXT, err)
                 : kb_err_set(err, KB_EFORMAT, "empty file");
    if (rc == 0)
        rc = kb_text_check(text, n, err);
    if (rc == 0 && kind == KB_DOC_CSV)
        rc = kb_csv_parse(doc, text, n, err);
    else if (rc == 0 && kind == KB_DOC_TSV)
        rc = kb_csv_parse(doc, text, n, err);
    else if (rc == 0 && (kind == KB_DOC_RST || kind == KB_DOC_ORG))
        rc = kb_markup_parse(doc, text, n, err);
    else if (rc == 0) {
        doc->text = text;
        doc->len = n;
        doc->markdown = kind == KB_DOC_MARKDOWN;
        text = NULL;
    }
    free(text);
    return rc;
}

/* HTML: the charset from a BOM, else UTF-8 if it is, else a meta tag's, else cp1252. */
static int doc_parse_html(struct kb_doc *doc, const char *raw, size_t len, struct kb_err *err)
{
    char charset[40] = "", *text = NULL;
    size_t n = 0, scan = len < 4096 ? len : 4096;
    for (size_t i = 0; i + 8 < scan && !charset[0]; i++) {
        if (strncasecmp(raw + i, "charset=", 8))
            continue;
        size_t j = i + 8, k = 0;
        j += raw[j] == '"' || raw[j] == '\'';
        while (j < scan && k + 1 < sizeof charset && strchr("abcdefghijklmnopqrstuvwxyz"
               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:.", raw[j]) && raw[j])
            charset[k++] = raw[j++];
        charset[k] = '\0';
    }
    int rc = kb_decode_to_utf8(&text, &n, raw, len, charset[0] ? charset : NULL,
                               KB_DOC_MAX_TEXT, err);
    if (rc == 0) {
        struct kb_docw w;
        kb_docw_init(&w, doc);
        rc = kb_html_emit(&w, text, n, 0, KB_HTML_PAGE, err);
        rc = rc ? rc : kb_docw_finish(&w, err);
        kb_docw_free(&w);
        doc->markdown = 1;
    }
    free(text);
    return rc;
}

int kb_doc_parse(struct kb_doc *out, enum kb_doc_kind kind, const char *raw, size_t len,
                 struct kb_err *err)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    const char *what = kb_doc_sniff_mismatch(kind, raw, len);
    int rc;
    if (len == 0)
        rc = kb_err_set(err, KB_EFORMAT, "empty file");
    else if (what && !strncmp(what, "not the", 7))
        rc = kb_err_set(err, KB_EFORMAT, "not a %s file (no zip signature)", kb_doc_kind_name(kind));
    else if (what)
        rc = kb_err_set(err, KB_EFORMAT, "binary file (%s, not %s)", what, kb_doc_kind_name(kind));
    else if (kind == KB_DOC_HTML)
        rc = doc_parse_html(out, raw, len, err);
    else if (kind == KB_DOC_XML)
        rc = kb_xml_parse(out, raw, len, err);
    else if (kind == KB_DOC_DOCX || kind == KB_DOC_ODT || kind == KB_DOC_EPUB)
        rc = kb_zipdoc_parse(out, kind, raw, len, err);
    else if (kind == KB_DOC_EMAIL)
        rc = kb_email_parse(out, raw, len, err);
    else if (kind == KB_DOC_PDF || kind == KB_DOC_NONE)
        rc = kb_err_set(err, KB_EINVALID, "%s cannot be parsed from memory",
                        kind ? "PDF" : "an unknown format");
    else
        rc = doc_parse_text(out, kind, raw, len, err);
    if (rc)
        kb_doc_free(out);
    out->kind = kind;
    return rc;
}

/* A file's first bytes, before the rest is read: a signature that contradicts the name, or
 * binary content where text is expected, refuses it with the reason kb_doc_parse would give,
 * so that a huge binary file costs one 64 KiB read. */
static int doc_sniff(const char *head, size_t len, void *payload, struct kb_err *err)
{
    enum kb_doc_kind kind = *(const enum kb_doc_kind *)payload;
    const char *what = len ? kb_doc_sniff_mismatch(kind, head, len) : NULL;
    char why[128];
    if (what && kind == KB_DOC_PDF)
        return kb_err_set(err, KB_EFORMAT, "not a PDF file (%s)", what);
    if (what && !strncmp(what, "not the", 7))
        return kb_err_set(err, KB_EFORMAT, "not a %s file (no zip signature)", kb_doc_kind_name(kind));
    if (what)
        return kb_err_set(err, KB_EFORMAT, "binary file (%s, not %s)", what, kb_doc_kind_name(kind));
    if (kind == KB_DOC_DOCX || kind == KB_DOC_ODT || kind == KB_DOC_EPUB || kind == KB_DOC_PDF)
        return 0;
    /* The same verdict as on the whole file: a NUL here is the file's first NUL, and the
     * control-byte share is taken over these same first 64 KiB. */
    if (kb_decode_binary_reason(head, len, why, sizeof why))
        return kb_err_set(err, KB_EFORMAT, "%s", why);
    return 0;
}

int kb_doc_read(struct kb_doc *out, const char *path, enum kb_doc_kind kind, uint64_t max_bytes,
                struct kb_err *err)
{
    struct kb_textfile file;
    int rc = kb_textfile_read_sniffed(&file, path, max_bytes, doc_sniff, &kind, err);
    if (rc) {
        memset(out, 0, sizeof *out);
        out->kind = kind;
        return rc;
    }
    if (kind == KB_DOC_PDF) {
        memset(out, 0, sizeof *out);
        out->kind = kind;
        rc = file.len ? kb_pdf_read(out, path, KB_DOC_MAX_TEXT, err)
                      : kb_err_set(err, KB_EFORMAT, "empty file");
        if (rc)
            kb_doc_free(out);
    } else {
        rc = kb_doc_parse(out, kind, file.data, file.len, err);
    }
    if (rc == 0)
        memcpy(out->hash, file.hash, sizeof out->hash);
    kb_textfile_free(&file);
    return rc;
}
