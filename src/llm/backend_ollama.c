/* backend_ollama.c — Ollama's /api/chat: NDJSON records; the context window asked for. */
#include "llm/backend.h"
#include "llm/llm.h"

#include <cjson/cJSON.h>

static void ollama_body(cJSON *doc, const struct kb_llm_config *cfg, const kb_message *messages,
                        size_t n_messages)
{
    cJSON_AddItemToObject(doc, "messages", kb_llm_body_messages(messages, n_messages, 0));
    cJSON_AddBoolToObject(doc, "stream", 1);
    /* Ollama's own default context is small; ask for the window kb budgets for. */
    cJSON *o = cJSON_AddObjectToObject(doc, "options");
    cJSON_AddNumberToObject(o, "num_ctx", cfg->context_window);
    cJSON_AddNumberToObject(o, "num_predict", cfg->max_answer_tokens);
}

const struct kb_llm_backend kb_llm_backend_ollama = {
    .name = "ollama",
    .default_url = "http://localhost:11434",
    .path = "/api/chat",
    .path_after_version = "/api/chat",
    .accept = "Accept: application/x-ndjson",
    .auth_header = "Authorization: Bearer %s",
    .proto = KB_LLM_PROTO_OLLAMA,
    .body = ollama_body,
};
