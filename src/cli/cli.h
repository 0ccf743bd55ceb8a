/* cli.h — what the kb command's files share: global options, argument parsing, output. */
#ifndef KB_CLI_H
#define KB_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "kb/kb.h"
#include "util/utf8.h"

/* sysexits-style exit codes (../shared/CLI.md). */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_PARTIAL = 1,
    CLI_EXIT_USAGE = 2,
    CLI_EXIT_DATAERR = 65,
    CLI_EXIT_NOINPUT = 66,
    CLI_EXIT_UNAVAILABLE = 69,
    CLI_EXIT_SOFTWARE = 70,
    CLI_EXIT_CANTCREAT = 73,
    CLI_EXIT_IOERR = 74,
    CLI_EXIT_TEMPFAIL = 75,
    CLI_EXIT_INTERRUPTED = 130, /* SIGINT/SIGTERM: stopped at a safe point, work kept */
    CLI_EXIT_CONFIG = 78
};

struct cli {
    const char *kb_dir;   /* --kb, KB_DIR, or the XDG default */
    int verbose;
    int quiet;
    int json;
    int color;            /* resolved: 1 when colour escapes go to stdout */
};

/* ---- args.c ---- */
struct cli_opt {
    const char *name;     /* long name without "--" */
    char short_name;      /* 0 for none */
    int has_arg;          /* 0 none, 1 required, 2 optional (only as --name=VALUE) */
    int id;
};

/* Parses a command's argv (argv[0] is the command). Options may come before or after
 * positional arguments; "--" ends options. --json, -q, -v (-vv, -vvv) and -h/--help are
 * handled for every command (help sets *help). Each option calls on_opt(id, value, payload), which returns
 * 0 or a usage error message. Positionals go to pos (which must hold argc entries).
 * Returns 0, or CLI_EXIT_USAGE after printing the error. */
typedef const char *(*cli_opt_fn)(int id, const char *value, void *payload);
int cli_parse(struct cli *cli, const char *cmd, const struct cli_opt *opts, int argc,
              char **argv, cli_opt_fn on_opt, void *payload, char **pos, int *n_pos,
              int *help);

/* How much more verbose an argument asks for: 1 for -v or --verbose, N for "-" and N v's
 * (-vv, -vvv); 0 when it is something else. */
int cli_verbosity(const char *arg);

/* The first Ctrl-C or SIGTERM raises the flag returned (for an options struct's `cancel`:
 * the work stops at a safe point and the command exits 130); a second one ends the process
 * at once (the handler resets itself). */
const volatile int *cli_catch_interrupts(void);

/* Whether a model argument names a GGUF file (a decoder model): it ends in ".gguf". */
int cli_is_gguf(const char *name);

/* Parses a non-negative integer option value; returns NULL or an error message. */
const char *cli_parse_size(const char *value, size_t min, size_t max, size_t *out);

/* The words joined by single spaces (a query given as several arguments). Caller frees; NULL
 * when out of memory. */
char *cli_join_words(char **words, int n);

/* Parses --mode bm25|vector|hybrid; returns NULL or an error message. */
const char *cli_parse_mode(const char *value, kb_mode *out);

/* --path: a glob over stored (absolute) paths; a relative value is taken from the current
 * directory and an existing folder becomes "folder/ *". Caller frees; NULL out of memory. */
char *cli_path_filter(const char *value);

/* --modified-after: YYYY-MM-DD[THH:MM[:SS]] (UTC), Unix seconds, or Nd (N days ago). */
const char *cli_parse_time(const char *value, int64_t *out);

/* ---- out.c ---- */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Maps a kb_status to an exit code. */
int cli_exit_code(int status);

/* Reports a failed library call ("kb: <message>", a hint where there is an obvious fix) and
 * returns the exit code for it. */
int cli_fail(const struct cli *cli, kb *kb, int status);

/* Opens the KB named by the global options. */
int cli_open(const struct cli *cli, kb **out, unsigned flags);

/* A path for humans: relative to the current directory when below it, else as stored. Caller
 * frees. */
char *cli_display_path(const char *path);

/* Writes text and a newline to stdout, with U+FFFD for every byte that is not valid UTF-8. */
void cli_put_utf8_line(const char *text);

/* What people read gets no control character from a document, a file name, a model or a
 * server (terminal escapes, forged lines): text[0..len) is written to f escaped as
 * kb_utf8_escape does in `mode`. */
void cli_put_text(FILE *f, const char *text, size_t len, enum kb_escape_mode mode);
/* One line: printf's output escaped as one line (KB_ESCAPE_LINE), then a newline. */
void cli_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints a cJSON value as the single JSON document on stdout and frees it. */
struct cJSON;
int cli_print_json(struct cJSON *doc);

/* ---- models (cmd_embed.c) ---- */
#define CLI_DEFAULT_MODEL "BAAI/bge-small-en-v1.5"

/* Opens --model NAME|DIR, else $KB_MODEL, else the default; prints the error and returns the
 * exit code on failure. */
int cli_open_model(const struct cli *cli, const char *name, kb_model **out);

/* The text of a command: its words joined by spaces, or all of standard input when there are
 * none (a usage error when stdin is a terminal). Caller frees. */
int cli_input_text(char **words, int n_words, char **out);

/* ---- commands ---- */
int cmd_tokenize(struct cli *cli, int argc, char **argv);
int cmd_generate(struct cli *cli, int argc, char **argv);
int cmd_embed(struct cli *cli, int argc, char **argv);
int cmd_reindex(struct cli *cli, int argc, char **argv);
int cmd_ingest(struct cli *cli, int argc, char **argv);
int cmd_search(struct cli *cli, int argc, char **argv);
int cmd_check(struct cli *cli, int argc, char **argv);
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_eval(struct cli *cli, int argc, char **argv);
int cmd_ask(struct cli *cli, int argc, char **argv);
int cmd_prompt(struct cli *cli, int argc, char **argv);
int cmd_chat(struct cli *cli, int argc, char **argv);
int cmd_model(struct cli *cli, int argc, char **argv);
int cmd_serve(struct cli *cli, int argc, char **argv);

#endif
