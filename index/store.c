/* store.c — opening, locking and writing the KB's SQLite database. */
#include "index/store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/hash.h"
#include "util/path.h"

int kb_store_sql_error(struct kb_store *store, const char *what, struct kb_err *err)
{
    int code = sqlite3_errcode(store->db);
    int status = KB_ERROR;
    switch (code & 0xff) {
    case SQLITE_BUSY: case SQLITE_LOCKED: status = KB_ELOCKED; break;
    case SQLITE_NOMEM: status = KB_ENOMEM; break;
    case SQLITE_IOERR: case SQLITE_FULL: case SQLITE_READONLY: case SQLITE_CANTOPEN:
        status = KB_EIO; break;
    case SQLITE_CORRUPT: status = KB_ECORRUPT; break;
    case SQLITE_NOTADB: status = KB_ENOTKB; break;
    }
    /* "disk I/O error" alone does not say the disk is full: add the system's reason. */
    int sys = sqlite3_system_errno(store->db);
    if (sys && status == KB_EIO)
        return kb_err_set(err, status, "%s: %s: %s (%s)", store->db_path, what,
                          sqlite3_errmsg(store->db), strerror(sys));
    return kb_err_set(err, status, "%s: %s: %s", store->db_path, what, sqlite3_errmsg(store->db));
}

/* SQLite rolls a transaction back by itself after some errors (out of memory, disk full); what
 * followed would then run outside it, each statement committing alone. */
static int store_lost_transaction(struct kb_store *store, const char *what, struct kb_err *err)
{
    return kb_err_set(err, KB_EIO, "%s: %s: the transaction was rolled back after an earlier "
                      "error (out of memory or disk full); nothing was stored",
                      store->db_path, what);
}

int kb_store_prepare(struct kb_store *store, const char *sql, sqlite3_stmt **out,
                     struct kb_err *err)
{
    if (store->in_run && sqlite3_get_autocommit(store->db)) {
        *out = NULL;
        return store_lost_transaction(store, "preparing query", err);
    }
    if (sqlite3_prepare_v2(store->db, sql, -1, out, NULL) != SQLITE_OK) {
        *out = NULL;
        return kb_store_sql_error(store, "preparing query", err);
    }
    return 0;
}

/* 1 when the folder has no entries, 0 when it has some, negative errno on failure. */
static int store_dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *de;
    int empty = 1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            empty = 0;
            break;
        }
    closedir(d);
    return empty;
}

/* mkdir -p */
static int store_mkdirs(const char *dir)
{
    char *copy = strdup(dir);
    if (!copy)
        return -ENOMEM;
    int rc = 0;
    for (char *p = copy + 1; *p && rc == 0; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(copy, 0755) != 0 && errno != EEXIST)
                rc = -errno;
            *p = '/';
        }
    if (rc == 0 && mkdir(copy, 0755) != 0 && errno != EEXIST)
        rc = -errno;
    free(copy);
    return rc;
}

/* Decides whether `dir` may hold a KB: the database exists, or we may create one. */
static int store_check_dir(struct kb_store *store, unsigned flags, int *create,
                       struct kb_err *err)
{
    struct stat st;
    *create = 0;
    if (stat(store->dir, &st) != 0) {
        if (errno != ENOENT)
            return kb_err_set(err, KB_EIO, "%s: %s", store->dir, strerror(errno));
        if (!(flags & KB_STORE_CREATE))
            return kb_err_set(err, KB_ENOTFOUND, "%s: no such knowledge base", store->dir);
        int rc = store_mkdirs(store->dir);
        if (rc)
            return kb_err_set(err, KB_ECANTCREATE, "%s: cannot create: %s", store->dir,
                              strerror(-rc));
        *create = 1;
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return kb_err_set(err, KB_ENOTKB, "%s: not a directory", store->dir);
    if (access(store->db_path, F_OK) == 0)
        return 0;
    int empty = store_dir_is_empty(store->dir);
    if (empty < 0)
        return kb_err_set(err, KB_EIO, "%s: %s", store->dir, strerror(-empty));
    if (!empty)
        return kb_err_set(err, KB_ENOTKB, "%s: not a knowledge base (no %s in it)", store->dir,
                          KB_STORE_DB_NAME);
    if (!(flags & KB_STORE_CREATE))
        return kb_err_set(err, KB_ENOTKB, "%s: empty folder, not a knowledge base yet",
                          store->dir);
    *create = 1;
    return 0;
}

/* WAL, so readers never wait for the writer; synchronous=FULL, so a committed run survives a
 * power cut too (one fsync per run, which is one transaction), not only a killed process. */
static int store_configure(struct kb_store *store, int created, struct kb_err *err)
{
    sqlite3_busy_timeout(store->db, 5000);
    sqlite3_extended_result_codes(store->db, 1);
    const char *pragmas = (store->flags & KB_STORE_READONLY)
        ? "PRAGMA foreign_keys=ON;"
        : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
          "PRAGMA journal_size_limit=0;"; /* the kept -wal is emptied at close */
    /* A 64 MiB page cache per connection: searches revisit the same FTS5 and chunk pages, and
     * re-reading them from the OS cost a fifth of a BM25 query. */
    if (sqlite3_exec(store->db, "PRAGMA cache_size=-65536;", NULL, NULL, NULL) != SQLITE_OK)
        return kb_store_sql_error(store, "configuring", err);
    /* Keep -wal and -shm when the writer closes, so a reader never has to create them — which
     * fails on a full disk and would leave the KB unreadable until space is freed. */
    int persist = 1;
    if (!(store->flags & KB_STORE_READONLY))
        sqlite3_file_control(store->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    if (sqlite3_exec(store->db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
        return kb_store_sql_error(store, "configuring", err);
    if (created)
        return 0;
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "PRAGMA application_id", &st, err);
    if (rc)
        return rc;
    int step = sqlite3_step(st), app_id = step == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (step != SQLITE_ROW)
        return kb_store_sql_error(store, "reading", err);
    if (app_id == KB_STORE_APPLICATION_ID)
        return 0;
    /* No id and no tables: a creation that was interrupted (killed before the first migration
     * committed). A writer simply finishes it; anything else is someone else's database. */
    int64_t n_tables = -1, version = -1;
    if (app_id == 0 &&
        kb_store_query_int(store, "SELECT count(*) FROM sqlite_master", &n_tables, err) == 0 &&
        kb_store_query_int(store, "PRAGMA user_version", &version, err) == 0 && n_tables == 0 &&
        version == 0) {
        if (!(store->flags & KB_STORE_READONLY))
            return 0;
        return kb_err_set(err, KB_ENOTKB, "%s: an unfinished knowledge base (its creation was "
                          "interrupted); 'kb ingest' completes it", store->db_path);
    }
    return kb_err_set(err, KB_ENOTKB, "%s: not a kb database", store->db_path);
}

int kb_store_open(struct kb_store **out, const char *dir, unsigned flags, struct kb_err *err)
{
    *out = NULL;
    struct kb_store *store = calloc(1, sizeof *store);
    if (!store)
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    store->lock_fd = -1;
    store->flags = flags;
    store->dir = kb_path_absolute(dir);
    store->db_path = store->dir ? kb_path_join(store->dir, KB_STORE_DB_NAME) : NULL;
    int rc, created;
    if (!store->db_path) {
        rc = kb_err_set(err, KB_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    if ((rc = store_check_dir(store, flags, &created, err)))
        goto done;
    int oflags = (flags & KB_STORE_READONLY) ? SQLITE_OPEN_READONLY
                                             : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(store->db_path, &store->db, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        rc = store->db ? kb_store_sql_error(store, "opening", err)
                       : kb_err_set(err, KB_ENOMEM, "%s: out of memory", store->db_path);
        if (rc == KB_ERROR || rc == KB_EIO)
            rc = created ? KB_ECANTCREATE : KB_EIO;
        goto done;
    }
    if ((rc = store_configure(store, created, err)))
        goto done;
    rc = kb_schema_migrate(store, err);
done:
    if (rc) {
        kb_store_close(store);
        return rc;
    }
    *out = store;
    return 0;
}

void kb_store_close(struct kb_store *store)
{
    if (!store)
        return;
    kb_store_unlock(store);
    sqlite3_close_v2(store->db);
    free(store->dir);
    free(store->db_path);
    free(store);
}

int kb_store_lock(struct kb_store *store, struct kb_err *err)
{
    if (store->lock_fd >= 0)
        return 0;
    char *path = kb_path_join(store->dir, KB_STORE_LOCK_NAME);
    if (!path)
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644), rc = 0;
    if (fd < 0) {
        rc = kb_err_set(err, KB_EIO, "%s: %s", path, strerror(errno));
    } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int flock_errno = errno;
        /* The holder writes its pid just after taking the lock (until then the file is empty or
         * names an earlier, finished writer): give it a moment. */
        char pid[32] = "";
        ssize_t n = 0;
        for (int tries = 0; tries < 20; tries++) {
            n = pread(fd, pid, sizeof pid - 1, 0);
            long holder = n > 1 ? strtol(pid, NULL, 10) : 0;
            if (holder > 0 && memchr(pid, '\n', (size_t)n) &&
                (kill((pid_t)holder, 0) == 0 || errno == EPERM))
                break;
            struct timespec nap = { 0, 10 * 1000 * 1000 };
            nanosleep(&nap, NULL);
        }
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        rc = flock_errno == EWOULDBLOCK
             ? kb_err_set(err, KB_ELOCKED, "%s: locked by pid %s (another kb is writing)",
                          store->dir, *pid ? pid : "?")
             : kb_err_set(err, KB_EIO, "%s: %s", path, strerror(flock_errno));
        close(fd);
    } else {
        char pid[32];
        int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        /* Write over the old pid, then cut: the file never reads as empty. */
        if (pwrite(fd, pid, (size_t)len, 0) != len || ftruncate(fd, len) != 0)
            rc = kb_err_set(err, KB_EIO, "%s: %s", path, strerror(errno));
        if (rc)
            close(fd);
        else
            store->lock_fd = fd;
    }
    free(path);
    return rc;
}

int kb_store_lock_wait(struct kb_store *store, int wait_ms, struct kb_err *err)
{
    struct timespec start, now, nap = { 0, 50 * 1000 * 1000 };
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int rc = kb_store_lock(store, err);
        if (rc != KB_ELOCKED || wait_ms == 0)
            return rc;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double waited = (double)(now.tv_sec - start.tv_sec) * 1e3 +
                        (double)(now.tv_nsec - start.tv_nsec) / 1e6;
        if (wait_ms > 0 && waited >= wait_ms)
            return rc;
        nanosleep(&nap, NULL);
    }
}

void kb_store_unlock(struct kb_store *store)
{
    if (store->lock_fd < 0)
        return;
    close(store->lock_fd); /* releases the flock; the pid left in the file is harmless */
    store->lock_fd = -1;
}

int kb_store_begin(struct kb_store *store, struct kb_err *err)
{
    if (sqlite3_exec(store->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return kb_store_sql_error(store, "starting a transaction", err);
    store->in_run = 1;
    return 0;
}

int kb_store_commit(struct kb_store *store, struct kb_err *err)
{
    store->in_run = 0;
    if (sqlite3_get_autocommit(store->db)) /* else COMMIT says only "no transaction is active" */
        return store_lost_transaction(store, "committing", err);
    if (sqlite3_exec(store->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return kb_store_sql_error(store, "committing", err);
    return 0;
}

void kb_store_rollback(struct kb_store *store)
{
    store->in_run = 0;
    if (!sqlite3_get_autocommit(store->db))
        sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Steps a statement that returns no rows, then finalizes it. */
static int store_exec_stmt(struct kb_store *store, sqlite3_stmt *st, const char *what,
                       struct kb_err *err)
{
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : kb_store_sql_error(store, what, err);
    sqlite3_finalize(st);
    return rc;
}

int kb_store_doc_find(struct kb_store *store, const char *path, struct kb_store_doc *out,
                      struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store,
        "SELECT id, size, mtime_ns, inode, hash FROM documents WHERE path=?",
        &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        out->id = sqlite3_column_int64(st, 0);
        out->path = path;
        out->size = sqlite3_column_int64(st, 1);
        out->mtime_ns = sqlite3_column_int64(st, 2);
        out->inode = sqlite3_column_int64(st, 3);
        snprintf(out->hash, sizeof out->hash, "%s", (const char *)sqlite3_column_text(st, 4));
        rc = 1;
    } else if (step != SQLITE_DONE) {
        rc = kb_store_sql_error(store, "looking up a document", err);
    }
    sqlite3_finalize(st);
    return rc;
}

static int store_delete_chunks(struct kb_store *store, int64_t doc_id, struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, "DELETE FROM chunks WHERE doc_id=?", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    return store_exec_stmt(store, st, "deleting chunks", err);
}

int kb_store_doc_put(struct kb_store *store, struct kb_store_doc *doc, struct kb_err *err)
{
    struct kb_store_doc old;
    int rc = kb_store_doc_find(store, doc->path, &old, err);
    if (rc < 0)
        return rc;
    int exists = rc == 1;
    if (exists && (rc = store_delete_chunks(store, old.id, err)))
        return rc;
    sqlite3_stmt *st;
    rc = kb_store_prepare(store, exists
        ? "UPDATE documents SET size=?2, mtime_ns=?3, inode=?4, hash=?5, format=?6, title=?7,"
          " ingested_at=?8, meta=?9 WHERE id=?1"
        : "INSERT INTO documents(path, size, mtime_ns, inode, hash, format, title, ingested_at,"
          " meta) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", &st, err);
    if (rc)
        return rc;
    if (exists)
        sqlite3_bind_int64(st, 1, old.id);
    else
        sqlite3_bind_text(st, 1, doc->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, doc->size);
    sqlite3_bind_int64(st, 3, doc->mtime_ns);
    sqlite3_bind_int64(st, 4, doc->inode);
    sqlite3_bind_text(st, 5, doc->hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, doc->format, -1, SQLITE_STATIC);
    if (doc->title)
        sqlite3_bind_text(st, 7, doc->title, -1, SQLITE_STATIC);
    if (doc->meta)
        sqlite3_bind_text(st, 9, doc->meta, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (int64_t)time(NULL));
    if ((rc = store_exec_stmt(store, st, "storing a document", err)))
        return rc;
    doc->id = exists ? old.id : sqlite3_last_insert_rowid(store->db);
    return 0;
}

int kb_store_doc_touch(struct kb_store *store, int64_t doc_id, int64_t size, int64_t mtime_ns,
                       int64_t inode, struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store,
        "UPDATE documents SET size=?2, mtime_ns=?3, inode=?4 WHERE id=?1", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    sqlite3_bind_int64(st, 2, size);
    sqlite3_bind_int64(st, 3, mtime_ns);
    sqlite3_bind_int64(st, 4, inode);
    return store_exec_stmt(store, st, "updating a document", err);
}

int kb_store_doc_move(struct kb_store *store, int64_t doc_id, const char *path, int64_t size,
                      int64_t mtime_ns, int64_t inode, struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store,
        "UPDATE documents SET path=?2, size=?3, mtime_ns=?4, inode=?5 WHERE id=?1", &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, size);
    sqlite3_bind_int64(st, 4, mtime_ns);
    sqlite3_bind_int64(st, 5, inode);
    return store_exec_stmt(store, st, "moving a document", err);
}

int kb_store_doc_delete(struct kb_store *store, int64_t doc_id, struct kb_err *err)
{
    /* Chunks first and explicitly, so the FTS delete trigger sees each row. */
    int rc = store_delete_chunks(store, doc_id, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    if ((rc = kb_store_prepare(store, "DELETE FROM documents WHERE id=?", &st, err)))
        return rc;
    sqlite3_bind_int64(st, 1, doc_id);
    return store_exec_stmt(store, st, "deleting a document", err);
}

int kb_store_chunk_add(struct kb_store *store, const struct kb_store_chunk *c,
                       struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store,
        "INSERT INTO chunks(doc_id, ordinal, text, title, heading_path, byte_start, byte_end,"
        " line_start, line_end, n_tokens, hash, page, location)"
        " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
        &st, err);
    if (rc)
        return rc;
    char hash[KB_SHA256_HEX_SIZE];
    kb_sha256_hex(c->text, c->text_len, hash);
    sqlite3_bind_int64(st, 1, c->doc_id);
    sqlite3_bind_int64(st, 2, c->ordinal);
    sqlite3_bind_text(st, 3, c->text, (int)c->text_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->title ? c->title : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, c->heading_path ? c->heading_path : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (int64_t)c->byte_start);
    sqlite3_bind_int64(st, 7, (int64_t)c->byte_end);
    sqlite3_bind_int64(st, 8, c->line_start);
    sqlite3_bind_int64(st, 9, c->line_end);
    sqlite3_bind_int64(st, 10, c->n_tokens);
    sqlite3_bind_text(st, 11, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, c->page);
    sqlite3_bind_text(st, 13, c->location ? c->location : "", -1, SQLITE_STATIC);
    return store_exec_stmt(store, st, "storing a chunk", err);
}

int kb_store_docs_under(struct kb_store *store, const char *root, kb_store_doc_cb cb,
                        void *payload, struct kb_err *err)
{
    sqlite3_stmt *st;
    /* path = root, or root/...: '0' is the character after '/', so the range is exact. */
    int rc = kb_store_prepare(store,
        "SELECT id, path FROM documents WHERE path=?1 OR (path>=?1||'/' AND path<?1||'0')"
        " ORDER BY path", &st, err);
    if (rc)
        return rc;
    size_t rl = strlen(root);
    sqlite3_bind_text(st, 1, root, (int)(rl > 1 && root[rl - 1] == '/' ? rl - 1 : rl),
                      SQLITE_STATIC);
    int step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = cb(sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1), payload);
    if (rc == 0 && step != SQLITE_DONE)
        rc = kb_store_sql_error(store, "listing documents", err);
    sqlite3_finalize(st);
    return rc;
}

int kb_store_docs_with_hash(struct kb_store *store, const char *hash,
                            kb_store_titled_doc_cb cb, void *payload, struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store,
        "SELECT id, path, title FROM documents WHERE hash=?1 AND inode<>0 ORDER BY id", &st,
        err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    int step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = cb(sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
                (const char *)sqlite3_column_text(st, 2), payload);
    if (rc == 0 && step != SQLITE_DONE)
        rc = kb_store_sql_error(store, "finding documents by content", err);
    sqlite3_finalize(st);
    return rc;
}

/* Runs a query returning one integer. */
int kb_store_query_int(struct kb_store *store, const char *sql, int64_t *out,
                       struct kb_err *err)
{
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, sql, &st, err);
    if (rc)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        rc = kb_store_sql_error(store, "reading", err);
    sqlite3_finalize(st);
    return rc;
}

int kb_store_stats(struct kb_store *store, struct kb_store_stats *out, struct kb_err *err)
{
    int64_t version = 0;
    int rc;
    if ((rc = kb_store_query_int(store, "SELECT count(*) FROM documents", &out->n_documents, err)) ||
        (rc = kb_store_query_int(store, "SELECT count(*) FROM chunks", &out->n_chunks, err)) ||
        (rc = kb_store_query_int(store, "SELECT coalesce(sum(byte_end-byte_start),0) FROM chunks",
                              &out->text_bytes, err)) ||
        (rc = kb_store_query_int(store, "PRAGMA user_version", &version, err)))
        return rc;
    out->schema_version = (int)version;
    return 0;
}

int kb_filter_active(const struct kb_filter *f)
{
    return f && ((f->path_glob && *f->path_glob) || (f->format && *f->format) ||
                 f->modified_after_ns);
}

const char *kb_filter_sql(const struct kb_filter *f, char *buf, size_t size, int first)
{
    int n = 0, p = first;
    buf[0] = '\0';
    if (f && f->path_glob && *f->path_glob)
        n += snprintf(buf + n, size - (size_t)n, "%sd.path GLOB ?%d", n ? " AND " : "", p++);
    if (f && f->format && *f->format && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, "%sd.format = ?%d", n ? " AND " : "", p++);
    if (f && f->modified_after_ns && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, "%sd.mtime_ns > ?%d", n ? " AND " : "", p++);
    return n ? buf : "1";
}

void kb_filter_bind(const struct kb_filter *f, sqlite3_stmt *st, int first)
{
    int p = first;
    if (f && f->path_glob && *f->path_glob)
        sqlite3_bind_text(st, p++, f->path_glob, -1, SQLITE_STATIC);
    if (f && f->format && *f->format)
        sqlite3_bind_text(st, p++, f->format, -1, SQLITE_STATIC);
    if (f && f->modified_after_ns)
        sqlite3_bind_int64(st, p++, f->modified_after_ns);
}

int kb_filter_chunk_ids(struct kb_store *store, const struct kb_filter *f, int64_t **ids,
                        size_t *n, struct kb_err *err)
{
    char cond[256], sql[512];
    snprintf(sql, sizeof sql, "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id"
             " WHERE %s ORDER BY c.id", kb_filter_sql(f, cond, sizeof cond, 1));
    sqlite3_stmt *st;
    int rc = kb_store_prepare(store, sql, &st, err);
    if (rc)
        return rc;
    kb_filter_bind(f, st, 1);
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    int step = SQLITE_DONE;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            int64_t *grown = realloc(*ids, (cap = cap ? cap * 2 : 256) * sizeof *grown);
            if (!grown) {
                rc = kb_err_set(err, KB_ENOMEM, "out of memory");
                break;
            }
            *ids = grown;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    if (!rc && step != SQLITE_DONE)
        rc = kb_store_sql_error(store, "filtering", err);
    sqlite3_finalize(st);
    if (rc) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}
