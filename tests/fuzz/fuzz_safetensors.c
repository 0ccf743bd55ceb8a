/* fuzz_safetensors.c — libFuzzer target: the safetensors header parser and dtype conversion on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "encoder/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kb_safetensors st;
    struct kb_err err = { 0 };
    if (kb_safetensors_parse(&st, data, size, "fuzz.safetensors", &err) != 0)
        return 0;
    /* Every tensor the parser accepted must lie inside the input: convert each float one. */
    for (size_t i = 0; i < st.n_tensors; i++) {
        const struct kb_st_tensor *t = &st.tensors[i];
        if (t->dtype == KB_ST_OTHER || t->n_elems > ((size_t)1 << 20))
            continue;
        float *out = malloc(t->n_elems * sizeof *out + 1);
        if (out)
            kb_safetensors_to_f32(t, out);
        free(out);
        if (kb_safetensors_find(&st, t->name) != t)
            abort();
    }
    kb_safetensors_close(&st);
    return 0;
}
