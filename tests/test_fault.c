/* test_fault.c — fail the Nth allocation, then the Nth write, of a re-ingest (edits, an
 * addition, a rename, a deletion, embeddings and a new vector index generation), for N swept
 * over the whole run: kb must return an error with a one-line message (or finish), never
 * crash, leak nothing (LeakSanitizer in the sanitizer build) and leave a KB that passes
 * kb_check, holds exactly the previous state after an error, and reaches the same state as an
 * uninterrupted run when ingest runs again.
 *
 * Needs the encoder_models fixture (KB_ENCODER_MODELS); skips with 77 without it.
 * KB_FAULT_MAX_RUNS caps the runs per sweep (default 300, 0 = every N); KB_FAULT_ONLY=alloc:N
 * or write:N runs that one case (to reproduce a report); KB_FAULT_KEEP=1 keeps its folder. */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "fault/fault.h"
#include "helpers.h"
#include "kb/kb.h"

static char *root, *docs, *base_kb, *work_kb, *ref_kb, *model;
static uint64_t digest_before, digest_after;
static int problems;

static void run_cmd(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) {
        fprintf(stderr, "failed: %s\n", cmd);
        exit(1);
    }
}

/* FNV-1a over every document and chunk the KB stores, and which chunks have a vector (ids
 * left out: they differ between equivalent runs; vectors are compared by vectors_close, as a
 * chunk embedded in another batch may differ in the last bits). 0 when the database cannot be
 * read. */
static uint64_t kb_digest(const char *dir)
{
    char *path = th_path(dir, "kb.sqlite");
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    uint64_t h = 1469598103934665603ull;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT d.path, d.hash, d.format, d.title, c.ordinal, c.hash, c.text,"
                           " c.n_tokens, length(v.vector) FROM documents d"
                           " LEFT JOIN chunks c ON c.doc_id = d.id"
                           " LEFT JOIN vectors v ON v.chunk_id = c.id"
                           " ORDER BY d.path, c.ordinal", -1, &st, NULL) != SQLITE_OK) {
        h = 0;
        goto done;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            const unsigned char *p = sqlite3_column_blob(st, i);
            int n = sqlite3_column_bytes(st, i);
            for (int j = 0; j < n; j++)
                h = (h ^ p[j]) * 1099511628211ull;
            h = (h ^ 0xff) * 1099511628211ull;
        }
    }
    if (rc != SQLITE_DONE)
        h = 0;
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(path);
    return h;
}

/* Whether dirs a and b store the same vectors, chunk by chunk, within 1e-4. */
static int vectors_close(const char *a, const char *b)
{
    char *path = th_path(a, "kb.sqlite"), *other = th_path(b, "kb.sqlite");
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int same = 0;
    char *attach = sqlite3_mprintf("ATTACH %Q AS b", other);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_exec(db, attach, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT va.vector, vb.vector FROM main.documents da"
                           " JOIN main.chunks ca ON ca.doc_id = da.id"
                           " JOIN main.vectors va ON va.chunk_id = ca.id"
                           " LEFT JOIN b.documents db ON db.path = da.path"
                           " LEFT JOIN b.chunks cb ON cb.doc_id = db.id AND cb.ordinal = ca.ordinal"
                           " LEFT JOIN b.vectors vb ON vb.chunk_id = cb.id"
                           " UNION ALL SELECT 1, count(*) FROM main.vectors"
                           " UNION ALL SELECT 2, count(*) FROM b.vectors",
                           -1, &st, NULL) != SQLITE_OK)
        goto done;
    int rc;
    long long counts[2] = { -1, -2 };
    same = 1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
            counts[sqlite3_column_int(st, 0) - 1] = sqlite3_column_int64(st, 1);
            continue;
        }
        int n = sqlite3_column_bytes(st, 0);
        const float *x = sqlite3_column_blob(st, 0), *y = sqlite3_column_blob(st, 1);
        if (!y || sqlite3_column_bytes(st, 1) != n) {
            same = 0;
            continue;
        }
        for (size_t i = 0; i < (size_t)n / sizeof(float); i++) {
            float d = x[i] - y[i];
            if (d > 1e-4f || d < -1e-4f)
                same = 0;
        }
    }
    same = same && rc == SQLITE_DONE && counts[0] == counts[1];
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    sqlite3_free(attach);
    free(path);
    free(other);
    return same;
}

static const char paragraph[] =
    "Scheduled re-ingestion runs while helpdesk tools query the same knowledge base. ";

static void write_paragraphs(const char *name, const char *head, int n, const char *tag)
{
    size_t cap = strlen(head) + (size_t)n * (2 * sizeof paragraph + 64) + 1;
    char *text = malloc(cap), *p = text;
    p += sprintf(p, "%s", head);
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s%s Paragraph %d of %s.\n\n", paragraph, paragraph, i, tag);
    th_write(docs, name, text, (size_t)-1);
    free(text);
}

struct events {
    int skipped_without_reason;
};

static void on_event(const kb_event *ev, void *payload)
{
    struct events *e = payload;
    if (ev->type == KB_EVENT_SKIPPED && (!ev->reason || !*ev->reason))
        e->skipped_without_reason++;
}

/* Ingests docs into dir (created with the model when new). */
static int ingest(const char *dir, unsigned flags, kb **keep, char *msg, size_t msg_len,
                  struct events *events)
{
    kb *kb = NULL;
    kb_ingest_options o = KB_INGEST_OPTIONS_INIT;
    o.model = model;
    o.on_event = on_event;
    o.payload = events;
    const char *paths[] = { docs };
    int rc = kb_open(&kb, dir, flags);
    if (rc == 0)
        rc = kb_ingest(kb, paths, 1, &o, NULL);
    if (msg)
        snprintf(msg, msg_len, "%s", kb ? kb_errmsg(kb) : kb_strerror(rc)); /* no handle: ENOMEM */
    if (keep)
        *keep = kb;
    else
        kb_close(kb);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    const char *models = getenv("KB_ENCODER_MODELS");
    if (!models) {
        fprintf(stderr, "skip: KB_ENCODER_MODELS is not set\n");
        exit(77);
    }
    model = th_path(models, "tiny_f16_mean");
    char *config = th_path(model, "config.json");
    if (access(config, R_OK) != 0) {
        fprintf(stderr, "skip: %s is missing (the encoder_models fixture makes it)\n", config);
        exit(77);
    }
    free(config);
    if (fault_install() != 0) {
        fprintf(stderr, "cannot install the SQLite fault hooks\n");
        return -1;
    }
    root = th_tempdir();
    docs = th_path(root, "docs");
    base_kb = th_path(root, "base");
    work_kb = th_path(root, "work");
    ref_kb = th_path(root, "reference");
    mkdir(docs, 0755);

    /* The first state: stored in base_kb. */
    write_paragraphs("guide.md", "# Guide\n\n## Install\n\n", 12, "the guide");
    write_paragraphs("notes.txt", "", 6, "the notes");
    write_paragraphs("moved.txt", "", 3, "the file that moves");
    write_paragraphs("gone.md", "# Gone\n\n", 3, "the file that goes");
    th_write(docs, "page.html",
             "<html><head><title>Page</title></head><body><h1>Page</h1>"
             "<p>Vectors live in FAISS and text in SQLite.</p><p>Old text.</p></body></html>",
             (size_t)-1);
    th_write(docs, "table.csv", "name,role\nada,engineer\ngrace,admiral\n", (size_t)-1);
    char msg[1024];
    struct events ev = { 0 };
    int rc = ingest(base_kb, KB_OPEN_CREATE, NULL, msg, sizeof msg, &ev);
    if (rc != 0) {
        fprintf(stderr, "first ingest: %d %s\n", rc, msg);
        return -1;
    }
    digest_before = kb_digest(base_kb);

    /* The second state, which every swept run ingests into a copy of base_kb. */
    write_paragraphs("guide.md", "# Guide\n\n## Install\n\n", 12, "the guide, edited");
    write_paragraphs("added.md", "# Added\n\n", 4, "the new file");
    run_cmd("mv '%s/moved.txt' '%s/renamed.txt' && rm '%s/gone.md'", docs, docs, docs);
    th_write(docs, "page.html",
             "<html><head><title>Page</title></head><body><h1>Page</h1>"
             "<p>Vectors live in FAISS and text in SQLite.</p><p>New text.</p></body></html>",
             (size_t)-1);
    run_cmd("rm -rf '%s' && cp -a '%s' '%s'", work_kb, base_kb, work_kb);
    run_cmd("rm -rf '%s' && cp -a '%s' '%s'", ref_kb, base_kb, ref_kb);
    rc = ingest(ref_kb, 0, NULL, msg, sizeof msg, &ev);
    digest_after = kb_digest(ref_kb);
    if (rc != 0 || !digest_before || !digest_after || digest_before == digest_after) {
        fprintf(stderr, "reference re-ingest: %d %s\n", rc, msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (root && !getenv("KB_FAULT_KEEP"))
        th_rmtree(root);
    else if (root)
        fprintf(stderr, "kept %s\n", root);
    free(root);
    free(docs);
    free(base_kb);
    free(work_kb);
    free(ref_kb);
    free(model);
    return 0;
}

static void report(enum fault_kind kind, size_t n, const char *where, const char *what,
                   int rc, const char *msg)
{
    problems++;
    fprintf(stderr, "FAIL %s:%zu (%s): %s (rc %d, \"%s\")\n",
            kind == FAULT_ALLOC ? "alloc" : "write", n, where, what, rc, msg);
}

/* Keeps the first 64 distinct error messages, each with where it was first seen. */
static void note_seen(char seen[][240], size_t *n_seen, const char *msg, enum fault_kind kind,
                      size_t n, const char *where)
{
    size_t i = 0;
    while (i < *n_seen && strncmp(seen[i], msg, strlen(msg) < 170 ? strlen(msg) : 170))
        i++;
    if (i == *n_seen && *n_seen < 64)
        snprintf(seen[(*n_seen)++], 240, "%.170s  (first at %s:%zu, %.30s)", msg,
                 kind == FAULT_ALLOC ? "alloc" : "write", n, where);
}

/* One re-ingest with the nth call of `kind` failing. Returns 0 when no call failed (n is past
 * the end of the run), 1 otherwise; counts what happened in outcome[]: 0 finished,
 * 1 finished with files skipped, 2 error. */
static int one_run(enum fault_kind kind, size_t n, size_t outcome[3], char seen[][240],
                   size_t *n_seen)
{
    char msg[1024] = "", msg2[1024] = "";
    struct events ev = { 0 };
    run_cmd("rm -rf '%s' && cp -a '%s' '%s'", work_kb, base_kb, work_kb);
    fault_arm(kind, n);
    int rc = ingest(work_kb, 0, NULL, msg, sizeof msg, &ev);
    int fired = fault_fired();
    char where[64];
    snprintf(where, sizeof where, "%s", fault_where());
    fault_disarm();
    if (!fired) {
        if (rc != 0)
            report(kind, n, "nothing", "failed without an injected failure", rc, msg);
        return 0;
    }
    int hard = rc < 0 && rc != KB_EPARTIAL;
    outcome[rc == 0 ? 0 : hard ? 2 : 1]++;
    if (hard && !*msg)
        report(kind, n, where, "error without a message", rc, msg);
    if (hard && strchr(msg, '\n'))
        report(kind, n, where, "message of several lines", rc, msg);
    if (ev.skipped_without_reason)
        report(kind, n, where, "a file skipped without a reason", rc, msg);
    if (hard && *msg)
        note_seen(seen, n_seen, msg, kind, n, where);

    kb *kb = NULL;
    int rc2 = kb_open(&kb, work_kb, 0);
    if (rc2 == 0 && (rc2 = kb_check(kb)) != 0)
        report(kind, n, where, "kb_check fails after the run", rc2, kb_errmsg(kb));
    kb_close(kb);
    if (rc2 != 0 && !kb)
        report(kind, n, where, "the KB does not open after the run", rc2, "");
    uint64_t d = kb_digest(work_kb);
    if (rc == 0 && (d != digest_after || !vectors_close(work_kb, ref_kb)))
        report(kind, n, where, "finished but stored something else than a clean run", rc, msg);
    if (hard && (d != digest_before || !vectors_close(work_kb, base_kb)))
        report(kind, n, where, "failed but the KB changed", rc, msg);

    rc2 = ingest(work_kb, 0, &kb, msg2, sizeof msg2, &ev);
    if (rc2 != 0)
        report(kind, n, where, "the next run fails", rc2, msg2);
    else if ((rc2 = kb_check(kb)) != 0)
        report(kind, n, where, "kb_check fails after the next run", rc2, kb_errmsg(kb));
    kb_close(kb);
    if (kb_digest(work_kb) != digest_after || !vectors_close(work_kb, ref_kb))
        report(kind, n, where, "the next run does not converge to a clean run", rc, msg);
    return 1;
}

/* The step between the failing calls swept over `total`: every one, or every nth so that at
 * most KB_FAULT_MAX_RUNS runs are made (default 300; 0 = every call). */
static size_t sweep_stride(size_t total)
{
    const char *cap_env = getenv("KB_FAULT_MAX_RUNS");
    size_t cap = cap_env ? strtoull(cap_env, NULL, 10) : 300;
    return cap && total > cap ? (total + cap - 1) / cap : 1;
}

static void sweep(enum fault_kind kind)
{
    const char *name = kind == FAULT_ALLOC ? "alloc" : "write";
    problems = 0;
    const char *only = getenv("KB_FAULT_ONLY");
    size_t outcome[3] = { 0, 0, 0 }, n_seen = 0, runs = 0;
    static char seen[64][240];
    if (only) {
        size_t len = strlen(name);
        if (strncmp(only, name, len) || only[len] != ':')
            skip();
        one_run(kind, strtoull(only + len + 1, NULL, 10), outcome, seen, &n_seen);
        assert_int_equal(problems, 0);
        return;
    }
    /* How many calls a clean run makes (they vary a little: threads, timing). */
    run_cmd("rm -rf '%s' && cp -a '%s' '%s'", work_kb, base_kb, work_kb);
    fault_arm(kind, 0);
    int rc = ingest(work_kb, 0, NULL, NULL, 0, NULL);
    size_t total = fault_disarm();
    assert_int_equal(rc, 0);
    size_t stride = sweep_stride(total);
    size_t n = 1;
    for (; one_run(kind, n, outcome, seen, &n_seen) || n <= total; n += stride)
        runs++;
    printf("%s sweep: %zu calls in a clean run, %zu runs (every %zu%s): %zu finished, "
           "%zu finished with files skipped, %zu failed cleanly; %d problems\n",
           name, total, runs, stride, stride == 1 ? "" : "th", outcome[0], outcome[1],
           outcome[2], problems);
    for (size_t i = 0; i < n_seen; i++)
        printf("  error seen: %s\n", seen[i]);
    fflush(stdout);
    assert_int_equal(problems, 0);
    assert_true(outcome[0] + outcome[1] + outcome[2] > 0);
}

static void failing_the_nth_allocation_leaves_a_consistent_kb(void **state)
{
    (void)state;
    sweep(FAULT_ALLOC);
}

static void failing_the_nth_write_leaves_a_consistent_kb(void **state)
{
    (void)state;
    sweep(FAULT_WRITE);
}

/* A search's ranked chunk ids and scores. */
struct ranking {
    size_t n;
    int64_t chunk[16];
    double score[16];
};

static int search(kb *kb, kb_mode mode, struct ranking *out)
{
    kb_search_options o = KB_SEARCH_OPTIONS_INIT;
    o.mode = mode;
    o.k = 16;
    kb_results *res = NULL;
    int rc = kb_search(kb, "FAISS vectors of the edited guide", &o, &res);
    out->n = rc ? 0 : kb_results_count(res);
    for (size_t i = 0; i < out->n; i++) {
        out->chunk[i] = kb_results_get(res, i)->chunk_id;
        out->score[i] = kb_results_get(res, i)->score;
    }
    kb_results_free(res);
    return rc;
}

static int same_ranking(const struct ranking *a, const struct ranking *b)
{
    int same = a->n == b->n && a->n > 0;
    for (size_t i = 0; same && i < a->n; i++)
        same = a->chunk[i] == b->chunk[i] &&
               fabs(a->score[i] - b->score[i]) <= 1e-9 * fabs(b->score[i]) + 1e-12;
    return same;
}

/* The second search of a handle builds the in-memory BM25 index (and a hybrid one embeds the
 * query): with its nth allocation failing, it either answers exactly as without the failure
 * (the FTS5 path takes over when the index cannot be had) or fails with a one-line error that
 * says memory ran out; the handle then answers the same search correctly. */
static void failing_the_nth_allocation_of_a_search_answers_or_errs_cleanly(void **state)
{
    (void)state;
    const kb_mode modes[] = { KB_MODE_BM25, KB_MODE_HYBRID };
    const char *names[] = { "bm25", "hybrid" };
    problems = 0;
    for (int m = 0; m < 2; m++) {
        struct ranking want, got;
        kb *kb = NULL;
        assert_int_equal(kb_open(&kb, ref_kb, KB_OPEN_READONLY), 0);
        assert_int_equal(search(kb, modes[m], &want), 0);
        fault_arm(FAULT_ALLOC, 0);
        int rc = search(kb, modes[m], &got); /* the second: counted */
        size_t total = fault_disarm();
        assert_int_equal(rc, 0);
        assert_true(same_ranking(&got, &want));
        kb_close(kb);
        /* Every nth call up to KB_FAULT_MAX_RUNS runs (as the sweeps), and each of the last
         * 16: the read transaction ends there. */
        size_t stride = sweep_stride(total);
        size_t outcome[2] = { 0, 0 }, runs = 0, n_seen = 0;
        static char seen[64][240];
        for (size_t n = 1; n <= total + 8; n += n + 16 >= total ? 1 : stride) {
            kb = NULL;
            assert_int_equal(kb_open(&kb, ref_kb, KB_OPEN_READONLY), 0);
            assert_int_equal(search(kb, modes[m], &got), 0);
            fault_arm(FAULT_ALLOC, n);
            rc = search(kb, modes[m], &got);
            int fired = fault_fired();
            char where[64];
            snprintf(where, sizeof where, "%s", fault_where());
            fault_disarm();
            const char *msg = kb_errmsg(kb);
            if (!fired) {
                if (rc || !same_ranking(&got, &want))
                    report(FAULT_ALLOC, n, "nothing", "search differs without a failure", rc, msg);
                kb_close(kb);
                continue;
            }
            runs++;
            outcome[rc != 0]++;
            if (rc == 0 && !same_ranking(&got, &want))
                report(FAULT_ALLOC, n, where, "answered something else", rc, names[m]);
            if (rc != 0 && (!*msg || strchr(msg, '\n')))
                report(FAULT_ALLOC, n, where, "error without a one-line message", rc, msg);
            else if (rc != 0 && !strstr(msg, "out of memory"))
                report(FAULT_ALLOC, n, where, "error that does not say memory ran out", rc, msg);
            else if (rc != 0)
                note_seen(seen, &n_seen, msg, FAULT_ALLOC, n, where);
            if (search(kb, modes[m], &got) != 0 || !same_ranking(&got, &want))
                report(FAULT_ALLOC, n, where, "the handle answers wrongly afterwards", rc,
                       kb_errmsg(kb));
            kb_close(kb);
        }
        printf("%s search: %zu allocations, %zu runs (every %zu%s and the last 16): %zu "
               "answered as without the failure, %zu failed cleanly; %d problems\n", names[m],
               total, runs, stride, stride == 1 ? "" : "th", outcome[0], outcome[1], problems);
        for (size_t i = 0; i < n_seen; i++)
            printf("  error seen: %s\n", seen[i]);
        fflush(stdout);
        assert_true(runs > 0);
    }
    assert_int_equal(problems, 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(failing_the_nth_allocation_leaves_a_consistent_kb),
        cmocka_unit_test(failing_the_nth_write_leaves_a_consistent_kb),
        cmocka_unit_test(failing_the_nth_allocation_of_a_search_answers_or_errs_cleanly),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, setup, teardown);
}
