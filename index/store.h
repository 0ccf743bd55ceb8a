/* store.h — the SQLite store: one KB directory, one database that is the source of truth for
 * documents, chunks and the FTS5 full-text index. */
#ifndef KB_INDEX_STORE_H
#define KB_INDEX_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define KB_STORE_DB_NAME "kb.sqlite"
#define KB_STORE_LOCK_NAME "kb.lock"

struct kb_store;

#define KB_STORE_CREATE   0x1u
#define KB_STORE_READONLY 0x2u

/* Opens (and with KB_STORE_CREATE creates) the KB in `dir`, migrating an older schema
 * forward. Errors: KB_ENOTFOUND (no such directory), KB_ENOTKB (a directory that holds
 * something else, or a database that is not a KB), KB_EVERSION (newer schema),
 * KB_ECANTCREATE, KB_EIO. */
int kb_store_open(struct kb_store **out, const char *dir, unsigned flags, struct kb_err *err);
void kb_store_close(struct kb_store *store);

/* The single-writer lock (an flock on kb.lock, released by the kernel if the process dies).
 * KB_ELOCKED, naming the holder's pid, when another process holds it. */
int kb_store_lock(struct kb_store *store, struct kb_err *err);
/* kb_store_lock, waiting for the holder: up to wait_ms milliseconds (< 0: as long as it
 * takes; 0: not at all). */
int kb_store_lock_wait(struct kb_store *store, int wait_ms, struct kb_err *err);
void kb_store_unlock(struct kb_store *store);

/* Between kb_store_begin and kb_store_commit / kb_store_rollback, a transaction SQLite rolled
 * back by itself after an error (out of memory, disk full) makes every later statement and the
 * commit fail with KB_EIO, so nothing after the error commits statement by statement. */
int kb_store_begin(struct kb_store *store, struct kb_err *err);
int kb_store_commit(struct kb_store *store, struct kb_err *err);
void kb_store_rollback(struct kb_store *store);

struct kb_store_doc {
    int64_t id;           /* 0 for a document not yet stored */
    const char *path;     /* absolute path, or an in-memory document's id */
    int64_t size, mtime_ns, inode;
    char hash[65];
    const char *format;
    const char *title;    /* may be NULL */
    const char *meta;     /* a JSON object as text, or NULL */
};

/* Looks a document up by path: 1 found (id, stat values and hash filled; format and title
 * left NULL), 0 not found, or an error. */
int kb_store_doc_find(struct kb_store *store, const char *path, struct kb_store_doc *out,
                     struct kb_err *err);

/* Inserts the document, or replaces the one with the same path (its chunks are deleted);
 * sets doc->id. Call inside a transaction, then add the chunks. */
int kb_store_doc_put(struct kb_store *store, struct kb_store_doc *doc, struct kb_err *err);

/* Records new stat values for a document whose content is unchanged. */
int kb_store_doc_touch(struct kb_store *store, int64_t doc_id, int64_t size, int64_t mtime_ns,
                       int64_t inode, struct kb_err *err);

/* Moves a file's document to a new path (a rename: same content), with its new stat values.
 * Its chunks, their full-text entries and vectors stay as they are. */
int kb_store_doc_move(struct kb_store *store, int64_t doc_id, const char *path, int64_t size,
                      int64_t mtime_ns, int64_t inode, struct kb_err *err);

/* Deletes a document and its chunks (and their full-text entries). */
int kb_store_doc_delete(struct kb_store *store, int64_t doc_id, struct kb_err *err);

struct kb_store_chunk {
    int64_t doc_id;
    uint32_t ordinal;
    const char *text;
    size_t text_len;
    const char *title;          /* the document's title, indexed with every chunk */
    const char *heading_path;
    uint64_t byte_start, byte_end;
    uint32_t line_start, line_end;
    uint32_t n_tokens;
    uint32_t page;              /* PDF page the chunk starts on; 0 when not paged */
    const char *location;       /* "page 3", "chapter 2: Winter", ...; NULL or "" for none */
};

int kb_store_chunk_add(struct kb_store *store, const struct kb_store_chunk *chunk,
                       struct kb_err *err);

/* Calls cb for every document whose path lies under `root` (absolute); stop by returning
 * non-zero, which is passed back. */
typedef int (*kb_store_doc_cb)(int64_t doc_id, const char *path, void *payload);
int kb_store_docs_under(struct kb_store *store, const char *root, kb_store_doc_cb cb,
                        void *payload, struct kb_err *err);

/* Calls cb for every file's document (not in-memory ones) whose content hash is `hash`,
 * with its title (may be NULL); stop by returning non-zero, which is passed back. */
typedef int (*kb_store_titled_doc_cb)(int64_t doc_id, const char *path, const char *title,
                                      void *payload);
int kb_store_docs_with_hash(struct kb_store *store, const char *hash,
                            kb_store_titled_doc_cb cb, void *payload, struct kb_err *err);

/* Which documents a search may return; every field optional (NULL / 0 = no condition). */
struct kb_filter {
    const char *path_glob;       /* SQLite GLOB over the stored path ('*' also spans '/') */
    const char *format;          /* documents.format, e.g. "markdown", "pdf" */
    int64_t modified_after_ns;   /* documents.mtime_ns strictly after this */
};

/* 1 when f has at least one condition. */
int kb_filter_active(const struct kb_filter *f);

/* The chunk ids of documents matching f, ascending: *ids malloc'ed. */
int kb_filter_chunk_ids(struct kb_store *store, const struct kb_filter *f, int64_t **ids,
                        size_t *n, struct kb_err *err);

struct kb_store_stats {
    int64_t n_documents, n_chunks, text_bytes;
    int schema_version;
};
int kb_store_stats(struct kb_store *store, struct kb_store_stats *out, struct kb_err *err);

/* Verifies integrity: SQLite integrity_check, FTS5 integrity-check, orphans, chunk ranges. */
int kb_store_check(struct kb_store *store, struct kb_err *err);

#endif
