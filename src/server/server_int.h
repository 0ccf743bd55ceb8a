/* server_int.h — what the files of `kb serve` share: the running server, its handle pool,
 * one request's state and the reply helpers. Not installed; the server calls only kb/kb.h. */
#ifndef KB_SERVER_INT_H
#define KB_SERVER_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

#include "server/server.h"

struct MHD_Connection;
struct MHD_Response;
struct cJSON;

/* Writes wait this long for the KB's single-writer lock (another request or `kb ingest`),
 * then answer 503 "locked" with Retry-After. */
#define SRV_LOCK_WAIT_MS 10000

/* Request fields past these are 400 limit_exceeded (docs/SERVE.md, "Limits"). */
#define SRV_MAX_QUERY_BYTES 16384     /* query, question: a search costs more per word */
#define SRV_MAX_ID_BYTES 4096         /* a document id (as long as a file's path may be) */
#define SRV_MAX_TITLE_BYTES 4096
#define SRV_MAX_NAME_BYTES 256        /* path glob, format, model, history role */
#define SRV_MAX_TEMPLATE_BYTES 64     /* a template name: letters, digits, '-' and '_' */
#define SRV_MAX_METADATA_BYTES 65536  /* kb_document.metadata as JSON text */
#define SRV_MAX_TOKENS 100000         /* max_tokens */
#define SRV_MAX_CONTEXT_WINDOW 10000000

/* The running server. Handles are not thread-safe (kb.h), so reads borrow one of n_readers
 * read-only handles, writes take the one writable handle, and the encoder model (for
 * /v1/embeddings) is called under its own mutex. */
struct srv {
    const struct kb_server_config *cfg;
    unsigned port;
    char **hosts;                 /* allowed Host names, lower case, without port */
    size_t n_hosts;
    pthread_mutex_t lock;         /* guards readers/busy/workers */
    pthread_cond_t cond;
    kb **readers;
    int *busy;
    size_t n_readers;
    struct srv_worker *workers;   /* streaming answers' threads, until joined (ask.c) */
    struct srv_waiter *wait_head, *wait_tail; /* requests waiting for a handle, oldest first */
    pthread_mutex_t write_lock;
    kb *writer;
    pthread_mutex_t model_lock;
    kb_model *model;
    int model_state;              /* 0 not tried, 1 open, < 0 the kb_status it failed with */
    char model_name[256];         /* as the KB records it: a hub name or a folder */
    char model_id[256];           /* as clients see it (srv_model_id) */
    pthread_mutex_t conn_lock;    /* guards conns and n_connections (conn.c) */
    struct srv_conn *conns;       /* open connections, newest first */
    int n_connections;            /* of those, the ones not being shut down by us */
    char **private_paths;         /* folders of this machine no error message may name */
    size_t n_private_paths;
    volatile int stopping;
};

/* A reply being built: the HTTP status and the response (with its headers). */
struct srv_reply {
    unsigned status;
    struct MHD_Response *resp;
    int client_fd;                /* the client's socket (to notice it hang up), or -1 */
};

/* ---- http.c: replies, checks and parsing helpers ---- */

/* {"error":{"code":CODE,"message":...}} with `status`. Always returns -1, so handlers can
 * `return srv_error(...)`. */
int srv_error(struct srv_reply *out, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The stable error code and HTTP status of a kb_status (docs/SERVE.md). */
const char *srv_code(int kb_status, unsigned *http_status);
/* What a client is told of a failed library call: kb's own message for a client's mistake
 * (a kb_status that maps to a 4xx) when it names none of the server's folders; otherwise a
 * fixed sentence for the status's code, and kb's message goes to the server's log. */
const char *srv_public_message(struct srv *s, int kb_status, const char *message);
/* The reply for a failed library call: the status and stable code its kb_status maps to,
 * with srv_public_message's text. */
int srv_fail(struct srv *s, struct srv_reply *out, int kb_status, const char *message);
/* One line on stderr, "kb serve: ..." with control characters escaped (kb_utf8_escape). */
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Collects the folders no error may name (the KB, $HOME, the XDG folders, the model's, the
 * working directory); freed by srv_private_paths_free. Returns 0 or KB_ENOMEM. */
int srv_private_paths_init(struct srv *s);
void srv_private_paths_free(struct srv *s);
/* 1 when `text` names one of those folders. */
int srv_names_private_path(const struct srv *s, const char *text);
/* A 200 (or `status`) JSON reply; takes ownership of `doc`. Returns 0, or -1 (500) when out
 * of memory. */
int srv_json(struct srv_reply *out, unsigned status, struct cJSON *doc);

/* 1 when `s` is valid UTF-8 (the CLI and server check strings before they enter kb). */
int srv_utf8_valid(const char *s, size_t len);
/* Checks a request body before cJSON sees it: nesting no deeper than `max_depth` (so cJSON
 * never recurses deeply), no raw control character inside a string (RFC 8259 wants them
 * escaped) and no \u0000 escape (C strings would end there: "a\u0000b" would become "a").
 * Returns 0, or -1 with a 400 naming the field. */
int srv_json_scan(struct srv_reply *out, const char *text, size_t len, unsigned max_depth);
/* Checks a parsed body: no object anywhere in it names a key twice. Returns 0, or -1 with a
 * 400 naming the key. */
int srv_json_unique_keys(struct srv_reply *out, const struct cJSON *doc);
/* 1 when the two NUL-terminated strings are equal; time depends only on strlen(expected). */
int srv_token_equal(const char *given, const char *expected);

/* Field getters for a request object. Each returns 0 (absent optional fields leave *out as
 * it was) or -1 after filling `out` with a 400 naming the field: invalid_request for a
 * missing required field, a wrong type, invalid UTF-8 or an empty required string,
 * limit_exceeded for a string over max_bytes or a number out of [min, max]. */
int srv_get_string(struct srv_reply *out, const struct cJSON *obj, const char *name,
                   int required, size_t max_bytes, const char **value);
int srv_get_size(struct srv_reply *out, const struct cJSON *obj, const char *name, size_t min,
                 size_t max, size_t *value);
int srv_get_bool(struct srv_reply *out, const struct cJSON *obj, const char *name, int *value);
int srv_get_mode(struct srv_reply *out, const struct cJSON *obj, kb_mode *mode);

/* ---- pool.c: kb handles and the model ---- */
int srv_pool_open(struct srv *s, char *errbuf, size_t errbuf_size);
void srv_pool_close(struct srv *s);
/* Borrows a read-only handle for the request whose reply is `out`, waiting in line up to the
 * connection timeout. NULL with `out` filled when none came free (503 busy, Retry-After) or
 * the KB cannot be opened, or with out->resp NULL (status 499: the connection is then closed
 * without a reply) when the client hung up while the request waited. */
kb *srv_pool_borrow(struct srv *s, struct srv_reply *out);
/* 1 when the client at socket fd has closed its connection or it failed (-1: never). */
int srv_client_gone(int fd);
void srv_pool_put(struct srv *s, kb *kb);
/* Takes the writable handle (waiting as long as the KB's lock wait); NULL with *status
 * KB_ELOCKED when another request still holds it. Release with srv_pool_put_writer. */
kb *srv_pool_get_writer(struct srv *s, int *status);
void srv_pool_put_writer(struct srv *s);
/* The KB's encoder model under model_lock (held on success: release with srv_model_put). */
kb_model *srv_model_get(struct srv *s, int *status);
void srv_model_put(struct srv *s);

/* ---- conn.c: open connections, their count and the deadline of those waiting for a
 * request (the slow-client guard; the protocol is described at the top of conn.c) ---- */
/* A connection was accepted (libmicrohttpd's NOTIFY_CONNECTION STARTED): it starts waiting,
 * and when it takes the count past --max-connections the longest-waiting other one is shut
 * down. */
void srv_conn_open(struct srv *s, struct MHD_Connection *c, void **socket_context);
/* libmicrohttpd is about to close it (NOTIFY_CONNECTION CLOSED). */
void srv_conn_close(struct srv *s, void **socket_context);
/* Its request passed the checks: no deadline until the reply is done. */
void srv_conn_serving(struct srv *s, struct MHD_Connection *c);
/* Its request ended (kept alive, or closing): it waits for the next with a new deadline. */
void srv_conn_waiting(struct srv *s, struct MHD_Connection *c);
/* Open connections, those being shut down left out (compared with --max-connections). */
int srv_conn_count(struct srv *s);
/* Shuts down the connections waiting past their deadline. */
void srv_conn_sweep(struct srv *s);

/* ---- routes.c / ask.c: the endpoints. `body` is the parsed request (an object) or NULL
 * for GET/DELETE. Each fills `out` and returns 0 or -1. ---- */
int srv_route_search(struct srv *s, const struct cJSON *body, struct srv_reply *out);
int srv_route_prompt(struct srv *s, const struct cJSON *body, struct srv_reply *out);
int srv_route_status(struct srv *s, struct srv_reply *out);
int srv_route_embeddings(struct srv *s, const struct cJSON *body, struct srv_reply *out);
int srv_route_models(struct srv *s, struct srv_reply *out);
int srv_route_add_documents(struct srv *s, const struct cJSON *body, struct srv_reply *out);
int srv_route_delete_document(struct srv *s, const char *id, struct srv_reply *out);
int srv_route_ask(struct srv *s, const struct cJSON *body, struct srv_reply *out);
/* Joins the threads of streamed answers: those that are done (all = 0), or every one, waiting
 * for each to end (all = 1: once no connection is left to start another). */
void srv_ask_join(struct srv *s, int all);

/* Shared by /v1/prompt and /v1/ask: question, k, mode, template, max_tokens, history. The
 * strings point into `body`; history is malloc'ed (free it). */
int srv_ask_options(struct srv *s, struct srv_reply *out, const struct cJSON *body,
                    const char **question, kb_ask_options *opts, kb_message **history);
/* How a failed kb_prompt / kb_ask is told to the client: its HTTP status, stable code and
 * message (a template file that does not parse, like a bad config file, is the server's
 * configuration; a context_window the request gave that leaves no room for the answer is
 * the request's mistake). */
const char *srv_ask_failure(struct srv *s, const kb_ask_options *opts, int status,
                            const char *message, unsigned *http, const char **code);

/* ---- embeddings.c ---- */
/* A model's name as clients may see it, into id: a hub name as it is, a folder (a path of
 * this machine) by its last component alone. */
void srv_model_id(const char *name, char *id, size_t id_size);

/* ---- page.c ---- */
extern const char srv_page_html[];

#endif
