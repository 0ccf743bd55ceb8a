/* fuzz_decode.c — libFuzzer target: text decoding (BOMs, UTF-8, cp1252, binary checks) and the
 * text-shaped parsers (CSV, RST, Org, email) behind it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ingest/decode.h"
#include "ingest/doc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum kb_doc_kind kinds[] = { KB_DOC_TEXT, KB_DOC_CSV, KB_DOC_TSV, KB_DOC_RST,
                                              KB_DOC_ORG, KB_DOC_EMAIL };
    if (size < 1)
        return 0;
    struct kb_err err = { 0, "" };
    char *out = NULL;
    size_t out_len = 0;
    if (kb_decode_to_utf8(&out, &out_len, (const char *)data + 1, size - 1, NULL, 1 << 24,
                          &err) == 0)
        free(out);
    struct kb_doc doc;
    if (kb_doc_parse(&doc, kinds[data[0] % 6], (const char *)data + 1, size - 1, &err) == 0)
        kb_doc_free(&doc);
    return 0;
}
