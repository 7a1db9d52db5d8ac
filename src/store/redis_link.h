/*
 * redis_link.h - the connections of a Redis store (edge): the data
 * connection and, with Sentinel, the Sentinel one; host names resolved off
 * the loop, the handshake, the backoff, fail-overs, and the bound on what
 * hiredis buffers of one reply.
 *
 * The link knows connections, not calls: the store (redis.c) sends its
 * commands through redis_link_send() once redis_link_ready(), and hears
 * through struct redis_link_events when a connection opens, becomes ready
 * or must be dropped for a reply too long.  Nothing here waits: every step
 * runs on the worker's libev loop.
 */
#ifndef HEPROUTER_STORE_REDIS_LINK_H
#define HEPROUTER_STORE_REDIS_LINK_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <hiredis/async.h>

#include "backoff.h"
#include "log.h"
#include "store/redis_internal.h"

struct conf;
struct metrics;
struct redis_resolve;

/* Who a connection attempt is for. */
enum redis_peer {
    REDIS_PEER_DATA,
    REDIS_PEER_SENTINEL,
};

/* What the link tells its store; arg is the one given to redis_link_init(). */
struct redis_link_events {
    /*
     * A data connection was opened and its handshake goes next; every
     * command sent on the ones before has had its callback.
     */
    void (*opened)(void *arg);
    /* The handshake is done: commands may go.  again: it was ready before. */
    void (*ready)(void *arg, bool again);
    /*
     * The data connection holds more than store.redis.max_reply_bytes of an
     * unfinished reply and is about to be dropped: true with the reason in
     * why[0..size) when the reply was for one of the store's commands, else
     * false (the link words it).
     */
    bool (*reply_too_long)(void *arg, size_t nread, char *why, size_t size);
};

struct redis_link {
    const struct conf *conf;
    struct ev_loop *loop;
    struct metrics *m;
    const struct redis_link_events *events;
    void *events_arg;
    bool closing;

    /* the data connection */
    redisAsyncContext *ac;                  /* NULL while down */
    redisAsyncContext *dead_ac;             /* dropped, freed by drop_timer */
    bool ready;                             /* handshake done: commands may go */
    bool ever_ready;
    unsigned handshake_left;
    char addr_text[REDIS_ADDR_TEXT_MAX];    /* "host:port" or "unix:path", for logs */
    struct backoff backoff;                 /* store.redis reconnect_min/max */

    /* Sentinel */
    redisAsyncContext *sac;
    redisAsyncContext *dead_sac;
    size_t sentinel_index;                  /* the one asked now */
    size_t sentinel_attempts;               /* failures in a row this round */
    bool sentinel_answered;
    bool master_known;
    char master_host[REDIS_HOST_MAX];
    int master_port;

    /* host names, resolved off the loop */
    struct redis_resolve *resolving;        /* in flight, or NULL */
    enum redis_peer resolving_peer;
    ev_async resolve_async;
    bool resolved;                          /* resolved_* hold an answer not used yet */
    enum redis_peer resolved_peer;
    char resolved_host[REDIS_HOST_MAX];
    char resolved_addr[INET6_ADDRSTRLEN];

    ev_timer reconnect_timer;               /* (re)connects, after the backoff */
    ev_timer drop_timer;                    /* frees dropped contexts, outside their callbacks */
    ev_timer connect_timer;                 /* data: connect + handshake deadline */
    ev_timer sentinel_timer;                /* Sentinel: answer deadline */
    ev_prepare reply_watch;                 /* bounds what hiredis buffers of one reply */

    struct log_limit conn_limit;
    struct log_limit error_limit;           /* the store's error lines share it */
};

/*
 * Sets l (zeroed) up on loop for the server conf names, store.redis; m
 * takes its counters.  Nothing is connected until redis_link_start().
 */
void redis_link_init(struct redis_link *l, const struct conf *conf, struct ev_loop *loop, struct metrics *m,
                     const struct redis_link_events *events, void *events_arg);

/* Starts connecting; never waits: the loop completes it. */
void redis_link_start(struct redis_link *l);

/*
 * Stops everything and frees the connections: hiredis calls the callbacks
 * of the commands still in flight with no reply, so the store must still
 * be whole.  l->closing from the start.
 */
void redis_link_close(struct redis_link *l);

/* Hands a command to hiredis on the data connection; -1 when there is none or hiredis refuses. */
int redis_link_send(struct redis_link *l, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                    const size_t *argvlen);

/* Drops the live data connection (freed outside its callbacks) after a failure. */
void redis_link_fail(struct redis_link *l, const char *why);

/* A data connection is there (maybe still in its handshake). */
static inline bool redis_link_connected(const struct redis_link *l)
{
    return l->ac != NULL;
}

/* Commands may go. */
static inline bool redis_link_ready(const struct redis_link *l)
{
    return l->ready && l->ac != NULL;
}

/* ac is the live data connection (not a dropped one, not the Sentinel's). */
static inline bool redis_link_is_data(const struct redis_link *l, const redisAsyncContext *ac)
{
    return ac == l->ac;
}

#endif
