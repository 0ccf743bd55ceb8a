/* embed.c — kb_encoder_embed{,_ids,_tokens}: checks, prefixes, length-sorted batching. */
#include "encoder/encoder_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "encoder/blas.h"
#include "encoder/wordpiece.h"

#define ENC_BATCH_TOKENS 4096   /* tokens per forward pass: enough rows for sgemm to run at speed */
#define ENC_PARALLEL_MIN_TOKENS 512 /* below this, one thread (with a multi-threaded BLAS) */
#define ENC_TEXT_CHUNK 256      /* texts tokenized at a time by kb_encoder_embed */

struct enc_order {
    size_t len, index;
};

static int enc_cmp_order(const void *a, const void *b)
{
    const struct enc_order *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int enc_check_ids(const struct kb_encoder *enc, const int32_t *const *ids,
                         const size_t *n_ids, size_t n_texts, struct kb_err *err)
{
    for (size_t s = 0; s < n_texts; s++) {
        if (n_ids[s] == 0 || n_ids[s] > (size_t)enc->info.max_tokens || !ids[s])
            return kb_err_set(err, KB_EINVALID, "encoder: sequence %zu has %zu tokens (must be "
                              "1 to %d)", s, n_ids[s], enc->info.max_tokens);
        for (size_t t = 0; t < n_ids[s]; t++)
            if (ids[s][t] < 0 || ids[s][t] >= enc->info.vocab_size)
                return kb_err_set(err, KB_EINVALID, "encoder: token id %d of sequence %zu is "
                                  "outside the vocabulary (%d ids)", (int)ids[s][t], s,
                                  enc->info.vocab_size);
    }
    return 0;
}

/* One forward pass's share of the sorted sequences: order[first..last). */
struct enc_batch {
    size_t first, last;
};

/* Bulk work shared by the threads of one kb_encoder_embed_ids call: each takes the next
 * batch, runs it on its own scratch and scatters the vectors to their input positions. */
struct enc_job {
    const struct kb_encoder *enc;
    const int32_t *const *ids;
    const struct enc_order *order;
    const struct enc_batch *batches;
    size_t n_batches;
    size_t next;                    /* the next batch to take (under lock) */
    pthread_mutex_t lock;
    float *out;
    int rc;                         /* the first failure; its message is in err */
    struct kb_err err;
};

struct enc_worker {
    struct enc_job *job;
    struct enc_state *rs;
};

static int enc_take(struct enc_job *job, size_t *b)
{
    pthread_mutex_lock(&job->lock);
    int ok = job->rc == 0 && job->next < job->n_batches;
    if (ok)
        *b = job->next++;
    pthread_mutex_unlock(&job->lock);
    return ok;
}

static void *enc_work(void *arg)
{
    struct enc_worker *w = arg;
    struct enc_job *job = w->job;
    size_t h = (size_t)job->enc->info.hidden_dim, cap = 0, b;
    const int32_t **b_ids = NULL;
    size_t *b_len = NULL;
    float *b_out = NULL;
    struct kb_err err = { 0, "" };
    int rc = 0;
    while (!rc && enc_take(job, &b)) {
        const struct enc_batch *bt = &job->batches[b];
        size_t n = bt->last - bt->first;
        if (n > cap) {
            free(b_ids), free(b_len), free(b_out);
            b_ids = malloc(n * sizeof *b_ids);
            b_len = malloc(n * sizeof *b_len);
            b_out = malloc(n * h * sizeof *b_out);
            cap = b_ids && b_len && b_out ? n : 0;
            if (!cap) {
                rc = kb_err_set(&err, KB_ENOMEM, "encoder: out of memory");
                break;
            }
        }
        for (size_t i = 0; i < n; i++) {
            b_ids[i] = job->ids[job->order[bt->first + i].index];
            b_len[i] = job->order[bt->first + i].len;
        }
        rc = kb_enc_forward(job->enc, w->rs, b_ids, b_len, n, b_out, &err);
        for (size_t i = 0; i < n && !rc; i++)
            memcpy(job->out + job->order[bt->first + i].index * h, b_out + i * h,
                   h * sizeof *b_out);
    }
    if (rc) {
        pthread_mutex_lock(&job->lock);
        if (!job->rc) {
            job->rc = rc;
            job->err = err;
        }
        pthread_mutex_unlock(&job->lock);
    }
    free(b_ids), free(b_len), free(b_out);
    return NULL;
}

/* Cuts the sorted sequences into batches of about batch_tokens tokens. */
static size_t enc_plan(const struct enc_order *order, size_t n, size_t batch_tokens,
                       struct enc_batch *batches)
{
    size_t n_batches = 0;
    for (size_t first = 0, last; first < n; first = last) {
        size_t n_tokens = 0;
        for (last = first; last < n && (last == first ||
             n_tokens + order[last].len <= batch_tokens); last++)
            n_tokens += order[last].len;
        batches[n_batches++] = (struct enc_batch){ first, last };
    }
    return n_batches;
}

/* Runs the sorted sequences order[0..n) and scatters each vector to its input position in
 * out. Bulk work is spread over the encoder's threads, each running whole forward passes on
 * its own scratch with a single-threaded BLAS (so nothing waits on another thread inside a
 * layer, and the element-wise and attention work is parallel too); a small job (one query)
 * runs on the calling thread, where BLAS may use every core. */
static int enc_run_batches(struct kb_encoder *enc, const int32_t *const *ids,
                           const struct enc_order *order, size_t n, float *out,
                           struct kb_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += order[i].len;
    int n_threads = enc->n_threads;
    if (total < ENC_PARALLEL_MIN_TOKENS || n < 2)
        n_threads = 1;
    size_t batch_tokens = ENC_BATCH_TOKENS;
    if (n_threads > 1 && total / (size_t)n_threads < batch_tokens)
        batch_tokens = total / (size_t)n_threads + 1;
    struct enc_batch *batches = malloc(n * sizeof *batches);
    if (!batches)
        return kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
    struct enc_job job = { enc, ids, order, batches, enc_plan(order, n, batch_tokens, batches),
                           0, PTHREAD_MUTEX_INITIALIZER, out, 0, { 0, "" } };
    if ((size_t)n_threads > job.n_batches)
        n_threads = (int)job.n_batches;
    struct enc_worker workers[KB_ENC_MAX_THREADS];
    pthread_t tids[KB_ENC_MAX_THREADS];
    int started = 0;
    if (n_threads > 1)
        kb_blas_set_threads(1);
    for (int t = 1; t < n_threads; t++) {
        workers[t] = (struct enc_worker){ &job, &enc->rs[t] };
        if (pthread_create(&tids[t], NULL, enc_work, &workers[t]) != 0)
            break;
        started = t;
    }
    workers[0] = (struct enc_worker){ &job, &enc->rs[0] };
    enc->rs[0].pool = n_threads > 1 ? NULL : enc->pool; /* the pool serves one thread alone */
    enc_work(&workers[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(tids[t], NULL);
    if (n_threads > 1)
        kb_blas_set_threads(0);
    free(batches);
    pthread_mutex_destroy(&job.lock);
    if (job.rc && err)
        *err = job.err;
    return job.rc;
}

int kb_encoder_embed_ids(struct kb_encoder *enc, const int32_t *const *ids,
                         const size_t *n_ids, size_t n_texts, float *out, struct kb_err *err)
{
    if (!enc || (n_texts && (!ids || !n_ids || !out)))
        return kb_err_set(err, KB_EINVALID, "encoder: missing argument");
    int rc = enc_check_ids(enc, ids, n_ids, n_texts, err);
    if (rc || n_texts == 0)
        return rc;
    struct enc_order *order = malloc(n_texts * sizeof *order);
    if (!order)
        return kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
    for (size_t s = 0; s < n_texts; s++)
        order[s] = (struct enc_order){ n_ids[s], s };
    qsort(order, n_texts, sizeof *order, enc_cmp_order);
    rc = enc_run_batches(enc, ids, order, n_texts, out, err);
    free(order);
    return rc;
}

/* Tokenizes prefix + text into ids[0..max_tokens) with [CLS]/[SEP], truncating. */
static int enc_tokenize(const struct kb_encoder *enc, const char *prefix, const char *text,
                        int32_t *ids, size_t *n_out, struct kb_err *err)
{
    size_t n_prefix = strlen(prefix), n_text = strlen(text);
    char *joined = NULL;
    if (n_prefix) {
        joined = malloc(n_prefix + n_text + 1);
        if (!joined)
            return kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
        memcpy(joined, prefix, n_prefix);
        memcpy(joined + n_prefix, text, n_text + 1);
    }
    int rc = kb_wordpiece_encode(enc->wp, joined ? joined : text, n_prefix + n_text,
                                 KB_WORDPIECE_ADD_SPECIAL, ids, (size_t)enc->info.max_tokens,
                                 n_out, NULL, err);
    free(joined);
    return rc;
}

/* Writes input i's sequence (at most max_tokens ids, [CLS]/[SEP] included) into ids. */
typedef int (*enc_fill_fn)(const struct kb_encoder *enc, const void *inputs, size_t i,
                           int32_t *ids, size_t *n_ids, struct kb_err *err);

/* Makes the inputs' sequences ENC_TEXT_CHUNK at a time (bounded scratch whatever n_inputs)
 * and embeds each chunk into its rows of out. */
static int enc_embed_filled(struct kb_encoder *enc, enc_fill_fn fill, const void *inputs,
                            size_t n_inputs, float *out, struct kb_err *err)
{
    size_t chunk = n_inputs < ENC_TEXT_CHUNK ? n_inputs : ENC_TEXT_CHUNK;
    size_t max_tokens = (size_t)enc->info.max_tokens;
    int32_t *ids = malloc((chunk ? chunk : 1) * max_tokens * sizeof *ids);
    const int32_t **id_ptrs = malloc((chunk ? chunk : 1) * sizeof *id_ptrs);
    size_t *n_ids = malloc((chunk ? chunk : 1) * sizeof *n_ids);
    int rc = 0;
    if (!ids || !id_ptrs || !n_ids)
        rc = kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
    for (size_t first = 0; first < n_inputs && !rc; first += chunk) {
        size_t n = n_inputs - first < chunk ? n_inputs - first : chunk;
        for (size_t i = 0; i < n && !rc; i++) {
            id_ptrs[i] = ids + i * max_tokens;
            rc = fill(enc, inputs, first + i, ids + i * max_tokens, &n_ids[i], err);
        }
        if (!rc)
            rc = kb_encoder_embed_ids(enc, id_ptrs, n_ids, n,
                                      out + first * (size_t)enc->info.hidden_dim, err);
    }
    free(ids);
    free(id_ptrs);
    free(n_ids);
    return rc;
}

struct enc_texts {
    const char *const *texts;
    const char *prefix;
};

static int enc_fill_text(const struct kb_encoder *enc, const void *inputs, size_t i,
                         int32_t *ids, size_t *n_ids, struct kb_err *err)
{
    const struct enc_texts *t = inputs;
    return enc_tokenize(enc, t->prefix, t->texts[i], ids, n_ids, err);
}

int kb_encoder_embed(struct kb_encoder *enc, const char *const *texts, size_t n_texts,
                     unsigned flags, float *out, struct kb_err *err)
{
    if (!enc || (n_texts && (!texts || !out)))
        return kb_err_set(err, KB_EINVALID, "encoder: missing argument");
    if (!enc->wp)
        return kb_err_set(err, KB_EINVALID, "encoder: opened without a tokenizer");
    struct enc_texts t = { texts, flags & KB_ENCODER_QUERY ? enc->query_prefix
                                                           : enc->passage_prefix };
    return enc_embed_filled(enc, enc_fill_text, &t, n_texts, out, err);
}

struct enc_tokens {
    const int32_t *const *ids;
    const size_t *n_ids;
    int32_t cls, sep;
    int32_t *prefix;           /* the prefix's tokens, without [CLS]/[SEP] */
    size_t n_prefix;
};

/* [CLS] prefix ids [SEP], cut to max_tokens as the tokenizer cuts: [SEP] stays last, and a
 * limit of 1 leaves [CLS] alone. */
static int enc_fill_tokens(const struct kb_encoder *enc, const void *inputs, size_t i,
                           int32_t *ids, size_t *n_ids, struct kb_err *err)
{
    const struct enc_tokens *t = inputs;
    size_t max = (size_t)enc->info.max_tokens, body = max > 1 ? max - 2 : 0, n = 0;
    (void)err;
    ids[n++] = t->cls;
    for (size_t j = 0; j < t->n_prefix && n - 1 < body; j++)
        ids[n++] = t->prefix[j];
    for (size_t j = 0; j < t->n_ids[i] && n - 1 < body; j++)
        ids[n++] = t->ids[i][j];
    if (max > 1)
        ids[n++] = t->sep;
    *n_ids = n;
    return 0;
}

static int enc_check_tokens(const struct kb_encoder *enc, const int32_t *const *ids,
                            const size_t *n_ids, size_t n_seqs, struct kb_err *err)
{
    for (size_t s = 0; s < n_seqs; s++) {
        if (n_ids[s] && !ids[s])
            return kb_err_set(err, KB_EINVALID, "encoder: sequence %zu is NULL", s);
        for (size_t t = 0; t < n_ids[s]; t++)
            if (ids[s][t] < 0 || ids[s][t] >= enc->info.vocab_size)
                return kb_err_set(err, KB_EINVALID, "token id %ld of sequence %zu is outside "
                                  "the model's vocabulary (ids 0 to %d)", (long)ids[s][t], s,
                                  enc->info.vocab_size - 1);
    }
    return 0;
}

int kb_encoder_embed_tokens(struct kb_encoder *enc, const int32_t *const *ids,
                            const size_t *n_ids, size_t n_seqs, unsigned flags, float *out,
                            struct kb_err *err)
{
    if (!enc || (n_seqs && (!ids || !n_ids || !out)))
        return kb_err_set(err, KB_EINVALID, "encoder: missing argument");
    if (!enc->wp)
        return kb_err_set(err, KB_EINVALID, "encoder: opened without a tokenizer");
    int rc = enc_check_tokens(enc, ids, n_ids, n_seqs, err);
    if (rc || !n_seqs)
        return rc;
    struct enc_tokens t = { ids, n_ids, kb_wordpiece_special_id(enc->wp, KB_WORDPIECE_CLS),
                            kb_wordpiece_special_id(enc->wp, KB_WORDPIECE_SEP), NULL, 0 };
    if (t.cls < 0 || t.sep < 0)
        return kb_err_set(err, KB_EFORMAT, "%s: no [CLS] or [SEP] token",
                          kb_wordpiece_file(enc->wp));
    const char *prefix = flags & KB_ENCODER_QUERY ? enc->query_prefix : enc->passage_prefix;
    size_t max_tokens = (size_t)enc->info.max_tokens;
    if (*prefix) {
        if (!(t.prefix = malloc(max_tokens * sizeof *t.prefix)))
            return kb_err_set(err, KB_ENOMEM, "encoder: out of memory");
        rc = kb_wordpiece_encode(enc->wp, prefix, strlen(prefix), 0, t.prefix, max_tokens,
                                 &t.n_prefix, NULL, err);
    }
    if (!rc)
        rc = enc_embed_filled(enc, enc_fill_tokens, &t, n_seqs, out, err);
    free(t.prefix);
    return rc;
}
