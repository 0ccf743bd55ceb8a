/* test_bm25.c — the in-memory BM25 index (index/bm25.h) answers exactly as FTS5's bm25():
 * the same chunks in the same order with the same scores, grouped or not, for several k, on
 * SciFact abstracts; a handle sees the KB's changes; handles share one index; threads with
 * their own handles agree; a KB's history (ids spread by churn) does not change its rankings.
 * Needs $KB_SHARED_DATA/retrieval/scifact (skips with 77). */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <zlib.h>

#include "helpers.h"
#include "kb/kb.h"
#include "index/lexical.h"
#include "kb/kb_int.h"
#include "util/shared.h"

#define N_DOCS 3000
#define N_QUERIES 300

static char scifact[4096];
static char *kb_dir;
static char **queries;
static size_t n_queries;

/* Each line's object from a (gzip'ed or plain) JSONL file, up to max. */
static size_t read_objects(const char *path, cJSON **out, size_t max)
{
    gzFile f = gzopen(path, "rb");
    static char line[1 << 20];
    size_t n = 0;
    while (f && n < max && gzgets(f, line, sizeof line))
        if ((out[n] = cJSON_Parse(line)))
            n++;
    if (f)
        gzclose(f);
    return n;
}

static const char *field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* A new KB in a new folder (*dir, malloc'ed) and ingest options without a model. */
static kb *new_kb(char **dir, kb_ingest_options *o)
{
    static const kb_ingest_options init = KB_INGEST_OPTIONS_INIT;
    kb *w = NULL;
    *dir = th_tempdir();
    assert_int_equal(kb_open(&w, *dir, KB_OPEN_CREATE), 0);
    *o = init;
    o->model = "none";
    return w;
}

static int setup(void **state)
{
    (void)state;
    char path[4200];
    cJSON **objs = calloc(N_DOCS, sizeof *objs);
    snprintf(path, sizeof path, "%s/corpus.jsonl.gz", scifact);
    size_t n = read_objects(path, objs, N_DOCS);
    assert_true(n > 1000);
    kb_document *docs = calloc(n, sizeof *docs);
    for (size_t i = 0; i < n; i++)
        docs[i] = (kb_document){ field(objs[i], "_id"), field(objs[i], "title"),
                                 field(objs[i], "text"), strlen(field(objs[i], "text")), "text",
                                 NULL };
    kb_ingest_options o;
    kb *w = new_kb(&kb_dir, &o);
    if (kb_add_documents(w, docs, n, &o, NULL))
        fail_msg("ingest: %s", kb_errmsg(w));
    kb_close(w);
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(objs[i]);
    free(docs);
    snprintf(path, sizeof path, "%s/queries.jsonl", scifact);
    n_queries = read_objects(path, objs, N_QUERIES);
    assert_true(n_queries >= 100);
    queries = calloc(n_queries, sizeof *queries);
    for (size_t i = 0; i < n_queries; i++) {
        queries[i] = strdup(field(objs[i], "text"));
        cJSON_Delete(objs[i]);
    }
    free(objs);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < n_queries; i++)
        free(queries[i]);
    free(queries);
    th_rmtree(kb_dir);
    free(kb_dir);
    return 0;
}

struct ranked {
    size_t n;
    int64_t chunk[100], doc[100];
    double score[100];
};

/* kb_search in BM25 mode with the in-memory index forced on (1) or off (0). */
static void run(kb *h, const char *query, size_t k, int group, int memory, struct ranked *out)
{
    setenv("KB_BM25_MEMORY", memory ? "1" : "0", 1);
    kb_search_options o = KB_SEARCH_OPTIONS_INIT;
    o.mode = KB_MODE_BM25;
    o.k = k;
    o.group_by_document = group;
    kb_results *res = NULL;
    if (kb_search(h, query, &o, &res))
        fail_msg("search '%s': %s", query, kb_errmsg(h));
    out->n = kb_results_count(res);
    assert_true(out->n <= k && k <= 100);
    for (size_t i = 0; i < out->n; i++) {
        const kb_result *r = kb_results_get(res, i);
        out->chunk[i] = r->chunk_id;
        out->doc[i] = r->doc_id;
        out->score[i] = r->score;
    }
    kb_results_free(res);
    if (memory)
        assert_non_null(h->bm25); /* really answered from memory */
}

static void assert_same(const struct ranked *a, const struct ranked *b, const char *query)
{
    if (a->n != b->n)
        fail_msg("'%s': %zu hits from FTS5, %zu from memory", query, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        if (a->chunk[i] != b->chunk[i] || a->doc[i] != b->doc[i])
            fail_msg("'%s': hit %zu is chunk %lld (%.17g) from FTS5, %lld (%.17g) from memory",
                     query, i, (long long)a->chunk[i], a->score[i], (long long)b->chunk[i],
                     b->score[i]);
        if (fabs(a->score[i] - b->score[i]) > 1e-9 * fabs(a->score[i]))
            fail_msg("'%s': hit %zu scores %.17g from FTS5, %.17g from memory", query, i,
                     a->score[i], b->score[i]);
    }
}

static void memory_index_ranks_as_fts5_does(void **state)
{
    (void)state;
    static const size_t ks[] = { 1, 10, 100 };
    kb *h = NULL;
    assert_int_equal(kb_open(&h, kb_dir, KB_OPEN_READONLY), 0);
    size_t nonempty = 0;
    for (size_t q = 0; q < n_queries; q++)
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
            for (int group = 0; group < 2; group++) {
                struct ranked fts, mem;
                run(h, queries[q], ks[ki], group, 0, &fts);
                run(h, queries[q], ks[ki], group, 1, &mem);
                assert_same(&fts, &mem, queries[q]);
                nonempty += fts.n > 0;
            }
    assert_true(nonempty > n_queries * 5); /* nearly every query finds something */
    kb_close(h);
}

static void second_search_builds_the_index_first_does_not(void **state)
{
    (void)state;
    kb *h = NULL;
    assert_int_equal(kb_open(&h, kb_dir, KB_OPEN_READONLY), 0);
    unsetenv("KB_BM25_MEMORY");
    kb_results *res = NULL;
    assert_int_equal(kb_search(h, queries[0], NULL, &res), 0);
    kb_results_free(res);
    assert_null(h->bm25);
    assert_int_equal(kb_search(h, queries[1], NULL, &res), 0);
    kb_results_free(res);
    assert_non_null(h->bm25);
    kb_close(h);
}

static void handles_share_one_index(void **state)
{
    (void)state;
    kb *a = NULL, *b = NULL;
    struct ranked ra, rb;
    assert_int_equal(kb_open(&a, kb_dir, KB_OPEN_READONLY), 0);
    assert_int_equal(kb_open(&b, kb_dir, KB_OPEN_READONLY), 0);
    run(a, queries[2], 10, 0, 1, &ra);
    run(b, queries[2], 10, 0, 1, &rb);
    assert_ptr_equal(a->bm25, b->bm25);
    assert_int_equal(kb_shared_users(a->bm25), 2);
    assert_same(&ra, &rb, queries[2]);
    kb_close(a);
    assert_int_equal(kb_shared_users(b->bm25), 1);
    kb_close(b);
}

static size_t hits_for(kb *h, const char *query, int64_t *first_doc_chunk)
{
    struct ranked r;
    run(h, query, 10, 0, 1, &r);
    *first_doc_chunk = r.n ? r.chunk[0] : 0;
    struct ranked f;
    run(h, query, 10, 0, 0, &f);
    assert_same(&f, &r, query);
    setenv("KB_BM25_MEMORY", "1", 1);
    return r.n;
}

static void a_handle_sees_added_updated_and_deleted_chunks(void **state)
{
    (void)state;
    kb *r = NULL, *w = NULL;
    int64_t chunk;
    assert_int_equal(kb_open(&r, kb_dir, KB_OPEN_READONLY), 0);
    assert_int_equal(kb_open(&w, kb_dir, 0), 0);
    kb_ingest_options o = KB_INGEST_OPTIONS_INIT;
    o.model = "none";
    kb_document docs[] = {
        { "zz-new", "", "The quorvatile enzyme binds zinc.", 33, "text", NULL },
        { "zz-upd", "", "Plectrofane was seen in mice.", 29, "text", NULL },
        { "zz-del", "", "Glimmeric acid lowers blood pressure.", 37, "text", NULL },
    };
    assert_int_equal(hits_for(r, "quorvatile", &chunk), 0);
    int64_t rev_before = r->bm25_rev;
    assert_int_equal(kb_add_documents(w, docs, 3, &o, NULL), 0);
    assert_int_equal(hits_for(r, "quorvatile enzyme", &chunk), 10);
    assert_true(r->bm25_rev > rev_before); /* rebuilt at the new revision */
    assert_int_equal(hits_for(r, "plectrofane", &chunk), 1);
    assert_int_equal(hits_for(r, "glimmeric", &chunk), 1);
    kb_document upd = { "zz-upd", "", "Vortamine was seen in rats.", 27, "text", NULL };
    const char *del[] = { "zz-del" };
    assert_int_equal(kb_add_documents(w, &upd, 1, &o, NULL), 0);
    assert_int_equal(kb_delete_documents(w, del, 1, 0, NULL), 0);
    assert_int_equal(hits_for(r, "plectrofane", &chunk), 0);
    assert_int_equal(hits_for(r, "vortamine", &chunk), 1);
    assert_int_equal(hits_for(r, "glimmeric", &chunk), 0);
    assert_int_equal(hits_for(r, "quorvatile", &chunk), 1);
    assert_int_equal(kb_shared_users(r->bm25), 1); /* the stale copies were given back */
    kb_close(w);
    kb_close(r);
}

struct worker {
    size_t first;
    int failed;
    struct ranked want[20], got[20];
};

static void *worker_run(void *arg)
{
    struct worker *wk = arg;
    kb *h = NULL;
    if (kb_open(&h, kb_dir, KB_OPEN_READONLY)) {
        wk->failed = 1;
        return NULL;
    }
    kb_search_options o = KB_SEARCH_OPTIONS_INIT;
    o.mode = KB_MODE_BM25;
    o.k = 20;
    for (size_t i = 0; i < 20 && !wk->failed; i++) {
        kb_results *res = NULL;
        if (kb_search(h, queries[wk->first + i], &o, &res)) {
            wk->failed = 1;
            break;
        }
        wk->got[i].n = kb_results_count(res);
        for (size_t j = 0; j < wk->got[i].n; j++) {
            wk->got[i].chunk[j] = kb_results_get(res, j)->chunk_id;
            wk->got[i].doc[j] = kb_results_get(res, j)->doc_id;
            wk->got[i].score[j] = kb_results_get(res, j)->score;
        }
        kb_results_free(res);
    }
    wk->failed |= h->bm25 == NULL;
    kb_close(h);
    return NULL;
}

static void threads_with_their_own_handles_agree(void **state)
{
    (void)state;
    enum { N = 4 };
    static struct worker wk[N];
    kb *h = NULL;
    assert_int_equal(kb_open(&h, kb_dir, KB_OPEN_READONLY), 0);
    for (int t = 0; t < N; t++) {
        wk[t].first = (size_t)t * 20 % (n_queries - 20);
        for (size_t i = 0; i < 20; i++)
            run(h, queries[wk[t].first + i], 20, 0, 0, &wk[t].want[i]);
    }
    kb_close(h);
    setenv("KB_BM25_MEMORY", "1", 1);
    pthread_t th[N];
    for (int t = 0; t < N; t++)
        assert_int_equal(pthread_create(&th[t], NULL, worker_run, &wk[t]), 0);
    for (int t = 0; t < N; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < N; t++) {
        assert_false(wk[t].failed);
        for (size_t i = 0; i < 20; i++)
            assert_same(&wk[t].want[i], &wk[t].got[i], queries[wk[t].first + i]);
    }
}

/* The integer a query on dir's database gives. */
static int64_t query_int(const char *dir, const char *sql)
{
    char *db_path = th_path(dir, "kb.sqlite");
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(db_path);
    return v;
}

/* A schema-5 KB (no chunks_rev, no chunks_count) is refused read-only and upgraded by a
 * writable open, whose triggers then count chunk changes and chunks. */
static void schema_5_gains_chunks_rev_when_opened_for_writing(void **state)
{
    (void)state;
    char *dir;
    kb_ingest_options o;
    kb *w = new_kb(&dir, &o);
    kb_document doc = { "a", "", "Zinc binds the enzyme.", 22, "text", NULL };
    assert_int_equal(kb_add_documents(w, &doc, 1, &o, NULL), 0);
    kb_close(w);
    char *db_path = th_path(dir, "kb.sqlite");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TRIGGER chunks_rev_ai; DROP TRIGGER chunks_rev_ad;"
                                  " DROP TRIGGER chunks_rev_au;"
                                  " DROP TRIGGER chunks_count_ai; DROP TRIGGER chunks_count_ad;"
                                  " DELETE FROM kb_meta WHERE key IN ('chunks_rev',"
                                  " 'chunks_count'); PRAGMA user_version=5;", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    kb *r = NULL;
    assert_int_equal(kb_open(&r, dir, KB_OPEN_READONLY), KB_EVERSION);
    kb_close(r);
    assert_int_equal(kb_open(&w, dir, 0), 0);
    kb_document more = { "b", "", "Copper binds the enzyme too.", 28, "text", NULL };
    assert_int_equal(kb_add_documents(w, &more, 1, &o, NULL), 0);
    struct ranked got;
    run(w, "enzyme", 10, 0, 1, &got);
    assert_int_equal(got.n, 2);
    kb_close(w);
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 7);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT CAST(value AS INTEGER) FROM kb_meta WHERE"
                                        " key='chunks_rev'", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1); /* one chunk inserted since the upgrade */
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(query_int(dir, "SELECT value FROM kb_meta WHERE key='chunks_count'"), 2);
    free(db_path);
    th_rmtree(dir);
    free(dir);
}

/* A search's results as path, place and score (chunk ids differ between KBs). */
struct keyed {
    size_t n;
    char key[100][48];
    double score[100];
};

static void run_keyed(kb *h, const char *query, int group, int memory, struct keyed *out)
{
    setenv("KB_BM25_MEMORY", memory ? "1" : "0", 1);
    kb_search_options o = KB_SEARCH_OPTIONS_INIT;
    o.mode = KB_MODE_BM25;
    o.k = 100;
    o.group_by_document = group;
    kb_results *res = NULL;
    if (kb_search(h, query, &o, &res))
        fail_msg("search '%s': %s", query, kb_errmsg(h));
    out->n = kb_results_count(res);
    for (size_t i = 0; i < out->n; i++) {
        const kb_result *r = kb_results_get(res, i);
        snprintf(out->key[i], sizeof out->key[i], "%s@%llu", r->path,
                 (unsigned long long)r->byte_start);
        out->score[i] = r->score;
    }
    kb_results_free(res);
    if (memory)
        assert_non_null(h->bm25);
}

static void add_docs(kb *w, cJSON **objs, size_t from, size_t to, cJSON **text_from)
{
    kb_ingest_options o = KB_INGEST_OPTIONS_INIT;
    o.model = "none";
    kb_document *docs = calloc(to - from, sizeof *docs);
    for (size_t i = from; i < to; i++) {
        const char *text = field(text_from ? text_from[i - from] : objs[i], "text");
        docs[i - from] = (kb_document){ field(objs[i], "_id"), field(objs[i], "title"), text,
                                        strlen(text), "text", NULL };
    }
    if (kb_add_documents(w, docs, to - from, &o, NULL))
        fail_msg("ingest: %s", kb_errmsg(w));
    free(docs);
}

static void delete_docs(kb *w, cJSON **objs, size_t from, size_t to)
{
    const char **ids = calloc(to - from, sizeof *ids);
    for (size_t i = from; i < to; i++)
        ids[i - from] = field(objs[i], "_id");
    size_t n = 0;
    assert_int_equal(kb_delete_documents(w, ids, to - from, 0, &n), 0);
    assert_int_equal(n, to - from);
    free(ids);
}

/* Chunk ids are never reused, so a KB that saw many documents come and go has ids spread far
 * beyond its chunk count. BM25's statistics (and the pruning of common terms, which leaves out
 * terms in more than a fifth of the chunks) must see the real count: after heavy churn a KB
 * ranks exactly as a fresh KB of the same content does, from FTS5 and from memory. */
static void a_churned_kb_ranks_as_a_fresh_one_does(void **state)
{
    (void)state;
    enum { KEEP = 200, FINAL = 400, POOL = 2400 };
    cJSON **objs = calloc(POOL, sizeof *objs);
    char path[4200];
    snprintf(path, sizeof path, "%s/corpus.jsonl.gz", scifact);
    assert_int_equal(read_objects(path, objs, POOL), POOL);
    /* The churned KB ends with documents 0..FINAL-1 as they were first written: 0..KEEP-1
     * untouched since the first run (the smallest ids), KEEP..FINAL-1 changed and changed back
     * (the largest), and 2000 others added and deleted in between. */
    char *churned_dir, *fresh_dir;
    kb_ingest_options o;
    kb *w = new_kb(&churned_dir, &o);
    add_docs(w, objs, 0, 1200, NULL);
    add_docs(w, objs, KEEP, FINAL, objs + 1200);
    delete_docs(w, objs, FINAL, 1200);
    add_docs(w, objs, 1200, POOL, NULL);
    delete_docs(w, objs, 1200, POOL);
    add_docs(w, objs, KEEP, FINAL, NULL);
    kb_close(w);
    w = new_kb(&fresh_dir, &o);
    add_docs(w, objs, 0, FINAL, NULL);
    kb_close(w);
    kb *churned = NULL, *fresh = NULL;
    assert_int_equal(kb_open(&churned, churned_dir, KB_OPEN_READONLY), 0);
    assert_int_equal(kb_open(&fresh, fresh_dir, KB_OPEN_READONLY), 0);
    int64_t n_chunks = query_int(fresh_dir, "SELECT count(*) FROM chunks");
    assert_true(n_chunks >= 200); /* pruning applies */
    assert_int_equal(query_int(churned_dir, "SELECT count(*) FROM chunks"), n_chunks);
    assert_true(query_int(churned_dir, "SELECT max(id) - min(id) + 1 FROM chunks") > 5 * n_chunks);
    /* "cell" and "results" are in more than a fifth of the chunks, "model", "system" and
     * "mice" in fewer, but in more than a fifth of what the ids span. */
    static const char *const common[] = {
        "model system", "cell model system", "results of the study in mice",
        "cell activity results", "protein expression in human disease",
    };
    size_t n_all = n_queries + sizeof common / sizeof *common, pruned_queries = 0;
    for (size_t q = 0; q < n_all; q++) {
        const char *query = q < n_queries ? queries[q] : common[q - n_queries];
        char *match = NULL, *pruned = NULL;
        assert_int_equal(kb_lexical_query(&match, query, &fresh->err), 0);
        if (match)
            assert_int_equal(kb_lexical_prune(fresh->store, match, &pruned, &fresh->err), 0);
        pruned_queries += pruned != NULL;
        if (q == n_queries + 1 || q == n_queries + 2)
            assert_non_null(pruned);
        free(pruned);
        free(match);
        for (int group = 0; group < 2; group++)
            for (int memory = 0; memory < 2; memory++) {
                static struct keyed a, b;
                run_keyed(churned, query, group, memory, &a);
                run_keyed(fresh, query, group, memory, &b);
                if (a.n != b.n)
                    fail_msg("'%s' (group %d, memory %d): %zu hits after churn, %zu fresh",
                             query, group, memory, a.n, b.n);
                for (size_t i = 0; i < a.n; i++)
                    if (strcmp(a.key[i], b.key[i]) || a.score[i] != b.score[i])
                        fail_msg("'%s' (group %d, memory %d): hit %zu is %s (%.17g) after"
                                 " churn, %s (%.17g) fresh", query, group, memory, i,
                                 a.key[i], a.score[i], b.key[i], b.score[i]);
            }
    }
    assert_true(pruned_queries > n_all / 4); /* the threshold mattered for many queries */
    kb_close(churned);
    kb_close(fresh);
    for (size_t i = 0; i < POOL; i++)
        cJSON_Delete(objs[i]);
    free(objs);
    th_rmtree(churned_dir);
    th_rmtree(fresh_dir);
    free(churned_dir);
    free(fresh_dir);
}

/* A schema-6 KB (no chunks_count) is refused read-only and upgraded by a writable open: the
 * count starts at the chunks it holds and its triggers keep it through adds and deletes, which
 * `kb check` verifies. */
static void schema_6_gains_chunks_count_when_opened_for_writing(void **state)
{
    (void)state;
    char *dir;
    kb_ingest_options o;
    kb *w = new_kb(&dir, &o);
    kb_document docs[] = {
        { "a", "", "Zinc binds the enzyme.", 22, "text", NULL },
        { "b", "", "Copper binds the enzyme too.", 28, "text", NULL },
    };
    assert_int_equal(kb_add_documents(w, docs, 2, &o, NULL), 0);
    kb_close(w);
    char *db_path = th_path(dir, "kb.sqlite");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TRIGGER chunks_count_ai; DROP TRIGGER chunks_count_ad;"
                                  " DELETE FROM kb_meta WHERE key='chunks_count';"
                                  " PRAGMA user_version=6;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    kb *r = NULL;
    assert_int_equal(kb_open(&r, dir, KB_OPEN_READONLY), KB_EVERSION);
    kb_close(r);
    assert_int_equal(kb_open(&w, dir, 0), 0);
    assert_int_equal(query_int(dir, "PRAGMA user_version"), 7);
    assert_int_equal(query_int(dir, "SELECT value FROM kb_meta WHERE key='chunks_count'"), 2);
    kb_document more = { "c", "", "Iron binds it as well.", 22, "text", NULL };
    const char *del[] = { "a" };
    assert_int_equal(kb_add_documents(w, &more, 1, &o, NULL), 0);
    assert_int_equal(kb_delete_documents(w, del, 1, 0, NULL), 0);
    kb_document upd = { "b", "", "Copper binds the enzyme, it seems.", 34, "text", NULL };
    assert_int_equal(kb_add_documents(w, &upd, 1, &o, NULL), 0);
    assert_int_equal(query_int(dir, "SELECT value FROM kb_meta WHERE key='chunks_count'"), 2);
    assert_int_equal(kb_check(w), 0);
    kb_close(w);
    /* a count that disagrees with the table is a damaged KB */
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE kb_meta SET value='5' WHERE key='chunks_count'",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(kb_open(&r, dir, KB_OPEN_READONLY), 0);
    assert_int_equal(kb_check(r), KB_ECORRUPT);
    assert_non_null(strstr(kb_errmsg(r), "counts 5 chunks, the table has 2"));
    kb_close(r);
    free(db_path);
    th_rmtree(dir);
    free(dir);
}

/* Each write transaction adds at least one FTS5 segment and every lookup (a marked snippet is
 * one MATCH per result) reads them all: writers merge the index once it has more than
 * KB_LEXICAL_MAX_SEGMENTS (FTS5's own automerge lets 15 accumulate from single-document
 * commits). Every document stays findable, with its snippet, through the merges. */
static void writers_keep_the_full_text_index_compact(void **state)
{
    (void)state;
    char *dir;
    kb_ingest_options o;
    kb *w = new_kb(&dir, &o);
    int64_t segments = 0, most = 0;
    int merged = 0;
    enum { N_ADDS = 14 };
    for (int i = 0; i < N_ADDS; i++) {
        char id[16], text[96];
        snprintf(id, sizeof id, "doc%d", i);
        snprintf(text, sizeof text, "Enzyme number %d binds zinc%c%c in the assay.", i,
                 'a' + i % 26, 'a' + i / 26);
        kb_document doc = { id, "", text, strlen(text), "text", NULL };
        if (kb_add_documents(w, &doc, 1, &o, NULL))
            fail_msg("add %d: %s", i, kb_errmsg(w));
        int64_t before = segments;
        assert_int_equal(kb_lexical_segments(w->store, &segments, &w->err), 0);
        assert_true(segments >= 1);
        assert_true(segments <= KB_LEXICAL_MAX_SEGMENTS);
        merged += segments < before;
        most = segments > most ? segments : most;
    }
    assert_true(merged >= 1);
    assert_int_equal(most, KB_LEXICAL_MAX_SEGMENTS);
    for (int i = 0; i < N_ADDS; i++) {
        char query[32], id[16];
        snprintf(query, sizeof query, "zinc%c%c", 'a' + i % 26, 'a' + i / 26);
        snprintf(id, sizeof id, "doc%d", i);
        kb_search_options so = KB_SEARCH_OPTIONS_INIT;
        so.mode = KB_MODE_BM25;
        so.hl_open = "[";
        so.hl_close = "]";
        kb_results *res = NULL;
        if (kb_search(w, query, &so, &res))
            fail_msg("search '%s': %s", query, kb_errmsg(w));
        assert_int_equal(kb_results_count(res), 1);
        const kb_result *r = kb_results_get(res, 0);
        assert_non_null(strstr(r->path, id));
        char marked[40];
        snprintf(marked, sizeof marked, "[%s]", query);
        assert_non_null(strstr(r->snippet, marked));
        kb_results_free(res);
    }
    assert_int_equal(kb_check(w), 0);
    kb_close(w);
    th_rmtree(dir);
    free(dir);
}

int main(void)
{
    const char *data = getenv("KB_SHARED_DATA");
    snprintf(scifact, sizeof scifact, "%s/retrieval/scifact", data ? data : "/work/shared/data");
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/corpus.jsonl.gz", scifact);
    FILE *f = fopen(probe, "r");
    if (!f) {
        fprintf(stderr, "test_bm25: %s is missing; skipping\n", probe);
        return 77;
    }
    fclose(f);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_index_ranks_as_fts5_does),
        cmocka_unit_test(second_search_builds_the_index_first_does_not),
        cmocka_unit_test(handles_share_one_index),
        cmocka_unit_test(threads_with_their_own_handles_agree),
        cmocka_unit_test(a_handle_sees_added_updated_and_deleted_chunks),
        cmocka_unit_test(schema_5_gains_chunks_rev_when_opened_for_writing),
        cmocka_unit_test(schema_6_gains_chunks_count_when_opened_for_writing),
        cmocka_unit_test(writers_keep_the_full_text_index_compact),
        cmocka_unit_test(a_churned_kb_ranks_as_a_fresh_one_does),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
