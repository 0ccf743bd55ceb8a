/* shared.c — the process-wide cache of read-only objects (see shared.h). A short list: a
 * process holds a few models and indexes at most. */
#include "util/shared.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kb/kb.h"

struct shared_entry {
    char *key;
    void *obj;                 /* NULL while loading */
    kb_shared_free_fn destroy;
    size_t users;
    int loading;
    struct shared_entry *next;
};

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t shared_loaded = PTHREAD_COND_INITIALIZER;
static struct shared_entry *shared_head;

static struct shared_entry *shared_find_key(const char *key)
{
    for (struct shared_entry *e = shared_head; e; e = e->next)
        if (!strcmp(e->key, key))
            return e;
    return NULL;
}

static void shared_unlink(struct shared_entry *gone)
{
    for (struct shared_entry **p = &shared_head; *p; p = &(*p)->next)
        if (*p == gone) {
            *p = gone->next;
            return;
        }
}

int kb_shared_get(const char *key, kb_shared_load_fn load, void *arg, kb_shared_free_fn destroy,
                  void **out)
{
    *out = NULL;
    pthread_mutex_lock(&shared_lock);
    struct shared_entry *e;
    while ((e = shared_find_key(key)) && e->loading)
        pthread_cond_wait(&shared_loaded, &shared_lock);
    if (e) {
        e->users++;
        *out = e->obj;
        pthread_mutex_unlock(&shared_lock);
        return 0;
    }
    /* Not cached: reserve the key, load outside the lock, then publish or withdraw. */
    e = calloc(1, sizeof *e);
    char *copy = e ? strdup(key) : NULL;
    if (!copy) {
        free(e);
        pthread_mutex_unlock(&shared_lock);
        return KB_ENOMEM;
    }
    *e = (struct shared_entry){ copy, NULL, destroy, 1, 1, shared_head };
    shared_head = e;
    pthread_mutex_unlock(&shared_lock);

    void *obj = NULL;
    int rc = load(arg, &obj);

    pthread_mutex_lock(&shared_lock);
    if (rc) {
        shared_unlink(e);
        free(e->key);
        free(e);
    } else {
        e->obj = obj;
        e->loading = 0;
        *out = obj;
    }
    pthread_cond_broadcast(&shared_loaded);
    pthread_mutex_unlock(&shared_lock);
    return rc;
}

void kb_shared_put(void *obj)
{
    if (!obj)
        return;
    struct shared_entry *gone = NULL;
    pthread_mutex_lock(&shared_lock);
    for (struct shared_entry *e = shared_head; e; e = e->next)
        if (e->obj == obj && !e->loading) {
            if (--e->users == 0) {
                shared_unlink(e);
                gone = e;
            }
            break;
        }
    pthread_mutex_unlock(&shared_lock);
    if (gone) { /* freed outside the lock: freeing an index or model takes a while */
        gone->destroy(gone->obj);
        free(gone->key);
        free(gone);
    }
}

size_t kb_shared_users(const void *obj)
{
    size_t n = 0;
    pthread_mutex_lock(&shared_lock);
    for (struct shared_entry *e = shared_head; e && obj; e = e->next)
        if (e->obj == obj && !e->loading)
            n = e->users;
    pthread_mutex_unlock(&shared_lock);
    return n;
}
