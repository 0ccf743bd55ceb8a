/* backend.c — the table of LLM backends and the lookups every other file uses. */
#include "llm/backend.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static const struct kb_llm_backend *const backends[] = {
    &kb_llm_backend_openai, &kb_llm_backend_ollama, &kb_llm_backend_anthropic,
    &kb_llm_backend_local,
};
#define N_BACKENDS (sizeof backends / sizeof *backends)

const struct kb_llm_backend *kb_llm_backend_find(const char *name)
{
    for (size_t i = 0; name && i < N_BACKENDS; i++)
        if (!strcmp(backends[i]->name, name))
            return backends[i];
    return NULL;
}

const char *const *kb_llm_backend_names(void)
{
    static const char *names[N_BACKENDS + 1];
    for (size_t i = 0; i < N_BACKENDS; i++) /* the same values every time: no race matters */
        names[i] = backends[i]->name;
    return names;
}

const char *kb_llm_backend_list(void)
{
    static char list[128];
    if (!list[0]) {
        size_t used = 0;
        for (size_t i = 0; i < N_BACKENDS && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                                     i == 0 ? "" : i + 1 == N_BACKENDS ? " or " : ", ",
                                     backends[i]->name);
    }
    return list;
}

cJSON *kb_llm_body_messages(const kb_message *messages, size_t n, int skip_system)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        if (skip_system && !strcmp(messages[i].role, "system"))
            continue;
        cJSON *m = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, m);
        cJSON_AddStringToObject(m, "role", messages[i].role);
        cJSON_AddStringToObject(m, "content", messages[i].content);
    }
    return arr;
}
