/* path.c — joining and lexical normalisation of file paths. */
#include "util/path.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *kb_path_join(const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    char *out = malloc(dl + nl + 2);
    if (!out)
        return NULL;
    memcpy(out, dir, dl);
    size_t n = dl;
    if (!(dl == 1 && dir[0] == '/'))
        out[n++] = '/';
    memcpy(out + n, name, nl + 1);
    return out;
}

/* Folds "//", "/./" and "/x/../" in place in an absolute path. */
static void path_normalise(char *path)
{
    char *out = path;          /* write position; path[0] is '/' */
    const char *in = path;
    while (*in) {
        while (*in == '/')
            in++;
        if (!*in)
            break;
        const char *end = strchr(in, '/');
        size_t len = end ? (size_t)(end - in) : strlen(in);
        if (len == 1 && in[0] == '.') {
            /* skip */
        } else if (len == 2 && in[0] == '.' && in[1] == '.') {
            while (out > path && *--out != '/')
                ;
        } else {
            *out++ = '/';
            memmove(out, in, len);
            out += len;
        }
        in += len;
    }
    if (out == path)
        *out++ = '/';
    *out = '\0';
}

char *kb_path_absolute(const char *path)
{
    char *joined;
    if (path[0] == '/') {
        joined = strdup(path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return NULL;
        joined = kb_path_join(cwd, path);
    }
    if (joined)
        path_normalise(joined);
    return joined;
}

int kb_path_is_under(const char *path, const char *root)
{
    size_t rl = strlen(root);
    if (rl == 1 && root[0] == '/')
        return path[0] == '/';
    return strncmp(path, root, rl) == 0 && (path[rl] == '\0' || path[rl] == '/');
}
