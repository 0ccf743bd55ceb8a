/* search_bench.c — kb_search latency per mode on a KB of a given size, query embedding
 * included. Builds the KB on first use from a BEIR corpus repeated COPIES times (each copy's
 * documents get their own ids, so BM25 and vectors both see COPIES near-duplicates), then runs
 * every query of the dataset in each mode (k = 10) and prints p50/p95 in ms as JSON lines.
 * Usage: search_bench KB_DIR MODEL_DIR CORPUS.jsonl QUERIES.jsonl COPIES */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kb/kb.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Reads a JSONL file's objects, keeping `field` (and "title") of each. */
static size_t read_jsonl(const char *path, const char *field, char ***texts, char ***titles)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, n = 0, alloc = 0;
    *texts = NULL;
    if (titles)
        *titles = NULL;
    while (f && getline(&line, &cap, f) > 0) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, field);
        const cJSON *ti = cJSON_GetObjectItemCaseSensitive(o, "title");
        if (cJSON_IsString(t) && *t->valuestring) {
            if (n == alloc) {
                alloc = alloc ? alloc * 2 : 1024;
                *texts = realloc(*texts, alloc * sizeof **texts);
                if (titles)
                    *titles = realloc(*titles, alloc * sizeof **titles);
            }
            (*texts)[n] = strdup(t->valuestring);
            if (titles)
                (*titles)[n] = strdup(cJSON_IsString(ti) ? ti->valuestring : "");
            n++;
        }
        cJSON_Delete(o);
    }
    free(line);
    if (f)
        fclose(f);
    return n;
}

static int build(kb *kb, const char *model, const char *corpus, int copies)
{
    char **texts, **titles;
    size_t n = read_jsonl(corpus, "text", &texts, &titles);
    kb_ingest_options opts = KB_INGEST_OPTIONS_INIT;
    opts.model = model;
    kb_document *docs = calloc(n, sizeof *docs);
    char (*ids)[32] = calloc(n, sizeof *ids);
    double t0 = now_ms();
    size_t chunks = 0;
    for (int c = 0; c < copies; c++) {
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "c%d-%zu", c, i);
            docs[i] = (kb_document){ ids[i], titles[i], texts[i], strlen(texts[i]), "text", NULL };
        }
        kb_ingest_stats st;
        if (kb_add_documents(kb, docs, n, &opts, &st)) {
            fprintf(stderr, "search_bench: %s\n", kb_errmsg(kb));
            return 1;
        }
        chunks += st.chunks;
        fprintf(stderr, "copy %d/%d: %zu chunks so far, %.0f s\n", c + 1, copies, chunks,
                (now_ms() - t0) / 1e3);
    }
    for (size_t i = 0; i < n; i++)
        free(texts[i]), free(titles[i]);
    free(texts), free(titles), free(docs), free(ids);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: search_bench KB_DIR MODEL_DIR CORPUS.jsonl QUERIES.jsonl COPIES\n");
        return 2;
    }
    kb *kb = NULL;
    if (kb_open(&kb, argv[1], KB_OPEN_CREATE)) {
        fprintf(stderr, "search_bench: %s\n", kb_errmsg(kb));
        return 1;
    }
    kb_status_info info;
    kb_stat(kb, &info);
    if (info.n_chunks == 0 && build(kb, argv[2], argv[3], atoi(argv[5])))
        return 1;
    kb_stat(kb, &info);
    char **queries;
    size_t n_q = read_jsonl(argv[4], "text", &queries, NULL);
    double *lat = malloc(n_q * sizeof *lat);
    const kb_mode modes[] = { KB_MODE_BM25, KB_MODE_VECTOR, KB_MODE_HYBRID };
    const char *names[] = { "bm25", "vector", "hybrid" };
    const char *only = getenv("KB_BENCH_MODES"); /* e.g. "hybrid" or "bm25,vector" */
    for (int m = 0; m < 3; m++) {
        if (only && !strstr(only, names[m]))
            continue;
        kb_search_options o = KB_SEARCH_OPTIONS_INIT;
        o.mode = modes[m];
        o.k = 10;
        for (int pass = 0; pass < 2; pass++) /* the first pass warms caches and loads */
            for (size_t i = 0; i < n_q; i++) {
                kb_results *res = NULL;
                double t0 = now_ms();
                if (kb_search(kb, queries[i], &o, &res)) {
                    fprintf(stderr, "search_bench: %s\n", kb_errmsg(kb));
                    return 1;
                }
                lat[i] = now_ms() - t0;
                kb_results_free(res);
            }
        qsort(lat, n_q, sizeof *lat, cmp_double);
        printf("{\"mode\":\"%s\",\"chunks\":%zu,\"vectors\":%zu,\"index\":\"%s\",\"model\":\"%s\","
               "\"queries\":%zu,\"p50_ms\":%.2f,\"p95_ms\":%.2f}\n", names[m], info.n_chunks,
               info.n_vectors, info.index, info.model, n_q, lat[n_q / 2], lat[n_q * 95 / 100]);
        fflush(stdout);
    }
    kb_close(kb);
    return 0;
}
