/* vectors.h — chunk embeddings in the store (the source of truth), the KB's settings, and the
 * record of the FAISS file built from the embeddings (a cache: index/vindex.h). */
#ifndef KB_INDEX_VECTORS_H
#define KB_INDEX_VECTORS_H

#include <stddef.h>
#include <stdint.h>

#include "index/store.h"

/* kb_meta: *value is malloc'ed; KB_ENOTFOUND when the key is absent. */
int kb_store_meta_get(struct kb_store *store, const char *key, char **value,
                      struct kb_err *err);
int kb_store_meta_set(struct kb_store *store, const char *key, const char *value,
                      struct kb_err *err);

/* The id of the row last inserted on this connection (a chunk just added). */
int64_t kb_store_last_id(struct kb_store *store);

/* Stores chunk_id's embedding (dim floats) and the hash of the text that was embedded. */
int kb_vectors_put(struct kb_store *store, int64_t chunk_id, const char *input_hash,
                   const float *vec, int dim, struct kb_err *err);

/* Finds a stored embedding of the same input (any chunk): 1 found (vec filled), 0 none. */
int kb_vectors_find_input(struct kb_store *store, const char *input_hash, float *vec, int dim,
                          struct kb_err *err);

/* Deletes every vector (a change of model); call inside a transaction. */
int kb_vectors_clear(struct kb_store *store, struct kb_err *err);

/* Every chunk's id, title, heading path and text (all malloc'ed), by id. */
int kb_store_chunk_texts(struct kb_store *store, int64_t **ids, char ***titles,
                         char ***headings, char ***texts, size_t *n, struct kb_err *err);

/* The number of chunks without a vector. */
int kb_vectors_missing(struct kb_store *store, int64_t *n, struct kb_err *err);

/* 1 when at least one vector is stored (constant time, unlike a count). */
int kb_vectors_any(struct kb_store *store, int64_t *any, struct kb_err *err);

/* The number of stored vectors. */
int kb_vectors_count(struct kb_store *store, int64_t *n, struct kb_err *err);

/* The chunk ids and input hashes of a document's vectors: *ids and *hashes (each string too)
 * are malloc'ed. */
int kb_vectors_of_document(struct kb_store *store, int64_t doc_id, int64_t **ids,
                           char ***hashes, size_t *n, struct kb_err *err);

/* How many times the vectors have changed (rises with every insert and delete). */
int kb_vectors_rev(struct kb_store *store, int64_t *rev, struct kb_err *err);

/* Every chunk id with a vector, ascending, and (when vecs is not NULL) the vectors in the same
 * order: *ids and *vecs are malloc'ed. A blob of the wrong size is KB_ECORRUPT naming the
 * chunk. */
int kb_vectors_all(struct kb_store *store, int dim, int64_t **ids, float **vecs, size_t *n,
                   struct kb_err *err);

/* Reads the vectors of ids[0..n) into vecs (n * dim); a missing one is KB_ENOTFOUND. */
int kb_vectors_get(struct kb_store *store, const int64_t *ids, size_t n, int dim, float *vecs,
                   struct kb_err *err);

/* The FAISS file the KB currently uses, as recorded in one row of vector_index. */
struct kb_vindex_record {
    int64_t generation;
    char file[128];           /* name inside the KB directory */
    char sha256[65];
    int64_t n_vectors;
    int dim;
    char spec[96];            /* kb_vindex_spec_format() */
    int64_t vectors_rev;      /* kb_vectors_rev() when it was built */
};

/* 1 and *out filled when a record exists, 0 when none. */
int kb_vindex_record_get(struct kb_store *store, struct kb_vindex_record *out,
                         struct kb_err *err);
/* Replaces the record; call inside a transaction. */
int kb_vindex_record_put(struct kb_store *store, const struct kb_vindex_record *rec,
                         struct kb_err *err);

/* Read transactions: a consistent snapshot across several reads (searching BM25 and vectors,
 * verifying). Nested calls are not allowed. */
int kb_store_read_begin(struct kb_store *store, struct kb_err *err);
void kb_store_read_end(struct kb_store *store);

/* The KB directory (borrowed). */
const char *kb_store_dir(const struct kb_store *store);

#endif
