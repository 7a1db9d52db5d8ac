/*
 * main.c - heprouter: command line, workers, signals.
 *
 * The main thread loads the configuration, opens the context store and
 * starts `workers` threads.  Each worker has its own libev loop, its own
 * listening sockets (SO_REUSEPORT), output sockets, hold queue and
 * counters; the store is the only thing they share.  The main thread then
 * waits for signals: SIGTERM/SIGINT drain and stop (a second one during the
 * drain stops at once), SIGUSR1 logs the counters, SIGHUP is acknowledged
 * (reload is not available yet).
 *
 * Before the workers start, the open files limit (RLIMIT_NOFILE) is raised
 * to its hard limit and checked against what the configuration can open;
 * inbound TCP connections are capped so that outbound sockets always find
 * a descriptor (see fd_budget()).
 *
 * A listener on port 0 gets its port from the kernel when worker 0 binds
 * it; the other workers bind that same port (listen_pin_ports()).  With
 * --ready-file, the "listening" lines of ready.h are written once every
 * worker runs, and removed when the listeners close.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "admission.h"
#include "clock.h"
#include "conf.h"
#include "dedup.h"
#include "dest.h"
#include "explain.h"
#include "ingest.h"
#include "lockstat.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "privileges.h"
#include "ready.h"
#include "control.h"
#include "ctl.h"
#include "http.h"
#include "router.h"
#include "store/store.h"
#include "store/open.h"
#include "tap.h"
#include "tls.h"

/* How often a worker expires store entries and publishes its counters. */
#define HOUSEKEEPING_INTERVAL_S 0.1
#define WORKER_THREAD_NAME_MAX 16         /* a thread name's bytes, NUL included (the kernel's TASK_COMM_LEN) */
#define STORE_CHECK_ERR_MAX 512
#define FD_MESSAGE_MAX 1024

/*
 * Descriptors opened besides inbound TCP connections (fd_budget()), as
 * ingest.c, dest.c and store/redis_link.c open them:
 * - a libev loop (the main one and one per worker): its epoll fd, the
 *   async wakeup (an eventfd, or a pipe pair without it) and the timerfd
 *   some libev builds add;
 * - per worker: one socket per listener and one per destination target
 *   (a TCP target closes its socket before it reconnects);
 * - per worker with store.type redis: one data connection, and one
 *   Sentinel connection with store.redis.sentinels (a dropped connection
 *   is freed before the next one is opened);
 * - with metrics.listen, the HTTP server and up to metrics.max_connections
 *   connections; with control.socket, its socket, up to
 *   control.max_clients clients and, with store.type redis, the Redis
 *   connection(s) of its `call` command.
 * What is open at start (stdio, inherited descriptors) is counted as it
 * is; short-lived ones (an accept() refused over the cap, a resolver's
 * socket) come out of limits.fd_reserve.
 */
#define FD_PER_LOOP 4
#define FD_PER_LISTENER 1
#define FD_PER_TARGET 1
#define FD_PER_REDIS 1
#define FD_PER_SENTINEL 1
#define FD_HTTP_SERVER 3            /* libmicrohttpd: listening socket, epoll, its inter-thread channel */
#define FD_CONTROL_SERVER 1         /* the control socket's listening socket */
#define FD_OPEN_AT_START_DEFAULT (STDERR_FILENO + 1)   /* when /proc cannot tell */

struct worker {
    unsigned index;
    pthread_t thread;
    bool started;
    const struct conf *conf;
    struct store *store;
    struct ev_loop *loop;
    struct metrics m;
    struct ingest *in;
    struct dest_set *ds;
    struct router *router;
    bool own_store;                 /* a per-worker store (Redis), freed with the worker */
    struct router_in *batch;        /* the packets of the batch in hand, routed together (router_packets()) */
    struct ingest_source *batch_src;    /* their senders: batch[i].source is &batch_src[i] */
    size_t nbatch, batch_cap;       /* batch_cap: limits.udp_batch, a whole recvmmsg() */
    bool batch_clocked;             /* batch_mono_ms, batch_wall_ms read for the batch being routed */
    uint64_t batch_mono_ms, batch_wall_ms;
    struct tap_worker *tap;         /* with a control socket: this worker's side of the live tap */
    struct dedup *dedup;            /* the instance's dedup window, shared */
    ev_timer hold_timer;
    uint64_t hold_timer_due;        /* monotonic ms the hold timer is armed for */
    ev_timer housekeeping;
    ev_timer drain_timer;
    ev_async stop;
    ev_async abort;                 /* a second TERM/INT: stop draining now */
    bool draining;
    double drain_deadline;
    ev_async reload;                /* main: swap to next_conf between two batches */
    const struct conf *next_conf;
    int reload_rc;                  /* 0 swapped, 1 swapped with errors (logged), -1 not swapped */
    atomic_bool reload_acked;       /* the worker is done with next_conf */
    ev_async *reloaded;             /* main loop's: a worker is done with a reload */
    atomic_uint_fast64_t beat_ms;   /* monotonic ms of the loop's last housekeeping (/healthz) */
    /* counters published for the main thread, laid out for snap_conf */
    pthread_mutex_t snap_lock;
    struct metrics snap;
    const struct conf *snap_conf;
    int startup_rc;                 /* 0 ok, -1 failed */
    /* set when worker_main() is done; the main loop is woken through done */
    atomic_bool finished;
    struct ev_loop *main_loop;
    ev_async *done;
};


/* The gauges are read now; the counters are running totals. */
static void publish(struct worker *w)
{
    if (w->ds != NULL)
        dest_gauges(w->ds);
    w->m.orphans_held_now = w->router != NULL ? router_held(w->router) : 0;
    w->m.store_link_up = w->store != NULL && store_is_up(w->store);
    tap_worker_count_lost(w->tap);
    lockstat_lock(&w->snap_lock, LOCKSTAT_SNAPSHOT);
    metrics_reset(&w->snap);
    metrics_add(&w->snap, &w->m);
    w->snap_conf = w->conf;
    pthread_mutex_unlock(&w->snap_lock);
}

/*
 * Keeps the hold timer armed for the router's next deadline (a wait over,
 * a recheck, or anything else the router has to do later), and stopped
 * when it has none.
 */
static void arm_hold_timer(struct worker *w)
{
    uint64_t deadline = router_next_deadline(w->router);
    if (deadline == UINT64_MAX) {
        ev_timer_stop(w->loop, &w->hold_timer);
        return;
    }
    if (ev_is_active(&w->hold_timer) && w->hold_timer_due <= deadline)
        return;
    uint64_t now = clock_mono_ms();
    double after = deadline > now ? clock_ms_to_s(deadline - now) : 0.0;
    ev_timer_stop(w->loop, &w->hold_timer);
    ev_timer_set(&w->hold_timer, after, 0.0);
    ev_timer_start(w->loop, &w->hold_timer);
    w->hold_timer_due = deadline;
}

/* Routes the packets gathered so far; their bytes are still in place (ingest.h). */
static void route_batch(struct worker *w)
{
    router_packets(w->router, w->batch, w->nbatch, w->batch_mono_ms, w->batch_wall_ms);
    w->nbatch = 0;
}

/*
 * Gathers the packets of a batch (a recvmmsg() or a TCP read), to be
 * routed together at its end, or sooner when more arrive than a
 * recvmmsg() brings.  The clocks are read once per batch, at its first
 * packet: the packets of one batch arrived together, and the clocks count
 * milliseconds.
 */
static void on_packet(void *arg, const uint8_t *data, size_t len, const struct ingest_source *src)
{
    struct worker *w = arg;
    if (!w->batch_clocked) {
        w->batch_mono_ms = clock_mono_ms();
        w->batch_wall_ms = clock_wall_ms();
        w->batch_clocked = true;
    }
    if (w->nbatch == w->batch_cap)
        route_batch(w);
    w->batch_src[w->nbatch] = *src;
    w->batch[w->nbatch] = (struct router_in){ data, len, &w->batch_src[w->nbatch] };
    w->nbatch++;
}

static const char *worker_source(void *arg, const void *source, char *buf, size_t len)
{
    const struct ingest_source *src = source;
    (void)arg;
    return src != NULL ? netaddr_format(src->peer, buf, len) : NULL;
}

static int worker_admit(void *arg, const void *source, const struct hep_view *view)
{
    struct worker *w = arg;
    return source == NULL ? ADMISSION_OK : ingest_admit(w->in, source, view);
}

static void on_batch_end(void *arg)
{
    struct worker *w = arg;
    route_batch(w);
    w->batch_clocked = false;
    dest_flush(w->ds);
    arm_hold_timer(w);
}

static void on_hold_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)loop;
    (void)revents;
    router_timer(w->router, clock_mono_ms(), clock_wall_ms());
    dest_flush(w->ds);
    arm_hold_timer(w);
}

static void on_housekeeping(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)loop;
    (void)revents;
    uint64_t now = clock_mono_ms();
    atomic_store(&w->beat_ms, now);
    store_expire(w->store, now);
    dest_housekeeping(w->ds);
    router_logs(w->router, now);
    ingest_logs(w->in, now);
    publish(w);
}

/*
 * A configuration and the certificates its tls: listeners and targets
 * name (tls.h), read together at start, by -t and at every reload; NULL
 * after writing the errors to err.
 */
static struct conf *conf_load_all(const char *path, FILE *err)
{
    struct conf *c = conf_load(path, err);
    if (c == NULL)
        return NULL;
    if ((c->tls_set = tls_set_load(c, err)) == NULL) {
        conf_free(c);
        return NULL;
    }
    return c;
}

static void conf_free_all(struct conf *c)
{
    if (c == NULL)
        return;
    tls_set_free(c->tls_set);
    conf_free(c);
}

/*
 * A configuration reload, run between two batches (an async watcher never
 * runs inside one).  The counters move to the new layout by name, then
 * destinations, the router and the listeners take the new configuration;
 * the snapshot follows, so the main thread can free the old configuration
 * once every worker has acknowledged.
 */
static void on_reload(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = a->data;
    const struct conf *old = w->conf, *next = w->next_conf;
    struct metrics moved, snap;
    (void)loop;
    (void)revents;
    w->reload_rc = 0;
    if (metrics_init(&moved, next) != 0 || metrics_init(&snap, next) != 0) {
        metrics_free(&moved);
        log_error("worker %u: out of memory for the reload; it keeps the running configuration", w->index);
        w->reload_rc = -1;
        goto done;
    }
    metrics_add_mapped(&moved, next, &w->m, old);
    metrics_free(&w->m);
    w->m = moved;                   /* same address: the router, destinations and store keep counting here */
    if (dest_set_reconfigure(w->ds, old, next) != 0)
        w->reload_rc = 1;
    router_set_conf(w->router, next);
    if (w->tap != NULL)
        tap_worker_set_conf(w->tap, next);
    if (w->own_store)
        store_set_conf(w->store, next);
    w->conf = next;
    if (ingest_reconfigure(w->in, old, next) != 0)
        w->reload_rc = 1;
    lockstat_lock(&w->snap_lock, LOCKSTAT_SNAPSHOT);
    metrics_free(&w->snap);
    w->snap = snap;
    w->snap_conf = next;            /* the layout and its names change together */
    pthread_mutex_unlock(&w->snap_lock);
    publish(w);
done:
    atomic_store(&w->reload_acked, true);
    ev_async_send(w->main_loop, w->reloaded);
}

/*
 * Ends the drain: what TCP targets still queue is discarded (counted in
 * exit_drops), store commands not done are counted as lost when the store
 * is freed, and the loop ends.
 */
static void drain_end(struct worker *w, const char *why)
{
    size_t pending = dest_pending(w->ds);
    size_t writes = w->own_store ? store_pending(w->store) : 0;
    if (pending > 0)
        log_warn("worker %u: %s: %zu packets (%zu bytes) still queued for TCP targets "
                 "are discarded", w->index, why, dest_abandon(w->ds), pending);
    if (writes > 0)
        log_warn("worker %u: %s: %zu context store commands not done", w->index, why, writes);
    ev_timer_stop(w->loop, &w->drain_timer);
    ev_break(w->loop, EVBREAK_ALL);
}

/* Waits for TCP queues and store writes to finish, up to limits.drain_timeout. */
static void on_drain_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)revents;
    size_t pending = dest_pending(w->ds);
    size_t writes = w->own_store ? store_pending(w->store) : 0;
    if ((pending == 0 && writes == 0) || ev_now(loop) >= w->drain_deadline)
        drain_end(w, "drain timeout");
}

static void drain_begin(struct worker *w)
{
    struct ev_loop *loop = w->loop;
    if (w->draining)
        return;
    w->draining = true;
    ingest_stop(w->in);
    ev_timer_stop(loop, &w->hold_timer);
    router_drain(w->router, clock_mono_ms(), clock_wall_ms());
    dest_flush(w->ds);
    w->drain_deadline = ev_now(loop) + clock_ms_to_s(w->conf->drain_timeout_ms);
    ev_timer_init(&w->drain_timer, on_drain_timer, 0.0, HOUSEKEEPING_INTERVAL_S);
    w->drain_timer.data = w;
    ev_timer_start(loop, &w->drain_timer);
}

static void on_stop(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    drain_begin(a->data);
}

/* A second TERM/INT: the drain ends now (it may not have begun yet). */
static void on_abort(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = a->data;
    (void)loop;
    (void)revents;
    drain_begin(w);
    drain_end(w, "stopped by a second signal");
}

static void dispatch_send(void *arg, size_t di, const struct hep_view *view, const char *key, size_t klen)
{
    dest_send(arg, di, view, key, klen);
}

static void dispatch_flush(void *arg)
{
    dest_flush(arg);
}

static int worker_setup(struct worker *w)
{
    static const struct router_dispatch no_dispatch;
    struct router_dispatch d = no_dispatch;

    w->loop = ev_loop_new(EVFLAG_AUTO);
    if (w->loop == NULL || metrics_init(&w->m, w->conf) != 0 || metrics_init(&w->snap, w->conf) != 0) {
        log_error("worker %u: out of memory", w->index);
        return -1;
    }
    w->ds = dest_set_new(w->loop, w->conf, &w->m, w->index);
    if (w->ds == NULL)
        return -1;
    if (w->store == NULL) {
        /* a shared back-end: one connection and cache per worker */
        w->store = store_open(w->conf, w->loop, &w->m);
        if (w->store == NULL)
            return -1;
        w->own_store = true;
    }
    w->batch_cap = w->conf->udp_batch;
    w->batch = calloc(w->batch_cap, sizeof *w->batch);
    w->batch_src = calloc(w->batch_cap, sizeof *w->batch_src);
    if (w->batch == NULL || w->batch_src == NULL) {
        log_error("worker %u: out of memory", w->index);
        return -1;
    }
    d.send = dispatch_send;
    d.flush = dispatch_flush;
    d.arg = w->ds;
    d.source = worker_source;
    d.source_arg = w;
    d.admit = worker_admit;
    w->router = router_new(w->conf, w->store, &w->m, &d);
    if (w->router == NULL) {
        log_error("worker %u: out of memory", w->index);
        return -1;
    }
    router_set_dedup(w->router, w->dedup);
    w->in = ingest_new(w->loop, w->conf, &w->m, on_packet, on_batch_end, w);
    if (w->in == NULL)
        return -1;
    if (w->tap != NULL)
        tap_worker_start(w->tap, w->loop, w->router, w->conf, &w->m);
    ev_timer_init(&w->hold_timer, on_hold_timer, 0.0, 0.0);
    w->hold_timer.data = w;
    ev_timer_init(&w->housekeeping, on_housekeeping, HOUSEKEEPING_INTERVAL_S, HOUSEKEEPING_INTERVAL_S);
    w->housekeeping.data = w;
    ev_timer_start(w->loop, &w->housekeeping);
    ev_async_init(&w->stop, on_stop);
    w->stop.data = w;
    ev_async_start(w->loop, &w->stop);
    ev_async_init(&w->abort, on_abort);
    w->abort.data = w;
    ev_async_start(w->loop, &w->abort);
    ev_async_init(&w->reload, on_reload);
    w->reload.data = w;
    ev_async_start(w->loop, &w->reload);
    atomic_store(&w->beat_ms, clock_mono_ms());
    w->snap_conf = w->conf;
    return 0;
}

static void worker_teardown(struct worker *w)
{
    if (w->in != NULL)
        ingest_free(w->in);
    router_free(w->router);
    if (w->own_store)
        store_free(w->store);
    if (w->ds != NULL)
        dest_set_free(w->ds);
    if (w->loop != NULL)
        ev_loop_destroy(w->loop);
    metrics_free(&w->m);
    metrics_free(&w->snap);
    free(w->batch);
    free(w->batch_src);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[WORKER_THREAD_NAME_MAX];
    snprintf(name, sizeof name, "worker %u", w->index);
    pthread_setname_np(pthread_self(), name);       /* top -H, ps -L: heprouter(8), THREADS */
    /* signals belong to the main thread */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    ev_run(w->loop, 0);
    char locks[LOCKSTAT_TEXT_MAX];
    log_debug("worker %u: %llu packets in; locks taken: %s", w->index, (unsigned long long)w->m.packets_in,
              lockstat_format(locks, sizeof locks));
    if (w->own_store) {
        /* before the last counters: writes it could not finish count as lost */
        store_free(w->store);
        w->store = NULL;
        w->own_store = false;
    }
    publish(w);
    atomic_store(&w->finished, true);
    ev_async_send(w->main_loop, w->done);
    return NULL;
}

/* ---- main thread ---- */

/* A growable list of lines. */
struct strv {
    char **s;
    size_t n;
};

/* A configuration reload in progress (the main thread's; one at a time). */
struct reload {
    bool running;
    bool pending;                   /* asked again while running: once more after it */
    struct conf *next;              /* being swapped in, worker by worker */
    unsigned next_worker;           /* the worker swapping now */
    bool errors;                    /* a worker could not build everything (logged) */
    bool stuck;                     /* a worker kept the old configuration: it cannot be freed */
    struct strv changes;            /* "route x: to [a] -> [b]" */
    struct strv restart;            /* "workers: 2 -> 4 (needs a restart; 2 kept)" */
    struct control_request **waiters;   /* `reload` commands answered when it is done */
    size_t nwaiters;
};

struct app {
    struct conf *conf;              /* the running configuration; swapped under state_lock */
    const char *ready_file;         /* --ready-file, or NULL */
    bool ready_written;             /* it is there, and says we listen */
    bool debug;                     /* -d: log.level debug whatever the file says */
    const char *user;               /* -u USER, or NULL: the configuration's user: */
    struct store *store;
    struct worker *workers;
    unsigned nworkers;
    struct ev_loop *loop;
    ev_signal sigterm, sigint, sigusr1, sighup;
    ev_timer stats_timer;
    ev_timer store_watch;           /* memory store evictions, once per log.interval */
    ev_async worker_done;           /* a worker's loop has ended */
    ev_async worker_reloaded;       /* a worker is done with a reload */
    bool stopping;                  /* TERM/INT received: workers are draining */
    size_t evictions_seen;          /* memory store evictions already reported */
    struct reload reload;
    struct http *http;              /* metrics.listen, or NULL */
    struct control *control;        /* control.socket, or NULL */
    struct tap *tap;                /* the live tap, with control.socket */
    struct dedup *dedup;            /* every destination's dedup window (limits.dedup_entries) */
    struct store *call_store;       /* Redis: the control socket's connection for `call` */
    struct metrics call_metrics;    /* what that connection counts (not reported) */
    struct call_wait *call_waits;   /* `call`s waiting for Redis */
    ev_timer call_store_watch;      /* publishes call_store_down for /readyz */
    atomic_bool call_store_down;    /* that connection is there and not up */
    /*
     * What the HTTP thread reads besides the workers' snapshots: the
     * running configuration and the process values, under state_lock.
     */
    pthread_mutex_t state_lock;
    struct metrics_process proc;
    unsigned generation;            /* 1 at start, +1 per successful reload */
    uint64_t loaded_at_ms;          /* wall clock of the running configuration's load */
    atomic_bool ready;              /* listeners bound and not draining (/readyz) */
};

/* ---- port 0 and the ready file ---- */

/*
 * Port 0 with several workers: each worker binds every listener with
 * SO_REUSEPORT, and each bind() to port 0 would get its own port from the
 * kernel.  So once worker 0 has bound its listeners, the port it got is
 * written into the configured address of every listener given with port
 * 0, and the workers set up after it bind that port.  (conf_addr.text keeps
 * ":0", as written.)  -1 when worker 0 cannot say what it bound.
 */
static int listen_pin_ports(struct conf *c, const struct ingest *in)
{
    for (size_t i = 0; i < c->nlisten; i++) {
        struct conf_addr *addr = &c->listen[i];
        struct sockaddr_storage bound;
        socklen_t boundlen = sizeof bound;

        if (addr->port != 0)
            continue;
        if (ingest_bound_addr(in, i, &bound, &boundlen) != 0 ||
            (addr->port = netaddr_port((const struct sockaddr *)&bound)) == 0) {
            log_error("listen %s: cannot read the port worker 0 was given", addr->text);
            return -1;
        }
    }
    return 0;
}

/* Where the metrics server listens, its port as bound (metrics.listen may say 0). */
static void http_bound(const struct app *a, struct sockaddr_storage *sa)
{
    struct conf_addr bound = a->conf->metrics_listen;
    bound.port = http_port(a->http);
    netaddr_from_conf(&bound, sa);
}

/*
 * Writes the ready file: one line per listener, worker 0's names,
 * "udp:127.0.0.1:9060" as bound (every worker binds the same addresses;
 * read while no reload runs), then "http:ADDR:PORT" for metrics.listen.
 * -1 with errno set.
 */
static int ready_file_write(struct app *a)
{
    const struct conf *c = a->conf;
    const char **lines = calloc(c->nlisten + 1, sizeof *lines);
    char http_line[READY_ADDR_MAX];
    size_t n = 0;
    if (lines == NULL)
        return -1;
    for (size_t i = 0; i < c->nlisten; i++)
        if ((lines[n] = ingest_listener_name(a->workers[0].in, i)) != NULL)
            n++;
    if (a->http != NULL) {
        struct sockaddr_storage sa;
        http_bound(a, &sa);
        if (ready_format(http_line, sizeof http_line, "http", (const struct sockaddr *)&sa) == 0)
            lines[n++] = http_line;
    }
    int rc = ready_write(a->ready_file, lines, n);
    int saved = errno;
    free(lines);
    errno = saved;
    return rc;
}

/* Once the listeners are closed or closing, the file no longer claims readiness. */
static void ready_file_remove(struct app *a)
{
    if (!a->ready_written)
        return;
    a->ready_written = false;
    if (ready_remove(a->ready_file) != 0)
        log_warn("--ready-file: cannot remove %s: %s", a->ready_file, strerror(errno));
}

/*
 * The counters of every worker, summed into total laid out for the running
 * configuration (a worker may still publish for another one during a
 * reload: summed by name), with the memory store's evictions.  Called with
 * state_lock held or from the main thread.  -1 on ENOMEM.
 */
static int total_snapshot(struct app *a, struct metrics *total)
{
    if (metrics_init(total, a->conf) != 0)
        return -1;
    for (unsigned i = 0; i < a->nworkers; i++) {
        struct worker *w = &a->workers[i];
        lockstat_lock(&w->snap_lock, LOCKSTAT_SNAPSHOT);
        if (w->snap_conf != NULL)
            metrics_add_mapped(total, a->conf, &w->snap, w->snap_conf);
        pthread_mutex_unlock(&w->snap_lock);
    }
    struct store_mem_stats st;
    if (a->store != NULL && store_mem_stats(a->store, &st) == 0)
        total->store_evictions = st.evictions;
    total->tap_lost += tap_lost_by_readers(a->tap);
    return 0;
}

/* The counters as one JSON object (metrics_write_json), in a malloc'ed string; NULL on ENOMEM. */
static char *stats_json(struct app *a, size_t *len)
{
    struct metrics total;
    char *buf = NULL;
    *len = 0;
    if (total_snapshot(a, &total) != 0)
        return NULL;
    FILE *f = open_memstream(&buf, len);
    if (f != NULL) {
        metrics_write_json(&total, a->conf, f);
        if (fclose(f) != 0) {
            free(buf);
            buf = NULL;
        }
    }
    metrics_free(&total);
    if (buf != NULL && *len > 0 && buf[*len - 1] == '\n')
        buf[--*len] = '\0';
    return buf;
}

static void log_stats(struct app *a, const char *why)
{
    size_t len;
    char *buf = stats_json(a, &len);
    if (buf == NULL) {
        log_error("stats (%s): out of memory", why);
        return;
    }
    /* the line grows with the destinations: written whole, never cut */
    if (a->store != NULL)
        log_write_body(LOG_LEVEL_INFO, buf, len, "stats (%s, %zu calls in store): ", why, store_count(a->store));
    else
        log_write_body(LOG_LEVEL_INFO, buf, len, "stats (%s): ", why);
    free(buf);
}

/*
 * The memory store evicts live calls when it holds store.max_calls: their
 * later packets lose their call and take the fallback.  Says so, at most
 * once per check (once per log.interval).
 */
static void on_store_watch(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct app *a = t->data;
    struct store_mem_stats st;
    (void)loop;
    (void)revents;
    if (store_mem_stats(a->store, &st) != 0 || st.evictions <= a->evictions_seen)
        return;
    log_warn("memory store full: %zu live calls evicted since the last check (%zu in all) to stay "
             "within store.max_calls (%zu); their later packets take the fallback: raise store.max_calls",
             st.evictions - a->evictions_seen, st.evictions, a->conf->store_max_calls);
    a->evictions_seen = st.evictions;
}

static void on_signal_stop(struct ev_loop *loop, ev_signal *s, int revents)
{
    struct app *a = s->data;
    (void)loop;
    (void)revents;
    if (!a->stopping) {
        a->stopping = true;
        log_info("signal %d: draining held packets and queues, then exiting "
                 "(send it again to stop at once)", s->signum);
        ready_file_remove(a);       /* the listeners close now */
        atomic_store(&a->ready, false);
        for (unsigned i = 0; i < a->nworkers; i++)
            ev_async_send(a->workers[i].loop, &a->workers[i].stop);
    } else {
        log_warn("signal %d again: stopping now; packets still queued are discarded", s->signum);
        for (unsigned i = 0; i < a->nworkers; i++)
            ev_async_send(a->workers[i].loop, &a->workers[i].abort);
    }
}

/* The main loop runs until every worker is done, so that signals are still seen. */
static void on_worker_done(struct ev_loop *loop, ev_async *w, int revents)
{
    struct app *a = w->data;
    (void)revents;
    for (unsigned i = 0; i < a->nworkers; i++)
        if (a->workers[i].started && !atomic_load(&a->workers[i].finished))
            return;
    ev_break(loop, EVBREAK_ALL);
}

static void on_signal_stats(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)loop;
    (void)revents;
    log_stats(s->data, "SIGUSR1");
}

/* ---- configuration reload ---- */

static void strv_add(void *arg, const char *line)
{
    struct strv *v = arg;
    char **grown = realloc(v->s, (v->n + 1) * sizeof *grown);
    char *copy = strdup(line);
    if (grown == NULL || copy == NULL) {
        free(copy);
        if (grown != NULL)
            v->s = grown;
        return;                     /* the line was logged; only the JSON answer loses it */
    }
    v->s = grown;
    v->s[v->n++] = copy;
}

static void strv_clear(struct strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->s[i]);
    free(v->s);
    v->s = NULL;
    v->n = 0;
}

/* ["a","b"] */
static void json_strv(FILE *out, const struct strv *v)
{
    fputc('[', out);
    for (size_t i = 0; i < v->n; i++) {
        if (i > 0)
            fputc(',', out);
        control_json_string(out, v->s[i], strlen(v->s[i]));
    }
    fputc(']', out);
}

static void log_change(void *arg, const char *line)
{
    (void)arg;
    log_info("reload: %s", line);
}

static void log_restart(void *arg, const char *line)
{
    (void)arg;
    log_warn("reload: %s", line);
}

/* Answers every `reload` command waiting, with json (or the error when json is NULL). */
static void reload_answer(struct reload *r, const char *json, size_t len)
{
    for (size_t i = 0; i < r->nwaiters; i++)
        control_answer(r->waiters[i], json, len);
    free(r->waiters);
    r->waiters = NULL;
    r->nwaiters = 0;
}

static void reload_answer_json(struct app *a, bool ok, const char *error, const struct strv *errors)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return;
    if (ok) {
        fprintf(f, "{\"ok\":true,\"generation\":%u,\"hash\":\"%s\",\"changes\":", a->generation, a->conf->hash_text);
        json_strv(f, &a->reload.changes);
        fputs(",\"restart_needed\":", f);
        json_strv(f, &a->reload.restart);
        fprintf(f, ",\"errors\":%s}", a->reload.errors ? "true" : "false");
    } else {
        fputs("{\"error\":", f);
        control_json_string(f, error, strlen(error));
        fputs(",\"errors\":", f);
        json_strv(f, errors);
        fprintf(f, ",\"generation\":%u}", a->generation);
    }
    if (fclose(f) == 0)
        reload_answer(&a->reload, buf, len);
    free(buf);
}

static void reload_begin(struct app *a);

/* Every worker runs next: it becomes the running configuration. */
static void reload_finish(struct app *a)
{
    struct reload *r = &a->reload;
    struct conf *old = a->conf;
    lockstat_lock(&a->state_lock, LOCKSTAT_APP);
    a->conf = r->next;
    a->generation++;
    a->loaded_at_ms = clock_wall_ms();
    a->proc.reloads_ok++;
    a->proc.last_reload_s = (double)a->loaded_at_ms / CLOCK_MS_PER_S;
    a->proc.config_hash = a->conf->hash_text;
    a->proc.config_path = a->conf->path;
    pthread_mutex_unlock(&a->state_lock);
    r->next = NULL;
    r->running = false;
    if (a->call_store != NULL)
        store_set_conf(a->call_store, a->conf);
    if (!r->stuck)
        conf_free_all(old);             /* no worker, snapshot or HTTP reader uses it any more */
    log_set_level(a->debug ? LOG_LEVEL_DEBUG : a->conf->log_level);
    log_info("configuration reloaded: generation %u, hash %s, %zu change%s%s", a->generation,
             a->conf->hash_text, r->changes.n, r->changes.n == 1 ? "" : "s",
             r->errors ? " (some parts could not be built: see above)" : "");
    if (a->ready_file != NULL && a->ready_written && ready_file_write(a) != 0)
        log_warn("--ready-file: cannot rewrite %s: %s", a->ready_file, strerror(errno));
    if (a->conf->stats_interval_ms > 0) {
        double every = clock_ms_to_s(a->conf->stats_interval_ms);
        ev_timer_set(&a->stats_timer, every, every);
        ev_timer_again(a->loop, &a->stats_timer);
    } else {
        ev_timer_stop(a->loop, &a->stats_timer);
    }
    reload_answer_json(a, true, NULL, NULL);
    strv_clear(&r->changes);
    strv_clear(&r->restart);
    if (r->pending && !a->stopping) {
        r->pending = false;
        reload_begin(a);
    }
}

static void reload_send(struct app *a, unsigned i)
{
    struct worker *w = &a->workers[i];
    w->next_conf = a->reload.next;
    atomic_store(&w->reload_acked, false);
    ev_async_send(w->loop, &w->reload);
}

/*
 * Workers swap one after the other: after worker 0, the ports it was given
 * for new port-0 listeners are written into the new configuration, so the
 * others bind the same ones (as at the start).
 */
static void on_worker_reloaded(struct ev_loop *loop, ev_async *as, int revents)
{
    struct app *a = as->data;
    struct reload *r = &a->reload;
    (void)loop;
    (void)revents;
    if (!r->running || r->next_worker >= a->nworkers)
        return;
    struct worker *w = &a->workers[r->next_worker];
    if (!atomic_load(&w->reload_acked))
        return;
    if (w->reload_rc < 0)
        r->stuck = r->errors = true;
    else if (w->reload_rc > 0)
        r->errors = true;
    if (r->next_worker == 0 && w->reload_rc >= 0 && listen_pin_ports(r->next, w->in) != 0)
        r->errors = true;
    if (++r->next_worker < a->nworkers)
        reload_send(a, r->next_worker);
    else
        reload_finish(a);
}

/* A new port-0 listener takes the port its running namesake was given. */
static void reload_keep_ports(struct conf *next, const struct conf *running)
{
    for (size_t i = 0; i < next->nlisten; i++) {
        if (next->listen[i].port != 0)
            continue;
        for (size_t j = 0; j < running->nlisten; j++) {
            if (strcmp(next->listen[i].text, running->listen[j].text) == 0) {
                next->listen[i].port = running->listen[j].port;
                break;
            }
        }
    }
}

static void reload_fail(struct app *a, const char *why, const struct strv *errors)
{
    lockstat_lock(&a->state_lock, LOCKSTAT_APP);
    a->proc.reloads_failed++;
    pthread_mutex_unlock(&a->state_lock);
    log_error("configuration reload failed: %s; still running generation %u (hash %s)", why, a->generation,
              a->conf->hash_text);
    reload_answer_json(a, false, why, errors);
}

/*
 * Reads and checks the file like -t, off the packet path (here, on the
 * main thread); on success hands it to the workers one by one.
 */
static void reload_begin(struct app *a)
{
    struct reload *r = &a->reload;
    struct strv errors = { 0 };
    char *text = NULL;
    size_t len = 0;
    if (a->stopping) {
        reload_fail(a, "heprouter is stopping", &errors);
        return;
    }
    if (r->running) {
        r->pending = true;
        return;
    }
    FILE *err = open_memstream(&text, &len);
    struct conf *next = conf_load_all(a->conf->path, err);
    if (err != NULL)
        fclose(err);
    for (char *line = text, *nl; line != NULL && *line != '\0'; line = nl != NULL ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        log_error("%s", line);
        strv_add(&errors, line);
    }
    free(text);
    if (next == NULL) {
        char why[FD_MESSAGE_MAX];
        snprintf(why, sizeof why, "%zu error%s in %s", errors.n, errors.n == 1 ? "" : "s", a->conf->path);
        reload_fail(a, why, &errors);
        strv_clear(&errors);
        return;
    }
    strv_clear(&errors);
    conf_restart_changes(a->conf, next, strv_add, &r->restart);
    for (size_t i = 0; i < r->restart.n; i++)
        log_restart(NULL, r->restart.s[i]);
    if (conf_keep_restart_values(next, a->conf) != 0 ||
        (a->store != NULL && store_add_conf_names(a->store, next) != 0)) {
        conf_free_all(next);
        strv_clear(&r->restart);
        reload_fail(a, "out of memory", &errors);
        return;
    }
    if (next->dedup_any)
        dedup_populate(a->dedup);       /* before a worker checks a packet against it */
    reload_keep_ports(next, a->conf);
    conf_describe_changes(a->conf, next, strv_add, &r->changes);
    for (size_t i = 0; i < r->changes.n; i++)
        log_change(NULL, r->changes.s[i]);
    r->next = next;
    r->running = true;
    r->errors = r->stuck = false;
    r->next_worker = 0;
    reload_send(a, 0);
}

static void on_signal_hup(struct ev_loop *loop, ev_signal *s, int revents)
{
    struct app *a = s->data;
    (void)loop;
    (void)revents;
    log_info("SIGHUP: reloading %s", a->conf->path);
    reload_begin(a);
}

static void on_stats_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    log_stats(t->data, "periodic");
}

/* ---- HTTP: /metrics, /healthz, /readyz (called on the HTTP thread) ---- */

static int http_metrics(void *arg, FILE *out)
{
    struct app *a = arg;
    struct metrics total;
    int status = 200;
    lockstat_lock(&a->state_lock, LOCKSTAT_APP);
    if (total_snapshot(a, &total) == 0) {
        struct metrics_process p = a->proc;
        p.calls_tracked_known = a->store != NULL;
        p.calls_tracked = a->store != NULL ? store_count(a->store) : 0;
        metrics_write_prometheus(&total, a->conf, &p, out);
        metrics_free(&total);
    } else {
        fputs("out of memory\n", out);
        status = 503;
    }
    pthread_mutex_unlock(&a->state_lock);
    return status;
}

/* Alive: every worker's loop ran its housekeeping within metrics.health_timeout. */
static int http_healthz(void *arg, FILE *out)
{
    struct app *a = arg;
    lockstat_lock(&a->state_lock, LOCKSTAT_APP);           /* a reload may be swapping a->conf */
    uint64_t now = clock_mono_ms(), bound = a->conf->metrics_health_timeout_ms;
    pthread_mutex_unlock(&a->state_lock);
    int status = 200;
    for (unsigned i = 0; i < a->nworkers; i++) {
        uint64_t beat = atomic_load(&a->workers[i].beat_ms);
        if (now > beat && now - beat > bound) {
            fprintf(out, "worker %u has not answered for %llu ms (metrics.health_timeout %llu ms)\n", i,
                    (unsigned long long)(now - beat), (unsigned long long)bound);
            status = 503;
        }
    }
    if (status == 200)
        fputs("ok\n", out);
    return status;
}

/*
 * Ready: listening and not draining, every worker's context store
 * connection up, and the control socket's (for `call`) too.
 */
static int http_readyz(void *arg, FILE *out)
{
    struct app *a = arg;
    if (!atomic_load(&a->ready)) {
        fputs(a->stopping ? "stopping\n" : "not listening yet\n", out);
        return 503;
    }
    int status = 200;
    for (unsigned i = 0; i < a->nworkers; i++) {
        struct worker *w = &a->workers[i];
        lockstat_lock(&w->snap_lock, LOCKSTAT_SNAPSHOT);
        bool up = w->snap.store_link_up != 0;
        pthread_mutex_unlock(&w->snap_lock);
        if (!up) {
            fprintf(out, "worker %u: context store not connected\n", i);
            status = 503;
        }
    }
    if (atomic_load(&a->call_store_down)) {
        fputs("control socket: context store not connected\n", out);
        status = 503;
    }
    if (status == 200)
        fputs("ok\n", out);
    return status;
}

static int http_start(struct app *a)
{
    const struct conf *c = a->conf;
    struct http_handlers h = { http_metrics, http_healthz, http_readyz, a };
    char why[FD_MESSAGE_MAX];
    if (c->metrics_listen.addr_len == 0)
        return 0;
    a->http = http_new(&c->metrics_listen, c->metrics_max_connections, c->metrics_timeout_ms, &h, why, sizeof why);
    if (a->http == NULL) {
        log_error("metrics.listen %s: %s", c->metrics_listen.text, why);
        return -1;
    }
    struct sockaddr_storage sa;
    char text[NETADDR_TEXT_MAX];
    http_bound(a, &sa);
    log_info("metrics on http://%s/metrics", netaddr_format((const struct sockaddr *)&sa, text, sizeof text));
    return 0;
}

/* ---- control socket commands (main thread) ---- */

static void cmd_stats(void *arg, const char *args, struct control_request *req)
{
    size_t len;
    (void)args;
    char *json = stats_json(arg, &len);
    if (json == NULL)
        control_answer_error(req, "out of memory");
    else
        control_answer(req, json, len);
    free(json);
}

static void cmd_reload(void *arg, const char *args, struct control_request *req)
{
    struct app *a = arg;
    struct reload *r = &a->reload;
    (void)args;
    struct control_request **grown = realloc(r->waiters, (r->nwaiters + 1) * sizeof *grown);
    if (grown == NULL) {
        control_answer_error(req, "out of memory");
        return;
    }
    r->waiters = grown;
    r->waiters[r->nwaiters++] = req;
    log_info("control: reloading %s", a->conf->path);
    reload_begin(a);
}

static void cmd_config(void *arg, const char *args, struct control_request *req)
{
    struct app *a = arg;
    char *buf = NULL;
    size_t len = 0;
    (void)args;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        control_answer_error(req, "out of memory");
        return;
    }
    fputs("{\"path\":", f);
    control_json_string(f, a->conf->path, strlen(a->conf->path));
    fprintf(f, ",\"hash\":\"%s\",\"loaded_at\":%.3f,\"generation\":%u,\"reloading\":%s}", a->conf->hash_text,
            (double)a->loaded_at_ms / CLOCK_MS_PER_S, a->generation, a->reload.running ? "true" : "false");
    if (fclose(f) == 0)
        control_answer(req, buf, len);
    else
        control_answer_error(req, "out of memory");
    free(buf);
}

/* The answer to `call`: what the store knows of call_id (e NULL: unknown); now is monotonic ms. */
static void call_answer(struct control_request *req, const char *call_id, const struct store_entry *e, uint64_t now)
{
    static const struct {
        unsigned flag;
        const char *name;
    } flags[] = { { STORE_F_ENDED, "ended" }, { STORE_F_FALLBACK, "fallback" },
                  { STORE_F_REGISTER, "register" }, { STORE_F_CONFIRMED, "confirmed" } };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        control_answer_error(req, "out of memory");
        return;
    }
    fputs("{\"call_id\":", f);
    control_json_string(f, call_id, strlen(call_id));
    fprintf(f, ",\"known\":%s", e != NULL ? "true" : "false");
    if (e != NULL) {
        fputs(",\"method\":", f);
        control_json_string(f, e->method, strlen(e->method));
        fputs(",\"route\":", f);
        control_json_string(f, e->route, strlen(e->route));
        fprintf(f, ",\"first_seen\":%.3f", (double)e->first_seen_ms / CLOCK_MS_PER_S);
        if (e->expires_ms > now)
            fprintf(f, ",\"ttl_left_s\":%.3f", clock_ms_to_s(e->expires_ms - now));
        fputs(",\"flags\":[", f);
        bool first = true;
        for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
            if (e->flags & flags[i].flag) {
                fprintf(f, "%s\"%s\"", first ? "" : ",", flags[i].name);
                first = false;
            }
        }
        fputc(']', f);
    }
    fputc('}', f);
    if (fclose(f) == 0)
        control_answer(req, buf, len);
    else
        control_answer_error(req, "out of memory");
    free(buf);
}

/* A `call` waiting for Redis's answer. */
struct call_wait {
    char *key;
    size_t klen;
    char *call_id;
    struct control_request *req;
    struct call_wait *next;
};

static void call_wait_free(struct call_wait *cw)
{
    free(cw->key);
    free(cw->call_id);
    free(cw);
}

/* The Redis store of the control socket answers: every `call` asking for that key gets it. */
static void on_call_answer(void *arg, const char *key, size_t klen, const struct store_entry *e, uint64_t now_ms,
                           uint64_t wall_ms)
{
    struct app *a = arg;
    (void)wall_ms;
    for (struct call_wait **at = &a->call_waits; *at != NULL;) {
        struct call_wait *cw = *at;
        if (cw->klen != klen || memcmp(cw->key, key, klen) != 0) {
            at = &cw->next;
            continue;
        }
        *at = cw->next;
        call_answer(cw->req, cw->call_id, e, now_ms);
        call_wait_free(cw);
    }
}

/*
 * What the store knows of one call: the memory store at once; with Redis,
 * a GET on the control socket's own connection (the main loop's, never a
 * worker's), answered when Redis answers or store.redis.timeout_ms passes.
 */
static void cmd_call(void *arg, const char *args, struct control_request *req)
{
    struct app *a = arg;
    size_t klen_max = a->conf->call_id_max > ROUTER_HASHED_KEY_LEN ? a->conf->call_id_max : ROUTER_HASHED_KEY_LEN;
    if (args[0] == '\0') {
        control_answer_error(req, "usage: call CALL-ID");
        return;
    }
    struct call_wait *cw = calloc(1, sizeof *cw);
    char *key = malloc(klen_max);
    char *call_id = strdup(args);
    if (cw == NULL || key == NULL || call_id == NULL) {
        free(cw);
        free(key);
        free(call_id);
        control_answer_error(req, "out of memory");
        return;
    }
    size_t klen = router_call_key(a->conf, args, strlen(args), key, klen_max);
    uint64_t now = clock_mono_ms();
    struct store_entry e;
    if (a->store != NULL) {
        call_answer(req, args, klen > 0 && store_get(a->store, key, klen, now, &e) == 1 ? &e : NULL, now);
    } else if (a->call_store == NULL || store_query(a->call_store, key, klen, now) != 0) {
        control_answer_error(req, "the context store (Redis) is not connected");
    } else {
        *cw = (struct call_wait){ key, klen, call_id, req, a->call_waits };
        a->call_waits = cw;
        return;
    }
    free(cw);
    free(key);
    free(call_id);
}

/* The HTTP thread's view of the control socket's Redis connection, published as often as the workers' views. */
static void on_call_store_watch(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct app *a = t->data;
    (void)loop;
    (void)revents;
    atomic_store(&a->call_store_down, !store_is_up(a->call_store));
}

/* Redis: the control socket's own connection for `call`. */
static int call_store_open(struct app *a)
{
    if (a->store != NULL)
        return 0;
    if (metrics_init(&a->call_metrics, a->conf) != 0 ||
        (a->call_store = store_open(a->conf, a->loop, &a->call_metrics)) == NULL) {
        log_error("control socket: cannot open its context store connection");
        return -1;
    }
    store_set_answer_fn(a->call_store, on_call_answer, a);
    atomic_store(&a->call_store_down, true);
    ev_timer_init(&a->call_store_watch, on_call_store_watch, 0.0, HOUSEKEEPING_INTERVAL_S);
    a->call_store_watch.data = a;
    ev_timer_start(a->loop, &a->call_store_watch);
    return 0;
}

/* At exit: `call`s still waiting are answered, then the connection goes. */
static void call_store_close(struct app *a)
{
    while (a->call_waits != NULL) {
        struct call_wait *cw = a->call_waits;
        a->call_waits = cw->next;
        control_answer_error(cw->req, "heprouter stopped before Redis answered");
        call_wait_free(cw);
    }
    if (a->call_store != NULL)
        ev_timer_stop(a->loop, &a->call_store_watch);
    store_free(a->call_store);
    a->call_store = NULL;
    metrics_free(&a->call_metrics);
}

static void cmd_tap(void *arg, const char *args, struct control_request *req)
{
    struct app *a = arg;
    tap_command(a->tap, args, req);
}

static const struct control_command control_commands[] = {
    { "stats", "stats", "the counters, as the SIGUSR1 line", cmd_stats },
    { "reload", "reload", "reload the configuration file; answers once every worker runs it", cmd_reload },
    { "config", "config", "the running configuration: path, hash, load time, generation", cmd_config },
    { "call", "call CALL-ID", "what the context store knows of a call", cmd_call },
    { "tap", TAP_USAGE, "stream the routing decisions that match, as --explain prints them", cmd_tap },
};

static int control_start(struct app *a)
{
    const struct conf *c = a->conf;
    char why[FD_MESSAGE_MAX];
    if (c->control_socket == NULL)
        return 0;
    if (call_store_open(a) != 0)
        return -1;
    struct control_limits lim = { c->control_mode, c->control_max_clients, c->control_timeout_ms,
                                  c->control_max_line, c->log_interval_ms };
    a->control = control_new(a->loop, c->control_socket, &lim, control_commands,
                             sizeof control_commands / sizeof control_commands[0], a, why, sizeof why);
    if (a->control == NULL) {
        log_error("control.socket %s: %s", c->control_socket, why);
        return -1;
    }
    log_info("control socket %s", c->control_socket);
    return 0;
}

/* ---- the open files budget ---- */

struct fd_budget {
    unsigned long long limit;       /* RLIMIT_NOFILE checked against */
    size_t fixed;                   /* everything but inbound TCP connections, fd_reserve included */
    size_t slots;                   /* workers x TCP listeners: each holds up to the cap */
    size_t asked;                   /* limits.tcp_max_connections */
    size_t cap;                     /* what fits, at most asked; 0: not even one (or fixed > limit) */
};

/* Descriptors open now (stdio and whatever was inherited). */
static size_t fds_open_now(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return FD_OPEN_AT_START_DEFAULT;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0;       /* not the directory's own descriptor */
}

/*
 * workers x TCP listeners x tcp_max_connections inbound connections, plus
 * every other descriptor (see FD_PER_*), plus limits.fd_reserve, must stay
 * within limit, or a full listener leaves no descriptor for a TCP target or
 * Redis to reconnect with.
 */
static void fd_budget(const struct conf *c, unsigned long long limit, struct fd_budget *b)
{
    size_t listeners = 0, tcp_listeners = 0, targets = 0, redis = 0;
    for (size_t i = 0; i < c->nlisten; i++) {
        listeners++;
        tcp_listeners += c->listen[i].transport == CONF_TCP;
    }
    for (size_t i = 0; i < c->ndests; i++)
        targets += c->dests[i].ntargets;
    if (c->store_type == CONF_STORE_REDIS)
        redis = FD_PER_REDIS + (c->redis.nsentinels > 0 ? FD_PER_SENTINEL : 0);
    b->limit = limit;
    b->fixed = fds_open_now() + ((size_t)c->workers + 1) * FD_PER_LOOP
               + (size_t)c->workers * (listeners * FD_PER_LISTENER + targets * FD_PER_TARGET + redis)
               + (c->metrics_listen.addr_len > 0 ? FD_HTTP_SERVER + c->metrics_max_connections : 0)
               + (c->control_socket != NULL ? FD_CONTROL_SERVER + c->control_max_clients + redis : 0)
               + c->fd_reserve;
    b->slots = (size_t)c->workers * tcp_listeners;
    b->asked = c->tcp_max_connections;
    b->cap = b->asked;
    if (b->fixed > limit)
        b->cap = 0;
    else if (b->slots > 0 && (unsigned long long)b->fixed + (unsigned long long)b->slots * b->asked > limit)
        b->cap = (size_t)((limit - b->fixed) / b->slots);
}

/* 0: fits as configured; 1: the cap is lowered (why says so); -1: cannot run (why says so). */
static int fd_budget_verdict(const struct conf *c, const struct fd_budget *b, char *why, size_t len)
{
    unsigned long long need = (unsigned long long)b->fixed + (unsigned long long)b->slots * b->asked;
    if (b->fixed > b->limit) {
        snprintf(why, len,
                 "the open files limit (%llu) is below the %zu descriptors heprouter needs even without "
                 "inbound TCP connections (limits.fd_reserve %zu included); raise LimitNOFILE= (systemd) "
                 "or ulimit -n to at least %llu",
                 b->limit, b->fixed, c->fd_reserve, need);
        return -1;
    }
    if (b->cap == b->asked)
        return 0;
    if (b->cap == 0) {
        snprintf(why, len,
                 "the open files limit (%llu) leaves no room for inbound TCP connections: %zu descriptors "
                 "are needed besides them (limits.fd_reserve %zu included) and %u worker%s x %zu TCP "
                 "listener%s need at least one each; raise LimitNOFILE= (systemd) or ulimit -n to at "
                 "least %llu, or use fewer workers or TCP listeners",
                 b->limit, b->fixed, c->fd_reserve, c->workers, c->workers == 1 ? "" : "s",
                 b->slots / c->workers, b->slots / c->workers == 1 ? "" : "s", need);
        return -1;
    }
    snprintf(why, len,
             "the open files limit (%llu) is too low for limits.tcp_max_connections %zu: %u worker%s x %zu "
             "TCP listener%s x %zu connections + %zu other descriptors (limits.fd_reserve %zu included) "
             "= %llu; inbound TCP connections are capped at %zu per listener per worker instead. "
             "Raise LimitNOFILE= (systemd) or ulimit -n to at least %llu, or set "
             "limits.tcp_max_connections to %zu or less",
             b->limit, b->asked, c->workers, c->workers == 1 ? "" : "s", b->slots / c->workers,
             b->slots / c->workers == 1 ? "" : "s", b->asked, b->fixed, c->fd_reserve, need, b->cap,
             need, b->cap);
    return 1;
}

/*
 * At start: raises the soft RLIMIT_NOFILE to the hard one, then fits
 * inbound TCP connections into it (ingest reads conf->tcp_max_connections
 * when the workers are set up).  -1 when heprouter cannot run within it.
 */
static int fd_limit_apply(struct conf *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_warn("getrlimit(RLIMIT_NOFILE): %s; the open files limit is not checked", strerror(errno));
        return 0;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            log_info("open files limit raised from %llu to the hard limit %llu",
                     (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
            rl.rlim_cur = rl.rlim_max;
        } else {
            log_warn("cannot raise the open files limit from %llu to %llu: %s",
                     (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, strerror(errno));
        }
    }
    if (rl.rlim_cur == RLIM_INFINITY)
        return 0;
    struct fd_budget b;
    char why[FD_MESSAGE_MAX];
    fd_budget(c, (unsigned long long)rl.rlim_cur, &b);
    switch (fd_budget_verdict(c, &b, why, sizeof why)) {
    case -1:
        log_error("%s; not starting", why);
        return -1;
    case 1:
        log_warn("%s", why);
        c->tcp_max_connections = b.cap;
        break;
    default:
        break;
    }
    log_info("open files limit %llu: %zu descriptors besides inbound TCP, %zu x %zu inbound TCP connections",
             b.limit, b.fixed, b.slots, b.cap);
    return 0;
}

/*
 * heprouter -t --check-store: what the start would find at the store.  A
 * store that refuses (wrong password, bad db, ACL) fails the check, as it
 * fails the start, so ExecStartPre catches it; one that does not answer is
 * a warning, as at the start, which goes ahead and waits for it.
 */
static int store_check_only(const struct conf *c)
{
    char why[STORE_CHECK_ERR_MAX];
    switch (store_check(c, why, sizeof why)) {
    case STORE_CHECK_OK:
        printf("context store OK: %s\n", why);
        return 0;
    case STORE_CHECK_UNREACHABLE:
        fprintf(stderr, "%s: warning: context store unreachable: %s (heprouter would start and wait for it)\n",
                c->path, why);
        return 0;
    case STORE_CHECK_REFUSED:
        fprintf(stderr, "%s: context store refused: %s\n", c->path, why);
        return 1;
    }
    return 1;
}

/* heprouter -t: an auth_keys_file that others may read or write (keys are secrets). */
static void key_file_check(const struct conf *c, const struct conf_sources *s)
{
    struct stat st;
    if (s->auth_keys_file != NULL && stat(s->auth_keys_file, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH)))
        fprintf(stderr, "%s: warning: auth_keys_file %s is %s by others (mode %04o): chmod o-rw it\n", c->path,
                s->auth_keys_file, (st.st_mode & S_IROTH) ? "readable" : "writable",
                (unsigned)(st.st_mode & (S_IRWXU | S_IRWXG | S_IRWXO)));
}

/* heprouter -t: what the start checks besides the file (user, group), and the key files' modes. */
static int start_check(const struct conf *c, const char *user)
{
    struct privileges p;
    char why[PRIVILEGES_WHY_MAX];
    key_file_check(c, &c->sources);
    for (size_t i = 0; i < c->nlisten; i++)
        if (c->listen_sources[i].set)
            key_file_check(c, &c->listen_sources[i]);
    if (privileges_resolve(user != NULL ? user : c->user, c->group, &p, why, sizeof why) != 0) {
        fprintf(stderr, "%s: %s\n", c->path, why);
        return 1;
    }
    return 0;
}

/* heprouter -t: the same check against this shell's hard limit, as a warning only. */
static void fd_limit_check(const struct conf *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max == RLIM_INFINITY)
        return;
    struct fd_budget b;
    char why[FD_MESSAGE_MAX];
    fd_budget(c, (unsigned long long)rl.rlim_max, &b);
    if (fd_budget_verdict(c, &b, why, sizeof why) != 0)
        fprintf(stderr, "%s: warning (with this shell's hard limit): %s\n", c->path, why);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: heprouter -c FILE [-d] [-u USER] [--ready-file PATH]\n"
            "                              run in the foreground with configuration FILE;\n"
            "                              -d: log at debug level whatever log.level says;\n"
            "                              -u: once listeners are bound and files open, run as\n"
            "                              USER (and its groups) whatever user: says;\n"
            "                              --ready-file: once every listener is bound, write PATH\n"
            "                              with one \"listening PROTO:ADDR:PORT\" line per listener\n"
            "                              (port 0 resolved); removed when the listeners close\n"
            "       heprouter -t -c FILE [-u USER] [--check-store]\n"
            "                              check FILE and exit (0 OK, 1 errors); --check-store also\n"
            "                              connects to the Redis store: exit 1 when it refuses\n"
            "                              (password, user, db, ACL, Redis < 7), a warning and 0\n"
            "                              when it does not answer (heprouter would start)\n"
            "       heprouter --explain -c FILE -r CAPTURE [--json] [--call CALL-ID]\n"
            "                              run the packets of CAPTURE (pcap, pcapng, hepdump's\n"
            "                              JSON lines) through FILE's policy in the capture's\n"
            "                              time; print how each was decided, then a summary\n"
            "       heprouter ctl [-s SOCKET] [-c FILE] [-T SECONDS] COMMAND [ARGS]\n"
            "                              send COMMAND to a running heprouter's control socket\n"
            "                              (stats, reload, config, call CALL-ID, help)\n"
            "       heprouter -V           print the version\n"
            "       heprouter -h           print this help\n"
            "\n"
            "Signals: TERM/INT drain and exit (a second one: exit at once), USR1 logs the counters,\n"
            "HUP reloads the configuration file.\n"
            "See heprouter(8) and heprouter.yaml(5).\n");
}

static void log_startup(const struct conf *c)
{
    log_info("heprouter %s starting: configuration %s, %u worker%s, %s store",
             PACKAGE_VERSION, c->path, c->workers, c->workers == 1 ? "" : "s",
             conf_store_type_name(c->store_type));
    for (size_t i = 0; i < c->ndests; i++) {
        const struct conf_dest *d = &c->dests[i];
        for (size_t j = 0; j < d->ntargets; j++)
            log_info("destination %s: target %s (balance %s, %s)", d->name, d->targets[j].text,
                     conf_balance_name(d->balance),
                     d->hep_version == 3 ? "HEPv3 output" : "forwarded as received");
    }
    for (size_t i = 0; i < c->nroutes; i++)
        log_info("route %s: %zu destination%s", c->routes[i].name, c->routes[i].nto,
                 c->routes[i].nto == 1 ? "" : "s");
    log_info("orphans wait %llu ms (at most %zu packets, %zu bytes held per worker); "
             "ttl call %llu s, register %llu s, ended %llu s",
             (unsigned long long)c->orphans_wait_ms, c->orphans_max_held, c->orphans_max_bytes,
             (unsigned long long)(c->ttl_call_ms / CLOCK_MS_PER_S), (unsigned long long)(c->ttl_register_ms / CLOCK_MS_PER_S),
             (unsigned long long)(c->ttl_ended_ms / CLOCK_MS_PER_S));
}

/* A file a reload reads again, and that the user heprouter now runs as cannot read. */
static void warn_unreadable_file(const char *what, const char *path, const char *user)
{
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    if (path != NULL && f == NULL)
        log_warn("%s %s: user %s cannot read it (%s): a reload will fail until it can", what, path, user,
                 strerror(errno));
    if (f != NULL)
        fclose(f);
}

/* After the drop: the files every reload reads, as the user heprouter now is. */
static void warn_unreadable(const struct conf *c, const char *user)
{
    warn_unreadable_file("configuration", c->path, user);
    warn_unreadable_file("store.redis.password_file", c->redis.password_file, user);
    warn_unreadable_file("sources.auth_keys_file", c->sources.auth_keys_file, user);
    for (size_t i = 0; i < c->nlisten; i++)
        if (c->listen_sources[i].set)
            warn_unreadable_file("sources.auth_keys_file", c->listen_sources[i].auth_keys_file, user);
}

/* user:, group:, allow_root: and -u, once everything is bound and opened. */
static int drop_privileges(struct app *a)
{
    struct privileges p;
    char why[PRIVILEGES_WHY_MAX];
    const char *user = a->user != NULL ? a->user : a->conf->user;
    if (privileges_resolve(user, a->conf->group, &p, why, sizeof why) != 0 ||
        privileges_drop(&p, a->conf->allow_root, why, sizeof why) != 0) {
        log_error("%s; not starting", why);
        return -1;
    }
    if (p.change) {
        log_info("running as user %s (uid %lu, gid %lu)", p.user, (unsigned long)p.uid, (unsigned long)p.gid);
        warn_unreadable(a->conf, p.user);
    } else if (geteuid() == 0) {
        log_warn("running as root (allow_root: true)");
    }
    return 0;
}

static int run(struct app *a)
{
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    int rc = 0;

    if (loop == NULL) {
        log_error("cannot create the main event loop");
        return 1;
    }
    a->loop = loop;
    /* a file left by an earlier run must not look like readiness */
    if (a->ready_file != NULL && ready_remove(a->ready_file) != 0)
        log_warn("--ready-file: cannot remove the old %s: %s", a->ready_file, strerror(errno));
    char why[STORE_CHECK_ERR_MAX];
    switch (store_check(a->conf, why, sizeof why)) {
    case STORE_CHECK_REFUSED:
        log_error("context store: %s", why);
        return 1;
    case STORE_CHECK_UNREACHABLE:
        log_warn("%s: starting anyway; calls are decided by the cache and the fallback until it answers", why);
        break;
    case STORE_CHECK_OK:
        break;
    }
    if (a->conf->store_type == CONF_STORE_MEMORY) {
        a->store = store_open(a->conf, NULL, NULL);     /* one table for every worker */
        if (a->store == NULL)
            return 1;
    }
    ev_async_init(&a->worker_done, on_worker_done);
    a->worker_done.data = a;
    ev_async_start(loop, &a->worker_done);
    ev_async_init(&a->worker_reloaded, on_worker_reloaded);
    a->worker_reloaded.data = a;
    ev_async_start(loop, &a->worker_reloaded);
    a->nworkers = a->conf->workers;
    a->workers = calloc(a->nworkers, sizeof *a->workers);
    /* made whether or not a destination dedups now: a reload may turn it on */
    a->dedup = dedup_new(a->conf->dedup_entries, 0);
    if (a->workers == NULL || a->dedup == NULL ||
        (a->conf->control_socket != NULL &&
         (a->tap = tap_new(loop, a->nworkers, a->conf->control_tap_buffer)) == NULL)) {
        log_error("out of memory");
        return 1;
    }
    if (a->conf->dedup_any)
        dedup_populate(a->dedup);
    for (unsigned i = 0; i < a->nworkers; i++) {
        struct worker *w = &a->workers[i];
        w->index = i;
        w->conf = a->conf;
        w->store = a->store;
        w->main_loop = loop;
        w->done = &a->worker_done;
        w->reloaded = &a->worker_reloaded;
        w->tap = a->tap != NULL ? tap_worker_of(a->tap, i) : NULL;
        w->dedup = a->dedup;
        atomic_init(&w->finished, false);
        atomic_init(&w->reload_acked, false);
        atomic_init(&w->beat_ms, 0);
        pthread_mutex_init(&w->snap_lock, NULL);
        if (worker_setup(w) != 0 || (i == 0 && listen_pin_ports(a->conf, w->in) != 0)) {
            rc = 1;
            goto out;
        }
    }
    /* every socket is bound and every file open: the workers start as the configured user */
    if (http_start(a) != 0 || control_start(a) != 0 || drop_privileges(a) != 0) {
        rc = 1;
        goto out;
    }
    for (unsigned i = 0; i < a->nworkers; i++) {
        int err = pthread_create(&a->workers[i].thread, NULL, worker_main, &a->workers[i]);
        if (err != 0) {
            log_error("cannot start worker %u: %s", i, strerror(err));
            rc = 1;
            for (unsigned j = 0; j < i; j++)
                ev_async_send(a->workers[j].loop, &a->workers[j].stop);
            goto out;
        }
        a->workers[i].started = true;
    }
    if (a->ready_file != NULL) {
        if (ready_file_write(a) != 0) {
            log_error("--ready-file: cannot write %s: %s; stopping", a->ready_file, strerror(errno));
            rc = 1;
            for (unsigned i = 0; i < a->nworkers; i++)
                ev_async_send(a->workers[i].loop, &a->workers[i].stop);
            goto out;
        }
        a->ready_written = true;
    }
    atomic_store(&a->ready, true);
    log_info("ready");

    ev_signal_init(&a->sigterm, on_signal_stop, SIGTERM);
    ev_signal_init(&a->sigint, on_signal_stop, SIGINT);
    ev_signal_init(&a->sigusr1, on_signal_stats, SIGUSR1);
    ev_signal_init(&a->sighup, on_signal_hup, SIGHUP);
    a->sigterm.data = a->sigint.data = a->sigusr1.data = a->sighup.data = a;
    ev_signal_start(loop, &a->sigterm);
    ev_signal_start(loop, &a->sigint);
    ev_signal_start(loop, &a->sigusr1);
    ev_signal_start(loop, &a->sighup);
    ev_init(&a->stats_timer, on_stats_timer);
    a->stats_timer.data = a;
    if (a->conf->stats_interval_ms > 0) {
        double every = clock_ms_to_s(a->conf->stats_interval_ms);
        ev_timer_set(&a->stats_timer, every, every);
        ev_timer_start(loop, &a->stats_timer);
    }
    if (a->store != NULL) {
        /* log.interval 0 (no rate limit): as often as the workers' housekeeping */
        double every = a->conf->log_interval_ms > 0 ? clock_ms_to_s(a->conf->log_interval_ms)
                                                    : HOUSEKEEPING_INTERVAL_S;
        ev_timer_init(&a->store_watch, on_store_watch, every, every);
        a->store_watch.data = a;
        ev_timer_start(loop, &a->store_watch);
    }
    ev_run(loop, 0);

out:
    for (unsigned i = 0; i < a->nworkers; i++)
        if (a->workers[i].started)
            pthread_join(a->workers[i].thread, NULL);
    atomic_store(&a->ready, false);
    http_free(a->http);             /* its thread reads the workers' snapshots */
    a->http = NULL;
    if (a->reload.nwaiters > 0) {
        struct strv none = { 0 };
        reload_answer_json(a, false, "heprouter stopped before the reload finished", &none);
    }
    call_store_close(a);
    if (rc == 0)
        log_stats(a, "exit");       /* the tap's counts included */
    tap_free(a->tap);               /* its streams are the control socket's clients */
    a->tap = NULL;
    control_free(a->control);
    a->control = NULL;
    ready_file_remove(a);
    for (unsigned i = 0; i < a->nworkers; i++) {
        worker_teardown(&a->workers[i]);
        pthread_mutex_destroy(&a->workers[i].snap_lock);
    }
    free(a->workers);
    dedup_free(a->dedup);
    store_free(a->store);
    conf_free_all(a->reload.next);      /* a reload cut short: no worker runs anything now */
    a->reload.next = NULL;
    strv_clear(&a->reload.changes);
    strv_clear(&a->reload.restart);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool check_only = false;
    bool check_store = false;
    const char *ready_file = NULL;
    bool debug = false;
    const char *user = NULL;
    struct explain_options ex = { 0 };
    bool explain = false;
    int opt;
    enum { OPT_CHECK_STORE = 256, OPT_READY_FILE, OPT_EXPLAIN, OPT_JSON, OPT_CALL };

    if (argc > 1 && strcmp(argv[1], "ctl") == 0)
        return ctl_main(argc - 1, argv + 1);
    static const struct option longopts[] = {
        { "check-store", no_argument, NULL, OPT_CHECK_STORE },
        { "ready-file", required_argument, NULL, OPT_READY_FILE },
        { "explain", no_argument, NULL, OPT_EXPLAIN },
        { "read", required_argument, NULL, 'r' },
        { "json", no_argument, NULL, OPT_JSON },
        { "call", required_argument, NULL, OPT_CALL },
        { NULL, 0, NULL, 0 },
    };

    while ((opt = getopt_long(argc, argv, "c:dtu:r:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_EXPLAIN: explain = true; break;
        case 'r': ex.capture_path = optarg; break;
        case OPT_JSON: ex.json = true; break;
        case OPT_CALL: ex.call_id = optarg; break;
        case 'd': debug = true; break;
        case OPT_CHECK_STORE: check_store = true; break;
        case OPT_READY_FILE: ready_file = optarg; break;
        case 'c': path = optarg; break;
        case 't': check_only = true; break;
        case 'u': user = optarg; break;
        case 'V': printf("heprouter %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (explain || ex.capture_path != NULL || ex.json || ex.call_id != NULL) {
        if (!explain || path == NULL || ex.capture_path == NULL || optind != argc || check_only ||
            ready_file != NULL || user != NULL) {
            fprintf(stderr, "heprouter: --explain needs -c FILE and -r CAPTURE, and takes --json and --call "
                            "CALL-ID only\n");
            usage(stderr);
            return 2;
        }
        ex.conf_path = path;
        log_set_level(LOG_LEVEL_ERROR);     /* the lines are the output; the router's warnings are not */
        return explain_run(&ex, stdout, stderr);
    }
    if (path == NULL || optind != argc || (check_store && !check_only) || (ready_file != NULL && check_only)) {
        fprintf(stderr, "heprouter: %s\n", path == NULL                ? "-c FILE is required"
                                            : optind != argc             ? "unexpected argument"
                                            : check_store && !check_only ? "--check-store goes with -t"
                                                                         : "--ready-file does not go with -t");
        usage(stderr);
        return 2;
    }

    struct app a;
    memset(&a, 0, sizeof a);
    a.ready_file = ready_file;
    a.debug = debug;
    a.user = user;
    a.conf = conf_load_all(path, stderr);
    if (a.conf == NULL) {
        if (check_only)
            fprintf(stderr, "%s: configuration has errors\n", path);
        else
            log_error("%s: configuration has errors, not starting", path);
        return 1;
    }
    if (check_only) {
        fd_limit_check(a.conf);
        if (start_check(a.conf, user) != 0) {
            conf_free_all(a.conf);
            return 1;
        }
        printf("configuration OK\n");
        int rc = check_store ? store_check_only(a.conf) : 0;
        conf_free_all(a.conf);
        return rc;
    }
    log_open(a.conf->log_target, a.conf->log_facility, PACKAGE_NAME);
    log_set_level(debug ? LOG_LEVEL_DEBUG : a.conf->log_level);
    signal(SIGPIPE, SIG_IGN);
    log_startup(a.conf);
    pthread_mutex_init(&a.state_lock, NULL);
    atomic_init(&a.ready, false);
    a.generation = 1;
    a.loaded_at_ms = clock_wall_ms();
    a.proc.version = PACKAGE_VERSION;
    a.proc.config_hash = a.conf->hash_text;
    a.proc.config_path = a.conf->path;
    a.proc.last_reload_s = (double)a.loaded_at_ms / CLOCK_MS_PER_S;
    int rc = fd_limit_apply(a.conf) == 0 ? run(&a) : 1;
    pthread_mutex_destroy(&a.state_lock);
    conf_free_all(a.conf);
    log_close();
    return rc;
}
