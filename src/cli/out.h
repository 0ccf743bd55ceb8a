/* out.h — where a passage comes from, said one way for people by kb ask, kb chat and kb search,
 * and the JSON shapes that `--json` and kb serve share (defined in out.c; the rest of out.c is
 * declared in cli.h). */
#ifndef KB_CLI_OUT_H
#define KB_CLI_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kb/kb.h"

struct cJSON;

/* A passage's place: the fields of a kb_result or kb_source. */
struct cli_place {
    const char *path;         /* as stored; shown relative to the current directory when below */
    const char *title;        /* may be NULL or "" */
    const char *heading_path; /* may be NULL or "" */
    const char *format;       /* the document's format; may be NULL */
    const char *location;     /* "page 3", "chapter 2: Winter", "row 2 – row 9"; NULL or "" */
    uint32_t line_start, line_end;
};

enum cli_place_style {
    /* kb ask and kb chat: "docs/a.md › Install › Linux, lines 5–7". A passage with a location
     * whose lines are of extracted text (every format but text, markdown, rst and org: PDF
     * pages, EPUB chapters, CSV rows) is cited by its location instead of its lines:
     * "docs/manual.pdf › Install, page 3". */
    CLI_PLACE_CITATION,
    /* kb search: "docs/a.md:5-7  Guide › Install › Linux  [page 3]": the line range as an
     * editor takes it, the document title ahead of the section when it says more than the
     * file name and the section, the location in brackets. */
    CLI_PLACE_RESULT
};

/* Writes p to `out` in `style`, without a newline. */
void cli_place_print(FILE *out, const struct cli_place *p, enum cli_place_style style);

/* One search result as `kb search --json` and POST /v1/search give it (rank from 1). */
struct cJSON *cli_json_result(const kb_result *r, size_t rank);
/* Numbered passages (kb ask --json, /v1/ask, /v1/prompt): "number" unless 0 (a passage left
 * out), "note" when there is one, "text" when with_text. */
struct cJSON *cli_json_sources(const kb_source *s, size_t n, int with_text);
/* The messages as a chat-messages array [{"role", "content"}]. */
struct cJSON *cli_json_messages(const kb_prompt_result *p);

#endif
