/* testhook.h — named crash points for the crash-safety tests (builds with KB_TEST_HOOKS). */
#ifndef KB_UTIL_TESTHOOK_H
#define KB_UTIL_TESTHOOK_H

/* In a build with KB_TEST_HOOKS, kills the process with SIGKILL (no cleanup, like a power cut
 * as far as the KB is concerned) when the environment variable KB_CRASH_POINT equals `name`.
 * Otherwise does nothing. Names in use: "faiss-written" (new vector index file written and
 * fsynced, not yet renamed), "before-rename", "after-rename" (file in place, not yet
 * recorded), "before-commit" (everything written, transaction not committed), "after-commit"
 * (committed, previous generation file not yet removed). */
void kb_test_crash_point(const char *name);

#endif
