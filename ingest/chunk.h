/* chunk.h — splits a document's text into chunks for indexing: Markdown-aware (sections at
 * headings, never inside a fenced code block or table row when avoidable), then paragraphs,
 * sentences (PCRE2, JIT, under match limits), lines, words, and as a last resort UTF-8
 * characters, so that no chunk exceeds its target size in tokens. */
#ifndef KB_INGEST_CHUNK_H
#define KB_INGEST_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/tokcount.h"
#include "util/err.h"

enum kb_chunk_format {
    KB_CHUNK_TEXT = 0,     /* plain text: paragraphs, sentences, words */
    KB_CHUNK_MARKDOWN      /* CommonMark-ish: ATX and setext headings, fenced code blocks */
};

struct kb_chunk_options {
    unsigned target_tokens;   /* hard maximum per chunk, >= 8 */
    unsigned overlap_tokens;  /* tokens of the previous chunk of the same section repeated at
                               * the start of the next; < target_tokens / 2 */
    enum kb_chunk_format format;
    const struct kb_tokcounter *counter;
};

struct kb_chunk {
    size_t byte_start, byte_end;  /* [start, end) into the input; no leading/trailing whitespace */
    uint32_t line_start, line_end;/* 1-based, inclusive, of byte_start and byte_end - 1 */
    char *heading_path;           /* "Install › Linux" (U+203A between levels); "" outside any
                                   * heading; owned by the list */
    size_t n_tokens;              /* counter applied to exactly this byte range */
};

struct kb_chunk_list {
    struct kb_chunk *items;
    size_t count, alloc;
    char *title;                  /* Markdown: text of the first level-1 heading; else NULL */
};

/* Chunks text[0..len) (valid UTF-8). Whitespace-only or empty text gives zero chunks. Chunks
 * are in document order; every non-whitespace byte of the input lies in at least one chunk.
 * Returns 0, or KB_EINVALID (bad options) / KB_ENOMEM with err set. On failure `out` is left
 * empty. */
int kb_chunk_text(struct kb_chunk_list *out, const char *text, size_t len,
                  const struct kb_chunk_options *opts, struct kb_err *err);

/* kb_chunk_text with `match_limit` (0: the default, 200000) as the PCRE2 match limit of each
 * sentence search. A search that hits it turns sentence cuts off for the rest of the text,
 * which is then cut at lines and words: a limit never fails the chunking. Tests pass a tiny
 * limit to take that path. */
int kb_chunk_text_limited(struct kb_chunk_list *out, const char *text, size_t len,
                          const struct kb_chunk_options *opts, uint32_t match_limit,
                          struct kb_err *err);

/* Frees what the list holds and leaves it empty; the struct itself is the caller's. */
void kb_chunk_list_free(struct kb_chunk_list *list);

#endif
