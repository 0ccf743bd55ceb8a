/* backend_anthropic.c — Anthropic's Messages API: system messages in a top-level "system",
 * max_tokens required, SSE events, the key in x-api-key. */
#include "llm/backend.h"
#include "llm/llm.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* The system messages joined. Caller frees. */
static char *anthropic_system(const kb_message *messages, size_t n)
{
    struct kb_buf sys = KB_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(messages[i].role, "system"))
            continue;
        if ((sys.len && kb_buf_puts(&sys, "\n\n")) || kb_buf_puts(&sys, messages[i].content)) {
            kb_buf_free(&sys);
            return NULL;
        }
    }
    return kb_buf_detach(&sys);
}

static void anthropic_body(cJSON *doc, const struct kb_llm_config *cfg,
                           const kb_message *messages, size_t n_messages)
{
    char *sys = anthropic_system(messages, n_messages);
    if (sys && *sys)
        cJSON_AddStringToObject(doc, "system", sys);
    free(sys);
    cJSON_AddNumberToObject(doc, "max_tokens", cfg->max_answer_tokens);
    cJSON_AddItemToObject(doc, "messages", kb_llm_body_messages(messages, n_messages, 1));
    cJSON_AddBoolToObject(doc, "stream", 1);
}

const struct kb_llm_backend kb_llm_backend_anthropic = {
    .name = "anthropic",
    .default_url = "https://api.anthropic.com",
    .key_env = "ANTHROPIC_API_KEY",
    .path = "/v1/messages",
    .path_after_version = "/messages",
    .auth_header = "x-api-key: %s",
    .extra_header = "anthropic-version: 2023-06-01",
    .proto = KB_LLM_PROTO_ANTHROPIC,
    .body = anthropic_body,
};
