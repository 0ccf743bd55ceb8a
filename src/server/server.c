/* server.c — kb serve's HTTP front: libmicrohttpd set-up, the Host allowlist, bearer tokens,
 * limits, routing and the request body, then the endpoint handlers of routes.c and ask.c. */
#include "server/server_int.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum server_scope { SCOPE_PUBLIC, SCOPE_READ, SCOPE_ADMIN };
enum server_route_id { R_PAGE = 1, R_HEALTH, R_SEARCH, R_ASK, R_PROMPT, R_EMBED, R_STATUS,
                       R_DOCS, R_DOC, R_MODELS };

static const struct server_route {
    const char *path;             /* exact path, or a prefix when it ends with '/' */
    const char *method;
    enum server_scope scope;
    enum server_route_id id;
} server_routes[] = {
    { "/", "GET", SCOPE_PUBLIC, R_PAGE },
    { "/healthz", "GET", SCOPE_PUBLIC, R_HEALTH },
    { "/v1/search", "POST", SCOPE_READ, R_SEARCH },
    { "/v1/ask", "POST", SCOPE_READ, R_ASK },
    { "/v1/prompt", "POST", SCOPE_READ, R_PROMPT },
    { "/v1/embeddings", "POST", SCOPE_READ, R_EMBED },
    { "/v1/status", "GET", SCOPE_READ, R_STATUS },
    { "/v1/documents", "POST", SCOPE_ADMIN, R_DOCS },
    { "/v1/documents/", "DELETE", SCOPE_ADMIN, R_DOC },
    { "/v1/models", "GET", SCOPE_READ, R_MODELS },
};

/* One request's state (MHD's con_cls), made by server_uri before the headers are read. */
struct server_req {
    const struct server_route *route;
    struct srv_reply early;       /* decided from the headers; the body is then discarded */
    char *body;
    size_t len, alloc;
    int too_large;
    size_t seen;                  /* body bytes received, stored or not */
    unsigned status;              /* for the log line */
    int started;                  /* the headers were seen */
    int bad_target;               /* the target has a space, a control character or %00 (which
                                     MHD would decode to the end of the string) */
    char method[8];
    char url[120];                /* the request target as sent (for the log line) */
};

/* The route for this method, or NULL with *allow naming the methods the path takes. */
static const struct server_route *server_route(const char *url, const char *method,
                                               char *allow, size_t allow_size, int *known)
{
    const struct server_route *found = NULL;
    *allow = '\0';
    *known = 0;
    for (size_t i = 0; i < sizeof server_routes / sizeof *server_routes; i++) {
        const struct server_route *r = &server_routes[i];
        size_t n = strlen(r->path);
        int prefix = n > 1 && r->path[n - 1] == '/';
        if (!(prefix ? !strncmp(url, r->path, n) && url[n] : !strcmp(url, r->path)))
            continue;
        *known = 1;
        if (!strcmp(method, r->method) || (!strcmp(method, "HEAD") && !strcmp(r->method, "GET")))
            found = r;
        size_t used = strlen(allow);
        snprintf(allow + used, allow_size - used, "%s%s", used ? ", " : "", r->method);
    }
    return found;
}

enum server_host { HOST_OK, HOST_NOT_ALLOWED, HOST_MALFORMED };

/* The port of a Host header, strictly: 1 to 5 digits without a leading zero (no sign, no
 * space), at most 65535; -1 otherwise. */
static long server_host_port(const char *p)
{
    size_t n = strspn(p, "0123456789");
    if (!n || n > 5 || p[n] || p[0] == '0')
        return -1;
    long port = strtol(p, NULL, 10);
    return port <= 65535 ? port : -1;
}

/* Host: NAME[:PORT] (RFC 9110 7.2) must name this server (DNS rebinding): a name on the
 * allowlist and our port (or none when the port is 80). A value that is not a host and port
 * at all is HOST_MALFORMED (400), a well-formed one of another server HOST_NOT_ALLOWED. */
static enum server_host server_host_check(const struct srv *s, const char *host)
{
    char name[256];
    if (!host || !*host)
        return HOST_NOT_ALLOWED;
    const char *colon;
    if (host[0] == '[') { /* IP-literal */
        const char *close = strchr(host, ']');
        if (!close || close == host + 1 || strspn(host + 1, "0123456789abcdefABCDEF:.") !=
                                               (size_t)(close - host - 1) ||
            (close[1] && close[1] != ':'))
            return HOST_MALFORMED;
        colon = close[1] ? close + 1 : NULL;
    } else { /* reg-name or IPv4 (RFC 3986 3.2.2, less percent-encoding) */
        colon = strchr(host, ':');
        size_t n = colon ? (size_t)(colon - host) : strlen(host);
        if (!n || strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789-._~!$&'()*+,;=") != n)
            return HOST_MALFORMED;
    }
    size_t n = colon ? (size_t)(colon - host) : strlen(host);
    if (n >= sizeof name)
        return HOST_MALFORMED;
    long port = colon ? server_host_port(colon + 1) : 80;
    if (port < 0)
        return HOST_MALFORMED;
    if ((unsigned long)port != s->port)
        return HOST_NOT_ALLOWED;
    memcpy(name, host, n);
    name[n] = '\0';
    for (size_t i = 0; i < s->n_hosts; i++)
        if (!strcasecmp(name, s->hosts[i]))
            return HOST_OK;
    return HOST_NOT_ALLOWED;
}

static enum MHD_Result server_count_host(void *cls, enum MHD_ValueKind kind, const char *key,
                                         const char *value)
{
    (void)kind;
    (void)value;
    if (!strcasecmp(key, "Host"))
        ++*(int *)cls;
    return MHD_YES;
}

/* The request's Host header checked, a second one being malformed (RFC 9112 3.2). */
static enum server_host server_host(const struct srv *s, struct MHD_Connection *c)
{
    int n = 0;
    MHD_get_connection_values(c, MHD_HEADER_KIND, server_count_host, &n);
    if (n > 1)
        return HOST_MALFORMED;
    return server_host_check(s, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host"));
}

/* The scope the Authorization header grants: SCOPE_ADMIN, SCOPE_READ, or SCOPE_PUBLIC when
 * missing or wrong. Both tokens are always compared, in constant time. */
static enum server_scope server_auth(const struct srv *s, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7))
        return SCOPE_PUBLIC;
    h += 7;
    while (*h == ' ')
        h++;
    int admin = srv_token_equal(h, s->cfg->admin_token);
    int read = srv_token_equal(h, s->cfg->read_token);
    return admin ? SCOPE_ADMIN : read ? SCOPE_READ : SCOPE_PUBLIC;
}

/* Decides from the headers alone: host, connection limit, route, method, token, scope,
 * declared length. Returns -1 with r->early filled, or 0 to read the body. */
static int server_precheck(struct srv *s, struct MHD_Connection *c, const char *url,
                           const char *method, enum server_host host, struct server_req *r)
{
    struct srv_reply *out = &r->early;
    char allow[64];
    int known;
    if (host == HOST_MALFORMED)
        return srv_error(out, 400, "invalid_host", "the Host header must be one NAME[:PORT], "
                         "the port in plain digits");
    if (host != HOST_OK)
        return srv_error(out, 421, "host_not_allowed", "the Host header does not name this "
                         "server (see --allow-host)");
    if (r->bad_target)
        return srv_error(out, 400, "invalid_request", "the request target holds a space, a "
                         "control character or %%00 (NUL)");
    if (srv_conn_count(s) > (int)s->cfg->max_connections) {
        srv_error(out, 429, "too_many_connections", "more than %u open connections; retry",
                  s->cfg->max_connections);
        MHD_add_response_header(out->resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        return -1;
    }
    r->route = server_route(url, method, allow, sizeof allow, &known);
    enum server_scope scope = SCOPE_PUBLIC;
    if (!r->route || r->route->scope != SCOPE_PUBLIC)
        scope = server_auth(s, c);
    if (!r->route && known && scope == SCOPE_PUBLIC && strncmp(url, "/v1/", 4))
        scope = SCOPE_READ; /* wrong method on a public path: no token needed to say so */
    if ((!r->route || r->route->scope != SCOPE_PUBLIC) && scope == SCOPE_PUBLIC) {
        srv_error(out, 401, "unauthorized", "a valid bearer token is required "
                  "(Authorization: Bearer TOKEN; see kb serve --print-token)");
        MHD_add_response_header(out->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        return -1;
    }
    if (!r->route && !known)
        return srv_error(out, 404, "not_found", "no route %s %s", method, url);
    if (!r->route) {
        srv_error(out, 405, "method_not_allowed", "%s takes %s", url, allow);
        MHD_add_response_header(out->resp, MHD_HTTP_HEADER_ALLOW, allow);
        return -1;
    }
    if (r->route->scope == SCOPE_ADMIN && scope != SCOPE_ADMIN)
        return srv_error(out, 403, "forbidden", "this route needs the admin token");
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->cfg->max_body) {
        return srv_error(out, 413, "payload_too_large", "the body is over %zu bytes",
                         s->cfg->max_body);
    }
    return 0;
}

/* Appends upload data, or notes that the body passed the limit. */
static void server_body(struct srv *s, struct server_req *r, const char *data, size_t n)
{
    if (r->too_large || r->early.resp)
        return;
    if (r->len + n > s->cfg->max_body) {
        r->too_large = 1;
        return;
    }
    if (r->len + n + 1 > r->alloc) {
        size_t alloc = (r->len + n + 1) * 2;
        char *p = realloc(r->body, alloc);
        if (!p) {
            r->too_large = 1;
            return;
        }
        r->body = p;
        r->alloc = alloc;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
}

/* The body as a JSON object, or -1 with a 400/413. */
static int server_parse(struct srv *s, struct server_req *r, struct srv_reply *out,
                        cJSON **doc)
{
    if (r->too_large)
        return srv_error(out, 413, "payload_too_large", "the body is over %zu bytes",
                         s->cfg->max_body);
    if (!r->len)
        return srv_error(out, 400, "invalid_json", "the request needs a JSON object body");
    if (srv_json_scan(out, r->body, r->len, s->cfg->max_depth))
        return -1;
    const char *end = NULL;
    *doc = cJSON_ParseWithLengthOpts(r->body, r->len, &end, 0);
    if (!*doc) {
        size_t at = end && end >= r->body ? (size_t)(end - r->body) : 0;
        return srv_error(out, 400, "invalid_json", "malformed JSON near byte %zu", at);
    }
    size_t at = (size_t)(end - r->body);
    at += strspn(end, " \t\r\n"); /* the body is NUL-terminated; a NUL in it stops here too */
    int rc = 0;
    if (at != r->len)
        rc = srv_error(out, 400, "invalid_json", "more after the JSON value, at byte %zu", at);
    else if (!cJSON_IsObject(*doc))
        rc = srv_error(out, 400, "invalid_json", "the body must be a JSON object");
    else
        rc = srv_json_unique_keys(out, *doc);
    if (rc) {
        cJSON_Delete(*doc);
        *doc = NULL;
    }
    return rc;
}

static int server_page(struct srv_reply *out)
{
    out->resp = MHD_create_response_from_buffer(strlen(srv_page_html), (void *)srv_page_html,
                                                MHD_RESPMEM_PERSISTENT);
    if (!out->resp)
        return srv_error(out, 500, "internal", "out of memory");
    MHD_add_response_header(out->resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    MHD_add_response_header(out->resp, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; style-src "
                            "'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; "
                            "base-uri 'none'; form-action 'none'");
    MHD_add_response_header(out->resp, "Referrer-Policy", "no-referrer");
    out->status = 200;
    return 0;
}

static int server_dispatch(struct srv *s, struct server_req *r, const char *url,
                           struct srv_reply *out)
{
    cJSON *doc = NULL;
    int rc;
    switch (r->route->id) {
    case R_PAGE: return server_page(out);
    case R_HEALTH: {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "status", "ok");
        return srv_json(out, 200, h);
    }
    case R_STATUS: return srv_route_status(s, out);
    case R_MODELS: return srv_route_models(s, out);
    case R_DOC: return srv_route_delete_document(s, url + strlen("/v1/documents/"), out);
    default: break;
    }
    if (server_parse(s, r, out, &doc))
        return -1;
    switch (r->route->id) {
    case R_SEARCH: rc = srv_route_search(s, doc, out); break;
    case R_ASK: rc = srv_route_ask(s, doc, out); break;
    case R_PROMPT: rc = srv_route_prompt(s, doc, out); break;
    case R_EMBED: rc = srv_route_embeddings(s, doc, out); break;
    case R_DOCS: rc = srv_route_add_documents(s, doc, out); break;
    default: rc = srv_error(out, 404, "not_found", "no such route");
    }
    cJSON_Delete(doc);
    return rc;
}

/* Headers every reply carries: no sniffing, no caching of API answers, CORS when asked. */
static void server_common_headers(struct srv *s, struct MHD_Connection *c,
                                  struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (!MHD_get_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (s->cfg->cors_origin && origin && !strcmp(origin, s->cfg->cors_origin)) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
    }
}

/* A CORS preflight (OPTIONS with --cors): 204 naming what may be sent; no token needed. */
static int server_preflight(struct srv *s, struct MHD_Connection *c, struct srv_reply *out)
{
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!s->cfg->cors_origin || !origin || strcmp(origin, s->cfg->cors_origin))
        return srv_error(out, 403, "forbidden", "cross-origin requests from this origin are "
                         "not allowed (see --cors)");
    out->resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!out->resp)
        return srv_error(out, 500, "internal", "out of memory");
    MHD_add_response_header(out->resp, "Access-Control-Allow-Methods", "GET, POST, DELETE");
    MHD_add_response_header(out->resp, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type");
    MHD_add_response_header(out->resp, "Access-Control-Max-Age", "600");
    out->status = 204;
    return 0;
}

static enum MHD_Result server_queue(struct srv *s, struct MHD_Connection *c,
                                    struct server_req *r, struct srv_reply *rep)
{
    r->status = rep->status;
    if (!rep->resp)
        return MHD_NO;
    server_common_headers(s, c, rep->resp);
    enum MHD_Result ok = MHD_queue_response(c, rep->status, rep->resp);
    MHD_destroy_response(rep->resp);
    rep->resp = NULL;
    return ok;
}

/* Early replies normally wait for the body to arrive (discarded, never stored), so that
 * clients that send it all before reading get the reply rather than a reset. A body declared
 * far over the limit, or announced with Expect: 100-continue, is refused at once. */
static int server_refuse_now(struct srv *s, struct MHD_Connection *c, struct server_req *r)
{
    if (r->early.status != 413)
        return 0;
    const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    return (expect && !strcasecmp(expect, "100-continue")) ||
           (cl && strtoull(cl, NULL, 10) / 4 > s->cfg->max_body);
}

/* MHD's URI log callback: the request's state, made before MHD decodes the target (which
 * turns %00 into the end of the string) and before the headers are read. */
static void *server_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct server_req *r = calloc(1, sizeof *r);
    (void)cls;
    (void)c;
    if (!r)
        return NULL;
    r->early.client_fd = -1;
    snprintf(r->url, sizeof r->url, "%s", uri);
    for (const unsigned char *p = (const unsigned char *)uri; *p && !r->bad_target; p++)
        r->bad_target = *p <= ' ' || *p == 0x7f;
    r->bad_target |= strstr(uri, "%00") != NULL;
    return r;
}

static enum MHD_Result server_access(void *cls, struct MHD_Connection *c, const char *url,
                                     const char *method, const char *version,
                                     const char *upload, size_t *upload_size, void **con_cls)
{
    struct srv *s = cls;
    struct server_req *r = *con_cls;
    (void)version;
    if (!r || !r->started) {
        if (!r && !(r = server_uri(s, url, c)))
            return MHD_NO;
        *con_cls = r;
        r->started = 1;
        snprintf(r->method, sizeof r->method, "%s", method);
        enum server_host host = server_host(s, c);
        if (!strcmp(method, "OPTIONS") && host == HOST_OK && !r->bad_target)
            return server_preflight(s, c, &r->early), server_queue(s, c, r, &r->early);
        if (!server_precheck(s, c, url, method, host, r))
            srv_conn_serving(s, c);
        else if (server_refuse_now(s, c, r))
            return server_queue(s, c, r, &r->early);
        return MHD_YES;
    }
    if (*upload_size) {
        server_body(s, r, upload, *upload_size);
        r->seen += *upload_size;
        *upload_size = 0;
        if (r->seen / 4 > s->cfg->max_body) { /* stop reading an endless body */
            if (!r->early.resp)
                srv_error(&r->early, 413, "payload_too_large", "the body is over %zu bytes",
                          s->cfg->max_body);
            return server_queue(s, c, r, &r->early);
        }
        return MHD_YES;
    }
    if (r->early.resp)
        return server_queue(s, c, r, &r->early);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c,
                                                                 MHD_CONNECTION_INFO_CONNECTION_FD);
    struct srv_reply rep = { 0, NULL, ci ? ci->connect_fd : -1 };
    server_dispatch(s, r, url, &rep);
    return server_queue(s, c, r, &rep);
}

static void server_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                             enum MHD_RequestTerminationCode toe)
{
    struct srv *s = cls;
    struct server_req *r = *con_cls;
    srv_conn_waiting(s, c);
    if (!r)
        return;
    if (s->cfg->verbose && !r->started) /* MHD refused the headers and answered itself */
        srv_log("- %s - (a malformed request, refused by libmicrohttpd)", r->url);
    else if (s->cfg->verbose) /* method and target as the client sent them, escaped */
        srv_log("%s %s %u%s", r->method, r->url, r->status,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    if (r->early.resp)
        MHD_destroy_response(r->early.resp);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static void server_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        srv_conn_open(cls, c, socket_context);
    else
        srv_conn_close(cls, socket_context);
}

/* ---- start and stop ---- */

static int server_add_host(struct srv *s, const char *name)
{
    char **hosts = realloc(s->hosts, (s->n_hosts + 1) * sizeof *hosts);
    if (!hosts)
        return KB_ENOMEM;
    s->hosts = hosts;
    if (!(s->hosts[s->n_hosts] = strdup(name)))
        return KB_ENOMEM;
    s->n_hosts++;
    return 0;
}

/* The Host names accepted: loopback names, the listen address when it is not a wildcard,
 * and --allow-host. An IPv6 address is written in brackets, as in a Host header. */
static int server_hosts(struct srv *s, const char *listen, int v6)
{
    char bracketed[64];
    int rc = server_add_host(s, "127.0.0.1");
    if (!rc) rc = server_add_host(s, "localhost");
    if (!rc) rc = server_add_host(s, "[::1]");
    if (!rc && strcmp(listen, "0.0.0.0") && strcmp(listen, "::")) {
        snprintf(bracketed, sizeof bracketed, v6 ? "[%s]" : "%s", listen);
        rc = server_add_host(s, bracketed);
    }
    for (size_t i = 0; !rc && i < s->cfg->n_allow_hosts; i++)
        rc = server_add_host(s, s->cfg->allow_hosts[i]);
    return rc;
}

/* libmicrohttpd's own messages (-vv) through srv_log, escaped like every other line. */
static void server_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[1024];
    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    srv_log("libmicrohttpd: %s", line);
}

static struct MHD_Daemon *server_start(struct srv *s, const char *listen, int v6,
                                       const void *addr)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | (v6 ? MHD_USE_IPv6 : 0) |
                     (s->cfg->verbose > 1 ? MHD_USE_ERROR_LOG : 0);
    (void)listen;
    /* MHD's own connection limit sits well above ours, so that it never refuses a connection
     * that conn.c would make room for, or that gets a 429 (a reply) instead of being dropped
     * unanswered, while evicted ones are still closing. The logger comes first: MHD reports
     * the options before it with its own. */
    return MHD_start_daemon(flags, (uint16_t)s->cfg->port, NULL, NULL, server_access, s,
                            MHD_OPTION_EXTERNAL_LOGGER, server_mhd_log, s,
                            MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_CONNECTION_LIMIT, 2 * s->cfg->max_connections + 16,
                            MHD_OPTION_CONNECTION_TIMEOUT, s->cfg->timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
                            MHD_OPTION_NOTIFY_COMPLETED, server_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, server_notify, s,
                            MHD_OPTION_URI_LOG_CALLBACK, server_uri, s,
                            MHD_OPTION_END);
}

static int server_address(const struct kb_server_config *cfg, struct sockaddr_in *in4,
                          struct sockaddr_in6 *in6, int *v6)
{
    const char *listen = cfg->listen ? cfg->listen : "127.0.0.1";
    memset(in4, 0, sizeof *in4);
    memset(in6, 0, sizeof *in6);
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)cfg->port);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)cfg->port);
    *v6 = 0;
    if (inet_pton(AF_INET, listen, &in4->sin_addr) == 1)
        return 0;
    *v6 = 1;
    return inet_pton(AF_INET6, listen, &in6->sin6_addr) == 1 ? 0 : KB_EINVALID;
}

/* Sheds connections waiting past their deadline until the stop flag turns, then waits for
 * the streaming answers still running (the flag cancels them too: kb_ask_options.cancel). */
static void server_wait(struct srv *s, struct MHD_Daemon *d)
{
    struct timespec nap = { 0, 100 * 1000 * 1000 };
    while (!*s->cfg->stop) {
        nanosleep(&nap, NULL);
        srv_conn_sweep(s);
    }
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    MHD_stop_daemon(d);
    srv_ask_join(s, 1);
}

static void server_ready(struct srv *s, struct MHD_Daemon *d, const char *listen, int v6)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char url[128];
    s->port = info ? info->port : s->cfg->port;
    snprintf(url, sizeof url, v6 ? "http://[%s]:%u/" : "http://%s:%u/", listen, s->port);
    if (s->cfg->on_ready)
        s->cfg->on_ready(url, s->cfg->payload);
}

int kb_server_run(const struct kb_server_config *cfg, char *errbuf, size_t errbuf_size)
{
    struct srv s;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct MHD_Daemon *d = NULL;
    const char *listen = cfg->listen ? cfg->listen : "127.0.0.1";
    int v6, rc;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.port = cfg->port;
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    pthread_mutex_init(&s.write_lock, NULL);
    pthread_mutex_init(&s.model_lock, NULL);
    pthread_mutex_init(&s.conn_lock, NULL);
    if ((rc = server_address(cfg, &in4, &in6, &v6))) {
        snprintf(errbuf, errbuf_size, "--listen %s: not an IPv4 or IPv6 address", listen);
        goto done;
    }
    if ((rc = server_hosts(&s, listen, v6)) || (rc = srv_pool_open(&s, errbuf, errbuf_size)))
        goto done;
    if ((rc = srv_private_paths_init(&s))) {
        snprintf(errbuf, errbuf_size, "out of memory");
        goto done;
    }
    if (!(d = server_start(&s, listen, v6, v6 ? (const void *)&in6 : (const void *)&in4))) {
        snprintf(errbuf, errbuf_size, "cannot listen on %s port %u (in use, or not an address "
                 "of this machine)", listen, cfg->port);
        rc = KB_EUNAVAILABLE;
        goto done;
    }
    server_ready(&s, d, listen, v6);
    server_wait(&s, d);
done:
    srv_pool_close(&s);
    srv_private_paths_free(&s);
    for (size_t i = 0; i < s.n_hosts; i++)
        free(s.hosts[i]);
    free(s.hosts);
    pthread_mutex_destroy(&s.lock);
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.write_lock);
    pthread_mutex_destroy(&s.model_lock);
    pthread_mutex_destroy(&s.conn_lock);
    return rc;
}
