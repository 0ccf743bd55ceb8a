/* out.h — where a passage comes from, said one way for people by kb ask, kb chat and kb search
 * (defined in out.c; the rest of out.c is declared in cli.h). */
#ifndef KB_CLI_OUT_H
#define KB_CLI_OUT_H

#include <stdint.h>
#include <stdio.h>

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

#endif
