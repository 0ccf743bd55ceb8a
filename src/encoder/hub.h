/* hub.h — encoder models from the Hugging Face hub: downloaded into kb's model cache, found
 * there or in the Hugging Face cache, listed.
 *
 * kb's cache ($XDG_CACHE_HOME/kb/models, else ~/.cache/kb/models) holds one folder per model,
 * ORG--NAME/, with the model's files as the hub names them (config.json, model.safetensors,
 * vocab.txt, 1_Pooling/config.json, ...), kb_model.json when kb knows the model's retrieval
 * prefixes, and kb_manifest.json (name, revision, commit, files with sizes and SHA-256), written
 * last and atomically: a folder without a manifest is an unfinished download.
 *
 * The Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub) is read, never written:
 * models--ORG--NAME/refs/main holds a commit, snapshots/<commit>/ the files.
 *
 * A model folder is "complete" when config.json, model.safetensors and vocab.txt or
 * tokenizer.json are there (and, in kb's cache, the manifest). */
#ifndef KB_ENCODER_HUB_H
#define KB_ENCODER_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define KB_HUB_MANIFEST "kb_manifest.json"
#define KB_HUB_SETTINGS "kb_model.json"
#define KB_HUB_DEFAULT_ENDPOINT "https://huggingface.co"

/* Finds a complete folder for a hub name ("BAAI/bge-small-en-v1.5"): kb's cache first, then
 * the Hugging Face cache (refs/main's snapshot, else the first complete snapshot by name).
 * Never downloads. *out_dir is malloc'ed. KB_EINVALID for a name that is not ORG/NAME,
 * KB_ENOTFOUND when neither cache has it, KB_ENOMEM. */
int kb_hub_resolve(char **out_dir, const char *name, struct kb_err *err);

/* Downloads what kb needs of model `name` at opts->revision into opts->cache_dir (see
 * kb_pull_options in kb/kb.h; NULL opts = defaults) and sets *out_dir (malloc'ed) to its
 * folder. Nothing is fetched when the folder already holds the revision's commit. Files are
 * written as FILE.part, checked against the hub's size and SHA-256, fsynced and renamed; an
 * interrupted download resumes from its .part (within this call, up to three times, and on
 * the next call). Errors, one line naming the model or file:
 *   KB_EINVALID      bad name or options
 *   KB_ENOTFOUND     no such model or revision (the hub's 401 for a model it does not show
 *                    without a token included; the message mentions HF_TOKEN)
 *   KB_EAUTH         the token was refused, the model is gated, or HTTP 403
 *   KB_EFORMAT       the repo has no model.safetensors or tokenizer, a file's size or SHA-256
 *                    differs from what the hub announced (the .part is deleted), bad API answer
 *   KB_EUNAVAILABLE  the hub cannot be reached, the transfer broke off, or HTTP 429/5xx
 *   KB_ECANTCREATE   the cache folder cannot be created
 *   KB_EIO           a write failed (disk full, ...)
 *   KB_ELOCKED       another process is pulling the same model
 * The token ($HF_TOKEN) is sent to the endpoint's host only and never appears in messages. */
struct kb_pull_options;
int kb_hub_pull(char **out_dir, const char *name, const struct kb_pull_options *opts,
                struct kb_err *err);

/* Every model folder in kb's cache (source "kb", complete or not) and in the Hugging Face
 * cache (source "huggingface", those with a snapshot), sorted by name then source. Missing
 * caches give an empty list. *out (n entries) is freed with kb_hub_list_free. */
struct kb_model_entry;
int kb_hub_list(struct kb_model_entry **out, size_t *n, struct kb_err *err);
void kb_hub_list_free(struct kb_model_entry *entries, size_t n);

/* ---- shared by hub.c and hub_pull.c -------------------------------------------------- */

/* 0 when `name` is ORG/NAME in the hub's alphabet ([A-Za-z0-9._-], no "--" or "..", not
 * starting with '.' or '-'), else KB_EINVALID with a message. */
int kb_hub_check_name(const char *name, struct kb_err *err);

/* kb's model cache folder, malloc'ed (NULL when out of memory). */
char *kb_hub_cache_dir(void);

/* The folder of `name` inside cache_dir: cache_dir/ORG--NAME, malloc'ed. */
char *kb_hub_model_dir(const char *cache_dir, const char *name);

/* 1 when dir holds config.json, model.safetensors and vocab.txt or tokenizer.json. */
int kb_hub_has_model_files(const char *dir);

/* Writes dir/kb_model.json with the retrieval prefixes kb knows for `name` (atomically);
 * does nothing for other models. 0 or KB_EIO. */
int kb_hub_write_settings(const char *dir, const char *name, struct kb_err *err);

/* Writes `len` bytes to path atomically: path.tmp, fsync, rename, fsync of the folder. */
int kb_hub_write_atomic(const char *path, const char *data, size_t len, struct kb_err *err);

#endif
