/* llm.h — the llm module's interface to the facade: configuration, prompt rendering and one
 * streamed chat request to an LLM backend. Knows nothing of the index or ingest stages. */
#ifndef KB_LLM_LLM_H
#define KB_LLM_LLM_H

#include <stddef.h>
#include <stdint.h>

#include "kb/kb.h"
#include "util/buf.h"
#include "util/err.h"

/* ---- config.c ---- */

/* The resolved settings for one request. Strings are malloc'ed (NULL when unset). */
struct kb_llm_config {
    char *backend;          /* a row of backend.h ("openai", ..., "local"); NULL = none */
    char *url;              /* base URL */
    char *model;
    char *template_name;
    char *key_file;         /* path from the config file, "~/" expanded */
    char *chat_format;      /* local: chatml, llama3, llama3.2; NULL = the model's template */
    unsigned context_window, max_answer_tokens;
    unsigned connect_timeout_ms, first_token_timeout_ms, stall_timeout_ms;
    unsigned max_retries;   /* retries after 429/5xx */
};

/* Resolves the configuration: built-in defaults < config file ($XDG_CONFIG_HOME/kb/config,
 * else ~/.config/kb/config; top level, then the [backend] section of the chosen backend) <
 * environment (KB_LLM_*) < `opts`. A missing config file is fine; a malformed one is
 * KB_ECONFIG naming file:line. An unknown backend name is KB_ECONFIG. */
int kb_llm_config_load(struct kb_llm_config *cfg, const kb_ask_options *opts,
                       struct kb_err *err);
void kb_llm_config_free(struct kb_llm_config *cfg);

/* The API key for cfg->backend: KB_API_KEY, else OPENAI_API_KEY / ANTHROPIC_API_KEY, else the
 * key file (refused with KB_ECONFIG unless its mode is 0600 or stricter). *out is NULL when
 * there is none; the caller wipes and frees it with kb_llm_key_free. */
int kb_llm_key_load(char **out, const struct kb_llm_config *cfg, struct kb_err *err);
void kb_llm_key_free(char *key);

/* The config folder: $XDG_CONFIG_HOME/kb or ~/.config/kb. Caller frees; NULL when unknown. */
char *kb_llm_config_dir(void);

/* ---- template.c, prompt.c ---- */

/* Estimated tokens of `len` bytes: ceil(len / 3). English runs at about 4 bytes per token
 * in BPE vocabularies; 3 errs on the side of fitting. */
size_t kb_llm_estimate_tokens(size_t len);

struct kb_llm_template;

/* Loads template `name`: a path when it contains '/', else NAME.prompt from the user folder
 * (kb_llm_config_dir()/prompts), else the built-in copy of prompts/NAME.prompt.
 * KB_ENOTFOUND when it is nowhere; KB_EFORMAT (file:line) when malformed. */
int kb_llm_template_load(struct kb_llm_template **out, const char *name, struct kb_err *err);
void kb_llm_template_free(struct kb_llm_template *tpl);
const char *kb_llm_template_name(const struct kb_llm_template *tpl);

/* Renders the messages for `question` with the retrieved `hits` (best first) into *out
 * (fields as documented in kb.h; backend/url/model are left NULL). Duplicates and
 * near-duplicates are dropped, neighbouring chunks of one section merged, and passages added
 * best-first while the estimate stays within context_window - max_tokens; `history` is kept
 * newest-first within what is left. */
struct kb_llm_render {
    const struct kb_llm_template *tpl;
    const char *question;
    const kb_result *const *hits;
    size_t n_hits;
    const kb_message *history;
    size_t n_history;
    size_t context_window, max_tokens;
};
int kb_llm_prompt_render(kb_prompt_result *out, const struct kb_llm_render *in,
                         struct kb_err *err);
/* Frees what kb_llm_prompt_render and the facade put into *prompt (not prompt itself). */
void kb_llm_prompt_clear(kb_prompt_result *prompt);

/* Copies `src` with every passage delimiter look-alike ("<passage", "</passage", any case,
 * spaces allowed after '<' and '/') neutralised as "&lt;...". Caller frees. */
char *kb_llm_quote_passage(const char *src);

/* ---- chat.c ---- */

struct kb_llm_usage {
    uint64_t prompt_tokens, completion_tokens;
    int reported;           /* the backend sent usage figures */
};

struct kb_llm_chat_stats {
    double first_token_ms, total_ms;
    int attempts;
};

/* Sends `messages` to the configured backend with streaming on and passes the answer to
 * on_token in complete UTF-8 pieces as it arrives; the whole answer is also appended to
 * `answer`. Retries 429/5xx (Retry-After honoured, bounded) while nothing has been emitted.
 * Errors as kb_ask documents. `key` may be NULL. */
struct kb_llm_call {
    const struct kb_llm_config *cfg;
    const char *key;
    const kb_message *messages;
    size_t n_messages;
    kb_token_cb on_token;
    kb_log_cb on_log;
    void *payload;
    const volatile int *cancel; /* stop (KB_ECANCELED) once *cancel turns non-zero; may be NULL */
};
/* Monotonic milliseconds. */
double kb_llm_now_ms(void);

int kb_llm_chat(const struct kb_llm_call *call, struct kb_buf *answer,
                struct kb_llm_usage *usage, struct kb_llm_chat_stats *stats,
                struct kb_err *err);

#endif
