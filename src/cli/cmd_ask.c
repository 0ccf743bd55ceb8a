/* cmd_ask.c — `kb ask QUESTION` (a streamed, cited answer) and `kb prompt QUESTION` (the exact
 * messages that would be sent), and the answer output kb chat shares with them. */
#include "cmd_ask.h"
#include "out.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char ask_help[] =
    "usage: kb ask [OPTIONS] QUESTION...\n"
    "\n"
    "Finds the best passages, asks the configured model to answer from them alone, streams the\n"
    "answer and lists the sources it may cite as [n]. The model comes from\n"
    "$XDG_CONFIG_HOME/kb/config (backend, url, model, ...), then KB_LLM_BACKEND, KB_LLM_URL,\n"
    "KB_LLM_MODEL, then the options below. API keys only from OPENAI_API_KEY,\n"
    "ANTHROPIC_API_KEY, KB_API_KEY or a key_file of mode 0600 named in the config.\n"
    "With no backend configured, prints the best passages and exits 0; when the backend is\n"
    "unreachable, prints them too and exits 69.\n"
    "\n"
    "options:\n"
    "  -k N                passages to retrieve (default 8)\n"
    "  --mode MODE         bm25, vector or hybrid (default: hybrid when the KB has vectors)\n"
    "  --template NAME     prompt template: default, concise, summarize, or your own\n"
    "                      (~/.config/kb/prompts/NAME.prompt, or a path)\n"
    "  --backend NAME      openai (any Chat Completions server), ollama, anthropic, or\n"
    "                      local (a GGUF model file kb runs itself, no server)\n"
    "  --model NAME        the model to ask (local: FILE.gguf)\n"
    "  --chat-format NAME  local: chatml, llama3 or llama3.2 instead of the model's template\n"
    "  --url URL           the server (e.g. http://localhost:8080/v1)\n"
    "  --max-tokens N      longest answer in tokens (default 1024)\n"
    "  --context-window N  the model's context in tokens (default 8192)\n"
    "  --no-stream         print the answer when it is complete\n"
    "  --json              JSON lines as the answer streams: {\"type\":\"token\",\"text\"},\n"
    "                      then {\"type\":\"sources\"}, then {\"type\":\"summary\"} with answer,\n"
    "                      usage and timings; with --no-stream one JSON document instead\n"
    "  -v                  time to first token and tokens/s; passages left out (-vv: request)\n"
    "\n"
    "example:\n"
    "  kb ask --backend ollama --model llama3.2 \"how do I rotate the logs?\"\n";

static const char prompt_help[] =
    "usage: kb prompt [OPTIONS] QUESTION...\n"
    "\n"
    "Prints the exact messages `kb ask` would send for QUESTION (each after a [role] line),\n"
    "for piping into another tool; --json prints them as a chat-messages array.\n"
    "\n"
    "options:\n"
    "  -k N, --mode MODE, --template NAME, --max-tokens N, --context-window N  as for kb ask\n"
    "  --json              [{\"role\": ..., \"content\": ...}, ...]\n"
    "  -v                  token estimate and the passages that did not fit\n"
    "\n"
    "example:\n"
    "  kb prompt --json \"what does the backup script do\" | jq .\n";

enum { OPT_K = 1, OPT_MODE, OPT_TEMPLATE, OPT_BACKEND, OPT_MODEL, OPT_URL, OPT_MAX_TOKENS,
       OPT_CONTEXT, OPT_NO_STREAM, OPT_CHAT_FORMAT };

const struct cli_opt cli_ask_opts[] = {
    { "k", 'k', 1, OPT_K }, { "mode", 0, 1, OPT_MODE }, { "template", 0, 1, OPT_TEMPLATE },
    { "backend", 0, 1, OPT_BACKEND }, { "model", 0, 1, OPT_MODEL }, { "url", 0, 1, OPT_URL },
    { "max-tokens", 0, 1, OPT_MAX_TOKENS }, { "context-window", 0, 1, OPT_CONTEXT },
    { "no-stream", 0, 0, OPT_NO_STREAM }, { "chat-format", 0, 1, OPT_CHAT_FORMAT },
    { NULL, 0, 0, 0 },
};

static const char *ask_unsigned(const char *value, size_t min, size_t max, unsigned *out)
{
    size_t v;
    const char *msg = cli_parse_size(value, min, max, &v);
    if (!msg)
        *out = (unsigned)v;
    return msg;
}

/* NULL when kb_ask knows the backend, else the message listing those it knows. */
static const char *ask_backend_known(const char *name)
{
    static char msg[160];
    const char *const *names = kb_ask_backends();
    size_t n = 0, used = 0;
    while (names[n] && strcmp(names[n], name))
        n++;
    if (names[n])
        return NULL;
    used = (size_t)snprintf(msg, sizeof msg, "expected");
    for (size_t i = 0; names[i] && used < sizeof msg; i++)
        used += (size_t)snprintf(msg + used, sizeof msg - used, "%s%s", i == 0 ? " "
                                 : names[i + 1] ? ", " : " or ", names[i]);
    return msg;
}

const char *cli_ask_opt(int id, const char *value, void *payload)
{
    struct ask_cmd *c = payload;
    switch (id) {
    case OPT_K: return cli_parse_size(value, 1, 1000, &c->opts.k);
    case OPT_MODE: return cli_parse_mode(value, &c->opts.mode); /* kb_search says what's missing */
    case OPT_TEMPLATE: c->opts.template_name = value; return NULL;
    case OPT_BACKEND:
        c->opts.backend = value;
        return ask_backend_known(value);
    case OPT_MODEL: c->opts.model = value; return NULL;
    case OPT_URL: c->opts.url = value; return NULL;
    case OPT_MAX_TOKENS: return ask_unsigned(value, 1, 1000000, &c->opts.max_tokens);
    case OPT_CONTEXT: return ask_unsigned(value, 2, 10000000, &c->opts.context_window);
    case OPT_NO_STREAM: c->no_stream = 1; return NULL;
    case OPT_CHAT_FORMAT: c->opts.chat_format = value; return NULL;
    }
    return NULL;
}

static int ask_on_token(const char *text, size_t len, void *payload)
{
    struct ask_cmd *c = payload;
    cli_put_text(stdout, text, len, KB_ESCAPE_TEXT);
    fflush(stdout);
    c->streamed = 1;
    c->last = text[len - 1];
    return 0;
}

static void ask_add_turn(cJSON *obj, const struct ask_cmd *c)
{
    if (c->turn > 0)
        cJSON_AddNumberToObject(obj, "turn", c->turn);
}

static int ask_on_json_token(const char *text, size_t len, void *payload)
{
    struct ask_cmd *c = payload;
    cJSON *obj = cJSON_CreateObject();
    char *piece = malloc(len + 1);
    if (obj && piece) {
        memcpy(piece, text, len);
        piece[len] = '\0';
        cJSON_AddStringToObject(obj, "type", "token");
        ask_add_turn(obj, c);
        cJSON_AddStringToObject(obj, "text", piece);
    }
    free(piece);
    cli_ask_json_line(obj);
    c->streamed = 1;
    return 0;
}

static void ask_on_log(int level, const char *line, void *payload)
{
    struct ask_cmd *c = payload;
    if (level <= c->cli->verbose)
        cli_line(stderr, "kb: %s", line);
}

void cli_ask_set_callbacks(struct ask_cmd *c)
{
    c->opts.on_token = c->no_stream ? NULL : c->cli->json ? ask_on_json_token : ask_on_token;
    c->opts.on_log = ask_on_log;
    c->opts.payload = c;
}

int cli_ask_exit(int status)
{
    switch (status) {
    case KB_EUNAVAILABLE: return CLI_EXIT_UNAVAILABLE;
    case KB_EAUTH: case KB_ECONFIG: return CLI_EXIT_CONFIG;
    default: return cli_exit_code(status);
    }
}

void cli_ask_print_source(const kb_source *s)
{
    const struct cli_place place = { s->path, s->title, s->heading_path, s->format,
                                     s->location, s->line_start, s->line_end };
    printf("[%d] ", s->number);
    cli_place_print(stdout, &place, CLI_PLACE_CITATION);
    putchar('\n');
}

void cli_ask_print_passages(const kb_prompt_result *p)
{
    for (size_t i = 0; i < p->n_sources; i++) {
        cli_ask_print_source(&p->sources[i]);
        for (const char *t = p->sources[i].text; *t;) {
            size_t n = strcspn(t, "\n");
            fputs("    ", stdout);
            cli_put_text(stdout, t, n, KB_ESCAPE_LINE);
            putchar('\n');
            t += n + (t[n] ? 1 : 0);
        }
        putchar('\n');
    }
    if (!p->n_sources)
        fputs("no passages match the question\n", stdout);
}

static void ask_report_prompt(const struct cli *cli, const kb_prompt_result *p)
{
    if (cli->verbose < 1)
        return;
    for (size_t i = 0; i < p->n_sources; i++) {
        if (!*p->sources[i].note)
            continue;
        char *shown = cli_display_path(p->sources[i].path);
        cli_line(stderr, "kb: sent %s:%u-%u (%s)", shown ? shown : p->sources[i].path,
                 p->sources[i].line_start, p->sources[i].line_end, p->sources[i].note);
        free(shown);
    }
    for (size_t i = 0; i < p->n_dropped; i++) {
        char *shown = cli_display_path(p->dropped[i].path);
        cli_line(stderr, "kb: left out %s:%u-%u (%s)", shown ? shown : p->dropped[i].path,
                 p->dropped[i].line_start, p->dropped[i].line_end, p->dropped[i].note);
        free(shown);
    }
    cli_line(stderr, "kb: template %s; %zu passages; prompt ~%zu tokens of a %zu-token budget",
             p->template_name, p->n_sources, p->prompt_tokens, p->budget_tokens);
}

void cli_ask_report_speed(const struct cli *cli, const kb_answer *a)
{
    if (cli->verbose < 1)
        return;
    fprintf(stderr, "kb: retrieval %.0f ms; first token after %.2f s; %llu tokens%s in %.2f s "
            "(%.1f tokens/s)%s\n", a->retrieve_ms, a->first_token_ms / 1e3,
            (unsigned long long)a->completion_tokens, a->usage_estimated ? " (counted)" : "",
            (a->total_ms - a->first_token_ms) / 1e3, a->tokens_per_second,
            a->attempts > 1 ? "; retried" : "");
}

static void ask_json_usage(cJSON *doc, const kb_answer *a)
{
    cJSON *u = cJSON_AddObjectToObject(doc, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)a->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)a->completion_tokens);
    cJSON_AddBoolToObject(u, "estimated", a->usage_estimated);
    cJSON *t = cJSON_AddObjectToObject(doc, "timings");
    cJSON_AddNumberToObject(t, "retrieve_ms", a->retrieve_ms);
    cJSON_AddNumberToObject(t, "first_token_ms", a->first_token_ms);
    cJSON_AddNumberToObject(t, "total_ms", a->total_ms);
    cJSON_AddNumberToObject(t, "tokens_per_second", a->tokens_per_second);
    cJSON_AddNumberToObject(doc, "attempts", a->attempts);
}

cJSON *cli_ask_json(const struct ask_cmd *c, const char *type, const kb_answer *a,
                    const char *error, int with_sources)
{
    const kb_prompt_result *p = a->prompt;
    int answered = p->backend && !error;
    cJSON *doc = cJSON_CreateObject();
    if (type)
        cJSON_AddStringToObject(doc, "type", type);
    ask_add_turn(doc, c);
    if (answered)
        cJSON_AddStringToObject(doc, "answer", a->text);
    if (error)
        cJSON_AddStringToObject(doc, "error", error);
    if (p->backend) cJSON_AddStringToObject(doc, "backend", p->backend);
    if (p->model) cJSON_AddStringToObject(doc, "model", p->model);
    cJSON_AddStringToObject(doc, "template", p->template_name);
    if (with_sources)
        cJSON_AddItemToObject(doc, "sources",
                              cli_json_sources(p->sources, p->n_sources, !answered));
    if (answered)
        ask_json_usage(doc, a);
    return doc;
}

cJSON *cli_ask_json_sources_line(const struct ask_cmd *c, const kb_prompt_result *p,
                                 int with_text)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "type", "sources");
    ask_add_turn(obj, c);
    cJSON_AddItemToObject(obj, "sources", cli_json_sources(p->sources, p->n_sources, with_text));
    return obj;
}

int cli_ask_json_line(cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) {
        cli_error("out of memory writing JSON");
        return CLI_EXIT_IOERR;
    }
    cli_put_utf8_line(text);
    int bad = ferror(stdout) || fflush(stdout);
    cJSON_free(text);
    return bad ? CLI_EXIT_IOERR : 0;
}

/* JSON output of kb ask: one document with --no-stream, else the closing lines after the
 * token lines: sources, then the summary. */
static int ask_json_out(const struct ask_cmd *c, const kb_answer *a, const char *error)
{
    if (c->no_stream)
        return cli_print_json(cli_ask_json(c, NULL, a, error, 1));
    int answered = a->prompt->backend && !error;
    int rc = cli_ask_json_line(cli_ask_json_sources_line(c, a->prompt, !answered));
    return rc ? rc : cli_ask_json_line(cli_ask_json(c, "summary", a, error, 0));
}

void cli_ask_no_backend(const char *what, const char *tail)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    cli_error("no LLM backend configured: showing %s; to get answers set 'backend' and 'model' "
              "in %s/kb/config%s", what, xdg && *xdg ? xdg : "~/.config", tail);
}

/* No answer: the best passages on stdout and one line on stderr. */
static int ask_fallback(const struct ask_cmd *c, const kb_answer *a, kb *kb, int status)
{
    const struct cli *cli = c->cli;
    if (status)
        cli_error("%s; showing the best passages instead", kb_errmsg(kb));
    else if (!cli->quiet)
        cli_ask_no_backend("the best passages", " or KB_LLM_BACKEND and KB_LLM_MODEL (see "
                           "'kb ask --help')");
    int rc = cli->json ? ask_json_out(c, a, status ? kb_errmsg(kb) : NULL) : 0;
    if (!cli->json)
        cli_ask_print_passages(a->prompt);
    return rc ? rc : cli_ask_exit(status);
}

static int ask_print(struct ask_cmd *c, const kb_answer *a)
{
    cli_ask_report_speed(c->cli, a);
    if (c->cli->json)
        return ask_json_out(c, a, NULL);
    if (c->no_stream || !c->streamed) {
        cli_put_text(stdout, a->text, a->text_len, KB_ESCAPE_TEXT);
        c->last = a->text_len ? a->text[a->text_len - 1] : '\n';
    }
    if (c->last != '\n')
        putchar('\n');
    if (a->prompt->n_sources)
        fputs("\nSources:\n", stdout);
    for (size_t i = 0; i < a->prompt->n_sources; i++)
        cli_ask_print_source(&a->prompt->sources[i]);
    return fflush(stdout) ? CLI_EXIT_IOERR : 0;
}

/* Parses the command line into c and *question; returns -1 to go on, else the exit code. */
static int ask_parse(struct cli *cli, const char *cmd, const char *help_text, int argc,
                     char **argv, struct ask_cmd *c, char **question)
{
    char **words = calloc((size_t)argc + 1, sizeof *words);
    int n_words = 0, help = 0, rc = -1;
    if (!words) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    if (cli_parse(cli, cmd, cli_ask_opts, argc, argv, cli_ask_opt, c, words, &n_words, &help))
        rc = CLI_EXIT_USAGE;
    else if (help)
        rc = fputs(help_text, stdout) < 0 ? CLI_EXIT_IOERR : CLI_EXIT_OK;
    else if (n_words == 0) {
        cli_usage_error(cmd, "no QUESTION given");
        rc = CLI_EXIT_USAGE;
    } else if (!(*question = cli_join_words(words, n_words))) {
        cli_error("out of memory");
        rc = CLI_EXIT_IOERR;
    }
    free(words);
    return rc;
}

/* What kb_ask gave: the answer, the passages instead, or an error (which still ends the JSON
 * lines with a summary when part of an answer was streamed). */
static int ask_finish(struct ask_cmd *c, kb *kb, const kb_answer *answer, int status)
{
    if (!c->cli->json && c->streamed && c->last != '\n')
        putchar('\n');
    fflush(stdout);
    if (answer && (!answer->prompt->backend || status == KB_EUNAVAILABLE))
        return ask_fallback(c, answer, kb, status);
    if (!status)
        return ask_print(c, answer);
    if (status == KB_ECANCELED && answer && c->opts.cancel && *c->opts.cancel) {
        int rc = ask_print(c, answer); /* Ctrl-C: what came, with its sources */
        cli_error("interrupted: the answer stops here");
        return rc ? rc : CLI_EXIT_INTERRUPTED;
    }
    cli_error("%s", kb_errmsg(kb));
    if (answer && c->cli->json && !c->no_stream)
        ask_json_out(c, answer, kb_errmsg(kb));
    return cli_ask_exit(status);
}

int cmd_ask(struct cli *cli, int argc, char **argv)
{
    struct ask_cmd c = ASK_CMD_INIT(cli);
    char *question = NULL;
    kb *kb = NULL;
    kb_answer *answer = NULL;
    int rc = ask_parse(cli, "ask", ask_help, argc, argv, &c, &question);
    if (rc >= 0)
        goto done;
    if ((rc = cli_open(cli, &kb, KB_OPEN_READONLY)))
        goto done;
    cli_ask_set_callbacks(&c);
    c.opts.cancel = cli_catch_interrupts();
    int status = kb_ask(kb, question, &c.opts, &answer);
    rc = ask_finish(&c, kb, answer, status);
done:
    kb_answer_free(answer);
    kb_close(kb);
    free(question);
    return rc;
}

static int prompt_print(const struct cli *cli, const kb_prompt_result *p)
{
    if (cli->json) {
        return cli_print_json(cli_json_messages(p));
    }
    for (size_t i = 0; i < p->n_messages; i++) {
        printf("[%s]\n", p->messages[i].role);
        cli_put_text(stdout, p->messages[i].content, strlen(p->messages[i].content),
                     KB_ESCAPE_TEXT);
        putchar('\n');
    }
    return fflush(stdout) ? CLI_EXIT_IOERR : 0;
}

int cmd_prompt(struct cli *cli, int argc, char **argv)
{
    struct ask_cmd c = ASK_CMD_INIT(cli);
    char *question = NULL;
    kb *kb = NULL;
    kb_prompt_result *p = NULL;
    int rc = ask_parse(cli, "prompt", prompt_help, argc, argv, &c, &question);
    if (rc >= 0)
        goto done;
    if ((rc = cli_open(cli, &kb, KB_OPEN_READONLY)))
        goto done;
    int status = kb_prompt(kb, question, &c.opts, &p);
    if (status) {
        cli_error("%s", kb_errmsg(kb));
        rc = cli_ask_exit(status);
        goto done;
    }
    ask_report_prompt(cli, p);
    rc = prompt_print(cli, p);
done:
    kb_prompt_free(p);
    kb_close(kb);
    free(question);
    return rc;
}
