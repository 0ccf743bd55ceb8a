/* lm.c — the public decoder-model handle (kb_lm): open a GGUF file, tokenize, generate. */
#include "kb/kb.h"
#include "kb/kb_int.h"
#include "kb/lm_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decoder/model.h"
#include "decoder/sample.h"
#include "decoder/tokenizer.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/utf8.h"

#define LM_DEFAULT_MAX_TOKENS 256
#define LM_MAX_CONTEXT (1u << 20)

static int lm_fail(kb_lm *lm, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int lm_fail(kb_lm *lm, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lm->err.msg, sizeof lm->err.msg, fmt, ap);
    va_end(ap);
    lm->err.code = code;
    return code;
}

static int lm_vocab_text(kb_lm *lm)
{
    const struct kb_gguf *g = lm->model ? kb_dec_model_gguf(lm->model) : lm->vocab_only;
    struct kb_gguf_str *s;
    size_t n;
    int rc = kb_gguf_get_strings(g, "tokenizer.ggml.tokens", &s, &n, &lm->err);
    if (rc)
        return rc;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += s[i].len + 1;
    lm->token_text = malloc(n * sizeof *lm->token_text + bytes);
    if (!lm->token_text) {
        free(s);
        return lm_fail(lm, KB_ENOMEM, "out of memory");
    }
    char *p = (char *)(lm->token_text + n);
    for (size_t i = 0; i < n; i++) {
        lm->token_text[i] = p;
        memcpy(p, s[i].p, s[i].len);
        p[s[i].len] = '\0';
        p += s[i].len + 1;
    }
    free(s);
    return 0;
}

int kb_lm_open(kb_lm **out, const char *path)
{
    if (!out)
        return KB_EINVALID;
    *out = NULL;
    kb_lm *lm = calloc(1, sizeof *lm);
    if (!lm)
        return KB_ENOMEM;
    if (kb_handle_add(lm, KB_HANDLE_LM)) {
        free(lm);
        return KB_ENOMEM;
    }
    *out = lm;
    if (!path || !*path)
        return lm_fail(lm, KB_EINVALID, "no model file given");
    struct kb_gguf *g;
    int rc = kb_gguf_open(&g, path, &lm->err);
    if (rc)
        return rc;
    if (g->n_tensors == 0)
        lm->vocab_only = g;
    else if ((rc = kb_dec_model_load(&lm->model, g, &lm->err)))
        return rc;
    rc = kb_tok_open(&lm->tok, lm->model ? kb_dec_model_gguf(lm->model) : g, &lm->err);
    if (!rc && lm->model && kb_tok_n_vocab(lm->tok) != kb_dec_model_hparams(lm->model)->n_vocab)
        rc = lm_fail(lm, KB_EFORMAT, "%s: the tokenizer has %u tokens, the model %u", path,
                     kb_tok_n_vocab(lm->tok), kb_dec_model_hparams(lm->model)->n_vocab);
    if (!rc)
        rc = lm_vocab_text(lm);
    if (!rc)
        lm->n_vocab = kb_tok_n_vocab(lm->tok);
    return rc;
}

void kb_lm_close(kb_lm *lm)
{
    if (!kb_handle_remove(lm, KB_HANDLE_LM))
        return; /* NULL, already closed, or not a handle kb_lm_open gave */
    kb_tok_free(lm->tok);
    kb_dec_model_close(lm->model);
    kb_gguf_close(lm->vocab_only);
    free(lm->token_text);
    free(lm);
}

const char *kb_lm_errmsg(const kb_lm *lm)
{
    if (!lm)
        return "no model handle";
    if (!kb_handle_live(lm, KB_HANDLE_LM))
        return "not an open model handle (closed already?)";
    return lm->err.msg;
}

/* Checks a handle at the API boundary. */
static int lm_usable(kb_lm *lm)
{
    if (!lm || !kb_handle_live(lm, KB_HANDLE_LM))
        return KB_EINVALID; /* nowhere to keep a message */
    if (!lm->n_vocab)
        return lm_fail(lm, KB_EINVALID, "the model did not open");
    return 0;
}

int kb_lm_tokenize(kb_lm *lm, const char *text, unsigned flags, int32_t **ids, size_t *n_ids)
{
    int rc = lm_usable(lm);
    if (rc)
        return rc;
    if (!text || !ids || !n_ids)
        return lm_fail(lm, KB_EINVALID, "kb_lm_tokenize: text, ids and n_ids are required");
    *ids = NULL;
    *n_ids = 0;
    size_t bad, len = strlen(text);
    if (!kb_utf8_valid(text, len, &bad))
        return lm_fail(lm, KB_EFORMAT, "the text is not UTF-8 (byte %zu)", bad);
    unsigned tf = (flags & KB_TOKENIZE_NO_SPECIAL ? 0 : KB_TOK_BOS) |
                  (flags & KB_TOKENIZE_PARSE_SPECIAL ? KB_TOK_SPECIAL : 0);
    rc = kb_tok_encode(lm->tok, text, len, tf, ids, n_ids, &lm->err);
    if (rc) {
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
    }
    return rc;
}

const char *kb_lm_token(const kb_lm *lm, int32_t id)
{
    if (!lm || !kb_handle_live(lm, KB_HANDLE_LM) || id < 0 || (size_t)id >= lm->n_vocab)
        return NULL;
    return lm->token_text[id];
}

size_t kb_lm_n_vocab(const kb_lm *lm)
{
    return lm && kb_handle_live(lm, KB_HANDLE_LM) ? lm->n_vocab : 0;
}

/* ---- generation ------------------------------------------------------------------------ */

struct lm_run {
    kb_lm *lm;
    const kb_generate_options *opts;
    struct kb_dec_state *state;
    struct kb_sampler *sampler;
    int32_t *recent;          /* prompt then generated ids */
    size_t n_recent;
    struct kb_buf text;
    size_t emitted;           /* bytes of text passed to on_token */
    float *scratch;
    kb_generation *g;
};

static double lm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Passes on the text that ends on a character boundary (all of it when `last`). */
static int lm_emit(struct lm_run *r, int last)
{
    const char *from = r->text.data + r->emitted;
    size_t n = r->text.len - r->emitted;
    size_t ok = last ? n : kb_utf8_complete(from, n);
    if (!ok || !r->opts->on_token)
        return 0;
    r->emitted += ok;
    return r->opts->on_token(from, ok, r->opts->payload) ? KB_ECANCELED : 0;
}

static int lm_step(struct lm_run *r, unsigned max)
{
    kb_lm *lm = r->lm;
    const float *logits = kb_dec_state_logits(r->state);
    memcpy(r->scratch, logits, lm->n_vocab * sizeof *r->scratch);
    int32_t next = kb_sampler_next(r->sampler, r->scratch, r->recent, r->n_recent);
    int32_t bos = kb_tok_bos(lm->tok), prev = r->recent[r->n_recent - 1];
    if (!r->opts->ignore_end && (kb_tok_is_end(lm->tok, next) || next == bos)) {
        r->g->stopped_at_end = 1;
        return 1;
    }
    r->recent[r->n_recent++] = next;
    r->g->ids[r->g->n_ids++] = next;
    int rc = kb_tok_decode_after(lm->tok, prev, next, &r->text, &lm->err);
    if (!rc)
        rc = lm_emit(r, 0);
    if (rc == KB_ECANCELED)
        return lm_fail(lm, KB_ECANCELED, "generation stopped by its reader");
    if (rc || r->g->n_ids == max)
        return rc ? rc : 1;
    return kb_dec_eval(r->state, &next, 1, &lm->err);
}

static int lm_generate_run(struct lm_run *r, const int32_t *prompt, size_t n_prompt,
                           unsigned max, unsigned ctx)
{
    kb_lm *lm = r->lm;
    const kb_generate_options *o = r->opts;
    struct kb_sample_params sp = { o->temperature, o->top_k, o->top_p, o->min_p,
                                   o->repeat_penalty, 64, o->seed };
    kb_generation *g = r->g;
    g->n_vocab = lm->n_vocab;
    g->ids = malloc((max ? max : 1) * sizeof *g->ids);
    g->last_logits = malloc(lm->n_vocab * sizeof *g->last_logits);
    r->recent = malloc((n_prompt + max) * sizeof *r->recent);
    r->scratch = malloc(lm->n_vocab * sizeof *r->scratch);
    r->sampler = kb_sampler_new(&sp, lm->n_vocab);
    if (!g->ids || !g->last_logits || !r->recent || !r->scratch || !r->sampler)
        return lm_fail(lm, KB_ENOMEM, "out of memory");
    int rc = kb_dec_state_new(&r->state, lm->model, ctx, 0, &lm->err);
    if (rc)
        return rc;
    double t0 = lm_now_ms();
    if ((rc = kb_dec_eval(r->state, prompt, n_prompt, &lm->err)))
        return rc;
    g->prompt_ms = lm_now_ms() - t0;
    memcpy(g->last_logits, kb_dec_state_logits(r->state), lm->n_vocab * sizeof(float));
    memcpy(r->recent, prompt, n_prompt * sizeof *prompt);
    r->n_recent = n_prompt;
    t0 = lm_now_ms();
    while (max && !(rc = lm_step(r, max)))
        ;
    g->generate_ms = lm_now_ms() - t0;
    if (rc == 1)
        rc = lm_emit(r, 1) ? lm_fail(lm, KB_ECANCELED, "generation stopped by its reader") : 0;
    return rc;
}

int kb_lm_generate(kb_lm *lm, const int32_t *prompt, size_t n_prompt,
                   const kb_generate_options *opts, kb_generation **out)
{
    static const kb_generate_options defaults = KB_GENERATE_OPTIONS_INIT;
    int rc = lm_usable(lm);
    if (rc)
        return rc;
    if (!lm->model)
        return lm_fail(lm, KB_EINVALID, "%s has a vocabulary and no weights: it tokenizes but "
                       "cannot generate", lm->vocab_only->path);
    if (!prompt || !n_prompt || !out)
        return lm_fail(lm, KB_EINVALID, "kb_lm_generate: a prompt of at least one id and out "
                       "are required");
    *out = NULL;
    opts = opts ? opts : &defaults;
    if (opts->version != KB_GENERATE_OPTIONS_VERSION)
        return lm_fail(lm, KB_EINVALID, "kb_generate_options: unknown version %u",
                       opts->version);
    if (!(opts->temperature >= 0) || !(opts->top_p >= 0 && opts->top_p <= 1) ||
        !(opts->min_p >= 0 && opts->min_p <= 1) || !(opts->repeat_penalty >= 0))
        return lm_fail(lm, KB_EINVALID, "temperature and repeat_penalty must be 0 or more, "
                       "top_p and min_p from 0 to 1");
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || (size_t)prompt[i] >= lm->n_vocab)
            return lm_fail(lm, KB_EINVALID, "token id %d is outside the vocabulary (0 to %zu)",
                           prompt[i], lm->n_vocab - 1);
    unsigned max = opts->max_tokens ? opts->max_tokens : LM_DEFAULT_MAX_TOKENS;
    size_t ctx = opts->context ? opts->context : n_prompt + max;
    if (ctx > LM_MAX_CONTEXT || n_prompt >= ctx)
        return lm_fail(lm, KB_EINVALID, "a prompt of %zu tokens does not fit a context of %zu "
                       "(at most %u)", n_prompt, ctx, LM_MAX_CONTEXT);
    if (n_prompt + max > ctx)
        max = (unsigned)(ctx - n_prompt);
    kb_generation *g = calloc(1, sizeof *g);
    if (!g)
        return lm_fail(lm, KB_ENOMEM, "out of memory");
    struct lm_run r = { lm, opts, NULL, NULL, NULL, 0, KB_BUF_INIT, 0, NULL, g };
    rc = lm_generate_run(&r, prompt, n_prompt, max, (unsigned)ctx);
    kb_dec_state_free(r.state);
    kb_sampler_free(r.sampler);
    free(r.recent);
    free(r.scratch);
    if (!rc || rc == KB_ECANCELED) {
        g->text_len = r.text.len;
        g->text = r.text.data ? kb_buf_detach(&r.text) : calloc(1, 1);
        if (!g->text)
            rc = lm_fail(lm, KB_ENOMEM, "out of memory");
    }
    kb_buf_free(&r.text);
    if (rc && rc != KB_ECANCELED) {
        kb_generation_free(g);
        return rc;
    }
    *out = g;
    return rc;
}

void kb_generation_free(kb_generation *g)
{
    if (!g)
        return;
    free(g->ids);
    free(g->text);
    free(g->last_logits);
    free(g);
}
