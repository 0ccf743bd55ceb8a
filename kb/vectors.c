/* vectors.c — the facade's dense side: the KB's model, embedding chunks as they are stored,
 * the FAISS file's generations, and vector search. */
#include "kb/kb_int.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "encoder/encoder.h"
#include "encoder/wordpiece.h"
#include "index/pending.h"
#include "index/vectors.h"
#include "index/vindex.h"
#include "ingest/tokcount.h"
#include "kb/model_int.h"
#include "util/hash.h"
#include "util/path.h"
#include "util/shared.h"
#include "util/testhook.h"

#define VEC_EMBED_BATCH 256   /* texts embedded per call while flushing */

/* ---- The KB's model record (kb_meta 'model', JSON) ------------------------------------ */

static int vec_record_parse(struct kb_vec *v, const char *json, const char *db)
{
    cJSON *doc = cJSON_Parse(json);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(doc, "name");
    const cJSON *identity = cJSON_GetObjectItemCaseSensitive(doc, "identity");
    const cJSON *dim = cJSON_GetObjectItemCaseSensitive(doc, "dim");
    int ok = cJSON_IsString(name) && cJSON_IsString(identity) && cJSON_IsNumber(dim) &&
             strlen(identity->valuestring) == 64 && dim->valueint > 0 && dim->valueint <= 65536;
    char *copy = ok ? strdup(name->valuestring) : NULL;
    if (copy) {
        free(v->model_name);
        v->model_name = copy;
        memcpy(v->identity, identity->valuestring, 65);
        v->dim = dim->valueint;
    }
    cJSON_Delete(doc);
    if (ok && !copy)
        return kb_err_set(&v->err, KB_ENOMEM, "%s: out of memory", db);
    if (!ok)
        return kb_err_set(&v->err, KB_ECORRUPT, "%s: the model record in kb_meta is damaged", db);
    return 0;
}

/* Reads the KB's model record, once per handle: v->model_name NULL when the KB has none. */
static int vec_load_record(kb *kb)
{
    struct kb_vec *v = &kb->vec;
    if (v->record_loaded)
        return 0;
    char *json = NULL;
    int rc = kb_store_meta_get(kb->store, "model", &json, &kb->err);
    if (rc == KB_ENOTFOUND)
        rc = 0;
    else if (rc == 0 && (rc = vec_record_parse(v, json, kb_store_dir(kb->store))))
        kb->err = v->err;
    free(json);
    v->record_loaded = rc == 0;
    return rc;
}

static int vec_record_write(kb *kb, const kb_model_info *info, const char *identity)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "name", info->name);
    cJSON_AddStringToObject(doc, "identity", identity);
    cJSON_AddNumberToObject(doc, "dim", info->dim);
    cJSON_AddNumberToObject(doc, "max_tokens", info->max_tokens);
    cJSON_AddStringToObject(doc, "pooling", info->pooling);
    cJSON_AddBoolToObject(doc, "normalize", info->normalize);
    cJSON_AddStringToObject(doc, "query_prefix", info->query_prefix);
    cJSON_AddStringToObject(doc, "passage_prefix", info->passage_prefix);
    char *json = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!json)
        return kb_fail(kb, KB_ENOMEM, "out of memory");
    int rc = kb_store_meta_set(kb->store, "model", json, &kb->err);
    free(json);
    return rc;
}

/* ---- Opening the model ------------------------------------------------------------------ */

/* Opens `name` into v->model and checks it is the one the KB records (when it records one). */
static int vec_open_model(kb *kb, const char *name)
{
    struct kb_vec *v = &kb->vec;
    kb_model *model = NULL;
    int rc = kb_model_open(&model, name);
    if (rc) {
        kb_fail(kb, rc, "%s", model ? kb_model_errmsg(model) : kb_strerror(rc));
        kb_model_close(model);
        return rc;
    }
    char identity[65];
    if ((rc = kb_model_identity(model, identity))) {
        kb_fail(kb, rc, "model '%s': cannot read its files to identify it: %s", name,
                kb_model_errmsg(model));
        kb_model_close(model);
        return rc;
    }
    if (v->model_name && strcmp(identity, v->identity)) {
        kb_model_close(model);
        return kb_fail(kb, KB_ECONFIG, "this knowledge base was embedded with model '%s' and "
                       "'%s' is a different model; re-embed with 'kb reindex --model %s'",
                       v->model_name, name, name);
    }
    kb_model_close(v->model);
    v->model = model;
    memcpy(v->open_identity, identity, sizeof identity);
    return 0;
}

/* The default model when the KB records none: used when it is downloaded, silently skipped
 * (lexical only) when it is not. */
static int vec_try_default(kb *kb, const char *fallback)
{
    kb_model *probe = NULL;
    int rc = kb_model_open(&probe, fallback);
    kb_model_close(probe);
    if (rc)
        return 0;
    return vec_open_model(kb, fallback);
}

/* A KB without a model that already holds passages takes its first model only through
 * kb_reindex, which embeds every chunk: an ingest would embed only the files it (re)reads.
 * Returns 0 to go on, KB_ECONFIG when `requested` is given, else 1: keyword search only. */
static int vec_first_model(kb *kb, const char *requested)
{
    struct kb_store_stats st;
    int rc = kb_store_stats(kb->store, &st, &kb->err);
    if (rc || st.n_chunks == 0)
        return rc;
    if (requested)
        return kb_fail(kb, KB_ECONFIG, "this knowledge base holds %lld passages without vectors; "
                       "give it model '%s' with 'kb reindex --model %s', which embeds them all",
                       (long long)st.n_chunks, requested, requested);
    kb->vec.lexical_only = 1;
    kb->vec.notice = "this knowledge base has no encoder model: passages are indexed for keyword "
                     "search only (add vectors with 'kb reindex --model " KB_DEFAULT_MODEL "')";
    return 1;
}

int kb_vec_begin_ingest(kb *kb, const char *requested)
{
    struct kb_vec *v = &kb->vec;
    int rc = vec_load_record(kb);
    if (rc)
        return rc;
    v->lexical_only = 0;
    if (requested && *requested && !strcmp(requested, "none")) {
        if (v->model_name)
            return kb_fail(kb, KB_ECONFIG, "this knowledge base has embeddings from '%s'; "
                           "it cannot continue without them", v->model_name);
        v->lexical_only = 1;
        return 0;
    }
    const char *name = requested && *requested ? requested : v->model_name;
    if (!v->model_name && (rc = vec_first_model(kb, name)) != 0)
        return rc < 0 ? rc : 0;
    if (!name)
        rc = vec_try_default(kb, KB_DEFAULT_MODEL);
    else if (!v->model || !v->model_name || strcmp(name, v->model_name))
        rc = vec_open_model(kb, name);
    if (rc)
        return rc;
    if (!v->model) {
        v->lexical_only = 1;
        v->notice = "no encoder model available: passages are indexed for keyword search only "
                    "(get one with 'kb model pull " KB_DEFAULT_MODEL "', then 'kb reindex')";
        return 0;
    }
    if (!v->model_name) {
        kb_model_info info;
        kb_model_get_info(v->model, &info);
        /* A folder is recorded absolute, so the KB finds it from any directory. */
        struct stat st;
        char *abs = stat(info.name, &st) == 0 && S_ISDIR(st.st_mode) ? kb_path_absolute(info.name)
                                                                     : NULL;
        if (abs)
            info.name = abs;
        rc = vec_record_write(kb, &info, v->open_identity);
        free(abs);
        if (rc)
            return rc;
        v->record_loaded = 0;
        if ((rc = vec_load_record(kb)))
            return rc;
    }
    return 0;
}

int kb_vec_begin_delete(kb *kb)
{
    kb->vec.lexical_only = 1;
    return vec_load_record(kb);
}

int kb_vec_active(const kb *kb)
{
    return kb->vec.model && !kb->vec.lexical_only;
}

/* ---- Token budget ----------------------------------------------------------------------- */

static size_t vec_count_tokens(const char *text, size_t len, void *payload)
{
    const struct kb_wordpiece *wp = payload;
    size_t n = 0, n_full = 0;
    struct kb_err err;
    if (kb_wordpiece_encode(wp, text, len, 0, NULL, 0, &n, &n_full, &err))
        return len; /* invalid UTF-8 never reaches the chunker; count bytes to stay safe */
    return n_full;
}

int kb_vec_chunk_budget(kb *kb, unsigned requested, struct kb_tokcounter *counter,
                        unsigned *target)
{
    struct kb_encoder *enc = kb_model_encoder(kb->vec.model);
    const struct kb_encoder_info *info = kb_encoder_info(enc);
    const struct kb_wordpiece *wp = kb_encoder_tokenizer(enc);
    size_t n_prefix = vec_count_tokens(info->passage_prefix, strlen(info->passage_prefix),
                                       (void *)wp);
    long budget = (long)info->max_tokens - 2 - (long)n_prefix;
    if (budget < 8)
        return kb_fail(kb, KB_ECONFIG, "model '%s': max_tokens %d leaves no room for passages",
                       kb->vec.model_name, info->max_tokens);
    *target = requested && requested < (unsigned)budget ? requested : (unsigned)budget;
    counter->count = vec_count_tokens;
    counter->payload = (void *)wp;
    return 0;
}

/* ---- Embedding chunks as they are stored ------------------------------------------------ */

struct vec_stashed {
    char hash[65];
    float *vec;
};

static int vec_stash_cmp(const void *a, const void *b)
{
    return strcmp(((const struct vec_stashed *)a)->hash, ((const struct vec_stashed *)b)->hash);
}

void kb_vec_stash_clear(kb *kb)
{
    struct kb_vec *v = &kb->vec;
    for (size_t i = 0; i < v->n_stash; i++)
        free(v->stash[i].vec);
    free(v->stash);
    v->stash = NULL;
    v->n_stash = 0;
}

int kb_vec_stash_document(kb *kb, int64_t doc_id)
{
    struct kb_vec *v = &kb->vec;
    kb_vec_stash_clear(kb);
    if (!kb_vec_active(kb))
        return 0;
    int64_t *ids = NULL;
    char **hashes = NULL;
    size_t n = 0;
    int rc = kb_vectors_of_document(kb->store, doc_id, &ids, &hashes, &n, &kb->err);
    if (rc || n == 0)
        goto done;
    float *vecs = malloc(n * (size_t)v->dim * sizeof *vecs);
    v->stash = calloc(n, sizeof *v->stash);
    if (!vecs || !v->stash) {
        free(vecs);
        rc = kb_fail(kb, KB_ENOMEM, "out of memory");
        goto done;
    }
    rc = kb_vectors_get(kb->store, ids, n, v->dim, vecs, &kb->err);
    for (size_t i = 0; i < n && !rc; i++) {
        memcpy(v->stash[i].hash, hashes[i], 65);
        if (!(v->stash[i].vec = malloc((size_t)v->dim * sizeof *vecs)))
            rc = kb_fail(kb, KB_ENOMEM, "out of memory");
        else
            memcpy(v->stash[i].vec, vecs + i * (size_t)v->dim, (size_t)v->dim * sizeof *vecs);
        v->n_stash = i + 1;
    }
    free(vecs);
    if (!rc)
        qsort(v->stash, v->n_stash, sizeof *v->stash, vec_stash_cmp);
done:
    for (size_t i = 0; i < n; i++)
        free(hashes[i]);
    free(hashes);
    free(ids);
    return rc;
}

/* What is embedded for a chunk: its title and section, then its text — unless that would not
 * fit the model, in which case the text alone (which always fits, by the chunk budget). */
static char *vec_input(kb *kb, const char *title, const char *heading, const char *text,
                       size_t len)
{
    const char *sep = title && *title && heading && *heading ? " › " : "";
    size_t head_len = (title ? strlen(title) : 0) + strlen(sep) + (heading ? strlen(heading) : 0);
    char *in = malloc(head_len + 2 + len + 1);
    if (!in)
        return NULL;
    int n = head_len ? snprintf(in, head_len + 3, "%s%s%s\n\n", title ? title : "", sep,
                                heading ? heading : "")
                     : 0;
    memcpy(in + n, text, len);
    in[n + len] = '\0';
    struct kb_encoder *enc = kb_model_encoder(kb->vec.model);
    const struct kb_encoder_info *info = kb_encoder_info(enc);
    size_t full = vec_count_tokens(info->passage_prefix, strlen(info->passage_prefix),
                                   (void *)kb_encoder_tokenizer(enc)) +
                  vec_count_tokens(in, n + len, (void *)kb_encoder_tokenizer(enc)) + 2;
    if (n && full > (size_t)info->max_tokens) {
        memmove(in, in + n, len + 1);
    }
    return in;
}

int kb_vec_queue(kb *kb, int64_t chunk_id, const char *title, const char *heading,
                 const char *text, size_t len)
{
    struct kb_vec *v = &kb->vec;
    if (!kb_vec_active(kb))
        return 0;
    char *input = vec_input(kb, title, heading, text, len);
    if (!input)
        return kb_fail(kb, KB_ENOMEM, "out of memory");
    struct vec_stashed key;
    kb_sha256_hex(input, strlen(input), key.hash);
    /* Reuse: the same input embedded before, in this document's old version or anywhere. */
    struct vec_stashed *hit = v->n_stash ? bsearch(&key, v->stash, v->n_stash, sizeof key,
                                                   vec_stash_cmp)
                                         : NULL;
    int rc = 0;
    if (hit) {
        rc = kb_vectors_put(kb->store, chunk_id, key.hash, hit->vec, v->dim, &kb->err);
        v->n_reused++;
        free(input);
        return rc;
    }
    if (v->n_queue == v->cap_queue) {
        size_t cap = v->cap_queue ? v->cap_queue * 2 : 64;
        struct kb_vec_item *q = realloc(v->queue, cap * sizeof *q);
        if (!q) {
            free(input);
            return kb_fail(kb, KB_ENOMEM, "out of memory");
        }
        v->queue = q;
        v->cap_queue = cap;
    }
    struct kb_vec_item *it = &v->queue[v->n_queue++];
    it->chunk_id = chunk_id;
    it->input = input;
    memcpy(it->hash, key.hash, sizeof it->hash);
    return rc;
}

static void vec_queue_clear(struct kb_vec *v)
{
    for (size_t i = 0; i < v->n_queue; i++)
        free(v->queue[i].input);
    v->n_queue = 0;
}

/* The side file of this run's embeddings (opened on first use), or NULL when it cannot be
 * had: it only saves time, so its failures never fail a run. */
static struct kb_pending *vec_pending(kb *kb)
{
    struct kb_vec *v = &kb->vec;
    struct kb_err err;
    if (!v->pending && v->model_name)
        kb_pending_open(&v->pending, kb_store_dir(kb->store), v->identity, v->dim, &err);
    return v->pending;
}

/* Embeds queue[first, last) and stores the vectors, reusing any stored embedding of the same
 * input found in the store, or kept from an earlier run that did not commit. */
static int vec_flush_range(kb *kb, size_t first, size_t last, float *vecs)
{
    struct kb_vec *v = &kb->vec;
    const char *texts[VEC_EMBED_BATCH];
    size_t slot[VEC_EMBED_BATCH], n = 0;
    struct kb_pending *pending = vec_pending(kb);
    struct kb_err perr;
    int rc = 0;
    for (size_t i = first; i < last && !rc; i++) {
        int found = kb_vectors_find_input(kb->store, v->queue[i].hash, vecs, v->dim, &kb->err);
        if (found < 0)
            return found;
        if (!found && pending)
            found = kb_pending_get(pending, v->queue[i].hash, vecs, &perr) == 1;
        if (found) {
            rc = kb_vectors_put(kb->store, v->queue[i].chunk_id, v->queue[i].hash, vecs, v->dim,
                                &kb->err);
            v->n_reused++;
            continue;
        }
        texts[n] = v->queue[i].input;
        slot[n++] = i;
    }
    if (rc || n == 0)
        return rc;
    if ((rc = kb_model_embed(v->model, texts, n, 0, vecs)))
        return kb_fail(kb, rc, "embedding: %s", kb_model_errmsg(v->model));
    v->n_embedded += n;
    for (size_t j = 0; j < n; j++)
        v->n_tokens += vec_count_tokens(texts[j], strlen(texts[j]),
                                        (void *)kb_encoder_tokenizer(kb_model_encoder(v->model))) + 2;
    for (size_t j = 0; j < n && !rc; j++) {
        rc = kb_vectors_put(kb->store, v->queue[slot[j]].chunk_id, v->queue[slot[j]].hash,
                            vecs + j * (size_t)v->dim, v->dim, &kb->err);
        if (pending && kb_pending_put(pending, v->queue[slot[j]].hash, vecs + j * (size_t)v->dim,
                                      &perr) != 0) {
            kb_pending_close(v->pending); /* e.g. disk full: go on without it */
            v->pending = pending = NULL;
        }
    }
    return rc;
}

int kb_vec_flush(kb *kb)
{
    struct kb_vec *v = &kb->vec;
    if (!kb_vec_active(kb) || v->n_queue == 0)
        return 0;
    float *vecs = malloc((size_t)VEC_EMBED_BATCH * (size_t)v->dim * sizeof *vecs);
    int rc = vecs ? 0 : kb_fail(kb, KB_ENOMEM, "out of memory");
    for (size_t first = 0; first < v->n_queue && !rc; first += VEC_EMBED_BATCH) {
        size_t last = first + VEC_EMBED_BATCH < v->n_queue ? first + VEC_EMBED_BATCH : v->n_queue;
        rc = vec_flush_range(kb, first, last, vecs);
    }
    free(vecs);
    vec_queue_clear(v);
    return rc;
}

void kb_vec_discard(kb *kb)
{
    vec_queue_clear(&kb->vec);
    kb_vec_stash_clear(kb);
}

/* ---- The FAISS file: generations -------------------------------------------------------- */

static char *vec_file_path(kb *kb, const char *name)
{
    return kb_path_join(kb_store_dir(kb->store), name);
}

static int vec_fsync_dir(kb *kb)
{
    int fd = open(kb_store_dir(kb->store), O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return kb_fail(kb, KB_EIO, "%s: %s", kb_store_dir(kb->store), strerror(errno));
    int rc = fsync(fd) == 0 ? 0 : kb_fail(kb, KB_EIO, "%s: fsync: %s", kb_store_dir(kb->store),
                                          strerror(errno));
    close(fd);
    return rc;
}

/* Builds the index for every stored vector, choosing its type by size (or spec_text). */
static int vec_build_all(kb *kb, const char *spec_text, struct kb_vindex **out, size_t *n_out)
{
    int64_t *ids = NULL;
    float *vecs = NULL;
    size_t n = 0;
    int rc = kb_vectors_all(kb->store, kb->vec.dim, &ids, &vecs, &n, &kb->err);
    struct kb_vindex_spec spec;
    if (!rc && spec_text && *spec_text && strcmp(spec_text, "auto"))
        rc = kb_vindex_spec_parse(&spec, kb->vec.dim, spec_text, &kb->err);
    else if (!rc)
        kb_vindex_spec_auto(&spec, kb->vec.dim, n);
    if (!rc && spec.kind == KB_VINDEX_IVF && n < 39 * 16)
        kb_vindex_spec_auto(&spec, kb->vec.dim, 0); /* too few to train: exact */
    if (!rc)
        rc = kb_vindex_build(out, &spec, ids, vecs, n, &kb->err);
    *n_out = n;
    free(ids);
    free(vecs);
    return rc;
}

/* Writes vi as the next generation: a new file, fsynced, renamed into place, directory
 * fsynced, then recorded with its sha256 inside the caller's transaction. The file it
 * replaces is removed only once that commits (kb_vec_commit). */
static int vec_publish(kb *kb, struct kb_vindex *vi, const struct kb_vindex_record *old,
                       int64_t rev)
{
    struct kb_vec *v = &kb->vec;
    struct kb_vindex_record rec = { 0 };
    rec.generation = old ? old->generation + 1 : 1;
    snprintf(rec.file, sizeof rec.file, "vectors.%lld.faiss", (long long)rec.generation);
    char tmp_name[160];
    snprintf(tmp_name, sizeof tmp_name, "%s.tmp", rec.file);
    char *tmp = vec_file_path(kb, tmp_name), *dst = vec_file_path(kb, rec.file);
    int rc = tmp && dst ? 0 : kb_fail(kb, KB_ENOMEM, "out of memory"), renamed = 0;
    if (!rc)
        rc = kb_vindex_write(vi, tmp, &kb->err);
    if (!rc)
        kb_test_crash_point("faiss-written");
    if (!rc && kb_sha256_file(tmp, 0, 0, rec.sha256) != 0)
        rc = kb_fail(kb, KB_EIO, "%s: %s", tmp, strerror(errno));
    if (!rc)
        kb_test_crash_point("before-rename");
    if (!rc && rename(tmp, dst) != 0)
        rc = kb_fail(kb, KB_EIO, "%s: %s", dst, strerror(errno));
    renamed = !rc;
    if (!rc)
        rc = vec_fsync_dir(kb);
    if (!rc)
        kb_test_crash_point("after-rename");
    struct kb_vindex_spec spec;
    kb_vindex_get_spec(vi, &spec);
    kb_vindex_spec_format(&spec, rec.spec, sizeof rec.spec);
    rec.n_vectors = (int64_t)kb_vindex_count(vi);
    rec.dim = kb->vec.dim;
    rec.vectors_rev = rev;
    if (!rc)
        rc = kb_vindex_record_put(kb->store, &rec, &kb->err);
    if (rc) {
        if (tmp)
            unlink(tmp);
        if (renamed)
            unlink(dst);
        free(dst);
    } else {
        free(v->published);
        v->published = dst;
        free(v->superseded);
        v->superseded = old && strcmp(old->file, rec.file) ? vec_file_path(kb, old->file) : NULL;
    }
    free(tmp);
    return rc;
}

int kb_vec_commit(kb *kb, int keep_pending)
{
    struct kb_vec *v = &kb->vec;
    kb_test_crash_point("before-commit");
    int rc = kb_store_commit(kb->store, &kb->err);
    if (rc) {
        kb_vec_abort(kb);
        return rc;
    }
    kb_test_crash_point("after-commit");
    struct kb_err perr;
    if (keep_pending) {
        if (v->pending)
            kb_pending_save(v->pending, &perr);
    } else { /* its vectors are in the KB now (also one a killed run left, not opened here) */
        kb_pending_remove(v->pending, kb_store_dir(kb->store));
        v->pending = NULL;
    }
    if (v->superseded)
        unlink(v->superseded);
    free(v->superseded);
    free(v->published);
    v->superseded = v->published = NULL;
    return 0;
}

void kb_vec_abort(kb *kb)
{
    struct kb_vec *v = &kb->vec;
    kb_store_rollback(kb->store);
    struct kb_err perr;
    if (v->pending)
        kb_pending_save(v->pending, &perr); /* the next run can use what was embedded */
    if (v->published)
        unlink(v->published);
    free(v->superseded);
    free(v->published);
    v->superseded = v->published = NULL;
    kb_vec_discard(kb);
    v->record_loaded = 0; /* the model record may have been written inside the transaction */
}

void kb_vec_collect_garbage(kb *kb)
{
    struct kb_vindex_record rec;
    struct kb_err err;
    int has = kb_vindex_record_get(kb->store, &rec, &err);
    if (has < 0)
        return;
    DIR *d = opendir(kb_store_dir(kb->store));
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *dot = strstr(e->d_name, ".faiss");
        if (strncmp(e->d_name, "vectors.", 8) || !dot || (strcmp(dot, ".faiss") &&
                                                           strcmp(dot, ".faiss.tmp")))
            continue;
        if (has && !strcmp(e->d_name, rec.file))
            continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* Brings the recorded FAISS index in line with the vectors table: loads the current
 * generation, removes and adds the difference (or rebuilds when the type should change or
 * the file is unusable), and publishes the next generation. Needs the writer lock. */
static int vec_sync_apply(kb *kb, struct kb_vindex **vi, const int64_t *ids, size_t n)
{
    int64_t *have = NULL, *gone = NULL, *add = NULL;
    size_t n_have = 0, n_gone = 0, n_add = 0;
    int rc = kb_vindex_ids(*vi, &have, &n_have, &kb->err);
    if (!rc) {
        gone = malloc((n_have ? n_have : 1) * sizeof *gone);
        add = malloc((n ? n : 1) * sizeof *add);
        if (!gone || !add)
            rc = kb_fail(kb, KB_ENOMEM, "out of memory");
    }
    if (!rc) {
        if (n_have)
            qsort(have, n_have, sizeof *have, kb_vec_cmp_id);
        size_t i = 0, j = 0;
        while (i < n_have || j < n) {
            if (j == n || (i < n_have && have[i] < ids[j]))
                gone[n_gone++] = have[i++];
            else if (i == n_have || ids[j] < have[i])
                add[n_add++] = ids[j++];
            else
                i++, j++;
        }
        if (n_gone)
            rc = kb_vindex_remove(*vi, gone, n_gone, &kb->err);
    }
    float *vecs = NULL;
    if (!rc && n_add) {
        vecs = malloc(n_add * (size_t)kb->vec.dim * sizeof *vecs);
        rc = vecs ? kb_vectors_get(kb->store, add, n_add, kb->vec.dim, vecs, &kb->err)
                  : kb_fail(kb, KB_ENOMEM, "out of memory");
        rc = rc ? rc : kb_vindex_add(*vi, add, vecs, n_add, &kb->err);
    }
    free(vecs);
    free(have);
    free(gone);
    free(add);
    return rc;
}

int kb_vec_cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* 1 when the recorded generation's file is there (a quick look: opening it verifies it). */
static int vec_file_exists(kb *kb, const struct kb_vindex_record *rec)
{
    char *path = vec_file_path(kb, rec->file);
    struct stat st;
    int yes = path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(path);
    return yes;
}

static int vec_sync_with(kb *kb, const char *spec_text, int force);

int kb_vec_sync(kb *kb, const char *spec_text)
{
    struct kb_vec *v = &kb->vec;
    int rc = vec_load_record(kb);
    if (rc || !v->model_name)
        return rc;
    /* An index type asked for explicitly sticks (kb_meta 'index'); "auto" goes back to the
     * size-based choice. Later syncs without a request rebuild with the recorded choice. */
    char *recorded = NULL;
    if (spec_text && *spec_text) {
        if ((rc = kb_store_meta_set(kb->store, "index", spec_text, &kb->err)))
            return rc;
    } else if ((rc = kb_store_meta_get(kb->store, "index", &recorded, &kb->err)) == 0 &&
               strcmp(recorded, "auto")) {
        rc = vec_sync_with(kb, recorded, 0);
        free(recorded);
        return rc;
    } else if (rc && rc != KB_ENOTFOUND) {
        return rc; /* an index type asked for must not silently become the automatic one */
    }
    free(recorded);
    kb_err_clear(&kb->err);
    return vec_sync_with(kb, spec_text, spec_text && *spec_text);
}

/* kb_vec_sync with the spec to build (NULL = by size); force: rebuild even when current. */
static int vec_sync_with(kb *kb, const char *spec_text, int force)
{
    struct kb_vec *v = &kb->vec;
    int rc = 0;
    int64_t rev = 0;
    struct kb_vindex_record old;
    int has_old = 0;
    if ((rc = kb_vectors_rev(kb->store, &rev, &kb->err)) ||
        (has_old = kb_vindex_record_get(kb->store, &old, &kb->err)) < 0)
        return has_old < 0 ? has_old : rc;
    /* Up to date: nothing to publish, unless the recorded file has gone missing. */
    if (has_old && old.vectors_rev == rev && !force &&
        vec_file_exists(kb, &old))
        return 0;
    int64_t *ids = NULL;
    size_t n = 0;
    struct kb_vindex *vi = NULL;
    if ((rc = kb_vectors_all(kb->store, v->dim, &ids, NULL, &n, &kb->err)))
        return rc;
    struct kb_vindex_spec want;
    kb_vindex_spec_auto(&want, v->dim, n);
    if (spec_text && *spec_text && strcmp(spec_text, "auto") &&
        kb_vindex_spec_parse(&want, v->dim, spec_text, &kb->err) != 0)
        kb_vindex_spec_auto(&want, v->dim, n);
    /* Incremental when the current file is sound and still the right type; else rebuild. */
    if (has_old && !force && (rc = kb_vec_open_generation(kb, &old, &vi)) == 0) {
        struct kb_vindex_spec got;
        kb_vindex_get_spec(vi, &got);
        if (got.kind != want.kind || got.kind == KB_VINDEX_HNSW || old.dim != v->dim ||
            (rc = vec_sync_apply(kb, &vi, ids, n)) != 0) {
            kb_vindex_free(vi);
            vi = NULL;
        }
    }
    /* A rebuild mends an unusable file, not a lack of memory (a transaction SQLite rolled back
     * meanwhile fails the rebuild's first statement: kb_store_begin). */
    if (rc == KB_ENOMEM) {
        free(ids);
        return rc;
    }
    rc = 0;
    kb_err_clear(&kb->err);
    size_t n_built = n;
    if (!vi)
        rc = vec_build_all(kb, spec_text, &vi, &n_built);
    if (!rc)
        rc = vec_publish(kb, vi, has_old ? &old : NULL, rev);
    kb_vindex_free(vi);
    free(ids);
    return rc;
}

/* Opens a recorded generation after checking its file's sha256, size and dimension. */
int kb_vec_open_generation(kb *kb, const struct kb_vindex_record *rec, struct kb_vindex **out)
{
    char *path = vec_file_path(kb, rec->file);
    char digest[65];
    int rc = path ? 0 : kb_fail(kb, KB_ENOMEM, "out of memory");
    if (!rc && kb_sha256_file(path, 0, 0, digest) != 0)
        rc = kb_fail(kb, KB_ECORRUPT, "%s: %s", path, strerror(errno));
    else if (!rc && strcmp(digest, rec->sha256))
        rc = kb_fail(kb, KB_ECORRUPT, "%s: contents differ from what was recorded (sha256)",
                     path);
    struct kb_vindex_spec expect;
    if (!rc)
        rc = kb_vindex_spec_parse(&expect, rec->dim, rec->spec, &kb->err);
    if (!rc)
        rc = kb_vindex_read(out, path, &expect, &kb->err);
    if (!rc && (int64_t)kb_vindex_count(*out) != rec->n_vectors) {
        rc = kb_fail(kb, KB_ECORRUPT, "%s: holds %zu vectors, the record says %lld", path,
                     kb_vindex_count(*out), (long long)rec->n_vectors);
        kb_vindex_free(*out);
        *out = NULL;
    }
    free(path);
    return rc;
}

/* ---- Re-embedding with another model ---------------------------------------------------- */

/* Queues every chunk of the KB for embedding with the open model. */
static int vec_queue_all(kb *kb)
{
    int64_t *ids = NULL;
    char **titles = NULL, **headings = NULL, **texts = NULL;
    size_t n = 0;
    int rc = kb_store_chunk_texts(kb->store, &ids, &titles, &headings, &texts, &n, &kb->err);
    for (size_t i = 0; i < n && !rc; i++)
        rc = kb_vec_queue(kb, ids[i], titles[i], headings[i], texts[i], strlen(texts[i]));
    for (size_t i = 0; i < n; i++) {
        free(titles[i]);
        free(headings[i]);
        free(texts[i]);
    }
    free(ids);
    free(titles);
    free(headings);
    free(texts);
    return rc;
}

int kb_reindex(kb *kb, const char *model, const char *index, kb_ingest_stats *stats)
{
    int rc = kb_usable(kb, 1);
    if (rc)
        return rc;
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!model || !*model)
        return kb_fail(kb, KB_EINVALID, "kb_reindex: no model given");
    if ((rc = kb_store_lock(kb->store, &kb->err)))
        return rc;
    kb_vec_collect_garbage(kb);
    struct kb_vec *v = &kb->vec;
    kb_vec_close(kb);
    v->n_embedded = v->n_reused = 0;
    /* Forget the KB's record while opening, so any model is accepted. */
    v->record_loaded = 1;
    if ((rc = vec_open_model(kb, model)))
        goto done;
    kb_model_info info;
    kb_model_get_info(v->model, &info);
    v->dim = info.dim;
    /* One transaction: readers keep the old vectors until every chunk has a new one. */
    if ((rc = kb_store_begin(kb->store, &kb->err)))
        goto done;
    struct stat st;
    char *abs = stat(info.name, &st) == 0 && S_ISDIR(st.st_mode) ? kb_path_absolute(info.name)
                                                                 : NULL;
    if (abs)
        info.name = abs;
    rc = kb_vectors_clear(kb->store, &kb->err);
    rc = rc ? rc : vec_record_write(kb, &info, v->open_identity);
    free(v->model_name);
    v->model_name = strdup(info.name); /* before free(abs): info.name may be abs */
    free(abs);
    memcpy(v->identity, v->open_identity, sizeof v->identity);
    rc = rc ? rc : vec_queue_all(kb);
    rc = rc ? rc : kb_vec_flush(kb);
    rc = rc ? rc : kb_vec_sync(kb, index);
    if (rc) {
        kb_vec_abort(kb);
        goto done;
    }
    if ((rc = kb_vec_commit(kb, 0)))
        goto done;
    if (stats) {
        stats->embedded = v->n_embedded;
        stats->reused = v->n_reused;
    }
done:
    kb_store_unlock(kb->store);
    v->record_loaded = 0; /* read the record afresh next time */
    return rc;
}

int kb_rebuild_index(kb *kb, const char *index)
{
    int rc = kb_usable(kb, 1);
    if (rc)
        return rc;
    if ((rc = kb_store_lock(kb->store, &kb->err)))
        return rc;
    kb_vec_collect_garbage(kb);
    kb->vec.record_loaded = 0;
    if (!(rc = vec_load_record(kb)) && !kb->vec.model_name)
        rc = kb_fail(kb, KB_EINVALID, "this knowledge base has no vectors to index");
    if (!rc && !(rc = kb_store_begin(kb->store, &kb->err))) {
        if ((rc = kb_vec_sync(kb, index && *index ? index : "auto")))
            kb_vec_abort(kb);
        else
            rc = kb_vec_commit(kb, 0);
    }
    kb_store_unlock(kb->store);
    return rc;
}

/* ---- Searching -------------------------------------------------------------------------- */

int kb_vec_has_vectors(kb *kb, int *has)
{
    int64_t any = 0;
    *has = 0;
    int rc = vec_load_record(kb);
    if (rc || !kb->vec.model_name || (rc = kb_vectors_any(kb->store, &any, &kb->err)))
        return rc;
    *has = any != 0;
    return 0;
}

static void vec_drop_search_index(struct kb_vec *v)
{
    if (v->vi_shared)
        kb_shared_put(v->vi);
    else
        kb_vindex_free(v->vi);
    v->vi = NULL;
    v->vi_shared = 0;
}

struct vec_gen_load {
    kb *kb;
    const struct kb_vindex_record *rec;
    int called;
};

static int vec_gen_load(void *arg, void **obj)
{
    struct vec_gen_load *a = arg;
    struct kb_vindex *vi = NULL;
    a->called = 1;
    int rc = kb_vec_open_generation(a->kb, a->rec, &vi);
    *obj = vi;
    return rc;
}

static void vec_gen_free(void *obj)
{
    kb_vindex_free(obj);
}

/* Opens the recorded generation into v->vi for searching, shared with every other handle of
 * the process on the same file (util/shared.h): a generation file is never changed once
 * recorded, and its key holds the file's real path and recorded sha256, which the first
 * handle checked when it read the file, so 8 handles of kb serve hold one copy, not 8. */
static int vec_open_shared_generation(kb *kb, const struct kb_vindex_record *rec)
{
    struct kb_vec *v = &kb->vec;
    char *path = vec_file_path(kb, rec->file);
    char *real = path ? realpath(path, NULL) : NULL;
    free(path);
    if (!real) /* missing (or no memory): the plain open says which */
        return kb_vec_open_generation(kb, rec, &v->vi);
    size_t cap = strlen(real) + strlen(rec->sha256) + strlen(rec->spec) + 96;
    char *key = malloc(cap);
    if (!key) {
        free(real);
        return kb_fail(kb, KB_ENOMEM, "out of memory");
    }
    snprintf(key, cap, "vindex\n%s\n%s\n%s\n%d\n%lld", real, rec->sha256, rec->spec, rec->dim,
             (long long)rec->n_vectors);
    free(real);
    struct vec_gen_load args = { kb, rec, 0 };
    void *vi = NULL;
    int rc = kb_shared_get(key, vec_gen_load, &args, vec_gen_free, &vi);
    free(key);
    if (rc == KB_ENOMEM && !args.called)
        kb_fail(kb, rc, "out of memory");
    if (!rc) {
        v->vi = vi;
        v->vi_shared = 1;
    }
    return rc;
}

/* The index for searching: the recorded generation when it matches the vectors (verified
 * once per handle and generation), else an exact index built in memory from the vectors —
 * readers never write, and never trust a stale or damaged file. */
static int vec_search_index(kb *kb)
{
    struct kb_vec *v = &kb->vec;
    int64_t rev = 0;
    struct kb_vindex_record rec;
    int has = 0, rc = kb_vectors_rev(kb->store, &rev, &kb->err);
    if (!rc && (has = kb_vindex_record_get(kb->store, &rec, &kb->err)) < 0)
        rc = has;
    if (rc)
        return rc;
    if (v->vi && v->vi_rev == rev)
        return 0;
    vec_drop_search_index(v);
    if (has && rec.vectors_rev == rev && vec_open_shared_generation(kb, &rec) == 0) {
        v->vi_rev = rev;
        return 0;
    }
    kb_err_clear(&kb->err);
    size_t n = 0;
    if ((rc = vec_build_all(kb, "flat", &v->vi, &n)))
        return rc;
    v->vi_rev = rev;
    return 0;
}

/* Exact search over the vectors of the chunks a filter allows, in slices, keeping the best k
 * (ties to the smaller id). */
static int vec_search_filtered(kb *kb, const float *q, size_t k, const struct kb_filter *filter,
                               struct kb_vec_hit *hits, size_t *n_out)
{
    struct kb_vec *v = &kb->vec;
    int64_t *ids = NULL;
    size_t n = 0, n_hits = 0;
    int rc = kb_filter_chunk_ids(kb->store, filter, &ids, &n, &kb->err);
    enum { SLICE = 4096 };
    float *vecs = rc ? NULL : malloc((size_t)SLICE * (size_t)v->dim * sizeof *vecs);
    if (!rc && !vecs)
        rc = kb_fail(kb, KB_ENOMEM, "out of memory");
    for (size_t first = 0; !rc && first < n; first += SLICE) {
        size_t len = n - first < SLICE ? n - first : SLICE;
        if ((rc = kb_vectors_get(kb->store, ids + first, len, v->dim, vecs, &kb->err)))
            break;
        for (size_t i = 0; i < len; i++) {
            float s = 0;
            for (int d = 0; d < v->dim; d++)
                s += q[d] * vecs[i * (size_t)v->dim + (size_t)d];
            size_t pos = n_hits < k ? n_hits++ : k;
            while (pos > 0 && hits[pos - 1].score < s) {
                if (pos < k)
                    hits[pos] = hits[pos - 1];
                pos--;
            }
            if (pos < k)
                hits[pos] = (struct kb_vec_hit){ ids[first + i], s };
        }
    }
    free(vecs);
    free(ids);
    *n_out = n_hits;
    return rc;
}

int kb_vec_search(kb *kb, const char *query, size_t k, const struct kb_filter *filter,
                  struct kb_vec_hit **out, size_t *n_out)
{
    struct kb_vec *v = &kb->vec;
    *out = NULL;
    *n_out = 0;
    int rc = vec_load_record(kb);
    if (rc)
        return rc;
    if (!v->model_name)
        return kb_fail(kb, KB_EINVALID, "this knowledge base has no vectors, so mode must be "
                       "\"bm25\"");
    if (!v->model && (rc = vec_open_model(kb, v->model_name)))
        return rc;
    int filtered = kb_filter_active(filter);
    if (!filtered && (rc = vec_search_index(kb)))
        return rc;
    float *q = malloc((size_t)v->dim * sizeof *q);
    int64_t *ids = malloc((k ? k : 1) * sizeof *ids);
    float *scores = malloc((k ? k : 1) * sizeof *scores);
    struct kb_vec_hit *hits = malloc((k ? k : 1) * sizeof *hits);
    size_t n = 0;
    if (!q || !ids || !scores || !hits) {
        rc = kb_fail(kb, KB_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = kb_model_embed(v->model, &query, 1, KB_EMBED_QUERY, q))) {
        rc = kb_fail(kb, rc, "embedding the query: %s", kb_model_errmsg(v->model));
        goto done;
    }
    if (filtered) {
        rc = vec_search_filtered(kb, q, k, filter, hits, &n);
    } else if (!(rc = kb_vindex_search(v->vi, q, k, ids, scores, &n, &kb->err))) {
        for (size_t i = 0; i < n; i++)
            hits[i] = (struct kb_vec_hit){ ids[i], scores[i] };
    }
    if (rc)
        goto done;
    *out = hits;
    *n_out = n;
    hits = NULL;
done:
    free(q);
    free(ids);
    free(scores);
    free(hits);
    return rc;
}

/* kb check: every chunk has exactly one vector of the recorded dimension, and the recorded
 * FAISS file (when current) is intact and holds exactly the stored ids. */
int kb_vec_check(kb *kb)
{
    struct kb_vec *v = &kb->vec;
    v->record_loaded = 0;
    int rc = vec_load_record(kb);
    if (rc || !v->model_name)
        return rc;
    const char *db = kb_store_dir(kb->store);
    int64_t missing = 0;
    if ((rc = kb_vectors_missing(kb->store, &missing, &kb->err)))
        return rc;
    if (missing)
        return kb_fail(kb, KB_ECORRUPT, "%s: %lld chunks have no vector from model '%s'", db,
                       (long long)missing, v->model_name);
    int64_t *ids = NULL, *have = NULL;
    float *vecs = NULL;
    size_t n = 0, n_have = 0;
    struct kb_vindex *vi = NULL;
    struct kb_vindex_record rec;
    int64_t rev = 0;
    int has = 0;
    /* Reading every blob checks each one's size against the dimension. */
    if ((rc = kb_vectors_all(kb->store, v->dim, &ids, &vecs, &n, &kb->err)) ||
        (rc = kb_vectors_rev(kb->store, &rev, &kb->err)) ||
        (has = kb_vindex_record_get(kb->store, &rec, &kb->err)) < 0)
        goto done;
    if (!has || rec.vectors_rev != rev)
        goto done; /* no current file: searches use an exact in-memory index */
    if ((rc = kb_vec_open_generation(kb, &rec, &vi)) ||
        (rc = kb_vindex_ids(vi, &have, &n_have, &kb->err)))
        goto done;
    if (n_have)
        qsort(have, n_have, sizeof *have, kb_vec_cmp_id);
    if (kb_vindex_dim(vi) != v->dim)
        rc = kb_fail(kb, KB_ECORRUPT, "%s/%s: dimension %d, the model's is %d", db, rec.file,
                     kb_vindex_dim(vi), v->dim);
    for (size_t i = 0; !rc && i < n && i < n_have; i++)
        if (have[i] != ids[i])
            rc = kb_fail(kb, KB_ECORRUPT, "%s/%s: vector ids differ from the chunks' (first at "
                         "chunk %lld)", db, rec.file, (long long)(have[i] < ids[i] ? have[i] : ids[i]));
    if (!rc && n != n_have)
        rc = kb_fail(kb, KB_ECORRUPT, "%s/%s: holds %zu vectors for %zu chunks", db, rec.file,
                     n_have, n);
done:
    has = has < 0 ? has : 0;
    rc = rc ? rc : has;
    kb_vindex_free(vi);
    free(ids);
    free(vecs);
    free(have);
    return rc;
}

int kb_vec_stat(kb *kb, kb_status_info *out)
{
    struct kb_vec *v = &kb->vec;
    out->model[0] = out->index[0] = '\0';
    out->dim = 0;
    out->n_vectors = out->index_vectors = 0;
    out->index_generation = 0;
    out->index_stale = 0;
    v->record_loaded = 0;
    int rc = vec_load_record(kb);
    if (rc || !v->model_name)
        return rc;
    snprintf(out->model, sizeof out->model, "%s", v->model_name);
    out->dim = v->dim;
    int64_t n = 0, rev = 0;
    struct kb_vindex_record rec;
    int has = 0;
    if ((rc = kb_vectors_count(kb->store, &n, &kb->err)) ||
        (rc = kb_vectors_rev(kb->store, &rev, &kb->err)) ||
        (has = kb_vindex_record_get(kb->store, &rec, &kb->err)) < 0)
        return has < 0 ? has : rc;
    out->n_vectors = (size_t)n;
    if (has) {
        snprintf(out->index, sizeof out->index, "%s", rec.spec);
        out->index_generation = rec.generation;
        out->index_vectors = (size_t)rec.n_vectors;
        out->index_stale = rec.vectors_rev != rev;
    } else {
        out->index_stale = n > 0;
    }
    return 0;
}

void kb_vec_close(kb *kb)
{
    struct kb_vec *v = &kb->vec;
    kb_vec_discard(kb);
    free(v->queue);
    free(v->published);
    free(v->superseded);
    kb_pending_close(v->pending);
    kb_model_close(v->model);
    vec_drop_search_index(v);
    free(v->model_name);
    memset(v, 0, sizeof *v);
}
