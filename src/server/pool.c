/* pool.c — kb serve's kb handles (read-only ones lent per request, one writer) and the
 * shared encoder model, opened once. */
#include "server/server_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>


static void pool_deadline(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int srv_pool_open(struct srv *s, char *errbuf, size_t errbuf_size)
{
    size_t n = s->cfg->threads;
    s->readers = calloc(n, sizeof *s->readers);
    s->busy = calloc(n, sizeof *s->busy);
    if (!s->readers || !s->busy) {
        snprintf(errbuf, errbuf_size, "out of memory");
        return KB_ENOMEM;
    }
    s->n_readers = n;
    /* The first reader is opened now, so a missing or unreadable KB fails at start; the
     * model name it records is what /v1/embeddings serves. */
    int rc = kb_open(&s->readers[0], s->cfg->kb_dir, KB_OPEN_READONLY);
    kb_status_info info;
    if (!rc)
        rc = kb_stat(s->readers[0], &info);
    if (rc) {
        snprintf(errbuf, errbuf_size, "%s", s->readers[0] ? kb_errmsg(s->readers[0])
                                                          : kb_strerror(rc));
        return rc;
    }
    snprintf(s->model_name, sizeof s->model_name, "%s", info.model);
    srv_model_id(s->model_name, s->model_id, sizeof s->model_id);
    return 0;
}

void srv_pool_close(struct srv *s)
{
    for (size_t i = 0; i < s->n_readers; i++)
        kb_close(s->readers[i]);
    free(s->readers);
    free(s->busy);
    kb_close(s->writer);
    kb_model_close(s->model);
}

/* A request waiting for a read handle. Handles go to waiters in arrival order: a freed
 * handle is handed to the oldest (srv_pool_put), so a request cannot lose the race to newer
 * ones again and again while the server is saturated. */
struct srv_waiter {
    long slot;                   /* the handle handed over, or -1 */
    struct srv_waiter *next;
};

static void pool_unqueue(struct srv *s, struct srv_waiter *w)
{
    struct srv_waiter **p = &s->wait_head, *prev = NULL;
    while (*p && *p != w) {
        prev = *p;
        p = &(*p)->next;
    }
    if (*p) {
        *p = w->next;
        if (s->wait_tail == w)
            s->wait_tail = prev;
    }
}

int srv_client_gone(int fd)
{
    if (fd < 0)
        return 0;
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll(&p, 1, 0) <= 0)
        return 0;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
        return 1;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* How often a request waiting for a handle looks whether its client is still there. */
#define POOL_CHECK_MS 200

/* Whether a comes after b. */
static int pool_after(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

static int pool_passed(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return !pool_after(t, &now);
}

/* The index of a free handle, marked busy; waits (in line) on s->cond. -1 on timeout, or
 * with *gone set when the client at client_fd hung up while it waited: a client that gives
 * up (or a load generator that stops) must not leave requests queued for handles, holding
 * their connections against --max-connections until the timeout. */
static long pool_take(struct srv *s, int client_fd, int *gone)
{
    struct timespec deadline;
    pool_deadline(&deadline, s->cfg->timeout_s * 1000u);
    long slot = -1;
    *gone = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_readers && slot < 0 && !s->wait_head; i++)
        if (!s->busy[i])
            slot = (long)i;
    if (slot >= 0) {
        s->busy[slot] = 1;
    } else if (!s->stopping) {
        struct srv_waiter w = { -1, NULL };
        if (s->wait_tail)
            s->wait_tail->next = &w;
        else
            s->wait_head = &w;
        s->wait_tail = &w;
        while (w.slot < 0 && !s->stopping && !pool_passed(&deadline)) {
            struct timespec step;
            pool_deadline(&step, POOL_CHECK_MS);
            if (pool_after(&step, &deadline))
                step = deadline;
            pthread_cond_timedwait(&s->cond, &s->lock, &step);
            if (w.slot < 0 && srv_client_gone(client_fd)) {
                *gone = 1;
                break;
            }
        }
        if (w.slot < 0)
            pool_unqueue(s, &w);
        slot = w.slot; /* handed over still busy */
    }
    pthread_mutex_unlock(&s->lock);
    return slot;
}

kb *srv_pool_borrow(struct srv *s, struct srv_reply *out)
{
    int gone;
    long slot = pool_take(s, out->client_fd, &gone);
    if (slot < 0 && gone) {
        out->status = 499; /* no reply: the connection is closed (logged as 499, as nginx) */
        return NULL;
    }
    if (slot < 0) {
        srv_error(out, 503, "busy", "every kb handle is in use; retry");
        if (out->resp)
            MHD_add_response_header(out->resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        return NULL;
    }
    if (!s->readers[slot]) {
        int rc = kb_open(&s->readers[slot], s->cfg->kb_dir, KB_OPEN_READONLY);
        if (rc) {
            srv_fail(s, out, rc, s->readers[slot] ? kb_errmsg(s->readers[slot]) : kb_strerror(rc));
            kb_close(s->readers[slot]);
            s->readers[slot] = NULL;
            pthread_mutex_lock(&s->lock);
            s->busy[slot] = 0;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
    }
    return s->readers[slot];
}

void srv_pool_put(struct srv *s, kb *kb)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; kb && i < s->n_readers; i++) {
        if (s->readers[i] != kb)
            continue;
        struct srv_waiter *w = s->wait_head;
        if (w) { /* straight to the oldest waiter, still marked busy */
            s->wait_head = w->next;
            if (!s->wait_head)
                s->wait_tail = NULL;
            w->slot = (long)i;
        } else {
            s->busy[i] = 0;
        }
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

kb *srv_pool_get_writer(struct srv *s, int *status)
{
    struct timespec deadline;
    pool_deadline(&deadline, SRV_LOCK_WAIT_MS);
    if (pthread_mutex_timedlock(&s->write_lock, &deadline) != 0) {
        *status = KB_ELOCKED;
        return NULL;
    }
    if (!s->writer) {
        int rc = kb_open(&s->writer, s->cfg->kb_dir, 0);
        if (rc) {
            kb_close(s->writer);
            s->writer = NULL;
            pthread_mutex_unlock(&s->write_lock);
            *status = rc;
            return NULL;
        }
    }
    *status = 0;
    return s->writer;
}

void srv_pool_put_writer(struct srv *s)
{
    pthread_mutex_unlock(&s->write_lock);
}

kb_model *srv_model_get(struct srv *s, int *status)
{
    pthread_mutex_lock(&s->model_lock);
    if (s->model_state == 0 && !*s->model_name) {
        s->model_state = KB_ENOTFOUND;
    } else if (s->model_state == 0) {
        int rc = kb_model_open(&s->model, s->model_name);
        if (rc) {
            kb_model_close(s->model);
            s->model = NULL;
        }
        s->model_state = rc ? rc : 1;
    }
    if (s->model_state == 1) {
        *status = 0;
        return s->model; /* model_lock stays held until srv_model_put */
    }
    *status = s->model_state;
    pthread_mutex_unlock(&s->model_lock);
    return NULL;
}

void srv_model_put(struct srv *s)
{
    pthread_mutex_unlock(&s->model_lock);
}
