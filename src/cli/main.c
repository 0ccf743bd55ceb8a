/* main.c — the kb command: global options, then one of the commands. Uses only kb/kb.h. */
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char main_usage[] =
    "usage: kb [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "kb indexes folders of documents and finds passages that answer questions.\n"
    "\n"
    "commands:\n"
    "  ingest PATH...   add or update documents from files and folders: .txt .md .rst .org\n"
    "                   .html .xml .docx .odt .epub .pdf .csv .tsv .eml (docs/FORMATS.md)\n"
    "  search QUERY     find the best passages (hybrid BM25 + vectors, or either)\n"
    "  reindex          re-embed with another model, or rebuild the vector index\n"
    "  status           what the knowledge base holds\n"
    "  check            verify the knowledge base is consistent\n"
    "  eval --beir DIR  measure retrieval quality on a BEIR dataset\n"
    "  ask QUESTION     answer from the best passages with a model, citing sources\n"
    "  prompt QUESTION  print the messages kb ask would send to the model\n"
    "  chat             ask questions one after another, read from stdin\n"
    "  tokenize TEXT    the encoder model's WordPiece tokens for a text\n"
    "  embed TEXT...    the encoder model's embedding vectors\n"
    "  generate PROMPT  continue a prompt with a local GGUF model (no retrieval)\n"
    "  model pull|list  get encoder models from the Hugging Face hub / list them\n"
    "  serve            the HTTP API and a web page for asking questions\n"
    "  help COMMAND     help for one command\n"
    "\n"
    "global options:\n"
    "  --kb DIR         the knowledge base (env KB_DIR; default $XDG_DATA_HOME/kb/default)\n"
    "  -v, --verbose    say more (repeatable: -vv, -vvv)\n"
    "  -q, --quiet      no warnings or progress\n"
    "  --json           machine-readable output on stdout\n"
    "  --color=WHEN     auto, always or never (NO_COLOR is honoured)\n"
    "  --version        print the version\n"
    "  -h, --help       this help\n"
    "\n"
    "exit codes: 0 ok, 1 finished but some inputs were skipped, 2 usage error, 65 bad input\n"
    "data, 66 input or KB not found, 69 LLM backend or model hub unavailable, 70 internal\n"
    "error, 73 cannot create, 74 I/O error, 75 KB locked by another writer (retry later),\n"
    "78 configuration error.\n"
    "\n"
    "example:\n"
    "  kb ingest ~/notes && kb search \"how do I rotate the logs\"\n";

static const struct {
    const char *name;
    int (*run)(struct cli *, int, char **);
} main_commands[] = {
    { "ingest", cmd_ingest }, { "search", cmd_search }, { "status", cmd_status },
    { "check", cmd_check },   { "eval", cmd_eval },
    { "ask", cmd_ask },
    { "prompt", cmd_prompt },
    { "chat", cmd_chat },
    { "tokenize", cmd_tokenize }, { "embed", cmd_embed }, { "reindex", cmd_reindex },
    { "generate", cmd_generate },
    { "model", cmd_model },
    { "serve", cmd_serve },
};

/* The default KB: $XDG_DATA_HOME/kb/default, else ~/.local/share/kb/default. */
static char *main_default_kb(void)
{
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    const char *base = xdg && *xdg ? xdg : home && *home ? home : ".";
    const char *mid = xdg && *xdg ? "" : "/.local/share";
    size_t n = strlen(base) + strlen(mid) + sizeof "/kb/default";
    char *dir = malloc(n);
    if (dir)
        snprintf(dir, n, "%s%s/kb/default", base, mid);
    return dir;
}

static int main_color(const char *when)
{
    if (!strcmp(when, "always"))
        return 1;
    if (!strcmp(when, "never"))
        return 0;
    const char *no_color = getenv("NO_COLOR");
    return (!no_color || !*no_color) && isatty(STDOUT_FILENO);
}

/* Parses the options before the command; returns the index of the command or -exit_code. */
static int main_globals(struct cli *cli, int argc, char **argv, const char **color)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--kb") && i + 1 < argc) cli->kb_dir = argv[++i];
        else if (!strncmp(a, "--kb=", 5)) cli->kb_dir = a + 5;
        else if (cli_verbosity(a)) cli->verbose += cli_verbosity(a);
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) cli->quiet = 1;
        else if (!strcmp(a, "--json")) cli->json = 1;
        else if (!strncmp(a, "--color=", 8) && (!strcmp(a + 8, "auto") ||
                 !strcmp(a + 8, "always") || !strcmp(a + 8, "never"))) *color = a + 8;
        else if (!strcmp(a, "--version")) { printf("kb %s\n", kb_version()); return -CLI_EXIT_OK; }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(main_usage, stdout); return -CLI_EXIT_OK; }
        else {
            cli_usage_error(NULL, "unknown or incomplete option '%s'", a);
            return -CLI_EXIT_USAGE;
        }
    }
    return i;
}

int main(int argc, char **argv)
{
    struct cli cli = { 0 };
    const char *color = "auto";
    char *default_kb = NULL;
    /* Over a file size limit (ulimit -f) a write then fails with EFBIG and kb reports it and
     * rolls back, instead of being killed half-way. */
    signal(SIGXFSZ, SIG_IGN);
    int i = main_globals(&cli, argc, argv, &color);
    if (i <= 0)
        return -i;
    if (!cli.kb_dir)
        cli.kb_dir = getenv("KB_DIR");
    if (!cli.kb_dir || !*cli.kb_dir)
        cli.kb_dir = default_kb = main_default_kb();
    cli.color = main_color(color);
    if (i >= argc) {
        fputs(main_usage, stderr);
        free(default_kb);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[i];
    char *help_argv[3];
    if (!strcmp(name, "help")) {
        if (i + 1 >= argc) {
            fputs(main_usage, stdout);
            free(default_kb);
            return 0;
        }
        help_argv[0] = argv[i + 1];
        help_argv[1] = "--help";
        help_argv[2] = NULL;
        name = argv[i + 1];
        argv = help_argv;
        argc = 2;
        i = 0;
    }
    int rc = -1;
    for (size_t c = 0; c < sizeof main_commands / sizeof *main_commands; c++)
        if (!strcmp(name, main_commands[c].name))
            rc = main_commands[c].run(&cli, argc - i, argv + i);
    if (rc < 0) {
        cli_usage_error(NULL, "unknown command '%s'", name);
        rc = CLI_EXIT_USAGE;
    }
    free(default_kb);
    return rc;
}
