/*
 * kb.h — the public interface of libkb, a retrieval-augmented knowledge base.
 *
 * A knowledge base (KB) is one directory holding a SQLite database (the single source of
 * truth: documents, chunks, full-text index). Programs open it with kb_open(), fill it with
 * kb_ingest() or kb_add_documents(), and query it with kb_search().
 *
 * Conventions
 *  - Fallible functions return 0 on success or a negative kb_status. On failure the handle
 *    keeps a one-line message naming the file, line or field: kb_errmsg(). kb_strerror()
 *    describes a code.
 *  - Ownership: a `**out` result belongs to the caller and is released with its matching
 *    _free() (kb_results_free, kb_prompt_free, kb_answer_free, kb_model_list_free, kb_free),
 *    never with free(); getters return borrowed pointers that live as long as their parent;
 *    strings passed to callbacks live only during the call; the library copies what it is
 *    given (paths, documents, options) and keeps no caller pointer after a call returns.
 *  - kb_close(NULL) and every *_free(NULL) are no-ops.
 *  - Misuse is an error, never a crash: a NULL, closed or never-opened kb or kb_model handle
 *    is refused with KB_EINVALID (kb_errmsg() then gives a static message), and closing a
 *    handle or freeing a kb_results twice does nothing. (The library keeps a registry of live
 *    handles; a freed address that a later open happens to reuse is live again.)
 *  - Option structs carry a `version` field; initialise them with their *_INIT macro so
 *    that fields added later get their defaults. Passing NULL options means defaults.
 *  - Threading: a kb handle must not be used by two threads at once; one handle per thread
 *    (each opening the same directory) is always safe, for reading and writing (writers take
 *    turns: KB_ELOCKED). A kb_model likewise, one call at a time. Results, prompts, answers
 *    and model lists are independent of their handle once returned and may be read by several
 *    threads at once, but freed only when no thread reads them. Functions without a handle
 *    (kb_strerror, kb_version, kb_model_pull, kb_model_list, kb_service_tokens) are
 *    thread-safe. Callbacks run on the calling thread, inside the call.
 *    Handles share what they only read: all handles (and kb_models) of a process opened on
 *    the same model folder use one copy of its weights and tokenizer, and all handles of a KB
 *    searching the same vector-index generation use one copy of that index; each keeps only
 *    its own scratch, SQLite connection and error message. A copy is freed with the last
 *    handle that uses it, so a handle per thread costs little memory.
 *  - BM25 performance: a handle's first BM25 search (modes bm25 and hybrid) ranks with
 *    SQLite FTS5, which scores every chunk matching any query term (~30 ms at 100k chunks).
 *    From its second one on, a handle ranks from an in-memory index of the chunks' terms
 *    (built once, ~3 s of CPU and ~150 MB at 100k chunks, shared by all handles of the process on
 *    the same KB and chunk set, rebuilt after any change of the chunks), with exactly FTS5's
 *    scores and order but skipping chunks that cannot reach the top k. So long-lived handles
 *    (kb serve, kb chat, programs that keep a handle) get fast BM25, and a one-shot query
 *    does not pay for the build. Searches with a filter always use FTS5. The environment
 *    variable KB_BM25_MEMORY=0 turns the index off, =1 uses it from the first search.
 *  - Library code never exits or aborts the process.
 *  - Linking: libkb.so (-lkb, `pkg-config kb`, CMake's kb::kb) or libkb.a (define KB_STATIC;
 *    `pkg-config --static kb`); docs/LIBRARY.md.
 */
#ifndef KB_KB_H
#define KB_KB_H

#include <stddef.h>
#include <stdint.h>

/* KB_API marks the functions libkb exports. The library is compiled with hidden visibility, so
 * these are the only symbols libkb.so exports. Define KB_STATIC when linking libkb.a
 * (`pkg-config --static kb` adds it) so that a shared object embedding the static library does
 * not re-export them. */
#if defined(KB_STATIC)
#define KB_API
#elif defined(__GNUC__) || defined(__clang__)
#define KB_API __attribute__((visibility("default")))
#else
#define KB_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. 0 is success; every error is negative. */
typedef enum kb_status {
    KB_OK = 0,
    KB_ERROR = -1,      /* unspecified failure */
    KB_EINVALID = -2,   /* bad argument at the API boundary, or a usage error */
    KB_ENOMEM = -3,     /* out of memory, or a size cap was reached */
    KB_ENOTFOUND = -4,  /* a path, KB or document does not exist */
    KB_ENOTKB = -5,     /* the directory exists but is not a KB */
    KB_EVERSION = -6,   /* the KB was written by a newer kb (schema too new) */
    KB_ELOCKED = -7,    /* another process is writing to this KB */
    KB_EIO = -8,        /* read or write failure (disk full, permission, ...) */
    KB_EFORMAT = -9,    /* input data is malformed (file, dataset, model) */
    KB_ECANTCREATE = -10, /* cannot create the KB directory or its files */
    KB_ECORRUPT = -11,  /* kb_check found an inconsistency */
    KB_EPARTIAL = -12,  /* the operation finished but skipped some inputs */
    KB_EUNAVAILABLE = -13, /* a service (LLM backend, model hub) is unreachable, timed out,
                              stalled or still failing after retries */
    KB_EAUTH = -14,     /* a service refused the credentials (HTTP 401/403) */
    KB_ECONFIG = -15,   /* configuration invalid: config file, key file mode, missing model */
    KB_ECANCELED = -16  /* stopped on request (kb_ingest_options.cancel, or a kb_token_cb
                           returning non-zero); what was complete is kept */
} kb_status;

typedef struct kb kb;

/* ---- Opening --------------------------------------------------------------------------- */

#define KB_OPEN_CREATE   0x1u  /* create the KB if the directory is missing or empty */
#define KB_OPEN_READONLY 0x2u  /* open for reading only (search, check) */

/* Opens the KB in `dir`. Without KB_OPEN_CREATE a missing directory is KB_ENOTFOUND and a
 * directory without a KB is KB_ENOTKB. A KB written by a newer schema is KB_EVERSION; an
 * older one is migrated forward on a writable open. On failure *out is still set to a handle
 * that only serves kb_errmsg() and kb_close(), so the message can be read; it may be NULL
 * when memory ran out. */
KB_API int kb_open(kb **out, const char *dir, unsigned flags);

/* Closes the handle and releases everything it holds. kb_close(NULL) is a no-op. */
KB_API void kb_close(kb *kb);

/* The message of the last failure on this handle ("" when none). Borrowed. */
KB_API const char *kb_errmsg(const kb *kb);

/* A static description of a status code. */
KB_API const char *kb_strerror(int status);

/* The library version, "MAJOR.MINOR.PATCH". */
KB_API const char *kb_version(void);

/* ---- Ingesting files ------------------------------------------------------------------- */

typedef enum kb_event_type {
    KB_EVENT_ADDED = 1,    /* a new document was stored */
    KB_EVENT_UPDATED,      /* a changed document replaced its chunks */
    KB_EVENT_UNCHANGED,    /* nothing to do */
    KB_EVENT_REMOVED,      /* the file is gone from an ingested root: document removed */
    KB_EVENT_SKIPPED,      /* the file should have been ingested but was not; `reason` says why */
    KB_EVENT_IGNORED,      /* not a format kb reads (e.g. an image); `reason` names the format */
    KB_EVENT_MOVED         /* the same content now lives at `path` (renamed from `old_path`):
                              the document moved, nothing was re-embedded */
} kb_event_type;

typedef struct kb_event {
    kb_event_type type;
    const char *path;   /* as the walk reached it: relative when the user gave a relative root */
    const char *reason; /* for KB_EVENT_SKIPPED: one line, e.g. "not valid UTF-8 at byte 12" */
    size_t n_chunks;    /* for ADDED and UPDATED */
    size_t n_embedded;  /* chunks of this file the model embedded (the rest kept vectors) */
    size_t n_tokens;    /* model tokens embedded for this file */
    const char *old_path; /* for KB_EVENT_MOVED: where the document was stored before */
} kb_event;

/* Called once per file; the event and its strings live only during the call. */
typedef void (*kb_event_cb)(const kb_event *event, void *payload);

typedef struct kb_ingest_options {
    unsigned version;
    const char *const *include; /* globs (fnmatch) a file's path relative to its root must match */
    size_t n_include;
    const char *const *exclude; /* globs that exclude a file or a whole folder */
    size_t n_exclude;
    int include_hidden;         /* walk into names starting with '.' */
    int follow_symlinks;        /* follow symbolic links (loops are detected) */
    uint64_t max_file_bytes;    /* larger files are skipped; 0 = default (64 MiB); files
                                   over 1 GiB are always skipped (kb reads a file whole) */
    unsigned chunk_tokens;      /* target chunk size in tokens; 0 = default */
    unsigned overlap_tokens;    /* tokens shared by consecutive chunks of a section */
    kb_event_cb on_event;
    void *payload;
    const char *model;          /* encoder model (hub name or folder) for a KB that has none;
                                   NULL = the KB's own, else KB_DEFAULT_MODEL when downloaded,
                                   else keyword search only; "none" = keyword search only. A
                                   different model than the KB's is KB_ECONFIG (kb_reindex), and
                                   so is a model for a KB that holds passages without one
                                   (kb_reindex embeds them all); the default is then not
                                   taken, and the notice says so. */
    const char *index;          /* vector index type ("flat", "ivf", "hnsw", with parameters
                                   as "ivf:nlist=1024,nprobe=32"); NULL = chosen by size */
    /* Version 3: */
    const volatile int *cancel; /* when *cancel turns non-zero (e.g. set by a SIGINT handler)
                                   the run stops after the current file, commits the files
                                   completed so far (removing nothing) and returns
                                   KB_ECANCELED; the next run goes on from there */
    int lock_wait_ms;           /* when another process is writing: 0 = KB_ELOCKED at once,
                                   > 0 = wait up to this long, < 0 = wait as long as it takes */
    int dry_run;                /* report what would change (events, stats) and change nothing:
                                   files are compared by stat and content hash, not chunked */
} kb_ingest_options;

#define KB_INGEST_OPTIONS_VERSION 3
#define KB_INGEST_OPTIONS_INIT { KB_INGEST_OPTIONS_VERSION, NULL, 0, NULL, 0, 0, 0, 0, 0, 0, \
                                 NULL, NULL, NULL, NULL, NULL, 0, 0 }
#define KB_DEFAULT_CHUNK_TOKENS 256
#define KB_DEFAULT_OVERLAP_TOKENS 32
#define KB_DEFAULT_MAX_FILE_BYTES (64u * 1024u * 1024u)

typedef struct kb_ingest_stats {
    size_t added, updated, unchanged, removed, skipped, ignored;
    size_t chunks;      /* chunks written by this run */
    double seconds;
    size_t embedded;    /* chunks embedded by the model in this run */
    size_t reused;      /* chunks whose unchanged text kept its stored embedding */
    size_t tokens;      /* model tokens embedded ([CLS]/[SEP] and prefixes included) */
    const char *notice; /* a one-line note for the user (e.g. no model: keyword search only),
                           or NULL; static */
    size_t moved;       /* documents whose content moved to a new path (kept their vectors) */
    double embed_seconds;   /* time spent in the encoder */
    double commit_seconds;  /* time spent committing: vector index written, transaction */
} kb_ingest_stats;

/* Walks `paths` (files or folders) and brings the KB in line with them: new and changed
 * files are chunked and stored, unchanged ones are left alone (same size, mtime and inode:
 * not even read; same content hash: not re-chunked), a file whose content is stored under a
 * path that no longer exists is moved there, and documents whose files are gone from an
 * ingested folder are removed. Every file gets one event.
 * The whole run is one transaction: searches see the KB as it was until the run commits,
 * additions, updates, moves and removals together, with the vector index generation that
 * matches them. Chunks whose text is already stored anywhere in the KB keep their embedding.
 * Returns 0, KB_EPARTIAL when some files were skipped (the rest is stored), KB_ECANCELED
 * (opts->cancel), or an error, after which the KB is as it was before the run; a missing
 * root is KB_ENOTFOUND and nothing is changed. Needs a writable handle; a second writer gets
 * KB_ELOCKED (see opts->lock_wait_ms). `stats` may be NULL. */
KB_API int kb_ingest(kb *kb, const char *const *paths, size_t n_paths,
                     const kb_ingest_options *opts, kb_ingest_stats *stats);

/* An in-memory document. `id` names it (used as its path in results); `text` must be valid
 * UTF-8 of `text_len` bytes; `title` may be NULL; `format` is "text" or "markdown";
 * `metadata` (may be NULL) is a JSON object as text (at most 64 KiB), e.g.
 * {"url": "https://…", "tags": ["vpn"]}: stored with the document and returned with its
 * search results (kb_result.metadata); not searched. */
typedef struct kb_document {
    const char *id;
    const char *title;
    const char *text;
    size_t text_len;
    const char *format;
    const char *metadata;
} kb_document;

/* Stores `n_docs` in-memory documents in one transaction, replacing documents with the same
 * id. Either all are stored or, on error, none. */
KB_API int kb_add_documents(kb *kb, const kb_document *docs, size_t n_docs,
                            const kb_ingest_options *opts, kb_ingest_stats *stats);

/* Deletes the documents with these ids (an in-memory document's id, or a file's stored
 * absolute path) and their chunks and vectors, in one transaction with the matching vector
 * index. Ids not stored are not an error; *n_deleted (may be NULL) counts those that were.
 * Waits for another writer as kb_ingest_options.lock_wait_ms says (`lock_wait_ms`). */
KB_API int kb_delete_documents(kb *kb, const char *const *ids, size_t n_ids, int lock_wait_ms,
                               size_t *n_deleted);

/* Re-embeds every chunk with `model` (hub name or folder) and makes it the KB's model, in
 * one transaction (searches see the old vectors until it commits), then rebuilds the vector
 * index (`index` as in kb_ingest_options, NULL = by size). Chunks keep their boundaries: a
 * chunk longer than the new model takes is embedded truncated, so re-ingest the folders
 * when moving to a model with a shorter maximum. `stats` (may be NULL) gets embedded and
 * reused counts. */
KB_API int kb_reindex(kb *kb, const char *model, const char *index, kb_ingest_stats *stats);

/* Rebuilds the vector index from the stored vectors, as `index` ("flat", "ivf", "hnsw" with
 * optional parameters; NULL or "auto" = chosen by size), and publishes it. */
KB_API int kb_rebuild_index(kb *kb, const char *index);

/* ---- Searching -------------------------------------------------------------------------- */

typedef enum kb_mode {
    KB_MODE_BM25 = 1,         /* keywords (FTS5 BM25) */
    KB_MODE_VECTOR = 2,       /* the query's embedding against the chunks' (FAISS) */
    KB_MODE_HYBRID = 3        /* both rankings fused (kb_search_options.fusion) */
} kb_mode;

typedef enum kb_fusion {
    KB_FUSION_RRF = 0,        /* Reciprocal Rank Fusion: sum of 1 / (60 + rank) */
    KB_FUSION_WEIGHTED = 1    /* bm25_weight * BM25 + (1 - bm25_weight) * cosine, each min-max
                                 normalised over its candidates */
} kb_fusion;

typedef struct kb_search_options {
    unsigned version;
    size_t k;                 /* number of results; 0 = 10 */
    kb_mode mode;             /* 0 = hybrid when the KB has vectors, else BM25 */
    int group_by_document;    /* return each document once, scored by its best chunk */
    const char *hl_open;      /* snippet highlight markers; NULL = none */
    const char *hl_close;
    kb_fusion fusion;         /* how hybrid mode combines the rankings (default weighted) */
    double bm25_weight;       /* KB_FUSION_WEIGHTED's weight of BM25, 0..1 (default 0.8) */
    /* Filters, honoured by every mode (NULL / 0 = no condition): */
    const char *path_glob;    /* the document's stored path (absolute for files) matches this
                                 glob; its star also spans slashes, so a folder is its path
                                 followed by a slash and a star */
    const char *format;       /* the document's format: "markdown", "pdf", "html", ... (one
                                 that kb does not read is KB_EINVALID, naming those it does) */
    int64_t modified_after;   /* the file was modified after this time (Unix seconds, 0 to
                                 KB_TIME_MAX; others are KB_EINVALID) */
} kb_search_options;

/* The last second whose nanoseconds fit in int64_t (2262-04-11T23:47:16Z): kb stores file
 * times in nanoseconds. */
#define KB_TIME_MAX INT64_C(9223372036)

#define KB_SEARCH_OPTIONS_VERSION 3
/* The default fusion was chosen on SciFact's train split (docs/BENCHMARKS.md). */
#define KB_SEARCH_OPTIONS_INIT { KB_SEARCH_OPTIONS_VERSION, 0, (kb_mode)0, 0, NULL, NULL, \
                                 KB_FUSION_WEIGHTED, 0.8, NULL, NULL, 0 }

typedef struct kb_result {
    int64_t chunk_id;
    int64_t doc_id;
    const char *path;         /* the document's path (absolute for files) or in-memory id */
    const char *title;        /* may be "" */
    const char *heading_path; /* e.g. "Install › Linux"; may be "" */
    const char *format;
    const char *text;         /* the chunk's full text */
    const char *snippet;      /* a short extract around the matches (for the first 10 results
                                 that BM25 found), else the passage's opening */
    uint32_t line_start, line_end; /* 1-based, inclusive */
    uint64_t byte_start, byte_end; /* byte range of the chunk in the document */
    double score;             /* higher is better */
    const char *location;     /* beyond the line range: "page 3", "pages 3-4", "chapter 2: Winter",
                               * "row 2 – row 9"; NULL or "" when the lines say it all */
    uint32_t page;            /* PDF page the passage starts on; 0 when not paged */
    const char *metadata;     /* the document's metadata (a JSON object as text) as given to
                                 kb_add_documents; NULL for files and documents without */
} kb_result;

typedef struct kb_results kb_results;

/* Searches the KB. `query` is plain user text, never query syntax: quotes, operators and
 * unbalanced parentheses are treated as text. A query with no searchable words gives an empty
 * result list, not an error. */
KB_API int kb_search(kb *kb, const char *query, const kb_search_options *opts, kb_results **out);

KB_API size_t kb_results_count(const kb_results *results);
/* The mode that produced the results (the default resolves to hybrid or BM25). */
KB_API kb_mode kb_results_mode(const kb_results *results);
/* Borrowed; NULL when i is out of range. */
KB_API const kb_result *kb_results_get(const kb_results *results, size_t i);
KB_API void kb_results_free(kb_results *results);

/* ---- Answers ---------------------------------------------------------------------------- */

/* kb_ask() retrieves passages, renders a prompt template with them and streams an answer from
 * an LLM backend over HTTP: "openai" (Chat Completions, /v1/chat/completions: OpenAI,
 * llama.cpp server, vLLM, LM Studio, Ollama's /v1), "ollama" (/api/chat) or "anthropic"
 * (/v1/messages); or, with "local", from a GGUF model file that kb runs in-process (the model
 * option names the file; its chat template lays out the messages). The backend, url, model and limits come from, in rising precedence, the
 * config file $XDG_CONFIG_HOME/kb/config (format in README.md "Asking questions"), the
 * environment (KB_LLM_BACKEND, KB_LLM_URL, KB_LLM_MODEL, ...) and these options. API keys come
 * only from KB_API_KEY, OPENAI_API_KEY / ANTHROPIC_API_KEY or a `key_file` of mode 0600 named in
 * the config; they are never logged or put into messages. Passages are data: they are quoted
 * between <passage> delimiters and kb never fetches URLs found in them. */

/* Besides the common codes, answers fail with KB_EUNAVAILABLE, KB_EAUTH and KB_ECONFIG. */

/* A chat message. Roles: "system", "user", "assistant". */
typedef struct kb_message {
    const char *role;
    const char *content;
} kb_message;

/* Receives the answer as it arrives: `len` bytes of complete UTF-8 (not NUL-terminated).
 * Return 0 to go on; non-zero stops the answer: kb closes the request to the backend and
 * kb_ask returns KB_ECANCELED, with what arrived until then in the answer. */
typedef int (*kb_token_cb)(const char *text, size_t len, void *payload);
/* Receives diagnostics: level 1 (what kb decided: backend, retries, dropped passages) or 2
 * (request details; secrets are shown as "***"). `line` has no newline. */
typedef void (*kb_log_cb)(int level, const char *line, void *payload);

typedef struct kb_ask_options {
    unsigned version;
    const char *backend;        /* "openai", "ollama", "anthropic" or "local" (kb_ask_backends);
                                   NULL = config/environment */
    const char *url;            /* base URL; NULL = config/environment/the backend's default */
    const char *model;          /* NULL = config/environment; for "local", a .gguf file */
    const char *template_name;  /* a name in $XDG_CONFIG_HOME/kb/prompts or the built-in ones,
                                   or a path containing '/'; NULL = config or "default" */
    size_t k;                   /* passages retrieved; 0 = 8 */
    kb_mode mode;               /* passed to kb_search */
    unsigned max_tokens;        /* longest answer in tokens; 0 = config or 1024 */
    unsigned context_window;    /* the model's context in tokens; 0 = config or 8192 */
    unsigned connect_timeout_ms;     /* 0 = config or 10 s */
    unsigned first_token_timeout_ms; /* request sent -> first answer token; 0 = config or 120 s */
    unsigned stall_timeout_ms;       /* longest silence once bytes flow; 0 = config or 60 s */
    const kb_message *history;  /* earlier turns, oldest first; kept within the budget */
    size_t n_history;
    kb_token_cb on_token;       /* may be NULL */
    kb_log_cb on_log;           /* may be NULL */
    void *payload;              /* passed to both callbacks */
    /* version 2: */
    const char *chat_format;    /* backend "local": how messages become the model's text
                                   ("chatml", "llama3", "llama3.2"); NULL = config, else the
                                   model's own tokenizer.chat_template */
    /* version 3: */
    const volatile int *cancel; /* when *cancel turns non-zero (e.g. set by a signal handler)
                                   an HTTP backend's answer stops within about a second, also
                                   while the backend sends nothing or a retry waits: the request
                                   is closed and kb_ask returns KB_ECANCELED with what arrived.
                                   The "local" backend stops at its next token */
} kb_ask_options;

#define KB_ASK_OPTIONS_VERSION 3
#define KB_ASK_OPTIONS_INIT { KB_ASK_OPTIONS_VERSION, NULL, NULL, NULL, NULL, 0, (kb_mode)0, \
                              0, 0, 0, 0, 0, NULL, 0, NULL, NULL, NULL, NULL, NULL }

/* A passage as placed in the prompt (or left out of it). */
typedef struct kb_source {
    int number;               /* cited as [number]; 0 for passages left out */
    const char *path;         /* as stored (absolute for files) */
    const char *title;        /* may be "" */
    const char *heading_path; /* may be "" */
    uint32_t line_start, line_end;
    double score;
    const char *text;         /* the passage text (neighbouring chunks merged) */
    const char *note;         /* why it was left out ("duplicate", "near-duplicate", "over the
                                 token budget"); for a passage placed, "shortened to fit the
                                 token budget" when its text was cut (ending " […]"), else "" */
    const char *format;       /* the document's format ("markdown", "pdf", ...), as in kb_result */
    const char *location;     /* as in kb_result: "page 3", "chapter 2: Winter", "row 2 – row 9";
                                 "" when the lines say it all. A passage merged from neighbouring
                                 chunks spans theirs: pages as a range ("pages 3-4"), other
                                 locations as "<first chunk's first> – <last chunk's last>"
                                 ("row 2 – row 15"), or one when they are the same */
    uint32_t page;            /* PDF page the passage starts on; 0 when not paged */
} kb_source;

typedef struct kb_prompt_result {
    kb_message *messages;     /* exactly what would be sent, system first */
    size_t n_messages;
    kb_source *sources;       /* the numbered passages in the prompt, best first */
    size_t n_sources;
    kb_source *dropped;       /* retrieved but left out */
    size_t n_dropped;
    size_t budget_tokens;     /* context_window - max_tokens */
    size_t prompt_tokens;     /* estimate: ceil(bytes / 3) per message + 4 */
    const char *template_name;
    const char *backend;      /* resolved configuration; backend is NULL when none is set */
    const char *url;
    const char *model;
    size_t history_used;      /* the newest of opts->history's messages that fit the budget
                                 and went into the prompt; older ones were left out */
} kb_prompt_result;

/* Retrieves passages for `question` and renders the prompt without contacting any backend.
 * Reads the config file and environment (never the API key). Errors: KB_ECONFIG (config
 * file, with file:line), KB_ENOTFOUND (unknown template), KB_EFORMAT (bad template). */
KB_API int kb_prompt(kb *kb, const char *question, const kb_ask_options *opts,
                     kb_prompt_result **out);
KB_API void kb_prompt_free(kb_prompt_result *prompt);

typedef struct kb_answer {
    const char *text;         /* the whole answer, NUL-terminated; "" when no backend is set */
    size_t text_len;
    kb_prompt_result *prompt; /* messages, sources and the resolved backend/model */
    uint64_t prompt_tokens, completion_tokens; /* as reported by the backend */
    int usage_estimated;      /* 1 when the backend reported none and kb estimated them */
    double retrieve_ms;       /* retrieval and rendering */
    double first_token_ms;    /* request sent -> first answer token (retries included) */
    double total_ms;          /* request sent -> last byte */
    double tokens_per_second; /* completion tokens / (total - first token) */
    int attempts;             /* HTTP requests made (retries included) */
} kb_answer;

/* Answers `question` from the KB. Tokens go to opts->on_token as they arrive. When no backend
 * is configured this is not an error: it returns 0 with answer->prompt->backend NULL and the
 * best passages in answer->prompt->sources, so callers can show them. Backend failures:
 * KB_EUNAVAILABLE (unreachable, timeouts, 429/5xx after retries, reply over 10 MB),
 * KB_EAUTH (401/403), KB_ENOTFOUND (404: unknown model), KB_ECONFIG (key file mode, missing
 * model), KB_EFORMAT (unparseable reply); the message names the backend and URL and quotes
 * the server's own error text. Like kb_open, on a backend failure *out is still set (the
 * sources and any part of the answer that arrived); free it with kb_answer_free. */
KB_API int kb_ask(kb *kb, const char *question, const kb_ask_options *opts, kb_answer **out);
/* The backend names kb_ask_options.backend takes, NULL-terminated (static; thread-safe). */
KB_API const char *const *kb_ask_backends(void);
KB_API void kb_answer_free(kb_answer *answer);

/* ---- Encoder models --------------------------------------------------------------------- */

/* A BERT-family sentence encoder loaded from a Hugging Face model folder (config.json,
 * model.safetensors, vocab.txt or tokenizer.json, and the sentence-transformers files when
 * present). A handle may be shared by threads only if they do not call it at once. */
typedef struct kb_model kb_model;

/* The model a new KB is embedded with when none is named and it has been downloaded. */
#define KB_DEFAULT_MODEL "BAAI/bge-small-en-v1.5"

/* Opens a model by folder path, or by hub name ("BAAI/bge-small-en-v1.5") from kb's model cache
 * ($XDG_CACHE_HOME/kb/models) or the Hugging Face cache ($HF_HOME/hub,
 * ~/.cache/huggingface/hub). Never downloads. KB_ENOTFOUND when it is nowhere, KB_EFORMAT
 * when a file is corrupt or inconsistent. Like kb_open, a failed open still sets *out to a
 * handle that serves kb_model_errmsg() and kb_model_close() (NULL only when memory ran out).
 * A folder holding only tokenizer files (no config.json or model.safetensors) opens for
 * kb_model_tokenize alone; kb_model_embed then fails with KB_ENOTFOUND. */
KB_API int kb_model_open(kb_model **out, const char *name_or_dir);
KB_API void kb_model_close(kb_model *model);
KB_API const char *kb_model_errmsg(const kb_model *model);

typedef struct kb_model_info {
    const char *name;           /* hub name or folder as given to kb_model_open */
    const char *dir;            /* the folder the files were read from */
    int dim;                    /* embedding dimension */
    int max_tokens;             /* longest input the encoder takes, [CLS]/[SEP] included */
    int n_layers, n_heads;
    const char *pooling;        /* "cls" or "mean" */
    int normalize;              /* vectors are unit length */
    const char *dtype;          /* weights as stored: "F32", "F16", "BF16" */
    const char *query_prefix;   /* prepended to queries ("" when none) */
    const char *passage_prefix; /* prepended to passages ("" when none) */
} kb_model_info;

/* Fills *out with borrowed strings that live as long as the model (KB_EINVALID for a
 * tokenizer-only folder). */
KB_API int kb_model_get_info(const kb_model *model, kb_model_info *out);

#define KB_TOKENIZE_NO_SPECIAL 0x1u  /* no [CLS]/[SEP] */

/* Tokenizes UTF-8 text with the model's WordPiece tokenizer, without truncation. *ids
 * (n entries) is malloc'ed and freed with kb_free(); token strings come from
 * kb_model_token(). Invalid UTF-8 is KB_EFORMAT. */
KB_API int kb_model_tokenize(kb_model *model, const char *text, unsigned flags, int32_t **ids,
                             size_t *n_ids);
/* The vocabulary entry of an id (borrowed), NULL when out of range. */
KB_API const char *kb_model_token(const kb_model *model, int32_t id);

#define KB_EMBED_QUERY 0x1u  /* texts are queries: the model's query prefix is used */

/* Embeds n_texts UTF-8 texts (each truncated to max_tokens) into out[n_texts * dim],
 * passages unless KB_EMBED_QUERY. */
KB_API int kb_model_embed(kb_model *model, const char *const *texts, size_t n_texts, unsigned flags,
                          float *out);

/* Embeds n_seqs texts given as the model's own token ids (kb_model_tokenize's ids with
 * KB_TOKENIZE_NO_SPECIAL: no [CLS]/[SEP]) into out[n_seqs * dim], passages unless
 * KB_EMBED_QUERY. Each runs as [CLS], the tokens of the model's prefix, the ids, [SEP], cut to
 * max_tokens like a text: the vector equals kb_model_embed's of the text the ids came from
 * (whenever the prefix ends where a word does, as every known prefix does). An empty sequence
 * embeds like "". An id outside the vocabulary is KB_EINVALID naming it. */
KB_API int kb_model_embed_ids(kb_model *model, const int32_t *const *ids, const size_t *n_ids,
                              size_t n_seqs, unsigned flags, float *out);

/* The fewest leading dimensions of the model's vectors that still make an embedding (cut
 * there and renormalised): the full dim, unless the model was trained for shorter vectors
 * (Matryoshka representation learning) and its kb_model.json says from where on with
 * "matryoshka_min_dim". 0 for a handle that is not open or has no weights. */
KB_API int kb_model_min_dim(const kb_model *model);

/* Releases memory the library allocated for the caller (kb_model_tokenize's ids, ...). */
KB_API void kb_free(void *p);

/* Getting models from the Hugging Face hub into kb's model cache ($XDG_CACHE_HOME/kb/models,
 * one folder per model, ORG--NAME/). kb_model_open() finds what kb_model_pull() fetched. */
typedef struct kb_pull_options {
    unsigned version;           /* KB_PULL_OPTIONS_VERSION */
    const char *endpoint;       /* NULL: $KB_HF_ENDPOINT, else $HF_ENDPOINT, else
                                   https://huggingface.co */
    const char *revision;       /* branch, tag or commit; NULL: "main" */
    const char *cache_dir;      /* NULL: $XDG_CACHE_HOME/kb/models (~/.cache/kb/models) */
    /* Called as bytes of `file` arrive (total 0 when unknown); strings live during the call. */
    void (*on_progress)(const char *file, uint64_t done, uint64_t total, void *payload);
    void *payload;
} kb_pull_options;

#define KB_PULL_OPTIONS_VERSION 1
#define KB_PULL_OPTIONS_INIT { KB_PULL_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL }

/* Downloads the files kb needs of hub model `name` ("BAAI/bge-small-en-v1.5": config, weights
 * as model.safetensors, tokenizer, sentence-transformers settings) into the cache and sets
 * *out_dir (free with kb_free) to its folder. Does nothing when the folder already holds the
 * revision's commit; an interrupted download resumes. Sizes and SHA-256 are checked against
 * the hub's; a mismatch deletes the partial file. $HF_TOKEN, when set, is sent to the endpoint
 * (never logged). On failure errbuf (may be NULL) gets one line naming the model or file:
 * KB_ENOTFOUND (no such model or revision, or private without a token), KB_EAUTH (token
 * refused, gated model, HTTP 403), KB_EFORMAT (no model.safetensors, checksum mismatch),
 * KB_EUNAVAILABLE (hub unreachable, transfer broke off, HTTP 429/5xx), KB_EIO (write failed),
 * KB_ECANTCREATE, KB_ELOCKED (pulled by another process), KB_EINVALID (not ORG/NAME). */
KB_API int kb_model_pull(const char *name, const kb_pull_options *opts, char **out_dir,
                         char *errbuf, size_t errbuf_size);

typedef struct kb_model_entry {
    const char *name;           /* hub name, "ORG/NAME" */
    const char *dir;            /* the model folder (absolute) */
    const char *source;         /* "kb" (kb's cache) or "huggingface" (the Hugging Face cache) */
    uint64_t bytes;             /* size of the files in the folder */
    int complete;               /* the folder holds a usable model (not a partial download) */
} kb_model_entry;

/* The models in kb's cache and the Hugging Face cache, sorted by name then source; *out
 * (n entries, NULL when none) is freed with kb_model_list_free. Missing caches are empty. */
KB_API int kb_model_list(kb_model_entry **out, size_t *n);
KB_API void kb_model_list_free(kb_model_entry *entries, size_t n);

/* ---- Decoder models (GGUF) -------------------------------------------------------------- */

/* A decoder-only language model from a GGUF file (architectures llama and qwen2; tensor
 * types F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), run in-process, with
 * the tokenizer the file carries. The weights are used in place from a read-only mapping. A
 * handle may be shared by threads only if they do not call it at once. */
typedef struct kb_lm kb_lm;

/* Opens a .gguf file and checks all of it (layout, architecture, tensor types and shapes,
 * tokenizer). KB_ENOTFOUND when missing, KB_EFORMAT naming the file and what is wrong. Like
 * kb_open, a failed open still sets *out to a handle for kb_lm_errmsg() and kb_lm_close().
 * A vocabulary-only file (no tensors) opens for kb_lm_tokenize alone. */
KB_API int kb_lm_open(kb_lm **out, const char *path);
KB_API void kb_lm_close(kb_lm *lm);
KB_API const char *kb_lm_errmsg(const kb_lm *lm);

/* Tokenizes UTF-8 text with the model's tokenizer: BOS first when the model adds one (not with
 * KB_TOKENIZE_NO_SPECIAL); control tokens written in the text are read as tokens only with
 * KB_TOKENIZE_PARSE_SPECIAL (never do that for text from users or documents). *ids is freed
 * with kb_free(). */
#define KB_TOKENIZE_PARSE_SPECIAL 0x2u
KB_API int kb_lm_tokenize(kb_lm *lm, const char *text, unsigned flags, int32_t **ids,
                          size_t *n_ids);
/* The vocabulary entry of an id as the file stores it (borrowed), NULL when out of range. */
KB_API const char *kb_lm_token(const kb_lm *lm, int32_t id);
/* The vocabulary size; 0 for a handle that failed to open. */
KB_API size_t kb_lm_n_vocab(const kb_lm *lm);

typedef struct kb_generate_options {
    unsigned version;
    unsigned max_tokens;      /* tokens to generate at most; 0 = 256 */
    float temperature;        /* 0 = greedy (the default) */
    unsigned top_k;           /* 0 = off */
    float top_p;              /* 0 or 1 = off */
    float min_p;              /* 0 = off */
    float repeat_penalty;     /* 0 or 1 = off */
    uint64_t seed;            /* the same seed gives the same tokens */
    unsigned context;         /* KV cache positions; 0 = the prompt plus max_tokens */
    int ignore_end;           /* go on past end-of-text and end-of-turn tokens */
    kb_token_cb on_token;     /* the text as it is generated (complete UTF-8); may be NULL */
    void *payload;
} kb_generate_options;

#define KB_GENERATE_OPTIONS_VERSION 1
#define KB_GENERATE_OPTIONS_INIT { KB_GENERATE_OPTIONS_VERSION, 0, 0.0f, 0, 0.0f, 0.0f, 0.0f, \
                                   0, 0, 0, NULL, NULL }

typedef struct kb_generation {
    int32_t *ids;             /* the generated tokens (the end token, if any, not included) */
    size_t n_ids;
    char *text;               /* their text, NUL-terminated */
    size_t text_len;
    float *last_logits;       /* n_vocab logits at the last prompt position */
    size_t n_vocab;
    int stopped_at_end;       /* 1: an end token came; 0: max_tokens ran out (or the callback) */
    double prompt_ms, generate_ms;
} kb_generation;

/* Runs the prompt ids (at least one) through the model, then generates. Generation stops at
 * an end token (EOS, EOT, a turn-closing control token, or BOS), after max_tokens, or when
 * on_token returns non-zero (KB_ECANCELED, with what came until then in *out). An id outside
 * the vocabulary is KB_EINVALID naming it. *out is freed with kb_generation_free. */
KB_API int kb_lm_generate(kb_lm *lm, const int32_t *prompt, size_t n_prompt,
                          const kb_generate_options *opts, kb_generation **out);
KB_API void kb_generation_free(kb_generation *g);

/* ---- Status and checking ---------------------------------------------------------------- */

typedef struct kb_status_info {
    size_t n_documents, n_chunks;
    uint64_t text_bytes;      /* total bytes of chunk text */
    int schema_version;
    char model[256];          /* the encoder model the KB is embedded with; "" for none */
    int dim;                  /* its embedding dimension (0 without a model) */
    size_t n_vectors;         /* chunks with an embedding */
    char index[96];           /* the vector index in use ("flat", "ivf:nlist=..."); "" for none */
    int64_t index_generation; /* its file's generation (vectors.N.faiss) */
    size_t index_vectors;     /* vectors in that file */
    int index_stale;          /* 1 when the file lags the vectors (searches then build an exact
                                 index in memory until the next ingest publishes one) */
} kb_status_info;

KB_API int kb_stat(kb *kb, kb_status_info *out);

/* Verifies the KB: SQLite integrity, full-text index consistency, orphan rows, chunk ranges.
 * Returns 0 when sound, KB_ECORRUPT with kb_errmsg() naming the first problem otherwise. */
KB_API int kb_check(kb *kb);

/* ---- Service tokens (kb serve) ---------------------------------------------------------- */

/* The bearer tokens of `kb serve`: KBDIR/tokens/read and KBDIR/tokens/admin, each 64 lowercase
 * hex characters (32 bytes from getrandom()). Copies them, NUL-terminated, into read_token and
 * admin_token (either may be NULL). When `create` is non-zero, missing files are created with
 * mode 0600 in a folder of mode 0700 (an existing file is never replaced). A token file or
 * folder that group or others may access is refused with KB_ECONFIG, as is a file that does
 * not hold exactly 64 hex characters (a trailing newline is allowed); a missing file without
 * `create` is KB_ENOTFOUND; KB_EIO / KB_ECANTCREATE when they cannot be read or written.
 * Thread-safe; needs no kb handle. */
KB_API int kb_service_tokens(const char *kb_dir, int create, char read_token[65],
                             char admin_token[65]);

#ifdef __cplusplus
}
#endif
#endif /* KB_KB_H */
