/* check.c — verifies a KB's database: SQLite's own checks, the FTS5 index, and kb's invariants. */
#include "index/store_int.h"

#include <string.h>

/* Each invariant is a query that returns the first offending row's description, or nothing. */
static const struct {
    const char *sql;
    const char *what;
} check_invariants[] = {
    { "SELECT 'chunk ' || id || ' belongs to missing document ' || doc_id FROM chunks"
      " WHERE doc_id NOT IN (SELECT id FROM documents) LIMIT 1", "orphan chunk" },
    { "SELECT 'document ' || path || ' has no chunks' FROM documents d"
      " WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.doc_id = d.id) LIMIT 1",
      "empty document" },
    { "SELECT 'chunk ' || id || ' has byte range ' || byte_start || '-' || byte_end ||"
      " ' but ' || length(CAST(text AS BLOB)) || ' bytes of text' FROM chunks"
      " WHERE byte_end <= byte_start OR byte_end - byte_start != length(CAST(text AS BLOB))"
      " OR line_end < line_start OR line_start < 1 LIMIT 1", "bad chunk range" },
    { "SELECT 'document ' || d.path || ' has chunk ordinals with gaps' FROM documents d"
      " JOIN chunks c ON c.doc_id = d.id GROUP BY d.id"
      " HAVING max(c.ordinal) != count(*) - 1 OR min(c.ordinal) != 0 LIMIT 1",
      "chunk ordinals" },
    { "SELECT 'full-text index has ' || (SELECT count(*) FROM chunks_fts_docsize) ||"
      " ' rows for ' || (SELECT count(*) FROM chunks) || ' chunks'"
      " WHERE (SELECT count(*) FROM chunks_fts_docsize) != (SELECT count(*) FROM chunks)",
      "full-text row count" },
    { "SELECT 'kb_meta counts ' || value || ' chunks, the table has ' ||"
      " (SELECT count(*) FROM chunks) FROM kb_meta WHERE key = 'chunks_count'"
      " AND CAST(value AS INTEGER) != (SELECT count(*) FROM chunks)", "chunk count" },
};

static int check_integrity(struct kb_store *store, struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "PRAGMA integrity_check", &st, err);
    if (rc)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW)
        rc = kb_store_sql_error(store, "integrity check", err);
    else if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
        rc = kb_err_set(err, KB_ECORRUPT, "%s: SQLite integrity check: %s", store->db_path,
                        (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return rc;
}

static int check_fts(struct kb_store *store, struct kb_err *err)
{
    /* With rank 1, FTS5 also compares the index against the content table (chunks). */
    if (sqlite3_exec(store->db,
                     "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1)",
                     NULL, NULL, NULL) != SQLITE_OK) {
        int rc = kb_store_sql_error(store, "full-text index check", err);
        return rc == KB_ERROR ? kb_err_set(err, KB_ECORRUPT, "%s: full-text index does not match"
                                           " the chunks: %s", store->db_path,
                                           sqlite3_errmsg(store->db)) : rc;
    }
    return 0;
}

int kb_store_check(struct kb_store *store, struct kb_err *err)
{
    int rc;
    if ((rc = check_integrity(store, err)))
        return rc;
    for (size_t i = 0; i < sizeof check_invariants / sizeof *check_invariants; i++) {
        sqlite3_stmt *st;
        if ((rc = kb_store_prepare(store, check_invariants[i].sql, &st, err)))
            return rc;
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            rc = kb_err_set(err, KB_ECORRUPT, "%s: %s: %s", store->db_path,
                            check_invariants[i].what, (const char *)sqlite3_column_text(st, 0));
        else if (step != SQLITE_DONE)
            rc = kb_store_sql_error(store, check_invariants[i].what, err);
        sqlite3_finalize(st);
        if (rc)
            return rc;
    }
    return check_fts(store, err);
}
