/* hub.c — where encoder models live on disk: kb's model cache and the Hugging Face cache. */
#include "encoder/hub.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kb/kb.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/path.h"

/* Retrieval prefixes of model families whose model cards ask for them; written to
 * kb_model.json, which the encoder reads. Patterns are fnmatch() globs in lowercase, matched
 * against the lowercased name (hub names are case-insensitive); the first match wins.
 * E5 (https://huggingface.co/intfloat/e5-small-v2): "query: " / "passage: " (the *-instruct
 * E5 models use instructions instead and get none). BGE v1.5
 * (https://huggingface.co/BAAI/bge-small-en-v1.5): an instruction before short queries, none
 * before passages. Other models: no prefixes. */
static const struct hub_prefixes {
    const char *pattern, *query_prefix, *passage_prefix;
} hub_prefix_table[] = {
    { "intfloat/*-instruct", NULL, NULL },
    { "intfloat/e5-*", "query: ", "passage: " },
    { "intfloat/multilingual-e5-*", "query: ", "passage: " },
    { "baai/bge-*-en-v1.5", "Represent this sentence for searching relevant passages: ", NULL },
};

/* ---- names and folders ---------------------------------------------------------------- */

static int hub_name_part_ok(const char *s, size_t len)
{
    if (len == 0 || len > 96 || s[0] == '.' || s[0] == '-')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok || (i > 0 && (c == '-' || c == '.') && s[i - 1] == c))
            return 0;
    }
    return 1;
}

int kb_hub_check_name(const char *name, struct kb_err *err)
{
    const char *slash = name ? strchr(name, '/') : NULL;
    if (!slash || !hub_name_part_ok(name, (size_t)(slash - name)) ||
        !hub_name_part_ok(slash + 1, strlen(slash + 1)))
        return kb_err_set(err, KB_EINVALID,
                          "'%s' is not a hub model name (expected ORG/NAME, e.g. "
                          "BAAI/bge-small-en-v1.5)", name ? name : "");
    return 0;
}

/* $VAR/suffix when VAR is set and not empty, else $HOME/home_suffix. */
static char *hub_env_dir(const char *var, const char *suffix, const char *home_suffix)
{
    const char *base = getenv(var);
    struct kb_buf b = KB_BUF_INIT;
    int rc;
    if (base && *base) {
        rc = kb_buf_printf(&b, "%s%s", base, suffix);
    } else {
        const char *home = getenv("HOME");
        rc = kb_buf_printf(&b, "%s%s", home && *home ? home : ".", home_suffix);
    }
    if (rc) {
        kb_buf_free(&b);
        return NULL;
    }
    return kb_buf_detach(&b);
}

char *kb_hub_cache_dir(void)
{
    return hub_env_dir("XDG_CACHE_HOME", "/kb/models", "/.cache/kb/models");
}

/* The Hugging Face hub cache, as huggingface_hub finds it. */
static char *hub_hf_cache_dir(void)
{
    const char *hub_cache = getenv("HF_HUB_CACHE");
    if (hub_cache && *hub_cache)
        return strdup(hub_cache);
    const char *hf_home = getenv("HF_HOME");
    if (hf_home && *hf_home)
        return hub_env_dir("HF_HOME", "/hub", "");
    return hub_env_dir("XDG_CACHE_HOME", "/huggingface/hub", "/.cache/huggingface/hub");
}

/* ORG/NAME -> PREFIX + ORG--NAME */
static char *hub_folder_name(const char *prefix, const char *name)
{
    const char *slash = strchr(name, '/');
    struct kb_buf b = KB_BUF_INIT;
    if (!slash || kb_buf_printf(&b, "%s%.*s--%s", prefix, (int)(slash - name), name,
                                slash + 1)) {
        kb_buf_free(&b);
        return NULL;
    }
    return kb_buf_detach(&b);
}

/* PREFIX + ORG--NAME -> ORG/NAME, or NULL when `folder` is not one. */
static char *hub_name_from_folder(const char *prefix, const char *folder)
{
    size_t n = strlen(prefix);
    if (strncmp(folder, prefix, n))
        return NULL;
    char *name = strdup(folder + n), *sep = name ? strstr(name, "--") : NULL;
    if (!sep) {
        free(name);
        return NULL;
    }
    *sep = '/';
    memmove(sep + 1, sep + 2, strlen(sep + 2) + 1);
    if (kb_hub_check_name(name, NULL)) {
        free(name);
        return NULL;
    }
    return name;
}

char *kb_hub_model_dir(const char *cache_dir, const char *name)
{
    char *folder = hub_folder_name("", name);
    char *dir = folder ? kb_path_join(cache_dir, folder) : NULL;
    free(folder);
    return dir;
}

/* ---- what a folder holds ------------------------------------------------------------- */

static int hub_is_file(const char *dir, const char *name)
{
    char *path = kb_path_join(dir, name);
    struct stat st;
    int yes = path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(path);
    return yes;
}

int kb_hub_has_model_files(const char *dir)
{
    return hub_is_file(dir, "config.json") && hub_is_file(dir, "model.safetensors") &&
           (hub_is_file(dir, "vocab.txt") || hub_is_file(dir, "tokenizer.json"));
}

static int hub_kb_complete(const char *dir)
{
    return hub_is_file(dir, KB_HUB_MANIFEST) && kb_hub_has_model_files(dir);
}

/* Total size of the regular files under dir (symlinks followed, two levels deep). */
static uint64_t hub_folder_bytes(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    uint64_t total = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || !strcmp(e->d_name, "..")))
            continue;
        char *path = kb_path_join(dir, e->d_name);
        struct stat st;
        if (path && stat(path, &st) == 0) {
            if (S_ISREG(st.st_mode))
                total += (uint64_t)st.st_size;
            else if (S_ISDIR(st.st_mode) && depth > 0)
                total += hub_folder_bytes(path, depth - 1);
        }
        free(path);
    }
    if (d)
        closedir(d);
    return total;
}

/* ---- the Hugging Face cache ----------------------------------------------------------- */

static int hub_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The first complete snapshot of repo_dir by name, or NULL. */
static char *hub_any_snapshot(const char *repo_dir)
{
    char *snaps = kb_path_join(repo_dir, "snapshots"), *found = NULL;
    DIR *d = snaps ? opendir(snaps) : NULL;
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    while (d && n < 64 && (e = readdir(d)))
        if (e->d_name[0] != '.' && (names[n] = strdup(e->d_name)))
            n++;
    if (d)
        closedir(d);
    qsort(names, n, sizeof *names, hub_cmp_str);
    for (size_t i = 0; i < n; i++) {
        char *dir = found ? NULL : kb_path_join(snaps, names[i]);
        if (dir && kb_hub_has_model_files(dir))
            found = dir;
        else
            free(dir);
        free(names[i]);
    }
    free(snaps);
    return found;
}

/* The snapshot refs/main points at, or NULL. */
static char *hub_main_snapshot(const char *repo_dir)
{
    char *ref = kb_path_join(repo_dir, "refs/main"), *dir = NULL;
    struct kb_buf commit = KB_BUF_INIT;
    commit.max = 128;
    if (ref && !kb_file_read_regular(&commit, ref, NULL) && commit.len) {
        commit.data[strcspn(commit.data, " \r\n")] = '\0';
        struct kb_buf b = KB_BUF_INIT;
        if (commit.data[0] && !strchr(commit.data, '/') && commit.data[0] != '.' &&
            !kb_buf_printf(&b, "%s/snapshots/%s", repo_dir, commit.data))
            dir = kb_buf_detach(&b);
        kb_buf_free(&b);
    }
    kb_buf_free(&commit);
    free(ref);
    return dir;
}

/* The folder to read repo_dir's model from: refs/main's snapshot when complete, else the
 * first complete one, else refs/main's (incomplete) one, else NULL. */
static char *hub_hf_snapshot(const char *repo_dir, int *complete)
{
    char *main_dir = hub_main_snapshot(repo_dir);
    *complete = 1;
    if (main_dir && kb_hub_has_model_files(main_dir))
        return main_dir;
    char *any = hub_any_snapshot(repo_dir);
    if (any) {
        free(main_dir);
        return any;
    }
    *complete = 0;
    struct stat st;
    if (main_dir && stat(main_dir, &st) == 0 && S_ISDIR(st.st_mode))
        return main_dir;
    free(main_dir);
    return NULL;
}

/* ---- resolve ------------------------------------------------------------------------- */

/* Sets *out to the model's folder in kb's cache, then the HF cache, when complete. */
static int hub_find(char **out, const char *name, struct kb_err *err)
{
    char *cache = kb_hub_cache_dir(), *hf = hub_hf_cache_dir();
    char *kb_dir = cache ? kb_hub_model_dir(cache, name) : NULL;
    char *repo = hf ? hub_folder_name("models--", name) : NULL;
    char *hf_repo = repo ? kb_path_join(hf, repo) : NULL;
    int rc = 0, complete = 0;
    *out = NULL;
    if (!kb_dir || !hf_repo) {
        rc = kb_err_set(err, KB_ENOMEM, "out of memory");
        goto done;
    }
    if (hub_kb_complete(kb_dir)) {
        *out = kb_dir;
        kb_dir = NULL;
        goto done;
    }
    *out = hub_hf_snapshot(hf_repo, &complete);
    if (*out && !complete) {
        free(*out);
        *out = NULL;
    }
done:
    free(cache);
    free(hf);
    free(kb_dir);
    free(repo);
    free(hf_repo);
    return rc;
}

int kb_hub_resolve(char **out_dir, const char *name, struct kb_err *err)
{
    *out_dir = NULL;
    int rc = kb_hub_check_name(name, err);
    if (rc == 0)
        rc = hub_find(out_dir, name, err);
    if (rc == 0 && !*out_dir)
        rc = kb_err_set(err, KB_ENOTFOUND,
                        "model %s is not in kb's model cache or the Hugging Face cache; get it "
                        "with 'kb model pull %s'", name, name);
    return rc;
}

/* ---- settings and atomic writes ------------------------------------------------------- */

int kb_hub_write_atomic(const char *path, const char *data, size_t len, struct kb_err *err)
{
    struct kb_buf tmp = KB_BUF_INIT;
    int fd = -1, rc = 0;
    if (kb_buf_printf(&tmp, "%s.tmp", path)) {
        rc = kb_err_set(err, KB_ENOMEM, "out of memory");
        goto done;
    }
    fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || fsync(fd) || close(fd)) {
        rc = kb_err_set(err, KB_EIO, "%s: cannot write: %s", tmp.data, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp.data);
        goto done;
    }
    if (rename(tmp.data, path)) {
        rc = kb_err_set(err, KB_EIO, "%s: cannot rename: %s", path, strerror(errno));
        unlink(tmp.data);
        goto done;
    }
    /* The rename itself must reach the disk before the file counts as written. */
    char *slash = strrchr(tmp.data, '/');
    if (slash) {
        *slash = '\0';
        int dfd = open(tmp.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
done:
    kb_buf_free(&tmp);
    return rc;
}

static const struct hub_prefixes *hub_find_prefixes(const char *name)
{
    char lower[256];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof lower; i++)
        lower[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
    lower[i] = '\0';
    for (i = 0; i < sizeof hub_prefix_table / sizeof *hub_prefix_table; i++)
        if (fnmatch(hub_prefix_table[i].pattern, lower, 0) == 0)
            return &hub_prefix_table[i];
    return NULL;
}

int kb_hub_write_settings(const char *dir, const char *name, struct kb_err *err)
{
    const struct hub_prefixes *p = hub_find_prefixes(name);
    if (!p || (!p->query_prefix && !p->passage_prefix))
        return 0;
    cJSON *doc = cJSON_CreateObject();
    if (p->query_prefix)
        cJSON_AddStringToObject(doc, "query_prefix", p->query_prefix);
    if (p->passage_prefix)
        cJSON_AddStringToObject(doc, "passage_prefix", p->passage_prefix);
    char *text = cJSON_Print(doc), *path = kb_path_join(dir, KB_HUB_SETTINGS);
    int rc = text && path ? kb_hub_write_atomic(path, text, strlen(text), err)
                          : kb_err_set(err, KB_ENOMEM, "out of memory");
    cJSON_Delete(doc);
    cJSON_free(text);
    free(path);
    return rc;
}

/* ---- list ---------------------------------------------------------------------------- */

struct hub_list {
    kb_model_entry *items;
    size_t n, alloc;
};

/* Takes ownership of name and dir. */
static int hub_list_add(struct hub_list *l, char *name, char *dir, const char *source,
                        int complete)
{
    if (l->n == l->alloc) {
        size_t alloc = l->alloc ? 2 * l->alloc : 16;
        kb_model_entry *items = realloc(l->items, alloc * sizeof *items);
        if (!items) {
            free(name);
            free(dir);
            return KB_ENOMEM;
        }
        l->items = items;
        l->alloc = alloc;
    }
    char *abs_dir = kb_path_absolute(dir);
    free(dir);
    if (!abs_dir) {
        free(name);
        return KB_ENOMEM;
    }
    kb_model_entry *e = &l->items[l->n++];
    e->name = name;
    e->dir = abs_dir;
    e->source = source;
    e->bytes = hub_folder_bytes(abs_dir, 2);
    e->complete = complete;
    return 0;
}

static int hub_list_kb(struct hub_list *l)
{
    char *cache = kb_hub_cache_dir();
    DIR *d = cache ? opendir(cache) : NULL;
    struct dirent *e;
    int rc = cache ? 0 : KB_ENOMEM;
    while (rc == 0 && d && (e = readdir(d))) {
        char *name = hub_name_from_folder("", e->d_name);
        char *dir = name ? kb_path_join(cache, e->d_name) : NULL;
        struct stat st;
        if (dir && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
            rc = hub_list_add(l, name, dir, "kb", hub_kb_complete(dir));
        } else {
            free(name);
            free(dir);
        }
    }
    if (d)
        closedir(d);
    free(cache);
    return rc;
}

static int hub_list_hf(struct hub_list *l)
{
    char *hf = hub_hf_cache_dir();
    DIR *d = hf ? opendir(hf) : NULL;
    struct dirent *e;
    int rc = hf ? 0 : KB_ENOMEM, complete;
    while (rc == 0 && d && (e = readdir(d))) {
        char *name = hub_name_from_folder("models--", e->d_name);
        char *repo = name ? kb_path_join(hf, e->d_name) : NULL;
        char *dir = repo ? hub_hf_snapshot(repo, &complete) : NULL;
        if (dir)
            rc = hub_list_add(l, name, dir, "huggingface", complete);
        else
            free(name);
        free(repo);
    }
    if (d)
        closedir(d);
    free(hf);
    return rc;
}

static int hub_cmp_entry(const void *a, const void *b)
{
    const kb_model_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->source, y->source);
}

int kb_hub_list(kb_model_entry **out, size_t *n, struct kb_err *err)
{
    struct hub_list l = { NULL, 0, 0 };
    int rc = hub_list_kb(&l);
    if (rc == 0)
        rc = hub_list_hf(&l);
    if (rc) {
        kb_hub_list_free(l.items, l.n);
        *out = NULL;
        *n = 0;
        return kb_err_set(err, rc, "out of memory listing models");
    }
    if (l.n)
        qsort(l.items, l.n, sizeof *l.items, hub_cmp_entry);
    *out = l.items;
    *n = l.n;
    return 0;
}

void kb_hub_list_free(kb_model_entry *entries, size_t n)
{
    for (size_t i = 0; entries && i < n; i++) {
        free((char *)entries[i].name);
        free((char *)entries[i].dir);
    }
    free(entries);
}
