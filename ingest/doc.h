/* doc.h — any document kb reads, turned into UTF-8 text with its structure: format by content
 * and extension, decoding, and the per-format parsers (HTML, XML, DOCX, ODT, EPUB, PDF, CSV,
 * RST, Org, email). Structured formats come out as Markdown-shaped text (ATX headings), so
 * the Markdown chunker finds their heading paths. */
#ifndef KB_INGEST_DOC_H
#define KB_INGEST_DOC_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/hash.h"

enum kb_doc_kind {
    KB_DOC_NONE = 0,   /* not a format kb reads (ignored) */
    KB_DOC_TEXT, KB_DOC_MARKDOWN, KB_DOC_HTML, KB_DOC_XML, KB_DOC_DOCX, KB_DOC_ODT,
    KB_DOC_EPUB, KB_DOC_PDF, KB_DOC_CSV, KB_DOC_TSV, KB_DOC_RST, KB_DOC_ORG, KB_DOC_EMAIL,
    KB_DOC_KIND_COUNT
};

/* The format a file's name claims (by extension, case-insensitive); KB_DOC_NONE otherwise. */
enum kb_doc_kind kb_doc_kind_of_path(const char *path);

/* "text", "markdown", "html", ... as stored in documents.format; NULL for KB_DOC_NONE. */
const char *kb_doc_kind_name(enum kb_doc_kind kind);
enum kb_doc_kind kb_doc_kind_parse(const char *name);

/* What the first bytes of a file are when they contradict its name: "PNG image", "zip
 * archive", "PDF document", ...; NULL when the content may be what `claimed` says. */
const char *kb_doc_sniff_mismatch(enum kb_doc_kind claimed, const char *head, size_t len);

/* A location mark: from byte `offset` of the text on, the text is on `page` (PDF, 1-based;
 * 0 for none) and/or in the part `label` names ("chapter 3: Winter", "sheet", ...). */
struct kb_doc_mark {
    size_t offset;
    uint32_t page;
    char *label;        /* owned; may be NULL */
};

struct kb_doc {
    char *text;          /* UTF-8, NUL-terminated; owned */
    size_t len;
    char hash[KB_SHA256_HEX_SIZE]; /* SHA-256 of the file's bytes */
    enum kb_doc_kind kind;
    int markdown;        /* chunk as Markdown: the text has ATX headings */
    char *title;         /* from the document's metadata; NULL when it has none */
    struct kb_doc_mark *marks;   /* ascending offsets */
    size_t n_marks, alloc_marks;
};

/* Reads and parses `path`, claimed to be `kind`, reading at most max_bytes and never more than
 * KB_TEXTFILE_MAX_BYTES (1 GiB; larger files are refused unread). The first 64 KiB are
 * sniffed before the rest is read: a signature that contradicts the name, or binary content
 * in a text-shaped format, refuses the file at that cost. The file is read through one
 * descriptor and refused when it changed meanwhile (ingest/textfile.h says how that is told).
 * Fails with err->msg a one-line reason that does not repeat the path:
 * KB_ENOMEM "larger than the N-byte limit", KB_EFORMAT "binary file (...)", "PNG image
 * named .txt", "not valid UTF-8 at line L, byte N (nor cp1252)", "empty file", "whitespace
 * only", "encrypted PDF", "zip bomb: ...", "no text", ...; KB_EIO with the system's reason or
 * "file changed while being read". */
int kb_doc_read(struct kb_doc *out, const char *path, enum kb_doc_kind kind, uint64_t max_bytes,
                struct kb_err *err);

/* Parses a document held in memory (all kinds but PDF, which needs a file). `name` is used
 * in messages only. Same errors as kb_doc_read. */
int kb_doc_parse(struct kb_doc *out, enum kb_doc_kind kind, const char *raw, size_t len,
                 struct kb_err *err);

/* The mark in force at byte `offset`, or NULL before the first. */
const struct kb_doc_mark *kb_doc_mark_at(const struct kb_doc *doc, size_t offset);

/* Adds a mark at the text's current end; 0 or KB_ENOMEM. */
int kb_doc_mark_add(struct kb_doc *doc, size_t offset, uint32_t page, const char *label);

void kb_doc_free(struct kb_doc *doc);

#endif
