/* cmd_embed.c — `kb embed TEXT...`: one embedding vector per text; shared model helpers. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char embed_help[] =
    "usage: kb embed [OPTIONS] [TEXT...]\n"
    "\n"
    "Prints the encoder model's embedding of each TEXT (or of each line of standard input when\n"
    "no TEXT is given): one line of space-separated numbers per text, in order.\n"
    "\n"
    "options:\n"
    "  --model NAME|DIR  the encoder model (env KB_MODEL; default " CLI_DEFAULT_MODEL ")\n"
    "  --query           the texts are queries (the model's query prefix is used)\n"
    "  --json            {\"model\": ..., \"dim\": N, \"embeddings\": [[...], ...]}\n"
    "\n"
    "example:\n"
    "  kb embed --model ./all-MiniLM-L6-v2 \"first text\" \"second text\"\n";

enum { OPT_MODEL = 1, OPT_QUERY };

static const struct cli_opt embed_opts[] = {
    { "model", 0, 1, OPT_MODEL }, { "query", 0, 0, OPT_QUERY }, { NULL, 0, 0, 0 },
};

struct embed_cmd {
    const char *model;
    unsigned flags;
};

static const char *embed_opt(int id, const char *value, void *payload)
{
    struct embed_cmd *c = payload;
    if (id == OPT_MODEL)
        c->model = value;
    else if (id == OPT_QUERY)
        c->flags |= KB_EMBED_QUERY;
    return NULL;
}

int cli_open_model(const struct cli *cli, const char *name, kb_model **out)
{
    (void)cli;
    if (!name || !*name)
        name = getenv("KB_MODEL");
    if (!name || !*name)
        name = CLI_DEFAULT_MODEL;
    int status = kb_model_open(out, name);
    if (!status)
        return 0;
    cli_error("%s", *out ? kb_model_errmsg(*out) : kb_strerror(status));
    kb_model_close(*out);
    *out = NULL;
    return cli_exit_code(status);
}

/* Reads all of standard input (capped) into a NUL-terminated string. */
static int embed_read_stdin(char **out)
{
    struct { char *p; size_t len, cap; } b = { NULL, 0, 0 };
    const size_t cap_max = (size_t)256 << 20;
    for (;;) {
        if (b.cap - b.len < 65536) {
            if (b.cap >= cap_max) {
                free(b.p);
                cli_error("standard input: more than 256 MiB");
                return CLI_EXIT_DATAERR;
            }
            char *p = realloc(b.p, b.cap ? b.cap * 2 : 131072);
            if (!p) {
                free(b.p);
                cli_error("out of memory");
                return CLI_EXIT_IOERR;
            }
            b.p = p;
            b.cap = b.cap ? b.cap * 2 : 131072;
        }
        size_t got = fread(b.p + b.len, 1, b.cap - b.len - 1, stdin);
        b.len += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(b.p);
        cli_error("standard input: read error");
        return CLI_EXIT_IOERR;
    }
    b.p[b.len] = '\0';
    *out = b.p;
    return 0;
}

int cli_input_text(char **words, int n_words, char **out)
{
    if (n_words == 0) {
        if (isatty(STDIN_FILENO)) {
            cli_usage_error(NULL, "no TEXT given (pass it as arguments or on standard input)");
            return CLI_EXIT_USAGE;
        }
        return embed_read_stdin(out);
    }
    char *text = cli_join_words(words, n_words);
    if (!text) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    *out = text;
    return 0;
}

/* Splits stdin text into lines (in place); empty lines are kept as empty texts. */
static size_t embed_split_lines(char *text, char ***out)
{
    size_t n = 0, cap = 0;
    char **lines = NULL;
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (n == cap) {
            char **grown = realloc(lines, sizeof *lines * (cap = cap ? cap * 2 : 64));
            if (!grown) {
                free(lines);
                return (size_t)-1;
            }
            lines = grown;
        }
        lines[n++] = p;
        if (!nl)
            break;
        p = nl + 1;
    }
    *out = lines;
    return n;
}

static int embed_print(const struct cli *cli, kb_model *model, const float *vecs, size_t n)
{
    kb_model_info info;
    kb_model_get_info(model, &info);
    if (cli->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "model", info.name);
        cJSON_AddNumberToObject(doc, "dim", info.dim);
        cJSON *arr = cJSON_AddArrayToObject(doc, "embeddings");
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateFloatArray(vecs + i * (size_t)info.dim,
                                                             info.dim));
        return cli_print_json(doc);
    }
    for (size_t i = 0; i < n; i++) {
        for (int d = 0; d < info.dim; d++)
            printf(d ? " %.8g" : "%.8g", vecs[i * (size_t)info.dim + (size_t)d]);
        putchar('\n');
    }
    return 0;
}

int cmd_embed(struct cli *cli, int argc, char **argv)
{
    struct embed_cmd c = { NULL, 0 };
    char **words = calloc((size_t)argc + 1, sizeof *words), **texts = NULL, *input = NULL;
    int n_words = 0, help = 0, rc;
    size_t n_texts = 0;
    kb_model *model = NULL;
    float *vecs = NULL;
    if (!words) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    if ((rc = cli_parse(cli, "embed", embed_opts, argc, argv, embed_opt, &c, words, &n_words,
                        &help)))
        goto done;
    if (help) {
        fputs(embed_help, stdout);
        goto done;
    }
    if (n_words) {
        texts = words;
        n_texts = (size_t)n_words;
    } else {
        if ((rc = cli_input_text(words, 0, &input)))
            goto done;
        if ((n_texts = embed_split_lines(input, &texts)) == (size_t)-1) {
            cli_error("out of memory");
            rc = CLI_EXIT_IOERR;
            texts = NULL;
            goto done;
        }
    }
    if ((rc = cli_open_model(cli, c.model, &model)))
        goto done;
    kb_model_info info;
    kb_model_get_info(model, &info);
    if (!(vecs = malloc(sizeof *vecs * (n_texts ? n_texts : 1) * (size_t)info.dim))) {
        cli_error("out of memory");
        rc = CLI_EXIT_IOERR;
        goto done;
    }
    int status = kb_model_embed(model, (const char *const *)texts, n_texts, c.flags, vecs);
    if (status) {
        cli_error("%s", kb_model_errmsg(model));
        rc = cli_exit_code(status);
        goto done;
    }
    rc = embed_print(cli, model, vecs, n_texts);
done:
    if (texts != words)
        free(texts);
    free(vecs);
    free(input);
    kb_model_close(model);
    free(words);
    return rc;
}
