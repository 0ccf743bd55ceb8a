/* backend_openai.c — OpenAI's Chat Completions API, and every server that speaks it
 * (llama.cpp's server, vLLM, LM Studio, ...): SSE chunks, a Bearer key. */
#include "llm/backend.h"
#include "llm/llm.h"

#include <cjson/cJSON.h>

static void openai_body(cJSON *doc, const struct kb_llm_config *cfg, const kb_message *messages,
                        size_t n_messages)
{
    cJSON_AddItemToObject(doc, "messages", kb_llm_body_messages(messages, n_messages, 0));
    cJSON_AddBoolToObject(doc, "stream", 1);
    cJSON_AddNumberToObject(doc, "max_tokens", cfg->max_answer_tokens);
    cJSON *so = cJSON_AddObjectToObject(doc, "stream_options");
    cJSON_AddBoolToObject(so, "include_usage", 1);
}

const struct kb_llm_backend kb_llm_backend_openai = {
    .name = "openai",
    .default_url = "https://api.openai.com/v1",
    .key_env = "OPENAI_API_KEY",
    .path = "/v1/chat/completions",
    .path_after_version = "/chat/completions",
    .accept = "Accept: text/event-stream",
    .auth_header = "Authorization: Bearer %s",
    .proto = KB_LLM_PROTO_OPENAI,
    .body = openai_body,
};
