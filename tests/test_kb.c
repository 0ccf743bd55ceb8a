/* test_kb.c — the public API (kb/kb.h) used as a C program would: in-memory documents, misuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "helpers.h"
#include "kb/kb.h"

static void api__misuse_returns_errors_not_crashes(void **state)
{
    (void)state;
    kb_results *res = NULL;
    assert_int_equal(kb_search(NULL, "x", NULL, &res), KB_EINVALID);
    assert_int_equal(kb_check(NULL), KB_EINVALID);
    assert_int_equal(kb_open(NULL, "/tmp", 0), KB_EINVALID);
    kb_close(NULL);
    kb_results_free(NULL);
    assert_int_equal(kb_results_count(NULL), 0);
    assert_null(kb_results_get(NULL, 0));
    /* a failed open still gives a handle with the message, usable only for errmsg/close */
    kb *kb = NULL;
    assert_int_equal(kb_open(&kb, "/nonexistent/kb-test-dir", 0), KB_ENOTFOUND);
    assert_non_null(strstr(kb_errmsg(kb), "/nonexistent/kb-test-dir"));
    assert_int_equal(kb_search(kb, "x", NULL, &res), KB_EINVALID);
    kb_close(kb);
}

static void add_documents__is_all_or_nothing(void **state)
{
    (void)state;
    char *dir = th_tempdir();
    kb *kb = NULL;
    assert_int_equal(kb_open(&kb, dir, KB_OPEN_CREATE), 0);
    kb_document docs[] = {
        { "doc-1", "Lighthouses", "The lighthouse keeper trims the wick at dusk.", 45, "text" },
        { "doc-2", NULL, "bad \xff byte", 10, "text" },
    };
    assert_int_equal(kb_add_documents(kb, docs, 2, NULL, NULL), KB_EFORMAT);
    assert_non_null(strstr(kb_errmsg(kb), "doc-2"));
    kb_status_info st;
    assert_int_equal(kb_stat(kb, &st), 0);
    assert_int_equal(st.n_documents, 0);
    kb_ingest_stats is;
    assert_int_equal(kb_add_documents(kb, docs, 1, NULL, &is), 0);
    assert_int_equal(is.added, 1);
    assert_int_equal(kb_add_documents(kb, docs, 1, NULL, &is), 0);
    assert_int_equal(is.unchanged, 1);
    kb_results *res = NULL;
    assert_int_equal(kb_search(kb, "who trims the wick", NULL, &res), 0);
    assert_int_equal(kb_results_count(res), 1);
    assert_string_equal(kb_results_get(res, 0)->path, "doc-1");
    assert_string_equal(kb_results_get(res, 0)->title, "Lighthouses");
    kb_results_free(res);
    assert_int_equal(kb_check(kb), 0);
    kb_close(kb);
    th_rmtree(dir);
    free(dir);
}

static void open__readonly_handle_refuses_writes(void **state)
{
    (void)state;
    char *dir = th_tempdir();
    kb *kb = NULL;
    assert_int_equal(kb_open(&kb, dir, KB_OPEN_CREATE), 0);
    kb_close(kb);
    assert_int_equal(kb_open(&kb, dir, KB_OPEN_READONLY), 0);
    kb_document doc = { "d", NULL, "text", 4, "text" };
    assert_int_equal(kb_add_documents(kb, &doc, 1, NULL, NULL), KB_EINVALID);
    kb_close(kb);
    th_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(api__misuse_returns_errors_not_crashes),
        cmocka_unit_test(add_documents__is_all_or_nothing),
        cmocka_unit_test(open__readonly_handle_refuses_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
