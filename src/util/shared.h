/* shared.h — one copy of a read-only object for every handle of the process that wants it.
 *
 * Several kb handles in one process (kb serve's read handles, a helpdesk tool's handle per
 * thread) read the same large, immutable things: an encoder's weights, a KB generation's
 * vector index. They are cached here under a key that names exactly what was loaded (a file's
 * path with its identity or checksum), counted, and freed when the last user puts them back:
 * nothing outlives its users, and a new generation or a changed file gets a new key.
 *
 * The first kb_shared_get of a key calls `load` without holding the cache's lock (loads of
 * different keys run at once); a get of the same key meanwhile waits for that load and then
 * shares its object. A failed load caches nothing: its caller gets the error, and each waiter
 * tries the load itself. Thread-safe. The objects must be safe to read from several threads
 * at once; the cache never locks them.
 */
#ifndef KB_UTIL_SHARED_H
#define KB_UTIL_SHARED_H

#include <stddef.h>

/* Loads the object for the key into *obj; returns 0 or a kb_status (its message is the
 * loader's business, e.g. kept in arg). */
typedef int (*kb_shared_load_fn)(void *arg, void **obj);
typedef void (*kb_shared_free_fn)(void *obj);

/* The object cached under key, counted once more, or the one `load` makes (then cached with
 * `destroy` to free it). Returns 0, the loader's failure, or KB_ENOMEM. */
int kb_shared_get(const char *key, kb_shared_load_fn load, void *arg, kb_shared_free_fn destroy,
                  void **out);

/* Gives back one count of an object kb_shared_get returned; the last one frees it. NULL and
 * objects not from the cache are ignored. */
void kb_shared_put(void *obj);

/* How many handles hold the object (0 when it is not cached): for tests and diagnostics. */
size_t kb_shared_users(const void *obj);

#endif
