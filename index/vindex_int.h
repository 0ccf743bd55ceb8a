/* vindex_int.h — private to the vector index: its struct, the exact-search kernel, file checks. */
#ifndef KB_INDEX_VINDEX_INT_H
#define KB_INDEX_VINDEX_INT_H

#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>

#include "index/vindex.h"

struct kb_vindex {
    struct kb_vindex_spec spec; /* every parameter resolved */
    FaissIndex *index;          /* owns everything below */
    FaissIndexIDMap2 *map;      /* FLAT, HNSW: index itself; NULL for IVF */
    FaissIndexFlat *flat;       /* FLAT: the rows the map wraps */
    FaissIndexIVF *ivf;         /* IVF: index itself */
    int n_threads;              /* for FLAT search, >= 1 */
};

/*
 * Exact top-k by inner product over rows (n_rows, dim) whose ids are row_ids, split over up to
 * n_threads threads: ids/scores get min(k, n_rows) results, best first, ties to the smaller
 * id. Deterministic: every row's score is computed the same way whatever the split or the CPU.
 * Returns 0, or KB_ENOMEM / KB_ERROR (a thread could not start) with err set.
 */
int kb_vindex_scan_top_k(const float *rows, const int64_t *row_ids, size_t n_rows, int dim,
                         const float *query, size_t k, int n_threads, int64_t *ids,
                         float *scores, size_t *n_out, struct kb_err *err);

/* Inner product of a and b (dim floats) exactly as kb_vindex_scan_top_k computes it. */
float kb_vindex_scan_dot(const float *a, const float *b, int dim);

/* What kb_vindex_file_check found in a file. */
struct kb_vindex_file_info {
    struct kb_vindex_spec spec; /* kind, dim and the parameters the file keeps */
    size_t n_vectors;
};

/*
 * Walks the FAISS file at path as FAISS 1.7.3 would read it, for the layouts kb writes
 * (IDMap2 over IndexFlatIP, IndexIVFFlat, IDMap2 over IndexHNSWFlat), checking every size
 * against the file and the HNSW graph's links against the number of vectors, so that reading
 * it cannot overrun, allocate more than the file holds, or crash a search. Errors as in
 * kb_vindex_read.
 */
int kb_vindex_file_check(const char *path, struct kb_vindex_file_info *out,
                         struct kb_err *err);

#endif
