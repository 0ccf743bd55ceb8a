/* template.c — prompt templates: a [system] and a [user] part with {{placeholders}}, read from
 * the user's prompts folder, a path, or the copies of prompts/ built into the library. */
#include "llm/llm_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/path.h"

/* Generated at build time from prompts/ (src/llm/embed_prompts.cmake). */
struct kb_llm_builtin {
    const char *name;
    const char *text;
};
extern const struct kb_llm_builtin kb_llm_builtin_prompts[];
extern const size_t kb_llm_n_builtin_prompts;

#define TEMPLATE_MAX_BYTES ((size_t)256 << 10)

struct kb_llm_template {
    char *name;
    struct kb_buf system, user;
};

static const char *const template_placeholders[] = { "question", "context", "history" };

const char *kb_llm_template_name(const struct kb_llm_template *tpl)
{
    return tpl->name;
}

void kb_llm_template_free(struct kb_llm_template *tpl)
{
    if (!tpl)
        return;
    free(tpl->name);
    kb_buf_free(&tpl->system);
    kb_buf_free(&tpl->user);
    free(tpl);
}

/* Every {{name}} on the line must be a known placeholder. */
static int template_check_line(const char *line, size_t len, const char *where, unsigned lineno,
                               struct kb_err *err)
{
    const char *end = line + len;
    for (const char *p = line; p + 1 < end; p++) {
        if (p[0] != '{' || p[1] != '{')
            continue;
        const char *close = p + 2;
        while (close + 1 < end && !(close[0] == '}' && close[1] == '}'))
            close++;
        size_t n = (size_t)(close - p - 2);
        int known = 0;
        for (size_t i = 0; i < 3; i++)
            known |= strlen(template_placeholders[i]) == n &&
                     !memcmp(template_placeholders[i], p + 2, n);
        if (!known || close + 1 >= end)
            return kb_err_set(err, KB_EFORMAT, "%s:%u: unknown placeholder '%.*s' (expected "
                              "{{question}}, {{context}} or {{history}})", where, lineno,
                              (int)(close + 1 < end ? n + 4 : (size_t)(end - p)), p);
        p = close + 1;
    }
    return 0;
}

/* Splits the text into its parts: lines before [system] are comments. */
static int template_parse(struct kb_llm_template *tpl, const char *text, const char *where,
                          struct kb_err *err)
{
    struct kb_buf *part = NULL;
    unsigned lineno = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        size_t bare = len - (nl ? 1 : 0);
        lineno++;
        if (bare == 8 && !memcmp(p, "[system]", 8)) {
            part = &tpl->system;
        } else if (bare == 6 && !memcmp(p, "[user]", 6)) {
            part = &tpl->user;
        } else if (part) {
            int rc = template_check_line(p, bare, where, lineno, err);
            if (rc)
                return rc;
            if (kb_buf_append(part, p, len))
                return kb_err_set(err, KB_ENOMEM, "out of memory");
        }
        p += len;
    }
    /* The newline before the next part header belongs to neither part. */
    while (tpl->system.len && tpl->system.data[tpl->system.len - 1] == '\n')
        tpl->system.data[--tpl->system.len] = '\0';
    while (tpl->user.len && tpl->user.data[tpl->user.len - 1] == '\n')
        tpl->user.data[--tpl->user.len] = '\0';
    if (!tpl->user.len || !strstr(tpl->user.data, "{{question}}"))
        return kb_err_set(err, KB_EFORMAT, "%s: needs a [user] part with {{question}}", where);
    return 0;
}

static int template_read_file(char **out, const char *path, struct kb_err *err)
{
    struct kb_buf buf = { NULL, 0, 0, TEMPLATE_MAX_BYTES };
    int rc = kb_buf_read_file(&buf, path);
    if (rc) {
        kb_buf_free(&buf);
        if (rc == KB_ENOMEM)
            return kb_err_set(err, KB_EFORMAT, "%s: larger than 256 KiB", path);
        return errno == ENOENT ? KB_ENOTFOUND
                               : kb_err_set(err, KB_EIO, "%s: %s", path, strerror(errno));
    }
    *out = kb_buf_detach(&buf);
    return 0;
}

/* The user's NAME.prompt, when there is one: 0 with *text set, KB_ENOTFOUND, or an error. */
static int template_find_user(char **text, char **where, const char *name, struct kb_err *err)
{
    if (strchr(name, '/')) {
        *where = strdup(name);
    } else {
        char *dir = kb_llm_config_dir();
        struct kb_buf path = KB_BUF_INIT;
        if (dir && kb_buf_printf(&path, "%s/prompts/%s.prompt", dir, name) == 0)
            *where = kb_buf_detach(&path);
        kb_buf_free(&path);
        free(dir);
    }
    if (!*where)
        return KB_ENOTFOUND;
    return template_read_file(text, *where, err);
}

int kb_llm_template_load(struct kb_llm_template **out, const char *name, struct kb_err *err)
{
    *out = NULL;
    char *text = NULL, *where = NULL;
    struct kb_llm_template *tpl = calloc(1, sizeof *tpl);
    int rc = tpl ? template_find_user(&text, &where, name, err) : KB_ENOMEM;
    if (rc == KB_ENOTFOUND && !strchr(name, '/')) {
        for (size_t i = 0; i < kb_llm_n_builtin_prompts && !text; i++)
            if (!strcmp(kb_llm_builtin_prompts[i].name, name))
                text = strdup(kb_llm_builtin_prompts[i].text);
        free(where);
        where = strdup(name);
        rc = text && where ? 0 : KB_ENOTFOUND;
    }
    if (rc == KB_ENOTFOUND)
        kb_err_set(err, rc, "no prompt template '%s' (built in: default, concise, summarize; "
                   "yours go in ~/.config/kb/prompts/NAME.prompt)", name);
    if (!rc && !(tpl->name = strdup(name)))
        rc = kb_err_set(err, KB_ENOMEM, "out of memory");
    if (!rc)
        rc = template_parse(tpl, text, where, err);
    free(text);
    free(where);
    if (rc) {
        kb_llm_template_free(tpl);
        return rc;
    }
    *out = tpl;
    return 0;
}

int kb_llm_template_fill(struct kb_buf *out, const struct kb_llm_template *tpl, int user,
                         const char *const values[3])
{
    const struct kb_buf *part = user ? &tpl->user : &tpl->system;
    const char *p = part->data ? part->data : "";
    int rc = 0;
    while (!rc && *p) {
        const char *open = strstr(p, "{{");
        if (!open)
            return kb_buf_puts(out, p);
        rc = kb_buf_append(out, p, (size_t)(open - p));
        const char *close = strstr(open, "}}");
        for (size_t i = 0; !rc && i < 3; i++)
            if (strlen(template_placeholders[i]) == (size_t)(close - open - 2) &&
                !memcmp(template_placeholders[i], open + 2, (size_t)(close - open - 2)))
                rc = kb_buf_puts(out, values[i]);
        p = close + 2;
    }
    return rc;
}
