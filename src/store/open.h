/*
 * open.h - opening the context store the configuration names (edge).
 *
 * The factory lives at the edge because a Redis store runs on a worker's
 * libev loop; the core knows only the interface (store.h) and the memory
 * store.
 */
#ifndef HEPROUTER_STORE_OPEN_H
#define HEPROUTER_STORE_OPEN_H

#include <stddef.h>

struct conf;
struct ev_loop;
struct metrics;
struct store;

/*
 * Opens the back-end conf names.  The memory store is thread-safe: open it
 * once (loop and m are not used) and share it between workers.  A Redis
 * store is one connection and cache per worker: open one per worker, on
 * that worker's loop, with its counters in m.  NULL (and a logged reason)
 * on failure.
 */
struct store *store_open(const struct conf *conf, struct ev_loop *loop, struct metrics *m);

/* What the start-up check of a shared back-end found. */
enum store_check_result {
    STORE_CHECK_OK = 0,             /* reachable, authenticated, writable */
    STORE_CHECK_UNREACHABLE,        /* not answering now: heprouter starts anyway and runs on
                                       its cache and the fallback until it answers */
    STORE_CHECK_REFUSED,            /* an error an operator must fix (wrong password, unknown
                                       user, bad db, ACL, Redis too old): no start */
};

/*
 * Start-up check of a shared back-end, before any worker runs: connects
 * once, synchronously, and authenticates.  errbuf gets "ok", or what was
 * unreachable, or why the store refused; the caller logs it.  The memory
 * store is always OK.
 */
enum store_check_result store_check(const struct conf *conf, char *errbuf, size_t errlen);

/* The Redis back-end (redis.c; its start-up check in redis_check.c). */
struct store *store_redis_new(const struct conf *conf, struct ev_loop *loop, struct metrics *m);
enum store_check_result store_redis_check(const struct conf *conf, char *errbuf, size_t errlen);

#endif
