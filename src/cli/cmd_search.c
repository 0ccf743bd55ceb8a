/* cmd_search.c — `kb search QUERY`: the best passages with where they come from. */
#include "cli.h"
#include "util/buf.h"
#include "out.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char search_help[] =
    "usage: kb search [OPTIONS] QUERY...\n"
    "\n"
    "Finds the passages that best match QUERY (plain words; quotes and operators are just\n"
    "text) and prints each with its file, line range, title, section, page (or other\n"
    "location) and score.\n"
    "\n"
    "options:\n"
    "  -k N              number of results (default 10)\n"
    "  --mode MODE       bm25, vector or hybrid (default: hybrid when the KB has vectors)\n"
    "  --fusion HOW      hybrid ranking: weighted (scores, default) or rrf (ranks)\n"
    "  --bm25-weight W   weighted fusion's share of BM25, 0..1 (default 0.8)\n"
    "  --path GLOB       only documents under a folder or matching a path glob\n"
    "  --format NAME     only documents of a format (markdown, text, html, pdf, docx, ...)\n"
    "  --modified-after DATE  only files changed after DATE (2026-11-28, Unix seconds, 7d;\n"
    "                         1970-01-01 to 2262-04-11)\n"
    "  --documents       one result per document (its best passage)\n"
    "  --full            print whole passages instead of snippets\n"
    "  --json            print results as JSON (absolute paths)\n"
    "\n"
    "example:\n"
    "  kb search -k 5 \"rotate nginx logs\"\n";

enum { OPT_K = 1, OPT_MODE, OPT_DOCS, OPT_FULL, OPT_FUSION, OPT_WEIGHT, OPT_PATH, OPT_FORMAT,
       OPT_AFTER };

static const struct cli_opt search_opts[] = {
    { "k", 'k', 1, OPT_K }, { "mode", 0, 1, OPT_MODE }, { "documents", 0, 0, OPT_DOCS },
    { "full", 0, 0, OPT_FULL }, { "fusion", 0, 1, OPT_FUSION },
    { "bm25-weight", 0, 1, OPT_WEIGHT }, { "path", 0, 1, OPT_PATH },
    { "format", 0, 1, OPT_FORMAT }, { "modified-after", 0, 1, OPT_AFTER }, { NULL, 0, 0, 0 },
};

struct search_cmd {
    kb_search_options opts;
    int full;
    char *path_glob;
};

static const char *search_opt(int id, const char *value, void *payload)
{
    struct search_cmd *c = payload;
    switch (id) {
    case OPT_K: return cli_parse_size(value, 1, 10000, &c->opts.k);
    case OPT_MODE:
        return cli_parse_mode(value, &c->opts.mode);
    case OPT_FUSION:
        if (!strcmp(value, "rrf"))
            c->opts.fusion = KB_FUSION_RRF;
        else if (!strcmp(value, "weighted"))
            c->opts.fusion = KB_FUSION_WEIGHTED;
        else
            return "expected rrf or weighted";
        return NULL;
    case OPT_WEIGHT: {
        char *end;
        double w = strtod(value, &end);
        if (*end || !(w >= 0 && w <= 1))
            return "expected a number from 0 to 1";
        c->opts.bm25_weight = w;
        return NULL;
    }
    case OPT_DOCS: c->opts.group_by_document = 1; return NULL;
    case OPT_FULL: c->full = 1; return NULL;
    case OPT_PATH:
        free(c->path_glob);
        if (!(c->opts.path_glob = c->path_glob = cli_path_filter(value)))
            return "out of memory";
        return NULL;
    case OPT_FORMAT: c->opts.format = value; return NULL;
    case OPT_AFTER: return cli_parse_time(value, &c->opts.modified_after);
    }
    return NULL;
}

static int search_json(const kb_results *res)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < kb_results_count(res); i++)
        cJSON_AddItemToArray(arr, cli_json_result(kb_results_get(res, i), i + 1));
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "results", arr);
    return cli_print_json(doc);
}

/* Prints text on one line: runs of whitespace become one space; other control characters are
 * escaped. */
static void search_print_flat(const char *text)
{
    struct kb_buf flat = KB_BUF_INIT;
    int space = 0;
    for (const char *p = text; *p; p++) {
        if (strchr(" \t\r\n\f\v", *p)) {
            space = 1;
            continue;
        }
        if (space)
            kb_buf_append(&flat, " ", 1);
        space = 0;
        kb_buf_append(&flat, p, 1);
    }
    cli_put_text(stdout, flat.data ? flat.data : "", flat.len, KB_ESCAPE_LINE);
    kb_buf_free(&flat);
}

/* Prints a whole passage indented by three spaces, its control characters escaped. */
static void search_print_full(const char *text)
{
    struct kb_buf esc = KB_BUF_INIT;
    if (kb_utf8_escape(&esc, text, strlen(text), KB_ESCAPE_TEXT) == 0 && esc.len)
        for (const char *p = esc.data, *end = esc.data + esc.len; p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            fwrite(p, 1, n, stdout);
            if (nl)
                fputs("\n   ", stdout);
            p += n + (nl ? 1 : 0);
        }
    kb_buf_free(&esc);
}

static void search_print(const struct cli *cli, const struct search_cmd *c, const kb_results *res)
{
    const char *bold = cli->color ? "\033[1m" : "", *off = cli->color ? "\033[0m" : "";
    for (size_t i = 0; i < kb_results_count(res); i++) {
        const kb_result *r = kb_results_get(res, i);
        const struct cli_place place = { r->path, r->title, r->heading_path, r->format,
                                         r->location, r->line_start, r->line_end };
        printf("%s%zu. ", bold, i + 1);
        cli_place_print(stdout, &place, CLI_PLACE_RESULT);
        printf("%s  (%.2f)\n   ", off, r->score);
        if (c->full)
            search_print_full(r->text);
        else
            search_print_flat(r->snippet);
        fputs("\n\n", stdout);
    }
}

int cmd_search(struct cli *cli, int argc, char **argv)
{
    struct search_cmd c = { KB_SEARCH_OPTIONS_INIT, 0, NULL };
    char **words = calloc((size_t)argc + 1, sizeof *words);
    int n_words = 0, help = 0, rc;
    kb *kb = NULL;
    kb_results *res = NULL;
    char *query = NULL;
    if (!words) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    if ((rc = cli_parse(cli, "search", search_opts, argc, argv, search_opt, &c, words, &n_words,
                        &help)))
        goto done;
    if (help) {
        fputs(search_help, stdout);
        goto done;
    }
    if (n_words == 0) {
        cli_usage_error("search", "no QUERY given");
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    if (!(query = cli_join_words(words, n_words))) {
        cli_error("out of memory");
        rc = CLI_EXIT_IOERR;
        goto done;
    }
    if (cli->color && !cli->json) {
        c.opts.hl_open = "\033[1;33m";
        c.opts.hl_close = "\033[0m";
    }
    if ((rc = cli_open(cli, &kb, KB_OPEN_READONLY)))
        goto done;
    int status = kb_search(kb, query, &c.opts, &res);
    if (status) {
        rc = cli_fail(cli, kb, status);
        goto done;
    }
    if (cli->json)
        rc = search_json(res);
    else
        search_print(cli, &c, res);
    if (!cli->json && kb_results_count(res) == 0 && !cli->quiet)
        fprintf(stderr, "no results\n");
done:
    kb_results_free(res);
    kb_close(kb);
    free(query);
    free(words);
    free(c.path_glob);
    return rc;
}
