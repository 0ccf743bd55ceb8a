/* ask.c — a small program built on libkb alone: fill a knowledge base, ask it a question.
 *
 *   ask KB_DIR QUESTION [PATH...]
 *
 * Opens (or creates) the knowledge base in KB_DIR. With PATHs, ingests those files and folders
 * first; with none, and an empty KB, it stores three in-memory documents so there is something
 * to ask about. Then it asks QUESTION: the answer streams to stdout token by token, followed by
 * the numbered sources it was given. When no LLM backend is configured (config file or
 * KB_LLM_BACKEND / KB_LLM_URL / KB_LLM_MODEL, see README.md "Asking questions") kb_ask still
 * succeeds, and the program prints the passages it retrieved instead of an answer.
 *
 * Build it with pkg-config or CMake (examples/README.md). Exits 0 on success, 1 on error. */
#include <kb/kb.h>

#include <stdio.h>
#include <string.h>

/* Receives the answer as it arrives: `len` bytes of UTF-8, not NUL-terminated. */
static int on_token(const char *text, size_t len, void *payload)
{
    (void)payload;
    fwrite(text, 1, len, stdout);
    fflush(stdout); /* show each piece at once: that is the point of streaming */
    return 0;
}

/* Reports what ingesting did to each file (kb_ingest calls this once per file). */
static void on_event(const kb_event *event, void *payload)
{
    (void)payload;
    if (event->type == KB_EVENT_SKIPPED)
        fprintf(stderr, "skipped %s: %s\n", event->path, event->reason);
}

/* Fills the KB: the files and folders named, or a few in-memory documents into an empty KB. */
static int fill(kb *kb, const char *const *paths, size_t n_paths)
{
    kb_ingest_stats stats;
    if (n_paths) {
        kb_ingest_options opts = KB_INGEST_OPTIONS_INIT; /* version set; all else defaults */
        opts.on_event = on_event;
        int rc = kb_ingest(kb, paths, n_paths, &opts, &stats);
        /* KB_EPARTIAL: some files were skipped (reported above); the rest is stored. */
        return rc == KB_EPARTIAL ? 0 : rc;
    }
    kb_status_info info;
    int rc = kb_stat(kb, &info);
    if (rc || info.n_documents > 0)
        return rc;
    static const char *const texts[][2] = {
        { "Lighthouses", "A lighthouse keeper trims the wick at dusk and winds the clockwork "
                         "that turns the lens through the night." },
        { "Tides", "Two high tides a day follow the moon; spring tides come at new and full "
                   "moon, neap tides in between." },
        { "Fog signals", "In fog the station sounds its horn twice every minute, since the "
                         "light cannot be seen." },
    };
    kb_document docs[3];
    for (size_t i = 0; i < 3; i++) /* the library copies what it stores */
        docs[i] = (kb_document){ texts[i][0], texts[i][0], texts[i][1], strlen(texts[i][1]),
                                 "text", NULL };
    return kb_add_documents(kb, docs, 3, NULL, &stats);
}

/* The numbered passages the answer may cite as [n]; with their text when there was no answer. */
static void print_sources(const kb_prompt_result *prompt, int with_text)
{
    printf(with_text ? "No LLM backend is configured; the best passages:\n" : "\nSources:\n");
    for (size_t i = 0; i < prompt->n_sources; i++) {
        const kb_source *s = &prompt->sources[i];
        printf("[%d] %s", s->number, s->path);
        if (s->heading_path[0])
            printf(" › %s", s->heading_path);
        if (s->location && *s->location) /* "page 3", "chapter 2: Winter", "row 2 – row 9" */
            printf(", %s (lines %u–%u)\n", s->location, (unsigned)s->line_start,
                   (unsigned)s->line_end);
        else
            printf(", lines %u–%u\n", (unsigned)s->line_start, (unsigned)s->line_end);
        if (with_text)
            printf("%s\n\n", s->text);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s KB_DIR QUESTION [PATH...]\n", argv[0]);
        return 1;
    }
    kb *kb = NULL;
    kb_answer *answer = NULL;
    /* Even a failed open gives a handle (unless memory ran out) that holds the message. */
    int rc = kb_open(&kb, argv[1], KB_OPEN_CREATE);
    if (rc == 0)
        rc = fill(kb, (const char *const *)argv + 3, (size_t)(argc - 3));
    if (rc == 0) {
        kb_ask_options opts = KB_ASK_OPTIONS_INIT;
        opts.on_token = on_token;
        opts.k = 3;
        rc = kb_ask(kb, argv[2], &opts, &answer);
    }
    /* On a backend failure `answer` is still set: its sources are worth showing. */
    if (answer && answer->prompt)
        print_sources(answer->prompt, answer->prompt->backend == NULL);
    if (rc)
        fprintf(stderr, "ask: %s (%s)\n", kb_errmsg(kb), kb_strerror(rc));
    kb_answer_free(answer); /* the caller frees what it was given... */
    kb_close(kb);           /* ...and both accept NULL */
    return rc ? 1 : 0;
}
