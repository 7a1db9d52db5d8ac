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
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "clock.h"
#include "conf.h"
#include "dest.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "ready.h"
#include "router.h"
#include "store/store.h"
#include "store/open.h"

/* How often a worker expires store entries and publishes its counters. */
#define HOUSEKEEPING_INTERVAL_S 0.1
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
 *   is freed before the next one is opened).
 * What is open at start (stdio, inherited descriptors) is counted as it
 * is; short-lived ones (an accept() refused over the cap, a resolver's
 * socket) come out of limits.fd_reserve.
 */
#define FD_PER_LOOP 4
#define FD_PER_LISTENER 1
#define FD_PER_TARGET 1
#define FD_PER_REDIS 1
#define FD_PER_SENTINEL 1
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
    ev_timer hold_timer;
    uint64_t hold_timer_due;        /* monotonic ms the hold timer is armed for */
    ev_timer housekeeping;
    ev_timer drain_timer;
    ev_async stop;
    ev_async abort;                 /* a second TERM/INT: stop draining now */
    bool draining;
    double drain_deadline;
    /* counters published for the main thread */
    pthread_mutex_t snap_lock;
    struct metrics snap;
    int startup_rc;                 /* 0 ok, -1 failed */
    /* set when worker_main() is done; the main loop is woken through done */
    atomic_bool finished;
    struct ev_loop *main_loop;
    ev_async *done;
};


static void publish(struct worker *w)
{
    pthread_mutex_lock(&w->snap_lock);
    metrics_reset(&w->snap);
    metrics_add(&w->snap, &w->m);
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

static void on_packet(void *arg, const uint8_t *data, size_t len, const struct ingest_source *src)
{
    struct worker *w = arg;
    (void)src;
    router_packet(w->router, data, len, clock_mono_ms(), clock_wall_ms());
}

static void on_batch_end(void *arg)
{
    struct worker *w = arg;
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
    store_expire(w->store, clock_mono_ms());
    publish(w);
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
    w->ds = dest_set_new(w->loop, w->conf, &w->m);
    if (w->ds == NULL)
        return -1;
    if (w->store == NULL) {
        /* a shared back-end: one connection and cache per worker */
        w->store = store_open(w->conf, w->loop, &w->m);
        if (w->store == NULL)
            return -1;
        w->own_store = true;
    }
    d.send = dispatch_send;
    d.flush = dispatch_flush;
    d.arg = w->ds;
    w->router = router_new(w->conf, w->store, &w->m, &d);
    if (w->router == NULL) {
        log_error("worker %u: out of memory", w->index);
        return -1;
    }
    w->in = ingest_new(w->loop, w->conf, &w->m, on_packet, on_batch_end, w);
    if (w->in == NULL)
        return -1;
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
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    /* signals belong to the main thread */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    ev_run(w->loop, 0);
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

struct app {
    struct conf *conf;
    const char *ready_file;         /* --ready-file, or NULL */
    bool ready_written;             /* it is there, and says we listen */
    struct store *store;
    struct worker *workers;
    unsigned nworkers;
    ev_signal sigterm, sigint, sigusr1, sighup;
    ev_timer stats_timer;
    ev_timer store_watch;           /* memory store evictions, once per log.interval */
    ev_async worker_done;           /* a worker's loop has ended */
    bool stopping;                  /* TERM/INT received: workers are draining */
    size_t evictions_seen;          /* memory store evictions already reported */
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

/*
 * The ready file's lines: worker 0's listener names, "udp:127.0.0.1:9060"
 * as bound (every worker binds the same addresses).  The strings stay
 * worker 0's; NULL after logging why.
 */
static const char **ready_lines(const struct conf *c, const struct ingest *in)
{
    const char **lines = calloc(c->nlisten > 0 ? c->nlisten : 1, sizeof *lines);
    if (lines == NULL) {
        log_error("out of memory");
        return NULL;
    }
    for (size_t i = 0; i < c->nlisten; i++)
        lines[i] = ingest_listener_name(in, i);
    return lines;
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

static void log_stats(struct app *a, const char *why)
{
    struct metrics total;
    if (metrics_init(&total, a->conf) != 0)
        return;
    for (unsigned i = 0; i < a->nworkers; i++) {
        pthread_mutex_lock(&a->workers[i].snap_lock);
        metrics_add(&total, &a->workers[i].snap);
        pthread_mutex_unlock(&a->workers[i].snap_lock);
    }
    struct store_mem_stats st;
    if (a->store != NULL && store_mem_stats(a->store, &st) == 0)
        total.store_evictions = st.evictions;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f != NULL) {
        metrics_write_json(&total, a->conf, f);
        if (fclose(f) == 0 && buf != NULL) {
            if (len > 0 && buf[len - 1] == '\n')
                buf[--len] = '\0';
            /* the line grows with the destinations: written whole, never cut */
            if (a->store != NULL)
                log_write_body(LOG_LEVEL_INFO, buf, len, "stats (%s, %zu calls in store): ", why,
                               store_count(a->store));
            else
                log_write_body(LOG_LEVEL_INFO, buf, len, "stats (%s): ", why);
        } else {
            log_error("stats (%s): out of memory", why);
        }
    }
    free(buf);
    metrics_free(&total);
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

static void on_signal_hup(struct ev_loop *loop, ev_signal *s, int revents)
{
    struct app *a = s->data;
    (void)loop;
    (void)revents;
    log_warn("SIGHUP: configuration reload is not available in this version; "
             "restart to apply changes to %s", a->conf->path);
}

static void on_stats_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    log_stats(t->data, "periodic");
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
            "usage: heprouter -c FILE [--ready-file PATH]\n"
            "                              run in the foreground with configuration FILE;\n"
            "                              --ready-file: once every listener is bound, write PATH\n"
            "                              with one \"listening PROTO:ADDR:PORT\" line per listener\n"
            "                              (port 0 resolved); removed when the listeners close\n"
            "       heprouter -t -c FILE [--check-store]\n"
            "                              check FILE and exit (0 OK, 1 errors); --check-store also\n"
            "                              connects to the Redis store: exit 1 when it refuses\n"
            "                              (password, user, db, ACL, Redis < 7), a warning and 0\n"
            "                              when it does not answer (heprouter would start)\n"
            "       heprouter -V           print the version\n"
            "       heprouter -h           print this help\n"
            "\n"
            "Signals: TERM/INT drain and exit (a second one: exit at once), USR1 logs the counters.\n"
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

static int run(struct app *a)
{
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    const char **ready = NULL;
    int rc = 0;

    if (loop == NULL) {
        log_error("cannot create the main event loop");
        return 1;
    }
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
    a->nworkers = a->conf->workers;
    a->workers = calloc(a->nworkers, sizeof *a->workers);
    if (a->workers == NULL) {
        log_error("out of memory");
        return 1;
    }
    for (unsigned i = 0; i < a->nworkers; i++) {
        struct worker *w = &a->workers[i];
        w->index = i;
        w->conf = a->conf;
        w->store = a->store;
        w->main_loop = loop;
        w->done = &a->worker_done;
        atomic_init(&w->finished, false);
        pthread_mutex_init(&w->snap_lock, NULL);
        if (worker_setup(w) != 0 || (i == 0 && listen_pin_ports(a->conf, w->in) != 0)) {
            rc = 1;
            goto out;
        }
    }
    if (a->ready_file != NULL && (ready = ready_lines(a->conf, a->workers[0].in)) == NULL) {
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
    if (ready != NULL) {
        if (ready_write(a->ready_file, ready, a->conf->nlisten) != 0) {
            log_error("--ready-file: cannot write %s: %s; stopping", a->ready_file, strerror(errno));
            rc = 1;
            for (unsigned i = 0; i < a->nworkers; i++)
                ev_async_send(a->workers[i].loop, &a->workers[i].stop);
            goto out;
        }
        a->ready_written = true;
    }
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
    if (a->conf->stats_interval_ms > 0) {
        double every = clock_ms_to_s(a->conf->stats_interval_ms);
        ev_timer_init(&a->stats_timer, on_stats_timer, every, every);
        a->stats_timer.data = a;
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
    free(ready);
    for (unsigned i = 0; i < a->nworkers; i++)
        if (a->workers[i].started)
            pthread_join(a->workers[i].thread, NULL);
    ready_file_remove(a);
    if (rc == 0)
        log_stats(a, "exit");
    for (unsigned i = 0; i < a->nworkers; i++) {
        worker_teardown(&a->workers[i]);
        pthread_mutex_destroy(&a->workers[i].snap_lock);
    }
    free(a->workers);
    store_free(a->store);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool check_only = false;
    bool check_store = false;
    const char *ready_file = NULL;
    int opt;
    enum { OPT_CHECK_STORE = 256, OPT_READY_FILE };
    static const struct option longopts[] = {
        { "check-store", no_argument, NULL, OPT_CHECK_STORE },
        { "ready-file", required_argument, NULL, OPT_READY_FILE },
        { NULL, 0, NULL, 0 },
    };

    while ((opt = getopt_long(argc, argv, "c:thV", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_CHECK_STORE: check_store = true; break;
        case OPT_READY_FILE: ready_file = optarg; break;
        case 'c': path = optarg; break;
        case 't': check_only = true; break;
        case 'V': printf("heprouter %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
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
    a.conf = conf_load(path, stderr);
    if (a.conf == NULL) {
        if (check_only)
            fprintf(stderr, "%s: configuration has errors\n", path);
        else
            log_error("%s: configuration has errors, not starting", path);
        return 1;
    }
    if (check_only) {
        fd_limit_check(a.conf);
        printf("configuration OK\n");
        int rc = check_store ? store_check_only(a.conf) : 0;
        conf_free(a.conf);
        return rc;
    }
    log_set_level(a.conf->log_level);
    signal(SIGPIPE, SIG_IGN);
    log_startup(a.conf);
    int rc = fd_limit_apply(a.conf) == 0 ? run(&a) : 1;
    conf_free(a.conf);
    return rc;
}
