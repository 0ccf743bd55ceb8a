/* cmd_ask.h — what `kb ask` and `kb chat` share (defined in cmd_ask.c): their options, the
 * streamed answer on stdout as text or JSON lines, sources, and exit codes. */
#ifndef KB_CLI_CMD_ASK_H
#define KB_CLI_CMD_ASK_H

#include "cli.h"

/* One answering command's state; opts.payload points back to it. */
struct ask_cmd {
    kb_ask_options opts;
    const struct cli *cli;
    int no_stream;
    int streamed;       /* answer bytes went to stdout (text or token lines) */
    char last;          /* the last answer byte streamed as text */
    int turn;           /* kb chat: the turn number put into JSON lines; 0 for kb ask */
};

#define ASK_CMD_INIT(cli) { KB_ASK_OPTIONS_INIT, (cli), 0, 0, '\n', 0 }

/* The options of kb ask, kb prompt and kb chat and their parser (cli_opt_fn). */
extern const struct cli_opt cli_ask_opts[];
const char *cli_ask_opt(int id, const char *value, void *payload);

/* Sets opts.on_token/on_log/payload for how `c` prints: text, JSON token lines
 * ({"type":"token","text":...}) or nothing while the answer arrives (--no-stream). */
void cli_ask_set_callbacks(struct ask_cmd *c);

/* The exit code for an answer API status (../shared/CLI.md). */
int cli_ask_exit(int status);

/* "[1] docs/a.md › Install › Linux, lines 5–7" */
void cli_ask_print_source(const kb_source *s);
/* The passages themselves, each after its source line, for when there is no answer. */
void cli_ask_print_passages(const kb_prompt_result *p);
/* Puts the no-backend line on stderr: `what` was shown instead, and the config file to set
 * 'backend' and 'model' in, as kb reads it ($XDG_CONFIG_HOME/kb/config, else
 * ~/.config/kb/config; src/llm/config.c), then `tail`. */
void cli_ask_no_backend(const char *what, const char *tail);
/* -v: retrieval time, time to first token, tokens/s. */
void cli_ask_report_speed(const struct cli *cli, const kb_answer *a);

/* An answer as a JSON object: "type" first when not NULL (JSON lines), then "turn" when
 * c->turn > 0, answer (or error), backend, model, template, usage, timings, attempts;
 * sources (with their text when there is no answer) only when with_sources. */
struct cJSON;
struct cJSON *cli_ask_json(const struct ask_cmd *c, const char *type, const kb_answer *a,
                           const char *error, int with_sources);
/* {"type":"sources"[, "turn"], "sources":[...]} */
struct cJSON *cli_ask_json_sources_line(const struct ask_cmd *c, const kb_prompt_result *p,
                                        int with_text);
/* Prints `obj` as one line of JSON on stdout, flushed, and frees it. */
int cli_ask_json_line(struct cJSON *obj);

#endif
