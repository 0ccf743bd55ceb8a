/* helpers.h — scratch folders and files for tests. */
#ifndef KB_TESTS_HELPERS_H
#define KB_TESTS_HELPERS_H

#include <stddef.h>

/* A fresh folder under $TMPDIR (or /tmp); removed recursively by th_rmtree. Caller frees. */
char *th_tempdir(void);
void th_rmtree(const char *dir);

/* Writes len bytes (or strlen(text) when len is (size_t)-1) to dir/name, creating folders. */
void th_write(const char *dir, const char *name, const char *text, size_t len);

/* dir/name, malloc'ed. */
char *th_path(const char *dir, const char *name);

#endif
