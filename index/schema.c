/* schema.c — the KB's SQLite schema and its forward migrations (PRAGMA user_version). */
#include "index/store_int.h"

#include <stdio.h>

/* Migration i takes a database from user_version i to i + 1. Never edit a released step:
 * add a new one. */
static const char *const schema_migrations[KB_SCHEMA_VERSION] = {
    /* 0 -> 1: documents, chunks, and an FTS5 index kept in step with chunks by triggers. */
    "CREATE TABLE kb_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE documents("
    "  id INTEGER PRIMARY KEY,"
    "  path TEXT NOT NULL UNIQUE,"
    "  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,"
    "  hash TEXT NOT NULL, format TEXT NOT NULL, title TEXT,"
    "  ingested_at INTEGER NOT NULL);"
    /* AUTOINCREMENT: chunk ids are never reused, so caches keyed by them (vectors) can't
     * confuse an old chunk with a new one. */
    "CREATE TABLE chunks("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
    "  ordinal INTEGER NOT NULL,"
    "  text TEXT NOT NULL, title TEXT NOT NULL DEFAULT '', heading_path TEXT NOT NULL DEFAULT '',"
    "  byte_start INTEGER NOT NULL, byte_end INTEGER NOT NULL,"
    "  line_start INTEGER NOT NULL, line_end INTEGER NOT NULL,"
    "  n_tokens INTEGER NOT NULL, hash TEXT NOT NULL,"
    "  UNIQUE(doc_id, ordinal));"
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, title, heading_path,"
    "  content='chunks', content_rowid='id',"
    "  tokenize='porter unicode61 remove_diacritics 2');"
    "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN"
    "  INSERT INTO chunks_fts(rowid, text, title, heading_path)"
    "  VALUES (new.id, new.text, new.title, new.heading_path); END;"
    "CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN"
    "  INSERT INTO chunks_fts(chunks_fts, rowid, text, title, heading_path)"
    "  VALUES ('delete', old.id, old.text, old.title, old.heading_path); END;"
    "CREATE TRIGGER chunks_au AFTER UPDATE ON chunks BEGIN"
    "  INSERT INTO chunks_fts(chunks_fts, rowid, text, title, heading_path)"
    "  VALUES ('delete', old.id, old.text, old.title, old.heading_path);"
    "  INSERT INTO chunks_fts(rowid, text, title, heading_path)"
    "  VALUES (new.id, new.text, new.title, new.heading_path); END;",
    /* 1 -> 2: where a chunk lies in its source beyond its line range: the PDF page it starts
     * on (0 = not paged) and a readable location ("page 3", "pages 3-4", "chapter 2: Title",
     * "rows 2-9"; "" when the line range says it all). */
    "ALTER TABLE chunks ADD COLUMN page INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE chunks ADD COLUMN location TEXT NOT NULL DEFAULT '';",
    /* 2 -> 3: embeddings. vectors holds each chunk's embedding (float32 little-endian, the
     * source of truth) and the hash of the exact text that was embedded, so an unchanged
     * passage is never embedded twice. vectors_rev (kb_meta) counts every change, and
     * vector_index records the FAISS file (a cache) built at a given vectors_rev. */
    "CREATE TABLE vectors("
    "  chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,"
    "  input_hash TEXT NOT NULL,"
    "  vector BLOB NOT NULL);"
    "CREATE INDEX vectors_input_hash ON vectors(input_hash);"
    "INSERT INTO kb_meta(key, value) VALUES ('vectors_rev', '0');"
    "CREATE TRIGGER vectors_ai AFTER INSERT ON vectors BEGIN"
    "  UPDATE kb_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'vectors_rev'; END;"
    "CREATE TRIGGER vectors_ad AFTER DELETE ON vectors BEGIN"
    "  UPDATE kb_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'vectors_rev'; END;"
    "CREATE TABLE vector_index("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  generation INTEGER NOT NULL, file TEXT NOT NULL, sha256 TEXT NOT NULL,"
    "  n_vectors INTEGER NOT NULL, dim INTEGER NOT NULL, spec TEXT NOT NULL,"
    "  vectors_rev INTEGER NOT NULL, created_at INTEGER NOT NULL);",
    /* 3 -> 4: documents by content hash, so a renamed file is found and moved, not
     * re-ingested. */
    "CREATE INDEX documents_hash ON documents(hash);",
    /* 4 -> 5: a document's metadata from the program that stored it (a JSON object as text,
     * e.g. a URL or tags), returned with its search results. NULL for files. */
    "ALTER TABLE documents ADD COLUMN meta TEXT;",
    /* 5 -> 6: chunks_rev (kb_meta) counts every insert, update and delete of a chunk, so that
     * an in-memory BM25 index (index/bm25.h) built at one revision knows when it is stale. */
    "INSERT INTO kb_meta(key, value) VALUES ('chunks_rev', '0');"
    "CREATE TRIGGER chunks_rev_ai AFTER INSERT ON chunks BEGIN"
    "  UPDATE kb_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'chunks_rev'; END;"
    "CREATE TRIGGER chunks_rev_ad AFTER DELETE ON chunks BEGIN"
    "  UPDATE kb_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'chunks_rev'; END;"
    "CREATE TRIGGER chunks_rev_au AFTER UPDATE ON chunks BEGIN"
    "  UPDATE kb_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'chunks_rev'; END;",
    /* 6 -> 7: chunks_count (kb_meta), the number of chunks, kept by triggers: BM25's pruning
     * of common terms needs it on every search, and count(*) walks an index (~1 ms at 100k
     * chunks in a new connection), while ids, never reused, say nothing of it after churn. */
    "INSERT INTO kb_meta(key, value) VALUES ('chunks_count', (SELECT count(*) FROM chunks));"
    "CREATE TRIGGER chunks_count_ai AFTER INSERT ON chunks BEGIN"
    "  UPDATE kb_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'chunks_count'; END;"
    "CREATE TRIGGER chunks_count_ad AFTER DELETE ON chunks BEGIN"
    "  UPDATE kb_meta SET value = CAST(value AS INTEGER) - 1 WHERE key = 'chunks_count'; END;",
};

static int schema_version(struct kb_store *store, int *out, struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "PRAGMA user_version", &st, err);
    if (rc)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW)
        rc = kb_store_sql_error(store, "reading schema version", err);
    else
        *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc;
}

static int schema_apply(struct kb_store *store, int from, struct kb_err *err)
{
    char pragma[96];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d; PRAGMA application_id=%d;",
             from + 1, KB_STORE_APPLICATION_ID);
    if (sqlite3_exec(store->db, schema_migrations[from], NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(store->db, pragma, NULL, NULL, NULL) != SQLITE_OK)
        return kb_store_sql_error(store, "migrating schema", err);
    return 0;
}

int kb_schema_migrate(struct kb_store *store, struct kb_err *err)
{
    int version = 0, rc = schema_version(store, &version, err);
    if (rc)
        return rc;
    if (version > KB_SCHEMA_VERSION)
        return kb_err_set(err, KB_EVERSION,
                          "%s: written by a newer kb (schema %d, this kb knows up to %d)",
                          store->db_path, version, KB_SCHEMA_VERSION);
    if (version == KB_SCHEMA_VERSION)
        return 0;
    if (store->flags & KB_STORE_READONLY)
        return kb_err_set(err, KB_EVERSION,
                          "%s: schema %d needs migrating to %d; open it for writing once",
                          store->db_path, version, KB_SCHEMA_VERSION);
    /* All steps in one transaction: a crash leaves the old schema, never half a new one. */
    if ((rc = kb_store_begin(store, err)))
        return rc;
    for (int v = version; v < KB_SCHEMA_VERSION && rc == 0; v++)
        rc = schema_apply(store, v, err);
    if (rc == 0)
        rc = kb_store_commit(store, err);
    if (rc)
        kb_store_rollback(store);
    return rc;
}
