/* walk.c — recursive, sorted, loop-safe folder walks for ingestion. */
#include "ingest/walk.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "util/path.h"
#include "util/utf8.h"

#define WALK_DEFAULT_MAX_DEPTH 64

/* The folders on the current descent path, for symlink-loop detection. */
struct walk_ancestor {
    dev_t dev;
    ino_t ino;
    const struct walk_ancestor *parent;
};

struct walk {
    const struct kb_walk_options *opts;
    kb_walk_cb cb;
    void *payload;
    struct kb_err *err;
};

int kb_walk_glob_match(const char *glob, const char *rel)
{
    if (strchr(glob, '/'))
        return fnmatch(glob, rel, 0) == 0;
    const char *base = strrchr(rel, '/');
    return fnmatch(glob, base ? base + 1 : rel, 0) == 0;
}

static int walk_any_match(const char *const *globs, size_t n, const char *rel)
{
    for (size_t i = 0; i < n; i++)
        if (kb_walk_glob_match(globs[i], rel))
            return 1;
    return 0;
}

static int walk_skip(struct walk *w, const char *path, const char *rel, const char *reason)
{
    return w->cb(KB_WALK_SKIP, path, rel, NULL, reason, w->payload);
}

static int walk_file(struct walk *w, const char *path, const char *rel, const struct stat *st)
{
    if (w->opts->n_include && *rel && !walk_any_match(w->opts->include, w->opts->n_include, rel))
        return 0;
    return w->cb(KB_WALK_FILE, path, rel, st, NULL, w->payload);
}

static int walk_entry(struct walk *w, const char *path, const char *rel, unsigned depth,
                      const struct walk_ancestor *parent);

static int walk_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a folder's names (sorted, without . and ..) into *out; caller frees each and out. */
static int walk_read_names(const char *path, char ***out, size_t *n_out)
{
    DIR *dir = opendir(path);
    if (!dir)
        return -errno;
    char **names = NULL;
    size_t n = 0, alloc = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == alloc) {
            size_t na = alloc ? alloc * 2 : 32;
            char **nn = realloc(names, na * sizeof *nn);
            if (!nn) { rc = -ENOMEM; break; }
            names = nn;
            alloc = na;
        }
        if (!(names[n] = strdup(de->d_name))) { rc = -ENOMEM; break; }
        n++;
    }
    closedir(dir);
    if (rc) {
        while (n)
            free(names[--n]);
        free(names);
        return rc;
    }
    if (n)
        qsort(names, n, sizeof *names, walk_name_cmp);
    *out = names;
    *n_out = n;
    return 0;
}

static int walk_dir(struct walk *w, const char *path, const char *rel, unsigned depth,
                    const struct stat *st, const struct walk_ancestor *parent)
{
    unsigned max_depth = w->opts->max_depth ? w->opts->max_depth : WALK_DEFAULT_MAX_DEPTH;
    if (depth > max_depth)
        return walk_skip(w, path, rel, "folder nested too deep");
    for (const struct walk_ancestor *a = parent; a; a = a->parent)
        if (a->dev == st->st_dev && a->ino == st->st_ino)
            return walk_skip(w, path, rel, "symbolic link loop");
    struct walk_ancestor self = { st->st_dev, st->st_ino, parent };

    char **names = NULL;
    size_t n = 0;
    int rc = walk_read_names(path, &names, &n);
    if (rc == -ENOMEM)
        return kb_err_set(w->err, KB_ENOMEM, "%s: out of memory listing folder", path);
    if (rc)
        return walk_skip(w, path, rel, strerror(-rc));
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *child = kb_path_join(path, names[i]);
        char *child_rel = *rel ? kb_path_join(rel, names[i]) : strdup(names[i]);
        if (!child || !child_rel)
            rc = kb_err_set(w->err, KB_ENOMEM, "%s: out of memory", path);
        else if (names[i][0] == '.' && !w->opts->include_hidden)
            ; /* hidden: not walked */
        else if (walk_any_match(w->opts->exclude, w->opts->n_exclude, child_rel))
            ; /* excluded */
        else if (!kb_utf8_valid(names[i], strlen(names[i]), &(size_t){ 0 }))
            rc = walk_skip(w, child, child_rel, "file name is not valid UTF-8");
        else
            rc = walk_entry(w, child, child_rel, depth + 1, &self);
        free(child);
        free(child_rel);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int walk_entry(struct walk *w, const char *path, const char *rel, unsigned depth,
                      const struct walk_ancestor *parent)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return walk_skip(w, path, rel, strerror(errno));
    if (S_ISLNK(st.st_mode)) {
        if (!w->opts->follow_symlinks)
            return 0; /* symlinks are not followed by default: silently not part of the walk */
        if (stat(path, &st) != 0)
            return walk_skip(w, path, rel, errno == ELOOP ? "symbolic link loop" : "broken symbolic link");
    }
    if (S_ISDIR(st.st_mode))
        return walk_dir(w, path, rel, depth, &st, parent);
    if (S_ISREG(st.st_mode))
        return walk_file(w, path, rel, &st);
    return walk_skip(w, path, rel, S_ISFIFO(st.st_mode) ? "a FIFO, not a regular file"
                                   : S_ISSOCK(st.st_mode) ? "a socket, not a regular file"
                                   : "a device, not a regular file");
}

int kb_walk(const char *root, const struct kb_walk_options *opts, kb_walk_cb cb, void *payload,
            struct kb_err *err)
{
    struct stat st;
    if (stat(root, &st) != 0)
        return kb_err_set(err, errno == ENOENT ? KB_ENOTFOUND : KB_EIO, "%s: %s", root,
                          strerror(errno));
    struct walk w = { opts, cb, payload, err };
    if (S_ISDIR(st.st_mode))
        return walk_dir(&w, root, "", 0, &st, NULL);
    if (S_ISREG(st.st_mode))
        return cb(KB_WALK_FILE, root, "", &st, NULL, payload);
    return walk_skip(&w, root, "", "not a regular file or folder");
}
