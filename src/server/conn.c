/* conn.c — kb serve's open connections: how many there are, and how long one may take to
 * send a request that passes the checks (slow clients must not hold connections for free).
 *
 * A connection is *waiting* from its accept, and again from the end of each reply, until a
 * request's headers arrive and pass server_precheck (Host, token, route): then it is
 * *serving* until the reply is done. A waiting connection has a deadline, --header-timeout
 * later: past it the connection is shut down (srv_conn_sweep, ten times a second), however
 * steadily it trickles bytes. Requests refused from their headers (401, 404, 413...) stay
 * waiting, so a client without a token cannot stretch its time by sending a body slowly.
 *
 * When a new connection takes the count past --max-connections, the connection that has been
 * waiting longest is shut down to make room: a client that sends its request at once always
 * gets in, while ones that only trickle take turns being evicted. Only when every other
 * connection is serving does the new one stay over the limit, and its request gets a 429.
 * Shutting a socket down (not closing it) makes the connection's own thread see the end and
 * close it; libmicrohttpd reports the close (srv_conn_close) before it closes the socket,
 * and both happen under conn_lock, so a shutdown never reaches a reused descriptor. */
#include "server/server_int.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

struct srv_conn {
    int fd;
    double deadline_ms;           /* waiting: monotonic ms by which a request must pass; 0:
                                     serving */
    int shut;                     /* shut down by us: no longer counted */
    struct srv_conn *prev, *next;
};

static double conn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double conn_deadline(const struct srv *s)
{
    unsigned t = s->cfg->header_timeout_s ? s->cfg->header_timeout_s
                                          : KB_SERVER_DEFAULT_HEADER_TIMEOUT_S;
    return conn_now_ms() + t * 1e3;
}

/* Called with conn_lock held. */
static void conn_shut(struct srv *s, struct srv_conn *k)
{
    shutdown(k->fd, SHUT_RDWR);
    k->shut = 1;
    s->n_connections--;
}

static struct srv_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void srv_conn_open(struct srv *s, struct MHD_Connection *c, void **socket_context)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c,
                                                                 MHD_CONNECTION_INFO_CONNECTION_FD);
    struct srv_conn *k = calloc(1, sizeof *k);
    *socket_context = k;
    if (!k || !ci) {
        free(k); /* untracked: counted by libmicrohttpd's own limit only */
        *socket_context = NULL;
        return;
    }
    k->fd = ci->connect_fd;
    k->deadline_ms = conn_deadline(s);
    pthread_mutex_lock(&s->conn_lock);
    k->next = s->conns;
    if (s->conns)
        s->conns->prev = k;
    s->conns = k;
    if (++s->n_connections > (int)s->cfg->max_connections) {
        struct srv_conn *oldest = NULL;
        for (struct srv_conn *o = k->next; o; o = o->next)
            if (o->deadline_ms > 0 && !o->shut &&
                (!oldest || o->deadline_ms < oldest->deadline_ms))
                oldest = o;
        if (oldest)
            conn_shut(s, oldest);
    }
    pthread_mutex_unlock(&s->conn_lock);
}

void srv_conn_close(struct srv *s, void **socket_context)
{
    struct srv_conn *k = *socket_context;
    if (!k)
        return;
    pthread_mutex_lock(&s->conn_lock);
    if (k->prev)
        k->prev->next = k->next;
    else
        s->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    if (!k->shut)
        s->n_connections--;
    pthread_mutex_unlock(&s->conn_lock);
    free(k);
    *socket_context = NULL;
}

static void conn_set_deadline(struct srv *s, struct MHD_Connection *c, double deadline_ms)
{
    struct srv_conn *k = conn_of(c);
    if (!k)
        return;
    pthread_mutex_lock(&s->conn_lock);
    k->deadline_ms = deadline_ms;
    pthread_mutex_unlock(&s->conn_lock);
}

void srv_conn_serving(struct srv *s, struct MHD_Connection *c)
{
    conn_set_deadline(s, c, 0);
}

void srv_conn_waiting(struct srv *s, struct MHD_Connection *c)
{
    conn_set_deadline(s, c, conn_deadline(s));
}

int srv_conn_count(struct srv *s)
{
    pthread_mutex_lock(&s->conn_lock);
    int n = s->n_connections;
    pthread_mutex_unlock(&s->conn_lock);
    return n;
}

void srv_conn_sweep(struct srv *s)
{
    double now = conn_now_ms();
    pthread_mutex_lock(&s->conn_lock);
    for (struct srv_conn *k = s->conns; k; k = k->next)
        if (k->deadline_ms > 0 && k->deadline_ms < now && !k->shut)
            conn_shut(s, k);
    pthread_mutex_unlock(&s->conn_lock);
}
