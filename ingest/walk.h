/* walk.h — recursive folder walks with include/exclude globs, hidden-file and symlink rules. */
#ifndef KB_INGEST_WALK_H
#define KB_INGEST_WALK_H

#include <sys/stat.h>

#include "util/err.h"

struct kb_walk_options {
    const char *const *include; size_t n_include; /* a file must match one (if any given) */
    const char *const *exclude; size_t n_exclude; /* a match excludes a file or whole folder */
    int include_hidden;
    int follow_symlinks;
    unsigned max_depth;          /* folders deeper than this are skipped; 0 = 64 */
};

enum kb_walk_kind {
    KB_WALK_FILE = 1,   /* a regular file: `st` is its stat */
    KB_WALK_SKIP        /* something the walk could not or would not enter; `reason` says why */
};

/* Called for each regular file and each skipped entry, in sorted order. `path` is the root
 * as given joined with the names below it; `rel` is the part below the root ("" when the
 * root is itself a file). Returning non-zero stops the walk and is returned by kb_walk. */
typedef int (*kb_walk_cb)(enum kb_walk_kind kind, const char *path, const char *rel,
                          const struct stat *st, const char *reason, void *payload);

/* Walks `root` (a file or a folder). A root that does not exist is KB_ENOTFOUND with err
 * naming it; problems below the root become KB_WALK_SKIP entries, never errors. Symlink
 * loops and over-deep trees are skipped, so the walk always ends, and its memory is bounded
 * by max_depth (one folder listing per level). Names below the root that are not valid
 * UTF-8 are skipped ("file name is not valid UTF-8"): every path kb stores is UTF-8. */
int kb_walk(const char *root, const struct kb_walk_options *opts, kb_walk_cb cb, void *payload,
            struct kb_err *err);

/* 1 when `rel` (a path relative to a walk root) matches `glob`: globs with a '/' match the
 * whole relative path (where `*` also crosses folders), others match its last component. */
int kb_walk_glob_match(const char *glob, const char *rel);

#endif
