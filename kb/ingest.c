/* ingest.c — the facade's ingestion: walk -> read -> chunk -> store, with change detection. */
#include "kb/kb_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ingest/chunk.h"
#include "ingest/doc.h"
#include "ingest/textfile.h"
#include "ingest/walk.h"
#include "index/lexical.h"
#include "index/vectors.h"
#include "util/hash.h"
#include "util/path.h"

struct ingest_run {
    kb *kb;
    const kb_ingest_options *opts; /* &o */
    kb_ingest_options o;         /* the caller's options at the current version */
    kb_ingest_stats stats;
    size_t embedded0, tokens0;  /* the counters at the previous event */
    const char *old_path;       /* for the next KB_EVENT_MOVED */
    int64_t *moved;             /* dry run: documents reported as moved (not removed) */
    size_t n_moved;
    int canceled;
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
                        run->kb->vec.n_tokens - run->tokens0,
                        type == KB_EVENT_MOVED ? run->old_path : NULL };
        run->embedded0 = run->kb->vec.n_embedded;
        run->tokens0 = run->kb->vec.n_tokens;
        run->opts->on_event(&ev, run->opts->payload);
    }
}

/* A file's name without its directory and extension, the title of last resort; its length
 * in *len. */
static const char *ingest_name_title(const char *path, size_t *len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    *len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    return base;
}

/* The title a document is indexed under: its first level-1 heading, else its file name. */
static char *ingest_title(const char *path, const struct kb_chunk_list *chunks)
{
    if (chunks->title)
        return strdup(chunks->title);
    size_t len;
    const char *name = ingest_name_title(path, &len);
    return strndup(name, len);
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

/* Embeds the queued chunks, timing the encoder for the run's stats. */
static int ingest_flush(struct ingest_run *run)
{
    double t = ingest_now();
    int rc = kb_vec_flush(run->kb);
    run->stats.embed_seconds += ingest_now() - t;
    return rc;
}

struct ingest_moved_from {
    int64_t id;
    char *path;
    const char *new_path;
};

/* 1 when `title` is the name of the file at `path` (without extension). */
static int ingest_title_is_name(const char *title, const char *path)
{
    size_t len;
    const char *name = ingest_name_title(path, &len);
    return title && strlen(title) == len && !memcmp(title, name, len);
}

/* A document with the same content whose file is gone: the file was renamed. A document
 * titled by its file name keeps its chunks and vectors only when the name stays (the title
 * is part of every chunk's embedded text); else the new file is stored afresh. */
static int ingest_note_moved_from(int64_t doc_id, const char *path, const char *title,
                                  void *payload)
{
    struct ingest_moved_from *m = payload;
    struct stat st;
    if (!path)
        return KB_ENOMEM; /* SQLite could not copy the value */
    if (lstat(path, &st) == 0 || errno != ENOENT)
        return 0;
    if (ingest_title_is_name(title, path) && !ingest_title_is_name(title, m->new_path))
        return 0;
    m->id = doc_id;
    m->path = strdup(path);
    return m->path ? 1 : KB_ENOMEM;
}

/* Looks for the document a new file was renamed from; 1 found (m filled), 0 none, or error. */
static int ingest_find_moved(struct ingest_run *run, const char *hash,
                             struct ingest_moved_from *m)
{
    int rc = kb_store_docs_with_hash(run->kb->store, hash, ingest_note_moved_from, m,
                                     &run->kb->err);
    for (size_t i = 0; rc == 1 && i < run->n_moved; i++)
        if (run->moved[i] == m->id) { /* dry run: already claimed by another file */
            free(m->path);
            m->path = NULL;
            rc = 0;
        }
    if (rc == KB_ENOMEM)
        return kb_fail(run->kb, KB_ENOMEM, "out of memory");
    return rc;
}

/* A new file whose content is stored under a path that no longer exists: the document moves,
 * keeping its chunks and vectors. */
static int ingest_move(struct ingest_run *run, const char *path, const char *abs,
                       const struct stat *st, struct ingest_moved_from *m)
{
    kb *kb = run->kb;
    int rc = 0;
    if (run->o.dry_run) {
        int64_t *grown = realloc(run->moved, (run->n_moved + 1) * sizeof *grown);
        if (!grown)
            return kb_fail(kb, KB_ENOMEM, "out of memory");
        run->moved = grown;
        run->moved[run->n_moved++] = m->id;
    } else if ((rc = kb_store_doc_move(kb->store, m->id, abs, st->st_size, ingest_mtime_ns(st),
                                       (int64_t)st->st_ino, &kb->err))) {
        return rc;
    }
    run->old_path = m->path;
    ingest_emit(run, KB_EVENT_MOVED, path, NULL, 0);
    run->old_path = NULL;
    return 0;
}

/* One file, inside the run's transaction: unchanged (stat or hash), moved (a rename),
 * skipped (unreadable, not text), or (re)stored. A dry run decides the same and stores
 * nothing. */
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
    struct ingest_moved_from from = { 0, NULL, path };
    int rc = kb_store_doc_find(kb->store, abs, &old, &kb->err), found = rc == 1;
    if (rc < 0)
        goto done;
    rc = 0;
    if (found && old.size == st->st_size && old.mtime_ns == ingest_mtime_ns(st) &&
        old.inode == (int64_t)st->st_ino) {
        ingest_emit(run, KB_EVENT_UNCHANGED, path, NULL, 0);
        goto done;
    }
    uint64_t cap = run->o.max_file_bytes ? run->o.max_file_bytes : KB_DEFAULT_MAX_FILE_BYTES;
    if (kb_doc_read(&file, path, format, cap, &reason)) {
        ingest_emit(run, KB_EVENT_SKIPPED, path, reason.msg, 0);
        goto done;
    }
    if (found && !strcmp(old.hash, file.hash)) {
        if (!run->o.dry_run && (rc = kb_store_doc_touch(kb->store, old.id, st->st_size,
                                                        ingest_mtime_ns(st),
                                                        (int64_t)st->st_ino, &kb->err)))
            goto done;
        ingest_emit(run, KB_EVENT_UNCHANGED, path, NULL, 0);
        goto done;
    }
    if (!found && (rc = ingest_find_moved(run, file.hash, &from)) != 0) {
        if (rc == 1)
            rc = ingest_move(run, path, abs, st, &from);
        goto done;
    }
    if (run->o.dry_run) {
        ingest_emit(run, found ? KB_EVENT_UPDATED : KB_EVENT_ADDED, path, NULL, 0);
        goto done;
    }
    struct kb_store_doc doc = { 0, abs, st->st_size, ingest_mtime_ns(st), (int64_t)st->st_ino,
                                "", kb_doc_kind_name(format), NULL, NULL };
    memcpy(doc.hash, file.hash, sizeof doc.hash);
    size_t n_chunks = 0;
    rc = ingest_store_text(kb, &doc, found ? old.id : 0, file.text, file.len, &file, run->opts,
                           &n_chunks);
    if (rc == 0)
        rc = ingest_flush(run);
    if (rc == 0) {
        run->stats.chunks += n_chunks;
        ingest_emit(run, found ? KB_EVENT_UPDATED : KB_EVENT_ADDED, path, NULL, n_chunks);
    }
done:
    free(from.path);
    kb_doc_free(&file);
    free(abs);
    return rc;
}

static int ingest_walk_cb(enum kb_walk_kind kind, const char *path, const char *rel,
                          const struct stat *st, const char *reason, void *payload)
{
    (void)rel;
    struct ingest_run *run = payload;
    /* The one place a run stops early: between files, so what is done stays whole. */
    if (run->o.cancel && *run->o.cancel) {
        run->canceled = 1;
        return KB_ECANCELED;
    }
    if (kind == KB_WALK_SKIP) {
        ingest_emit(run, KB_EVENT_SKIPPED, path, reason, 0);
        return 0;
    }
    return ingest_file(run, path, st);
}

struct ingest_gone {
    struct ingest_run *run;
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
    for (size_t i = 0; i < gone->run->n_moved; i++)
        if (gone->run->moved[i] == doc_id)
            return 0; /* dry run: reported as moved */
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

/* Removes (inside the run's transaction) the documents under `root` whose files are gone.
 * `shown` is the root as the user gave it, so reported paths stay relative when it was. */
static int ingest_remove_gone(struct ingest_run *run, const char *root, const char *shown)
{
    kb *kb = run->kb;
    struct ingest_gone gone = { run, NULL, NULL, 0, 0 };
    int rc = kb_store_docs_under(kb->store, root, ingest_note_gone, &gone, &kb->err);
    if (rc == KB_ENOMEM)
        rc = kb_fail(kb, KB_ENOMEM, "out of memory listing removed files");
    for (size_t i = 0; i < gone.n && rc == 0 && !run->o.dry_run; i++)
        rc = kb_store_doc_delete(kb->store, gone.ids[i], &kb->err);
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

/* The caller's options at the current version: version 2 callers get the new fields'
 * defaults. */
static int ingest_options(kb *kb, const kb_ingest_options *in, kb_ingest_options *out)
{
    static const kb_ingest_options defaults = KB_INGEST_OPTIONS_INIT;
    *out = defaults;
    if (!in)
        return 0;
    if (in->version == 2) {
        memcpy(out, in, offsetof(kb_ingest_options, cancel));
        out->version = KB_INGEST_OPTIONS_VERSION;
        return 0;
    }
    if (in->version != KB_INGEST_OPTIONS_VERSION)
        return kb_fail(kb, KB_EINVALID, "kb_ingest_options: unknown version %u", in->version);
    *out = *in;
    return 0;
}

/* Starts a run: the writer lock (waiting as asked), leftovers of crashed runs cleared, the
 * run's transaction opened and the model chosen inside it. A dry run takes none of these:
 * it only reads. */
/* Starts a run: options, the writer lock, the transaction and the KB's model record. Only a
 * run that `embeds` opens the model (a deletion never needs it, nor should it record the
 * default model in a KB that has none). */
static int ingest_begin_run(kb *kb, const kb_ingest_options *opts, struct ingest_run *run,
                            int embeds)
{
    memset(run, 0, sizeof *run);
    run->kb = kb;
    run->opts = &run->o;
    int rc = kb_usable(kb, !(opts && opts->version >= 3 && opts->dry_run));
    if (rc || (rc = ingest_options(kb, opts, &run->o)))
        return rc;
    kb->vec.n_embedded = kb->vec.n_reused = kb->vec.n_tokens = 0;
    kb->vec.notice = NULL;
    if (run->o.dry_run)
        return 0;
    if ((rc = kb_store_lock_wait(kb->store, run->o.lock_wait_ms, &kb->err)))
        return rc;
    kb_vec_collect_garbage(kb);
    if ((rc = kb_store_begin(kb->store, &kb->err)) == 0 &&
        (rc = embeds ? kb_vec_begin_ingest(kb, run->o.model) : kb_vec_begin_delete(kb)) != 0)
        kb_vec_abort(kb);
    if (rc)
        kb_store_unlock(kb->store);
    return rc;
}

/* Ends a run: keeps the full-text index compact, publishes the vector index and commits
 * everything together, or (on an error, or a dry run) rolls it all back. Returns rc, or the
 * commit's error. */
static int ingest_end_run(kb *kb, struct ingest_run *run, int rc, double t0)
{
    if (!run->o.dry_run) {
        double t = ingest_now();
        if (rc == 0)
            rc = kb_lexical_compact(kb->store, KB_LEXICAL_MAX_SEGMENTS, &kb->err);
        if (rc == 0)
            rc = kb_vec_sync(kb, run->o.index);
        if (rc == 0)
            rc = kb_vec_commit(kb, run->canceled);
        else
            kb_vec_abort(kb);
        run->stats.commit_seconds = ingest_now() - t;
        kb_store_unlock(kb->store);
    }
    run->stats.embedded = kb->vec.n_embedded;
    run->stats.reused = kb->vec.n_reused;
    run->stats.tokens = kb->vec.n_tokens;
    run->stats.notice = kb->vec.notice;
    run->stats.seconds = ingest_now() - t0;
    free(run->moved);
    run->moved = NULL;
    return rc;
}

int kb_ingest(kb *kb, const char *const *paths, size_t n_paths,
              const kb_ingest_options *opts, kb_ingest_stats *stats)
{
    struct ingest_run run;
    double t0 = ingest_now();
    int rc = ingest_begin_run(kb, opts, &run, 1);
    if (rc)
        return rc;
    if ((rc = (paths || !n_paths) ? ingest_check_roots(kb, paths, n_paths)
                                  : kb_fail(kb, KB_EINVALID, "paths is NULL")))
        goto done;
    struct kb_walk_options wopts = {
        run.o.include, run.o.n_include, run.o.exclude, run.o.n_exclude,
        run.o.include_hidden, run.o.follow_symlinks, 0,
    };
    for (size_t i = 0; i < n_paths && rc == 0 && !run.canceled; i++) {
        char *root = kb_path_absolute(paths[i]);
        if (!root)
            rc = kb_fail(kb, KB_ENOMEM, "%s: out of memory", paths[i]);
        else if ((rc = kb_walk(paths[i], &wopts, ingest_walk_cb, &run, &kb->err)) == 0)
            rc = ingest_remove_gone(&run, root, paths[i]);
        free(root);
        if (run.canceled && rc == KB_ECANCELED)
            rc = 0; /* keep what is complete; remove nothing: the walk did not finish */
    }
done:
    rc = ingest_end_run(kb, &run, rc, t0);
    if (stats)
        *stats = run.stats;
    if (rc == 0 && run.canceled)
        rc = kb_fail(kb, KB_ECANCELED, "interrupted: the files done so far are kept (%zu "
                     "changed); the next run goes on from there", run.stats.added +
                     run.stats.updated + run.stats.moved);
    else if (rc == 0 && run.stats.skipped)
        rc = kb_fail(kb, KB_EPARTIAL, "%zu file%s skipped", run.stats.skipped,
                     run.stats.skipped == 1 ? "" : "s");
    return rc;
}

/* A document's metadata as stored: a JSON object of at most 64 KiB, printed compactly into
 * *out (malloc'ed; NULL without metadata). */
static int ingest_metadata(kb *kb, const kb_document *d, char **out)
{
    *out = NULL;
    if (!d->metadata)
        return 0;
    if (strlen(d->metadata) > 65536)
        return kb_fail(kb, KB_EINVALID, "%s: metadata is over 64 KiB", d->id);
    cJSON *obj = cJSON_Parse(d->metadata);
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        return kb_fail(kb, KB_EINVALID, "%s: metadata is not a JSON object", d->id);
    }
    *out = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    return *out ? 0 : kb_fail(kb, KB_ENOMEM, "out of memory");
}

/* One in-memory document inside the run's transaction. */
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
    char *meta = NULL;
    struct kb_store_doc old;
    int rc = ingest_metadata(kb, d, &meta);
    if (rc || (rc = kb_store_doc_find(kb->store, d->id, &old, &kb->err)) < 0) {
        free(meta);
        return rc;
    }
    int found = rc == 1;
    struct kb_store_doc doc = { 0, d->id, (int64_t)d->text_len, 0, 0, "", format, d->title,
                                meta };
    /* Title and metadata are stored with the text, so they are part of the identity hash. */
    const void *parts[] = { d->title ? d->title : "", "\n", d->text ? d->text : "", "\n",
                            meta ? meta : "" };
    size_t lens[] = { d->title ? strlen(d->title) : 0, 1, d->text_len, 1,
                      meta ? strlen(meta) : 0 };
    kb_sha256_hex_parts(parts, lens, meta ? 5 : 3, doc.hash);
    rc = 0;
    if (found && !strcmp(old.hash, doc.hash)) {
        ingest_emit(run, KB_EVENT_UNCHANGED, d->id, NULL, 0);
        goto done;
    }
    if (run->o.dry_run) {
        ingest_emit(run, found ? KB_EVENT_UPDATED : KB_EVENT_ADDED, d->id, NULL, 0);
        goto done;
    }
    size_t n_chunks = 0;
    if ((rc = ingest_store_text(kb, &doc, found ? old.id : 0, d->text, d->text_len, NULL,
                                run->opts, &n_chunks)))
        goto done;
    run->stats.chunks += n_chunks;
    ingest_emit(run, found ? KB_EVENT_UPDATED : KB_EVENT_ADDED, d->id, NULL, n_chunks);
done:
    free(meta);
    return rc;
}

int kb_add_documents(kb *kb, const kb_document *docs, size_t n_docs,
                     const kb_ingest_options *opts, kb_ingest_stats *stats)
{
    struct ingest_run run;
    double t0 = ingest_now();
    int rc = ingest_begin_run(kb, opts, &run, 1);
    if (rc)
        return rc;
    if (!docs && n_docs)
        rc = kb_fail(kb, KB_EINVALID, "docs is NULL");
    for (size_t i = 0; i < n_docs && rc == 0; i++)
        rc = ingest_add_document(&run, &docs[i]);
    rc = rc ? rc : ingest_flush(&run);
    rc = ingest_end_run(kb, &run, rc, t0);
    if (rc)
        memset(&run.stats, 0, sizeof run.stats);
    if (stats)
        *stats = run.stats;
    return rc;
}

int kb_delete_documents(kb *kb, const char *const *ids, size_t n_ids, int lock_wait_ms,
                        size_t *n_deleted)
{
    kb_ingest_options opts = KB_INGEST_OPTIONS_INIT;
    opts.lock_wait_ms = lock_wait_ms;
    struct ingest_run run;
    double t0 = ingest_now();
    size_t n = 0;
    if (n_deleted)
        *n_deleted = 0;
    int rc = ingest_begin_run(kb, &opts, &run, 0);
    if (rc)
        return rc;
    if (!ids && n_ids)
        rc = kb_fail(kb, KB_EINVALID, "ids is NULL");
    for (size_t i = 0; i < n_ids && rc == 0; i++) {
        struct kb_store_doc doc;
        if (!ids[i] || !*ids[i])
            rc = kb_fail(kb, KB_EINVALID, "empty document id");
        else if ((rc = kb_store_doc_find(kb->store, ids[i], &doc, &kb->err)) == 1 &&
                 (rc = kb_store_doc_delete(kb->store, doc.id, &kb->err)) == 0)
            n++;
        rc = rc < 0 ? rc : 0;
    }
    rc = ingest_end_run(kb, &run, rc, t0);
    if (rc == 0 && n_deleted)
        *n_deleted = n;
    return rc;
}
