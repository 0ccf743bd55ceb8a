/* vindex.c — the vector index over FAISS's C API: specs, build, add/remove, search, files. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include "index/vindex_int.h"
#include "util/threads.h"

#define VINDEX_MIN_PER_LIST 39   /* FAISS's k-means warns (on stderr) below this many per list */
#define VINDEX_TRAIN_PER_LIST 50 /* training sample: at most this many vectors per list */
#define VINDEX_MAX_NLIST 65536
#define VINDEX_HNSW_M 32
#define VINDEX_HNSW_EF 64

/* ---- specs ------------------------------------------------------------------------------ */

void kb_vindex_spec_resolve(struct kb_vindex_spec *spec, size_t n_vectors)
{
    if (spec->kind == KB_VINDEX_IVF) {
        if (spec->nlist <= 0) {
            double nlist = 4 * sqrt((double)n_vectors);
            spec->nlist = nlist < 16 ? 16 : nlist > VINDEX_MAX_NLIST ? VINDEX_MAX_NLIST
                                                                     : (int)lround(nlist);
        }
        if (spec->nprobe <= 0)
            spec->nprobe = spec->nlist / 16 > 32 ? spec->nlist / 16 : 32;
        if (spec->nprobe > spec->nlist)
            spec->nprobe = spec->nlist;
    } else if (spec->kind == KB_VINDEX_HNSW) {
        if (spec->hnsw_m <= 0)
            spec->hnsw_m = VINDEX_HNSW_M;
        if (spec->ef_search <= 0)
            spec->ef_search = VINDEX_HNSW_EF;
    }
}

void kb_vindex_spec_auto(struct kb_vindex_spec *out, int dim, size_t n_vectors)
{
    int flat = n_vectors * (size_t)(dim > 0 ? dim : 1) <= KB_VINDEX_FLAT_MAX_FLOATS;
    *out = (struct kb_vindex_spec){flat ? KB_VINDEX_FLAT : KB_VINDEX_IVF, dim, 0, 0, 0, 0};
    kb_vindex_spec_resolve(out, n_vectors);
}

/* "key=value" at *text (up to ',' or the end) into *value, for one of the kind's keys. */
static int vindex_spec_param(struct kb_vindex_spec *spec, const char **text, const char *whole,
                             struct kb_err *err)
{
    const char *at = *text, *eq = strchr(at, '=');
    const char *end = strchr(at, ',');
    if (!end)
        end = at + strlen(at);
    if (!eq || eq > end)
        return kb_err_set(err, KB_EINVALID, "index spec '%s': expected key=value at '%.*s'",
                          whole, (int)(end - at), at);
    char *num_end;
    errno = 0;
    long value = strtol(eq + 1, &num_end, 10);
    if (num_end != end || eq + 1 == end || !isdigit((unsigned char)eq[1]) || errno ||
        value < 1 || value > 1 << 24)
        return kb_err_set(err, KB_EINVALID, "index spec '%s': bad number in '%.*s'", whole,
                          (int)(end - at), at);
    size_t key_len = (size_t)(eq - at);
    int *slot = NULL;
    if (spec->kind == KB_VINDEX_IVF && key_len == 5 && !memcmp(at, "nlist", 5))
        slot = &spec->nlist;
    else if (spec->kind == KB_VINDEX_IVF && key_len == 6 && !memcmp(at, "nprobe", 6))
        slot = &spec->nprobe;
    else if (spec->kind == KB_VINDEX_HNSW && key_len == 1 && at[0] == 'm')
        slot = &spec->hnsw_m;
    else if (spec->kind == KB_VINDEX_HNSW && key_len == 2 && !memcmp(at, "ef", 2))
        slot = &spec->ef_search;
    if (!slot)
        return kb_err_set(err, KB_EINVALID, "index spec '%s': unknown parameter '%.*s'", whole,
                          (int)key_len, at);
    *slot = (int)value;
    *text = *end ? end + 1 : end;
    return 0;
}

int kb_vindex_spec_parse(struct kb_vindex_spec *out, int dim, const char *text,
                         struct kb_err *err)
{
    static const struct { const char *name; enum kb_vindex_kind kind; } kinds[] = {
        {"flat", KB_VINDEX_FLAT}, {"ivf", KB_VINDEX_IVF}, {"hnsw", KB_VINDEX_HNSW}};
    const char *colon = strchr(text, ':');
    size_t name_len = colon ? (size_t)(colon - text) : strlen(text);
    *out = (struct kb_vindex_spec){.kind = KB_VINDEX_FLAT, .dim = dim, .nlist = 0};
    size_t i = 0;
    while (i < 3 && (strlen(kinds[i].name) != name_len || memcmp(kinds[i].name, text, name_len)))
        i++;
    if (i == 3)
        return kb_err_set(err, KB_EINVALID,
                          "index spec '%s': unknown index type (expected flat, ivf or hnsw)",
                          text);
    out->kind = kinds[i].kind;
    if (!colon)
        return 0;
    if (out->kind == KB_VINDEX_FLAT || !colon[1])
        return kb_err_set(err, KB_EINVALID, "index spec '%s': unexpected parameters", text);
    for (const char *at = colon + 1; *at;) {
        int rc = vindex_spec_param(out, &at, text, err);
        if (rc < 0)
            return rc;
        if (!*at && at[-1] == ',')
            return kb_err_set(err, KB_EINVALID, "index spec '%s': trailing comma", text);
    }
    return 0;
}

int kb_vindex_spec_format(const struct kb_vindex_spec *spec, char *buf, size_t size)
{
    const char *name = spec->kind == KB_VINDEX_IVF ? "ivf" :
                       spec->kind == KB_VINDEX_HNSW ? "hnsw" : "flat";
    int a = spec->kind == KB_VINDEX_IVF ? spec->nlist : spec->hnsw_m;
    int b = spec->kind == KB_VINDEX_IVF ? spec->nprobe : spec->ef_search;
    const char *key_a = spec->kind == KB_VINDEX_IVF ? "nlist" : "m";
    const char *key_b = spec->kind == KB_VINDEX_IVF ? "nprobe" : "ef";
    if (spec->kind == KB_VINDEX_FLAT || (a <= 0 && b <= 0))
        return snprintf(buf, size, "%s", name);
    if (a <= 0)
        return snprintf(buf, size, "%s:%s=%d", name, key_b, b);
    if (b <= 0)
        return snprintf(buf, size, "%s:%s=%d", name, key_a, a);
    return snprintf(buf, size, "%s:%s=%d,%s=%d", name, key_a, a, key_b, b);
}

/* ---- FAISS errors and handles ----------------------------------------------------------- */

/* Turns the failed FAISS call's exception (rc < 0) into one kb_err line with code, or when code
 * is 0 with KB_ENOMEM (FAISS ran out of memory) or KB_ERROR. */
/* What a user can act on in a FAISS message, which names C++ functions and source lines
 * ("Error in void faiss::write_index(...) at ./faiss/impl/index_write.cpp:401: Error: 'ret ==
 * (size * 4)' failed: write error in F: 4014 != 245760 (No space left on device)"): the system's
 * reason when there is one, else the text after the failed condition. */
static const char *vindex_faiss_reason(const char *line, int *is_errno)
{
    static const int errnos[] = { ENOSPC, EDQUOT, EFBIG, EIO, EACCES, EROFS, ENOENT };
    *is_errno = 1;
    for (size_t i = 0; i < sizeof errnos / sizeof *errnos; i++)
        if (strstr(line, strerror(errnos[i])))
            return strerror(errnos[i]);
    *is_errno = 0;
    const char *p = strstr(line, "failed: ");
    if (p)
        return p + 8;
    p = strstr(line, "Error: ");
    return p ? p + 7 : line;
}

static int vindex_faiss_fail(struct kb_err *err, int code, int rc, const char *what)
{
    const char *msg = faiss_get_last_error();
    char line[KB_ERR_SIZE];
    size_t n = 0;
    for (const char *p = msg ? msg : "unknown error"; *p && n + 1 < sizeof line; p++)
        line[n++] = *p == '\n' || *p == '\r' || *p == '\t' ? ' ' : *p;
    while (n > 0 && line[n - 1] == ' ')
        n--;
    line[n] = '\0';
    if (code == 0)
        code = rc == STD_EXCEPT && strstr(line, "bad_alloc") ? KB_ENOMEM : KB_ERROR;
    int is_errno;
    const char *reason = vindex_faiss_reason(line, &is_errno);
    return kb_err_set(err, code, is_errno ? "%s: %s" : "%s: FAISS: %s", what, reason);
}

static int vindex_faiss_err(struct kb_err *err, int rc, const char *what)
{
    return vindex_faiss_fail(err, 0, rc, what);
}

/* Finds the FAISS objects inside vi->index for vi->spec.kind; 0 or KB_ECORRUPT. */
static int vindex_bind(struct kb_vindex *vi, const char *what, struct kb_err *err)
{
    if (vi->spec.kind == KB_VINDEX_IVF) {
        vi->ivf = faiss_IndexIVF_cast(vi->index);
        if (!vi->ivf)
            return kb_err_set(err, KB_ECORRUPT, "%s: not an IVF index", what);
        faiss_IndexIVF_set_nprobe(vi->ivf, (size_t)vi->spec.nprobe);
        return 0;
    }
    vi->map = faiss_IndexIDMap2_cast(vi->index);
    if (!vi->map)
        return kb_err_set(err, KB_ECORRUPT, "%s: not an id-mapped index", what);
    if (vi->spec.kind == KB_VINDEX_FLAT) {
        vi->flat = faiss_IndexFlat_cast(faiss_IndexIDMap2_sub_index(vi->map));
        if (!vi->flat)
            return kb_err_set(err, KB_ECORRUPT, "%s: not a flat index", what);
        return 0;
    }
    FaissParameterSpace *space = NULL;
    int rc = faiss_ParameterSpace_new(&space);
    if (rc == 0)
        rc = faiss_ParameterSpace_set_index_parameter(space, vi->index, "efSearch",
                                                      vi->spec.ef_search);
    faiss_ParameterSpace_free(space);
    return rc ? vindex_faiss_err(err, rc, what) : 0;
}

static struct kb_vindex *vindex_new(const struct kb_vindex_spec *spec)
{
    struct kb_vindex *vi = calloc(1, sizeof *vi);
    if (vi) {
        vi->spec = *spec;
        vi->n_threads = kb_threads_default();
    }
    return vi;
}

void kb_vindex_free(struct kb_vindex *vi)
{
    if (!vi)
        return;
    if (vi->index)
        faiss_Index_free(vi->index);
    free(vi);
}

size_t kb_vindex_count(const struct kb_vindex *vi)
{
    return (size_t)faiss_Index_ntotal(vi->index);
}

int kb_vindex_dim(const struct kb_vindex *vi)
{
    return vi->spec.dim;
}

void kb_vindex_get_spec(const struct kb_vindex *vi, struct kb_vindex_spec *out)
{
    *out = vi->spec;
}

void kb_vindex_set_threads(struct kb_vindex *vi, int n_threads)
{
    vi->n_threads = n_threads >= 1 ? (n_threads > 64 ? 64 : n_threads) : kb_threads_default();
}

/* ---- build, add, remove ----------------------------------------------------------------- */

/* xorshift64* (Vigna): a fixed-seed generator, so a build's training sample is reproducible. */
static uint64_t vindex_rng(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1DULL;
}

/* Trains IVF centroids on all n vectors, or on a random 50 * nlist of them when more. */
static int vindex_train_ivf(struct kb_vindex *vi, const float *vecs, size_t n,
                            struct kb_err *err)
{
    size_t dim = (size_t)vi->spec.dim, n_train = (size_t)vi->spec.nlist * VINDEX_TRAIN_PER_LIST;
    float *sample = NULL;
    if (n > n_train) {
        size_t *rows = malloc(n * sizeof *rows);
        sample = malloc(n_train * dim * sizeof *sample);
        if (!rows || !sample) {
            free(rows);
            free(sample);
            return kb_err_set(err, KB_ENOMEM, "IVF training: out of memory");
        }
        uint64_t rng = 0x9E3779B97F4A7C15ULL;
        for (size_t i = 0; i < n; i++)
            rows[i] = i;
        for (size_t i = 0; i < n_train; i++) { /* partial Fisher-Yates */
            size_t j = i + (size_t)(vindex_rng(&rng) % (n - i));
            size_t row = rows[j];
            rows[j] = rows[i];
            memcpy(sample + i * dim, vecs + row * dim, dim * sizeof *sample);
        }
        free(rows);
    } else {
        n_train = n;
    }
    int rc = faiss_Index_train(vi->index, (idx_t)n_train, sample ? sample : vecs);
    free(sample);
    return rc ? vindex_faiss_err(err, rc, "IVF training") : 0;
}

/* The FAISS factory string for spec; nlist already fitted to the data. */
static void vindex_factory_string(const struct kb_vindex_spec *spec, char *buf, size_t size)
{
    if (spec->kind == KB_VINDEX_IVF)
        snprintf(buf, size, "IVF%d,Flat", spec->nlist);
    else if (spec->kind == KB_VINDEX_HNSW)
        snprintf(buf, size, "IDMap2,HNSW%d", spec->hnsw_m);
    else
        snprintf(buf, size, "IDMap2,Flat");
}

/* spec resolved for n vectors, with IVF's nlist lowered to what n can train. */
static int vindex_fit_spec(struct kb_vindex_spec *spec, size_t n, struct kb_err *err)
{
    if (spec->dim < 1 || spec->dim > 65536 || (unsigned)spec->kind > KB_VINDEX_HNSW)
        return kb_err_set(err, KB_EINVALID, "vector index: bad dimension %d or kind", spec->dim);
    kb_vindex_spec_resolve(spec, n);
    if (spec->kind != KB_VINDEX_IVF)
        return 0;
    if (n < VINDEX_MIN_PER_LIST)
        return kb_err_set(err, KB_EINVALID, "IVF index: needs at least %d vectors to train, "
                          "got %zu (use flat)", VINDEX_MIN_PER_LIST, n);
    if ((size_t)spec->nlist > n / VINDEX_MIN_PER_LIST)
        spec->nlist = (int)(n / VINDEX_MIN_PER_LIST);
    if (spec->nprobe > spec->nlist)
        spec->nprobe = spec->nlist;
    return 0;
}

int kb_vindex_build(struct kb_vindex **out, const struct kb_vindex_spec *spec,
                    const int64_t *ids, const float *vecs, size_t n, struct kb_err *err)
{
    struct kb_vindex_spec fitted = *spec;
    char factory[64];
    *out = NULL;
    int rc = vindex_fit_spec(&fitted, n, err);
    if (rc < 0)
        return rc;
    struct kb_vindex *vi = vindex_new(&fitted);
    if (!vi)
        return kb_err_set(err, KB_ENOMEM, "vector index: out of memory");
    vindex_factory_string(&fitted, factory, sizeof factory);
    rc = faiss_index_factory(&vi->index, fitted.dim, factory, METRIC_INNER_PRODUCT);
    if (rc) {
        rc = vindex_faiss_err(err, rc, factory);
        goto done;
    }
    if ((rc = vindex_bind(vi, factory, err)) < 0)
        goto done;
    if (fitted.kind == KB_VINDEX_IVF && (rc = vindex_train_ivf(vi, vecs, n, err)) < 0)
        goto done;
    rc = kb_vindex_add(vi, ids, vecs, n, err);
done:
    if (rc < 0)
        kb_vindex_free(vi);
    else
        *out = vi;
    return rc;
}

int kb_vindex_add(struct kb_vindex *vi, const int64_t *ids, const float *vecs, size_t n,
                  struct kb_err *err)
{
    if (n == 0)
        return 0;
    int rc = faiss_Index_add_with_ids(vi->index, (idx_t)n, vecs, ids);
    return rc ? vindex_faiss_err(err, rc, "adding vectors") : 0;
}

int kb_vindex_remove(struct kb_vindex *vi, const int64_t *ids, size_t n, struct kb_err *err)
{
    if (vi->spec.kind == KB_VINDEX_HNSW)
        return kb_err_set(err, KB_EINVALID,
                          "HNSW vector index cannot remove vectors: rebuild needed");
    if (n == 0)
        return 0;
    FaissIDSelectorBatch *batch = NULL;
    size_t n_removed = 0;
    int rc = faiss_IDSelectorBatch_new(&batch, n, ids);
    if (rc == 0)
        rc = faiss_Index_remove_ids(vi->index, (const FaissIDSelector *)batch, &n_removed);
    if (batch)
        faiss_IDSelector_free((FaissIDSelector *)batch);
    return rc ? vindex_faiss_err(err, rc, "removing vectors") : 0;
}

/* ---- search ----------------------------------------------------------------------------- */

/* FLAT: kb's kernel over the IndexFlat's rows, with ids from the IDMap2. */
static int vindex_search_flat(const struct kb_vindex *vi, const float *query, size_t k,
                              int64_t *ids, float *scores, size_t *n_out, struct kb_err *err)
{
    float *rows = NULL;
    idx_t *row_ids = NULL;
    size_t n_floats = 0, n_rows = 0;
    faiss_IndexFlat_xb(vi->flat, &rows, &n_floats);
    faiss_IndexIDMap2_id_map(vi->map, &row_ids, &n_rows);
    if (n_floats != n_rows * (size_t)vi->spec.dim)
        return kb_err_set(err, KB_ECORRUPT, "flat vector index: %zu floats for %zu ids",
                          n_floats, n_rows);
    return kb_vindex_scan_top_k(rows, row_ids, n_rows, vi->spec.dim, query, k, vi->n_threads,
                                ids, scores, n_out, err);
}

/* IVF, HNSW: FAISS's search; slots it could not fill (label -1) are dropped. */
static int vindex_search_faiss(const struct kb_vindex *vi, const float *query, size_t k,
                               int64_t *ids, float *scores, size_t *n_out, struct kb_err *err)
{
    int rc = faiss_Index_search(vi->index, 1, query, (idx_t)k, scores, ids);
    if (rc)
        return vindex_faiss_err(err, rc, "vector search");
    size_t kept = 0;
    for (size_t i = 0; i < k; i++)
        if (ids[i] >= 0) {
            ids[kept] = ids[i];
            scores[kept++] = scores[i];
        }
    *n_out = kept;
    return 0;
}

int kb_vindex_search(const struct kb_vindex *vi, const float *query, size_t k, int64_t *ids,
                     float *scores, size_t *n_out, struct kb_err *err)
{
    *n_out = 0;
    if (k == 0 || kb_vindex_count(vi) == 0)
        return 0;
    if (vi->spec.kind == KB_VINDEX_FLAT)
        return vindex_search_flat(vi, query, k, ids, scores, n_out, err);
    if (k > (size_t)1 << 30)
        return kb_err_set(err, KB_EINVALID, "vector search: k = %zu is too large", k);
    return vindex_search_faiss(vi, query, k, ids, scores, n_out, err);
}

int kb_vindex_ids(const struct kb_vindex *vi, int64_t **ids, size_t *n, struct kb_err *err)
{
    size_t count = kb_vindex_count(vi), at = 0;
    *ids = NULL;
    *n = 0;
    if (count == 0)
        return 0;
    int64_t *all = malloc(count * sizeof *all);
    if (!all)
        return kb_err_set(err, KB_ENOMEM, "vector ids: out of memory for %zu ids", count);
    if (vi->map) {
        idx_t *map = NULL;
        faiss_IndexIDMap2_id_map(vi->map, &map, &at);
        memcpy(all, map, (at < count ? at : count) * sizeof *all);
    } else {
        size_t nlist = faiss_IndexIVF_nlist(vi->ivf);
        for (size_t list = 0; list < nlist; list++) {
            size_t len = faiss_IndexIVF_get_list_size(vi->ivf, list);
            if (len > count - at)
                break;
            faiss_IndexIVF_invlists_get_ids(vi->ivf, list, all + at);
            at += len;
        }
    }
    if (at != count) {
        free(all);
        return kb_err_set(err, KB_ECORRUPT, "vector index: holds %zu ids for %zu vectors", at,
                          count);
    }
    *ids = all;
    *n = count;
    return 0;
}

/* ---- files ------------------------------------------------------------------------------ */

static int vindex_fsync_path(const char *path, struct kb_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kb_err_set(err, KB_EIO, "%s: cannot open: %s", path, strerror(errno));
    int rc = fsync(fd) == 0 ? 0 : kb_err_set(err, KB_EIO, "%s: fsync: %s", path, strerror(errno));
    close(fd);
    return rc;
}

int kb_vindex_write(const struct kb_vindex *vi, const char *path, struct kb_err *err)
{
    struct kb_vindex_file_info info;
    int rc = faiss_write_index_fname(vi->index, path);
    if (rc)
        return vindex_faiss_fail(err, KB_EIO, rc, path);
    if ((rc = vindex_fsync_path(path, err)) < 0)
        return rc;
    /* FAISS does not check fclose, so a disk filling up could leave a short file: read the
     * layout back. */
    rc = kb_vindex_file_check(path, &info, err);
    if (rc == 0 && info.n_vectors != kb_vindex_count(vi))
        rc = kb_err_set(err, KB_EIO, "%s: wrote %zu vectors, expected %zu", path,
                        info.n_vectors, kb_vindex_count(vi));
    if (rc < 0 && rc != KB_EIO) {
        kb_err_prefix(err, "incomplete write");
        rc = KB_EIO;
        if (err)
            err->code = rc;
    }
    return rc;
}

/* The file's kind and dim against what the caller expects; expected parameters win. */
static int vindex_expect(struct kb_vindex_spec *spec, const struct kb_vindex_spec *expect,
                         const char *path, struct kb_err *err)
{
    static const char *names[] = {"flat", "ivf", "hnsw"};
    if (!expect)
        return 0;
    if (expect->kind != spec->kind || expect->dim != spec->dim)
        return kb_err_set(err, KB_ECORRUPT,
                          "%s: holds a %s index of dimension %d, expected %s of dimension %d",
                          path, names[spec->kind], spec->dim, names[expect->kind], expect->dim);
    if (expect->nprobe > 0)
        spec->nprobe = expect->nprobe < spec->nlist ? expect->nprobe : spec->nlist;
    if (expect->ef_search > 0)
        spec->ef_search = expect->ef_search;
    return 0;
}

int kb_vindex_read(struct kb_vindex **out, const char *path,
                   const struct kb_vindex_spec *expect, struct kb_err *err)
{
    struct kb_vindex_file_info info;
    struct kb_vindex *vi = NULL;
    *out = NULL;
    int rc = kb_vindex_file_check(path, &info, err);
    if (rc < 0 || (rc = vindex_expect(&info.spec, expect, path, err)) < 0)
        return rc;
    if (!(vi = vindex_new(&info.spec)))
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", path);
    rc = faiss_read_index_fname(path, 0, &vi->index);
    if (rc) {
        rc = vindex_faiss_fail(err, KB_ECORRUPT, rc, path);
        goto done;
    }
    if (faiss_Index_d(vi->index) != info.spec.dim ||
        faiss_Index_metric_type(vi->index) != METRIC_INNER_PRODUCT ||
        (size_t)faiss_Index_ntotal(vi->index) != info.n_vectors) {
        rc = kb_err_set(err, KB_ECORRUPT, "%s: FAISS read a different index than checked", path);
        goto done;
    }
    rc = vindex_bind(vi, path, err);
done:
    if (rc < 0)
        kb_vindex_free(vi);
    else
        *out = vi;
    return rc;
}
