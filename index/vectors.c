/* vectors.c — embeddings, settings and the FAISS file record in the SQLite store. */
#include "index/vectors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/store_int.h"

int kb_store_meta_get(struct kb_store *store, const char *key, char **value,
                      struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "SELECT value FROM kb_meta WHERE key=?", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *value = strdup(v ? v : "");
        rc = *value ? 0 : kb_err_set(err, KB_ENOMEM, "out of memory");
    } else if (step == SQLITE_DONE) {
        rc = KB_ENOTFOUND;
    } else {
        rc = kb_store_sql_error(store, "reading settings", err);
    }
    sqlite3_finalize(st);
    return rc;
}

int kb_store_meta_set(struct kb_store *store, const char *key, const char *value,
                      struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "INSERT OR REPLACE INTO kb_meta(key, value) VALUES (?, ?)",
                              &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = kb_store_sql_error(store, "writing settings", err);
    sqlite3_finalize(st);
    return rc;
}

int64_t kb_store_last_id(struct kb_store *store)
{
    return sqlite3_last_insert_rowid(store->db);
}

int kb_vectors_put(struct kb_store *store, int64_t chunk_id, const char *input_hash,
                   const float *vec, int dim, struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "INSERT OR REPLACE INTO vectors(chunk_id, input_hash, vector)"
                              " VALUES (?, ?, ?)", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, chunk_id);
    sqlite3_bind_text(st, 2, input_hash, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, vec, (int)(sizeof *vec * (size_t)dim), SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = kb_store_sql_error(store, "storing a vector", err);
    sqlite3_finalize(st);
    return rc;
}

int kb_vectors_find_input(struct kb_store *store, const char *input_hash, float *vec, int dim,
                          struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "SELECT vector FROM vectors WHERE input_hash=? LIMIT 1",
                              &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, input_hash, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    rc = 0;
    if (step == SQLITE_ROW && sqlite3_column_bytes(st, 0) == (int)(sizeof *vec * (size_t)dim)) {
        memcpy(vec, sqlite3_column_blob(st, 0), sizeof *vec * (size_t)dim);
        rc = 1;
    } else if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = kb_store_sql_error(store, "reading a vector", err);
    }
    sqlite3_finalize(st);
    return rc;
}

int kb_vectors_missing(struct kb_store *store, int64_t *n, struct kb_err *err)
{
    return kb_store_query_int(store, "SELECT count(*) FROM chunks c"
                              " WHERE NOT EXISTS (SELECT 1 FROM vectors v WHERE v.chunk_id = c.id)",
                              n, err);
}

int kb_vectors_any(struct kb_store *store, int64_t *any, struct kb_err *err)
{
    return kb_store_query_int(store, "SELECT EXISTS (SELECT 1 FROM vectors)", any, err);
}

int kb_vectors_count(struct kb_store *store, int64_t *n, struct kb_err *err)
{
    return kb_store_query_int(store, "SELECT count(*) FROM vectors", n, err);
}

int kb_vectors_of_document(struct kb_store *store, int64_t doc_id, int64_t **ids,
                           char ***hashes, size_t *n, struct kb_err *err)
{
    *ids = NULL;
    *hashes = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "SELECT v.chunk_id, v.input_hash FROM vectors v"
                              " JOIN chunks c ON c.id = v.chunk_id WHERE c.doc_id = ?", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    size_t cap = 0;
    int step = SQLITE_DONE;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            int64_t *ni = realloc(*ids, cap * sizeof *ni);
            if (ni)
                *ids = ni;
            char **nh = realloc(*hashes, cap * sizeof *nh);
            if (nh)
                *hashes = nh;
            if (!ni || !nh) {
                rc = kb_err_set(err, KB_ENOMEM, "out of memory");
                break;
            }
        }
        const char *h = (const char *)sqlite3_column_text(st, 1);
        if (!((*hashes)[*n] = strdup(h ? h : ""))) {
            rc = kb_err_set(err, KB_ENOMEM, "out of memory");
            break;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    if (!rc && step != SQLITE_DONE)
        rc = kb_store_sql_error(store, "reading a document's vectors", err);
    sqlite3_finalize(st);
    return rc;
}

int kb_vectors_rev(struct kb_store *store, int64_t *rev, struct kb_err *err)
{
    return kb_store_query_int(store,
                              "SELECT CAST(value AS INTEGER) FROM kb_meta WHERE key='vectors_rev'",
                              rev, err);
}

/* Copies one row's blob into vecs + i * dim after checking its size. */
static int vectors_copy(struct kb_store *store, sqlite3_stmt *st, int col, int64_t chunk_id,
                        int dim, float *dst, struct kb_err *err)
{
    size_t want = sizeof(float) * (size_t)dim;
    if ((size_t)sqlite3_column_bytes(st, col) != want)
        return kb_err_set(err, KB_ECORRUPT, "%s: vector of chunk %lld has %d bytes, expected "
                          "%zu (dimension %d)", store->db_path, (long long)chunk_id,
                          sqlite3_column_bytes(st, col), want, dim);
    memcpy(dst, sqlite3_column_blob(st, col), want);
    return 0;
}

int kb_vectors_all(struct kb_store *store, int dim, int64_t **ids, float **vecs, size_t *n,
                   struct kb_err *err)
{
    int64_t count = 0;
    int rc = kb_store_query_int(store, "SELECT count(*) FROM vectors", &count, err);
    if (rc)
        return rc;
    size_t cap = count > 0 ? (size_t)count : 1;
    *ids = malloc(cap * sizeof **ids);
    if (vecs)
        *vecs = malloc(cap * (size_t)dim * sizeof **vecs);
    *n = 0;
    if (!*ids || (vecs && !*vecs))
        rc = kb_err_set(err, KB_ENOMEM, "out of memory for %lld vectors", (long long)count);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = kb_store_prepare(store, vecs ? "SELECT chunk_id, vector FROM vectors ORDER BY chunk_id"
                                          : "SELECT chunk_id FROM vectors ORDER BY chunk_id",
                              &st, err);
    int step = SQLITE_DONE;
    while (!rc && *n < cap && (step = sqlite3_step(st)) == SQLITE_ROW) {
        (*ids)[*n] = sqlite3_column_int64(st, 0);
        if (vecs)
            rc = vectors_copy(store, st, 1, (*ids)[*n], dim, *vecs + *n * (size_t)dim, err);
        ++*n;
    }
    if (!rc && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = kb_store_sql_error(store, "reading vectors", err);
    sqlite3_finalize(st);
    if (rc) {
        free(*ids);
        *ids = NULL;
        if (vecs) {
            free(*vecs);
            *vecs = NULL;
        }
    }
    return rc;
}

int kb_vectors_get(struct kb_store *store, const int64_t *ids, size_t n, int dim, float *vecs,
                   struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "SELECT vector FROM vectors WHERE chunk_id=?", &st, err);
    for (size_t i = 0; i < n && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, ids[i]);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            rc = vectors_copy(store, st, 0, ids[i], dim, vecs + i * (size_t)dim, err);
        else if (step == SQLITE_DONE)
            rc = kb_err_set(err, KB_ENOTFOUND, "%s: chunk %lld has no vector", store->db_path,
                            (long long)ids[i]);
        else
            rc = kb_store_sql_error(store, "reading a vector", err);
    }
    sqlite3_finalize(st);
    return rc;
}

int kb_vindex_record_get(struct kb_store *store, struct kb_vindex_record *out,
                         struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "SELECT generation, file, sha256, n_vectors, dim, spec,"
                              " vectors_rev FROM vector_index WHERE id=1", &st, err);
    if (rc)
        return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        out->generation = sqlite3_column_int64(st, 0);
        snprintf(out->file, sizeof out->file, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(out->sha256, sizeof out->sha256, "%s", (const char *)sqlite3_column_text(st, 2));
        out->n_vectors = sqlite3_column_int64(st, 3);
        out->dim = sqlite3_column_int(st, 4);
        snprintf(out->spec, sizeof out->spec, "%s", (const char *)sqlite3_column_text(st, 5));
        out->vectors_rev = sqlite3_column_int64(st, 6);
        rc = 1;
    } else if (step != SQLITE_DONE) {
        rc = kb_store_sql_error(store, "reading the vector index record", err);
    }
    sqlite3_finalize(st);
    return rc;
}

int kb_vindex_record_put(struct kb_store *store, const struct kb_vindex_record *rec,
                         struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "INSERT OR REPLACE INTO vector_index(id, generation, file,"
                              " sha256, n_vectors, dim, spec, vectors_rev, created_at)"
                              " VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, rec->generation);
    sqlite3_bind_text(st, 2, rec->file, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, rec->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, rec->n_vectors);
    sqlite3_bind_int(st, 5, rec->dim);
    sqlite3_bind_text(st, 6, rec->spec, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, rec->vectors_rev);
    sqlite3_bind_int64(st, 8, (int64_t)time(NULL));
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = kb_store_sql_error(store, "recording the vector index", err);
    sqlite3_finalize(st);
    return rc;
}

int kb_store_read_begin(struct kb_store *store, struct kb_err *err)
{
    /* A read whose end failed (SQLite had no memory for the COMMIT nor the ROLLBACK) is
     * still open: end it first, or this handle could never read again. Never a writer's. */
    if (!store->in_run && !sqlite3_get_autocommit(store->db))
        sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
    if (sqlite3_exec(store->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return kb_store_sql_error(store, "starting a read", err);
    return 0;
}

void kb_store_read_end(struct kb_store *store)
{
    /* Nothing was written: COMMIT and ROLLBACK end the read alike, so when one fails (for
     * want of memory to prepare it) the other is tried. */
    if (sqlite3_exec(store->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK &&
        !sqlite3_get_autocommit(store->db))
        sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
}

const char *kb_store_dir(const struct kb_store *store)
{
    return store->dir;
}

int kb_vectors_clear(struct kb_store *store, struct kb_err *err)
{
    if (sqlite3_exec(store->db, "DELETE FROM vectors", NULL, NULL, NULL) != SQLITE_OK)
        return kb_store_sql_error(store, "deleting vectors", err);
    return 0;
}

int kb_store_chunk_texts(struct kb_store *store, int64_t **ids, char ***titles,
                         char ***headings, char ***texts, size_t *n, struct kb_err *err)
{
    int64_t count = 0;
    *ids = NULL;
    *titles = *headings = *texts = NULL;
    *n = 0;
    int rc = kb_store_query_int(store, "SELECT count(*) FROM chunks", &count, err);
    if (rc)
        return rc;
    size_t cap = count > 0 ? (size_t)count : 1;
    *ids = malloc(cap * sizeof **ids);
    *titles = calloc(cap, sizeof **titles);
    *headings = calloc(cap, sizeof **headings);
    *texts = calloc(cap, sizeof **texts);
    if (!*ids || !*titles || !*headings || !*texts)
        return kb_err_set(err, KB_ENOMEM, "out of memory for %lld chunks", (long long)count);
    sqlite3_stmt *st;
    if ((rc = kb_store_prepare(store, "SELECT id, title, heading_path, text FROM chunks ORDER BY id",
                               &st, err)))
        return rc;
    int step = SQLITE_DONE;
    while (*n < cap && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 1);
        const char *h = (const char *)sqlite3_column_text(st, 2);
        const char *x = (const char *)sqlite3_column_text(st, 3);
        (*ids)[*n] = sqlite3_column_int64(st, 0);
        (*titles)[*n] = strdup(t ? t : "");
        (*headings)[*n] = strdup(h ? h : "");
        (*texts)[*n] = strdup(x ? x : "");
        ++*n;
        if (!(*titles)[*n - 1] || !(*headings)[*n - 1] || !(*texts)[*n - 1]) {
            rc = kb_err_set(err, KB_ENOMEM, "out of memory");
            break;
        }
    }
    if (!rc && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = kb_store_sql_error(store, "reading chunks", err);
    sqlite3_finalize(st);
    return rc;
}
