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
            "usage: heprouter -c FILE      run in the foreground with configuration FILE\n"
            "       heprouter -t -c FILE   check FILE and exit\n"
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
    int rc = 0;

    if (loop == NULL) {
        log_error("cannot create the main event loop");
        return 1;
    }
    char why[STORE_CHECK_ERR_MAX];
    if (store_check(a->conf, why, sizeof why) != 0) {
        log_error("context store: %s", why);
        return 1;
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
        if (worker_setup(w) != 0) {
            rc = 1;
            goto out;
        }
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
    for (unsigned i = 0; i < a->nworkers; i++)
        if (a->workers[i].started)
            pthread_join(a->workers[i].thread, NULL);
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
    int opt;

    while ((opt = getopt(argc, argv, "c:thV")) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': check_only = true; break;
        case 'V': printf("heprouter %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (path == NULL || optind != argc) {
        fprintf(stderr, "heprouter: %s\n", path == NULL ? "-c FILE is required" : "unexpected argument");
        usage(stderr);
        return 2;
    }

    struct app a;
    memset(&a, 0, sizeof a);
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
        conf_free(a.conf);
        return 0;
    }
    log_set_level(a.conf->log_level);
    signal(SIGPIPE, SIG_IGN);
    log_startup(a.conf);
    int rc = fd_limit_apply(a.conf) == 0 ? run(&a) : 1;
    conf_free(a.conf);
    return rc;
}
