/* beir.h — reads a BEIR dataset (corpus, queries, qrels) and scores ranked runs against it. */
#ifndef KB_CLI_BEIR_H
#define KB_CLI_BEIR_H

#include <stddef.h>

struct beir_doc { char *id, *title, *text; };
struct beir_query { char *id, *text; };
struct beir_qrel { char *query_id, *doc_id; int relevance; };

struct beir {
    struct beir_doc *docs;       size_t n_docs;
    struct beir_query *queries;  size_t n_queries;
    struct beir_qrel *qrels;     size_t n_qrels;   /* sorted by query_id */
};

/* Loads DIR/corpus.jsonl[.gz], DIR/queries.jsonl[.gz] and DIR/qrels/SPLIT.tsv. On failure
 * returns non-zero with a one-line message naming the file and line in errbuf. */
int beir_load(struct beir *out, const char *dir, const char *split, char *errbuf,
              size_t errsize);
void beir_free(struct beir *b);

/* The qrels of one query (a slice of b->qrels); NULL/0 when it has none. */
const struct beir_qrel *beir_qrels_of(const struct beir *b, const char *query_id, size_t *n);

/* Metrics of one ranked list of document ids against a query's qrels. */
struct beir_scores { double ndcg10, recall100, mrr10; };
void beir_score(const struct beir_qrel *qrels, size_t n_qrels, const char *const *ranked,
                size_t n_ranked, struct beir_scores *out);

#endif
