/* cmd_reindex.c — `kb reindex --model NAME`: re-embed every chunk with another model. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char reindex_help[] =
    "usage: kb reindex --model NAME|DIR [--index TYPE]\n"
    "\n"
    "Re-embeds every passage of the knowledge base with the encoder model NAME (a Hugging Face\n"
    "name such as " KB_DEFAULT_MODEL ", or a model folder) and makes it the KB's model.\n"
    "Searches keep using the old vectors until the new ones are all stored. With only\n"
    "--index, rebuilds the vector index with the KB's current model.\n"
    "\n"
    "options:\n"
    "  --model NAME|DIR  the new encoder model\n"
    "  --index TYPE      vector index: flat, ivf, hnsw, or e.g. hnsw:m=32,ef=64\n"
    "  --json            print a JSON summary\n"
    "\n"
    "example:\n"
    "  kb reindex --model sentence-transformers/all-MiniLM-L6-v2\n";

enum { OPT_MODEL = 1, OPT_INDEX };

static const struct cli_opt reindex_opts[] = {
    { "model", 0, 1, OPT_MODEL }, { "index", 0, 1, OPT_INDEX }, { NULL, 0, 0, 0 },
};

struct reindex_cmd {
    const char *model, *index;
};

static const char *reindex_opt(int id, const char *value, void *payload)
{
    struct reindex_cmd *c = payload;
    if (id == OPT_MODEL)
        c->model = value;
    else if (id == OPT_INDEX)
        c->index = value;
    return NULL;
}

int cmd_reindex(struct cli *cli, int argc, char **argv)
{
    struct reindex_cmd c = { NULL, NULL };
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int n_pos = 0, help = 0, rc;
    kb *kb = NULL;
    if (!pos) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    if ((rc = cli_parse(cli, "reindex", reindex_opts, argc, argv, reindex_opt, &c, pos, &n_pos,
                        &help)))
        goto done;
    if (help) {
        fputs(reindex_help, stdout);
        goto done;
    }
    if (n_pos || (!c.model && !c.index)) {
        cli_usage_error("reindex", n_pos ? "unexpected argument '%s'" : "give --model or --index%s",
                        n_pos ? pos[0] : "");
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    if ((rc = cli_open(cli, &kb, 0)))
        goto done;
    kb_ingest_stats st;
    int status;
    if (c.model) {
        status = kb_reindex(kb, c.model, c.index, &st);
    } else {
        memset(&st, 0, sizeof st);
        status = kb_rebuild_index(kb, c.index);
    }
    if (status) {
        rc = cli_fail(cli, kb, status);
        goto done;
    }
    kb_status_info info;
    if (kb_stat(kb, &info) == 0) {
        if (cli->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "model", info.model);
            cJSON_AddNumberToObject(o, "embedded", (double)st.embedded);
            cJSON_AddNumberToObject(o, "reused_vectors", (double)st.reused);
            cJSON_AddStringToObject(o, "index", info.index);
            rc = cli_print_json(o);
        } else {
            printf("%s: %zu passages embedded; index %s (%zu vectors)\n", info.model,
                   st.embedded, info.index, info.index_vectors);
        }
    }
done:
    kb_close(kb);
    free(pos);
    return rc;
}
