/* testhook.c — named crash points, compiled in only for test builds (KB_TEST_HOOKS). */
#include "util/testhook.h"

#ifdef KB_TEST_HOOKS
#include <signal.h>
#include <stdlib.h>
#include <string.h>

void kb_test_crash_point(const char *name)
{
    const char *want = getenv("KB_CRASH_POINT");
    if (want && !strcmp(want, name))
        raise(SIGKILL);
}
#else
void kb_test_crash_point(const char *name)
{
    (void)name;
}
#endif
