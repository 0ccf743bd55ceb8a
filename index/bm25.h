/* bm25.h — an in-memory copy of the FTS5 index's statistics for exact, fast BM25 top-k.
 *
 * FTS5's bm25() scores every row matching any term of an OR query (~45k rows for a SciFact
 * claim at 100k chunks). This index holds the same terms (made by FTS5's own tokenizer, so
 * they are identical), their postings with per-column counts, and each chunk's length, and
 * finds the top k with MaxScore (Turtle & Flood 1995): lists whose terms cannot lift a chunk
 * into the top k on their own are only probed, never walked. Scores are FTS5's bm25() to the
 * last bits, ties go to the smaller chunk id, as in the FTS5 path (index/lexical.c).
 *
 * An index is immutable once built and may be read by several threads at once.
 */
#ifndef KB_INDEX_BM25_H
#define KB_INDEX_BM25_H

#include <stddef.h>
#include <stdint.h>

#include "index/lexical.h"
#include "index/store.h"

struct kb_bm25;

/* The chunk set's revision: a counter bumped on every insert, update and delete of a chunk
 * (kb_meta 'chunks_rev', kept by triggers). */
int kb_bm25_chunks_rev(struct kb_store *store, int64_t *rev, struct kb_err *err);

/* Builds the index from every chunk in store (run it inside a read transaction, with
 * kb_bm25_chunks_rev, so both describe the same snapshot). *out is freed with kb_bm25_free. */
int kb_bm25_build(struct kb_store *store, struct kb_bm25 **out, struct kb_err *err);
void kb_bm25_free(struct kb_bm25 *index);

/* Queries are tokenized by FTS5 on store's connection (any handle of the KB: the tokenizer is
 * made per call, as it keeps scratch space and is not safe to share between threads). */

/* kb_lexical_prune's answer, from the index's document frequencies: the same expression, or
 * NULL when nothing was left out. Returns 1 (nothing set) when some term of match is not a
 * single token — kb_lexical_prune and kb_lexical_search must then answer. */
int kb_bm25_prune(const struct kb_bm25 *index, struct kb_store *store, const char *match,
                  char **out, struct kb_err *err);

/* kb_lexical_search's answer without a filter (the same hits, order and scores), or 1 (nothing
 * set) when some term of match is not a single token (a phrase: the FTS5 path answers). */
int kb_bm25_search(const struct kb_bm25 *index, struct kb_store *store, const char *match,
                   size_t k, int group_by_doc, struct kb_lexical_hit **out, size_t *n_out,
                   struct kb_err *err);

#endif
