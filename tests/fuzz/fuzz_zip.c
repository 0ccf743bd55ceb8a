/* fuzz_zip.c — libFuzzer target: zip bytes read as DOCX, ODT and EPUB (kb_doc_parse). */
#include <stddef.h>
#include <stdint.h>

#include "ingest/doc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum kb_doc_kind kinds[] = { KB_DOC_DOCX, KB_DOC_ODT, KB_DOC_EPUB };
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        struct kb_doc doc;
        struct kb_err err = { 0, "" };
        if (kb_doc_parse(&doc, kinds[i], (const char *)data, size, &err) == 0)
            kb_doc_free(&doc);
    }
    return 0;
}
