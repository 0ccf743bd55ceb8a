/* cmd_tokenize.c — `kb tokenize TEXT`: the model's WordPiece tokens and ids for a text. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char tokenize_help[] =
    "usage: kb tokenize [OPTIONS] [TEXT...]\n"
    "\n"
    "Splits TEXT (or standard input when no TEXT is given) into the encoder model's WordPiece\n"
    "tokens and prints one `ID<TAB>TOKEN` line per token, [CLS] and [SEP] included. With a\n"
    "decoder model (a .gguf file), its own tokenizer: BOS first when the model adds one.\n"
    "\n"
    "options:\n"
    "  --model NAME|DIR  the encoder model (env KB_MODEL; default " CLI_DEFAULT_MODEL "),\n"
    "                    or FILE.gguf, a decoder model\n"
    "  --no-special      leave out [CLS] and [SEP] (a decoder's BOS)\n"
    "  --ids             print only the ids, space-separated on one line\n"
    "  --json            {\"ids\": [...], \"tokens\": [...], \"n_tokens\": N}\n"
    "\n"
    "example:\n"
    "  kb tokenize --model ./bge-small-en-v1.5 \"Hello, world!\"\n";

enum { OPT_MODEL = 1, OPT_NO_SPECIAL, OPT_IDS };

static const struct cli_opt tokenize_opts[] = {
    { "model", 0, 1, OPT_MODEL }, { "no-special", 0, 0, OPT_NO_SPECIAL },
    { "ids", 0, 0, OPT_IDS }, { NULL, 0, 0, 0 },
};

struct tokenize_cmd {
    const char *model;
    unsigned flags;
    int ids_only;
};

static const char *tokenize_opt(int id, const char *value, void *payload)
{
    struct tokenize_cmd *c = payload;
    switch (id) {
    case OPT_MODEL: c->model = value; return NULL;
    case OPT_NO_SPECIAL: c->flags |= KB_TOKENIZE_NO_SPECIAL; return NULL;
    case OPT_IDS: c->ids_only = 1; return NULL;
    }
    return NULL;
}

static int tokenize_print(const struct cli *cli, const struct tokenize_cmd *c, kb_model *model,
                          kb_lm *lm, const int32_t *ids, size_t n)
{
    if (cli->json) {
        cJSON *doc = cJSON_CreateObject(), *jids = cJSON_AddArrayToObject(doc, "ids");
        cJSON *jtok = cJSON_AddArrayToObject(doc, "tokens");
        for (size_t i = 0; i < n; i++) {
            cJSON_AddItemToArray(jids, cJSON_CreateNumber(ids[i]));
            cJSON_AddItemToArray(jtok, cJSON_CreateString(lm ? kb_lm_token(lm, ids[i]) : kb_model_token(model, ids[i])));
        }
        cJSON_AddNumberToObject(doc, "n_tokens", (double)n);
        return cli_print_json(doc);
    }
    for (size_t i = 0; i < n; i++) {
        if (c->ids_only)
            printf(i ? " %d" : "%d", (int)ids[i]);
        else {
            printf("%d\t", (int)ids[i]);
            cli_line(stdout, "%s", lm ? kb_lm_token(lm, ids[i]) : kb_model_token(model, ids[i]));
        }
    }
    if (c->ids_only)
        putchar('\n');
    return 0;
}

int cmd_tokenize(struct cli *cli, int argc, char **argv)
{
    struct tokenize_cmd c = { NULL, 0, 0 };
    char **words = calloc((size_t)argc + 1, sizeof *words);
    int n_words = 0, help = 0, rc;
    kb_model *model = NULL;
    kb_lm *lm = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    if (!words) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    if ((rc = cli_parse(cli, "tokenize", tokenize_opts, argc, argv, tokenize_opt, &c, words,
                        &n_words, &help)))
        goto done;
    if (help) {
        fputs(tokenize_help, stdout);
        goto done;
    }
    if ((rc = cli_input_text(words, n_words, &text)))
        goto done;
    int status;
    if (c.model && cli_is_gguf(c.model)) { /* a decoder model: its own tokenizer */
        if ((status = kb_lm_open(&lm, c.model)) ||
            (status = kb_lm_tokenize(lm, text, c.flags, &ids, &n))) {
            cli_error("%s", lm ? kb_lm_errmsg(lm) : kb_strerror(status));
            rc = cli_exit_code(status);
            goto done;
        }
    } else {
        if ((rc = cli_open_model(cli, c.model, &model)))
            goto done;
        if ((status = kb_model_tokenize(model, text, c.flags, &ids, &n))) {
            cli_error("%s", kb_model_errmsg(model));
            rc = cli_exit_code(status);
            goto done;
        }
    }
    rc = tokenize_print(cli, &c, model, lm, ids, n);
done:
    kb_free(ids);
    kb_model_close(model);
    kb_lm_close(lm);
    free(text);
    free(words);
    return rc;
}
