/* cmd_model.c — `kb model pull NAME` and `kb model list`: encoder models from the hub. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char model_help[] =
    "usage: kb model pull [--revision REV] NAME\n"
    "       kb model list\n"
    "\n"
    "Gets BERT-family sentence encoders from the Hugging Face hub into kb's model cache\n"
    "($XDG_CACHE_HOME/kb/models) and lists the models kb can use, those already in the\n"
    "Hugging Face cache ($HF_HOME/hub) included. See 'kb model pull --help'.\n"
    "\n"
    "commands:\n"
    "  pull NAME         download a model, e.g. BAAI/bge-small-en-v1.5\n"
    "  list              the models in kb's cache and the Hugging Face cache\n"
    "\n"
    "example:\n"
    "  kb model pull BAAI/bge-small-en-v1.5 && kb model list\n";

static const char pull_help[] =
    "usage: kb model pull [OPTIONS] NAME\n"
    "\n"
    "Downloads what kb needs of the hub model NAME (config.json, model.safetensors, the\n"
    "tokenizer and sentence-transformers settings) into $XDG_CACHE_HOME/kb/models/ORG--NAME\n"
    "and prints the folder. Files are checked against the hub's sizes and SHA-256; an\n"
    "interrupted download resumes where it stopped; an up-to-date model is not fetched again.\n"
    "Models kb is tested with: BAAI/bge-small-en-v1.5 (the default), BAAI/bge-base-en-v1.5,\n"
    "sentence-transformers/all-MiniLM-L6-v2, intfloat/e5-small-v2.\n"
    "\n"
    "options:\n"
    "  --revision REV    branch, tag or commit (default main)\n"
    "  --json            print {name, revision, dir} as JSON\n"
    "\n"
    "environment:\n"
    "  HF_TOKEN          access token for private or gated models (never printed)\n"
    "  KB_HF_ENDPOINT    another hub or a mirror (else HF_ENDPOINT, else https://huggingface.co)\n"
    "\n"
    "exit codes: 0 ok, 2 usage, 65 no model.safetensors or checksum mismatch, 66 no such\n"
    "model (or private), 69 hub unreachable or transfer broke off, 73 cannot create the\n"
    "cache, 74 write failed, 75 another kb is pulling the same model, 78 HF_TOKEN refused\n"
    "or gated model.\n"
    "\n"
    "example:\n"
    "  kb model pull intfloat/e5-small-v2\n";

static const char list_help[] =
    "usage: kb model list [--json]\n"
    "\n"
    "Lists the encoder models in kb's cache (source kb) and in the Hugging Face cache (source\n"
    "huggingface) with their size and folder; unfinished downloads are marked incomplete.\n"
    "\n"
    "options:\n"
    "  --json            print an array of {name, source, bytes, dir, complete}\n"
    "\n"
    "example:\n"
    "  kb model list --json\n";

enum { OPT_REVISION = 1 };

static const struct cli_opt pull_opts[] = {
    { "revision", 0, 1, OPT_REVISION }, { NULL, 0, 0, 0 },
};

/* Exit codes of the hub's statuses: cli_exit_code plus the unreachable service and refused
 * credentials. */
static int model_exit(int status)
{
    if (status == KB_EUNAVAILABLE)
        return CLI_EXIT_UNAVAILABLE;
    if (status == KB_EAUTH)
        return CLI_EXIT_CONFIG;
    return cli_exit_code(status);
}

/* "12.3 MB": sizes as the hub shows them (powers of 1000). */
static void model_bytes(uint64_t n, char *out, size_t size)
{
    static const char *const units[] = { "B", "kB", "MB", "GB", "TB" };
    double v = (double)n;
    size_t u = 0;
    while (v >= 1000 && u + 1 < sizeof units / sizeof *units) {
        v /= 1000;
        u++;
    }
    snprintf(out, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* ---- pull ---------------------------------------------------------------------------- */

struct model_bar {
    char file[64];      /* the file being drawn */
    double last;        /* when it was last drawn (monotonic seconds) */
    int open;           /* a bar is on the line without its newline */
};

static double model_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Draws "file  [#####.....]  45%  12.3 MB / 27.1 MB" on stderr, at most ten times a second
 * and always at 100%. */
static void model_progress(const char *file, uint64_t done, uint64_t total, void *payload)
{
    struct model_bar *bar = payload;
    double now = model_now();
    int same = !strcmp(bar->file, file), finished = total && done >= total;
    if (same && !finished && now - bar->last < 0.1)
        return;
    if (!same && bar->open)
        fputc('\n', stderr);
    snprintf(bar->file, sizeof bar->file, "%s", file);
    bar->last = now;
    char got[16], all[16], cells[21];
    int pct = total ? (int)(100.0 * (double)done / (double)total) : 0;
    for (int i = 0; i < 20; i++)
        cells[i] = i < pct / 5 ? '#' : '.';
    cells[20] = '\0';
    model_bytes(done, got, sizeof got);
    model_bytes(total, all, sizeof all);
    if (total)
        fprintf(stderr, "\r%-24.24s [%s] %3d%%  %s / %s\033[K", file, cells, pct, got, all);
    else
        fprintf(stderr, "\r%-24.24s %s\033[K", file, got);
    bar->open = !finished;
    if (finished)
        fputc('\n', stderr);
}

static const char *pull_opt(int id, const char *value, void *payload)
{
    kb_pull_options *o = payload;
    if (id == OPT_REVISION) {
        if (!*value)
            return "needs a branch, tag or commit";
        o->revision = value;
    }
    return NULL;
}

static int pull_print(const struct cli *cli, const char *name, const char *revision,
                      const char *dir)
{
    if (cli->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "name", name);
        cJSON_AddStringToObject(doc, "revision", revision ? revision : "main");
        cJSON_AddStringToObject(doc, "dir", dir);
        return cli_print_json(doc);
    }
    char *shown = cli_display_path(dir);
    cli_line(stdout, "%s is in %s", name, shown ? shown : dir);
    free(shown);
    return 0;
}

static int model_pull(struct cli *cli, int argc, char **argv)
{
    kb_pull_options opts = KB_PULL_OPTIONS_INIT;
    struct model_bar bar = { "", 0, 0 };
    char **pos = calloc((size_t)argc + 1, sizeof *pos), *dir = NULL, msg[512];
    int n_pos = 0, help = 0, rc;
    if (!pos) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    if ((rc = cli_parse(cli, "model pull", pull_opts, argc, argv, pull_opt, &opts, pos, &n_pos,
                        &help)))
        goto done;
    if (help) {
        fputs(pull_help, stdout);
        goto done;
    }
    if (n_pos != 1) {
        cli_usage_error("model pull", n_pos ? "give one model NAME" : "no model NAME given");
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    if (!cli->quiet && !cli->json && isatty(STDERR_FILENO)) {
        opts.on_progress = model_progress;
        opts.payload = &bar;
    }
    int status = kb_model_pull(pos[0], &opts, &dir, msg, sizeof msg);
    if (bar.open)
        fputc('\n', stderr);
    if (status) {
        cli_error("%s", msg);
        rc = model_exit(status);
        goto done;
    }
    rc = pull_print(cli, pos[0], opts.revision, dir);
done:
    kb_free(dir);
    free(pos);
    return rc;
}

/* ---- list ---------------------------------------------------------------------------- */

static int list_json(const kb_model_entry *e, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", e[i].name);
        cJSON_AddStringToObject(o, "source", e[i].source);
        cJSON_AddNumberToObject(o, "bytes", (double)e[i].bytes);
        cJSON_AddStringToObject(o, "dir", e[i].dir);
        cJSON_AddBoolToObject(o, "complete", e[i].complete);
        cJSON_AddItemToArray(arr, o);
    }
    return cli_print_json(arr);
}

static void list_table(const kb_model_entry *e, size_t n)
{
    int w = 4;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(e[i].name) > w)
            w = (int)strlen(e[i].name);
    printf("%-*s  %-11s  %9s  %s\n", w, "NAME", "SOURCE", "SIZE", "FOLDER");
    for (size_t i = 0; i < n; i++) {
        char size[16], *shown = cli_display_path(e[i].dir);
        model_bytes(e[i].bytes, size, sizeof size);
        cli_line(stdout, "%-*s  %-11s  %9s  %s%s", w, e[i].name, e[i].source, size,
                 shown ? shown : e[i].dir, e[i].complete ? "" : "  (incomplete)");
        free(shown);
    }
}

static int model_list(struct cli *cli, int argc, char **argv)
{
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    kb_model_entry *entries = NULL;
    size_t n = 0;
    int n_pos = 0, help = 0, rc;
    if (!pos) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    if ((rc = cli_parse(cli, "model list", NULL, argc, argv, NULL, NULL, pos, &n_pos, &help)))
        goto done;
    if (help) {
        fputs(list_help, stdout);
        goto done;
    }
    if (n_pos) {
        cli_usage_error("model list", "unexpected argument '%s'", pos[0]);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    int status = kb_model_list(&entries, &n);
    if (status) {
        cli_error("cannot list models: %s", kb_strerror(status));
        rc = model_exit(status);
        goto done;
    }
    if (cli->json)
        rc = list_json(entries, n);
    else if (n)
        list_table(entries, n);
    else if (!cli->quiet)
        fprintf(stderr, "no models yet; get one with 'kb model pull BAAI/bge-small-en-v1.5'\n");
done:
    kb_model_list_free(entries, n);
    free(pos);
    return rc;
}

int cmd_model(struct cli *cli, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (sub && (!strcmp(sub, "-h") || !strcmp(sub, "--help"))) {
        fputs(model_help, stdout);
        return CLI_EXIT_OK;
    }
    if (sub && !strcmp(sub, "pull"))
        return model_pull(cli, argc - 1, argv + 1);
    if (sub && !strcmp(sub, "list"))
        return model_list(cli, argc - 1, argv + 1);
    if (sub)
        cli_usage_error("model", "unknown command '%s' (pull or list)", sub);
    else
        fputs(model_help, stderr);
    return CLI_EXIT_USAGE;
}
