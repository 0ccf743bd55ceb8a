/* out.c — how the kb command reports: errors and hints on stderr, results and JSON on stdout. */
#include "cli.h"
#include "out.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void out_line(const char *prefix, const char *fmt, va_list ap)
{
    fputs(prefix, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    out_line("kb: ", fmt, ap);
    va_end(ap);
}

void cli_hint(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    out_line("hint: ", fmt, ap);
    va_end(ap);
}

void cli_warn(const struct cli *cli, const char *fmt, ...)
{
    if (cli->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    out_line("kb: warning: ", fmt, ap);
    va_end(ap);
}

void cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kb%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fprintf(stderr, "hint: see 'kb %s%s--help'\n", cmd ? cmd : "", cmd ? " " : "");
}

int cli_exit_code(int status)
{
    switch (status) {
    case KB_OK: return CLI_EXIT_OK;
    case KB_EPARTIAL: return CLI_EXIT_PARTIAL;
    case KB_EINVALID: return CLI_EXIT_USAGE;
    case KB_EFORMAT: case KB_EVERSION: case KB_ECORRUPT: return CLI_EXIT_DATAERR;
    case KB_ENOTFOUND: case KB_ENOTKB: return CLI_EXIT_NOINPUT;
    case KB_ECANTCREATE: return CLI_EXIT_CANTCREAT;
    case KB_EIO: case KB_ENOMEM: return CLI_EXIT_IOERR;
    case KB_ELOCKED: return CLI_EXIT_TEMPFAIL;
    case KB_ECANCELED: return CLI_EXIT_INTERRUPTED;
    case KB_EUNAVAILABLE: return CLI_EXIT_UNAVAILABLE;
    case KB_EAUTH: case KB_ECONFIG: return CLI_EXIT_CONFIG;
    default: return CLI_EXIT_SOFTWARE;
    }
}

int cli_fail(const struct cli *cli, kb *kb, int status)
{
    const char *msg = kb ? kb_errmsg(kb) : "";
    cli_error("%s", *msg ? msg : kb_strerror(status));
    switch (status) {
    case KB_ENOTFOUND:
        if (!strstr(msg, "no such knowledge base"))
            break;
        cli_hint("create it with 'kb --kb %s ingest FOLDER'", cli->kb_dir);
        break;
    case KB_ELOCKED:
        cli_hint("retry when the other writer has finished");
        break;
    case KB_EVERSION:
        if (strstr(msg, "needs migrating"))
            cli_hint("a writing command (kb ingest, kb reindex) migrates it; reading ones "
                     "never change a KB");
        else
            cli_hint("upgrade kb to read this knowledge base");
        break;
    case KB_ECORRUPT:
        if (strstr(msg, ".faiss"))
            cli_hint("the vector index is a cache: rebuild it with 'kb reindex --index auto'");
        else
            cli_hint("re-create it with 'kb ingest' into a new --kb folder");
        break;
    }
    return cli_exit_code(status);
}

int cli_open(const struct cli *cli, kb **out, unsigned flags)
{
    int rc = kb_open(out, cli->kb_dir, flags);
    if (rc) {
        rc = cli_fail(cli, *out, rc);
        kb_close(*out);
        *out = NULL;
    }
    return rc;
}

char *cli_display_path(const char *path)
{
    char cwd[PATH_MAX];
    if (path[0] == '/' && getcwd(cwd, sizeof cwd)) {
        size_t n = strlen(cwd);
        if (n > 1 && !strncmp(path, cwd, n) && path[n] == '/')
            return strdup(path + n + 1);
    }
    return strdup(path);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one. */
static size_t out_utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xE0 && s[1] < 0xA0) || (n == 3 && s[0] == 0xED && s[1] >= 0xA0) ||
        (n == 4 && s[0] == 0xF0 && s[1] < 0x90) || (n == 4 && s[0] == 0xF4 && s[1] >= 0x90))
        return 0;
    return n;
}

void cli_put_utf8_line(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        size_t n = out_utf8_len(s);
        if (n) {
            fwrite(s, 1, n, stdout);
            s += n;
        } else {
            fputs("\xEF\xBF\xBD", stdout); /* U+FFFD for a byte that is not UTF-8 */
            s++;
        }
    }
    putchar('\n');
}

int cli_print_json(cJSON *doc)
{
    char *text = doc ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    if (!text) {
        cli_error("out of memory writing JSON");
        return CLI_EXIT_IOERR;
    }
    /* File names need not be UTF-8 (a skipped one is still reported): JSON must be. */
    cli_put_utf8_line(text);
    cJSON_free(text);
    return 0;
}

/* ---- where a passage comes from (out.h) ---- */

/* Text formats, whose line numbers are the file's own; others count lines of extracted text. */
static int out_lines_are_the_files(const char *format)
{
    static const char *const text_formats[] = { "text", "markdown", "rst", "org" };
    for (size_t i = 0; format && i < sizeof text_formats / sizeof *text_formats; i++)
        if (!strcmp(format, text_formats[i]))
            return 1;
    return !format || !*format;
}

/* The title says more than the file name ("manual" of manual.pdf) and the section's first
 * level (the H1 a Markdown title is taken from). */
static int out_title_informs(const struct cli_place *p)
{
    if (!p->title || !*p->title)
        return 0;
    const char *base = strrchr(p->path, '/'), *dot;
    base = base ? base + 1 : p->path;
    dot = strrchr(base, '.');
    size_t stem = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    size_t n = strlen(p->title);
    if (!strcmp(p->title, base) || (n == stem && !strncmp(p->title, base, stem)))
        return 0;
    const char *h = p->heading_path ? p->heading_path : "";
    return strncmp(h, p->title, n) || (h[n] && strncmp(h + n, " \xE2\x80\xBA ", 5));
}

void cli_place_print(FILE *out, const struct cli_place *p, enum cli_place_style style)
{
    char *shown = cli_display_path(p->path);
    const char *path = shown ? shown : p->path;
    const char *heading = p->heading_path ? p->heading_path : "";
    const char *location = p->location ? p->location : "";
    if (style == CLI_PLACE_RESULT) {
        int title = out_title_informs(p);
        fprintf(out, "%s:%u-%u", path, p->line_start, p->line_end);
        if (title || *heading)
            fprintf(out, "  %s%s%s", title ? p->title : "",
                    title && *heading ? " \xE2\x80\xBA " : "", heading);
        if (*location)
            fprintf(out, "  [%s]", location);
    } else {
        fputs(path, out);
        if (*heading)
            fprintf(out, " \xE2\x80\xBA %s", heading);
        if (*location && !out_lines_are_the_files(p->format))
            fprintf(out, ", %s", location);
        else if (p->line_start == p->line_end)
            fprintf(out, ", line %u", p->line_start);
        else
            fprintf(out, ", lines %u\xE2\x80\x93%u", p->line_start, p->line_end);
    }
    free(shown);
}

/* ---- JSON shared by --json and kb serve (out.h) ---- */

cJSON *cli_json_result(const kb_result *r, size_t rank)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rank", (double)rank);
    cJSON_AddNumberToObject(o, "score", r->score);
    cJSON_AddStringToObject(o, "path", r->path);
    if (*r->title) cJSON_AddStringToObject(o, "title", r->title);
    if (*r->heading_path) cJSON_AddStringToObject(o, "heading_path", r->heading_path);
    cJSON_AddStringToObject(o, "format", r->format);
    cJSON_AddNumberToObject(o, "line_start", r->line_start);
    cJSON_AddNumberToObject(o, "line_end", r->line_end);
    cJSON_AddNumberToObject(o, "byte_start", (double)r->byte_start);
    cJSON_AddNumberToObject(o, "byte_end", (double)r->byte_end);
    if (r->location && *r->location) cJSON_AddStringToObject(o, "location", r->location);
    cJSON *meta = r->metadata ? cJSON_Parse(r->metadata) : NULL;
    if (meta) cJSON_AddItemToObject(o, "metadata", meta);
    if (r->page) cJSON_AddNumberToObject(o, "page", r->page);
    cJSON_AddNumberToObject(o, "chunk_id", (double)r->chunk_id);
    cJSON_AddNumberToObject(o, "document_id", (double)r->doc_id);
    cJSON_AddStringToObject(o, "snippet", r->snippet);
    cJSON_AddStringToObject(o, "text", r->text);
    return o;
}

cJSON *cli_json_sources(const kb_source *s, size_t n, int with_text)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        const kb_source *x = &s[i];
        cJSON *o = cJSON_CreateObject();
        if (x->number) cJSON_AddNumberToObject(o, "number", x->number);
        cJSON_AddStringToObject(o, "path", x->path);
        if (*x->title) cJSON_AddStringToObject(o, "title", x->title);
        if (*x->heading_path) cJSON_AddStringToObject(o, "heading_path", x->heading_path);
        cJSON_AddNumberToObject(o, "line_start", x->line_start);
        cJSON_AddNumberToObject(o, "line_end", x->line_end);
        if (x->format && *x->format) cJSON_AddStringToObject(o, "format", x->format);
        if (x->location && *x->location) cJSON_AddStringToObject(o, "location", x->location);
        if (x->page) cJSON_AddNumberToObject(o, "page", x->page);
        cJSON_AddNumberToObject(o, "score", x->score);
        if (x->note && *x->note) cJSON_AddStringToObject(o, "note", x->note);
        if (with_text) cJSON_AddStringToObject(o, "text", x->text);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

cJSON *cli_json_messages(const kb_prompt_result *p)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < p->n_messages; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", p->messages[i].role);
        cJSON_AddStringToObject(m, "content", p->messages[i].content);
        cJSON_AddItemToArray(arr, m);
    }
    return arr;
}
