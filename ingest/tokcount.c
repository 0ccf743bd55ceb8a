/* tokcount.c — the stand-in token counter: runs of word characters, and each punctuation or
 * symbol code point on its own (BERT's pre-tokenisation without WordPiece). */
#include "ingest/tokcount.h"

#include <utf8proc.h>

enum tokcount_class {
    TOKCOUNT_WORD = 0,   /* letters, digits, marks, controls: extends a run */
    TOKCOUNT_SPACE,      /* ends a run */
    TOKCOUNT_PUNCT       /* ends a run and is a token of its own */
};

/* ASCII by table: the hot path for prose and code. Unlisted bytes are TOKCOUNT_WORD. */
static const unsigned char tokcount_ascii[128] = {
    ['\t'] = TOKCOUNT_SPACE, ['\n'] = TOKCOUNT_SPACE, ['\v'] = TOKCOUNT_SPACE,
    ['\f'] = TOKCOUNT_SPACE, ['\r'] = TOKCOUNT_SPACE, [' '] = TOKCOUNT_SPACE,
    ['!'] = TOKCOUNT_PUNCT, ['"'] = TOKCOUNT_PUNCT, ['#'] = TOKCOUNT_PUNCT,
    ['$'] = TOKCOUNT_PUNCT, ['%'] = TOKCOUNT_PUNCT, ['&'] = TOKCOUNT_PUNCT,
    ['\''] = TOKCOUNT_PUNCT, ['('] = TOKCOUNT_PUNCT, [')'] = TOKCOUNT_PUNCT,
    ['*'] = TOKCOUNT_PUNCT, ['+'] = TOKCOUNT_PUNCT, [','] = TOKCOUNT_PUNCT,
    ['-'] = TOKCOUNT_PUNCT, ['.'] = TOKCOUNT_PUNCT, ['/'] = TOKCOUNT_PUNCT,
    [':'] = TOKCOUNT_PUNCT, [';'] = TOKCOUNT_PUNCT, ['<'] = TOKCOUNT_PUNCT,
    ['='] = TOKCOUNT_PUNCT, ['>'] = TOKCOUNT_PUNCT, ['?'] = TOKCOUNT_PUNCT,
    ['@'] = TOKCOUNT_PUNCT, ['['] = TOKCOUNT_PUNCT, ['\\'] = TOKCOUNT_PUNCT,
    [']'] = TOKCOUNT_PUNCT, ['^'] = TOKCOUNT_PUNCT, ['_'] = TOKCOUNT_PUNCT,
    ['`'] = TOKCOUNT_PUNCT, ['{'] = TOKCOUNT_PUNCT, ['|'] = TOKCOUNT_PUNCT,
    ['}'] = TOKCOUNT_PUNCT, ['~'] = TOKCOUNT_PUNCT,
};

/* Classifies the code point at *p and advances past it. A byte that does not start a valid
 * sequence counts as a word character, one byte at a time, so bad input cannot stall us. */
static enum tokcount_class tokcount_decode(const unsigned char **p, const unsigned char *end)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t avail = end - *p > 4 ? 4 : end - *p;
    utf8proc_ssize_t n = utf8proc_iterate(*p, avail, &cp);
    if (n <= 0 || cp < 0) {
        (*p)++;
        return TOKCOUNT_WORD;
    }
    *p += n;
    if (cp == 0x85)   /* NEL: a control that Unicode counts as white space */
        return TOKCOUNT_SPACE;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
        return TOKCOUNT_SPACE;
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK: case UTF8PROC_CATEGORY_SO:
        return TOKCOUNT_PUNCT;
    default:
        return TOKCOUNT_WORD;
    }
}

size_t kb_tokcount_words(const char *text, size_t len, void *payload)
{
    (void)payload;
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    size_t n_tokens = 0;
    unsigned in_word = 0;
    while (p < end) {
        unsigned cls = *p < 0x80 ? tokcount_ascii[*p++] : (unsigned)tokcount_decode(&p, end);
        /* Branch-free: a word character adds a token when it starts a run; a punctuation
         * or symbol code point always adds one. */
        unsigned is_word = cls == TOKCOUNT_WORD;
        n_tokens += (is_word & !in_word) + (cls == TOKCOUNT_PUNCT);
        in_word = is_word;
    }
    return n_tokens;
}

const struct kb_tokcounter kb_tokcounter_words = { kb_tokcount_words, NULL };
