/* server.h — `kb serve`: the HTTP API over libkb (kb/kb.h only), as the CLI starts it. */
#ifndef KB_SERVER_H
#define KB_SERVER_H

#include <stddef.h>

#include "kb/kb.h"

#define KB_SERVER_DEFAULT_PORT 8080
#define KB_SERVER_DEFAULT_MAX_BODY (4u * 1024u * 1024u)
#define KB_SERVER_DEFAULT_MAX_CONNECTIONS 64
#define KB_SERVER_DEFAULT_TIMEOUT_S 30
#define KB_SERVER_DEFAULT_HEADER_TIMEOUT_S 10
#define KB_SERVER_MAX_K 100
#define KB_SERVER_MAX_DEPTH 32

struct kb_server_config {
    const char *kb_dir;
    const char *listen;            /* an IPv4 or IPv6 address; NULL = 127.0.0.1 */
    unsigned port;                 /* 0 = any free port (printed when ready) */
    unsigned threads;              /* kb handles for reads; 0 = online CPUs (2..16) */
    size_t max_body;               /* request body bytes; larger is 413 */
    unsigned max_connections;      /* open connections: past it the one waiting longest for
                                      a request is closed, or 429 when all are busy */
    unsigned timeout_s;            /* idle connection timeout */
    unsigned header_timeout_s;     /* a connection must send a request that passes the checks
                                      (its headers; all of it when refused) within this long
                                      of its accept or of the previous reply; 0 = default */
    size_t max_k;                  /* the largest k (or number of inputs) a request may ask */
    unsigned max_depth;            /* JSON nesting */
    const char *const *allow_hosts;/* extra Host names (--allow-host) */
    size_t n_allow_hosts;
    const char *cors_origin;       /* NULL = no CORS headers */
    char read_token[65];
    char admin_token[65];
    int verbose;                   /* 1: one line per request on stderr */
    const volatile int *stop;      /* the server stops when *stop turns non-zero */
    /* Called once the socket listens, with the port bound (for printing the URL). */
    void (*on_ready)(const char *url, void *payload);
    void *payload;
    /* More names /v1/embeddings answers to besides the model's own (--model-alias), for
     * clients that insist on a model name of their own (text-embedding-3-small, ...). */
    const char *const *model_aliases;
    size_t n_model_aliases;
};

/* Serves until *cfg->stop turns non-zero, then closes every connection, cancels the answers
 * still running (within about a second: kb_ask_options.cancel), waits for their threads to
 * end and returns 0. Fails before serving with a negative kb_status and one line
 * in errbuf: the KB cannot be opened (its code), the address is unusable or the port is taken
 * (KB_EUNAVAILABLE), KB_EINVALID for a bad configuration. */
int kb_server_run(const struct kb_server_config *cfg, char *errbuf, size_t errbuf_size);

#endif
