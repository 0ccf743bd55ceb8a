/* search.c — the facade's retrieval: user text in, ranked chunks with their sources out.
 * BM25 (FTS5), vector (FAISS over the chunk embeddings) or both fused. */
#include "kb/kb_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "index/bm25.h"
#include "index/lexical.h"
#include "index/store.h"
#include "index/vectors.h"
#include "ingest/doc.h"
#include "util/shared.h"

#define SEARCH_DEFAULT_K 10
#define SEARCH_MAX_K 10000
#define SEARCH_FUSION_DEPTH 100 /* candidates each side contributes to a hybrid ranking */
#define SEARCH_RRF_K 60.0       /* Cormack et al. 2009: 1 / (60 + rank) */
#define SEARCH_MARKED_SNIPPETS 10 /* results whose snippets mark the query's terms */

struct kb_results {
    kb_result *items;
    struct kb_lexical_row *rows;  /* own the strings the items point at */
    size_t count;
    kb_mode mode;                 /* the mode that produced them */
};

/* Results are registered while the caller holds them (kb/kb.c), so that a freed or foreign
 * pointer reads as empty and a second kb_results_free does nothing. */
static int results_live(const kb_results *results)
{
    return results && kb_handle_live(results, KB_HANDLE_RESULTS);
}

size_t kb_results_count(const kb_results *results)
{
    return results_live(results) ? results->count : 0;
}

const kb_result *kb_results_get(const kb_results *results, size_t i)
{
    return results_live(results) && i < results->count ? &results->items[i] : NULL;
}

kb_mode kb_results_mode(const kb_results *results)
{
    return results_live(results) ? results->mode : (kb_mode)0;
}

static void results_release(kb_results *results)
{
    for (size_t i = 0; i < results->count; i++)
        kb_lexical_row_free(&results->rows[i]);
    free(results->rows);
    free(results->items);
    free(results);
}

void kb_results_free(kb_results *results)
{
    if (kb_handle_remove(results, KB_HANDLE_RESULTS))
        results_release(results);
}

/* A ranked chunk before its fields are read. */
struct search_hit {
    int64_t chunk_id, doc_id;
    double score;
    int lexical;              /* found by BM25: its snippet marks the query's terms */
};

static void search_fill(kb_result *item, const struct search_hit *hit,
                        const struct kb_lexical_row *row)
{
    item->chunk_id = hit->chunk_id;
    item->doc_id = row->doc_id;
    item->score = hit->score;
    item->path = row->path;
    item->title = row->title;
    item->heading_path = row->heading_path;
    item->format = row->format;
    item->text = row->text;
    item->snippet = row->snippet;
    item->line_start = row->line_start;
    item->line_end = row->line_end;
    item->byte_start = row->byte_start;
    item->byte_end = row->byte_end;
    item->location = row->location;
    item->page = row->page;
    item->metadata = row->meta;
}

/* Turns ranked hits into results with their stored fields; with group_by_document, only each
 * document's first (best) hit is kept, up to k. */
static int search_present(kb *kb, const char *match, const struct search_hit *hits, size_t n,
                          size_t k, const kb_search_options *opts, kb_results *res)
{
    res->items = calloc(n ? n : 1, sizeof *res->items);
    res->rows = calloc(n ? n : 1, sizeof *res->rows);
    if (!res->items || !res->rows)
        return kb_fail(kb, KB_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && res->count < k; i++) {
        struct kb_lexical_row *row = &res->rows[res->count];
        /* Snippets with marked terms cost a full-text lookup each (~0.3 ms on SciFact): only
         * for BM25's own hits among the first SEARCH_MARKED_SNIPPETS results. */
        int marked = hits[i].lexical && res->count < SEARCH_MARKED_SNIPPETS;
        int rc = kb_lexical_fetch(kb->store, marked ? match : NULL, hits[i].chunk_id,
                                  opts->hl_open, opts->hl_close, row, &kb->err);
        if (rc)
            return rc;
        int seen = 0;
        for (size_t j = 0; opts->group_by_document && j < res->count && !seen; j++)
            seen = res->rows[j].doc_id == row->doc_id;
        if (seen) {
            kb_lexical_row_free(row);
            continue;
        }
        search_fill(&res->items[res->count], &hits[i], row);
        res->count++;
    }
    return 0;
}

void kb_search_close(kb *kb)
{
    kb_shared_put(kb->bm25);
    kb->bm25 = NULL;
}

/* 1 when this BM25 search should use the in-memory index: from a handle's second BM25 search
 * on (a one-shot query must not pay for the build), never with a filter (FTS5 joins the
 * documents); KB_BM25_MEMORY=0/1 forces it off/on. */
static int search_wants_memory(kb *kb, const struct kb_filter *filter)
{
    const char *env = getenv("KB_BM25_MEMORY");
    kb->lexical_searches++;
    if (kb_filter_active(filter))
        return 0;
    if (env && (!strcmp(env, "0") || !strcmp(env, "1")))
        return env[0] == '1';
    return kb->lexical_searches >= 2;
}

static int search_index_load(void *arg, void **obj)
{
    kb *kb = arg;
    struct kb_bm25 *index = NULL;
    int rc = kb_bm25_build(kb->store, &index, &kb->err);
    *obj = index;
    return rc;
}

static void search_index_free(void *obj)
{
    kb_bm25_free(obj);
}

/* The in-memory index of the snapshot being read (kb_search's read transaction), shared with
 * every handle of the process on the same KB and chunks revision (util/shared.h): the key is
 * the KB directory's real path and identity and the revision, which every change of a chunk
 * bumps. A stale index is given back first. *out is NULL when it cannot be had for lack of
 * memory: the FTS5 path answers then. */
static int search_memory_index(kb *kb, struct kb_bm25 **out)
{
    int64_t rev = 0;
    struct stat st;
    char key[4200];
    *out = NULL;
    int rc = kb_bm25_chunks_rev(kb->store, &rev, &kb->err);
    if (rc || (kb->bm25 && kb->bm25_rev == rev)) {
        *out = rc ? NULL : kb->bm25;
        return rc;
    }
    kb_search_close(kb);
    char *real = realpath(kb_store_dir(kb->store), NULL);
    if (!real || stat(real, &st) ||
        snprintf(key, sizeof key, "bm25\n%s\n%llu:%llu\n%lld", real,
                 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
                 (long long)rev) >= (int)sizeof key) {
        free(real);
        return 0; /* a path this odd just keeps the FTS5 path */
    }
    free(real);
    void *index = NULL;
    rc = kb_shared_get(key, search_index_load, kb, search_index_free, &index);
    if (rc == KB_ENOMEM) {
        kb_err_clear(&kb->err);
        return 0;
    }
    kb->bm25 = index;
    kb->bm25_rev = rev;
    *out = index;
    return rc;
}

/* kb_lexical_prune, answered by the in-memory index when there is one and it can. */
static int search_prune(kb *kb, struct kb_bm25 **index, const char *match, char **pruned)
{
    int rc = *index ? kb_bm25_prune(*index, kb->store, match, pruned, &kb->err) : 1;
    if (rc == 1) {
        *index = NULL; /* a term FTS5 matches as a phrase: FTS5 ranks this query */
        rc = kb_lexical_prune(kb->store, match, pruned, &kb->err);
    }
    return rc;
}

static int search_bm25(kb *kb, const struct kb_bm25 *index, const char *match, size_t depth,
                       int group, const struct kb_filter *filter, struct search_hit **out,
                       size_t *n_out)
{
    struct kb_lexical_hit *lh = NULL;
    size_t n = 0;
    *out = NULL;
    *n_out = 0;
    if (!match)
        return 0;
    int rc = index ? kb_bm25_search(index, kb->store, match, depth, group, &lh, &n, &kb->err)
                   : 1;
    if (rc == 1)
        rc = kb_lexical_search(kb->store, match, depth, group, filter, &lh, &n, &kb->err);
    if (rc)
        return rc;
    struct search_hit *hits = malloc((n ? n : 1) * sizeof *hits);
    if (!hits) {
        free(lh);
        return kb_fail(kb, KB_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        hits[i] = (struct search_hit){ lh[i].chunk_id, lh[i].doc_id, lh[i].score, 1 };
    free(lh);
    *out = hits;
    *n_out = n;
    return 0;
}

static int search_vector(kb *kb, const char *query, size_t depth,
                         const struct kb_filter *filter, struct search_hit **out, size_t *n_out)
{
    struct kb_vec_hit *vh = NULL;
    size_t n = 0;
    *out = NULL;
    *n_out = 0;
    int rc = kb_vec_search(kb, query, depth, filter, &vh, &n);
    if (rc)
        return rc;
    struct search_hit *hits = malloc((n ? n : 1) * sizeof *hits);
    if (!hits) {
        free(vh);
        return kb_fail(kb, KB_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        hits[i] = (struct search_hit){ vh[i].chunk_id, 0, vh[i].score, 0 };
    free(vh);
    *out = hits;
    *n_out = n;
    return 0;
}

static int search_cmp_score(const void *a, const void *b)
{
    const struct search_hit *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

/* Min-max normalised score of list[i] within its list (1 for the best, 0 for the worst). */
static double search_norm(const struct search_hit *list, size_t n, size_t i)
{
    double hi = list[0].score, lo = list[n - 1].score;
    return hi > lo ? (list[i].score - lo) / (hi - lo) : 1.0;
}

/* Fuses two best-first lists into *out (sorted, each chunk once). RRF: sum of
 * 1 / (60 + rank); weighted: w * bm25 + (1 - w) * vector on min-max normalised scores, a list
 * that misses a chunk contributing 0. Measured on SciFact: docs/BENCHMARKS.md. */
static int search_fuse(kb *kb, const struct search_hit *a, size_t na, const struct search_hit *b,
                       size_t nb, kb_fusion fusion, double w_bm25, struct search_hit **out,
                       size_t *n_out)
{
    struct search_hit *all = malloc((na + nb ? na + nb : 1) * sizeof *all);
    if (!all)
        return kb_fail(kb, KB_ENOMEM, "out of memory");
    size_t n = 0;
    for (int side = 0; side < 2; side++) {
        const struct search_hit *list = side ? b : a;
        size_t len = side ? nb : na;
        double w = side ? 1.0 - w_bm25 : w_bm25;
        for (size_t i = 0; i < len; i++) {
            double s = fusion == KB_FUSION_RRF ? 1.0 / (SEARCH_RRF_K + (double)(i + 1))
                                               : w * search_norm(list, len, i);
            size_t j = 0;
            while (j < n && all[j].chunk_id != list[i].chunk_id)
                j++;
            if (j == n)
                all[n++] = (struct search_hit){ list[i].chunk_id, 0, 0, 0 };
            all[j].score += s;
            all[j].lexical |= list[i].lexical;
        }
    }
    qsort(all, n, sizeof *all, search_cmp_score);
    *out = all;
    *n_out = n;
    return 0;
}

/* The mode to run: the caller's, or hybrid when the KB has vectors, else BM25. */
static int search_mode(kb *kb, kb_mode asked, kb_mode *out)
{
    int has = 0, rc;
    if (asked != 0 && asked != KB_MODE_BM25 && asked != KB_MODE_VECTOR &&
        asked != KB_MODE_HYBRID)
        return kb_fail(kb, KB_EINVALID, "search mode %d is not available", (int)asked);
    if (asked != KB_MODE_BM25 && (rc = kb_vec_has_vectors(kb, &has)))
        return rc;
    if (asked == 0) {
        *out = has ? KB_MODE_HYBRID : KB_MODE_BM25;
        return 0;
    }
    if (asked != KB_MODE_BM25 && !has)
        return kb_fail(kb, KB_EINVALID, "this knowledge base has no vectors, so mode must be "
                       "\"bm25\"");
    *out = asked;
    return 0;
}

/* A format filter must name a format kb reads ("markdown", "pdf", ...), else KB_EINVALID
 * listing them: a misspelt one would otherwise match nothing, silently. */
static int search_check_format(kb *kb, const char *format)
{
    char names[256] = "";
    size_t len = 0;
    if (!format || !*format || kb_doc_kind_parse(format) != KB_DOC_NONE)
        return 0;
    for (int kind = KB_DOC_NONE + 1; kind < KB_DOC_KIND_COUNT && len < sizeof names; kind++)
        len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "",
                                kb_doc_kind_name((enum kb_doc_kind)kind));
    return kb_fail(kb, KB_EINVALID, "unknown format '%s': expected one of %s", format, names);
}

static int search_run(kb *kb, const char *query, const kb_search_options *opts, size_t k,
                      kb_results *res)
{
    char *match = NULL;
    struct search_hit *lex = NULL, *vec = NULL, *fused = NULL, *hits;
    size_t n_lex = 0, n_vec = 0, n_fused = 0, n;
    size_t depth = k > SEARCH_FUSION_DEPTH ? k : SEARCH_FUSION_DEPTH;
    int group = opts->group_by_document;
    struct kb_filter filter = { opts->path_glob, opts->format,
                                opts->modified_after * (int64_t)1000000000 };
    char *pruned = NULL;
    struct kb_bm25 *index = NULL;
    int lexical = res->mode != KB_MODE_VECTOR;
    int rc = kb_lexical_query(&match, query, &kb->err);
    if (!rc && match && lexical && search_wants_memory(kb, &filter))
        rc = search_memory_index(kb, &index);
    if (!rc && match && lexical && (rc = search_prune(kb, &index, match, &pruned)) == 0 &&
        pruned) {
        free(match);
        match = pruned; /* ranking and snippets both use the pruned expression */
    }
    if (rc) {
        free(match);
        return rc;
    }
    if (res->mode == KB_MODE_BM25) {
        rc = search_bm25(kb, index, match, k, group, &filter, &lex, &n_lex);
        hits = lex, n = n_lex;
    } else if (res->mode == KB_MODE_VECTOR) {
        rc = search_vector(kb, query, group ? depth * 4 : k, &filter, &vec, &n_vec);
        hits = vec, n = n_vec;
    } else {
        if (!(rc = search_bm25(kb, index, match, depth, 0, &filter, &lex, &n_lex)) &&
            !(rc = search_vector(kb, query, depth, &filter, &vec, &n_vec)))
            rc = search_fuse(kb, lex, n_lex, vec, n_vec, opts->fusion, opts->bm25_weight,
                             &fused, &n_fused);
        hits = fused, n = n_fused;
    }
    if (!rc)
        rc = search_present(kb, match, hits, n, k, opts, res);
    free(lex);
    free(vec);
    free(fused);
    free(match);
    return rc;
}

int kb_search(kb *kb, const char *query, const kb_search_options *opts, kb_results **out)
{
    static const kb_search_options defaults = KB_SEARCH_OPTIONS_INIT;
    int rc = kb_usable(kb, 0);
    if (rc)
        return rc;
    if (!out || !query)
        return kb_fail(kb, KB_EINVALID, "kb_search: query and out are required");
    *out = NULL;
    opts = opts ? opts : &defaults;
    if (opts->version != KB_SEARCH_OPTIONS_VERSION)
        return kb_fail(kb, KB_EINVALID, "kb_search_options: unknown version %u", opts->version);
    if (opts->fusion != KB_FUSION_RRF && opts->fusion != KB_FUSION_WEIGHTED)
        return kb_fail(kb, KB_EINVALID, "unknown fusion %d", (int)opts->fusion);
    if (!(opts->bm25_weight >= 0 && opts->bm25_weight <= 1))
        return kb_fail(kb, KB_EINVALID, "bm25_weight must be from 0 to 1");
    size_t k = opts->k ? opts->k : SEARCH_DEFAULT_K;
    if (k > SEARCH_MAX_K)
        return kb_fail(kb, KB_EINVALID, "k=%zu is over the limit of %d", k, SEARCH_MAX_K);
    if ((rc = search_check_format(kb, opts->format)))
        return rc;
    if (opts->modified_after < 0 || opts->modified_after > KB_TIME_MAX)
        return kb_fail(kb, KB_EINVALID, "modified_after %lld is out of range: Unix seconds "
                       "from 0 to %lld (2262-04-11)", (long long)opts->modified_after,
                       (long long)KB_TIME_MAX);
    kb_results *res = calloc(1, sizeof *res);
    if (!res)
        return kb_fail(kb, KB_ENOMEM, "out of memory");
    /* One read transaction: BM25, vectors and the rows all come from the same snapshot. */
    if (!(rc = search_mode(kb, opts->mode, &res->mode)) &&
        !(rc = kb_store_read_begin(kb->store, &kb->err))) {
        rc = search_run(kb, query, opts, k, res);
        kb_store_read_end(kb->store);
    }
    if (rc == 0 && kb_handle_add(res, KB_HANDLE_RESULTS))
        rc = kb_fail(kb, KB_ENOMEM, "out of memory");
    if (rc) {
        results_release(res);
        return rc;
    }
    *out = res;
    return 0;
}
