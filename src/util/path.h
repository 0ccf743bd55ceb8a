/* path.h — file path helpers: joining and lexical normalisation. */
#ifndef KB_UTIL_PATH_H
#define KB_UTIL_PATH_H

/* "a" + "b" -> "a/b" (no doubled slash). Caller frees; NULL when out of memory. */
char *kb_path_join(const char *dir, const char *name);

/* An absolute, lexically normalised path: relative paths are taken from the current
 * directory; ".", ".." and repeated slashes are folded; symlinks are not resolved. Caller
 * frees; NULL when out of memory or the current directory is unknown. */
char *kb_path_absolute(const char *path);

/* 1 when `path` equals `root` or lies below it (both absolute and normalised). */
int kb_path_is_under(const char *path, const char *root);

#endif
