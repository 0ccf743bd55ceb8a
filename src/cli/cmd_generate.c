/* cmd_generate.c — `kb generate --model FILE.gguf PROMPT`: a raw completion from a local
 * decoder model, with no chat template and no retrieval. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char generate_help[] =
    "usage: kb generate --model FILE.gguf [OPTIONS] [PROMPT...]\n"
    "\n"
    "Continues PROMPT (none: from the model's BOS token alone) with a local GGUF model, as\n"
    "llama.cpp's CLI does: no chat template,\n"
    "no retrieval. The prompt is the caller's own text, so control tokens written in it (such\n"
    "as <|im_start|>) are read as tokens. The generated text is printed as it comes.\n"
    "\n"
    "options:\n"
    "  --model FILE.gguf     the model (llama or qwen2 architecture)\n"
    "  -n, --max-tokens N    tokens to generate at most (default 256)\n"
    "  --temp T              temperature; 0 = greedy (default)\n"
    "  --top-k K             keep the K likeliest tokens (0 = off)\n"
    "  --top-p P             keep the likeliest tokens up to probability P (0 or 1 = off)\n"
    "  --min-p P             drop tokens under P times the likeliest's probability (0 = off)\n"
    "  --repeat-penalty R    penalise tokens seen in the last 64 (1 = off)\n"
    "  --seed S              the sampler's seed (default: random; printed with -v)\n"
    "  --ctx N               context positions (default: the prompt plus --max-tokens)\n"
    "  --ids \"1 2 3\"         the prompt as token ids instead of text\n"
    "  --ignore-eos          go on past end-of-text tokens\n"
    "  --json                {\"prompt_ids\": [...], \"ids\": [...], \"text\": \"...\"}\n"
    "  --logits              with --json: \"last_logits\", every logit at the last prompt token\n"
    "\n"
    "example:\n"
    "  kb generate --model stories260K.gguf -n 64 \"Once upon a time\"\n";

enum { OPT_MODEL = 1, OPT_MAX, OPT_TEMP, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P, OPT_PENALTY,
       OPT_SEED, OPT_CTX, OPT_IDS, OPT_IGNORE_EOS, OPT_LOGITS };

static const struct cli_opt generate_opts[] = {
    { "model", 0, 1, OPT_MODEL }, { "max-tokens", 'n', 1, OPT_MAX }, { "temp", 0, 1, OPT_TEMP },
    { "top-k", 0, 1, OPT_TOP_K }, { "top-p", 0, 1, OPT_TOP_P }, { "min-p", 0, 1, OPT_MIN_P },
    { "repeat-penalty", 0, 1, OPT_PENALTY }, { "seed", 0, 1, OPT_SEED }, { "ctx", 0, 1, OPT_CTX },
    { "ids", 0, 1, OPT_IDS }, { "ignore-eos", 0, 0, OPT_IGNORE_EOS },
    { "logits", 0, 0, OPT_LOGITS }, { NULL, 0, 0, 0 },
};

struct generate_cmd {
    const char *model, *ids;
    kb_generate_options opts;
    int seeded, logits;
};

static const char *generate_float(const char *value, float lo, float hi, float *out)
{
    static char msg[96];
    char *end;
    errno = 0;
    float v = strtof(value, &end);
    if (!*value || *end || errno || !(v >= lo && v <= hi)) {
        snprintf(msg, sizeof msg, "'%s' is not a number from %g to %g", value, lo, hi);
        return msg;
    }
    *out = v;
    return NULL;
}

static const char *generate_unsigned(const char *value, size_t max, unsigned *out)
{
    size_t v;
    const char *msg = cli_parse_size(value, 0, max, &v);
    if (!msg)
        *out = (unsigned)v;
    return msg;
}

static const char *generate_opt(int id, const char *value, void *payload)
{
    struct generate_cmd *c = payload;
    size_t seed;
    const char *msg;
    switch (id) {
    case OPT_MODEL: c->model = value; return NULL;
    case OPT_MAX: return generate_unsigned(value, 1u << 20, &c->opts.max_tokens);
    case OPT_TEMP: return generate_float(value, 0, 100, &c->opts.temperature);
    case OPT_TOP_K: return generate_unsigned(value, 1u << 24, &c->opts.top_k);
    case OPT_TOP_P: return generate_float(value, 0, 1, &c->opts.top_p);
    case OPT_MIN_P: return generate_float(value, 0, 1, &c->opts.min_p);
    case OPT_PENALTY: return generate_float(value, 0, 100, &c->opts.repeat_penalty);
    case OPT_SEED:
        if ((msg = cli_parse_size(value, 0, SIZE_MAX, &seed)))
            return msg;
        c->opts.seed = seed;
        c->seeded = 1;
        return NULL;
    case OPT_CTX: return generate_unsigned(value, 1u << 20, &c->opts.context);
    case OPT_IDS: c->ids = value; return NULL;
    case OPT_IGNORE_EOS: c->opts.ignore_end = 1; return NULL;
    case OPT_LOGITS: c->logits = 1; return NULL;
    }
    return NULL;
}

/* "1 2 3" (spaces, tabs or commas between) into ids; NULL or the message. */
static const char *generate_parse_ids(const char *text, int32_t **ids, size_t *n)
{
    static char msg[128];
    size_t cap = strlen(text) / 2 + 1;
    *ids = malloc(cap * sizeof **ids);
    *n = 0;
    if (!*ids)
        return "out of memory";
    for (const char *p = text; *p;) {
        if (strchr(" \t\n,", *p)) {
            p++;
            continue;
        }
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && !strchr(" \t\n,", *end))) {
            snprintf(msg, sizeof msg, "--ids: '%.40s' is not a token id", p);
            return msg;
        }
        (*ids)[(*n)++] = (int32_t)v;
        p = end;
    }
    return *n ? NULL : "--ids: no token ids given";
}

struct generate_stream {
    const volatile int *interrupted;
    int print;                /* not --json: each piece is printed as it comes */
};

/* Each piece as it comes, until Ctrl-C. */
static int generate_on_token(const char *text, size_t len, void *payload)
{
    const struct generate_stream *st = payload;
    if (*st->interrupted)
        return 1;
    if (st->print) {
        cli_put_text(stdout, text, len, KB_ESCAPE_TEXT);
        fflush(stdout);
    }
    return 0;
}

static int generate_json(const struct generate_cmd *c, const int32_t *prompt, size_t n_prompt,
                         const kb_generation *g)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *pids = cJSON_AddArrayToObject(doc, "prompt_ids");
    cJSON *ids = cJSON_AddArrayToObject(doc, "ids");
    for (size_t i = 0; i < n_prompt; i++)
        cJSON_AddItemToArray(pids, cJSON_CreateNumber(prompt[i]));
    for (size_t i = 0; i < g->n_ids; i++)
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(g->ids[i]));
    cJSON_AddStringToObject(doc, "text", g->text);
    cJSON_AddBoolToObject(doc, "stopped_at_end", g->stopped_at_end);
    cJSON_AddNumberToObject(doc, "seed", (double)c->opts.seed);
    if (c->logits) {
        cJSON *l = cJSON_AddArrayToObject(doc, "last_logits");
        for (size_t i = 0; i < g->n_vocab; i++)
            cJSON_AddItemToArray(l, cJSON_CreateNumber(g->last_logits[i]));
    }
    return cli_print_json(doc);
}

/* The prompt's ids: --ids, or the text (BOS first; an empty text is BOS alone). */
static int generate_prompt(struct cli *cli, const struct generate_cmd *c, kb_lm *lm,
                           char **words, int n_words, int32_t **ids, size_t *n)
{
    if (c->ids) {
        const char *msg = generate_parse_ids(c->ids, ids, n);
        if (msg) {
            cli_usage_error("generate", "%s", msg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    (void)cli;
    char *text = n_words ? cli_join_words(words, n_words) : NULL;
    if (n_words && !text) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    int status = kb_lm_tokenize(lm, text ? text : "", KB_TOKENIZE_PARSE_SPECIAL, ids, n);
    free(text);
    if (status) {
        cli_error("%s", kb_lm_errmsg(lm));
        return cli_exit_code(status);
    }
    if (!*n) {
        cli_usage_error("generate", "the prompt is empty and the model has no BOS token");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

static int generate_run(struct cli *cli, struct generate_cmd *c, char **words, int n_words)
{
    kb_lm *lm = NULL;
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    kb_generation *g = NULL;
    int status = kb_lm_open(&lm, c->model), rc = 0;
    if (status) {
        cli_error("%s", lm ? kb_lm_errmsg(lm) : kb_strerror(status));
        rc = cli_exit_code(status);
    }
    if (!rc)
        rc = generate_prompt(cli, c, lm, words, n_words, &prompt, &n_prompt);
    if (!rc && !c->seeded && getrandom(&c->opts.seed, sizeof c->opts.seed, 0) < 0)
        c->opts.seed = (uint64_t)time(NULL);
    if (!rc && cli->verbose)
        fprintf(stderr, "kb: %zu prompt tokens; seed %llu\n", n_prompt,
                (unsigned long long)c->opts.seed);
    struct generate_stream st = { cli_catch_interrupts(), !cli->json };
    int stopped = 0;
    if (!rc) {
        c->opts.on_token = generate_on_token;
        c->opts.payload = &st;
        status = kb_lm_generate(lm, prompt, n_prompt, &c->opts, &g);
        stopped = status == KB_ECANCELED && *st.interrupted; /* Ctrl-C: print what came */
        if (status && !stopped) {
            cli_error("%s", kb_lm_errmsg(lm));
            rc = status == KB_EINVALID ? CLI_EXIT_USAGE : cli_exit_code(status);
        }
    }
    if (!rc && cli->json) {
        rc = generate_json(c, prompt, n_prompt, g);
    } else if (!rc) {
        if (!g->text_len || g->text[g->text_len - 1] != '\n')
            putchar('\n');
        if (cli->verbose)
            fprintf(stderr, "kb: prompt %.0f ms (%.1f tokens/s); %zu tokens in %.0f ms "
                    "(%.1f tokens/s)\n", g->prompt_ms, (double)n_prompt * 1e3 / g->prompt_ms,
                    g->n_ids, g->generate_ms, (double)g->n_ids * 1e3 / g->generate_ms);
    }
    if (stopped) {
        cli_error("interrupted: generation stops here");
        rc = rc ? rc : CLI_EXIT_INTERRUPTED;
    }
    kb_generation_free(g);
    kb_free(prompt);
    kb_lm_close(lm);
    return rc;
}

int cmd_generate(struct cli *cli, int argc, char **argv)
{
    struct generate_cmd c = { NULL, NULL, KB_GENERATE_OPTIONS_INIT, 0, 0 };
    char **words = calloc((size_t)argc + 1, sizeof *words);
    int n_words = 0, help = 0, rc;
    if (!words) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    rc = cli_parse(cli, "generate", generate_opts, argc, argv, generate_opt, &c, words, &n_words,
                   &help);
    if (!rc && help)
        fputs(generate_help, stdout);
    else if (!rc && !c.model) {
        cli_usage_error("generate", "--model FILE.gguf is required");
        rc = CLI_EXIT_USAGE;
    } else if (!rc && c.logits && !cli->json) {
        cli_usage_error("generate", "--logits needs --json");
        rc = CLI_EXIT_USAGE;
    } else if (!rc) {
        rc = generate_run(cli, &c, words, n_words);
    }
    free(words);
    return rc;
}
