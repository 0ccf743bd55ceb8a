/* tokenizer.c — SentencePiece and byte-level BPE as llama.cpp runs them (its test vectors are
 * the reference): text is first split at special tokens (user-defined ones always, control
 * ones only with KB_TOK_SPECIAL, longest first); SentencePiece then merges the pair of
 * adjacent symbols whose union has the highest score, falling back to <0xXX> byte tokens;
 * BPE splits with the pre-tokenizer's regular expressions (PCRE2), maps bytes to GPT-2's
 * printable characters and merges the pair of lowest merge rank. */
#define _GNU_SOURCE /* memmem, qsort_r */
#include "decoder/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER = 4, TOK_UNUSED = 5,
       TOK_BYTE = 6 };
enum tok_model { TOK_SPM, TOK_BPE };

#define TOK_MAX_REGEX 2

/* Open addressing over 64-bit hashes; slots hold index + 1 (0 = empty). */
struct tok_hash {
    uint32_t *slots;
    size_t mask;
};

struct tok_merge {
    struct kb_gguf_str left, right;
};

struct kb_tok {
    const struct kb_gguf *g;
    enum tok_model model;
    size_t n_vocab;
    struct kb_gguf_str *text;
    int32_t *type;
    float *score;             /* SentencePiece */
    struct tok_hash by_text;
    struct tok_merge *merges; /* BPE: rank order */
    size_t n_merges;
    struct tok_hash by_pair;
    int32_t *specials;        /* control and user-defined tokens, longest first */
    size_t n_specials;
    pcre2_code *regex[TOK_MAX_REGEX];
    int n_regex;
    int add_bos, add_space_prefix, ignore_merges;
    int32_t bos, eos, eot, unk;
    int32_t byte_token[256];  /* SentencePiece: <0xXX>; BPE: the token of the mapped byte */
    uint16_t byte_char[256];  /* BPE: byte -> GPT-2's code point for it */
};

/* ---- hashing -------------------------------------------------------------------------- */

static uint64_t fnv(const char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h;
}

#define FNV_SEED 0xcbf29ce484222325ull

static int hash_init(struct tok_hash *h, size_t n)
{
    size_t size = 16;
    while (size < 2 * n)
        size *= 2;
    h->slots = calloc(size, sizeof *h->slots);
    h->mask = size - 1;
    return h->slots ? 0 : -1;
}

static int32_t find_text(const struct kb_tok *t, const char *p, size_t n)
{
    for (size_t i = fnv(p, n, FNV_SEED) & t->by_text.mask;; i = (i + 1) & t->by_text.mask) {
        uint32_t s = t->by_text.slots[i];
        if (!s)
            return -1;
        const struct kb_gguf_str *k = &t->text[s - 1];
        if (k->len == n && !memcmp(k->p, p, n))
            return (int32_t)(s - 1);
    }
}

static uint64_t pair_hash(const char *l, size_t ln, const char *r, size_t rn)
{
    return fnv(r, rn, fnv(" ", 1, fnv(l, ln, FNV_SEED)));
}

/* The rank of merging l and r, or -1. */
static int32_t find_merge(const struct kb_tok *t, const char *l, size_t ln, const char *r,
                          size_t rn)
{
    if (!t->n_merges)
        return -1;
    for (size_t i = pair_hash(l, ln, r, rn) & t->by_pair.mask;; i = (i + 1) & t->by_pair.mask) {
        uint32_t s = t->by_pair.slots[i];
        if (!s)
            return -1;
        const struct tok_merge *m = &t->merges[s - 1];
        if (m->left.len == ln && m->right.len == rn && !memcmp(m->left.p, l, ln) &&
            !memcmp(m->right.p, r, rn))
            return (int32_t)(s - 1);
    }
}

/* ---- loading -------------------------------------------------------------------------- */

static int tok_fail(const struct kb_tok *t, struct kb_err *err, const char *what)
{
    return kb_err_set(err, KB_EFORMAT, "%s: %s", t->g->path, what);
}

static int tok_bool(const struct kb_gguf *g, const char *key, int *out)
{
    const struct kb_gguf_kv *kv = kb_gguf_find(g, key);
    if (kv && kv->type == KB_GGUF_BOOL)
        *out = kv->value[0] != 0;
    return 0;
}

/* A token id key: absent, or an id outside the vocabulary (some files write -1), is -1. */
static int32_t tok_id(const struct kb_tok *t, const char *key)
{
    uint32_t v;
    struct kb_err ignored;
    if (kb_gguf_get_u32(t->g, key, &v, &ignored) || v >= t->n_vocab)
        return -1;
    return (int32_t)v;
}

static int str_is(const struct kb_gguf_str *s, const char *lit)
{
    return s->len == strlen(lit) && !memcmp(s->p, lit, s->len);
}

/* GPT-2's byte-to-unicode table: printable bytes stand for themselves, the rest for 256+. */
static void bpe_byte_chars(struct kb_tok *t)
{
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        t->byte_char[b] = (uint16_t)(printable ? b : 256 + n++);
    }
}


static const char *const regex_gpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char *const regex_llama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const regex_qwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* The pre-tokenizer tokenizer.ggml.pre names: its regular expressions, applied in turn. */
static int bpe_pre(struct kb_tok *t, struct kb_err *err)
{
    struct kb_gguf_str pre = { "default", 7 };
    int rc = kb_gguf_get_str(t->g, "tokenizer.ggml.pre", &pre, err);
    if (rc && rc != KB_ENOTFOUND)
        return rc;
    const char *exprs[TOK_MAX_REGEX] = { NULL, NULL };
    if (str_is(&pre, "gpt-2") || str_is(&pre, "default")) {
        exprs[0] = regex_gpt2;
    } else if (str_is(&pre, "llama-bpe") || str_is(&pre, "llama3")) {
        exprs[0] = regex_llama3;
        t->ignore_merges = 1;
        t->add_bos = 1;
    } else if (str_is(&pre, "qwen2")) {
        exprs[0] = regex_qwen2;
    } else if (str_is(&pre, "smollm")) {
        exprs[0] = "\\p{N}";
        exprs[1] = regex_gpt2;
    } else {
        return kb_err_set(err, KB_EFORMAT, "%s: pre-tokenizer '%.*s' (tokenizer.ggml.pre) is not "
                          "one kb knows (gpt-2, llama-bpe, qwen2, smollm)", t->g->path,
                          (int)(pre.len < 64 ? pre.len : 64), pre.p);
    }
    for (t->n_regex = 0; t->n_regex < TOK_MAX_REGEX && exprs[t->n_regex]; t->n_regex++) {
        int code;
        PCRE2_SIZE at;
        t->regex[t->n_regex] = pcre2_compile((PCRE2_SPTR)exprs[t->n_regex], PCRE2_ZERO_TERMINATED,
                                             PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                                             &code, &at, NULL);
        if (!t->regex[t->n_regex])
            return kb_err_set(err, KB_ENOMEM, "%s: cannot compile the pre-tokenizer",
                              t->g->path);
    }
    return 0;
}

static int bpe_load(struct kb_tok *t, struct kb_err *err)
{
    struct kb_gguf_str *merges;
    size_t n;
    int rc = kb_gguf_get_strings(t->g, "tokenizer.ggml.merges", &merges, &n, err);
    if (rc == KB_ENOTFOUND)
        return tok_fail(t, err, "key 'tokenizer.ggml.merges' is missing");
    if (rc)
        return rc;
    t->merges = calloc(n ? n : 1, sizeof *t->merges);
    t->n_merges = n;
    if (!t->merges || hash_init(&t->by_pair, n)) {
        free(merges);
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", t->g->path);
    }
    for (size_t i = 0; i < n; i++) {
        const char *sp = memchr(merges[i].p + 1, ' ', merges[i].len > 1 ? merges[i].len - 1 : 0);
        if (!sp) {
            free(merges);
            return kb_err_set(err, KB_EFORMAT, "%s: merge %zu is not two tokens", t->g->path, i);
        }
        struct tok_merge *m = &t->merges[i];
        m->left = (struct kb_gguf_str){ merges[i].p, (size_t)(sp - merges[i].p) };
        m->right = (struct kb_gguf_str){ sp + 1, merges[i].len - m->left.len - 1 };
        if (find_merge(t, m->left.p, m->left.len, m->right.p, m->right.len) >= 0)
            continue; /* a repeated merge keeps its first rank */
        size_t j = pair_hash(m->left.p, m->left.len, m->right.p, m->right.len) & t->by_pair.mask;
        while (t->by_pair.slots[j])
            j = (j + 1) & t->by_pair.mask;
        t->by_pair.slots[j] = (uint32_t)(i + 1);
    }
    free(merges);
    bpe_byte_chars(t);
    for (int b = 0; b < 256; b++) {
        char c[4];
        t->byte_token[b] = find_text(t, c, kb_utf8_put(t->byte_char[b], c));
    }
    return bpe_pre(t, err);
}

static int spm_load(struct kb_tok *t, struct kb_err *err)
{
    size_t n;
    int rc = kb_gguf_get_f32s(t->g, "tokenizer.ggml.scores", &t->score, &n, err);
    if (rc == KB_ENOTFOUND)
        return tok_fail(t, err, "key 'tokenizer.ggml.scores' is missing");
    if (rc)
        return rc;
    if (n != t->n_vocab)
        return tok_fail(t, err, "tokenizer.ggml.scores and tokenizer.ggml.tokens differ in "
                        "length");
    t->add_bos = 1;
    t->add_space_prefix = 1;
    tok_bool(t->g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_token[b] = find_text(t, name, 6);
    }
    return 0;
}

static int cmp_special(const void *a, const void *b, void *tv)
{
    const struct kb_tok *t = tv;
    size_t la = t->text[*(const int32_t *)a].len, lb = t->text[*(const int32_t *)b].len;
    return la != lb ? (la < lb ? 1 : -1) : *(const int32_t *)a - *(const int32_t *)b;
}

/* Looks every token up by its text, and lists the special ones longest first. */
static int tok_index(struct kb_tok *t, struct kb_err *err)
{
    if (hash_init(&t->by_text, t->n_vocab) ||
        !(t->specials = malloc(t->n_vocab * sizeof *t->specials)))
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", t->g->path);
    for (size_t i = 0; i < t->n_vocab; i++) {
        const struct kb_gguf_str *s = &t->text[i];
        if (find_text(t, s->p, s->len) < 0) { /* a duplicate keeps its first id */
            size_t j = fnv(s->p, s->len, FNV_SEED) & t->by_text.mask;
            while (t->by_text.slots[j])
                j = (j + 1) & t->by_text.mask;
            t->by_text.slots[j] = (uint32_t)(i + 1);
        }
        if ((t->type[i] == TOK_CONTROL || t->type[i] == TOK_USER) && s->len)
            t->specials[t->n_specials++] = (int32_t)i;
    }
    qsort_r(t->specials, t->n_specials, sizeof *t->specials, cmp_special, t);
    return 0;
}

static int tok_vocab(struct kb_tok *t, struct kb_err *err)
{
    int rc = kb_gguf_get_strings(t->g, "tokenizer.ggml.tokens", &t->text, &t->n_vocab, err);
    if (rc == KB_ENOTFOUND)
        return tok_fail(t, err, "key 'tokenizer.ggml.tokens' is missing");
    if (rc)
        return rc;
    if (t->n_vocab == 0 || t->n_vocab > INT32_MAX)
        return tok_fail(t, err, "tokenizer.ggml.tokens is empty");
    size_t n_types = 0;
    rc = kb_gguf_get_i32s(t->g, "tokenizer.ggml.token_type", &t->type, &n_types, err);
    if (rc && rc != KB_ENOTFOUND)
        return rc;
    if (!rc && n_types != t->n_vocab)
        return tok_fail(t, err, "tokenizer.ggml.token_type and tokenizer.ggml.tokens differ in "
                        "length");
    if (rc == KB_ENOTFOUND) {
        if (!(t->type = malloc(t->n_vocab * sizeof *t->type)))
            return kb_err_set(err, KB_ENOMEM, "%s: out of memory", t->g->path);
        for (size_t i = 0; i < t->n_vocab; i++)
            t->type[i] = TOK_NORMAL;
    }
    return tok_index(t, err);
}

int kb_tok_open(struct kb_tok **out, const struct kb_gguf *g, struct kb_err *err)
{
    *out = NULL;
    struct kb_tok *t = calloc(1, sizeof *t);
    if (!t)
        return kb_err_set(err, KB_ENOMEM, "%s: out of memory", g->path);
    t->g = g;
    struct kb_gguf_str model;
    int rc = kb_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (rc == KB_ENOTFOUND)
        rc = tok_fail(t, err, "key 'tokenizer.ggml.model' is missing");
    if (!rc && !str_is(&model, "llama") && !str_is(&model, "gpt2"))
        rc = kb_err_set(err, KB_EFORMAT, "%s: tokenizer '%.*s' (tokenizer.ggml.model) is not one "
                        "kb runs (llama, gpt2)", g->path, (int)(model.len < 64 ? model.len : 64),
                        model.p);
    if (!rc) {
        t->model = str_is(&model, "llama") ? TOK_SPM : TOK_BPE;
        rc = tok_vocab(t, err);
    }
    if (!rc)
        rc = t->model == TOK_SPM ? spm_load(t, err) : bpe_load(t, err);
    if (!rc) {
        tok_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
        t->bos = tok_id(t, "tokenizer.ggml.bos_token_id");
        t->eos = tok_id(t, "tokenizer.ggml.eos_token_id");
        t->eot = tok_id(t, "tokenizer.ggml.eot_token_id");
        t->unk = tok_id(t, "tokenizer.ggml.unknown_token_id");
        if (t->bos < 0)
            t->add_bos = 0;
    }
    if (rc) {
        kb_tok_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void kb_tok_free(struct kb_tok *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_regex; i++)
        pcre2_code_free(t->regex[i]);
    free(t->text);
    free(t->type);
    free(t->score);
    free(t->by_text.slots);
    free(t->merges);
    free(t->by_pair.slots);
    free(t->specials);
    free(t);
}

/* ---- encoding ------------------------------------------------------------------------- */

struct out_ids {
    int32_t **ids;
    size_t *n;
    int failed;
};

static void push(struct out_ids *o, int32_t id)
{
    if (o->failed || id < 0)
        return;
    if ((*o->n & (*o->n - 1)) == 0 || *o->n == 0) { /* grow at powers of two */
        size_t cap = *o->n ? *o->n * 2 : 16;
        int32_t *grown = realloc(*o->ids, cap * sizeof *grown);
        if (!grown) {
            o->failed = 1;
            return;
        }
        *o->ids = grown;
    }
    (*o->ids)[(*o->n)++] = id;
}

/* A symbol of the merge loop: a byte range of the word, linked to its live neighbours. */
struct sym {
    const char *p;
    size_t n;
    int prev, next;
};

/* A candidate merge of symbols left and left's next, ordered by `key` (lower first), then
 * by position. `size` is the merged length, to notice a stale candidate. */
struct bigram {
    double key;
    int left;
    size_t size;
};

struct heap {
    struct bigram *a;
    size_t n, cap;
};

static int heap_less(const struct bigram *x, const struct bigram *y)
{
    return x->key < y->key || (x->key == y->key && x->left < y->left);
}

static int heap_push(struct heap *h, struct bigram b)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct bigram *a = realloc(h->a, cap * sizeof *a);
        if (!a)
            return -1;
        h->a = a;
        h->cap = cap;
    }
    size_t i = h->n++;
    h->a[i] = b;
    while (i && heap_less(&h->a[i], &h->a[(i - 1) / 2])) {
        struct bigram tmp = h->a[i];
        h->a[i] = h->a[(i - 1) / 2];
        h->a[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
    return 0;
}

static struct bigram heap_pop(struct heap *h)
{
    struct bigram top = h->a[0];
    h->a[0] = h->a[--h->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && heap_less(&h->a[l], &h->a[m]))
            m = l;
        if (r < h->n && heap_less(&h->a[r], &h->a[m]))
            m = r;
        if (m == i)
            break;
        struct bigram tmp = h->a[i];
        h->a[i] = h->a[m];
        h->a[m] = tmp;
        i = m;
    }
    return top;
}

/* Queues merging symbol `left` with its next, when the model has that merge. */
static int try_pair(const struct kb_tok *t, struct sym *s, int left, struct heap *h)
{
    if (left < 0 || s[left].next < 0)
        return 0;
    const struct sym *a = &s[left], *b = &s[a->next];
    double key;
    if (t->model == TOK_SPM) {
        if (a->p + a->n != b->p)
            return 0;
        int32_t id = find_text(t, a->p, a->n + b->n);
        if (id < 0)
            return 0;
        key = -(double)t->score[id]; /* the highest score first */
    } else {
        int32_t rank = find_merge(t, a->p, a->n, b->p, b->n);
        if (rank < 0)
            return 0;
        key = rank;
    }
    return heap_push(h, (struct bigram){ key, left, a->n + b->n });
}

/* Splits text into UTF-8 characters and merges them in the model's order. */
static int merge_word(const struct kb_tok *t, const char *text, size_t len, struct sym **out,
                      int *n_out)
{
    struct sym *s = malloc((len ? len : 1) * sizeof *s);
    struct heap h = { 0 };
    if (!s)
        return -1;
    int n = 0;
    for (size_t i = 0; i < len; n++) {
        size_t cl = kb_utf8_seq_len(text + i, len - i);
        cl = cl ? cl : 1;
        s[n] = (struct sym){ text + i, cl, n - 1, i + cl < len ? n + 1 : -1 };
        i += cl;
    }
    int rc = 0;
    for (int i = 0; i + 1 < n && !rc; i++)
        rc = try_pair(t, s, i, &h);
    while (!rc && h.n) {
        struct bigram b = heap_pop(&h);
        struct sym *l = &s[b.left];
        if (!l->n || l->next < 0 || l->n + s[l->next].n != b.size)
            continue; /* one side was merged away since */
        struct sym *r = &s[l->next];
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s[r->next].prev = b.left;
        rc = try_pair(t, s, l->prev, &h) || try_pair(t, s, b.left, &h);
    }
    free(h.a);
    if (rc) {
        free(s);
        return -1;
    }
    *out = s;
    *n_out = n;
    return 0;
}

/* The ids of the merged symbols; a symbol that is no token goes out byte by byte: as
 * SentencePiece's <0xXX> tokens (unk when the model has none), or as BPE's tokens of each
 * mapped character alone. */
static void emit_symbols(const struct kb_tok *t, const struct sym *s, int n_sym,
                         struct out_ids *o)
{
    for (int i = 0; i >= 0 && i < n_sym; i = s[i].next) {
        int32_t id = find_text(t, s[i].p, s[i].n);
        if (id >= 0) {
            push(o, id);
            continue;
        }
        for (size_t j = 0; j < s[i].n;) {
            size_t cl = t->model == TOK_SPM ? 1 : kb_utf8_seq_len(s[i].p + j, s[i].n - j);
            cl = cl ? cl : 1;
            int32_t b = t->model == TOK_SPM ? t->byte_token[(unsigned char)s[i].p[j]]
                                            : find_text(t, s[i].p + j, cl);
            push(o, b >= 0 || t->model != TOK_SPM ? b : t->unk);
            j += cl;
        }
    }
}

/* SentencePiece over one fragment: spaces as U+2581, a space prefix when asked. */
static int spm_fragment(const struct kb_tok *t, const char *text, size_t len, int prefix,
                        struct out_ids *o)
{
    size_t spaces = (size_t)prefix;
    for (size_t i = 0; i < len; i++)
        spaces += text[i] == ' ';
    char *esc = malloc(len + 2 * spaces + 1);
    if (!esc)
        return -1;
    size_t n = 0;
    if (prefix)
        memcpy(esc, "\xE2\x96\x81", 3), n = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(esc + n, "\xE2\x96\x81", 3);
            n += 3;
        } else {
            esc[n++] = text[i];
        }
    }
    struct sym *s;
    int n_sym;
    if (merge_word(t, esc, n, &s, &n_sym)) {
        free(esc);
        return -1;
    }
    emit_symbols(t, s, n_sym, o);
    free(s);
    free(esc);
    return 0;
}

/* BPE over one pre-token: GPT-2's byte characters, then the merges. */
static int bpe_word(const struct kb_tok *t, const char *text, size_t len, struct out_ids *o)
{
    char *mapped = malloc(2 * len + 1);
    if (!mapped)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += kb_utf8_put(t->byte_char[(unsigned char)text[i]], mapped + n);
    int32_t whole = t->ignore_merges ? find_text(t, mapped, n) : -1;
    if (whole >= 0) {
        push(o, whole);
        free(mapped);
        return 0;
    }
    struct sym *s;
    int n_sym;
    if (merge_word(t, mapped, n, &s, &n_sym)) {
        free(mapped);
        return -1;
    }
    emit_symbols(t, s, n_sym, o);
    free(s);
    free(mapped);
    return 0;
}

/* Splits text[0..len) with regex number `r` and the ones after it; pieces between matches
 * are pieces too. */
static int bpe_split(const struct kb_tok *t, int r, const char *text, size_t len,
                     pcre2_match_data *md, struct out_ids *o)
{
    if (r == t->n_regex)
        return bpe_word(t, text, len, o);
    size_t at = 0, done = 0;
    while (at <= len) {
        int rc = pcre2_match(t->regex[r], (PCRE2_SPTR)text, len, at, 0, md, NULL);
        if (rc < 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] == ov[0]) { /* an empty match: step past one character */
            size_t cl = at < len ? kb_utf8_seq_len(text + at, len - at) : 1;
            at += cl ? cl : 1;
            continue;
        }
        if (ov[0] > done && bpe_split(t, r + 1, text + done, ov[0] - done, md, o))
            return -1;
        if (bpe_split(t, r + 1, text + ov[0], ov[1] - ov[0], md, o))
            return -1;
        done = at = ov[1];
    }
    if (done < len && bpe_split(t, r + 1, text + done, len - done, md, o))
        return -1;
    return 0;
}

/* A piece of the text: plain, or one special token. */
struct frag {
    size_t start, len;
    int32_t id;               /* >= 0: a special token */
};

/* Splits the text at the special tokens the flags let through, as llama.cpp does: each
 * special token, longest first, splits whatever plain text is left, so a longer token wins
 * wherever it occurs. */
static int partition(const struct kb_tok *t, const char *text, size_t len, unsigned flags,
                     struct frag **out, size_t *n_out)
{
    size_t n = 1, cap = 16;
    struct frag *f = malloc(cap * sizeof *f);
    if (!f)
        return -1;
    f[0] = (struct frag){ 0, len, -1 };
    for (size_t k = 0; k < t->n_specials; k++) {
        int32_t id = t->specials[k];
        if (t->type[id] == TOK_CONTROL && !(flags & KB_TOK_SPECIAL))
            continue;
        const struct kb_gguf_str *sp = &t->text[id];
        for (size_t i = 0; i < n; i++) {
            if (f[i].id >= 0)
                continue;
            const char *base = text + f[i].start;
            const char *hit = memmem(base, f[i].len, sp->p, sp->len);
            if (!hit)
                continue;
            if (n + 2 > cap) {
                cap *= 2;
                struct frag *g = realloc(f, cap * sizeof *g);
                if (!g) {
                    free(f);
                    return -1;
                }
                f = g;
            }
            size_t before = (size_t)(hit - base), after = f[i].len - before - sp->len;
            struct frag rest = { f[i].start + before + sp->len, after, -1 };
            memmove(&f[i + 3], &f[i + 1], (n - i - 1) * sizeof *f);
            f[i + 1] = (struct frag){ f[i].start + before, sp->len, id };
            f[i + 2] = rest;
            f[i].len = before;
            n += 2;
            /* f[i + 2] is looked at next, for a second occurrence */
        }
    }
    *out = f;
    *n_out = n;
    return 0;
}

int kb_tok_encode(const struct kb_tok *t, const char *text, size_t len, unsigned flags,
                  int32_t **ids, size_t *n, struct kb_err *err)
{
    struct out_ids o = { ids, n, 0 };
    if ((flags & KB_TOK_BOS) && t->add_bos)
        push(&o, t->bos);
    struct frag *f;
    size_t n_frag;
    if (partition(t, text, len, flags, &f, &n_frag))
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    pcre2_match_data *md = t->model == TOK_BPE ? pcre2_match_data_create(4, NULL) : NULL;
    int rc = t->model == TOK_BPE && !md ? -1 : 0, prev_special = 1;
    for (size_t i = 0; i < n_frag && !rc; i++) {
        if (f[i].id >= 0) {
            push(&o, f[i].id);
            prev_special = 1;
            continue;
        }
        if (!f[i].len)
            continue;
        rc = t->model == TOK_SPM
             ? spm_fragment(t, text + f[i].start, f[i].len, t->add_space_prefix && prev_special,
                            &o)
             : bpe_split(t, 0, text + f[i].start, f[i].len, md, &o);
        prev_special = 0;
    }
    pcre2_match_data_free(md);
    free(f);
    if (rc || o.failed)
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    return 0;
}

/* ---- decoding ------------------------------------------------------------------------- */

int kb_tok_decode(const struct kb_tok *t, int32_t id, int special, struct kb_buf *out,
                  struct kb_err *err)
{
    if (id < 0 || (size_t)id >= t->n_vocab)
        return kb_err_set(err, KB_EINVALID, "token id %d is outside the vocabulary (0 to %zu)",
                          id, t->n_vocab - 1);
    const struct kb_gguf_str *s = &t->text[id];
    int type = t->type[id];
    if ((type == TOK_CONTROL || type == TOK_UNKNOWN || type == TOK_UNUSED) && !special)
        return 0;
    int rc = 0;
    if (t->model == TOK_SPM) {
        unsigned byte;
        if (type == TOK_BYTE && s->len == 6 && sscanf(s->p, "<0x%2X>", &byte) == 1) {
            char c = (char)byte;
            rc = kb_buf_append(out, &c, 1);
        } else {
            for (size_t i = 0; i < s->len && !rc; i++) {
                if (i + 2 < s->len && !memcmp(s->p + i, "\xE2\x96\x81", 3)) {
                    rc = kb_buf_append(out, " ", 1);
                    i += 2;
                } else {
                    rc = kb_buf_append(out, s->p + i, 1);
                }
            }
        }
    } else if (type == TOK_CONTROL || type == TOK_USER) {
        rc = kb_buf_append(out, s->p, s->len);
    } else {
        for (size_t i = 0; i < s->len && !rc;) { /* GPT-2's characters back to bytes */
            size_t cl = kb_utf8_seq_len(s->p + i, s->len - i);
            unsigned cp = cl == 1 ? (unsigned char)s->p[i]
                          : cl == 2 ? ((unsigned)(s->p[i] & 0x1F) << 6 | (s->p[i + 1] & 0x3F))
                                    : 0xFFFF;
            int byte = -1;
            for (int b = 0; b < 256 && byte < 0; b++)
                if (t->byte_char[b] == cp)
                    byte = b;
            if (byte >= 0) {
                char c = (char)byte;
                rc = kb_buf_append(out, &c, 1);
            } else {
                rc = kb_buf_append(out, s->p + i, cl ? cl : 1);
            }
            i += cl ? cl : 1;
        }
    }
    return rc ? kb_err_set(err, KB_ENOMEM, "out of memory") : 0;
}

int kb_tok_decode_after(const struct kb_tok *t, int32_t prev, int32_t id, struct kb_buf *out,
                        struct kb_err *err)
{
    size_t before = out->len;
    int rc = kb_tok_decode(t, id, 0, out, err);
    if (!rc && t->model == TOK_SPM && t->add_space_prefix && prev >= 0 && prev == t->bos &&
        out->len > before && out->data[before] == ' ') {
        memmove(out->data + before, out->data + before + 1, out->len - before - 1);
        out->len--;
        out->data[out->len] = '\0';
    }
    return rc;
}

uint32_t kb_tok_n_vocab(const struct kb_tok *t)
{
    return (uint32_t)t->n_vocab;
}

int32_t kb_tok_bos(const struct kb_tok *t)
{
    return t->bos;
}

int32_t kb_tok_eos(const struct kb_tok *t)
{
    return t->eos;
}

int32_t kb_tok_find(const struct kb_tok *t, const char *text, size_t len)
{
    return find_text(t, text, len);
}

int kb_tok_is_end(const struct kb_tok *t, int32_t id)
{
    static const char *const ends[] = { "<|im_end|>", "<|eot_id|>", "<|endoftext|>",
                                        "<end_of_turn>", "<|end|>", "<|end_of_text|>" };
    if (id < 0 || (size_t)id >= t->n_vocab)
        return 0;
    if (id == t->eos || id == t->eot)
        return 1;
    if (t->type[id] != TOK_CONTROL)
        return 0;
    for (size_t i = 0; i < sizeof ends / sizeof *ends; i++)
        if (str_is(&t->text[id], ends[i]))
            return 1;
    return 0;
}
