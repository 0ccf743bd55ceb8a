/* lexical.h — BM25 retrieval over the FTS5 index, taking plain user text as the query. */
#ifndef KB_INDEX_LEXICAL_H
#define KB_INDEX_LEXICAL_H

#include <stddef.h>
#include <stdint.h>

#include "index/store.h"

/* FTS5 column weights for bm25(chunks_fts, text, title, heading_path), chosen on the SciFact
 * train split (docs/BENCHMARKS.md). The in-memory index (index/bm25.h) uses them too. */
#define KB_LEXICAL_W_TEXT 1.0
#define KB_LEXICAL_W_TITLE 1.0
#define KB_LEXICAL_W_HEADING 1.0

/* Query terms matching more than this fraction of the chunks are left out of the ranking query
 * (kept when they are all that common): FTS5's bm25() costs time for every matching row, and
 * such terms add little to the ranking. Measured on SciFact: docs/BENCHMARKS.md. */
#ifndef KB_LEXICAL_COMMON_FRACTION
#define KB_LEXICAL_COMMON_FRACTION 0.2
#endif

/* Turns user text into an FTS5 MATCH expression: each distinct word (a run of letters,
 * digits and marks) becomes a quoted term, English stopwords are dropped (unless nothing
 * else is left), and the terms are OR-ed so BM25 ranks by how many and how rare the matches
 * are. *out is NULL when the text has no words. Caller frees *out. */
int kb_lexical_query(char **out, const char *text, struct kb_err *err);

/* The match expression without the terms that occur in more than a fifth of the chunks (kept
 * when all of them are that common): FTS5's bm25() costs time for every matching row and such
 * terms add little to a ranking. *out is malloc'ed, or NULL when nothing was left out. */
int kb_lexical_prune(struct kb_store *store, const char *match, char **out,
                     struct kb_err *err);

/* kb_lexical_prune's rule for a KB of n_chunks chunks, with df(i, term, len, payload)
 * giving the number of chunks that contain quoted term i of match (negative: leave it out). */
typedef int64_t (*kb_lexical_df_fn)(size_t i, const char *term, size_t len, void *payload);
int kb_lexical_prune_by(const char *match, int64_t n_chunks, kb_lexical_df_fn df,
                        void *payload, char **out, struct kb_err *err);

struct kb_lexical_hit {
    int64_t chunk_id, doc_id;
    double score;  /* -bm25: higher is better */
};

/* The k best chunks for `match` (from kb_lexical_query) — or, with group_by_doc, the k best
 * documents, each represented by its best chunk — among the documents `filter` (may be NULL)
 * allows. *out is malloc'ed (free()), *n_out ≤ k. */
int kb_lexical_search(struct kb_store *store, const char *match, size_t k, int group_by_doc,
                      const struct kb_filter *filter, struct kb_lexical_hit **out,
                      size_t *n_out, struct kb_err *err);

/* A chunk's stored fields, for presenting a hit. Strings are malloc'ed (free each). */
struct kb_lexical_row {
    char *path, *title, *heading_path, *format, *text, *snippet, *location;
    char *meta;                 /* the document's metadata (JSON object text), NULL for none */
    uint64_t byte_start, byte_end;
    uint32_t line_start, line_end, page;
    int64_t doc_id;
};

/* Reads chunk_id's fields; the snippet marks matches of `match` (may be NULL) with
 * hl_open/hl_close, or is the passage's opening when the chunk does not match. */
int kb_lexical_fetch(struct kb_store *store, const char *match, int64_t chunk_id,
                     const char *hl_open, const char *hl_close, struct kb_lexical_row *out,
                     struct kb_err *err);
void kb_lexical_row_free(struct kb_lexical_row *row);

/* FTS5 keeps its index as segments, and each write transaction adds at least one; a lookup
 * reads every segment, so a result's marked snippet (a MATCH on one row) costs ~0.33 ms with
 * the 24 segments a 110k-chunk ingest leaves and ~0.08 ms with one (docs/BENCHMARKS.md).
 * Writers merge the index into one segment when it is spread over more than this many. */
#define KB_LEXICAL_MAX_SEGMENTS 8

/* The number of segments of the full-text index (0 when empty); -1 when its structure record
 * cannot be read (a future FTS5 format). */
int kb_lexical_segments(struct kb_store *store, int64_t *out, struct kb_err *err);

/* Inside a write transaction: merges the full-text index into one segment (FTS5 'optimize')
 * when it has more than max_segments. Rolls back with the transaction. */
int kb_lexical_compact(struct kb_store *store, int max_segments, struct kb_err *err);

#endif
