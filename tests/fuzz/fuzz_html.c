/* fuzz_html.c — libFuzzer target: HTML and XML bytes through kb's parsers (kb_doc_parse). */
#include <stddef.h>
#include <stdint.h>

#include "ingest/doc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks the parser, so one corpus covers both. */
    if (size < 1)
        return 0;
    struct kb_doc doc;
    struct kb_err err = { 0, "" };
    enum kb_doc_kind kind = data[0] & 1 ? KB_DOC_XML : KB_DOC_HTML;
    if (kb_doc_parse(&doc, kind, (const char *)data + 1, size - 1, &err) == 0)
        kb_doc_free(&doc);
    return 0;
}
