/* threads.c — the process-wide thread count (KB_THREADS or the online CPUs). */
#include "util/threads.h"

#include <stdlib.h>
#include <unistd.h>

int kb_threads_default(void)
{
    const char *env = getenv("KB_THREADS");
    long n = env && *env ? strtol(env, NULL, 10) : 0;
    if (n < 1)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}
