/* kb_int.h — the facade's private state, shared by the files in kb/. */
#ifndef KB_KB_INT_H
#define KB_KB_INT_H

#include "kb/kb.h"
#include "index/store.h"
#include "kb/vec_int.h"
#include "util/err.h"

struct kb {
    struct kb_store *store;   /* NULL after a failed open */
    unsigned flags;
    struct kb_err err;
    struct kb_vec vec;        /* embeddings and the vector index (kb/vectors.c) */
    /* BM25 in memory (index/bm25.h, kb/search.c): shared through util/shared.h, built at
     * chunks revision bm25_rev; lexical_searches counts this handle's BM25 searches. */
    struct kb_bm25 *bm25;
    int64_t bm25_rev;
    unsigned long lexical_searches;
};

/* Sets up libcurl (and the TLS library under it) once per process: kb_open and kb_model_pull
 * call it, so that a program which opens a handle before it starts threads (kb serve) has
 * it done on its main thread, as libcurl asks, rather than inside the first thread that
 * makes a request. Thread-safe: pthread_once here, and curl_global_init itself is
 * thread-safe in libcurl >= 7.84 built with atomics (feature CURL_VERSION_THREADSAFE; Debian
 * 12's 7.88 is). Never undone with curl_global_cleanup: a library cannot know that nothing
 * else in the process still uses libcurl, and the TLS library frees its own state at exit. */
void kb_http_init(void);

/* Gives back the handle's in-memory BM25 index (kb/search.c). */
void kb_search_close(kb *kb);

/* Records a failure on the handle and returns its code. */
int kb_fail(kb *kb, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Checks a handle at the API boundary: KB_EINVALID (message kept) when unusable, and
 * KB_EINVALID without touching it when it is not a live handle (NULL, closed, never opened). */
int kb_usable(kb *kb, int need_write);

struct kb_llm_config;
/* kb/local.c: the answer of backend "local" (a GGUF model run in-process) into a->text. */
int kb_local_answer(kb *kb, const kb_ask_options *opts, const struct kb_llm_config *cfg,
                    kb_answer *a);

/* The registry of live handles (kb/kb.c), so that misuse of a closed or foreign pointer is
 * an error rather than a use after free: open adds, close removes (a close of an unregistered
 * pointer does nothing), entry points check. Thread-safe. */
enum kb_handle_kind { KB_HANDLE_KB = 1, KB_HANDLE_MODEL, KB_HANDLE_RESULTS, KB_HANDLE_LM };

/* 0, or KB_ENOMEM. */
int kb_handle_add(const void *ptr, enum kb_handle_kind kind);
/* 1 when ptr was registered as kind (and now is not), else 0. */
int kb_handle_remove(const void *ptr, enum kb_handle_kind kind);
/* 1 when ptr is registered as kind. */
int kb_handle_live(const void *ptr, enum kb_handle_kind kind);

#endif
