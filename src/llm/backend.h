/* backend.h — the LLM backends as a table: one row per backend, each defined in its own file
 * (backend_openai.c, backend_ollama.c, backend_anthropic.c). Everything in which backends
 * differ is a field of the row; every other file looks a backend up by name, and messages that
 * list the backends are built from the table. */
#ifndef KB_LLM_BACKEND_H
#define KB_LLM_BACKEND_H

#include <stddef.h>

#include "kb/kb.h"

struct cJSON;
struct kb_llm_config;

/* How a backend's streamed reply is decoded (stream.c). */
enum kb_llm_proto {
    KB_LLM_PROTO_OPENAI = 1,   /* SSE of chat.completion.chunk, ends with data: [DONE] */
    KB_LLM_PROTO_OLLAMA,       /* NDJSON of /api/chat records, ends with "done": true */
    KB_LLM_PROTO_ANTHROPIC     /* SSE of Messages events, ends with message_stop */
};

struct kb_llm_backend {
    const char *name;
    const char *default_url;
    const char *key_env;       /* the backend's own API key variable (after KB_API_KEY), or NULL */
    const char *path;          /* appended to the base URL, unless it ends with this path or
                                  with path_after_version already (then used as it is) */
    const char *path_after_version; /* appended instead when the base URL's path ends in an
                                       API version: "/v1", "/api/v1", "/v1beta/openai", ... */
    const char *accept;        /* an Accept header line, or NULL */
    const char *auth_header;   /* the key's header, a printf format with one %s */
    const char *extra_header;  /* one more header line, or NULL */
    enum kb_llm_proto proto;
    int in_process;            /* no HTTP: the facade runs the model itself (kb/local.c) */
    /* Adds everything after "model" to the request body: the messages, "stream": true, and
     * the backend's own fields. */
    void (*body)(struct cJSON *doc, const struct kb_llm_config *cfg, const kb_message *messages,
                 size_t n_messages);
};

extern const struct kb_llm_backend kb_llm_backend_openai;
extern const struct kb_llm_backend kb_llm_backend_ollama;
extern const struct kb_llm_backend kb_llm_backend_anthropic;
extern const struct kb_llm_backend kb_llm_backend_local;

/* The backend called `name`, or NULL. */
const struct kb_llm_backend *kb_llm_backend_find(const char *name);
/* The backends' names, NULL-terminated, in the order they are documented. */
const char *const *kb_llm_backend_names(void);
/* "openai, ollama or anthropic", for messages. */
const char *kb_llm_backend_list(void);

/* Shared by the rows: messages as [{role, content}], system messages left out when asked. */
struct cJSON *kb_llm_body_messages(const kb_message *messages, size_t n, int skip_system);

#endif
