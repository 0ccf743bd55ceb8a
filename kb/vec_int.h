/* vec_int.h — the facade's dense side (kb/vectors.c), shared with ingest.c, search.c, kb.c. */
#ifndef KB_VEC_INT_H
#define KB_VEC_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kb/kb.h"
#include "util/err.h"

struct kb_vindex;
struct kb_vindex_record;
struct kb_tokcounter;
struct vec_stashed;

/* A chunk waiting to be embedded before its transaction commits. */
struct kb_vec_item {
    int64_t chunk_id;
    char *input;           /* the exact text embedded */
    char hash[65];         /* its sha256: vectors.input_hash */
};

struct kb_vec_hit {
    int64_t chunk_id;
    float score;           /* inner product of unit vectors: cosine */
};

/* Per handle. The model and index are opened lazily and kept for the handle's life. */
struct kb_vec {
    int record_loaded;
    char *model_name;          /* the KB's model (kb_meta 'model'), NULL when it has none */
    char identity[65];
    int dim;
    kb_model *model;           /* open model (its identity checked against the record) */
    char open_identity[65];
    int lexical_only;          /* this ingest stores no vectors */
    const char *notice;        /* a one-line note for the user about this run, or NULL */
    struct kb_vec_item *queue;
    size_t n_queue, cap_queue;
    struct vec_stashed *stash; /* the vectors of the document being replaced, by input hash */
    size_t n_stash;
    size_t n_embedded, n_reused;
    size_t n_tokens;           /* model tokens embedded (for progress) */
    struct kb_vindex *vi;      /* for searching (read-only: it may be shared) */
    int vi_shared;             /* vi came from the process cache (util/shared.h) */
    int64_t vi_rev;
    char *published;           /* the generation file this run put in place (not committed) */
    char *superseded;          /* the file it replaces, removed once the run commits */
    struct kb_pending *pending; /* this run's new embeddings, kept across a crash (writer) */
    struct kb_err err;
};

/* Ingest: picks the model (requested, else the KB's, else the default when downloaded; "none"
 * for keyword-only) and records it in a KB that has none. */
int kb_vec_begin_ingest(kb *kb, const char *requested);
/* A run that only removes documents: reads the KB's model record (kb_vec_sync keeps the
 * vector index in step) without opening the model. */
int kb_vec_begin_delete(kb *kb);
/* 1 when this run embeds chunks. */
int kb_vec_active(const kb *kb);
/* The chunk size in the model's tokens (requested, capped by what the model takes) and the
 * WordPiece counter the chunker must use. */
int kb_vec_chunk_budget(kb *kb, unsigned requested, struct kb_tokcounter *counter,
                        unsigned *target);
/* Before a document is replaced: keeps its vectors by input hash for reuse. */
int kb_vec_stash_document(kb *kb, int64_t doc_id);
void kb_vec_stash_clear(kb *kb);
/* Queues a stored chunk for embedding (or stores a reused vector at once). */
int kb_vec_queue(kb *kb, int64_t chunk_id, const char *title, const char *heading,
                 const char *text, size_t len);
/* Embeds the queue and stores the vectors; call before committing the chunks' transaction. */
int kb_vec_flush(kb *kb);
/* Drops the queue and stash (after a rollback). */
void kb_vec_discard(kb *kb);
/* At the end of a run, inside its transaction: writes a FAISS generation matching the vectors
 * (spec_text forces a type) and records it, so it commits with the data it indexes. */
int kb_vec_sync(kb *kb, const char *spec_text);
/* Commits the run's transaction; then removes the generation file it superseded and, unless
 * keep_pending (a run stopped early, whose side file may still hold embeddings of files it
 * did not reach), the side file of pending embeddings. On failure rolls back as kb_vec_abort
 * does. */
int kb_vec_commit(kb *kb, int keep_pending);
/* Rolls the run's transaction back, removes the generation file it had put in place, drops
 * queued vectors, and forgets cached state read inside the transaction. */
void kb_vec_abort(kb *kb);
/* With the writer lock held: removes vectors.*.faiss files (and .tmp) other than the
 * recorded generation, left by a run that crashed before committing or cleaning up. */
void kb_vec_collect_garbage(kb *kb);
int kb_vec_open_generation(kb *kb, const struct kb_vindex_record *rec, struct kb_vindex **out);

/* Search: *has = 1 when the KB has a model and vectors. Non-zero (and kb's error) when that
 * cannot be read. */
int kb_vec_has_vectors(kb *kb, int *has);
/* The k nearest chunks to the query's embedding, best first, among the documents `filter`
 * (may be NULL) allows: with a filter, exact over the allowed chunks' stored vectors. *out is
 * malloc'ed. */
struct kb_filter;
int kb_vec_search(kb *kb, const char *query, size_t k, const struct kb_filter *filter,
                  struct kb_vec_hit **out, size_t *n_out);

/* kb check's vector part (KB_ECORRUPT naming the first problem). */
int kb_vec_check(kb *kb);

/* Fills the model and vector-index fields of kb_stat's answer. */
int kb_vec_stat(kb *kb, kb_status_info *out);

int kb_vec_cmp_id(const void *a, const void *b);
void kb_vec_close(kb *kb);

#endif
