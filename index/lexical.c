/* lexical.c — BM25 over FTS5: safe query construction, ranking, and snippets. */
#include "index/lexical.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#include "index/store_int.h"
#include "util/buf.h"

/* Lucene's English stopword set (what BEIR's and Anserini's BM25 baselines drop). */
static const char *const lexical_stopwords[] = {
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "will", "with",
};

static int lexical_is_stopword(const char *word, size_t len)
{
    for (size_t i = 0; i < sizeof lexical_stopwords / sizeof *lexical_stopwords; i++)
        if (strlen(lexical_stopwords[i]) == len && !strncasecmp(lexical_stopwords[i], word, len))
            return 1;
    return 0;
}

static int lexical_is_word_char(utf8proc_int32_t cp)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: case UTF8PROC_CATEGORY_CO:
        return 1;
    default:
        return 0;
    }
}

/* 1 when q (terms `"w1" OR "w2" ...`) already has `"word"`, ignoring ASCII case. */
static int lexical_has_term(const struct kb_buf *q, const char *word, size_t len)
{
    for (const char *p = q->data; p && (p = strchr(p, '"')); ) {
        const char *end = strchr(p + 1, '"');
        if ((size_t)(end - p - 1) == len && !strncasecmp(p + 1, word, len))
            return 1;
        p = end + 1;
    }
    return 0;
}

/* Appends `"word"` (words never contain '"', so no escaping is needed) unless already there:
 * a repeated word must not count twice. */
static int lexical_add_term(struct kb_buf *q, const char *word, size_t len)
{
    if (lexical_has_term(q, word, len))
        return 0;
    return kb_buf_printf(q, "%s\"%.*s\"", q->len ? " OR " : "", (int)len, word);
}

/* Collects the words of text into an OR query; with skip_stop, stopwords are left out. */
static int lexical_collect(struct kb_buf *q, const char *text, int skip_stop)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    size_t len = strlen(text), i = 0, start = 0;
    int in_word = 0, rc = 0;
    while (rc == 0 && i <= len) {
        utf8proc_int32_t cp = 0;
        utf8proc_ssize_t n = 1;
        if (i < len && (n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp)) < 1) {
            n = 1;  /* invalid byte: a separator */
            cp = ' ';
        }
        int word = i < len && lexical_is_word_char(cp);
        if (word && !in_word)
            start = i;
        if (!word && in_word && !(skip_stop && lexical_is_stopword(text + start, i - start)))
            rc = lexical_add_term(q, text + start, i - start);
        in_word = word;
        i += (size_t)n;
    }
    return rc;
}

int kb_lexical_query(char **out, const char *text, struct kb_err *err)
{
    struct kb_buf q = KB_BUF_INIT;
    q.max = 1 << 20;
    *out = NULL;
    int rc = lexical_collect(&q, text, 1);
    if (rc == 0 && q.len == 0)
        rc = lexical_collect(&q, text, 0); /* a query of only stopwords still searches */
    if (rc) {
        kb_buf_free(&q);
        return kb_err_set(err, rc, "query too long or out of memory");
    }
    if (q.len)
        *out = kb_buf_detach(&q);
    return 0;
}

/* How many chunks contain `term` (a quoted FTS5 term); -1 on error. */
static int64_t lexical_df(size_t i, const char *term, size_t len, void *payload)
{
    sqlite3_stmt *count = payload;
    (void)i;
    sqlite3_reset(count);
    sqlite3_bind_text(count, 1, term, (int)len, SQLITE_TRANSIENT);
    return sqlite3_step(count) == SQLITE_ROW ? sqlite3_column_int64(count, 0) : -1;
}

int kb_lexical_prune_by(const char *match, int64_t n_chunks, kb_lexical_df_fn df,
                        void *payload, char **out, struct kb_err *err)
{
    *out = NULL;
    if (n_chunks < 200)
        return 0;
    struct kb_buf q = KB_BUF_INIT;
    size_t kept = 0, total = 0;
    int rc = 0;
    for (const char *p = match; (p = strchr(p, '"')); total++) {
        const char *end = strchr(p + 1, '"');
        int64_t n = df(total, p, (size_t)(end - p + 1), payload);
        if (n >= 0 && (double)n <= KB_LEXICAL_COMMON_FRACTION * (double)n_chunks) {
            if (kb_buf_printf(&q, "%s%.*s", q.len ? " OR " : "", (int)(end - p + 1), p))
                rc = kb_err_set(err, KB_ENOMEM, "out of memory");
            kept++;
        }
        p = end + 1;
    }
    if (!rc && kept && kept < total)
        *out = kb_buf_detach(&q);
    kb_buf_free(&q);
    return rc;
}

int kb_lexical_prune(struct kb_store *store, const char *match, char **out,
                     struct kb_err *err)
{
    *out = NULL;
    int64_t n_chunks = 0;
    /* kept by triggers (index/schema.c): count(*) would walk an index on every search */
    int rc = kb_store_query_int(store, "SELECT CAST(value AS INTEGER) FROM kb_meta"
                                " WHERE key='chunks_count'", &n_chunks, err);
    if (rc || n_chunks < 200)
        return rc;
    sqlite3_stmt *count;
    if ((rc = kb_store_prepare(store, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
                               &count, err)))
        return rc;
    rc = kb_lexical_prune_by(match, n_chunks, lexical_df, count, out, err);
    sqlite3_finalize(count);
    return rc;
}

/* Adds a hit unless group_by_doc and its document is already there. Returns 1 when added. */
static int lexical_take(struct kb_lexical_hit *hits, size_t *n, int group_by_doc,
                        const struct kb_lexical_hit *hit)
{
    if (group_by_doc)
        for (size_t i = 0; i < *n; i++)
            if (hits[i].doc_id == hit->doc_id)
                return 0;
    hits[(*n)++] = *hit;
    return 1;
}

int kb_lexical_search(struct kb_store *store, const char *match, size_t k, int group_by_doc,
                      const struct kb_filter *filter, struct kb_lexical_hit **out,
                      size_t *n_out, struct kb_err *err)
{
    *out = NULL;
    *n_out = 0;
    struct kb_lexical_hit *hits = calloc(k ? k : 1, sizeof *hits);
    if (!hits)
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    sqlite3_stmt *st;
    /* Rows arrive best first; without grouping, LIMIT lets FTS5 keep only the top k. Filters
     * join the documents (parameters from ?6). */
    char cond[256], sql[768];
    int filtered = kb_filter_active(filter);
    /* Without filters the ranking touches only the FTS5 index; each hit's document is read
     * after, for the few rows kept (a join would look up every matching row). */
    if (filtered)
        snprintf(sql, sizeof sql,
                 "SELECT c.id, c.doc_id, -bm25(chunks_fts, ?2, ?3, ?4) FROM chunks_fts"
                 " JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.doc_id"
                 " WHERE chunks_fts MATCH ?1 AND %s ORDER BY bm25(chunks_fts, ?2, ?3, ?4)%s",
                 kb_filter_sql(filter, cond, sizeof cond, 6), group_by_doc ? "" : " LIMIT ?5");
    else
        snprintf(sql, sizeof sql,
                 "SELECT rowid, 0, -bm25(chunks_fts, ?2, ?3, ?4) FROM chunks_fts"
                 " WHERE chunks_fts MATCH ?1 ORDER BY bm25(chunks_fts, ?2, ?3, ?4)%s",
                 group_by_doc ? "" : " LIMIT ?5");
    int rc = kb_store_prepare(store, sql, &st, err);
    if (rc) {
        free(hits);
        return rc;
    }
    sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, KB_LEXICAL_W_TEXT);
    sqlite3_bind_double(st, 3, KB_LEXICAL_W_TITLE);
    sqlite3_bind_double(st, 4, KB_LEXICAL_W_HEADING);
    if (!group_by_doc)
        sqlite3_bind_int64(st, 5, (int64_t)k);
    kb_filter_bind(filter, st, 6);
    sqlite3_stmt *doc = NULL;
    if (!filtered && (rc = kb_store_prepare(store, "SELECT doc_id FROM chunks WHERE id=?", &doc,
                                            err))) {
        sqlite3_finalize(st);
        free(hits);
        return rc;
    }
    size_t n = 0;
    int step;
    while (n < k && (step = sqlite3_step(st)) == SQLITE_ROW) {
        struct kb_lexical_hit hit = { sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                                      sqlite3_column_double(st, 2) };
        if (doc) {
            sqlite3_reset(doc);
            sqlite3_bind_int64(doc, 1, hit.chunk_id);
            hit.doc_id = sqlite3_step(doc) == SQLITE_ROW ? sqlite3_column_int64(doc, 0) : 0;
        }
        lexical_take(hits, &n, group_by_doc, &hit);
    }
    if (n < k && step != SQLITE_DONE)
        rc = kb_store_sql_error(store, "searching", err);
    sqlite3_finalize(doc);
    sqlite3_finalize(st);
    if (rc) {
        free(hits);
        return rc;
    }
    *out = hits;
    *n_out = n;
    return 0;
}

static char *lexical_dup_column(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return strdup(s ? s : "");
}

/* The row of one chunk; with a match, the snippet marks its terms; without one (or when the
 * chunk does not match, as a vector hit may not), the snippet is the passage's opening. */
static int lexical_fetch_one(struct kb_store *store, const char *match, int64_t chunk_id,
                             const char *hl_open, const char *hl_close,
                             struct kb_lexical_row *out, struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, match
        ? "SELECT d.path, c.title, c.heading_path, d.format, c.text,"
          " snippet(chunks_fts, 0, ?3, ?4, '…', 24),"
          " c.byte_start, c.byte_end, c.line_start, c.line_end, c.doc_id, c.page, c.location,"
          " d.meta FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid"
          " JOIN documents d ON d.id = c.doc_id"
          " WHERE chunks_fts MATCH ?1 AND chunks_fts.rowid = ?2"
        : "SELECT d.path, c.title, c.heading_path, d.format, c.text,"
          " CASE WHEN length(c.text) > 200 THEN substr(c.text, 1, 200) || '…' ELSE c.text END,"
          " c.byte_start, c.byte_end, c.line_start, c.line_end, c.doc_id, c.page, c.location,"
          " d.meta FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = ?2", &st, err);
    if (rc)
        return rc;
    if (match)
        sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, chunk_id);
    if (match) {
        sqlite3_bind_text(st, 3, hl_open ? hl_open : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, hl_close ? hl_close : "", -1, SQLITE_STATIC);
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = KB_ENOTFOUND;
    } else if (step != SQLITE_ROW) {
        rc = kb_store_sql_error(store, "reading a result", err);
    } else {
        out->path = lexical_dup_column(st, 0);
        out->title = lexical_dup_column(st, 1);
        out->heading_path = lexical_dup_column(st, 2);
        out->format = lexical_dup_column(st, 3);
        out->text = lexical_dup_column(st, 4);
        out->snippet = lexical_dup_column(st, 5);
        out->byte_start = (uint64_t)sqlite3_column_int64(st, 6);
        out->byte_end = (uint64_t)sqlite3_column_int64(st, 7);
        out->line_start = (uint32_t)sqlite3_column_int64(st, 8);
        out->line_end = (uint32_t)sqlite3_column_int64(st, 9);
        out->doc_id = sqlite3_column_int64(st, 10);
        out->page = (uint32_t)sqlite3_column_int64(st, 11);
        out->location = lexical_dup_column(st, 12);
        out->meta = sqlite3_column_type(st, 13) == SQLITE_NULL ? NULL : lexical_dup_column(st, 13);
        if (!out->path || !out->title || !out->heading_path || !out->format || !out->text ||
            !out->snippet || !out->location) {
            kb_lexical_row_free(out);
            rc = kb_err_set(err, KB_ENOMEM, "out of memory");
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int kb_lexical_fetch(struct kb_store *store, const char *match, int64_t chunk_id,
                     const char *hl_open, const char *hl_close, struct kb_lexical_row *out,
                     struct kb_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = lexical_fetch_one(store, match, chunk_id, hl_open, hl_close, out, err);
    if (rc == KB_ENOTFOUND && match)
        rc = lexical_fetch_one(store, NULL, chunk_id, hl_open, hl_close, out, err);
    if (rc == KB_ENOTFOUND)
        rc = kb_err_set(err, KB_ENOTFOUND, "chunk %lld is gone", (long long)chunk_id);
    return rc;
}

void kb_lexical_row_free(struct kb_lexical_row *row)
{
    if (!row)
        return;
    free(row->path);
    free(row->title);
    free(row->heading_path);
    free(row->format);
    free(row->text);
    free(row->snippet);
    free(row->location);
    free(row->meta);
    memset(row, 0, sizeof *row);
}

/* A SQLite varint (big-endian groups of 7 bits, the ninth byte whole) at p[*at..n); -1 when
 * it runs past the end. */
static int64_t lexical_varint(const unsigned char *p, size_t n, size_t *at)
{
    uint64_t v = 0;
    for (int i = 0; i < 9; i++) {
        if (*at >= n)
            return -1;
        unsigned char b = p[(*at)++];
        if (i == 8)
            return (int64_t)((v << 8) | b);
        v = (v << 7) | (b & 0x7f);
        if (!(b & 0x80))
            return (int64_t)v;
    }
    return -1;
}

int kb_lexical_segments(struct kb_store *store, int64_t *out, struct kb_err *err)
{
    sqlite3_stmt *st;
    *out = -1;
    /* FTS5's structure record (rowid 10 of its %_data table): [FF 00 00 01 when version 2],
     * a 4-byte cookie, then varints: levels, segments, ... (sqlite's fts5_index.c). */
    int rc = kb_store_prepare(store, "SELECT block FROM chunks_fts_data WHERE id = 10", &st, err);
    if (rc)
        return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const unsigned char *p = sqlite3_column_blob(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0), at = 4;
        if (p && n >= 4 && !memcmp(p, "\xff\x00\x00\x01", 4))
            at = 8;
        if (p && lexical_varint(p, n, &at) >= 0)
            *out = lexical_varint(p, n, &at);
    } else if (step != SQLITE_DONE) {
        rc = kb_store_sql_error(store, "reading the full-text index's structure", err);
    } else {
        *out = 0; /* nothing indexed yet */
    }
    sqlite3_finalize(st);
    return rc;
}

int kb_lexical_compact(struct kb_store *store, int max_segments, struct kb_err *err)
{
    int64_t n = 0;
    int rc = kb_lexical_segments(store, &n, err);
    if (rc || n <= max_segments)
        return rc; /* also an unreadable record (-1): searches still work, only slower */
    if (sqlite3_exec(store->db, "INSERT INTO chunks_fts(chunks_fts) VALUES('optimize')", NULL,
                     NULL, NULL) != SQLITE_OK)
        return kb_store_sql_error(store, "merging the full-text index", err);
    return 0;
}
