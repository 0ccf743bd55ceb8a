/* ingest.c — the facade's ingestion: walk -> read -> chunk -> store, with change detection. */
#include "kb/kb_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ingest/chunk.h"
#include "ingest/doc.h"
#include "ingest/textfile.h"
#include "ingest/walk.h"
#include "index/vectors.h"
#include "util/hash.h"
#include "util/path.h"

struct ingest_run {
    kb *kb;
    const kb_ingest_options *opts;
    kb_ingest_stats stats;
    size_t embedded0, tokens0;  /* the counters at the previous event */
};

static double ingest_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void ingest_emit(struct ingest_run *run, kb_event_type type, const char *path,
                        const char *reason, size_t n_chunks)
{
    size_t *counter[] = { NULL, &run->stats.added, &run->stats.updated, &run->stats.unchanged,
                          &run->stats.removed, &run->stats.skipped, &run->stats.ignored,
                          &run->stats.moved };
    ++*counter[type];
    if (run->opts->on_event) {
        kb_event ev = { type, path, reason, n_chunks, run->kb->vec.n_embedded - run->embedded0,
                        run->kb->vec.n_tokens - run->tokens0, NULL };
        run->embedded0 = run->kb->vec.n_embedded;
        run->tokens0 = run->kb->vec.n_tokens;
        run->opts->on_event(&ev, run->opts->payload);
    }
}

/* The title a document is indexed under: its first level-1 heading, else its file name. */
static char *ingest_title(const char *path, const struct kb_chunk_list *chunks)
{
    if (chunks->title)
        return strdup(chunks->title);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    return strndup(base, len);
}

/* Where a chunk lies beyond its line range, from the parser's marks: "page 3", "pages 3-4",
 * "chapter 2: Winter", "row 2 – row 9"; "" without marks. */
static void ingest_location(const struct kb_doc *src, const struct kb_chunk *c, char *out,
                            size_t size, uint32_t *page)
{
    const struct kb_doc_mark *first = src ? kb_doc_mark_at(src, c->byte_start) : NULL;
    const struct kb_doc_mark *last = src ? kb_doc_mark_at(src, c->byte_end - 1) : NULL;
    *page = first ? first->page : 0;
    out[0] = '\0';
    if (!first)
        return;
    if (first->page && last->page != first->page)
        snprintf(out, size, "pages %u-%u", first->page, last->page);
    else if (first->page)
        snprintf(out, size, "page %u", first->page);
    else if (last != first && first->label && last->label)
        snprintf(out, size, "%s – %s", first->label, last->label);
    else if (first->label)
        snprintf(out, size, "%s", first->label);
}

/* Chunks `text` and stores the document and its chunks; the caller holds a transaction.
 * A NULL doc->title is filled from the text or the path. `src` (may be NULL) is the parsed
 * file the text comes from, for chunk locations and the chunking mode. */
static int ingest_store_text(kb *kb, struct kb_store_doc *doc, int64_t old_id, const char *text,
                             size_t len, const struct kb_doc *src, const kb_ingest_options *opts,
                             size_t *n_chunks)
{
    int markdown = src ? src->markdown
                       : kb_textfile_format_parse(doc->format) == KB_FORMAT_MARKDOWN;
    struct kb_chunk_options copts = {
        opts->chunk_tokens ? opts->chunk_tokens : KB_DEFAULT_CHUNK_TOKENS,
        opts->chunk_tokens ? opts->overlap_tokens : KB_DEFAULT_OVERLAP_TOKENS,
        markdown ? KB_CHUNK_MARKDOWN : KB_CHUNK_TEXT,
        &kb_tokcounter_words,
    };
    /* With a model, sizes are the model's own tokens and never exceed what it takes. */
    struct kb_tokcounter wordpiece;
    int rc = 0;
    if (kb_vec_active(kb)) {
        if ((rc = kb_vec_chunk_budget(kb, copts.target_tokens, &wordpiece, &copts.target_tokens)))
            return rc;
        copts.counter = &wordpiece;
        if (copts.overlap_tokens >= copts.target_tokens / 2)
            copts.overlap_tokens = copts.target_tokens / 8;
    }
    char location[256];
    struct kb_chunk_list chunks = { 0 };
    char *title = NULL;
    if ((rc = kb_chunk_text(&chunks, text, len, &copts, &kb->err)))
        return rc;
    if (old_id && (rc = kb_vec_stash_document(kb, old_id)))
        goto done;
    if (!doc->title && src && src->title && *src->title)
        doc->title = src->title;
    if (!doc->title && !(title = ingest_title(doc->path, &chunks))) {
        rc = kb_fail(kb, KB_ENOMEM, "out of memory");
        goto done;
    }
    if (!doc->title)
        doc->title = title;
    if ((rc = kb_store_doc_put(kb->store, doc, &kb->err)))
        goto done;
    for (size_t i = 0; i < chunks.count && rc == 0; i++) {
        const struct kb_chunk *c = &chunks.items[i];
        uint32_t page;
        ingest_location(src, c, location, sizeof location, &page);
        struct kb_store_chunk row = {
            doc->id, (uint32_t)i, text + c->byte_start, c->byte_end - c->byte_start,
            doc->title, c->heading_path, c->byte_start, c->byte_end,
            c->line_start, c->line_end, (uint32_t)c->n_tokens, page, location,
        };
        rc = kb_store_chunk_add(kb->store, &row, &kb->err);
        if (rc == 0)
            rc = kb_vec_queue(kb, kb_store_last_id(kb->store), doc->title, c->heading_path,
                              row.text, row.text_len);
    }
    *n_chunks = chunks.count;
done:
    kb_vec_stash_clear(kb);
    if (doc->title == title || (src && doc->title == src->title))
        doc->title = NULL;
    free(title);
    kb_chunk_list_free(&chunks);
    return rc;
}

static int64_t ingest_mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* One file: unchanged (stat or hash), skipped (unreadable, not text), or (re)stored in its own
 * transaction, so completed files survive an interruption. */
static int ingest_file(struct ingest_run *run, const char *path, const struct stat *st)
{
    kb *kb = run->kb;
    enum kb_doc_kind format = kb_doc_kind_of_path(path);
    if (format == KB_DOC_NONE) {
        ingest_emit(run, KB_EVENT_IGNORED, path, "not a format kb reads", 0);
        return 0;
    }
    char *abs = kb_path_absolute(path);
    if (!abs)
        return kb_fail(kb, KB_ENOMEM, "%s: out of memory", path);
    struct kb_store_doc old;
    struct kb_doc file = { 0 };
    struct kb_err reason = { 0, "" };
    int rc = kb_store_doc_find(kb->store, abs, &old, &kb->err), found = rc == 1;
    if (rc < 0)
        goto done;
    rc = 0;
    if (found && old.size == st->st_size && old.mtime_ns == ingest_mtime_ns(st) &&
        old.inode == (int64_t)st->st_ino) {
        ingest_emit(run, KB_EVENT_UNCHANGED, path, NULL, 0);
        goto done;
    }
    uint64_t cap = run->opts->max_file_bytes ? run->opts->max_file_bytes : KB_DEFAULT_MAX_FILE_BYTES;
    if (kb_doc_read(&file, path, format, cap, &reason)) {
        ingest_emit(run, KB_EVENT_SKIPPED, path, reason.msg, 0);
        goto done;
    }
    if ((rc = kb_store_begin(kb->store, &kb->err)))
        goto done;
    if (found && !strcmp(old.hash, file.hash)) {
        rc = kb_store_doc_touch(kb->store, old.id, st->st_size, ingest_mtime_ns(st),
                                (int64_t)st->st_ino, &kb->err);
        if (rc == 0 && (rc = kb_store_commit(kb->store, &kb->err)) == 0)
            ingest_emit(run, KB_EVENT_UNCHANGED, path, NULL, 0);
        goto done;
    }
    struct kb_store_doc doc = { 0, abs, st->st_size, ingest_mtime_ns(st), (int64_t)st->st_ino,
                                "", kb_doc_kind_name(format), NULL };
    memcpy(doc.hash, file.hash, sizeof doc.hash);
    size_t n_chunks = 0;
    rc = ingest_store_text(kb, &doc, found ? old.id : 0, file.text, file.len, &file, run->opts,
                           &n_chunks);
    if (rc == 0)
        rc = kb_vec_flush(kb);
    if (rc == 0 && (rc = kb_store_commit(kb->store, &kb->err)) == 0) {
        run->stats.chunks += n_chunks;
        ingest_emit(run, found ? KB_EVENT_UPDATED : KB_EVENT_ADDED, path, NULL, n_chunks);
    }
done:
    if (rc) {
        kb_store_rollback(kb->store);
        kb_vec_discard(kb);
    }
    kb_doc_free(&file);
    free(abs);
    return rc;
}

static int ingest_walk_cb(enum kb_walk_kind kind, const char *path, const char *rel,
                          const struct stat *st, const char *reason, void *payload)
{
    (void)rel;
    struct ingest_run *run = payload;
    if (kind == KB_WALK_SKIP) {
        ingest_emit(run, KB_EVENT_SKIPPED, path, reason, 0);
        return 0;
    }
    return ingest_file(run, path, st);
}

struct ingest_gone {
    int64_t *ids;
    char **paths;
    size_t n, alloc;
};

/* Notes documents under a root whose files no longer exist. Files that exist but were
 * skipped or excluded this time keep their stored version. */
static int ingest_note_gone(int64_t doc_id, const char *path, void *payload)
{
    struct ingest_gone *gone = payload;
    struct stat st;
    if (lstat(path, &st) == 0 || errno != ENOENT)
        return 0;
    if (gone->n == gone->alloc) {
        size_t na = gone->alloc ? gone->alloc * 2 : 16;
        int64_t *ids = realloc(gone->ids, na * sizeof *ids);
        if (ids)
            gone->ids = ids;
        char **paths = realloc(gone->paths, na * sizeof *paths);
        if (paths)
            gone->paths = paths;
        if (!ids || !paths)
            return KB_ENOMEM;
        gone->alloc = na;
    }
    if (!(gone->paths[gone->n] = strdup(path)))
        return KB_ENOMEM;
    gone->ids[gone->n++] = doc_id;
    return 0;
}

/* Removes, in one transaction, the documents under `root` whose files are gone. `shown` is
 * the root as the user gave it, so reported paths stay relative when it was. */
static int ingest_remove_gone(struct ingest_run *run, const char *root, const char *shown)
{
    kb *kb = run->kb;
    struct ingest_gone gone = { 0 };
    int rc = kb_store_docs_under(kb->store, root, ingest_note_gone, &gone, &kb->err);
    if (rc == KB_ENOMEM)
        rc = kb_fail(kb, KB_ENOMEM, "out of memory listing removed files");
    if (rc == 0 && gone.n && (rc = kb_store_begin(kb->store, &kb->err)) == 0) {
        for (size_t i = 0; i < gone.n && rc == 0; i++)
            rc = kb_store_doc_delete(kb->store, gone.ids[i], &kb->err);
        rc = rc ? rc : kb_store_commit(kb->store, &kb->err);
        if (rc)
            kb_store_rollback(kb->store);
    }
    size_t root_len = strlen(root);
    for (size_t i = 0; i < gone.n; i++) {
        if (rc == 0) {
            char *p = gone.paths[i][root_len] ? kb_path_join(shown, gone.paths[i] + root_len + 1)
                                              : strdup(shown);
            ingest_emit(run, KB_EVENT_REMOVED, p ? p : gone.paths[i], NULL, 0);
            free(p);
        }
        free(gone.paths[i]);
    }
    free(gone.paths);
    free(gone.ids);
    return rc;
}

/* Every root must exist before anything changes: a typo must not look like a deletion. */
static int ingest_check_roots(kb *kb, const char *const *paths, size_t n_paths)
{
    for (size_t i = 0; i < n_paths; i++) {
        struct stat st;
        if (!paths[i] || !*paths[i])
            return kb_fail(kb, KB_EINVALID, "empty path");
        if (stat(paths[i], &st) != 0)
            return kb_fail(kb, errno == ENOENT ? KB_ENOTFOUND : KB_EIO, "%s: %s", paths[i],
                           strerror(errno));
    }
    return 0;
}

static int ingest_begin_run(kb *kb, const kb_ingest_options *opts)
{
    int rc = kb_usable(kb, 1);
    if (rc)
        return rc;
    if (opts && opts->version != KB_INGEST_OPTIONS_VERSION)
        return kb_fail(kb, KB_EINVALID, "kb_ingest_options: unknown version %u", opts->version);
    if ((rc = kb_store_lock(kb->store, &kb->err)))
        return rc;
    kb->vec.n_embedded = kb->vec.n_reused = kb->vec.n_tokens = 0;
    kb->vec.notice = NULL;
    if ((rc = kb_vec_begin_ingest(kb, opts ? opts->model : NULL)))
        kb_store_unlock(kb->store);
    return rc;
}

static void ingest_end_run(kb *kb, struct ingest_run *run)
{
    kb_store_unlock(kb->store);
    run->stats.embedded = kb->vec.n_embedded;
    run->stats.reused = kb->vec.n_reused;
    run->stats.tokens = kb->vec.n_tokens;
    run->stats.notice = kb->vec.notice;
}

int kb_ingest(kb *kb, const char *const *paths, size_t n_paths,
              const kb_ingest_options *opts, kb_ingest_stats *stats)
{
    static const kb_ingest_options defaults = KB_INGEST_OPTIONS_INIT;
    int rc = ingest_begin_run(kb, opts);
    if (rc)
        return rc;
    struct ingest_run run = { kb, opts ? opts : &defaults, { 0 }, 0, 0 };
    double t0 = ingest_now();
    if ((rc = (paths || !n_paths) ? ingest_check_roots(kb, paths, n_paths)
                                  : kb_fail(kb, KB_EINVALID, "paths is NULL")))
        goto done;
    struct kb_walk_options wopts = {
        run.opts->include, run.opts->n_include, run.opts->exclude, run.opts->n_exclude,
        run.opts->include_hidden, run.opts->follow_symlinks, 0,
    };
    for (size_t i = 0; i < n_paths && rc == 0; i++) {
        char *root = kb_path_absolute(paths[i]);
        if (!root)
            rc = kb_fail(kb, KB_ENOMEM, "%s: out of memory", paths[i]);
        else if ((rc = kb_walk(paths[i], &wopts, ingest_walk_cb, &run, &kb->err)) == 0)
            rc = ingest_remove_gone(&run, root, paths[i]);
        free(root);
    }
    rc = rc ? rc : kb_vec_sync(kb, run.opts->index);
done:
    ingest_end_run(kb, &run);
    run.stats.seconds = ingest_now() - t0;
    if (stats)
        *stats = run.stats;
    if (rc == 0 && run.stats.skipped)
        rc = kb_fail(kb, KB_EPARTIAL, "%zu file%s skipped", run.stats.skipped,
                     run.stats.skipped == 1 ? "" : "s");
    return rc;
}

/* One in-memory document inside the caller's transaction. */
static int ingest_add_document(struct ingest_run *run, const kb_document *d)
{
    kb *kb = run->kb;
    if (!d->id || !*d->id || (!d->text && d->text_len))
        return kb_fail(kb, KB_EINVALID, "document without an id or text");
    const char *format = d->format ? d->format : "text";
    if (kb_textfile_format_parse(format) == KB_FORMAT_NONE)
        return kb_fail(kb, KB_EINVALID, "%s: unknown format '%s'", d->id, format);
    if (kb_text_check(d->text ? d->text : "", d->text_len, &kb->err)) {
        kb_err_prefix(&kb->err, d->id);
        return KB_EFORMAT;
    }
    struct kb_store_doc old;
    int rc = kb_store_doc_find(kb->store, d->id, &old, &kb->err);
    if (rc < 0)
        return rc;
    int found = rc == 1;
    struct kb_store_doc doc = { 0, d->id, (int64_t)d->text_len, 0, 0, "", format, d->title };
    /* The title is part of what is indexed, so it is part of the identity hash too. */
    const void *parts[] = { d->title ? d->title : "", "\n", d->text ? d->text : "" };
    size_t lens[] = { d->title ? strlen(d->title) : 0, 1, d->text_len };
    kb_sha256_hex_parts(parts, lens, 3, doc.hash);
    if (found && !strcmp(old.hash, doc.hash)) {
        ingest_emit(run, KB_EVENT_UNCHANGED, d->id, NULL, 0);
        return 0;
    }
    size_t n_chunks = 0;
    if ((rc = ingest_store_text(kb, &doc, found ? old.id : 0, d->text, d->text_len, NULL,
                                run->opts, &n_chunks)))
        return rc;
    run->stats.chunks += n_chunks;
    ingest_emit(run, found ? KB_EVENT_UPDATED : KB_EVENT_ADDED, d->id, NULL, n_chunks);
    return 0;
}

int kb_add_documents(kb *kb, const kb_document *docs, size_t n_docs,
                     const kb_ingest_options *opts, kb_ingest_stats *stats)
{
    static const kb_ingest_options defaults = KB_INGEST_OPTIONS_INIT;
    int rc = ingest_begin_run(kb, opts);
    if (rc)
        return rc;
    struct ingest_run run = { kb, opts ? opts : &defaults, { 0 }, 0, 0 };
    double t0 = ingest_now();
    if (!docs && n_docs)
        rc = kb_fail(kb, KB_EINVALID, "docs is NULL");
    else if ((rc = kb_store_begin(kb->store, &kb->err)) == 0) {
        for (size_t i = 0; i < n_docs && rc == 0; i++)
            rc = ingest_add_document(&run, &docs[i]);
        rc = rc ? rc : kb_vec_flush(kb);
        rc = rc ? rc : kb_store_commit(kb->store, &kb->err);
        if (rc) {
            kb_store_rollback(kb->store);
            kb_vec_discard(kb);
        }
    }
    rc = rc ? rc : kb_vec_sync(kb, run.opts->index);
    ingest_end_run(kb, &run);
    run.stats.seconds = ingest_now() - t0;
    if (rc)
        memset(&run.stats, 0, sizeof run.stats);
    if (stats)
        *stats = run.stats;
    return rc;
}
