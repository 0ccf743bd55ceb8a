/* store_int.h — what index/ modules share behind store.h. Not for use outside index/. */
#ifndef KB_INDEX_STORE_INT_H
#define KB_INDEX_STORE_INT_H

#include <sqlite3.h>

#include "index/store.h"

#define KB_STORE_APPLICATION_ID 0x6B624B42 /* "kbKB" */

struct kb_store {
    sqlite3 *db;
    char *dir;
    char *db_path;
    int lock_fd;            /* -1 when the writer lock is not held */
    unsigned flags;
    int in_run;             /* between kb_store_begin and kb_store_commit / _rollback */
};

/* Turns the database's last error into ours: "<db_path>: <what>: <sqlite message>". */
int kb_store_sql_error(struct kb_store *store, const char *what, struct kb_err *err);

/* Prepares sql or records the error. */
int kb_store_prepare(struct kb_store *store, const char *sql, sqlite3_stmt **out,
                     struct kb_err *err);

/* Runs a query returning one integer (the first column of the first row). */
int kb_store_query_int(struct kb_store *store, const char *sql, int64_t *out,
                       struct kb_err *err);

/* The SQL condition for a kb_filter over documents aliased `d` ("1" when none), binding
 * parameters from ?first on; kb_filter_bind binds them in the same order. */
const char *kb_filter_sql(const struct kb_filter *f, char *buf, size_t size, int first);
void kb_filter_bind(const struct kb_filter *f, sqlite3_stmt *st, int first);

/* schema.c: the current schema version and the forward migrations to reach it. */
#define KB_SCHEMA_VERSION 7
int kb_schema_migrate(struct kb_store *store, struct kb_err *err);

#endif
