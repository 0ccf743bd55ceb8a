/* threads.h — how many threads kb's own parallel work uses. */
#ifndef KB_UTIL_THREADS_H
#define KB_UTIL_THREADS_H

/* $KB_THREADS when set to a positive number, else the number of online CPUs; clamped to
 * 1..64. Every parallel stage (encoder batches, flat vector search, BLAS) sizes itself by it,
 * so one setting governs the whole process. */
int kb_threads_default(void);

#endif
