/* cmd_check.c — `kb check` and `kb status`: is the KB sound, and what does it hold. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static const char check_help[] =
    "usage: kb check\n"
    "\n"
    "Verifies the knowledge base: SQLite integrity, the full-text index against the stored\n"
    "chunks, orphan rows and chunk ranges. Exits 0 when sound, 65 naming the first problem.\n"
    "\n"
    "example:\n"
    "  kb --kb /srv/kb/helpdesk check\n";

static const char status_help[] =
    "usage: kb status\n"
    "\n"
    "Prints what the knowledge base holds: documents, chunks, text size, schema version.\n"
    "\n"
    "example:\n"
    "  kb status --json\n";

/* Parses a command that takes no options or arguments. Returns -1 to go on, else an exit. */
static int check_args(struct cli *cli, const char *cmd, const char *help_text, int argc,
                      char **argv)
{
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int n_pos = 0, help = 0, rc = -1;
    if (!pos) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    if (cli_parse(cli, cmd, NULL, argc, argv, NULL, NULL, pos, &n_pos, &help))
        rc = CLI_EXIT_USAGE;
    else if (help)
        rc = fputs(help_text, stdout) < 0 ? CLI_EXIT_IOERR : CLI_EXIT_OK;
    else if (n_pos) {
        cli_usage_error(cmd, "unexpected argument '%s'", pos[0]);
        rc = CLI_EXIT_USAGE;
    }
    free(pos);
    return rc;
}

int cmd_check(struct cli *cli, int argc, char **argv)
{
    int rc = check_args(cli, "check", check_help, argc, argv);
    if (rc >= 0)
        return rc;
    kb *kb = NULL;
    if ((rc = cli_open(cli, &kb, 0)))
        return rc;
    int status = kb_check(kb);
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", status == 0);
        if (status)
            cJSON_AddStringToObject(o, "problem", kb_errmsg(kb));
        rc = cli_print_json(o);
        rc = rc ? rc : cli_exit_code(status);
    } else if (status) {
        rc = cli_fail(cli, kb, status);
    } else {
        if (!cli->quiet)
            printf("ok\n");
        rc = 0;
    }
    kb_close(kb);
    return rc;
}

int cmd_status(struct cli *cli, int argc, char **argv)
{
    int rc = check_args(cli, "status", status_help, argc, argv);
    if (rc >= 0)
        return rc;
    kb *kb = NULL;
    if ((rc = cli_open(cli, &kb, KB_OPEN_READONLY)))
        return rc;
    kb_status_info st;
    int status = kb_stat(kb, &st);
    if (status) {
        rc = cli_fail(cli, kb, status);
    } else if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        char *abs = realpath(cli->kb_dir, NULL);
        cJSON_AddStringToObject(o, "kb", abs ? abs : cli->kb_dir);
        free(abs);
        cJSON_AddNumberToObject(o, "documents", (double)st.n_documents);
        cJSON_AddNumberToObject(o, "chunks", (double)st.n_chunks);
        cJSON_AddNumberToObject(o, "text_bytes", (double)st.text_bytes);
        cJSON_AddNumberToObject(o, "schema_version", st.schema_version);
        if (*st.model) {
            cJSON_AddStringToObject(o, "model", st.model);
            cJSON_AddNumberToObject(o, "dim", st.dim);
            cJSON_AddNumberToObject(o, "vectors", (double)st.n_vectors);
        } else {
            cJSON_AddNullToObject(o, "model"); /* keyword search only */
        }
        if (*st.index) {
            cJSON_AddStringToObject(o, "index", st.index);
            cJSON_AddNumberToObject(o, "index_generation", (double)st.index_generation);
            cJSON_AddNumberToObject(o, "index_vectors", (double)st.index_vectors);
            cJSON_AddBoolToObject(o, "index_stale", st.index_stale);
        }
        rc = cli_print_json(o);
    } else {
        cli_line(stdout, "kb          %s", cli->kb_dir);
        printf("documents   %zu\nchunks      %zu\ntext        %.1f MB\n"
               "schema      %d\n", st.n_documents, st.n_chunks,
               (double)st.text_bytes / 1e6, st.schema_version);
        if (*st.model) {
            cli_line(stdout, "model       %s (%d dimensions)", st.model, st.dim);
            printf("vectors     %zu\n", st.n_vectors);
        } else
            printf("model       none (keyword search only)\n");
        if (*st.index)
            printf("index       %s, generation %lld, %zu vectors%s\n", st.index,
                   (long long)st.index_generation, st.index_vectors,
                   st.index_stale ? " (stale: rebuilt at the next ingest)" : "");
    }
    kb_close(kb);
    return rc;
}
