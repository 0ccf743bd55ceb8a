/* search.c — the facade's retrieval: user text in, ranked chunks with their sources out. */
#include "kb/kb_int.h"
#include "index/store.h"

#include <stdlib.h>
#include <string.h>

#include "index/lexical.h"

#define SEARCH_DEFAULT_K 10
#define SEARCH_MAX_K 10000

struct kb_results {
    kb_result *items;
    struct kb_lexical_row *rows;  /* own the strings the items point at */
    size_t count;
};

size_t kb_results_count(const kb_results *results)
{
    return results ? results->count : 0;
}

const kb_result *kb_results_get(const kb_results *results, size_t i)
{
    return results && i < results->count ? &results->items[i] : NULL;
}

void kb_results_free(kb_results *results)
{
    if (!results)
        return;
    for (size_t i = 0; i < results->count; i++) {
        kb_lexical_row_free(&results->rows[i]);
        free((char *)results->items[i].location);
    }
    free(results->rows);
    free(results->items);
    free(results);
}

static void search_fill(kb_result *item, const struct kb_lexical_hit *hit,
                        const struct kb_lexical_row *row)
{
    item->chunk_id = hit->chunk_id;
    item->doc_id = hit->doc_id;
    item->score = hit->score;
    item->path = row->path;
    item->title = row->title;
    item->heading_path = row->heading_path;
    item->format = row->format;
    item->text = row->text;
    item->snippet = row->snippet;
    item->line_start = row->line_start;
    item->line_end = row->line_end;
    item->byte_start = row->byte_start;
    item->byte_end = row->byte_end;
}

/* Turns ranked hits into results with their stored fields. */
static int search_present(kb *kb, const char *match, const struct kb_lexical_hit *hits,
                          size_t n, const kb_search_options *opts, kb_results *res)
{
    res->items = calloc(n ? n : 1, sizeof *res->items);
    res->rows = calloc(n ? n : 1, sizeof *res->rows);
    if (!res->items || !res->rows)
        return kb_fail(kb, KB_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        int rc = kb_lexical_fetch(kb->store, match, hits[i].chunk_id, opts->hl_open,
                                  opts->hl_close, &res->rows[i], &kb->err);
        if (rc)
            return rc;
        res->count = i + 1;
        search_fill(&res->items[i], &hits[i], &res->rows[i]);
        uint32_t page;
        char *location;
        if ((rc = kb_store_chunk_location(kb->store, hits[i].chunk_id, &page, &location,
                                          &kb->err)))
            return rc;
        res->items[i].page = page;
        res->items[i].location = location;
    }
    return 0;
}

int kb_search(kb *kb, const char *query, const kb_search_options *opts, kb_results **out)
{
    static const kb_search_options defaults = KB_SEARCH_OPTIONS_INIT;
    int rc = kb_usable(kb, 0);
    if (rc)
        return rc;
    if (!out || !query)
        return kb_fail(kb, KB_EINVALID, "kb_search: query and out are required");
    *out = NULL;
    opts = opts ? opts : &defaults;
    if (opts->version != KB_SEARCH_OPTIONS_VERSION)
        return kb_fail(kb, KB_EINVALID, "kb_search_options: unknown version %u", opts->version);
    if (opts->mode != 0 && opts->mode != KB_MODE_BM25)
        return kb_fail(kb, KB_EINVALID, "search mode %d is not available", (int)opts->mode);
    size_t k = opts->k ? opts->k : SEARCH_DEFAULT_K;
    if (k > SEARCH_MAX_K)
        return kb_fail(kb, KB_EINVALID, "k=%zu is over the limit of %d", k, SEARCH_MAX_K);
    kb_results *res = calloc(1, sizeof *res);
    char *match = NULL;
    struct kb_lexical_hit *hits = NULL;
    size_t n = 0;
    if (!res) {
        rc = kb_fail(kb, KB_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = kb_lexical_query(&match, query, &kb->err)) || !match)
        goto done;
    if ((rc = kb_lexical_search(kb->store, match, k, opts->group_by_document, &hits, &n,
                                &kb->err)))
        goto done;
    rc = search_present(kb, match, hits, n, opts, res);
done:
    free(hits);
    free(match);
    if (rc) {
        kb_results_free(res);
        return rc;
    }
    *out = res;
    return 0;
}
