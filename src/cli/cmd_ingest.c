/* cmd_ingest.c — `kb ingest PATH...`: bring the KB in line with files and folders. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "cli.h"

#include <cjson/cJSON.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char ingest_help[] =
    "usage: kb ingest [OPTIONS] PATH...\n"
    "\n"
    "Adds new and changed documents under each PATH to the knowledge base, leaves\n"
    "unchanged ones alone, and removes documents whose files were deleted from an ingested\n"
    "folder. Hidden files and symbolic links are skipped unless asked for. Files that cannot\n"
    "be read as UTF-8 text are skipped with a reason (exit code 1).\n"
    "\n"
    "options:\n"
    "  --include GLOB         only files matching GLOB (repeatable; '*.md', 'docs/*')\n"
    "  --exclude GLOB         skip files and folders matching GLOB (repeatable)\n"
    "  --hidden               also walk names starting with '.'\n"
    "  --follow-symlinks      follow symbolic links (loops are detected)\n"
    "  --max-file-size SIZE   skip larger files (bytes, or with K, M, G; default 64M,\n"
    "                         at most 1G)\n"
    "  --chunk-tokens N       target chunk size in tokens (default 256)\n"
    "  --overlap N            tokens repeated between chunks of a section (default 32)\n"
    "  --model NAME|DIR       encoder model for a new KB (default " KB_DEFAULT_MODEL "\n"
    "                         when downloaded; 'none' for keyword search only); a KB keeps\n"
    "                         its model: change it, or give a keyword-only KB one, with\n"
    "                         'kb reindex --model'\n"
    "  --index TYPE           vector index: flat, ivf, hnsw, or e.g. ivf:nlist=1024,nprobe=32\n"
    "                         (default: chosen by size)\n"
    "  --dry-run              report what would change (added, updated, moved, removed)\n"
    "                         and change nothing\n"
    "  --wait[=SECONDS]       when another kb is writing, wait for it (as long as it takes,\n"
    "                         or up to SECONDS) instead of exiting with code 75\n"
    "  --skipped-exit N       exit code when some files were skipped (default 1; 0 for\n"
    "                         jobs that only care about failures)\n"
    "  -q, --quiet            print nothing but errors\n"
    "  --json                 print a JSON summary (counts and durations)\n"
    "\n"
    "A run is one transaction: searches see the previous state until it commits. Ctrl-C or\n"
    "SIGTERM stops it after the current file and keeps the files done (exit 130); the\n"
    "next run goes on from there. Exit codes: 0 done, 1 files skipped (see --skipped-exit),\n"
    "2 usage, 66 a PATH is missing, 74 I/O error (e.g. disk full), 75 locked by another\n"
    "writer, 130 interrupted.\n"
    "\n"
    "examples:\n"
    "  kb ingest --exclude 'drafts' ~/notes docs/handbook.md\n"
    "  kb ingest --quiet --wait=600 /srv/shared/docs     # from cron\n";

enum { OPT_INCLUDE = 1, OPT_EXCLUDE, OPT_HIDDEN, OPT_FOLLOW, OPT_MAXSIZE, OPT_CHUNK, OPT_OVERLAP,
       OPT_MODEL, OPT_INDEX, OPT_DRY_RUN, OPT_WAIT, OPT_SKIPPED_EXIT };

static const struct cli_opt ingest_opts[] = {
    { "include", 0, 1, OPT_INCLUDE }, { "exclude", 0, 1, OPT_EXCLUDE },
    { "hidden", 0, 0, OPT_HIDDEN }, { "follow-symlinks", 0, 0, OPT_FOLLOW },
    { "max-file-size", 0, 1, OPT_MAXSIZE }, { "chunk-tokens", 0, 1, OPT_CHUNK },
    { "overlap", 0, 1, OPT_OVERLAP }, { "model", 0, 1, OPT_MODEL }, { "index", 0, 1, OPT_INDEX },
    { "dry-run", 0, 0, OPT_DRY_RUN }, { "wait", 0, 2, OPT_WAIT },
    { "skipped-exit", 0, 1, OPT_SKIPPED_EXIT },
    { NULL, 0, 0, 0 },
};

struct ingest_cmd {
    const struct cli *cli;
    kb_ingest_options opts;
    const char **include, **exclude;
    size_t n_include, n_exclude;
    cJSON *json_skipped;
    cJSON *json_changes;     /* --dry-run --json: what would change */
    int skipped_exit;        /* exit code when files were skipped */
    int progress;            /* a progress line on stderr (a terminal, not -q/--json/-v) */
    size_t total;            /* files found by a quick count first (for the ETA) */
    size_t files, chunks, embedded, tokens;
    double t0, shown;
};

static double ingest_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t ingest_counted;
static int ingest_count_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    const char *base = strrchr(path, '/');
    if (flag == FTW_F && !(base && base[1] == '.'))
        ingest_counted++;
    return ingest_counted > 10000000;
}

/* Files under the paths, roughly as the walk will see them (hidden names left out). */
static size_t ingest_count_files(char **paths, int n)
{
    ingest_counted = 0;
    for (int i = 0; i < n; i++)
        nftw(paths[i], ingest_count_one, 32, FTW_PHYS);
    return ingest_counted;
}

/* "ingest: 1,200/5,000 files, 8,000 chunks, 3,100 embedded (6,900 tokens/s), ETA 2m05s" */
static void ingest_show_progress(struct ingest_cmd *c, int last)
{
    double now = ingest_clock(), dt = now - c->t0;
    if (!last && now - c->shown < 0.2)
        return;
    c->shown = now;
    char eta[32] = "";
    if (c->total > c->files && c->files && dt > 1)
        snprintf(eta, sizeof eta, ", ETA %.0fs", dt / (double)c->files * (double)(c->total - c->files));
    fprintf(stderr, "\r\033[Kingest: %zu/%zu files, %zu chunks, %zu embedded (%.0f tokens/s)%s",
            c->files, c->total > c->files ? c->total : c->files, c->chunks, c->embedded,
            dt > 0 ? (double)c->tokens / dt : 0.0, eta);
    if (last)
        fputs("\r\033[K", stderr);
}

/* The most kb reads of one file into memory (KB_TEXTFILE_MAX_BYTES in ingest/textfile.h,
 * where the library enforces it): a larger --max-file-size could never be honoured. */
#define INGEST_MAX_FILE_SIZE (1ull << 30)

static const char *ingest_size(const char *value, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(value, &end, 10);
    unsigned long long mult = 1;
    switch (*end) {
    case 'k': case 'K': mult = 1ull << 10; end++; break;
    case 'm': case 'M': mult = 1ull << 20; end++; break;
    case 'g': case 'G': mult = 1ull << 30; end++; break;
    }
    if (end == value || *end || value[0] == '-' || v == 0 || v > (1ull << 40) / mult)
        return "expected a size such as 1048576, 512K or 64M";
    *out = v * mult;
    return NULL;
}

static const char *ingest_opt(int id, const char *value, void *payload)
{
    struct ingest_cmd *c = payload;
    size_t n;
    const char *msg = NULL;
    switch (id) {
    case OPT_INCLUDE: c->include[c->n_include++] = value; break;
    case OPT_EXCLUDE: c->exclude[c->n_exclude++] = value; break;
    case OPT_HIDDEN: c->opts.include_hidden = 1; break;
    case OPT_FOLLOW: c->opts.follow_symlinks = 1; break;
    case OPT_MAXSIZE:
        msg = ingest_size(value, &c->opts.max_file_bytes);
        if (!msg && c->opts.max_file_bytes > INGEST_MAX_FILE_SIZE)
            msg = "at most 1G (kb reads a file whole into memory)";
        break;
    case OPT_CHUNK:
        if (!(msg = cli_parse_size(value, 16, 8192, &n)))
            c->opts.chunk_tokens = (unsigned)n;
        break;
    case OPT_MODEL: c->opts.model = value; break;
    case OPT_INDEX: c->opts.index = value; break;
    case OPT_OVERLAP:
        if (!(msg = cli_parse_size(value, 0, 4095, &n)))
            c->opts.overlap_tokens = (unsigned)n;
        break;
    case OPT_DRY_RUN: c->opts.dry_run = 1; break;
    case OPT_WAIT:
        c->opts.lock_wait_ms = -1;
        if (value && !(msg = cli_parse_size(value, 0, 86400 * 7, &n)))
            c->opts.lock_wait_ms = n ? (int)n * 1000 : 0;
        break;
    case OPT_SKIPPED_EXIT:
        if (!(msg = cli_parse_size(value, 0, 125, &n)))
            c->skipped_exit = (int)n;
        break;
    }
    return msg;
}

static const char *const ingest_event_names[] = {
    "", "added", "updated", "unchanged", "removed", "skipped", "ignored", "moved",
};

/* --dry-run: each change is reported, as a line or in the JSON summary. */
static void ingest_show_change(struct ingest_cmd *c, const kb_event *ev)
{
    static const char *const verbs[] = { "", "add", "update", "", "remove", "", "", "move" };
    if (c->cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "change", ingest_event_names[ev->type]);
        cJSON_AddStringToObject(o, "path", ev->path);
        if (ev->old_path)
            cJSON_AddStringToObject(o, "old_path", ev->old_path);
        cJSON_AddItemToArray(c->json_changes, o);
    } else if (ev->type == KB_EVENT_MOVED) {
        cli_line(stdout, "would move   %s (from %s)", ev->path, ev->old_path);
    } else {
        cli_line(stdout, "would %-6s %s", verbs[ev->type], ev->path);
    }
}

/* The absolute path of `path` as the walk reached it: its folder resolved, the name itself
 * kept (a skipped symbolic link is reported as the link, not as what it points to). */
static char *ingest_abs_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    char *real = dir ? realpath(dir, NULL) : NULL;
    free(dir);
    if (!real || !*name)
        return real;
    size_t len = strlen(real) + strlen(name) + 2;
    char *out = malloc(len);
    if (out)
        snprintf(out, len, "%s%s%s", real, strcmp(real, "/") ? "/" : "", name);
    free(real);
    return out;
}

static void ingest_on_event(const kb_event *ev, void *payload)
{
    struct ingest_cmd *c = payload;
    if (c->progress) {
        c->files++;
        c->chunks += ev->n_chunks;
        c->embedded += ev->n_embedded;
        c->tokens += ev->n_tokens;
        ingest_show_progress(c, 0);
    }
    if (c->opts.dry_run && (ev->type == KB_EVENT_ADDED || ev->type == KB_EVENT_UPDATED ||
                            ev->type == KB_EVENT_REMOVED || ev->type == KB_EVENT_MOVED))
        ingest_show_change(c, ev);
    if (c->cli->json) {
        if (ev->type == KB_EVENT_SKIPPED) {
            cJSON *o = cJSON_CreateObject();
            char *abs = ingest_abs_path(ev->path);
            cJSON_AddStringToObject(o, "path", abs ? abs : ev->path);
            cJSON_AddStringToObject(o, "reason", ev->reason);
            cJSON_AddItemToArray(c->json_skipped, o);
            free(abs);
        }
        return;
    }
    if (ev->type == KB_EVENT_SKIPPED)
        cli_warn(c->cli, "skipped %s: %s", ev->path, ev->reason);
    else if (ev->type == KB_EVENT_UNCHANGED || ev->type == KB_EVENT_IGNORED
             ? c->cli->verbose >= 2 : c->cli->verbose >= 1)
        cli_line(stderr, "%-9s %s%s%s%s%s", ingest_event_names[ev->type], ev->path,
                 ev->type == KB_EVENT_IGNORED ? " (not a format kb reads)" : "",
                 ev->old_path ? " (from " : "", ev->old_path ? ev->old_path : "",
                 ev->old_path ? ")" : "");
}

static int ingest_report(const struct ingest_cmd *c, const kb_ingest_stats *st, int interrupted)
{
    if (c->cli->json) {
        cJSON *o = cJSON_CreateObject();
        if (c->opts.dry_run)
            cJSON_AddBoolToObject(o, "dry_run", 1);
        if (interrupted)
            cJSON_AddBoolToObject(o, "interrupted", 1);
        cJSON_AddNumberToObject(o, "added", (double)st->added);
        cJSON_AddNumberToObject(o, "updated", (double)st->updated);
        cJSON_AddNumberToObject(o, "unchanged", (double)st->unchanged);
        cJSON_AddNumberToObject(o, "removed", (double)st->removed);
        cJSON_AddNumberToObject(o, "moved", (double)st->moved);
        cJSON_AddNumberToObject(o, "skipped", (double)st->skipped);
        cJSON_AddNumberToObject(o, "ignored", (double)st->ignored);
        cJSON_AddNumberToObject(o, "chunks", (double)st->chunks);
        cJSON_AddNumberToObject(o, "embedded", (double)st->embedded);
        cJSON_AddNumberToObject(o, "reused_vectors", (double)st->reused);
        cJSON_AddNumberToObject(o, "embedded_tokens", (double)st->tokens);
        cJSON_AddNumberToObject(o, "seconds", st->seconds);
        cJSON_AddNumberToObject(o, "embed_seconds", st->embed_seconds);
        cJSON_AddNumberToObject(o, "commit_seconds", st->commit_seconds);
        if (st->notice)
            cJSON_AddStringToObject(o, "notice", st->notice);
        cJSON_AddItemReferenceToObject(o, "skipped_files", c->json_skipped);
        if (c->opts.dry_run)
            cJSON_AddItemReferenceToObject(o, "changes", c->json_changes);
        return cli_print_json(o);
    }
    if (c->cli->quiet)
        return 0;
    printf("%s%zu, updated %zu, unchanged %zu, %s %zu, moved %zu, skipped %zu"
           " (%zu chunks written, %zu embedded, in %.2f s)\n",
           c->opts.dry_run ? "dry run: would add " : "added ", st->added, st->updated,
           st->unchanged, "removed", st->removed, st->moved, st->skipped, st->chunks,
           st->embedded, st->seconds);
    if (st->notice && !c->cli->quiet)
        cli_line(stderr, "kb: note: %s", st->notice);
    return 0;
}

int cmd_ingest(struct cli *cli, int argc, char **argv)
{
    struct ingest_cmd c = { cli, KB_INGEST_OPTIONS_INIT, NULL, NULL, 0, 0, NULL, NULL,
                            CLI_EXIT_PARTIAL, 0, 0, 0, 0, 0, 0, 0, 0 };
    char **paths = calloc((size_t)argc + 1, sizeof *paths);
    c.include = calloc((size_t)argc + 1, sizeof *c.include);
    c.exclude = calloc((size_t)argc + 1, sizeof *c.exclude);
    c.json_skipped = cJSON_CreateArray();
    c.json_changes = cJSON_CreateArray();
    int n_paths = 0, help = 0, rc;
    kb *kb = NULL;
    if (!paths || !c.include || !c.exclude || !c.json_skipped || !c.json_changes) {
        cli_error("out of memory");
        rc = CLI_EXIT_IOERR;
        goto done;
    }
    if ((rc = cli_parse(cli, "ingest", ingest_opts, argc, argv, ingest_opt, &c, paths, &n_paths,
                        &help)))
        goto done;
    if (help) {
        fputs(ingest_help, stdout);
        goto done;
    }
    if (n_paths == 0) {
        cli_usage_error("ingest", "no PATH given");
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    c.opts.include = c.include;
    c.opts.n_include = c.n_include;
    c.opts.exclude = c.exclude;
    c.opts.n_exclude = c.n_exclude;
    c.opts.on_event = ingest_on_event;
    c.opts.payload = &c;
    if ((rc = cli_open(cli, &kb, c.opts.dry_run ? KB_OPEN_READONLY : KB_OPEN_CREATE)))
        goto done;
    c.opts.cancel = cli_catch_interrupts(); /* stops after the current file */
    c.progress = isatty(STDERR_FILENO) && !cli->quiet && !cli->json && !cli->verbose;
    if (c.progress) {
        c.total = ingest_count_files(paths, n_paths);
        c.t0 = c.shown = ingest_clock();
    }
    kb_ingest_stats st;
    int status = kb_ingest(kb, (const char *const *)paths, (size_t)n_paths, &c.opts, &st);
    if (c.progress)
        ingest_show_progress(&c, 1);
    if (status == KB_ECANCELED) {
        ingest_report(&c, &st, 1);
        cli_error("%s", kb_errmsg(kb));
        rc = CLI_EXIT_INTERRUPTED;
        goto done;
    }
    if (status && status != KB_EPARTIAL) {
        rc = cli_fail(cli, kb, status);
        goto done;
    }
    rc = ingest_report(&c, &st, 0);
    if (rc == 0 && status == KB_EPARTIAL)
        rc = c.skipped_exit;
done:
    kb_close(kb);
    cJSON_Delete(c.json_skipped);
    cJSON_Delete(c.json_changes);
    free(paths);
    free(c.include);
    free(c.exclude);
    return rc;
}
