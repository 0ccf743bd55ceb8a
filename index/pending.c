/* pending.c — a side SQLite file of embeddings a run computed before its commit. */
#include "index/pending.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/path.h"

struct kb_pending {
    sqlite3 *db;
    sqlite3_stmt *get, *put;
    int dim;
    int in_txn;
    struct timespec saved;    /* when the open transaction began */
};

static int pending_sql_error(struct kb_pending *p, const char *what, struct kb_err *err)
{
    return kb_err_set(err, KB_EIO, "%s: %s: %s", KB_PENDING_NAME, what,
                      p->db ? sqlite3_errmsg(p->db) : "cannot open");
}

/* 1 when the file belongs to this model and dimension. */
static int pending_matches(struct kb_pending *p, const char *identity, int dim)
{
    sqlite3_stmt *st;
    int ok = 0;
    if (sqlite3_prepare_v2(p->db, "SELECT identity, dim FROM meta", -1, &st, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *have = (const char *)sqlite3_column_text(st, 0);
        ok = have && !strcmp(have, identity) && sqlite3_column_int(st, 1) == dim;
    }
    sqlite3_finalize(st);
    return ok;
}

static int pending_create(struct kb_pending *p, const char *identity, int dim)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "DROP TABLE IF EXISTS meta; DROP TABLE IF EXISTS vectors;"
             "CREATE TABLE meta(identity TEXT NOT NULL, dim INTEGER NOT NULL);"
             "CREATE TABLE vectors(input_hash TEXT PRIMARY KEY, vector BLOB NOT NULL)"
             " WITHOUT ROWID; INSERT INTO meta VALUES('%.64s', %d);", identity, dim);
    return sqlite3_exec(p->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Opens the file at path, or (fresh) deletes it first. */
static int pending_try_open(struct kb_pending *p, const char *path, const char *identity,
                            int dim, int fresh)
{
    if (fresh)
        unlink(path);
    if (sqlite3_open_v2(path, &p->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        return -1;
    /* A cache: a killed process keeps what it committed (WAL), a power cut may lose the tail. */
    if (sqlite3_exec(p->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;", NULL, NULL,
                     NULL) != SQLITE_OK)
        return -1;
    if (!pending_matches(p, identity, dim) && pending_create(p, identity, dim) != 0)
        return -1;
    if (sqlite3_prepare_v2(p->db, "SELECT vector FROM vectors WHERE input_hash=?", -1, &p->get,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(p->db, "INSERT OR REPLACE INTO vectors VALUES(?, ?)", -1, &p->put,
                           NULL) != SQLITE_OK)
        return -1;
    return 0;
}

static void pending_release(struct kb_pending *p)
{
    sqlite3_finalize(p->get);
    sqlite3_finalize(p->put);
    sqlite3_close(p->db);
    p->get = p->put = NULL;
    p->db = NULL;
}

int kb_pending_open(struct kb_pending **out, const char *kb_dir, const char *identity, int dim,
                    struct kb_err *err)
{
    *out = NULL;
    struct kb_pending *p = calloc(1, sizeof *p);
    char *path = kb_path_join(kb_dir, KB_PENDING_NAME);
    if (!p || !path) {
        free(p);
        free(path);
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    }
    p->dim = dim;
    int rc = 0;
    if (pending_try_open(p, path, identity, dim, 0) != 0) {
        /* Damaged or unreadable: it is only a cache, so start it again. */
        pending_release(p);
        if (pending_try_open(p, path, identity, dim, 1) != 0) {
            rc = pending_sql_error(p, "opening", err);
            pending_release(p);
            free(p);
            p = NULL;
        }
    }
    free(path);
    *out = p;
    return rc;
}

int kb_pending_get(struct kb_pending *p, const char *input_hash, float *vec,
                   struct kb_err *err)
{
    sqlite3_reset(p->get);
    sqlite3_bind_text(p->get, 1, input_hash, -1, SQLITE_STATIC);
    int step = sqlite3_step(p->get), rc = 0;
    if (step == SQLITE_ROW &&
        sqlite3_column_bytes(p->get, 0) == (int)(sizeof *vec * (size_t)p->dim)) {
        memcpy(vec, sqlite3_column_blob(p->get, 0), sizeof *vec * (size_t)p->dim);
        rc = 1;
    } else if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = pending_sql_error(p, "reading", err);
    }
    sqlite3_reset(p->get);
    return rc;
}

int kb_pending_put(struct kb_pending *p, const char *input_hash, const float *vec,
                   struct kb_err *err)
{
    if (!p->in_txn) {
        if (sqlite3_exec(p->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
            return pending_sql_error(p, "writing", err);
        p->in_txn = 1;
        clock_gettime(CLOCK_MONOTONIC, &p->saved);
    }
    sqlite3_reset(p->put);
    sqlite3_bind_text(p->put, 1, input_hash, -1, SQLITE_STATIC);
    sqlite3_bind_blob(p->put, 2, vec, (int)(sizeof *vec * (size_t)p->dim), SQLITE_STATIC);
    int rc = sqlite3_step(p->put) == SQLITE_DONE ? 0 : pending_sql_error(p, "writing", err);
    sqlite3_reset(p->put);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (rc == 0 && now.tv_sec - p->saved.tv_sec >= 2)
        rc = kb_pending_save(p, err);
    return rc;
}

int kb_pending_save(struct kb_pending *p, struct kb_err *err)
{
    if (!p->in_txn)
        return 0;
    p->in_txn = 0;
    if (sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
        return pending_sql_error(p, "saving", err);
    }
    return 0;
}

void kb_pending_remove(struct kb_pending *p, const char *kb_dir)
{
    if (p && p->in_txn)
        sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
    if (p)
        p->in_txn = 0;
    kb_pending_close(p);
    static const char *const suffixes[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s", KB_PENDING_NAME, suffixes[i]);
        char *path = kb_path_join(kb_dir, name);
        if (path)
            unlink(path);
        free(path);
    }
}

void kb_pending_close(struct kb_pending *p)
{
    if (!p)
        return;
    if (p->in_txn)
        sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL);
    pending_release(p);
    free(p);
}
