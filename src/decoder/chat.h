/* chat.h — chat templates rendered natively: a GGUF's tokenizer.chat_template (Jinja) is
 * recognised by family (ChatML for Qwen2/2.5 and SmolLM2, Llama 3, Llama 3.1/3.2 with its
 * dated system block) and the messages laid out as that template lays them out. The result
 * keeps apart the template's own text (whose control tokens are real tokens) and the
 * messages' content (always plain text, whatever it spells). */
#ifndef KB_DECODER_CHAT_H
#define KB_DECODER_CHAT_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

enum kb_chat_format { KB_CHAT_UNKNOWN = 0, KB_CHAT_CHATML, KB_CHAT_LLAMA3, KB_CHAT_LLAMA32 };

/* The format of a template by name ("chatml", "llama3", "llama3.2"); KB_CHAT_UNKNOWN else. */
enum kb_chat_format kb_chat_format_named(const char *name);

/* Recognises a Jinja template's family; for ChatML templates that write a system message of
 * their own when the conversation has none, *default_system (malloc'ed; NULL when none).
 * KB_CHAT_UNKNOWN when it is none kb knows. */
enum kb_chat_format kb_chat_detect(const char *tmpl, size_t len, char **default_system);

struct kb_chat_msg {
    const char *role;         /* "system", "user", "assistant" */
    const char *content;
};

/* A rendered conversation: text, and which byte ranges of it are content (plain text). */
struct kb_chat_part {
    size_t start, len;
    int plain;
};

struct kb_chat_out {
    struct kb_buf text;
    struct kb_chat_part *parts;
    size_t n_parts, cap;
};

struct kb_chat_in {
    enum kb_chat_format format;
    const char *default_system;  /* ChatML: written when the conversation has no system */
    const char *bos_text;        /* Llama 3: the BOS token's text, written first */
    const char *date;            /* Llama 3.2: "26 Jul 2024" form; NULL = today */
    const struct kb_chat_msg *msgs;
    size_t n_msgs;
    int add_generation_prompt;   /* end with the opening of the assistant's turn */
};

int kb_chat_render(struct kb_chat_out *out, const struct kb_chat_in *in, struct kb_err *err);
void kb_chat_out_free(struct kb_chat_out *out);

#endif
