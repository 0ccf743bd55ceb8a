/* local.c — backend "local": kb_ask's messages answered by a GGUF model run in-process. The
 * model's chat template (or chat_format) lays the messages out; the template's own text is
 * tokenized with its control tokens, the messages' content always as plain text, so nothing a
 * question or a passage spells can open or close a turn. */
#include "kb/kb_int.h"
#include "kb/lm_int.h"

#include <stdlib.h>
#include <string.h>

#include "decoder/chat.h"
#include "llm/llm.h"

struct local_run {
    kb *kb;
    kb_lm *lm;
    const struct kb_llm_config *cfg;
    enum kb_chat_format format;
    char *default_system;
    int32_t *ids;
    size_t n_ids;
};

/* The chat format: chat_format when set, else the model's tokenizer.chat_template. */
static int local_format(struct local_run *r)
{
    const char *path = kb_dec_model_gguf(r->lm->model)->path;
    if (r->cfg->chat_format) {
        r->format = kb_chat_format_named(r->cfg->chat_format);
        if (r->format == KB_CHAT_UNKNOWN)
            return kb_fail(r->kb, KB_ECONFIG, "chat format '%s' is not one kb knows (chatml, "
                           "llama3, llama3.2)", r->cfg->chat_format);
        return 0;
    }
    struct kb_gguf_str tmpl;
    struct kb_err err = { 0 };
    int rc = kb_gguf_get_str(kb_dec_model_gguf(r->lm->model), "tokenizer.chat_template", &tmpl,
                             &err);
    if (rc == KB_ENOTFOUND)
        return kb_fail(r->kb, KB_ECONFIG, "%s has no chat template; set chat_format (chatml, "
                       "llama3, llama3.2; kb ask --chat-format), or use kb generate for raw "
                       "completions", path);
    if (rc)
        return kb_fail(r->kb, rc, "%s", err.msg);
    r->format = kb_chat_detect(tmpl.p, tmpl.len, &r->default_system);
    if (r->format == KB_CHAT_UNKNOWN)
        return kb_fail(r->kb, KB_ECONFIG, "%s: its chat template is none kb recognises; set "
                       "chat_format (chatml, llama3, llama3.2; kb ask --chat-format)", path);
    return 0;
}

/* The prompt's ids: BOS when the model adds one and the template does not write it, then each
 * part of the rendered chat (control tokens read in the template's parts only). */
static int local_tokens(struct local_run *r, const kb_prompt_result *p)
{
    struct kb_tok *tok = r->lm->tok;
    int32_t bos = kb_tok_bos(tok);
    const char *bos_text = bos >= 0 ? r->lm->token_text[bos] : NULL;
    struct kb_chat_msg *msgs = calloc(p->n_messages ? p->n_messages : 1, sizeof *msgs);
    if (!msgs)
        return kb_fail(r->kb, KB_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->n_messages; i++)
        msgs[i] = (struct kb_chat_msg){ p->messages[i].role, p->messages[i].content };
    struct kb_chat_in in = { r->format, r->default_system, bos_text, NULL, msgs, p->n_messages,
                             1 };
    struct kb_chat_out out;
    int rc = kb_chat_render(&out, &in, &r->kb->err);
    free(msgs);
    if (rc)
        return rc;
    int writes_bos = bos_text && out.text.len >= strlen(bos_text) &&
                     !memcmp(out.text.data, bos_text, strlen(bos_text));
    unsigned first = writes_bos ? 0 : KB_TOK_BOS;
    for (size_t i = 0; i < out.n_parts && !rc; i++) {
        unsigned flags = (i == 0 ? first : 0) | (out.parts[i].plain ? 0 : KB_TOK_SPECIAL);
        rc = kb_tok_encode(tok, out.text.data + out.parts[i].start, out.parts[i].len, flags,
                           &r->ids, &r->n_ids, &r->kb->err);
    }
    kb_chat_out_free(&out);
    return rc;
}

/* Each piece of the answer: stops when the caller's cancel flag is up, else goes to its
 * on_token. */
struct local_stream {
    const kb_ask_options *opts;
};

static int local_on_token(const char *text, size_t len, void *payload)
{
    const kb_ask_options *o = ((const struct local_stream *)payload)->opts;
    if (o->version >= 3 && o->cancel && *o->cancel)
        return 1;
    return o->on_token ? o->on_token(text, len, o->payload) : 0;
}

static int local_generate(struct local_run *r, const kb_ask_options *opts, kb_answer *a)
{
    const struct kb_dec_hparams *hp = kb_dec_model_hparams(r->lm->model);
    size_t ctx = r->cfg->context_window;
    if (hp->n_ctx_train && hp->n_ctx_train < ctx)
        ctx = hp->n_ctx_train;
    if (r->n_ids + 1 > ctx)
        return kb_fail(r->kb, KB_EINVALID, "the prompt is %zu tokens, more than the model's "
                       "context of %zu; ask with fewer passages (-k) or a smaller "
                       "--context-window budget", r->n_ids, ctx);
    kb_generate_options g = KB_GENERATE_OPTIONS_INIT;
    g.max_tokens = r->cfg->max_answer_tokens;
    g.context = (unsigned)ctx;
    struct local_stream stream = { opts };
    if (opts->version >= 3 && opts->cancel && *opts->cancel)
        return kb_fail(r->kb, KB_ECANCELED, "the answer was cancelled before it began");
    g.on_token = local_on_token;
    g.payload = &stream;
    kb_generation *gen = NULL;
    int rc = kb_lm_generate(r->lm, r->ids, r->n_ids, &g, &gen);
    if (rc && rc != KB_ECANCELED)
        return kb_fail(r->kb, rc, "%s", kb_lm_errmsg(r->lm));
    a->text = gen->text;
    a->text_len = gen->text_len;
    gen->text = NULL;
    a->prompt_tokens = r->n_ids;        /* counted with the model's tokenizer */
    a->completion_tokens = gen->n_ids;
    a->usage_estimated = 0;
    a->first_token_ms = gen->prompt_ms;
    a->total_ms = gen->prompt_ms + gen->generate_ms;
    a->attempts = 1;
    a->tokens_per_second = gen->generate_ms > 0 ? (double)gen->n_ids * 1e3 / gen->generate_ms
                                                : 0;
    kb_generation_free(gen);
    return rc == KB_ECANCELED ? kb_fail(r->kb, KB_ECANCELED, "the answer was stopped by its "
                                        "reader") : 0;
}

int kb_local_answer(kb *kb, const kb_ask_options *opts, const struct kb_llm_config *cfg,
                    kb_answer *a)
{
    struct local_run r = { kb, NULL, cfg, KB_CHAT_UNKNOWN, NULL, NULL, 0 };
    int rc = kb_lm_open(&r.lm, cfg->model);
    if (rc)
        rc = kb_fail(kb, rc, "%s", r.lm ? kb_lm_errmsg(r.lm) : kb_strerror(rc));
    else if (!r.lm->model)
        rc = kb_fail(kb, KB_ECONFIG, "%s has a vocabulary and no weights", cfg->model);
    if (!rc)
        rc = local_format(&r);
    if (!rc)
        rc = local_tokens(&r, a->prompt);
    if (!rc)
        rc = local_generate(&r, opts, a);
    if (!a->text)
        a->text = strdup("");
    free(r.ids);
    free(r.default_system);
    kb_lm_close(r.lm);
    return rc;
}
