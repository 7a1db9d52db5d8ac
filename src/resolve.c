/*
 * resolve.c - DNS lookups on a thread, answers on the event loop (see
 * resolve.h).
 *
 * A watch is owned by the loop's thread, except while it is queued: then
 * the lookup thread may take it from the queue, run getaddrinfo() on its
 * name and write the answer into it, and put it on the done list.  Both
 * lists are under the resolver's lock, so the loop reads an answer only
 * after the thread has finished writing it.  A watch freed while queued is
 * marked and freed when it comes back.
 *
 * The resolver is shared by its owner and its thread (refs): whichever
 * lets go last frees it, so resolver_free() never waits for a lookup that
 * may take the name servers' whole timeout.
 */
#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "clock.h"
#include "lockstat.h"
#include "log.h"

/* Room for a port in decimal, NUL included. */
#define RESOLVE_PORT_SIZE sizeof "65535"

struct resolve_watch {
    struct resolver *r;
    char *host;
    char port[RESOLVE_PORT_SIZE];
    int socktype;
    resolve_fn fn;
    void *arg;
    ev_timer timer;                 /* the next lookup: refresh or retry */
    struct backoff retry;
    bool queued;                    /* queued, being looked up, or answered and not yet handed back */
    bool freed;                     /* resolve_watch_free() while queued */
    struct resolve_watch *next;     /* in the queue or the done list */

    /* the answer, written by the lookup thread */
    struct sockaddr_storage sa;
    socklen_t salen;
    int gai_error;                  /* 0: sa holds the address */
    int sys_error;                  /* errno, for EAI_SYSTEM */
};

struct resolver {
    struct ev_loop *loop;
    ev_async answered;
    uint64_t refresh_ms;
    struct backoff retry;           /* each watch's starts as this */

    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct resolve_watch *queue;    /* first in, first out */
    struct resolve_watch **queue_tail;
    struct resolve_watch *done;
    bool stop;
    int refs;                       /* the owner and the thread */
};

static void free_list(struct resolve_watch *w)
{
    while (w != NULL) {
        struct resolve_watch *next = w->next;
        free(w->host);
        free(w);
        w = next;
    }
}

static void resolver_destroy(struct resolver *r)
{
    free_list(r->queue);
    free_list(r->done);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Lets go of r; the last one frees it.  Called with r->lock held, returns with it released. */
static void resolver_unref(struct resolver *r)
{
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->lock);
    if (last)
        resolver_destroy(r);
}

static void lookup(struct resolve_watch *w)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = w->socktype;
    hints.ai_flags = AI_NUMERICSERV;
    w->gai_error = getaddrinfo(w->host, w->port, &hints, &res);
    w->sys_error = w->gai_error == EAI_SYSTEM ? errno : 0;
    w->salen = 0;
    if (w->gai_error == 0) {
        const struct addrinfo *ai = res;
        while (ai != NULL && (ai->ai_addrlen > sizeof w->sa ||
                              (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)))
            ai = ai->ai_next;
        if (ai != NULL) {
            memcpy(&w->sa, ai->ai_addr, ai->ai_addrlen);
            w->salen = ai->ai_addrlen;
        } else {
            w->gai_error = EAI_ADDRFAMILY;  /* nothing an IP socket can use */
        }
    }
    if (res != NULL)
        freeaddrinfo(res);
}

static void *resolver_main(void *arg)
{
    struct resolver *r = arg;
    pthread_setname_np(pthread_self(), "resolver");        /* heprouter(8), THREADS */
    lockstat_lock(&r->lock, LOCKSTAT_RESOLVE);
    while (!r->stop) {
        struct resolve_watch *w = r->queue;
        if (w == NULL) {
            pthread_cond_wait(&r->wake, &r->lock);
            continue;
        }
        r->queue = w->next;
        if (r->queue == NULL)
            r->queue_tail = &r->queue;
        pthread_mutex_unlock(&r->lock);
        lookup(w);                  /* even if freed meanwhile: its name stays until it comes back */
        lockstat_lock(&r->lock, LOCKSTAT_RESOLVE);
        w->next = r->done;
        r->done = w;
        if (!r->stop)
            ev_async_send(r->loop, &r->answered);
    }
    resolver_unref(r);
    return NULL;
}

static void submit(struct resolve_watch *w)
{
    struct resolver *r = w->r;
    w->queued = true;
    w->next = NULL;
    lockstat_lock(&r->lock, LOCKSTAT_RESOLVE);
    *r->queue_tail = w;
    r->queue_tail = &w->next;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

static void schedule(struct resolve_watch *w, uint64_t ms)
{
    ev_timer_stop(w->r->loop, &w->timer);
    ev_timer_set(&w->timer, clock_ms_to_s(ms), 0.);
    ev_timer_start(w->r->loop, &w->timer);
}

/* Hands one answer to its owner and schedules the next lookup first, as the callback may free w. */
static void deliver(struct resolve_watch *w)
{
    const char *error = NULL;
    if (w->gai_error == 0) {
        w->retry = w->r->retry;     /* from min again, with what a reload may have set */
        schedule(w, w->r->refresh_ms);
    } else {
        error = w->gai_error == EAI_SYSTEM ? strerror(w->sys_error) : gai_strerror(w->gai_error);
        schedule(w, backoff_next(&w->retry));
    }
    w->fn(w->arg, error == NULL ? (const struct sockaddr *)&w->sa : NULL, error == NULL ? w->salen : 0, error);
}

static void on_answered(struct ev_loop *loop, ev_async *a, int revents)
{
    struct resolver *r = a->data;
    (void)loop;
    (void)revents;
    lockstat_lock(&r->lock, LOCKSTAT_RESOLVE);
    struct resolve_watch *list = r->done;
    r->done = NULL;
    pthread_mutex_unlock(&r->lock);
    while (list != NULL) {
        struct resolve_watch *w = list;
        list = w->next;
        w->next = NULL;
        w->queued = false;
        if (w->freed) {
            free(w->host);
            free(w);
        } else {
            deliver(w);
        }
    }
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct resolve_watch *w = t->data;
    if (!w->queued)
        submit(w);
}

struct resolver *resolver_new(struct ev_loop *loop, uint64_t refresh_ms, uint64_t retry_min_ms,
                              uint64_t retry_max_ms)
{
    struct resolver *r = calloc(1, sizeof *r);
    if (r == NULL) {
        log_error("resolver: out of memory");
        return NULL;
    }
    r->loop = loop;
    resolver_configure(r, refresh_ms, retry_min_ms, retry_max_ms);
    r->queue_tail = &r->queue;
    r->refs = 2;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);

    /* signals belong to the main thread: the lookup thread starts with all of them blocked */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, resolver_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_error("resolver: cannot start its thread: %s", strerror(rc));
        resolver_destroy(r);
        return NULL;
    }
    pthread_detach(thread);
    ev_async_init(&r->answered, on_answered);
    r->answered.data = r;
    ev_async_start(loop, &r->answered);
    return r;
}

void resolver_free(struct resolver *r)
{
    if (r == NULL)
        return;
    ev_async_stop(r->loop, &r->answered);
    lockstat_lock(&r->lock, LOCKSTAT_RESOLVE);
    r->stop = true;
    pthread_cond_signal(&r->wake);
    resolver_unref(r);
}

void resolver_configure(struct resolver *r, uint64_t refresh_ms, uint64_t retry_min_ms, uint64_t retry_max_ms)
{
    r->refresh_ms = refresh_ms;
    backoff_init(&r->retry, retry_min_ms, retry_max_ms);
}

struct resolve_watch *resolve_watch_new(struct resolver *r, const char *host, unsigned port, int socktype,
                                        resolve_fn fn, void *arg)
{
    struct resolve_watch *w = calloc(1, sizeof *w);
    if (w == NULL || (w->host = strdup(host)) == NULL) {
        free(w);
        return NULL;
    }
    w->r = r;
    snprintf(w->port, sizeof w->port, "%u", port);
    w->socktype = socktype;
    w->fn = fn;
    w->arg = arg;
    w->retry = r->retry;
    ev_init(&w->timer, on_timer);
    w->timer.data = w;
    submit(w);
    return w;
}

void resolve_now(struct resolve_watch *w)
{
    if (w->queued)
        return;
    ev_timer_stop(w->r->loop, &w->timer);
    submit(w);
}

void resolve_watch_free(struct resolve_watch *w)
{
    if (w == NULL)
        return;
    ev_timer_stop(w->r->loop, &w->timer);
    if (w->queued) {
        w->freed = true;
        return;
    }
    free(w->host);
    free(w);
}
