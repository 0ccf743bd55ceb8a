/* tokcount.h — how chunk sizes are measured. The chunker only sees this interface; the
 * encoder's WordPiece counter plugs in behind it later. */
#ifndef KB_INGEST_TOKCOUNT_H
#define KB_INGEST_TOKCOUNT_H

#include <stddef.h>

/* Returns the number of tokens in text[0..len) (valid UTF-8, not NUL-terminated). Must be
 * deterministic; counting a concatenation of whitespace-separated pieces should give the sum
 * of the pieces' counts, but callers verify every final chunk with one direct count. */
typedef size_t (*kb_tokcount_fn)(const char *text, size_t len, void *payload);

struct kb_tokcounter {
    kb_tokcount_fn count;
    void *payload;
};

/* The stand-in counter until the encoder lands: a token is a maximal run of letters, digits
 * and marks (any non-space, non-punctuation code points), and every punctuation or symbol
 * code point is a token of its own — BERT's pre-tokenisation without WordPiece. */
size_t kb_tokcount_words(const char *text, size_t len, void *payload);

extern const struct kb_tokcounter kb_tokcounter_words;

#endif
