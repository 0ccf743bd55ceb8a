/* pool.c — persistent helper threads with spin-then-sleep hand-off (see pool.h). */
#include "util/pool.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define POOL_SPINS 4000 /* pause loops (~100-500 us) before a helper sleeps */

struct pool_helper {
    struct kb_pool *pool;
    int part;
    pthread_t tid;
};

struct kb_pool {
    int n_helpers;
    struct pool_helper *helpers;
    atomic_uint generation;         /* bumped for each job */
    atomic_int done;                /* helpers finished with the current job */
    atomic_int stop;
    kb_pool_fn fn;
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

/* Waits for a generation other than `seen`: spinning first, then on the condition variable. */
static unsigned pool_wait(struct kb_pool *p, unsigned seen)
{
    for (int i = 0; i < POOL_SPINS; i++) {
        unsigned g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen || atomic_load(&p->stop))
            return g;
        _mm_pause();
    }
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
        pthread_cond_wait(&p->wake, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return atomic_load(&p->generation);
}

static void *pool_main(void *arg)
{
    struct pool_helper *h = arg;
    struct kb_pool *p = h->pool;
    unsigned seen = 0;
    for (;;) {
        seen = pool_wait(p, seen);
        if (atomic_load(&p->stop))
            break;
        p->fn(p->arg, h->part, p->n_helpers + 1);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
    return NULL;
}

struct kb_pool *kb_pool_start(int n_helpers)
{
    struct kb_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->helpers = calloc(n_helpers > 0 ? (size_t)n_helpers : 1, sizeof *p->helpers);
    if (!p->helpers) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (int i = 0; i < n_helpers; i++) {
        p->helpers[i] = (struct pool_helper){ p, i + 1, 0 };
        if (pthread_create(&p->helpers[i].tid, NULL, pool_main, &p->helpers[i]) != 0)
            break;
        p->n_helpers = i + 1;
    }
    return p;
}

void kb_pool_run(struct kb_pool *p, kb_pool_fn fn, void *arg)
{
    if (!p || p->n_helpers == 0) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->done, 0);
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    fn(arg, 0, p->n_helpers + 1);
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->n_helpers)
        _mm_pause();
}

int kb_pool_parts(const struct kb_pool *p)
{
    return p ? p->n_helpers + 1 : 1;
}

void kb_pool_stop(struct kb_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_helpers; i++)
        pthread_join(p->helpers[i].tid, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p->helpers);
    free(p);
}
