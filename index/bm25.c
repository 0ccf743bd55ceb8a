/* bm25.c — FTS5's bm25() over an in-memory inverted index, top k by MaxScore. */
#include "index/bm25.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index/store_int.h"
#include "util/buf.h"

/* fts5_aux.c: fts5Bm25Function's constants. */
#define BM25_K1 1.2
#define BM25_B 0.75
#define BM25_MAX_TOKEN 32768 /* FTS5_MAX_TOKEN_SIZE: longer tokens are cut there */
#define BM25_MAX_CHUNKS 0x7fffffffu

struct bm25_posting {
    uint32_t chunk;  /* index into chunk_ids, ascending within a list */
    float tf;        /* Σ_col weight_col × hits in col: small integers, exact in a float */
};

struct bm25_list {
    struct bm25_posting *p;
    uint32_t n, cap;
};

struct kb_bm25 {
    /* term dictionary: open addressing over term_off (offsets into words), -1 = empty */
    int32_t *slots;
    uint32_t *slot_hash;         /* the term's hash, checked before its text */
    size_t n_slots;
    struct kb_buf words;         /* the terms, each NUL-terminated */
    uint32_t *term_off;
    struct bm25_list *lists;     /* postings per term */
    size_t n_terms, cap_terms;
    /* per chunk, in ascending id order */
    int64_t *chunk_ids;
    uint32_t *chunk_doc;         /* dense document index */
    uint32_t *chunk_len;         /* tokens in all columns: FTS5's D */
    size_t n_chunks;
    int64_t *doc_ids;            /* dense document index -> documents.id */
    size_t n_docs;
    double avgdl;
};

static uint64_t bm25_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The slot of term s[0..n) with hash h (its term id there, or -1 where it would go). */
static size_t bm25_slot(const struct kb_bm25 *ix, const char *s, size_t n, uint64_t h)
{
    size_t mask = ix->n_slots - 1, i = (size_t)h & mask;
    while (ix->slots[i] >= 0) {
        const char *w = ix->words.data + ix->term_off[ix->slots[i]];
        if (ix->slot_hash[i] == (uint32_t)(h >> 32) && !memcmp(w, s, n) && w[n] == '\0')
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

static int32_t bm25_find(const struct kb_bm25 *ix, const char *s, size_t n)
{
    return ix->n_slots ? ix->slots[bm25_slot(ix, s, n, bm25_hash(s, n))] : -1;
}

static int bm25_grow_slots(struct kb_bm25 *ix)
{
    size_t n = ix->n_slots ? ix->n_slots * 2 : 1 << 16;
    int32_t *slots = malloc(n * sizeof *slots);
    uint32_t *hashes = malloc(n * sizeof *hashes);
    if (!slots || !hashes) {
        free(slots);
        free(hashes);
        return KB_ENOMEM;
    }
    memset(slots, 0xff, n * sizeof *slots);
    free(ix->slots);
    free(ix->slot_hash);
    ix->slots = slots;
    ix->slot_hash = hashes;
    ix->n_slots = n;
    for (size_t t = 0; t < ix->n_terms; t++) {
        const char *w = ix->words.data + ix->term_off[t];
        uint64_t h = bm25_hash(w, strlen(w));
        size_t slot = bm25_slot(ix, w, strlen(w), h);
        ix->slots[slot] = (int32_t)t;
        ix->slot_hash[slot] = (uint32_t)(h >> 32);
    }
    return 0;
}

/* The id of term s[0..n), added when new; -1 when out of memory. */
static int32_t bm25_intern(struct kb_bm25 *ix, const char *s, size_t n)
{
    if (2 * (ix->n_terms + 1) > ix->n_slots && bm25_grow_slots(ix))
        return -1;
    uint64_t h = bm25_hash(s, n);
    size_t slot = bm25_slot(ix, s, n, h);
    if (ix->slots[slot] >= 0)
        return ix->slots[slot];
    if (ix->n_terms == ix->cap_terms) {
        size_t cap = ix->cap_terms ? ix->cap_terms * 2 : 1 << 14;
        uint32_t *off = realloc(ix->term_off, cap * sizeof *off);
        if (off)
            ix->term_off = off;
        struct bm25_list *lists = off ? realloc(ix->lists, cap * sizeof *lists) : NULL;
        if (!lists)
            return -1;
        ix->lists = lists;
        ix->cap_terms = cap;
    }
    if (ix->words.len > UINT32_MAX - n - 1)
        return -1;
    uint32_t off = (uint32_t)ix->words.len;
    if (kb_buf_append(&ix->words, s, n) || kb_buf_append(&ix->words, "", 1))
        return -1;
    ix->term_off[ix->n_terms] = off;
    ix->lists[ix->n_terms] = (struct bm25_list){ NULL, 0, 0 };
    ix->slots[slot] = (int32_t)ix->n_terms;
    ix->slot_hash[slot] = (uint32_t)(h >> 32);
    return (int32_t)ix->n_terms++;
}

void kb_bm25_free(struct kb_bm25 *ix)
{
    if (!ix)
        return;
    for (size_t t = 0; t < ix->n_terms; t++)
        free(ix->lists[t].p);
    free(ix->lists);
    free(ix->term_off);
    free(ix->slots);
    free(ix->slot_hash);
    kb_buf_free(&ix->words);
    free(ix->chunk_ids);
    free(ix->chunk_doc);
    free(ix->chunk_len);
    free(ix->doc_ids);
    free(ix);
}

int kb_bm25_chunks_rev(struct kb_store *store, int64_t *rev, struct kb_err *err)
{
    return kb_store_query_int(store, "SELECT CAST(value AS INTEGER) FROM kb_meta"
                              " WHERE key='chunks_rev'", rev, err);
}

/* ---- FTS5's tokenizer ---------------------------------------------------------------- */

/* The chunks_fts table's tokenizer (index/schema.c), made by FTS5 itself so that terms are
 * byte for byte the ones in its index. One per thread: unicode61 keeps scratch inside. */
struct bm25_tokenizer {
    fts5_tokenizer api;
    Fts5Tokenizer *tok;
};

static int bm25_tokenizer_open(struct kb_store *store, struct bm25_tokenizer *out,
                               struct kb_err *err)
{
    static const char *const args[] = { "unicode61", "remove_diacritics", "2" };
    fts5_api *fts5 = NULL;
    void *user = NULL;
    sqlite3_stmt *st;
    out->tok = NULL;
    int rc = kb_store_prepare(store, "SELECT fts5(?1)", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_pointer(st, 1, (void *)&fts5, "fts5_api_ptr", NULL);
    int src = sqlite3_step(st);
    sqlite3_finalize(st);
    src = src == SQLITE_ROW || src == SQLITE_DONE ? SQLITE_OK : src;
    if (src == SQLITE_OK && fts5 && fts5->iVersion >= 2 &&
        (src = fts5->xFindTokenizer(fts5, "porter", &user, &out->api)) == SQLITE_OK)
        src = out->api.xCreate(user, (const char **)args, 3, &out->tok);
    if (src == SQLITE_NOMEM)
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory for FTS5's tokenizer",
                          store->db_path);
    if (src != SQLITE_OK || !fts5 || fts5->iVersion < 2)
        return kb_err_set(err, KB_EIO, "%s: FTS5's porter tokenizer is not available",
                          store->db_path);
    return 0;
}

static void bm25_tokenizer_close(struct bm25_tokenizer *t)
{
    if (t->tok)
        t->api.xDelete(t->tok);
    t->tok = NULL;
}

/* ---- building ------------------------------------------------------------------------ */

/* One chunk's distinct terms with their weighted counts, while it is tokenized. */
struct bm25_build {
    struct kb_bm25 *ix;
    uint32_t chunk;
    double weight;           /* of the column being tokenized */
    uint32_t n_tokens;       /* of the chunk, all columns */
    int failed;
};

static int bm25_append(struct bm25_list *l, uint32_t chunk, double w)
{
    if (l->n && l->p[l->n - 1].chunk == chunk) {
        l->p[l->n - 1].tf = (float)((double)l->p[l->n - 1].tf + w);
        return 0;
    }
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        struct bm25_posting *p = cap > l->cap ? realloc(l->p, (size_t)cap * sizeof *p) : NULL;
        if (!p)
            return KB_ENOMEM;
        l->p = p;
        l->cap = cap;
    }
    l->p[l->n++] = (struct bm25_posting){ chunk, (float)w };
    return 0;
}

/* FTS5 counts every token toward the row's size and indexes it under its (cut) text. */
static int bm25_on_token(void *arg, int flags, const char *token, int n, int start, int end)
{
    (void)start, (void)end;
    struct bm25_build *b = arg;
    if (flags & FTS5_TOKEN_COLOCATED)
        return SQLITE_OK;  /* porter never makes synonyms; FTS5 would not count them */
    b->n_tokens++;
    size_t len = n > BM25_MAX_TOKEN ? (size_t)BM25_MAX_TOKEN : (size_t)(n > 0 ? n : 0);
    int32_t t = bm25_intern(b->ix, token, len);
    if (t < 0 || bm25_append(&b->ix->lists[t], b->chunk, b->weight)) {
        b->failed = 1;
        return SQLITE_NOMEM;
    }
    return SQLITE_OK;
}

/* Chunk rows are read in id order, so postings come out sorted by chunk. */
static int bm25_add_chunk(struct bm25_build *b, struct bm25_tokenizer *tk, sqlite3_stmt *st)
{
    static const double weights[3] = { KB_LEXICAL_W_TEXT, KB_LEXICAL_W_TITLE,
                                       KB_LEXICAL_W_HEADING };
    struct kb_bm25 *ix = b->ix;
    uint32_t c = (uint32_t)ix->n_chunks;
    ix->chunk_ids[c] = sqlite3_column_int64(st, 0);
    ix->doc_ids[c] = sqlite3_column_int64(st, 1); /* made dense by bm25_number_docs */
    b->chunk = c;
    b->n_tokens = 0;
    for (int col = 0; col < 3; col++) {
        const char *text = (const char *)sqlite3_column_text(st, 2 + col);
        int len = sqlite3_column_bytes(st, 2 + col);
        b->weight = weights[col];
        if (text && len &&
            tk->api.xTokenize(tk->tok, b, FTS5_TOKENIZE_DOCUMENT, text, len, bm25_on_token))
            return KB_ENOMEM;
    }
    ix->chunk_len[c] = b->n_tokens;
    ix->n_chunks++;
    return 0;
}

static int bm25_alloc_chunks(struct kb_bm25 *ix, size_t n)
{
    ix->chunk_ids = malloc((n ? n : 1) * sizeof *ix->chunk_ids);
    ix->chunk_doc = malloc((n ? n : 1) * sizeof *ix->chunk_doc);
    ix->chunk_len = malloc((n ? n : 1) * sizeof *ix->chunk_len);
    ix->doc_ids = malloc((n ? n : 1) * sizeof *ix->doc_ids);
    return ix->chunk_ids && ix->chunk_doc && ix->chunk_len && ix->doc_ids ? 0 : KB_ENOMEM;
}

static int bm25_read_chunks(struct kb_store *store, struct kb_bm25 *ix, size_t n,
                            struct bm25_tokenizer *tk, struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "SELECT id, doc_id, text, title, heading_path FROM chunks"
                              " ORDER BY id", &st, err);
    if (rc)
        return rc;
    struct bm25_build b = { ix, 0, 0, 0, 0 };
    int step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = ix->n_chunks < n ? bm25_add_chunk(&b, tk, st)
                              : kb_err_set(err, KB_EIO, "chunks changed while being read");
    if (!rc && step != SQLITE_DONE)
        rc = kb_store_sql_error(store, "reading chunks", err);
    if (rc == KB_ENOMEM)
        rc = kb_err_set(err, KB_ENOMEM, "out of memory building the BM25 index");
    sqlite3_finalize(st);
    return rc;
}

static int bm25_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* doc_ids holds each chunk's document: turns it into the sorted distinct documents and gives
 * every chunk its document's index there, so grouping can keep a slot per document. */
static int bm25_number_docs(struct kb_bm25 *ix)
{
    size_t n = ix->n_chunks, d = 0;
    int64_t *docs = malloc((n ? n : 1) * sizeof *docs);
    if (!docs)
        return KB_ENOMEM;
    memcpy(docs, ix->doc_ids, n * sizeof *docs);
    qsort(docs, n, sizeof *docs, bm25_cmp_i64);
    for (size_t i = 0; i < n; i++)
        if (!d || docs[d - 1] != docs[i])
            docs[d++] = docs[i];
    for (size_t c = 0; c < n; c++) {
        const int64_t *at = bsearch(&ix->doc_ids[c], docs, d, sizeof *docs, bm25_cmp_i64);
        ix->chunk_doc[c] = (uint32_t)(at - docs);
    }
    free(ix->doc_ids);
    ix->doc_ids = docs;
    ix->n_docs = d;
    return 0;
}

int kb_bm25_build(struct kb_store *store, struct kb_bm25 **out, struct kb_err *err)
{
    *out = NULL;
    int64_t n = 0, total = 0;
    int rc = kb_store_query_int(store, "SELECT count(*) FROM chunks", &n, err);
    if (rc)
        return rc;
    if (n > BM25_MAX_CHUNKS)
        return kb_err_set(err, KB_EINVALID, "%lld chunks are too many for the BM25 index",
                          (long long)n);
    struct kb_bm25 *ix = calloc(1, sizeof *ix);
    if (!ix || bm25_alloc_chunks(ix, (size_t)n)) {
        kb_bm25_free(ix);
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    }
    struct bm25_tokenizer tk;
    if (!(rc = bm25_tokenizer_open(store, &tk, err))) {
        rc = bm25_read_chunks(store, ix, (size_t)n, &tk, err);
        bm25_tokenizer_close(&tk);
    }
    if (!rc && bm25_number_docs(ix))
        rc = kb_err_set(err, KB_ENOMEM, "out of memory");
    if (rc) {
        kb_bm25_free(ix);
        return rc;
    }
    for (size_t c = 0; c < ix->n_chunks; c++)
        total += ix->chunk_len[c];
    for (size_t t = 0; t < ix->n_terms; t++) { /* give back what doubling left unused */
        struct bm25_list *l = &ix->lists[t];
        struct bm25_posting *p = l->n && l->n < l->cap
                                     ? realloc(l->p, (size_t)l->n * sizeof *p) : NULL;
        if (p) {
            l->p = p;
            l->cap = l->n;
        }
    }
    ix->avgdl = ix->n_chunks ? (double)total / (double)ix->n_chunks : 0;
    *out = ix;
    return 0;
}

/* ---- queries ------------------------------------------------------------------------- */

struct bm25_query_token {
    const struct kb_bm25 *ix;
    int n_tokens;
    int32_t term;
};

static int bm25_on_query_token(void *arg, int flags, const char *token, int n, int start,
                               int end)
{
    (void)start, (void)end;
    struct bm25_query_token *q = arg;
    if (!(flags & FTS5_TOKEN_COLOCATED) && q->n_tokens++ == 0)
        q->term = bm25_find(q->ix, token, n > BM25_MAX_TOKEN ? (size_t)BM25_MAX_TOKEN
                                                             : (size_t)(n > 0 ? n : 0));
    return SQLITE_OK;
}

/* The term id of each quoted term of match (kb_lexical_query's `"w1" OR "w2" ...`), -1 where
 * no chunk has it, tokenized as FTS5 tokenizes a query. 1 when a term is not exactly one
 * token (FTS5 would match it as a phrase). *out is malloc'ed. */
static int bm25_match_terms(const struct kb_bm25 *ix, struct kb_store *store, const char *match,
                            int32_t **out, size_t *n_out, struct kb_err *err)
{
    size_t n = 0, cap = 1;
    for (const char *p = match; (p = strchr(p, '"')); p++)
        cap++;
    int32_t *terms = malloc(cap / 2 * sizeof *terms + sizeof *terms);
    if (!terms)
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    struct bm25_tokenizer tk;
    int rc = bm25_tokenizer_open(store, &tk, err);
    for (const char *p = match; !rc && (p = strchr(p, '"')); n++) {
        const char *end = strchr(p + 1, '"');
        struct bm25_query_token q = { ix, 0, -1 };
        if (!end || tk.api.xTokenize(tk.tok, &q, FTS5_TOKENIZE_QUERY, p + 1, (int)(end - p - 1),
                                     bm25_on_query_token) != SQLITE_OK)
            rc = kb_err_set(err, KB_EINVALID, "malformed match expression");
        else if (q.n_tokens != 1)
            rc = 1;
        else
            terms[n] = q.term;
        p = end ? end + 1 : p + 1;
    }
    bm25_tokenizer_close(&tk);
    if (rc) {
        free(terms);
        return rc;
    }
    *out = terms;
    *n_out = n;
    return 0;
}

struct bm25_df {
    const struct kb_bm25 *ix;
    const int32_t *terms;
};

static int64_t bm25_df(size_t i, const char *term, size_t len, void *payload)
{
    const struct bm25_df *d = payload;
    (void)term, (void)len;
    return d->terms[i] < 0 ? 0 : d->ix->lists[d->terms[i]].n;
}

int kb_bm25_prune(const struct kb_bm25 *ix, struct kb_store *store, const char *match,
                  char **out, struct kb_err *err)
{
    *out = NULL;
    int32_t *terms;
    size_t n_terms;
    int rc = bm25_match_terms(ix, store, match, &terms, &n_terms, err);
    if (rc)
        return rc;
    struct bm25_df df = { ix, terms };
    rc = kb_lexical_prune_by(match, (int64_t)ix->n_chunks, bm25_df, &df, out, err);
    free(terms);
    return rc;
}

/* ---- top k --------------------------------------------------------------------------- */

struct bm25_entry {
    double score;
    uint32_t chunk;
};

/* The best k so far as a heap with the worst at the root; with grouping, one entry per
 * document and slot[document] its place (-1: none). */
struct bm25_topk {
    struct bm25_entry *heap;
    size_t n, k;
    int32_t *slot;
    const uint32_t *chunk_doc;
};

/* Later chunks lose ties: FTS5 returns equal scores in rowid order. */
static int bm25_worse(const struct bm25_entry *a, const struct bm25_entry *b)
{
    return a->score < b->score || (a->score == b->score && a->chunk > b->chunk);
}

static void bm25_place(struct bm25_topk *t, size_t i, struct bm25_entry e)
{
    t->heap[i] = e;
    if (t->slot)
        t->slot[t->chunk_doc[e.chunk]] = (int32_t)i;
}

static void bm25_sift_down(struct bm25_topk *t, size_t i)
{
    struct bm25_entry e = t->heap[i];
    for (size_t c; (c = 2 * i + 1) < t->n; i = c) {
        if (c + 1 < t->n && bm25_worse(&t->heap[c + 1], &t->heap[c]))
            c++;
        if (!bm25_worse(&t->heap[c], &e))
            break;
        bm25_place(t, i, t->heap[c]);
    }
    bm25_place(t, i, e);
}

static void bm25_sift_up(struct bm25_topk *t, size_t i)
{
    struct bm25_entry e = t->heap[i];
    for (; i > 0 && bm25_worse(&e, &t->heap[(i - 1) / 2]); i = (i - 1) / 2)
        bm25_place(t, i, t->heap[(i - 1) / 2]);
    bm25_place(t, i, e);
}

static void bm25_offer(struct bm25_topk *t, uint32_t chunk, double score)
{
    struct bm25_entry e = { score, chunk };
    if (t->slot) {
        int32_t at = t->slot[t->chunk_doc[chunk]];
        if (at >= 0) { /* the document's best chunk so far: keep the better */
            if (score > t->heap[at].score) {
                t->heap[at] = e;
                bm25_sift_down(t, (size_t)at);
            }
            return;
        }
    }
    if (t->n < t->k) {
        t->n++;
        bm25_place(t, t->n - 1, e);
        bm25_sift_up(t, t->n - 1);
    } else if (bm25_worse(&t->heap[0], &e)) {
        if (t->slot)
            t->slot[t->chunk_doc[t->heap[0].chunk]] = -1;
        bm25_place(t, 0, e);
        bm25_sift_down(t, 0);
    }
}

/* 1 when a chunk scoring at most `bound` cannot enter the top k. Bounds are sums of upper
 * bounds, so a margin far above rounding keeps the pruning exact. */
static int bm25_cannot_enter(const struct bm25_topk *t, double bound)
{
    return t->n == t->k && bound < t->heap[0].score * (1 - 1e-9);
}

/* One query term: its postings, cursor and bounds. */
struct bm25_term {
    const struct bm25_list *list;
    uint32_t pos;
    unsigned mult;           /* how many of the query's phrases are this term */
    double idf, ub, cum;     /* cum: Σ ub of this and the terms before it (by ub) */
    double part;             /* this term's bm25 share for the current chunk */
};

static int bm25_cmp_ub(const void *a, const void *b)
{
    const struct bm25_term *x = a, *y = b;
    return (x->ub > y->ub) - (x->ub < y->ub);
}

/* fts5_aux.c fts5Bm25Function, term by term, written as FTS5 writes it. */
static double bm25_part(const struct kb_bm25 *ix, const struct bm25_term *t, double tf,
                        uint32_t chunk)
{
    const double k1 = BM25_K1, b = BM25_B;
    double D = (double)ix->chunk_len[chunk];
    return t->idf * ((tf * (k1 + 1.0)) / (tf + k1 * (1 - b + b * D / ix->avgdl)));
}

/* First position at or after pos whose chunk is >= chunk (galloping, then binary search). */
static uint32_t bm25_seek(const struct bm25_list *l, uint32_t pos, uint32_t chunk)
{
    if (pos >= l->n || l->p[pos].chunk >= chunk)
        return pos;
    uint32_t lo = pos, hi = pos + 1, step = 1;
    while (hi < l->n && l->p[hi].chunk < chunk) {
        lo = hi;
        step *= 2;
        hi = l->n - lo > step ? lo + step : l->n;
    }
    for (lo++; lo < hi; ) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (l->p[mid].chunk < chunk)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The distinct terms of the query with their idf and bounds, sorted by bound; phrase[i] is
 * phrase i's entry (-1: no chunk has it). */
static size_t bm25_terms(const struct kb_bm25 *ix, const int32_t *ids, size_t n_ids,
                         struct bm25_term *terms, int32_t *phrase, int32_t *term_of)
{
    size_t n = 0;
    for (size_t i = 0; i < n_ids; i++) {
        size_t j = 0;
        while (j < n && ids[i] >= 0 && term_of[j] != ids[i])
            j++;
        if (ids[i] < 0)
            continue;
        if (j == n) {
            const struct bm25_list *l = &ix->lists[ids[i]];
            double hit = (double)l->n, rows = (double)ix->n_chunks;
            double idf = log((rows - hit + 0.5) / (hit + 0.5));
            term_of[n] = ids[i];
            terms[n++] = (struct bm25_term){ l, 0, 0, idf <= 0.0 ? 1e-6 : idf, 0, 0, 0 };
        }
        terms[j].mult++;
    }
    for (size_t j = 0; j < n; j++)
        terms[j].ub = terms[j].mult * terms[j].idf * (BM25_K1 + 1.0) * (1 + 1e-9);
    qsort(terms, n, sizeof *terms, bm25_cmp_ub);
    for (size_t i = 0; i < n_ids; i++) {
        phrase[i] = -1;
        for (size_t j = 0; j < n && ids[i] >= 0; j++)
            if (terms[j].list == &ix->lists[ids[i]])
                phrase[i] = (int32_t)j;
    }
    for (size_t j = 0; j < n; j++)
        terms[j].cum = terms[j].ub + (j ? terms[j - 1].cum : 0);
    return n;
}

/* Probes the non-essential terms (those before `first`) for chunk c, largest bound first,
 * while the chunk can still enter the top k. Returns 1 when it was scored in full. */
static int bm25_probe(const struct kb_bm25 *ix, struct bm25_term *terms, size_t first,
                      uint32_t c, double partial, const struct bm25_topk *t)
{
    for (size_t i = first; i-- > 0; ) {
        struct bm25_term *tm = &terms[i];
        if (bm25_cannot_enter(t, partial + tm->cum))
            return 0;
        tm->pos = bm25_seek(tm->list, tm->pos, c);
        tm->part = 0;
        if (tm->pos < tm->list->n && tm->list->p[tm->pos].chunk == c) {
            tm->part = bm25_part(ix, tm, tm->list->p[tm->pos].tf, c);
            partial += tm->mult * tm->part;
        }
    }
    return 1;
}

/* The chunk's score summed phrase by phrase, in the query's order, as FTS5 sums it. */
static double bm25_sum(const struct bm25_term *terms, const int32_t *phrase, size_t n_phrases)
{
    double score = 0;
    for (size_t i = 0; i < n_phrases; i++)
        if (phrase[i] >= 0)
            score += terms[phrase[i]].part;
    return score;
}

/* MaxScore (Turtle & Flood 1995), document at a time: terms are sorted by upper bound; while
 * the first ones' bounds add up to less than the k-th best score, no chunk they alone contain
 * can enter, so candidates come only from the other ("essential") lists and those terms are
 * looked up in their lists for each candidate, not walked. */
static void bm25_maxscore(const struct kb_bm25 *ix, struct bm25_term *terms, size_t n,
                          const int32_t *phrase, size_t n_phrases, struct bm25_topk *t)
{
    size_t first = 0;
    for (;;) {
        while (first < n && bm25_cannot_enter(t, terms[first].cum))
            first++;
        uint32_t c = UINT32_MAX;
        for (size_t i = first; i < n; i++)
            if (terms[i].pos < terms[i].list->n && terms[i].list->p[terms[i].pos].chunk < c)
                c = terms[i].list->p[terms[i].pos].chunk;
        if (c == UINT32_MAX)
            return;
        double partial = 0;
        for (size_t i = first; i < n; i++) {
            struct bm25_term *tm = &terms[i];
            tm->part = 0;
            if (tm->pos < tm->list->n && tm->list->p[tm->pos].chunk == c) {
                tm->part = bm25_part(ix, tm, tm->list->p[tm->pos].tf, c);
                tm->pos++;
                partial += tm->mult * tm->part;
            }
        }
        if (bm25_probe(ix, terms, first, c, partial, t))
            bm25_offer(t, c, bm25_sum(terms, phrase, n_phrases));
    }
}

static int bm25_cmp_best(const void *a, const void *b)
{
    return bm25_worse(a, b) - bm25_worse(b, a);
}

/* The heap's entries best first, as hits. */
static void bm25_hits(const struct kb_bm25 *ix, struct bm25_topk *t, struct kb_lexical_hit *hits)
{
    qsort(t->heap, t->n, sizeof *t->heap, bm25_cmp_best);
    for (size_t i = 0; i < t->n; i++) {
        uint32_t c = t->heap[i].chunk;
        hits[i] = (struct kb_lexical_hit){ ix->chunk_ids[c], ix->doc_ids[ix->chunk_doc[c]],
                                           t->heap[i].score };
    }
}

int kb_bm25_search(const struct kb_bm25 *ix, struct kb_store *store, const char *match,
                   size_t k, int group_by_doc, struct kb_lexical_hit **out, size_t *n_out,
                   struct kb_err *err)
{
    *out = NULL;
    *n_out = 0;
    int32_t *ids;
    size_t n_ids;
    int rc = bm25_match_terms(ix, store, match, &ids, &n_ids, err);
    if (rc)
        return rc;
    k = k < ix->n_chunks ? k : ix->n_chunks;
    struct bm25_term *terms = malloc((n_ids + 1) * sizeof *terms);
    int32_t *phrase = malloc((n_ids + 1) * sizeof *phrase);
    int32_t *term_of = malloc((n_ids + 1) * sizeof *term_of);
    struct bm25_topk t = { malloc((k + 1) * sizeof *t.heap), 0, k, NULL, ix->chunk_doc };
    struct kb_lexical_hit *hits = malloc((k + 1) * sizeof *hits);
    if (group_by_doc && (t.slot = malloc((ix->n_docs + 1) * sizeof *t.slot)))
        memset(t.slot, 0xff, (ix->n_docs + 1) * sizeof *t.slot);
    if (!terms || !phrase || !term_of || !t.heap || !hits || (group_by_doc && !t.slot)) {
        rc = kb_err_set(err, KB_ENOMEM, "out of memory");
    } else if (k > 0) {
        size_t n = bm25_terms(ix, ids, n_ids, terms, phrase, term_of);
        bm25_maxscore(ix, terms, n, phrase, n_ids, &t);
        bm25_hits(ix, &t, hits);
    }
    free(ids);
    free(terms);
    free(phrase);
    free(term_of);
    free(t.slot);
    free(t.heap);
    if (rc) {
        free(hits);
        return rc;
    }
    *out = hits;
    *n_out = t.n;
    return 0;
}
