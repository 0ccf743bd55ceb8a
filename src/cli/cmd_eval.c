/* cmd_eval.c — `kb eval --beir DIR`: builds a KB from a BEIR corpus in a scratch folder, runs
 * the split's queries and prints retrieval quality and latency. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "beir.h"

static const char eval_help[] =
    "usage: kb eval --beir DIR [OPTIONS]\n"
    "\n"
    "Builds a scratch knowledge base from a BEIR dataset's corpus (each entry one document:\n"
    "title + text; a document scores as its best passage), runs every query of the split and\n"
    "prints nDCG@10, Recall@100, MRR@10 and query latency. The KB given by --kb is not used.\n"
    "\n"
    "options:\n"
    "  --beir DIR         dataset folder: corpus.jsonl[.gz], queries.jsonl, qrels/SPLIT.tsv\n"
    "  --split NAME       qrels split to score (default test)\n"
    "  --mode MODE        bm25, vector or hybrid (default: hybrid with a model, else bm25)\n"
    "  --model NAME|DIR   encoder model for the scratch KB (default " KB_DEFAULT_MODEL "\n"
    "                     when downloaded; 'none' for keyword search only)\n"
    "  --index TYPE       vector index: flat, ivf, hnsw (default: chosen by size)\n"
    "  --fusion HOW       hybrid ranking: weighted (default) or rrf\n"
    "  --bm25-weight W    weighted fusion's share of BM25, 0..1 (default 0.8)\n"
    "  --keep DIR         build the KB in DIR and keep it; reuse it when it exists\n"
    "  -k N               documents retrieved per query (default 100)\n"
    "  --run FILE         also write a TREC run file (qid Q0 docid rank score kb)\n"
    "  --chunk-tokens N   chunk size used to build the scratch KB (default 256)\n"
    "  --overlap N        chunk overlap in tokens (default 32)\n"
    "  --json             print the figures as JSON\n"
    "\n"
    "example:\n"
    "  kb eval --beir ../shared/data/retrieval/scifact --split test\n";

enum { OPT_BEIR = 1, OPT_SPLIT, OPT_MODE, OPT_K, OPT_RUN, OPT_CHUNK, OPT_OVERLAP, OPT_MODEL,
       OPT_INDEX, OPT_FUSION, OPT_WEIGHT, OPT_KEEP };

static const struct cli_opt eval_opts[] = {
    { "beir", 0, 1, OPT_BEIR }, { "split", 0, 1, OPT_SPLIT }, { "mode", 0, 1, OPT_MODE },
    { "k", 'k', 1, OPT_K }, { "run", 0, 1, OPT_RUN }, { "chunk-tokens", 0, 1, OPT_CHUNK },
    { "overlap", 0, 1, OPT_OVERLAP }, { "model", 0, 1, OPT_MODEL }, { "index", 0, 1, OPT_INDEX },
    { "fusion", 0, 1, OPT_FUSION }, { "bm25-weight", 0, 1, OPT_WEIGHT }, { "keep", 0, 1, OPT_KEEP },
    { NULL, 0, 0, 0 },
};

struct eval_cmd {
    const char *beir_dir, *split, *run_path;
    size_t k, chunk_tokens, overlap;
    int have_overlap;
    kb_mode mode;
    const char *model, *index, *keep;
    kb_fusion fusion;
    double bm25_weight;
};

static const char *eval_opt(int id, const char *value, void *payload)
{
    struct eval_cmd *c = payload;
    switch (id) {
    case OPT_BEIR: c->beir_dir = value; return NULL;
    case OPT_SPLIT: c->split = value; return NULL;
    case OPT_MODE: return cli_parse_mode(value, &c->mode);
    case OPT_MODEL: c->model = value; return NULL;
    case OPT_INDEX: c->index = value; return NULL;
    case OPT_KEEP: c->keep = value; return NULL;
    case OPT_FUSION:
        if (!strcmp(value, "rrf") || !strcmp(value, "weighted")) {
            c->fusion = strcmp(value, "rrf") ? KB_FUSION_WEIGHTED : KB_FUSION_RRF;
            return NULL;
        }
        return "expected rrf or weighted";
    case OPT_WEIGHT: {
        char *end;
        c->bm25_weight = strtod(value, &end);
        return *end || !(c->bm25_weight >= 0 && c->bm25_weight <= 1)
                   ? "expected a number from 0 to 1" : NULL;
    }
    case OPT_K: return cli_parse_size(value, 1, 10000, &c->k);
    case OPT_RUN: c->run_path = value; return NULL;
    case OPT_CHUNK: return cli_parse_size(value, 16, 8192, &c->chunk_tokens);
    case OPT_OVERLAP: c->have_overlap = 1; return cli_parse_size(value, 0, 4095, &c->overlap);
    }
    return NULL;
}

static double eval_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int eval_double_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Removes the scratch KB folder and the files kb put in it. */
static void eval_remove_scratch(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            unlinkat(dirfd(d), de->d_name, 0);
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Adds the corpus in batches (each one transaction). Entries with no text use the title. */
static int eval_build(kb *kb, const struct beir *b, const struct eval_cmd *c)
{
    kb_ingest_options opts = KB_INGEST_OPTIONS_INIT;
    opts.chunk_tokens = (unsigned)c->chunk_tokens;
    opts.overlap_tokens = (unsigned)(c->have_overlap ? c->overlap : KB_DEFAULT_OVERLAP_TOKENS);
    opts.model = c->model;
    opts.index = c->index;
    enum { BATCH = 2000 };
    kb_document *docs = calloc(BATCH, sizeof *docs);
    if (!docs)
        return KB_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < b->n_docs && rc == 0; ) {
        size_t n = 0;
        for (; i < b->n_docs && n < BATCH; i++) {
            const struct beir_doc *d = &b->docs[i];
            const char *text = strspn(d->text, " \t\r\n") < strlen(d->text) ? d->text : d->title;
            if (strspn(text, " \t\r\n") == strlen(text))
                continue; /* nothing to index */
            docs[n++] = (kb_document){ d->id, d->title, text, strlen(text), "text", NULL };
        }
        rc = kb_add_documents(kb, docs, n, &opts, NULL);
    }
    free(docs);
    return rc;
}

struct eval_totals {
    struct beir_scores sum;
    size_t n_queries;
    double *latency_ms;
};

/* Runs one query: scores it and appends its ranking to the run file. */
static int eval_query(kb *kb, const struct beir *b, const struct beir_query *q,
                      const struct eval_cmd *c, FILE *run, struct eval_totals *t)
{
    size_t n_qrels;
    const struct beir_qrel *qrels = beir_qrels_of(b, q->id, &n_qrels);
    if (!qrels)
        return 0;
    kb_search_options opts = KB_SEARCH_OPTIONS_INIT;
    opts.k = c->k;
    opts.mode = c->mode;
    opts.group_by_document = 1;
    opts.fusion = c->fusion;
    opts.bm25_weight = c->bm25_weight;
    kb_results *res = NULL;
    double t0 = eval_now();
    int rc = kb_search(kb, q->text, &opts, &res);
    t->latency_ms[t->n_queries] = (eval_now() - t0) * 1e3;
    if (rc)
        return rc;
    size_t n = kb_results_count(res);
    const char **ranked = calloc(n ? n : 1, sizeof *ranked);
    if (!ranked) {
        kb_results_free(res);
        return KB_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const kb_result *r = kb_results_get(res, i);
        ranked[i] = r->path;
        if (run)
            fprintf(run, "%s Q0 %s %zu %.6f kb\n", q->id, r->path, i + 1, r->score);
    }
    struct beir_scores s;
    beir_score(qrels, n_qrels, ranked, n, &s);
    t->sum.ndcg10 += s.ndcg10;
    t->sum.recall100 += s.recall100;
    t->sum.mrr10 += s.mrr10;
    t->n_queries++;
    free(ranked);
    kb_results_free(res);
    return 0;
}

static const char *eval_mode_name(kb_mode mode)
{
    return mode == KB_MODE_VECTOR ? "vector" : mode == KB_MODE_HYBRID ? "hybrid" : "bm25";
}

static void eval_report(const struct cli *cli, const struct eval_cmd *c, const struct beir *b,
                        struct eval_totals *t, double build_s, const kb_status_info *info)
{
    const char *fusion = c->mode != KB_MODE_HYBRID ? ""
                         : c->fusion == KB_FUSION_RRF ? " (rrf)" : " (weighted)";
    size_t n = t->n_queries;
    qsort(t->latency_ms, n, sizeof *t->latency_ms, eval_double_cmp);
    double p50 = n ? t->latency_ms[n / 2] : 0, p95 = n ? t->latency_ms[(n * 95) / 100] : 0;
    double d = n ? (double)n : 1;
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dataset", c->beir_dir);
        cJSON_AddStringToObject(o, "split", c->split);
        cJSON_AddStringToObject(o, "mode", eval_mode_name(c->mode));
        if (c->mode == KB_MODE_HYBRID) {
            cJSON_AddStringToObject(o, "fusion", c->fusion == KB_FUSION_RRF ? "rrf" : "weighted");
            if (c->fusion == KB_FUSION_WEIGHTED)
                cJSON_AddNumberToObject(o, "bm25_weight", c->bm25_weight);
        }
        if (*info->model) {
            cJSON_AddStringToObject(o, "model", info->model);
            cJSON_AddStringToObject(o, "index", info->index);
        }
        cJSON_AddNumberToObject(o, "documents", (double)b->n_docs);
        cJSON_AddNumberToObject(o, "queries", (double)n);
        cJSON_AddNumberToObject(o, "ndcg_at_10", t->sum.ndcg10 / d);
        cJSON_AddNumberToObject(o, "recall_at_100", t->sum.recall100 / d);
        cJSON_AddNumberToObject(o, "mrr_at_10", t->sum.mrr10 / d);
        cJSON_AddNumberToObject(o, "latency_p50_ms", p50);
        cJSON_AddNumberToObject(o, "latency_p95_ms", p95);
        cJSON_AddNumberToObject(o, "build_seconds", build_s);
        cli_print_json(o);
        return;
    }
    printf("dataset      %s (split %s: %zu queries, %zu documents)\n", c->beir_dir, c->split, n,
           b->n_docs);
    printf("mode         %s%s\n", eval_mode_name(c->mode), fusion);
    if (*info->model)
        printf("model        %s\nindex        %s (%zu vectors)\n", info->model, info->index,
               info->index_vectors);
    printf("nDCG@10      %.4f\nRecall@100   %.4f\nMRR@10       %.4f\n", t->sum.ndcg10 / d,
           t->sum.recall100 / d, t->sum.mrr10 / d);
    printf("latency      p50 %.2f ms, p95 %.2f ms\nbuild        %.1f s\n", p50, p95, build_s);
}

static int eval_run(const struct cli *cli, struct eval_cmd *c, const struct beir *b,
                    const char *scratch)
{
    kb *kb = NULL;
    FILE *run = NULL;
    struct eval_totals t = { { 0, 0, 0 }, 0, calloc(b->n_queries + 1, sizeof(double)) };
    int rc = kb_open(&kb, scratch, KB_OPEN_CREATE);
    double t0 = eval_now(), build_s = 0;
    if (!t.latency_ms)
        rc = KB_ENOMEM;
    if (rc == 0 && !cli->quiet && !cli->json)
        fprintf(stderr, "building a scratch KB from %zu documents...\n", b->n_docs);
    kb_status_info info;
    memset(&info, 0, sizeof info);
    if (rc == 0 && (rc = kb_stat(kb, &info)) == 0 && info.n_documents == 0 &&
        (rc = eval_build(kb, b, c)) == 0)
        build_s = eval_now() - t0;
    if (rc == 0)
        rc = kb_stat(kb, &info);
    if (rc == 0 && c->mode == 0)
        c->mode = *info.model ? KB_MODE_HYBRID : KB_MODE_BM25;
    if (rc == 0 && c->run_path && !(run = fopen(c->run_path, "w"))) {
        cli_error("%s: cannot write run file", c->run_path);
        free(t.latency_ms);
        kb_close(kb);
        return CLI_EXIT_CANTCREAT;
    }
    for (size_t i = 0; rc == 0 && i < b->n_queries; i++)
        rc = eval_query(kb, b, &b->queries[i], c, run, &t);
    if (run && fclose(run) != 0 && rc == 0) {
        cli_error("%s: write failed", c->run_path);
        rc = KB_EIO;
    }
    if (rc == 0)
        eval_report(cli, c, b, &t, build_s, &info);
    int exit_code = rc ? cli_fail(cli, kb, rc) : 0;
    free(t.latency_ms);
    kb_close(kb);
    return exit_code;
}

int cmd_eval(struct cli *cli, int argc, char **argv)
{
    struct eval_cmd c = { NULL, "test", NULL, 100, 0, 0, 0, (kb_mode)0, NULL, NULL, NULL,
                          KB_FUSION_WEIGHTED, 0.8 };
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int n_pos = 0, help = 0, rc;
    if (!pos) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    rc = cli_parse(cli, "eval", eval_opts, argc, argv, eval_opt, &c, pos, &n_pos, &help);
    if (rc == 0 && help)
        fputs(eval_help, stdout);
    else if (rc == 0 && (n_pos || !c.beir_dir)) {
        cli_usage_error("eval", n_pos ? "unexpected argument '%s'" : "--beir DIR is required%s",
                        n_pos ? pos[0] : "");
        rc = CLI_EXIT_USAGE;
    }
    free(pos);
    if (rc || help)
        return rc;
    struct beir b;
    char msg[4200];
    if (beir_load(&b, c.beir_dir, c.split, msg, sizeof msg)) {
        cli_error("%s", msg);
        return strstr(msg, "cannot open") ? CLI_EXIT_NOINPUT : CLI_EXIT_DATAERR;
    }
    const char *tmp = getenv("TMPDIR");
    char scratch[4096];
    snprintf(scratch, sizeof scratch, "%s/kb-eval-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(scratch)) {
        cli_error("%s: cannot create a scratch folder", scratch);
        beir_free(&b);
        return CLI_EXIT_CANTCREAT;
    }
    if (c.keep) {
        rmdir(scratch);
        rc = eval_run(cli, &c, &b, c.keep);
    } else {
        rc = eval_run(cli, &c, &b, scratch);
        eval_remove_scratch(scratch);
    }
    beir_free(&b);
    return rc;
}
