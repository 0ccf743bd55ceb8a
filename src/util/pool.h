/* pool.h — a few persistent helper threads for splitting one small job (an encoder query's
 * matrix multiplies, a decoder token's matrix-vector products) with microsecond hand-offs. */
#ifndef KB_UTIL_POOL_H
#define KB_UTIL_POOL_H

struct kb_pool;

/* Work callback: do part `part` of `n_parts`. */
typedef void (*kb_pool_fn)(void *arg, int part, int n_parts);

/* Starts n_helpers threads (0 is valid: everything then runs on the caller). Helpers spin
 * briefly after each job, then sleep, so an idle pool costs nothing. Returns NULL when
 * memory or threads run out (callers then run alone). */
struct kb_pool *kb_pool_start(int n_helpers);

/* Runs fn(arg, p, n) for p in 0..n-1 where n = helpers + 1, the caller doing part 0; returns
 * when every part is done. One job at a time per pool (the encoder is not shared by threads). */
void kb_pool_run(struct kb_pool *pool, kb_pool_fn fn, void *arg);

/* How many parts kb_pool_run splits a job into (1 for NULL). */
int kb_pool_parts(const struct kb_pool *pool);

/* Stops and joins the helpers. NULL is a no-op. */
void kb_pool_stop(struct kb_pool *pool);

#endif
