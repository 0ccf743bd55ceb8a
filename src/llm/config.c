/* config.c — LLM settings from the config file, the environment and options; API keys. */
#include "llm/backend.h"
#include "llm/llm.h"
#include "util/path.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES ((size_t)1 << 20)
#define CONFIG_MAX_KEY_BYTES 16384


enum config_kind { CONFIG_STR, CONFIG_COUNT, CONFIG_SECONDS };

struct config_key {
    const char *name;
    const char *env;
    enum config_kind kind;
    size_t offset;
};

#define CONFIG_AT(field) offsetof(struct kb_llm_config, field)
static const struct config_key config_keys[] = {
    { "backend", "KB_LLM_BACKEND", CONFIG_STR, CONFIG_AT(backend) },
    { "url", "KB_LLM_URL", CONFIG_STR, CONFIG_AT(url) },
    { "model", "KB_LLM_MODEL", CONFIG_STR, CONFIG_AT(model) },
    { "template", "KB_LLM_TEMPLATE", CONFIG_STR, CONFIG_AT(template_name) },
    { "key_file", "KB_LLM_KEY_FILE", CONFIG_STR, CONFIG_AT(key_file) },
    { "chat_format", "KB_LLM_CHAT_FORMAT", CONFIG_STR, CONFIG_AT(chat_format) },
    { "context_window", "KB_LLM_CONTEXT_WINDOW", CONFIG_COUNT, CONFIG_AT(context_window) },
    { "max_answer_tokens", "KB_LLM_MAX_TOKENS", CONFIG_COUNT, CONFIG_AT(max_answer_tokens) },
    { "connect_timeout", "KB_LLM_CONNECT_TIMEOUT", CONFIG_SECONDS, CONFIG_AT(connect_timeout_ms) },
    { "first_token_timeout", "KB_LLM_FIRST_TOKEN_TIMEOUT", CONFIG_SECONDS,
      CONFIG_AT(first_token_timeout_ms) },
    { "stall_timeout", "KB_LLM_STALL_TIMEOUT", CONFIG_SECONDS, CONFIG_AT(stall_timeout_ms) },
    { "max_retries", "KB_LLM_MAX_RETRIES", CONFIG_COUNT, CONFIG_AT(max_retries) },
};
#define CONFIG_N_KEYS (sizeof config_keys / sizeof *config_keys)

char *kb_llm_config_dir(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    struct kb_buf dir = KB_BUF_INIT;
    int rc = xdg && *xdg ? kb_buf_printf(&dir, "%s/kb", xdg)
             : home && *home ? kb_buf_printf(&dir, "%s/.config/kb", home) : KB_ENOTFOUND;
    if (rc) {
        kb_buf_free(&dir);
        return NULL;
    }
    return kb_buf_detach(&dir);
}

/* "~/x" -> "$HOME/x". Caller frees. */
static char *config_expand(const char *value)
{
    const char *home = getenv("HOME");
    struct kb_buf out = KB_BUF_INIT;
    int rc = value[0] == '~' && value[1] == '/' && home
                 ? kb_buf_printf(&out, "%s%s", home, value + 1) : kb_buf_puts(&out, value);
    if (rc) {
        kb_buf_free(&out);
        return NULL;
    }
    return kb_buf_detach(&out);
}

static int config_number(const struct config_key *key, const char *value, const char *where,
                         unsigned *out, struct kb_err *err)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    double scale = key->kind == CONFIG_SECONDS ? 1000.0 : 1.0;
    if (!*value || *end || errno || v < 0 || v * scale > 4e9 ||
        (key->kind == CONFIG_COUNT && v != (double)(unsigned)v))
        return kb_err_set(err, KB_ECONFIG, "%s: %s: '%s' is not a %s", where, key->name, value,
                          key->kind == CONFIG_SECONDS ? "number of seconds" : "whole number");
    *out = (unsigned)(v * scale + 0.5);
    return 0;
}

/* Sets one key; `where` names the origin for messages ("config:3", "KB_LLM_URL"). */
static int config_set(struct kb_llm_config *cfg, const struct config_key *key, const char *value,
                      const char *where, struct kb_err *err)
{
    void *field = (char *)cfg + key->offset;
    if (key->kind != CONFIG_STR)
        return config_number(key, value, where, field, err);
    char *copy = !strcmp(key->name, "key_file") ? config_expand(value) : strdup(value);
    if (!copy)
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    free(*(char **)field);
    *(char **)field = copy;
    if (!strcmp(key->name, "backend") && !kb_llm_backend_find(copy))
        return kb_err_set(err, KB_ECONFIG, "%s: unknown backend '%s' (expected %s)", where,
                          copy, kb_llm_backend_list());
    return 0;
}

static const struct config_key *config_find(const char *name)
{
    for (size_t i = 0; i < CONFIG_N_KEYS; i++)
        if (!strcmp(config_keys[i].name, name))
            return &config_keys[i];
    return NULL;
}

static char *config_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && strchr(" \t\r", s[n - 1]))
        s[--n] = '\0';
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

/* One line of the file inside `*section`; applied when that section is `want`. */
static int config_line(struct kb_llm_config *cfg, char *line, const char *where,
                       char *section, size_t section_size, const char *want, struct kb_err *err)
{
    line = config_trim(line);
    if (!*line || *line == '#' || *line == ';')
        return 0;
    if (*line == '[') {
        char *close = strchr(line, ']');
        if (!close || close[1])
            return kb_err_set(err, KB_ECONFIG, "%s: expected [section]", where);
        *close = '\0';
        snprintf(section, section_size, "%s", config_trim(line + 1));
        if (kb_llm_backend_find(section))
            return 0;
        return kb_err_set(err, KB_ECONFIG, "%s: unknown section [%s] (expected a backend name: "
                          "%s)", where, section, kb_llm_backend_list());
    }
    char *eq = strchr(line, '=');
    if (!eq)
        return kb_err_set(err, KB_ECONFIG, "%s: expected 'key = value'", where);
    *eq = '\0';
    char *name = config_trim(line), *value = config_trim(eq + 1);
    if (strstr(name, "api_key") || !strcmp(name, "key"))
        return kb_err_set(err, KB_ECONFIG, "%s: API keys are not read from the config file; "
                          "use key_file (mode 0600) or an environment variable", where);
    const struct config_key *key = config_find(name);
    if (!key)
        return kb_err_set(err, KB_ECONFIG, "%s: unknown key '%s'", where, name);
    if (*section && !strcmp(name, "backend"))
        return kb_err_set(err, KB_ECONFIG, "%s: 'backend' belongs at the top, not in [%s]",
                          where, section);
    return strcmp(section, want) ? 0 : config_set(cfg, key, value, where, err);
}

/* Applies the lines of `text` that lie in section `want` ("" = the top). */
static int config_apply_file(struct kb_llm_config *cfg, const char *text, const char *path,
                             const char *want, struct kb_err *err)
{
    char section[64] = "", where[512];
    unsigned lineno = 0;
    int rc = 0;
    for (const char *p = text; *p && !rc;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, len);
        if (!line)
            return kb_err_set(err, KB_ENOMEM, "out of memory");
        snprintf(where, sizeof where, "%s:%u", path, ++lineno);
        rc = config_line(cfg, line, where, section, sizeof section, want, err);
        free(line);
        p += len + (nl ? 1 : 0);
    }
    return rc;
}

/* Reads the config file into *text (NULL when there is none). */
static int config_read(char **text, char **path, struct kb_err *err)
{
    *text = NULL;
    char *dir = kb_llm_config_dir();
    *path = dir ? kb_path_join(dir, "config") : NULL;
    free(dir);
    if (!*path)
        return 0;
    struct kb_buf buf = { NULL, 0, 0, CONFIG_MAX_BYTES };
    int rc = kb_buf_read_file(&buf, *path);
    if (rc) {
        kb_buf_free(&buf);
        if (rc == KB_ENOMEM)
            return kb_err_set(err, KB_ECONFIG, "%s: larger than 1 MiB", *path);
        return errno == ENOENT || errno == ENOTDIR ? 0
               : kb_err_set(err, KB_ECONFIG, "%s: %s", *path, strerror(errno));
    }
    *text = kb_buf_detach(&buf);
    return 0;
}

static int config_apply_env(struct kb_llm_config *cfg, struct kb_err *err)
{
    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        const char *v = getenv(config_keys[i].env);
        int rc = v && *v ? config_set(cfg, &config_keys[i], v, config_keys[i].env, err) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

static int config_apply_opt(struct kb_llm_config *cfg, const char *name, const char *value,
                            struct kb_err *err)
{
    return value ? config_set(cfg, config_find(name), value, "option", err) : 0;
}

static void config_apply_counts(struct kb_llm_config *cfg, const kb_ask_options *o)
{
    if (o->max_tokens) cfg->max_answer_tokens = o->max_tokens;
    if (o->context_window) cfg->context_window = o->context_window;
    if (o->connect_timeout_ms) cfg->connect_timeout_ms = o->connect_timeout_ms;
    if (o->first_token_timeout_ms) cfg->first_token_timeout_ms = o->first_token_timeout_ms;
    if (o->stall_timeout_ms) cfg->stall_timeout_ms = o->stall_timeout_ms;
}

static int config_finish(struct kb_llm_config *cfg, struct kb_err *err)
{
    if (!cfg->backend || cfg->url)
        return 0;
    const struct kb_llm_backend *be = kb_llm_backend_find(cfg->backend);
    if (be && !(cfg->url = strdup(be->default_url)))
        return kb_err_set(err, KB_ENOMEM, "out of memory");
    return 0;
}

int kb_llm_config_load(struct kb_llm_config *cfg, const kb_ask_options *opts,
                       struct kb_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->context_window = 8192;
    cfg->max_answer_tokens = 1024;
    cfg->connect_timeout_ms = 10000;
    cfg->first_token_timeout_ms = 120000;
    cfg->stall_timeout_ms = 60000;
    cfg->max_retries = 3;
    char *text = NULL, *path = NULL;
    int rc = config_read(&text, &path, err);
    if (!rc && text)
        rc = config_apply_file(cfg, text, path, "", err);
    /* The chosen backend's [section] applies over the top level. */
    const char *env_backend = getenv("KB_LLM_BACKEND");
    const char *chosen = opts->backend ? opts->backend
                         : env_backend && *env_backend ? env_backend : cfg->backend;
    if (!rc && text && chosen)
        rc = config_apply_file(cfg, text, path, chosen, err);
    if (!rc)
        rc = config_apply_env(cfg, err);
    if (!rc)
        rc = config_apply_opt(cfg, "backend", opts->backend, err);
    if (!rc)
        rc = config_apply_opt(cfg, "url", opts->url, err);
    if (!rc)
        rc = config_apply_opt(cfg, "model", opts->model, err);
    if (!rc)
        rc = config_apply_opt(cfg, "template", opts->template_name, err);
    if (!rc && opts->version >= 2)
        rc = config_apply_opt(cfg, "chat_format", opts->chat_format, err);
    if (!rc) {
        config_apply_counts(cfg, opts);
        rc = config_finish(cfg, err);
    }
    free(text);
    free(path);
    if (rc)
        kb_llm_config_free(cfg);
    return rc;
}

void kb_llm_config_free(struct kb_llm_config *cfg)
{
    free(cfg->backend);
    free(cfg->url);
    free(cfg->model);
    free(cfg->template_name);
    free(cfg->key_file);
    free(cfg->chat_format);
    memset(cfg, 0, sizeof *cfg);
}

/* Reads the first line of a key file that only its owner may read. */
static int config_key_file(char **out, const char *path, struct kb_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kb_err_set(err, KB_ECONFIG, "key file %s: %s", path, strerror(errno));
    struct stat st;
    char buf[CONFIG_MAX_KEY_BYTES];
    ssize_t n = -1;
    int rc = 0;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode))
        rc = kb_err_set(err, KB_ECONFIG, "key file %s: not a regular file", path);
    else if (st.st_mode & 077)
        rc = kb_err_set(err, KB_ECONFIG, "key file %s: mode %03o lets others read it; "
                        "run 'chmod 600 %s'", path, (unsigned)(st.st_mode & 0777), path);
    else if ((n = read(fd, buf, sizeof buf - 1)) < 0)
        rc = kb_err_set(err, KB_ECONFIG, "key file %s: %s", path, strerror(errno));
    close(fd);
    if (rc)
        return rc;
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    char *key = config_trim(buf);
    *out = *key ? strdup(key) : NULL;
    rc = *key && !*out ? kb_err_set(err, KB_ENOMEM, "out of memory") : 0;
    explicit_bzero(buf, sizeof buf);
    return rc;
}

int kb_llm_key_load(char **out, const struct kb_llm_config *cfg, struct kb_err *err)
{
    *out = NULL;
    const char *v = getenv("KB_API_KEY");
    const struct kb_llm_backend *be = kb_llm_backend_find(cfg->backend);
    if ((!v || !*v) && be && be->key_env)
        v = getenv(be->key_env);
    if (v && *v) {
        *out = strdup(v);
        return *out ? 0 : kb_err_set(err, KB_ENOMEM, "out of memory");
    }
    return cfg->key_file ? config_key_file(out, cfg->key_file, err) : 0;
}

void kb_llm_key_free(char *key)
{
    if (key)
        explicit_bzero(key, strlen(key));
    free(key);
}
