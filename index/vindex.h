/* vindex.h — kb's vector index: chunk ids -> unit vectors, searched by inner product (FAISS). */
#ifndef KB_INDEX_VINDEX_H
#define KB_INDEX_VINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/*
 * A vector index maps chunk ids (int64) to L2-normalised float vectors of one dimension and
 * answers "the k stored vectors with the largest inner product with this query".
 *
 * Kinds (all three are FAISS indexes, and that is what the file holds):
 *  - KB_VINDEX_FLAT: exact. FAISS "IDMap2,Flat" stores the vectors; kb searches that storage
 *    with its own vectorised, multi-threaded kernel (Debian's FAISS 1.7.3 is scalar for single
 *    queries). Results are exact and deterministic: ties in score go to the smaller id.
 *  - KB_VINDEX_IVF: approximate. FAISS "IVF{nlist},Flat" (it keeps the ids itself); a query
 *    scans the nprobe lists whose centroids are closest.
 *  - KB_VINDEX_HNSW: approximate graph, FAISS "IDMap2,HNSW{m}". It cannot remove vectors.
 *
 * Threading: a kb_vindex is not locked. Any number of threads may search it at once (search is
 * read-only); add, remove and free need the index to themselves.
 */

enum kb_vindex_kind {
    KB_VINDEX_FLAT,
    KB_VINDEX_IVF,
    KB_VINDEX_HNSW
};

/* Up to this many stored floats (n_vectors * dim), kb_vindex_spec_auto chooses FLAT: exact
 * search of 120k x 384 vectors measured 6.6 ms p50 on this project's 2-core machine, against a
 * memory-bandwidth floor of 7.3 ms in the same run (bench/vindex.sh). */
#define KB_VINDEX_FLAT_MAX_FLOATS ((size_t)120000 * 384)

/*
 * What index to build. dim is the vector dimension. The other fields belong to one kind and
 * 0 means "choose from the number of vectors when building": nlist (IVF lists) and nprobe
 * (lists scanned per query) for IVF; hnsw_m (graph degree) and ef_search (search breadth)
 * for HNSW. kb records a spec with kb_vindex_spec_format and shows it in `kb status`.
 */
struct kb_vindex_spec {
    enum kb_vindex_kind kind;
    int dim;
    int nlist;
    int nprobe;
    int hnsw_m;
    int ef_search;
};

struct kb_vindex;

/* The size-based choice for n_vectors of dimension dim: FLAT up to KB_VINDEX_FLAT_MAX_FLOATS,
 * else IVF with nlist about 4 * sqrt(n_vectors) and nprobe = max(nlist / 16, 32) (which gives
 * recall@10 >= 0.95 against exact search on clustered data; see bench/vindex.sh). */
void kb_vindex_spec_auto(struct kb_vindex_spec *out, int dim, size_t n_vectors);

/* Fills the IVF or HNSW parameters that are 0 in spec, for n_vectors; FLAT has none. */
void kb_vindex_spec_resolve(struct kb_vindex_spec *spec, size_t n_vectors);

/*
 * Parses text as written by users and by kb_vindex_spec_format: "flat", "ivf",
 * "ivf:nlist=1024,nprobe=32", "hnsw", "hnsw:m=32,ef=64" (any subset of the keys, in any
 * order; omitted ones are 0 = automatic). "auto" is not a spec: callers handle it. Bad text
 * is KB_EINVALID with a message that quotes it.
 */
int kb_vindex_spec_parse(struct kb_vindex_spec *out, int dim, const char *text,
                         struct kb_err *err);

/* Writes spec as text that kb_vindex_spec_parse reads back (without dim), NUL-terminated.
 * Returns the length it needed, like snprintf; >= size means buf was too small. */
int kb_vindex_spec_format(const struct kb_vindex_spec *spec, char *buf, size_t size);

/*
 * Builds an index of the kind in spec from n vectors vecs (n, spec->dim) under ids[0..n).
 * Zero parameters in spec are resolved for n (kb_vindex_get_spec shows the result). IVF trains
 * its centroids on a deterministic sample of at most 50 * nlist of the vectors; FAISS wants
 * 39 per list, so nlist is lowered to n / 39 when n is small, and n < 39 is KB_EINVALID.
 * Ids must be distinct and not already stored (not checked for IVF; FAISS keeps duplicates).
 * *out belongs to the caller: kb_vindex_free. Errors: KB_EINVALID (spec), KB_ENOMEM, KB_ERROR
 * (FAISS failed; the message is FAISS's, on one line).
 */
int kb_vindex_build(struct kb_vindex **out, const struct kb_vindex_spec *spec,
                    const int64_t *ids, const float *vecs, size_t n, struct kb_err *err);

/* Adds n vectors (n, dim) under ids. Same errors as kb_vindex_build. */
int kb_vindex_add(struct kb_vindex *vi, const int64_t *ids, const float *vecs, size_t n,
                  struct kb_err *err);

/* Removes the vectors stored under ids[0..n) (ids not stored are ignored). An HNSW index
 * cannot remove: KB_EINVALID "... rebuild needed", and the index is unchanged. */
int kb_vindex_remove(struct kb_vindex *vi, const int64_t *ids, size_t n, struct kb_err *err);

/*
 * The k stored vectors with the largest inner product with query (dim floats), best first:
 * ids[0..*n_out) and scores[0..*n_out), where *n_out = min(k, what the index found) (all of
 * count for FLAT). ids and scores hold k entries. Errors: KB_EINVALID (k == 0 is fine: 0
 * results), KB_ENOMEM, KB_ERROR (FAISS).
 */
int kb_vindex_search(const struct kb_vindex *vi, const float *query, size_t k, int64_t *ids,
                     float *scores, size_t *n_out, struct kb_err *err);

/* Writes the index to path (created or replaced) and fsyncs it. The caller renames it into
 * place and fsyncs the directory. Errors: KB_EIO naming path. */
int kb_vindex_write(const struct kb_vindex *vi, const char *path, struct kb_err *err);

/*
 * Reads an index written by kb_vindex_write. Before FAISS sees the file, kb walks its whole
 * layout and checks every size against the file size, so a truncated, padded, foreign or
 * damaged file is an error with a message naming path (never a crash or a huge allocation):
 * missing = KB_ENOTFOUND, empty or not a FAISS index kb writes = KB_EFORMAT, inconsistent
 * sizes or fields = KB_ECORRUPT. The index must use inner product. When expect is not NULL,
 * its kind and dim must match the file's (else KB_ECORRUPT) and its nonzero nprobe / ef_search
 * are applied (FAISS does not keep every search parameter in the file).
 */
int kb_vindex_read(struct kb_vindex **out, const char *path,
                   const struct kb_vindex_spec *expect, struct kb_err *err);

/* Number of stored vectors; their dimension; the spec the index was built or read with (every
 * parameter resolved). */
size_t kb_vindex_count(const struct kb_vindex *vi);
int kb_vindex_dim(const struct kb_vindex *vi);
void kb_vindex_get_spec(const struct kb_vindex *vi, struct kb_vindex_spec *out);

/* Threads a FLAT search uses: n_threads >= 1, or 0 for the default (env KB_THREADS, else the
 * online CPUs). Not for use while another thread searches vi. */
void kb_vindex_set_threads(struct kb_vindex *vi, int n_threads);

/* Every stored id, in no particular order, into *ids (malloc'ed; the caller free()s it; NULL
 * when *n is 0). For `kb check`'s one-to-one test of vector ids against chunk ids. */
int kb_vindex_ids(const struct kb_vindex *vi, int64_t **ids, size_t *n, struct kb_err *err);

/* Frees vi and everything in it; NULL is a no-op. */
void kb_vindex_free(struct kb_vindex *vi);

#endif
