/* cmd_chat.c — `kb chat`: questions line by line from stdin, each answered like kb ask, with
 * the conversation so far sent along and kept within the model's context budget. */
#include "cmd_ask.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char chat_help[] =
    "usage: kb chat [OPTIONS]\n"
    "\n"
    "Reads questions from standard input, one per line (typed at a terminal or piped), and\n"
    "answers each like `kb ask`: the best passages for the question, the conversation so far\n"
    "(as much of it as fits the context budget; older turns are dropped first), and a\n"
    "streamed answer citing the passages as [n]. Lines starting with '/' are commands:\n"
    "  /sources            the sources of the last answer\n"
    "  /clear              forget the conversation so far\n"
    "  /exit               end the chat (so does end of input, Ctrl-D)\n"
    "Exits 0 when every question was answered, else with the exit code of the first failure\n"
    "(69 backend unavailable, ...); a configuration error ends the chat at once.\n"
    "\n"
    "options:\n"
    "  -k, --mode, --template, --backend, --model, --url, --max-tokens, --context-window,\n"
    "  --no-stream          as for kb ask\n"
    "  --json              JSON lines: per question {\"type\":\"token\"} lines, then\n"
    "                      {\"type\":\"sources\"} and {\"type\":\"turn\"} (question, answer or\n"
    "                      error, usage, timings); at the end {\"type\":\"summary\"}\n"
    "  -v                  per answer: time to first token, tokens/s, history kept\n"
    "\n"
    "example:\n"
    "  printf 'how are the logs rotated?\\nand how long are they kept?\\n' | kb chat\n";

struct chat_session {
    struct ask_cmd c;
    kb *kb;
    kb_message *history;   /* oldest first; contents malloc'ed, roles static */
    size_t n_history;
    kb_answer *last;       /* the last answer, for /sources */
    int interactive;       /* prompts on stderr */
    int turns, answered, exit_code, hinted;
    uint64_t prompt_tokens, completion_tokens;
    double total_ms;
};

static void chat_history_drop(struct chat_session *s, size_t n_drop)
{
    if (n_drop == 0)
        return;
    for (size_t i = 0; i < n_drop; i++)
        free((char *)s->history[i].content);
    memmove(s->history, s->history + n_drop, (s->n_history - n_drop) * sizeof *s->history);
    s->n_history -= n_drop;
}

/* Adds the answered turn and drops what no longer fits: the prompt just sent held only the
 * newest `used` earlier messages, so older ones would never fit again. */
static int chat_history_add(struct chat_session *s, const char *question, const kb_answer *a)
{
    size_t before = s->n_history, used = a->prompt->history_used;
    chat_history_drop(s, before - (used < before ? used : before));
    kb_message *grown = realloc(s->history, (s->n_history + 2) * sizeof *grown);
    if (!grown)
        return KB_ENOMEM;
    s->history = grown;
    char *q = strdup(question), *text = strdup(a->text);
    if (!q || !text) {
        free(q);
        free(text);
        return KB_ENOMEM;
    }
    s->history[s->n_history++] = (kb_message){ "user", q };
    s->history[s->n_history++] = (kb_message){ "assistant", text };
    if (s->c.cli->verbose >= 1)
        fprintf(stderr, "kb: history: %zu of %zu earlier messages fit the context budget; "
                "%zu kept\n", used, before, s->n_history);
    return 0;
}

static void chat_count(struct chat_session *s, const kb_answer *a)
{
    s->answered++;
    s->prompt_tokens += a->prompt_tokens;
    s->completion_tokens += a->completion_tokens;
    s->total_ms += a->total_ms;
}

/* The JSON lines that close a turn: sources (when retrieval ran), then the turn object. */
static int chat_json_turn(struct chat_session *s, const char *question, const kb_answer *a,
                          const char *error)
{
    cJSON *turn;
    if (a) {
        int answered = a->prompt->backend && !error;
        int rc = cli_ask_json_line(cli_ask_json_sources_line(&s->c, a->prompt, !answered));
        if (rc)
            return rc;
        turn = cli_ask_json(&s->c, "turn", a, error, 0);
    } else {
        turn = cJSON_CreateObject();
        cJSON_AddStringToObject(turn, "type", "turn");
        cJSON_AddNumberToObject(turn, "turn", s->c.turn);
        cJSON_AddStringToObject(turn, "error", error);
    }
    cJSON_AddStringToObject(turn, "question", question);
    return cli_ask_json_line(turn);
}

/* Text output after a turn: the answer when it was not streamed, or the passages when no
 * backend is configured; a blank line ends the turn. */
static void chat_text_turn(struct chat_session *s, const kb_answer *a, int status)
{
    struct ask_cmd *c = &s->c;
    if (c->streamed && c->last != '\n')
        putchar('\n');
    if (!status && a->prompt->backend) {
        if (c->no_stream && a->text_len) {
            cli_put_text(stdout, a->text, a->text_len, KB_ESCAPE_TEXT);
            if (a->text[a->text_len - 1] != '\n')
                putchar('\n');
        }
        cli_ask_report_speed(c->cli, a);
    } else if (!status) {
        if (!s->hinted++ && !c->cli->quiet)
            cli_ask_no_backend("the best passages", " (see 'kb ask --help')");
        cli_ask_print_passages(a->prompt);
    }
    putchar('\n');
    fflush(stdout);
}

/* Statuses after which every later question would fail the same way. */
static int chat_fatal(int status)
{
    return status == KB_ECONFIG || status == KB_EAUTH || status == KB_ENOTFOUND ||
           status == KB_EINVALID || status == KB_ENOMEM || status == KB_ECANCELED;
}

/* Answers one question; returns 1 when the chat must end. */
static int chat_turn(struct chat_session *s, const char *question)
{
    struct ask_cmd *c = &s->c;
    kb_answer *a = NULL;
    c->turn = ++s->turns;
    c->streamed = 0;
    c->last = '\n';
    c->opts.history = s->history;
    c->opts.n_history = s->n_history;
    int status = kb_ask(s->kb, question, &c->opts, &a);
    const char *error = status ? kb_errmsg(s->kb) : NULL;
    int rc = c->cli->json ? chat_json_turn(s, question, a, error) : 0;
    if (!c->cli->json && a)
        chat_text_turn(s, a, status);
    if (status)
        cli_error("%s", error);
    if (!status && a->prompt->backend) {
        chat_count(s, a);
        if (!rc && chat_history_add(s, question, a)) {
            cli_error("out of memory keeping the conversation");
            rc = CLI_EXIT_IOERR;
        }
    }
    if (!s->exit_code && (rc || status))
        s->exit_code = rc ? rc : cli_ask_exit(status);
    if (a) {
        kb_answer_free(s->last);
        s->last = a;
    }
    return rc || chat_fatal(status);
}

/* A line starting with '/'; returns 1 for /exit. */
static int chat_command(struct chat_session *s, const char *line)
{
    if (!strcmp(line, "/exit") || !strcmp(line, "/quit"))
        return 1;
    if (!strcmp(line, "/clear")) {
        chat_history_drop(s, s->n_history);
    } else if (!strcmp(line, "/sources") && s->last && s->c.cli->json) {
        cli_ask_json_line(cli_ask_json_sources_line(&s->c, s->last->prompt,
                                                    !s->last->prompt->backend));
    } else if (!strcmp(line, "/sources") && s->last) {
        for (size_t i = 0; i < s->last->prompt->n_sources; i++)
            cli_ask_print_source(&s->last->prompt->sources[i]);
        putchar('\n');
        fflush(stdout);
    } else if (!strcmp(line, "/sources")) {
        cli_error("no sources yet: ask a question first");
    } else {
        cli_error("unknown command '%s'; the commands are /sources, /clear and /exit", line);
    }
    return 0;
}

/* The line without surrounding white space (in place). */
static char *chat_trim(char *line)
{
    size_t len = strlen(line);
    while (len && strchr(" \t\r\n", line[len - 1]))
        line[--len] = '\0';
    while (*line == ' ' || *line == '\t')
        line++;
    return line;
}

static void chat_loop(struct chat_session *s)
{
    char *buf = NULL;
    size_t cap = 0;
    if (s->interactive)
        fputs("kb chat: ask a question; /sources, /clear, /exit (or Ctrl-D)\n", stderr);
    for (;;) {
        if (s->interactive)
            fputs("> ", stderr);
        if (getline(&buf, &cap, stdin) < 0)
            break;
        char *line = chat_trim(buf);
        if (!*line)
            continue;
        if (*line == '/' ? chat_command(s, line) : chat_turn(s, line))
            break;
    }
    if (s->interactive && feof(stdin))
        fputc('\n', stderr);
    free(buf);
}

static int chat_summary(const struct chat_session *s)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "type", "summary");
    cJSON_AddNumberToObject(obj, "turns", s->turns);
    cJSON_AddNumberToObject(obj, "answered", s->answered);
    cJSON *u = cJSON_AddObjectToObject(obj, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)s->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)s->completion_tokens);
    cJSON *t = cJSON_AddObjectToObject(obj, "timings");
    cJSON_AddNumberToObject(t, "total_ms", s->total_ms);
    cJSON_AddNumberToObject(obj, "history_messages", (double)s->n_history);
    return cli_ask_json_line(obj);
}

int cmd_chat(struct cli *cli, int argc, char **argv)
{
    struct chat_session s = { ASK_CMD_INIT(cli), NULL, NULL, 0, NULL, 0, 0, 0, 0, 0, 0, 0, 0 };
    char **words = calloc((size_t)argc + 1, sizeof *words);
    int n_words = 0, help = 0, rc = 0;
    if (!words) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    if (cli_parse(cli, "chat", cli_ask_opts, argc, argv, cli_ask_opt, &s.c, words, &n_words,
                  &help))
        rc = CLI_EXIT_USAGE;
    else if (help)
        rc = fputs(chat_help, stdout) < 0 ? CLI_EXIT_IOERR : CLI_EXIT_OK;
    else if (n_words > 0) {
        cli_usage_error("chat", "kb chat reads its questions from standard input");
        rc = CLI_EXIT_USAGE;
    }
    if (help || rc || (rc = cli_open(cli, &s.kb, KB_OPEN_READONLY)))
        goto done;
    cli_ask_set_callbacks(&s.c);
    s.c.opts.cancel = cli_catch_interrupts(); /* Ctrl-C: the answer stops, the chat ends */
    s.interactive = !cli->json && !cli->quiet && isatty(STDIN_FILENO) && isatty(STDERR_FILENO);
    chat_loop(&s);
    rc = cli->json ? chat_summary(&s) : 0;
    rc = s.exit_code ? s.exit_code : rc;
done:
    chat_history_drop(&s, s.n_history);
    free(s.history);
    kb_answer_free(s.last);
    kb_close(s.kb);
    free(words);
    return rc;
}
