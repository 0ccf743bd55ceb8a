/* pending.h — embeddings computed by a run that has not committed yet, kept in a side file so
 * that a run killed before its commit (kill -9, OOM, power cut) does not have to embed them
 * again. A cache: losing or deleting it costs only time. */
#ifndef KB_INDEX_PENDING_H
#define KB_INDEX_PENDING_H

#include "util/err.h"

#define KB_PENDING_NAME "pending-vectors.sqlite"

struct kb_pending;

/* Opens (creating) KBDIR/pending-vectors.sqlite for embeddings of model `identity` with `dim`
 * values. A file for another model or dimension, or one that cannot be read, is started
 * afresh. Only the KB's writer (holding its lock) opens it. */
int kb_pending_open(struct kb_pending **out, const char *kb_dir, const char *identity, int dim,
                    struct kb_err *err);
void kb_pending_close(struct kb_pending *p);

/* 1 and vec filled when an embedding of input_hash is kept, 0 when not, or an error. */
int kb_pending_get(struct kb_pending *p, const char *input_hash, float *vec,
                   struct kb_err *err);
/* Keeps an embedding; it becomes durable at the next kb_pending_save (at most a few seconds
 * later). */
int kb_pending_put(struct kb_pending *p, const char *input_hash, const float *vec,
                   struct kb_err *err);
/* Commits what was put since the last save. */
int kb_pending_save(struct kb_pending *p, struct kb_err *err);
/* After the run committed (its vectors are in the KB now): closes p (may be NULL) and deletes
 * the file, also one that a killed run left and this run never opened. */
void kb_pending_remove(struct kb_pending *p, const char *kb_dir);

#endif
