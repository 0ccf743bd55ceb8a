/* lm_int.h — what the facade's files share of a decoder-model handle (kb/lm.c). */
#ifndef KB_KB_LM_INT_H
#define KB_KB_LM_INT_H

#include "decoder/gguf.h"
#include "decoder/model.h"
#include "decoder/tokenizer.h"
#include "kb/kb.h"
#include "util/err.h"

struct kb_lm {
    struct kb_gguf *vocab_only; /* a file with a tokenizer and no tensors (kb_lm_tokenize only) */
    struct kb_dec_model *model;
    struct kb_tok *tok;
    char **token_text;        /* NUL-terminated copies of the vocabulary, for kb_lm_token */
    size_t n_vocab;
    struct kb_err err;
};

#endif
