/* cmd_serve.c — `kb serve`: the HTTP API and web page over the KB (src/server/). */
#include "cli.h"
#include "server/server.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char serve_help[] =
    "usage: kb serve [OPTIONS]\n"
    "\n"
    "Serves the knowledge base over HTTP (JSON in and out; docs/SERVE.md): POST /v1/search,\n"
    "/v1/ask (server-sent events with \"stream\": true), /v1/prompt, /v1/embeddings and\n"
    "GET /v1/models (as OpenAI's), POST /v1/documents and DELETE /v1/documents/ID (admin\n"
    "token), GET /v1/status, GET /healthz, and a page for asking questions at /. Every route\n"
    "but /healthz and the page needs 'Authorization: Bearer TOKEN'; the tokens live in\n"
    "KBDIR/tokens/ (mode 0600).\n"
    "Answers use the LLM configured as for kb ask. Stops cleanly on SIGINT or SIGTERM,\n"
    "cancelling the answers still running.\n"
    "\n"
    "options:\n"
    "  --port N             TCP port (default 8080; 0 = any free port, printed at start)\n"
    "  --listen ADDR        address to listen on (default 127.0.0.1; anything else, e.g.\n"
    "                       0.0.0.0, must be given here)\n"
    "  --allow-host NAME    also accept this Host name (repeatable; DNS rebinding guard)\n"
    "  --cors ORIGIN        allow browser requests from ORIGIN (default: no CORS headers)\n"
    "  --threads N          kb handles for concurrent reads (default: CPUs, 2..16)\n"
    "  --max-body BYTES     largest request body (default 4194304)\n"
    "  --max-connections N  open connections; past it the one waiting longest for a request\n"
    "                       is closed, or the request gets 429 if all are busy (default 64)\n"
    "  --timeout S          idle connection timeout in seconds (default 30)\n"
    "  --model-alias NAME   /v1/embeddings also answers to model NAME (repeatable), for\n"
    "                       clients that send a model name of their own\n"
    "  --header-timeout S   seconds a connection has to send a request's headers (default 10)\n"
    "  --print-token read|admin  print a token (creating the tokens if needed) and exit\n"
    "  -v                   one line per request on stderr\n"
    "\n"
    "example:\n"
    "  kb serve --port 8080 &  curl -H \"Authorization: Bearer $(kb serve --print-token read)\" \\\n"
    "    -d '{\"query\":\"rotate logs\",\"k\":3}' http://127.0.0.1:8080/v1/search\n";

enum { OPT_PORT = 1, OPT_LISTEN, OPT_ALLOW, OPT_CORS, OPT_THREADS, OPT_BODY, OPT_CONNS,
       OPT_TIMEOUT, OPT_PRINT, OPT_ALIAS, OPT_HEADER_TIMEOUT };

static const struct cli_opt serve_opts[] = {
    { "port", 0, 1, OPT_PORT }, { "listen", 0, 1, OPT_LISTEN },
    { "allow-host", 0, 1, OPT_ALLOW }, { "cors", 0, 1, OPT_CORS },
    { "threads", 0, 1, OPT_THREADS }, { "max-body", 0, 1, OPT_BODY },
    { "max-connections", 0, 1, OPT_CONNS }, { "timeout", 0, 1, OPT_TIMEOUT },
    { "print-token", 0, 1, OPT_PRINT }, { "model-alias", 0, 1, OPT_ALIAS },
    { "header-timeout", 0, 1, OPT_HEADER_TIMEOUT },
    { NULL, 0, 0, 0 },
};

#define SERVE_MAX_HOSTS 16
#define SERVE_MAX_ALIASES 16
#define SERVE_MAX_ALIAS_BYTES 256

struct serve_cmd {
    struct kb_server_config cfg;
    const char *hosts[SERVE_MAX_HOSTS];
    const char *aliases[SERVE_MAX_ALIASES];
    const char *print;
    int json;
};

static volatile sig_atomic_t serve_stop;

static void serve_on_signal(int sig)
{
    (void)sig;
    serve_stop = 1;
}

static const char *serve_unsigned(const char *value, size_t min, size_t max, unsigned *out)
{
    size_t v;
    const char *msg = cli_parse_size(value, min, max, &v);
    if (!msg)
        *out = (unsigned)v;
    return msg;
}

static const char *serve_opt(int id, const char *value, void *payload)
{
    struct serve_cmd *c = payload;
    switch (id) {
    case OPT_PORT: return serve_unsigned(value, 0, 65535, &c->cfg.port);
    case OPT_LISTEN: c->cfg.listen = value; return NULL;
    case OPT_ALLOW:
        if (c->cfg.n_allow_hosts >= SERVE_MAX_HOSTS)
            return "at most 16 names";
        if (!*value || strpbrk(value, ":/ "))
            return "expected a host name without port";
        c->hosts[c->cfg.n_allow_hosts++] = value;
        return NULL;
    case OPT_CORS:
        if (strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
            return "expected an origin such as https://example.org";
        c->cfg.cors_origin = value;
        return NULL;
    case OPT_THREADS: return serve_unsigned(value, 1, 256, &c->cfg.threads);
    case OPT_BODY: return cli_parse_size(value, 1024, (size_t)1 << 30, &c->cfg.max_body);
    case OPT_CONNS: return serve_unsigned(value, 1, 10000, &c->cfg.max_connections);
    case OPT_TIMEOUT: return serve_unsigned(value, 1, 3600, &c->cfg.timeout_s);
    case OPT_ALIAS:
        if (c->cfg.n_model_aliases >= SERVE_MAX_ALIASES)
            return "at most 16 names";
        if (!*value || strlen(value) > SERVE_MAX_ALIAS_BYTES || strpbrk(value, " \t\r\n"))
            return "expected a model name of 1 to 256 bytes without spaces";
        c->aliases[c->cfg.n_model_aliases++] = value;
        return NULL;
    case OPT_HEADER_TIMEOUT: return serve_unsigned(value, 1, 3600, &c->cfg.header_timeout_s);
    case OPT_PRINT:
        if (strcmp(value, "read") && strcmp(value, "admin"))
            return "expected read or admin";
        c->print = value;
        return NULL;
    }
    return NULL;
}

static void serve_ready(const char *url, void *payload)
{
    const struct serve_cmd *c = payload;
    if (c->json)
        printf("{\"type\":\"listening\",\"url\":\"%s\"}\n", url);
    else
        printf("listening on %s\n", url);
    fflush(stdout);
}

static int serve_tokens(const struct cli *cli, struct serve_cmd *c)
{
    int rc = kb_service_tokens(cli->kb_dir, 1, c->cfg.read_token, c->cfg.admin_token);
    if (!rc)
        return 0;
    if (rc == KB_ECONFIG)
        cli_error("%s/tokens: token files must be mode 0600 in a 0700 folder and hold 64 hex "
                  "characters", cli->kb_dir);
    else
        cli_error("%s/tokens: cannot read or create the service tokens: %s", cli->kb_dir,
                  kb_strerror(rc));
    return cli_exit_code(rc);
}

static void serve_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = serve_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

static void serve_defaults(struct serve_cmd *c)
{
    memset(c, 0, sizeof *c);
    c->cfg.port = KB_SERVER_DEFAULT_PORT;
    c->cfg.max_body = KB_SERVER_DEFAULT_MAX_BODY;
    c->cfg.max_connections = KB_SERVER_DEFAULT_MAX_CONNECTIONS;
    c->cfg.timeout_s = KB_SERVER_DEFAULT_TIMEOUT_S;
    c->cfg.header_timeout_s = KB_SERVER_DEFAULT_HEADER_TIMEOUT_S;
    c->cfg.max_k = KB_SERVER_MAX_K;
    c->cfg.max_depth = KB_SERVER_MAX_DEPTH;
    c->cfg.allow_hosts = c->hosts;
    c->cfg.model_aliases = c->aliases;
}

static int serve_run(struct cli *cli, struct serve_cmd *c)
{
    char errbuf[1024] = "";
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (!c->cfg.threads)
        c->cfg.threads = cpus < 2 ? 2 : cpus > 16 ? 16 : (unsigned)cpus;
    c->cfg.kb_dir = cli->kb_dir;
    c->cfg.verbose = cli->verbose;
    c->cfg.stop = (const volatile int *)&serve_stop;
    c->cfg.on_ready = serve_ready;
    c->cfg.payload = c;
    c->json = cli->json;
    serve_signals();
    int rc = kb_server_run(&c->cfg, errbuf, sizeof errbuf);
    if (rc) {
        cli_error("%s", *errbuf ? errbuf : kb_strerror(rc));
        if (rc == KB_ENOTFOUND)
            cli_hint("create it with 'kb --kb %s ingest FOLDER'", cli->kb_dir);
        return rc == KB_EUNAVAILABLE ? CLI_EXIT_UNAVAILABLE : cli_exit_code(rc);
    }
    if (!cli->quiet)
        fprintf(stderr, "kb: stopped\n");
    return 0;
}

int cmd_serve(struct cli *cli, int argc, char **argv)
{
    struct serve_cmd c;
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int n_pos = 0, help = 0, rc;
    kb *kb = NULL;
    serve_defaults(&c);
    if (!pos) {
        cli_error("out of memory");
        return CLI_EXIT_IOERR;
    }
    if ((rc = cli_parse(cli, "serve", serve_opts, argc, argv, serve_opt, &c, pos, &n_pos,
                        &help)))
        goto done;
    if (help) {
        fputs(serve_help, stdout);
        goto done;
    }
    if (n_pos) {
        cli_usage_error("serve", "unexpected argument '%s'", pos[0]);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    /* the KB must exist before its tokens are made */
    if ((rc = cli_open(cli, &kb, KB_OPEN_READONLY)) || (rc = serve_tokens(cli, &c)))
        goto done;
    kb_close(kb);
    kb = NULL;
    if (c.print)
        printf("%s\n", !strcmp(c.print, "admin") ? c.cfg.admin_token : c.cfg.read_token);
    else
        rc = serve_run(cli, &c);
done:
    kb_close(kb);
    memset(c.cfg.admin_token, 0, sizeof c.cfg.admin_token);
    memset(c.cfg.read_token, 0, sizeof c.cfg.read_token);
    free(pos);
    return rc;
}
