/* out.c — how the kb command reports: errors and hints on stderr, results and JSON on stdout. */
#include "cli.h"
#include "out.h"
#include "util/buf.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_put_text(FILE *f, const char *text, size_t len, enum kb_escape_mode mode)
{
    struct kb_buf b = KB_BUF_INIT;
    if (!kb_utf8_escape(&b, text, len, mode) && b.len)
        fwrite(b.data, 1, b.len, f);
    kb_buf_free(&b);
}

/* prefix, then the formatted message as one escaped line. */
static void out_vline(FILE *f, const char *prefix, const char *fmt, va_list ap)
{
    struct kb_buf b = KB_BUF_INIT;
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    fputs(prefix, f);
    if (n > 0 && !kb_buf_reserve(&b, (size_t)n + 1)) {
        vsnprintf(b.data, (size_t)n + 1, fmt, ap);
        cli_put_text(f, b.data, (size_t)n, KB_ESCAPE_LINE);
    }
    fputc('\n', f);
    kb_buf_free(&b);
}

void cli_line(FILE *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    out_vline(f, "", fmt, ap);
    va_end(ap);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    out_vline(stderr, "kb: ", fmt, ap);
    va_end(ap);
}

void cli_hint(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    out_vline(stderr, "hint: ", fmt, ap);
    va_end(ap);
}

void cli_warn(const struct cli *cli, const char *fmt, ...)
{
    if (cli->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    out_vline(stderr, "kb: warning: ", fmt, ap);
    va_end(ap);
}

void cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "kb%s%.40s: ", cmd ? " " : "", cmd ? cmd : "");
    va_list ap;
    va_start(ap, fmt);
    out_vline(stderr, prefix, fmt, ap);
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

/* For "N chunks have no vector from model 'NAME'": the command that embeds them. */
static int cli_hint_reindex(const char *msg)
{
    static const char mark[] = "have no vector from model '";
    const char *name = strstr(msg, mark), *end;
    if (!name || !(end = strrchr(name += sizeof mark - 1, '\'')))
        return 0;
    cli_hint("embed every chunk with 'kb reindex --model %.*s'", (int)(end - name), name);
    return 1;
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
    case KB_EINVALID:
        if (strstr(msg, "so mode must be \"bm25\""))
            cli_hint("search it with --mode bm25, or give it vectors with "
                     "'kb reindex --model NAME'");
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
        if (cli_hint_reindex(msg))
            break;
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

void cli_put_utf8_line(const char *text)
{
    for (size_t left = strlen(text); left;) {
        size_t n = kb_utf8_seq_len(text, left);
        if (n)
            fwrite(text, 1, n, stdout);
        else
            fputs("\xEF\xBF\xBD", stdout); /* U+FFFD for a byte that is not UTF-8 */
        text += n ? n : 1;
        left -= n ? n : 1;
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
    struct kb_buf b = KB_BUF_INIT; /* out of memory shows less, never more */
    if (style == CLI_PLACE_RESULT) {
        int title = out_title_informs(p);
        kb_buf_printf(&b, "%s:%u-%u", path, p->line_start, p->line_end);
        if (title || *heading)
            kb_buf_printf(&b, "  %s%s%s", title ? p->title : "",
                          title && *heading ? " \xE2\x80\xBA " : "", heading);
        if (*location)
            kb_buf_printf(&b, "  [%s]", location);
    } else {
        kb_buf_puts(&b, path);
        if (*heading)
            kb_buf_printf(&b, " \xE2\x80\xBA %s", heading);
        if (*location && !out_lines_are_the_files(p->format))
            kb_buf_printf(&b, ", %s", location);
        else if (p->line_start == p->line_end)
            kb_buf_printf(&b, ", line %u", p->line_start);
        else
            kb_buf_printf(&b, ", lines %u\xE2\x80\x93%u", p->line_start, p->line_end);
    }
    cli_put_text(out, b.data ? b.data : "", b.len, KB_ESCAPE_LINE);
    kb_buf_free(&b);
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
