/* ask.c — the facade's answers: retrieval -> prompt (src/llm) -> streamed answer from a model. */
#include "kb/kb_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/backend.h"
#include "llm/llm.h"

#define ASK_DEFAULT_K 8

void kb_prompt_free(kb_prompt_result *prompt)
{
    if (!prompt)
        return;
    kb_llm_prompt_clear(prompt);
    free(prompt);
}

void kb_answer_free(kb_answer *answer)
{
    if (!answer)
        return;
    kb_prompt_free(answer->prompt);
    free((char *)answer->text);
    free(answer);
}

static char *ask_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Retrieves passages for `question` and renders them with the configured template. */
static int ask_render(kb *kb, const char *question, const kb_ask_options *opts,
                      const struct kb_llm_config *cfg, kb_prompt_result *out)
{
    kb_search_options so = KB_SEARCH_OPTIONS_INIT;
    so.k = opts->k ? opts->k : ASK_DEFAULT_K;
    so.mode = opts->mode;
    kb_results *res = NULL;
    struct kb_llm_template *tpl = NULL;
    const kb_result **hits = NULL;
    int rc = kb_llm_template_load(&tpl, cfg->template_name ? cfg->template_name : "default",
                                  &kb->err);
    if (!rc)
        rc = kb_search(kb, question, &so, &res);
    size_t n = kb_results_count(res);
    if (!rc && !(hits = calloc(n ? n : 1, sizeof *hits)))
        rc = kb_fail(kb, KB_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++)
        hits[i] = kb_results_get(res, i);
    struct kb_llm_render in = { tpl, question, hits, n, opts->history, opts->n_history,
                                cfg->context_window, cfg->max_answer_tokens };
    if (!rc)
        rc = kb_llm_prompt_render(out, &in, &kb->err);
    if (!rc) {
        out->template_name = ask_dup(kb_llm_template_name(tpl));
        out->backend = ask_dup(cfg->backend);
        out->url = ask_dup(cfg->backend ? cfg->url : NULL);
        out->model = ask_dup(cfg->model);
    }
    free(hits);
    kb_results_free(res);
    kb_llm_template_free(tpl);
    return rc;
}

/* The caller's options (NULL: defaults) at the current version: callers of an older version
 * get the newer fields' defaults. */
static int ask_options(kb *kb, const kb_ask_options *in, kb_ask_options *out)
{
    static const kb_ask_options defaults = KB_ASK_OPTIONS_INIT;
    static const size_t size_of_version[] = { 0, offsetof(kb_ask_options, chat_format),
                                              offsetof(kb_ask_options, cancel),
                                              sizeof(kb_ask_options) };
    *out = defaults;
    if (!in)
        return 0;
    if (in->version < 1 || in->version > KB_ASK_OPTIONS_VERSION)
        return kb_fail(kb, KB_EINVALID, "kb_ask_options: unknown version %u", in->version);
    memcpy(out, in, size_of_version[in->version]);
    out->version = KB_ASK_OPTIONS_VERSION;
    return 0;
}

/* Checks the boundary, takes the caller's options `in` into *opts, loads the configuration
 * (freed again on failure) and renders the prompt into *out. */
static int ask_prepare(kb *kb, const char *question, const kb_ask_options *in,
                       kb_ask_options *opts, struct kb_llm_config *cfg, kb_prompt_result **out)
{
    int rc = kb_usable(kb, 0);
    if (rc)
        return rc;
    if (!question || !out)
        return kb_fail(kb, KB_EINVALID, "question and out are required");
    if ((rc = ask_options(kb, in, opts)))
        return rc;
    if ((rc = kb_llm_config_load(cfg, opts, &kb->err)))
        return rc;
    kb_prompt_result *p = calloc(1, sizeof *p);
    rc = p ? ask_render(kb, question, opts, cfg, p) : kb_fail(kb, KB_ENOMEM, "out of memory");
    if (rc) {
        kb_prompt_free(p);
        kb_llm_config_free(cfg);
        return rc;
    }
    *out = p;
    return 0;
}

int kb_prompt(kb *kb, const char *question, const kb_ask_options *in, kb_prompt_result **out)
{
    kb_ask_options opts;
    struct kb_llm_config cfg;
    if (out)
        *out = NULL;
    int rc = ask_prepare(kb, question, in, &opts, &cfg, out);
    if (!rc)
        kb_llm_config_free(&cfg);
    return rc;
}

/* Tells -v what went into the prompt and what did not fit. */
static void ask_log_prompt(const kb_ask_options *opts, const kb_prompt_result *p)
{
    char line[1200];
    if (!opts->on_log)
        return;
    for (size_t i = 0; i < p->n_sources; i++) {
        if (!*p->sources[i].note)
            continue;
        snprintf(line, sizeof line, "sent %s:%u-%u (%s)", p->sources[i].path,
                 p->sources[i].line_start, p->sources[i].line_end, p->sources[i].note);
        opts->on_log(1, line, opts->payload);
    }
    for (size_t i = 0; i < p->n_dropped; i++) {
        snprintf(line, sizeof line, "left out %s:%u-%u (%s)", p->dropped[i].path,
                 p->dropped[i].line_start, p->dropped[i].line_end, p->dropped[i].note);
        opts->on_log(1, line, opts->payload);
    }
    snprintf(line, sizeof line, "template %s; %zu passages; prompt ~%zu tokens of a %zu-token "
             "budget", p->template_name, p->n_sources, p->prompt_tokens, p->budget_tokens);
    opts->on_log(1, line, opts->payload);
}

static void ask_usage(kb_answer *a, const struct kb_llm_usage *usage,
                      const struct kb_llm_chat_stats *stats)
{
    a->prompt_tokens = usage->reported ? usage->prompt_tokens : a->prompt->prompt_tokens;
    a->completion_tokens = usage->completion_tokens;
    a->usage_estimated = !usage->reported;
    a->first_token_ms = stats->first_token_ms >= 0 ? stats->first_token_ms : 0;
    a->total_ms = stats->total_ms;
    a->attempts = stats->attempts;
    double gen_s = (a->total_ms - a->first_token_ms) / 1e3;
    a->tokens_per_second = gen_s > 0 && a->completion_tokens
                               ? (double)a->completion_tokens / gen_s : 0;
}

/* Sends the rendered prompt to the configured backend; the answer goes into a->text. */
static int ask_send(kb *kb, const kb_ask_options *opts, const struct kb_llm_config *cfg,
                    kb_answer *a)
{
    if (!cfg->model)
        return kb_fail(kb, KB_ECONFIG, "no model set for backend %s; set 'model' in the "
                       "config file, KB_LLM_MODEL or --model", cfg->backend);
    if (kb_llm_backend_find(cfg->backend)->in_process)
        return kb_local_answer(kb, opts, cfg, a);
    char *key = NULL;
    int rc = kb_llm_key_load(&key, cfg, &kb->err);
    struct kb_buf text = KB_BUF_INIT;
    struct kb_llm_usage usage = { 0, 0, 0 };
    struct kb_llm_chat_stats stats = { -1, 0, 0 };
    struct kb_llm_call call = { cfg, key, a->prompt->messages, a->prompt->n_messages,
                                opts->on_token, opts->on_log, opts->payload, opts->cancel };
    if (!rc) {
        rc = kb_llm_chat(&call, &text, &usage, &stats, &kb->err);
        ask_usage(a, &usage, &stats);
    }
    kb_llm_key_free(key);
    a->text_len = text.len;
    a->text = kb_buf_detach(&text);
    return rc;
}

int kb_ask(kb *kb, const char *question, const kb_ask_options *in, kb_answer **out)
{
    kb_ask_options opts;
    struct kb_llm_config cfg;
    kb_prompt_result *prompt = NULL;
    double t0 = kb_llm_now_ms();
    if (!out) /* ask_prepare checks its own out, not this one */
        return kb_usable(kb, 0) ? KB_EINVALID : kb_fail(kb, KB_EINVALID, "kb_ask: out is NULL");
    *out = NULL;
    int rc = ask_prepare(kb, question, in, &opts, &cfg, &prompt);
    if (rc)
        return rc;
    kb_answer *a = calloc(1, sizeof *a);
    if (!a) {
        kb_prompt_free(prompt);
        kb_llm_config_free(&cfg);
        return kb_fail(kb, KB_ENOMEM, "out of memory");
    }
    a->prompt = prompt;
    a->retrieve_ms = kb_llm_now_ms() - t0;
    ask_log_prompt(&opts, prompt);
    if (cfg.backend) {
        rc = ask_send(kb, &opts, &cfg, a);
    } else {
        a->text = strdup("");
        rc = a->text ? 0 : kb_fail(kb, KB_ENOMEM, "out of memory");
    }
    kb_llm_config_free(&cfg);
    *out = a;
    return rc;
}

const char *const *kb_ask_backends(void)
{
    return kb_llm_backend_names();
}
