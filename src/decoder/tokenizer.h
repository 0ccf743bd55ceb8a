/* tokenizer.h — the tokenizer a GGUF file carries: `llama` (SentencePiece: scores, byte
 * fallback) and `gpt2` (byte-level BPE over merges, with the pre-tokenizer named by
 * tokenizer.ggml.pre: gpt-2, llama-bpe, qwen2, smollm). Control tokens are recognised only
 * when the caller asks (KB_TOK_SPECIAL), so text from a question or a document never turns
 * into them. An unknown model or pre-tokenizer is an error, never a fallback. */
#ifndef KB_DECODER_TOKENIZER_H
#define KB_DECODER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "decoder/gguf.h"
#include "util/buf.h"
#include "util/err.h"

struct kb_tok;

/* Reads tokenizer.ggml.* from g (which must outlive the tokenizer). KB_EFORMAT naming the
 * file and key for an unknown tokenizer model or pre-tokenizer or damaged vocabulary. */
int kb_tok_open(struct kb_tok **out, const struct kb_gguf *g, struct kb_err *err);
void kb_tok_free(struct kb_tok *t);

#define KB_TOK_BOS 1u      /* start with the BOS token when the model adds one */
#define KB_TOK_SPECIAL 2u  /* control tokens written out in the text become those tokens */

/* Appends the tokens of text[0..len) to *ids, which is NULL with *n 0 or what an earlier call
 * left (grown with realloc; *n counts the tokens; the caller frees). */
int kb_tok_encode(const struct kb_tok *t, const char *text, size_t len, unsigned flags,
                  int32_t **ids, size_t *n, struct kb_err *err);

/* Appends the text of token `id` (bytes for byte tokens; SentencePiece's U+2581 as a space;
 * control tokens as nothing unless `special`). KB_EINVALID for an id outside the vocabulary. */
int kb_tok_decode(const struct kb_tok *t, int32_t id, int special, struct kb_buf *out,
                  struct kb_err *err);

/* The text of `id` as it follows `prev`: SentencePiece's word-initial space is dropped after
 * BOS, as its decoder does at the start of a text. */
int kb_tok_decode_after(const struct kb_tok *t, int32_t prev, int32_t id, struct kb_buf *out,
                        struct kb_err *err);

uint32_t kb_tok_n_vocab(const struct kb_tok *t);
/* -1 when the file names none. */
int32_t kb_tok_bos(const struct kb_tok *t);
int32_t kb_tok_eos(const struct kb_tok *t);
/* Whether generation ends at this token: EOS, EOT, or a control token the chat template
 * closes a turn with (<|im_end|>, <|eot_id|>, <|endoftext|>, <end_of_turn>). */
int kb_tok_is_end(const struct kb_tok *t, int32_t id);
/* The id of a token by its text, or -1. */
int32_t kb_tok_find(const struct kb_tok *t, const char *text, size_t len);

#endif
