/* backend_local.c — the in-process decoder: a GGUF model run by kb itself (src/decoder via
 * kb/local.c), no server, no URL, no key. */
#include "llm/backend.h"

const struct kb_llm_backend kb_llm_backend_local = {
    .name = "local",
    .default_url = "",
    .in_process = 1,
};
