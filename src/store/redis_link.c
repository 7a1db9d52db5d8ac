/*
 * redis_link.c - the connections of a Redis store (see redis_link.h).
 *
 * Connect: AUTH [user] password (when configured), SELECT db (db != 0),
 * then ROLE (Sentinel: the server must still be the master) or PING,
 * before anything else on each new connection.  With Sentinel, one
 * Sentinel connection names the master and stays subscribed to its
 * fail-over announcements; a READONLY reply or a ROLE that is not "master"
 * makes the link ask again.
 *
 * Reconnects back off from limits.reconnect_min to limits.reconnect_max,
 * doubling, each wait drawn from the upper half of its step (backoff.h).
 * A context is never freed inside one of its own callbacks: a connection
 * to drop is handed to a zero-delay timer.  A connection holding more than
 * max_reply_bytes of a reply not yet complete is dropped the same way
 * (hiredis would buffer a reply of any size whole).  Host names (of the
 * server, the Sentinels, or a master a Sentinel names) are resolved on a
 * short-lived thread, because hiredis would call getaddrinfo() on the
 * worker's loop.
 */
#include "store/redis_link.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "conf.h"
#include "lockstat.h"
#include "metrics.h"
#include "store/redis_value.h"

/* conf's limit on store.redis.unix is what a socket address holds */
_Static_assert(CONF_UNIX_PATH_MAX < sizeof(((struct sockaddr_un *)0)->sun_path),
               "CONF_UNIX_PATH_MAX does not fit sun_path");

#define REDIS_SWITCH_CHANNEL "+switch-master"
#define REDIS_SWITCH_FIELDS 5               /* name old-ip old-port new-ip new-port */
#define REDIS_HANDSHAKE_ARGC_MAX 3          /* AUTH user password */

/*
 * One host name being resolved by a thread of its own.  The link and the
 * thread share it under its lock; the last of them to let go frees it, so
 * a link closed meanwhile only has to say so (loop = NULL).
 */
struct redis_resolve {
    pthread_mutex_t lock;
    unsigned refs;
    struct ev_loop *loop;           /* NULL once the link has gone */
    ev_async *done;                 /* sent when finished, on loop */
    bool finished;
    int error;                      /* getaddrinfo()'s */
    char host[REDIS_HOST_MAX];
    char addr[INET6_ADDRSTRLEN];    /* the numeric answer */
};

/* ---- host names ---- */

static bool redis_is_numeric(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Drops one reference; job->lock is held and released here. */
static void redis_resolve_release(struct redis_resolve *job)
{
    bool last = --job->refs == 0;
    pthread_mutex_unlock(&job->lock);
    if (last) {
        pthread_mutex_destroy(&job->lock);
        free(job);
    }
}

/* The thread: IPv4 first, then IPv6, as hiredis itself does for names. */
static void *redis_resolve_main(void *arg)
{
    struct redis_resolve *job = arg;
    pthread_setname_np(pthread_self(), "redis resolve");   /* heprouter(8), THREADS */
    struct addrinfo hints, *res = NULL;
    char addr[INET6_ADDRSTRLEN] = "";
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_INET;
    int err = getaddrinfo(job->host, NULL, &hints, &res);
    if (err != 0) {
        hints.ai_family = AF_INET6;
        err = getaddrinfo(job->host, NULL, &hints, &res);
    }
    if (err == 0) {
        const void *a = res->ai_family == AF_INET
                            ? (const void *)&((const struct sockaddr_in *)(const void *)res->ai_addr)->sin_addr
                            : (const void *)&((const struct sockaddr_in6 *)(const void *)res->ai_addr)->sin6_addr;
        if (inet_ntop(res->ai_family, a, addr, sizeof addr) == NULL)
            err = EAI_FAIL;
        freeaddrinfo(res);
    }
    lockstat_lock(&job->lock, LOCKSTAT_REDIS);
    job->finished = true;
    job->error = err;
    memcpy(job->addr, addr, sizeof addr);
    if (job->loop != NULL)
        ev_async_send(job->loop, job->done);
    redis_resolve_release(job);
    return NULL;
}

/* Starts resolving host for peer on a detached thread; false when none could start. */
static bool redis_resolve_start(struct redis_link *l, enum redis_peer peer, const char *host)
{
    struct redis_resolve *job = calloc(1, sizeof *job);
    if (job == NULL || pthread_mutex_init(&job->lock, NULL) != 0) {
        free(job);
        return false;
    }
    job->refs = 2;
    job->loop = l->loop;
    job->done = &l->resolve_async;
    snprintf(job->host, sizeof job->host, "%s", host);

    /* the thread takes no signal: they are the main thread's business */
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&tid, &attr, redis_resolve_main, job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        pthread_mutex_destroy(&job->lock);
        free(job);
        return false;
    }
    l->resolving = job;
    l->resolving_peer = peer;
    l->resolved = false;
    return true;
}

/* The link lets go of a resolution still running (the thread frees it). */
static void redis_resolve_abandon(struct redis_link *l)
{
    struct redis_resolve *job = l->resolving;
    if (job == NULL)
        return;
    l->resolving = NULL;
    lockstat_lock(&job->lock, LOCKSTAT_REDIS);
    job->loop = NULL;
    redis_resolve_release(job);
}

/*
 * The numeric address to connect peer to: host itself when numeric, else
 * the answer of a finished resolution of host.  NULL while a resolution
 * runs (the attempt is made again when it ends) or, with *why set, when
 * none can be started.
 */
static const char *redis_address(struct redis_link *l, enum redis_peer peer, const char *host, const char **why)
{
    *why = NULL;
    if (redis_is_numeric(host))
        return host;
    if (l->resolved && l->resolved_peer == peer && strcmp(l->resolved_host, host) == 0) {
        l->resolved = false;
        return l->resolved_addr;
    }
    if (l->resolving == NULL && !redis_resolve_start(l, peer, host))
        *why = "cannot start a thread to resolve the host name";
    return NULL;
}

/* ---- connection management ---- */

static void redis_schedule(struct redis_link *l, uint64_t delay_ms)
{
    ev_tstamp delay = clock_ms_to_s(delay_ms);
    if (ev_is_active(&l->reconnect_timer)) {
        if (ev_timer_remaining(l->loop, &l->reconnect_timer) <= delay)
            return;
        ev_timer_stop(l->loop, &l->reconnect_timer);
    }
    ev_timer_set(&l->reconnect_timer, delay, 0.);
    ev_timer_start(l->loop, &l->reconnect_timer);
}

static void redis_free_dead_data(struct redis_link *l)
{
    if (l->dead_ac != NULL) {
        redisAsyncContext *ac = l->dead_ac;
        l->dead_ac = NULL;
        redisAsyncFree(ac);
    }
}

static void redis_free_dead_sentinel(struct redis_link *l)
{
    if (l->dead_sac != NULL) {
        redisAsyncContext *ac = l->dead_sac;
        l->dead_sac = NULL;
        redisAsyncFree(ac);
    }
}

static void redis_on_drop_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct redis_link *l = w->data;
    (void)loop;
    (void)revents;
    redis_free_dead_data(l);
    redis_free_dead_sentinel(l);
}

static void redis_drop_later(struct redis_link *l)
{
    if (!ev_is_active(&l->drop_timer)) {
        ev_timer_set(&l->drop_timer, 0., 0.);
        ev_timer_start(l->loop, &l->drop_timer);
    }
}

/* Re-asks the Sentinels on the next attempt (the master may have moved). */
static void redis_sentinel_reask(struct redis_link *l)
{
    l->master_known = false;
    if (l->sac != NULL) {
        redis_free_dead_sentinel(l);    /* not ours to be inside of: only sac's callbacks run */
        l->dead_sac = l->sac;
        l->sac = NULL;
        ev_timer_stop(l->loop, &l->sentinel_timer);
        redis_drop_later(l);
    }
}

/*
 * The data connection is gone (hiredis frees it) or being dropped: nothing
 * more goes out on it, and the next attempt comes after the backoff.
 */
static void redis_data_lost(struct redis_link *l, const char *why)
{
    bool was_ready = l->ready;
    l->ac = NULL;
    l->ready = false;
    l->handshake_left = 0;
    ev_timer_stop(l->loop, &l->connect_timer);
    if (l->conf->redis.nsentinels > 0)
        redis_sentinel_reask(l);
    uint64_t delay = backoff_next_jittered(&l->backoff);
    log_ratelimited(&l->conn_limit, l->conf->log_interval_ms, LOG_LEVEL_WARN,
                    "redis %s: %s: %s; calls decided by the cache and the fallback, retrying in %llu ms",
                    l->addr_text, was_ready ? "connection lost" : "cannot connect", why,
                    (unsigned long long)delay);
    redis_schedule(l, delay);
}

void redis_link_fail(struct redis_link *l, const char *why)
{
    if (l->ac == NULL)
        return;
    redis_free_dead_data(l);            /* never the one whose callback runs: that is l->ac */
    l->dead_ac = l->ac;
    redis_drop_later(l);
    redis_data_lost(l, why);
}

static void redis_data_ready(struct redis_link *l)
{
    ev_timer_stop(l->loop, &l->connect_timer);
    l->ready = true;
    backoff_reset(&l->backoff);
    bool again = l->ever_ready;
    if (again)
        l->m->store_reconnects++;
    l->ever_ready = true;
    l->events->ready(l->events_arg, again);
}

static void redis_on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;
    if (l->closing)
        return;
    if (ac == l->dead_ac) {
        if (status != REDIS_OK)
            l->dead_ac = NULL;          /* hiredis frees it now */
        return;
    }
    if (ac == l->ac && status != REDIS_OK)
        redis_data_lost(l, ac->errstr != NULL ? ac->errstr : "connect failed");
}

static void redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;
    if (l->closing)
        return;
    if (ac == l->dead_ac) {
        l->dead_ac = NULL;
        return;
    }
    if (ac == l->ac)
        redis_data_lost(l, status == REDIS_OK || ac->errstr == NULL ? "closed by the server" : ac->errstr);
}

/* One handshake reply; the last one makes the connection ready. */
static void redis_handshake_step(redisAsyncContext *ac, redisReply *reply, struct redis_link *l,
                                 const char *what, bool is_role)
{
    char why[REDIS_WHY_MAX];
    if (l->closing || ac != l->ac || reply == NULL)
        return;                         /* a lost connection is handled by its disconnect */
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof why, "%s failed: %s", what, reply->str);
        if (strcmp(what, "AUTH") == 0 || strcmp(what, "SELECT") == 0)
            log_ratelimited(&l->error_limit, l->conf->log_interval_ms, LOG_LEVEL_ERROR, "redis %s: %s",
                            l->addr_text, why);
        redis_link_fail(l, why);
        return;
    }
    if (is_role && (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 ||
                    reply->element[0]->type != REDIS_REPLY_STRING ||
                    strcmp(reply->element[0]->str, "master") != 0)) {
        redis_link_fail(l, "not the master (any more): asking the Sentinels again");
        return;
    }
    if (l->handshake_left > 0 && --l->handshake_left == 0)
        redis_data_ready(l);
}

static void redis_on_auth(redisAsyncContext *ac, void *r, void *priv)
{
    redis_handshake_step(ac, r, priv, "AUTH", false);
}

static void redis_on_select(redisAsyncContext *ac, void *r, void *priv)
{
    redis_handshake_step(ac, r, priv, "SELECT", false);
}

static void redis_on_role(redisAsyncContext *ac, void *r, void *priv)
{
    redis_handshake_step(ac, r, priv, "ROLE", true);
}

static void redis_on_ping(redisAsyncContext *ac, void *r, void *priv)
{
    redis_handshake_step(ac, r, priv, "PING", false);
}

static void redis_on_connect_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct redis_link *l = w->data;
    (void)loop;
    (void)revents;
    if (l->ac != NULL && !l->ready)
        redis_link_fail(l, "no answer within limits.connect_timeout");
}

/* Queues one handshake command on the data connection; false when hiredis refuses it. */
static bool redis_handshake_cmd(struct redis_link *l, redisCallbackFn *fn, int argc, const char **argv)
{
    size_t argvlen[REDIS_HANDSHAKE_ARGC_MAX];
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(l->ac, fn, l, argc, argv, argvlen) != REDIS_OK)
        return false;
    l->handshake_left++;
    return true;
}

/* Opens the data connection and queues the handshake; hiredis sends it once connected. */
static void redis_data_connect(struct redis_link *l)
{
    const struct conf_redis *rc = &l->conf->redis;
    redisAsyncContext *ac;

    redis_free_dead_data(l);
    if (rc->unix_path != NULL && rc->nsentinels == 0) {
        snprintf(l->addr_text, sizeof l->addr_text, "unix:%s", rc->unix_path);
        ac = redisAsyncConnectUnix(rc->unix_path);
    } else {
        const char *host = rc->nsentinels > 0 ? l->master_host : rc->host != NULL ? rc->host : "";
        int port = rc->nsentinels > 0 ? l->master_port : (int)rc->port;
        const char *why;
        snprintf(l->addr_text, sizeof l->addr_text, "%s:%d", host, port);
        const char *addr = redis_address(l, REDIS_PEER_DATA, host, &why);
        if (addr == NULL) {
            if (why != NULL)
                redis_data_lost(l, why);
            return;                     /* resolving: back here when done */
        }
        ac = redisAsyncConnect(addr, port);
    }
    if (ac == NULL || ac->err) {
        char why[REDIS_WHY_MAX];
        snprintf(why, sizeof why, "%s", ac != NULL && ac->errstr != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        redis_data_lost(l, why);
        return;
    }
    ac->data = l;
    redisLibevAttach(l->loop, ac);
    redisAsyncSetConnectCallback(ac, redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
    l->ac = ac;
    l->ready = false;
    l->handshake_left = 0;
    l->events->opened(l->events_arg);

    /* AUTH [user] pass, SELECT db, then ROLE (Sentinel) or PING: replies come in this order */
    bool ok = true;
    if (rc->password != NULL) {
        const char *auth_user[] = { "AUTH", rc->username, rc->password };
        const char *auth[] = { "AUTH", rc->password };
        ok = rc->username != NULL ? redis_handshake_cmd(l, redis_on_auth, REDIS_ARGC(auth_user), auth_user)
                                  : redis_handshake_cmd(l, redis_on_auth, REDIS_ARGC(auth), auth);
    }
    if (ok && rc->db != 0) {
        char db[REDIS_NUM_MAX];
        snprintf(db, sizeof db, "%u", rc->db);
        const char *select_db[] = { "SELECT", db };
        ok = redis_handshake_cmd(l, redis_on_select, REDIS_ARGC(select_db), select_db);
    }
    const char *probe[] = { rc->nsentinels > 0 ? "ROLE" : "PING" };
    if (ok)
        ok = redis_handshake_cmd(l, rc->nsentinels > 0 ? redis_on_role : redis_on_ping, REDIS_ARGC(probe), probe);
    if (!ok) {
        redis_link_fail(l, "cannot queue the handshake");
        return;
    }
    ev_timer_set(&l->connect_timer, clock_ms_to_s(l->conf->connect_timeout_ms), 0.);
    ev_timer_start(l->loop, &l->connect_timer);
}

/* ---- Sentinel ---- */

static void redis_sentinel_connect(struct redis_link *l);

/*
 * The Sentinel asked now failed: the next one is asked at once, until each
 * failed in this round; then the round starts again after the backoff.
 */
static void redis_sentinel_failed(struct redis_link *l, const char *why, bool drop)
{
    const char *name = l->conf->redis.sentinels[l->sentinel_index].text;
    if (drop && l->sac != NULL) {
        redis_free_dead_sentinel(l);
        l->dead_sac = l->sac;
        redis_drop_later(l);
    }
    l->sac = NULL;
    ev_timer_stop(l->loop, &l->sentinel_timer);
    log_ratelimited(&l->conn_limit, l->conf->log_interval_ms, LOG_LEVEL_WARN, "redis sentinel %s: %s", name, why);
    l->sentinel_index = (l->sentinel_index + 1) % l->conf->redis.nsentinels;
    if (++l->sentinel_attempts < l->conf->redis.nsentinels) {
        redis_schedule(l, 0);
    } else {
        l->sentinel_attempts = 0;
        redis_schedule(l, backoff_next_jittered(&l->backoff));
    }
}

/* The master is host:port: connect to it, leaving a connection to another one. */
static void redis_master_is(struct redis_link *l, const char *host, size_t hlen, int port)
{
    if (hlen == 0 || hlen >= sizeof l->master_host)
        return;
    bool same = l->master_known && strlen(l->master_host) == hlen && memcmp(l->master_host, host, hlen) == 0 &&
                l->master_port == port;
    memcpy(l->master_host, host, hlen);
    l->master_host[hlen] = '\0';
    l->master_known = true;
    if (same && l->ac != NULL)
        return;
    if (l->ac != NULL) {
        log_info("redis: the master is now %s:%d (was %s)", l->master_host, port, l->addr_text);
        redis_free_dead_data(l);
        l->dead_ac = l->ac;
        l->ac = NULL;
        l->ready = false;
        ev_timer_stop(l->loop, &l->connect_timer);
        redis_drop_later(l);
    }
    l->master_port = port;
    redis_schedule(l, 0);
}

bool redis_parse_port(const char *text, size_t len, int *port)
{
    const char *p = text;
    uint64_t v;
    if (!redis_value_decimal(&p, text + len, REDIS_MS_DIGITS_MAX, &v) || p != text + len || v == 0 ||
        v > REDIS_PORT_MAX)
        return false;
    *port = (int)v;
    return true;
}

static void redis_sentinel_on_master(redisAsyncContext *ac, void *r, void *priv)
{
    struct redis_link *l = priv;
    redisReply *reply = r;
    int port;
    if (l->closing || ac != l->sac || reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING && reply->element[1]->type == REDIS_REPLY_STRING &&
        reply->element[0]->len > 0 && reply->element[0]->len < sizeof l->master_host &&
        redis_parse_port(reply->element[1]->str, reply->element[1]->len, &port)) {
        ev_timer_stop(l->loop, &l->sentinel_timer);
        l->sentinel_attempts = 0;
        l->sentinel_answered = true;
        redis_master_is(l, reply->element[0]->str, reply->element[0]->len, port);
        return;
    }
    char why[REDIS_WHY_MAX];
    if (reply->type == REDIS_REPLY_ERROR)
        snprintf(why, sizeof why, "SENTINEL get-master-addr-by-name failed: %s", reply->str);
    else
        snprintf(why, sizeof why, "does not know master \"%s\"", l->conf->redis.master_name);
    redis_sentinel_failed(l, why, true);
}

/* "+switch-master" messages: "<name> <old ip> <old port> <new ip> <new port>". */
static void redis_sentinel_on_message(redisAsyncContext *ac, void *r, void *priv)
{
    struct redis_link *l = priv;
    redisReply *reply = r;
    if (l->closing || ac != l->sac || reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 3 || reply->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(reply->element[0]->str, "message") != 0 || reply->element[2]->type != REDIS_REPLY_STRING)
        return;
    const char *p = reply->element[2]->str, *end = p + reply->element[2]->len;
    const char *field[REDIS_SWITCH_FIELDS];
    size_t flen[REDIS_SWITCH_FIELDS];
    for (size_t i = 0; i < REDIS_SWITCH_FIELDS; i++) {
        while (p < end && *p == ' ')
            p++;
        field[i] = p;
        while (p < end && *p != ' ')
            p++;
        flen[i] = (size_t)(p - field[i]);
        if (flen[i] == 0)
            return;
    }
    const char *name = l->conf->redis.master_name;
    int port;
    if (strlen(name) != flen[0] || memcmp(name, field[0], flen[0]) != 0 ||
        !redis_parse_port(field[4], flen[4], &port))
        return;
    backoff_reset(&l->backoff);
    redis_master_is(l, field[3], flen[3], port);
}

static void redis_sentinel_on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;
    if (l->closing)
        return;
    if (ac == l->dead_sac) {
        if (status != REDIS_OK)
            l->dead_sac = NULL;
        return;
    }
    if (ac == l->sac && status != REDIS_OK)
        redis_sentinel_failed(l, ac->errstr != NULL ? ac->errstr : "connect failed", false);
}

static void redis_sentinel_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;
    (void)status;
    if (l->closing)
        return;
    if (ac == l->dead_sac) {
        l->dead_sac = NULL;
        return;
    }
    if (ac == l->sac)
        redis_sentinel_failed(l, "connection lost", false);
}

static void redis_on_sentinel_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct redis_link *l = w->data;
    (void)loop;
    (void)revents;
    if (l->sac != NULL && !l->sentinel_answered)
        redis_sentinel_failed(l, "no answer within limits.connect_timeout", true);
}

/*
 * Asks the current Sentinel where the master is, and stays subscribed to
 * its fail-over announcements on the same connection (the question is
 * answered before the subscription starts).
 */
static void redis_sentinel_connect(struct redis_link *l)
{
    const struct conf_redis *rc = &l->conf->redis;
    const struct conf_endpoint *sentinel = &rc->sentinels[l->sentinel_index];
    const char *why;

    redis_free_dead_sentinel(l);
    const char *addr = redis_address(l, REDIS_PEER_SENTINEL, sentinel->host, &why);
    if (addr == NULL) {
        if (why != NULL)
            redis_sentinel_failed(l, why, false);
        return;                         /* resolving: back here when done */
    }
    redisAsyncContext *ac = redisAsyncConnect(addr, (int)sentinel->port);
    if (ac == NULL || ac->err) {
        char reason[REDIS_WHY_MAX];
        snprintf(reason, sizeof reason, "%s", ac != NULL && ac->errstr != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        redis_sentinel_failed(l, reason, false);
        return;
    }
    ac->data = l;
    redisLibevAttach(l->loop, ac);
    redisAsyncSetConnectCallback(ac, redis_sentinel_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_sentinel_on_disconnect);
    l->sac = ac;
    l->sentinel_answered = false;
    const char *ask[] = { "SENTINEL", "get-master-addr-by-name", rc->master_name };
    const size_t asklen[] = { strlen(ask[0]), strlen(ask[1]), strlen(ask[2]) };
    const char *sub[] = { "SUBSCRIBE", REDIS_SWITCH_CHANNEL };
    const size_t sublen[] = { strlen(sub[0]), strlen(sub[1]) };
    if (redisAsyncCommandArgv(ac, redis_sentinel_on_master, l, REDIS_ARGC(ask), ask, asklen) != REDIS_OK ||
        redisAsyncCommandArgv(ac, redis_sentinel_on_message, l, REDIS_ARGC(sub), sub, sublen) != REDIS_OK) {
        redis_sentinel_failed(l, "cannot queue the question", true);
        return;
    }
    ev_timer_set(&l->sentinel_timer, clock_ms_to_s(l->conf->connect_timeout_ms), 0.);
    ev_timer_start(l->loop, &l->sentinel_timer);
}

/* The one place connections start: at open, and after a backoff or a switch. */
static void redis_connect_missing(struct redis_link *l)
{
    if (l->closing)
        return;
    if (l->conf->redis.nsentinels > 0) {
        if (l->sac == NULL)
            redis_sentinel_connect(l);  /* its answer names the master, then we come back here */
        else if (l->ac == NULL && l->master_known)
            redis_data_connect(l);
        return;
    }
    if (l->ac == NULL)
        redis_data_connect(l);
}

/* A resolution ended: the attempt it held up goes on (or fails like a refused connect). */
static void redis_on_resolved(struct ev_loop *loop, ev_async *w, int revents)
{
    struct redis_link *l = w->data;
    struct redis_resolve *job = l->resolving;
    (void)loop;
    (void)revents;
    if (job == NULL)
        return;
    lockstat_lock(&job->lock, LOCKSTAT_REDIS);
    if (!job->finished) {
        pthread_mutex_unlock(&job->lock);
        return;
    }
    int err = job->error;
    enum redis_peer peer = l->resolving_peer;
    snprintf(l->resolved_host, sizeof l->resolved_host, "%s", job->host);
    memcpy(l->resolved_addr, job->addr, sizeof l->resolved_addr);
    l->resolving = NULL;
    redis_resolve_release(job);
    if (err != 0) {
        char why[REDIS_WHY_MAX];
        snprintf(why, sizeof why, "cannot resolve %s: %s", l->resolved_host, gai_strerror(err));
        if (peer == REDIS_PEER_DATA)
            redis_data_lost(l, why);
        else
            redis_sentinel_failed(l, why, false);
        return;
    }
    l->resolved = true;
    l->resolved_peer = peer;
    redis_connect_missing(l);
}

static void redis_on_reconnect_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    redis_connect_missing(w->data);
}

/* ---- reply size ---- */

/*
 * Bytes hiredis holds of a reply not yet complete: it hands every complete
 * reply to its callback as soon as it has read it, so this is the tail of
 * one reply (a value is less than REDIS_VALUE_MAX bytes).
 */
static size_t redis_unfinished_bytes(const redisAsyncContext *ac)
{
    const redisReader *r = ac->c.reader;
    return r != NULL && r->len > r->pos ? r->len - r->pos : 0;
}

/*
 * hiredis reads a reply until it is complete, whatever length it announces
 * ("$400000000"): a huge value under a call key (anyone who may write to
 * Redis) or a rogue server would make every worker buffer all of it.  Each
 * time the loop is about to wait, a connection holding more than
 * store.redis.max_reply_bytes of an unfinished reply is dropped like any
 * failed one (freed outside its callbacks, reconnected after the backoff);
 * since hiredis reads at most 16 KiB per readable event, no more than that
 * is ever buffered beyond the cap.  The store names the command whose
 * reply it was (reply_too_long), and counts it as answered with a
 * malformed value: it is not sent again (it would only be dropped again).
 * The adapter's watchers are not touched.
 */
static void redis_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct redis_link *l = w->data;
    size_t max = l->conf->redis.max_reply_bytes, n;
    char why[REDIS_WHY_KEY_MAX];
    (void)loop;
    (void)revents;
    if (max == 0 || l->closing)
        return;
    if (l->ac != NULL && (n = redis_unfinished_bytes(l->ac)) > max) {
        l->m->store_errors++;
        if (!l->events->reply_too_long(l->events_arg, n, why, sizeof why))
            snprintf(why, sizeof why, "a reply longer than store.redis.max_reply_bytes (%zu bytes of it read)", n);
        redis_link_fail(l, why);
    }
    if (l->sac != NULL && (n = redis_unfinished_bytes(l->sac)) > max) {
        l->m->store_errors++;
        snprintf(why, sizeof why, "a reply longer than store.redis.max_reply_bytes (%zu bytes of it read)", n);
        redis_sentinel_failed(l, why, true);
    }
}
/* ---- the link's life ---- */

void redis_link_init(struct redis_link *l, const struct conf *conf, struct ev_loop *loop, struct metrics *m,
                     const struct redis_link_events *events, void *events_arg)
{
    const struct conf_redis *rc = &conf->redis;
    l->conf = conf;
    l->loop = loop;
    l->m = m;
    l->events = events;
    l->events_arg = events_arg;
    backoff_init(&l->backoff, conf->reconnect_min_ms, conf->reconnect_max_ms);
    /* the link's address differs between workers (and, with ASLR, processes); the clock between restarts */
    backoff_seed(&l->backoff, (uint64_t)(uintptr_t)l ^ clock_mono_ms());
    snprintf(l->addr_text, sizeof l->addr_text, "%s",
             rc->nsentinels > 0 ? rc->master_name : rc->unix_path != NULL ? rc->unix_path : rc->host);
    ev_timer_init(&l->reconnect_timer, redis_on_reconnect_timer, 0., 0.);
    ev_timer_init(&l->drop_timer, redis_on_drop_timer, 0., 0.);
    ev_timer_init(&l->connect_timer, redis_on_connect_timer, 0., 0.);
    ev_timer_init(&l->sentinel_timer, redis_on_sentinel_timer, 0., 0.);
    l->reconnect_timer.data = l->drop_timer.data = l->connect_timer.data = l;
    l->sentinel_timer.data = l;
    ev_async_init(&l->resolve_async, redis_on_resolved);
    l->resolve_async.data = l;
    ev_async_start(loop, &l->resolve_async);
    ev_prepare_init(&l->reply_watch, redis_on_prepare);
    l->reply_watch.data = l;
    ev_prepare_start(loop, &l->reply_watch);
    ev_unref(loop);                     /* the watch alone keeps no loop running */
}

void redis_link_start(struct redis_link *l)
{
    redis_connect_missing(l);
}

void redis_link_close(struct redis_link *l)
{
    l->closing = true;
    ev_timer_stop(l->loop, &l->reconnect_timer);
    ev_timer_stop(l->loop, &l->drop_timer);
    ev_timer_stop(l->loop, &l->connect_timer);
    ev_timer_stop(l->loop, &l->sentinel_timer);
    ev_ref(l->loop);                    /* taken back at init */
    ev_prepare_stop(l->loop, &l->reply_watch);
    ev_async_stop(l->loop, &l->resolve_async);
    redis_resolve_abandon(l);
    redis_free_dead_data(l);
    redis_free_dead_sentinel(l);
    if (l->ac != NULL) {
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        redisAsyncFree(ac);
    }
    if (l->sac != NULL) {
        redisAsyncContext *ac = l->sac;
        l->sac = NULL;
        redisAsyncFree(ac);
    }
}

int redis_link_send(struct redis_link *l, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                    const size_t *argvlen)
{
    if (l->ac == NULL || redisAsyncCommandArgv(l->ac, fn, priv, argc, argv, argvlen) != REDIS_OK)
        return -1;
    return 0;
}
