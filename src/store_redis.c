/*
 * store_redis.c - the Redis back-end of the call context store, for several
 * heprouter instances (or workers) sharing their calls.
 *
 * Each worker opens its own store: one async hiredis connection on the
 * worker's libev loop (pipelined), an in-process LRU cache in front of it,
 * a queue of writes made while Redis is away, and, with Sentinel, one
 * Sentinel connection that names the master and reports fail-overs.
 * Nothing here ever waits for Redis: get() reads the cache only, put() and
 * update() write to the cache and send (or queue) in the background, and
 * query() asks Redis and answers later through the answer fn.
 *
 * Key:    <store.redis.prefix>call:<call key>
 * Value:  1|<flags>|<first seen>|<origin method>|<route name>
 *   1             format version; a value with any other version is refused
 *   flags         decimal bit set: 1 ended, 2 fallback (decided by an
 *                 orphan's CSeq method), 4 REGISTER dialog, 8 confirmed
 *                 (an INVITE got a 2xx); unknown bits are ignored
 *   first seen    wall clock of the origin, ms since the epoch, decimal
 *   origin method the method that started the call (visible ASCII without
 *                 '|', at most 31 bytes)
 *   route name    the route the origin matched, by name, never by index
 *                 (at most 63 bytes; last, so it may contain '|')
 * e.g. "1|0|1700000000123|INVITE|voipmonitor".  A value that does not parse
 * exactly so is a malformed value: the call is unknown and store_errors
 * counts it.  The flags are those the decision had when it was written;
 * later flag changes (a call ending, then restarting) show in Redis as the
 * key's TTL only.
 *
 * Commands:
 *   put()     SET key value NX EX ttl GET (Redis >= 7.0): stores the
 *             decision unless the call exists, and returns the existing one
 *             in the same round trip.  put() itself returns 1 at once (the
 *             decision is in the cache and the packet is routed by it); when
 *             the reply shows another instance was first, its value replaces
 *             the cache entry, so the rest of the call follows the winner.
 *   query()   GET key, for a call the cache does not know.
 *   update()  EXPIRE key ttl, only when the end of the call changes (ended / reset) or
 *             when less than half of the TTL Redis holds (as last set) is
 *             left; nothing otherwise.  An EXPIRE that finds no key (Redis
 *             lost it, e.g. restarted without persistence) sends the SET
 *             again.
 *   connect   AUTH [user] password (when configured), SELECT db (db != 0),
 *             then ROLE (Sentinel: the server must still be the master) or
 *             PING, before anything else on each new connection.
 *
 * When Redis is down, slow or failing: get() still answers from the cache;
 * query() returns -1 at once (down, or max_inflight commands in flight) or
 * answers NULL after redis.timeout_ms; writes wait in a queue of at most
 * max_pending_writes (the oldest dropped and counted as store_lost_writes)
 * and go out once a connection is ready again.  Reconnects back off from
 * limits.reconnect_min to limits.reconnect_max, doubling.  A context is
 * never freed inside one of its own callbacks: a connection to drop is
 * handed to a zero-delay timer.  A connection holding more than
 * max_reply_bytes of a reply not yet complete is dropped the same way
 * (hiredis would buffer a reply of any size whole).  Host names (of the
 * server, the Sentinels, or a master a Sentinel names) are resolved on a
 * short-lived thread, because hiredis would call getaddrinfo() on the
 * worker's loop.  Call keys come from the network: log lines show them
 * quoted and escaped.
 */
#include "store.h"
#include "store_open.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "conf.h"
#include "hash.h"
#include "log.h"
#include "metrics.h"

#define REDIS_VALUE_VERSION "1"
#define REDIS_VALUE_SEP '|'
#define REDIS_FLAGS_DIGITS_MAX 10           /* an unsigned int */
#define REDIS_MS_DIGITS_MAX 20              /* a uint64_t */
#define REDIS_VALUE_MAX (sizeof REDIS_VALUE_VERSION + REDIS_FLAGS_DIGITS_MAX + 1 + REDIS_MS_DIGITS_MAX + 1 \
                         + STORE_METHOD_MAX + STORE_ROUTE_MAX)
#define REDIS_KNOWN_FLAGS STORE_F_ALL
/* The flags whose change changes the TTL, and so are worth an EXPIRE. */
#define REDIS_TTL_FLAGS STORE_F_ENDED
#define REDIS_KEY_INFIX "call:"
#define REDIS_NUM_MAX 24                    /* a decimal uint64_t and its NUL */
#define REDIS_HOST_MAX 256
#define REDIS_ADDR_TEXT_MAX (REDIS_HOST_MAX + 16)
#define REDIS_WHY_MAX (2 * REDIS_HOST_MAX)  /* a reason given to the logs */
#define REDIS_PORT_MAX 65535
#define REDIS_SENTINEL_DEFAULT_PORT 26379
#define REDIS_SWITCH_CHANNEL "+switch-master"
#define REDIS_SWITCH_FIELDS 5               /* name old-ip old-port new-ip new-port */
#define REDIS_CHECK_KEY "check"             /* <prefix>check: the start-up write test */
#define REDIS_CHECK_TTL_S "1"
/* The TTL Redis holds is refreshed when less than 1/REDIS_REFRESH_DIVISOR of it is left. */
#define REDIS_REFRESH_DIVISOR 2
#define REDIS_EXPIRE_SCAN 1024              /* cache buckets one expire() call looks at */
#define REDIS_BUCKETS_MIN 16
#define REDIS_HANDSHAKE_ARGC_MAX 3          /* AUTH user password */
#define REDIS_CHECK_ARGC_MAX 8              /* arguments of one start-up check command */
#define REDIS_CHECK_SET "SET NX GET"        /* how the check names its SET (Redis >= 7.0) */
#define REDIS_ARGC(argv) ((int)(sizeof(argv) / sizeof((argv)[0])))
#define REDIS_LOG_KEY_MAX 128               /* bytes of a call key a log line shows */
#define REDIS_LOG_ESCAPE_MAX 4              /* "\xHH": what one byte may become */
#define REDIS_LOG_CUT "\"... (%zu bytes)"   /* ends a key shown in part */
#define REDIS_LOG_CUT_MAX (sizeof REDIS_LOG_CUT + REDIS_NUM_MAX)
/* a call key as a log line shows it, quoted and escaped, NUL included */
#define REDIS_LOG_KEY_TEXT_MAX (1 + REDIS_LOG_ESCAPE_MAX * REDIS_LOG_KEY_MAX + REDIS_LOG_CUT_MAX)

/*
 * What the TTL bookkeeping of a cache entry says about the key in Redis.
 * It decides whether update() must send anything.
 */
enum redis_ttl_state {
    REDIS_TTL_SET,          /* redis_deadline_ms / redis_flags: as we sent (or queued) them */
    REDIS_TTL_ADOPT,        /* learned by GET: another writer's TTL, taken as fresh by the next update */
    REDIS_TTL_RESEND,       /* unknown (another instance won, or an EXPIRE was lost): send the next one */
    REDIS_TTL_UNWRITTEN,    /* our SET was lost: the next update sends it again */
};

struct redis_pending;

/* One call in the cache; the key follows the struct. */
struct redis_centry {
    struct redis_centry *hnext;             /* hash chain */
    struct redis_centry *older, *newer;     /* LRU list */
    struct redis_pending *pending;          /* its queued write, if any */
    struct store_entry e;
    uint64_t hash;
    uint64_t expires_ms;                    /* caller's clock */
    uint64_t redis_deadline_ms;             /* when the TTL last set in Redis runs out */
    unsigned redis_flags;                   /* the flags that TTL was set for */
    enum redis_ttl_state ttl_state;
    size_t klen;
    char key[];
};

/* A write waiting for a connection (or for room in flight). */
struct redis_pending {
    struct redis_pending *prev, *next;
    struct redis_centry *centry;            /* the cache entry it belongs to, or NULL */
    bool is_set;                            /* SET NX (else EXPIRE) */
    bool requeued;                          /* was in flight when the connection went */
    struct store_entry e;                   /* SET: the value */
    uint64_t deadline_ms;                   /* when the key should expire, caller's clock */
    size_t klen;
    char key[];
};

enum redis_cmd_kind {
    REDIS_CMD_GET,
    REDIS_CMD_SET,
    REDIS_CMD_EXPIRE,
};

/* A data command in flight; the call key follows the struct. */
struct redis_cmd {
    struct store_redis *s;
    struct redis_cmd *prev, *next;          /* in flight, in the order sent */
    struct redis_cmd *wprev, *wnext;        /* GETs whose answer is still owed */
    enum redis_cmd_kind kind;
    bool waiting;                           /* GET: on the waiting list */
    bool oversized;                         /* its reply was above max_reply_bytes: never read */
    uint64_t sent_mono_ms;
    struct store_entry e;                   /* SET: the value sent */
    uint64_t deadline_ms;                   /* SET, EXPIRE */
    size_t klen;
    char key[];
};

/* Who a connection attempt is for. */
enum redis_peer {
    REDIS_PEER_DATA,
    REDIS_PEER_SENTINEL,
};

/*
 * One host name being resolved by a thread of its own.  The store and the
 * thread share it under its lock; the last of them to let go frees it, so
 * a store freed meanwhile only has to say so (loop = NULL).
 */
struct redis_resolve {
    pthread_mutex_t lock;
    unsigned refs;
    struct ev_loop *loop;           /* NULL once the store has gone */
    ev_async *done;                 /* sent when finished, on loop */
    bool finished;
    int error;                      /* getaddrinfo()'s */
    char host[REDIS_HOST_MAX];
    char addr[INET6_ADDRSTRLEN];    /* the numeric answer */
};

struct store_redis {
    struct store base;
    const struct conf *conf;
    struct ev_loop *loop;
    struct metrics *m;
    struct metrics own_metrics;             /* when the caller gives none */
    store_answer_fn answer;
    void *answer_arg;
    bool freeing;

    /* the caller's clock, carried forward by the monotonic one between calls */
    uint64_t now_ms;
    uint64_t now_mono_ms;

    /* cache */
    struct redis_centry **buckets;
    size_t nbuckets;                        /* a power of two; 0: no cache */
    size_t ncached;
    size_t expire_cursor;
    struct redis_centry *newest, *oldest;
    uint8_t hash_key[HASH_SIPHASH_KEY_BYTES];

    /* the data connection */
    redisAsyncContext *ac;                  /* NULL while down */
    redisAsyncContext *dead_ac;             /* dropped, freed by drop_timer */
    bool ready;                             /* handshake done: commands may go */
    bool ever_ready;
    unsigned handshake_left;
    char addr_text[REDIS_ADDR_TEXT_MAX];    /* "host:port" or "unix:path", for logs */
    uint64_t backoff_ms;

    /* commands in flight, and GETs still to answer (both oldest first) */
    struct redis_cmd *inflight_head, *inflight_tail;
    size_t ninflight;
    struct redis_cmd *wait_head, *wait_tail;

    /* writes waiting (oldest first); requeued ones go after requeue_mark */
    struct redis_pending *pend_head, *pend_tail, *requeue_mark;
    size_t npending;

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
    ev_timer query_timer;                   /* GET timeouts, stalled connection */
    ev_prepare reply_watch;                 /* bounds what hiredis buffers of one reply */

    char *keybuf;                           /* scratch for "<prefix>call:<key>" */
    size_t keycap;
    struct log_limit conn_limit;
    struct log_limit error_limit;
    struct log_limit lost_limit;
};

static const struct store_ops store_redis_ops;

/* ---- clocks ---- */

static void redis_touch_clock(struct store_redis *s, uint64_t now_ms)
{
    s->now_ms = now_ms;
    s->now_mono_ms = clock_mono_ms();
}

/* The caller's clock now, also inside callbacks (which get no now_ms). */
static uint64_t redis_clock(const struct store_redis *s)
{
    return s->now_ms + (clock_mono_ms() - s->now_mono_ms);
}

/* ---- log lines ---- */

/*
 * A call key as log lines show it: Call-IDs come from the network and may
 * hold line ends, terminal escapes or invalid UTF-8.  Quoted; printable
 * ASCII as is, '\\' and '"' escaped, any other byte as \xHH; at most
 * REDIS_LOG_KEY_MAX bytes of it, then REDIS_LOG_CUT with its length.
 * size is REDIS_LOG_KEY_TEXT_MAX (less only cuts the key shorter).
 */
static const char *redis_log_quote(const char *key, size_t klen, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0, i = 0;
    if (size < 1 + REDIS_LOG_CUT_MAX) {
        if (size > 0)
            buf[0] = '\0';
        return buf;
    }
    buf[n++] = '"';
    for (; i < klen && i < REDIS_LOG_KEY_MAX && n + REDIS_LOG_ESCAPE_MAX + REDIS_LOG_CUT_MAX <= size; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c >= ' ' && c < 0x7f) {
            buf[n++] = (char)c;
        } else {
            buf[n++] = '\\';
            buf[n++] = 'x';
            buf[n++] = hex[c >> 4];
            buf[n++] = hex[c & 0xf];
        }
    }
    if (i < klen)
        snprintf(buf + n, size - n, REDIS_LOG_CUT, klen);
    else
        snprintf(buf + n, size - n, "\"");
    return buf;
}

/* ---- the value ---- */

static bool redis_method_char(char c)
{
    return c > ' ' && c < 0x7f && c != REDIS_VALUE_SEP;
}

/* Writes e as a value; its length, or 0 when e cannot be written. */
static size_t redis_value_format(const struct store_entry *e, char *buf, size_t len)
{
    size_t mlen = strnlen(e->method, sizeof e->method);
    size_t rlen = strnlen(e->route, sizeof e->route);
    if (mlen == 0 || mlen == sizeof e->method || rlen == 0 || rlen == sizeof e->route)
        return 0;
    for (size_t i = 0; i < mlen; i++)
        if (!redis_method_char(e->method[i]))
            return 0;
    int n = snprintf(buf, len, "%s%c%u%c%llu%c%s%c%s", REDIS_VALUE_VERSION, REDIS_VALUE_SEP,
                     e->flags & REDIS_KNOWN_FLAGS, REDIS_VALUE_SEP, (unsigned long long)e->first_seen_ms,
                     REDIS_VALUE_SEP, e->method, REDIS_VALUE_SEP, e->route);
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

static bool redis_parse_u64(const char **p, const char *end, size_t max_digits, uint64_t *out)
{
    const char *q = *p;
    uint64_t v = 0;
    size_t n = 0;
    while (q < end && *q >= '0' && *q <= '9') {
        unsigned d = (unsigned)(*q - '0');
        if (++n > max_digits || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        q++;
    }
    if (n == 0)
        return false;
    *p = q;
    *out = v;
    return true;
}

static bool redis_expect_sep(const char **p, const char *end)
{
    if (*p == end || **p != REDIS_VALUE_SEP)
        return false;
    (*p)++;
    return true;
}

/* Parses a value (see the top of the file); -1 when it is malformed in any way. */
static int redis_value_parse(const char *v, size_t len, struct store_entry *out)
{
    const char *p = v, *end = v + len;
    size_t vlen = strlen(REDIS_VALUE_VERSION);
    uint64_t flags, first_seen;

    memset(out, 0, sizeof *out);
    if (len < vlen || memcmp(p, REDIS_VALUE_VERSION, vlen) != 0)
        return -1;
    p += vlen;
    if (!redis_expect_sep(&p, end) || !redis_parse_u64(&p, end, REDIS_FLAGS_DIGITS_MAX, &flags) ||
        flags > UINT_MAX || !redis_expect_sep(&p, end) ||
        !redis_parse_u64(&p, end, REDIS_MS_DIGITS_MAX, &first_seen) || !redis_expect_sep(&p, end))
        return -1;
    const char *method = p;
    while (p < end && *p != REDIS_VALUE_SEP) {
        if (!redis_method_char(*p))
            return -1;
        p++;
    }
    size_t mlen = (size_t)(p - method);
    if (mlen == 0 || mlen >= sizeof out->method || !redis_expect_sep(&p, end))
        return -1;
    size_t rlen = (size_t)(end - p);
    if (rlen == 0 || rlen >= sizeof out->route || memchr(p, '\0', rlen) != NULL)
        return -1;
    memcpy(out->method, method, mlen);
    memcpy(out->route, p, rlen);
    out->first_seen_ms = first_seen;
    out->flags = (unsigned)flags & REDIS_KNOWN_FLAGS;
    return 0;
}

/* Same origin decision: what the value holds apart from the flags. */
static bool redis_same_origin(const struct store_entry *a, const struct store_entry *b)
{
    return a->first_seen_ms == b->first_seen_ms && strcmp(a->method, b->method) == 0 &&
           strcmp(a->route, b->route) == 0;
}

/* ---- cache ---- */

static bool redis_cache_on(const struct store_redis *s)
{
    return s->nbuckets > 0;
}

static uint64_t redis_hash(const struct store_redis *s, const char *key, size_t klen)
{
    uint64_t h[2];
    hash_siphash128(s->hash_key, key, klen, h);
    return h[0];
}

static void redis_lru_unlink(struct store_redis *s, struct redis_centry *ce)
{
    if (ce->newer != NULL)
        ce->newer->older = ce->older;
    else
        s->newest = ce->older;
    if (ce->older != NULL)
        ce->older->newer = ce->newer;
    else
        s->oldest = ce->newer;
    ce->older = ce->newer = NULL;
}

static void redis_lru_push(struct store_redis *s, struct redis_centry *ce)
{
    ce->older = s->newest;
    ce->newer = NULL;
    if (s->newest != NULL)
        s->newest->newer = ce;
    else
        s->oldest = ce;
    s->newest = ce;
}

static void redis_cache_remove(struct store_redis *s, struct redis_centry *ce)
{
    struct redis_centry **pp = &s->buckets[ce->hash & (s->nbuckets - 1)];
    while (*pp != ce)
        pp = &(*pp)->hnext;
    *pp = ce->hnext;
    redis_lru_unlink(s, ce);
    if (ce->pending != NULL)
        ce->pending->centry = NULL;     /* the write still goes out */
    s->ncached--;
    free(ce);
}

/* The live entry for key, or NULL; an expired one is removed on the way. */
static struct redis_centry *redis_cache_find(struct store_redis *s, const char *key, size_t klen, uint64_t now_ms)
{
    if (!redis_cache_on(s))
        return NULL;
    uint64_t h = redis_hash(s, key, klen);
    for (struct redis_centry *ce = s->buckets[h & (s->nbuckets - 1)]; ce != NULL; ce = ce->hnext) {
        if (ce->hash == h && ce->klen == klen && memcmp(ce->key, key, klen) == 0) {
            if (ce->expires_ms <= now_ms) {
                redis_cache_remove(s, ce);
                return NULL;
            }
            return ce;
        }
    }
    return NULL;
}

/* Adds key (not in the cache), evicting the least recently used entry when full. */
static struct redis_centry *redis_cache_insert(struct store_redis *s, const char *key, size_t klen,
                                               const struct store_entry *e, uint64_t expires_ms)
{
    if (!redis_cache_on(s))
        return NULL;
    if (s->ncached >= s->conf->cache_entries && s->oldest != NULL)
        redis_cache_remove(s, s->oldest);
    struct redis_centry *ce = calloc(1, sizeof *ce + klen);
    if (ce == NULL)
        return NULL;
    ce->hash = redis_hash(s, key, klen);
    ce->klen = klen;
    memcpy(ce->key, key, klen);
    ce->e = *e;
    ce->expires_ms = expires_ms;
    ce->redis_flags = e->flags;
    size_t b = ce->hash & (s->nbuckets - 1);
    ce->hnext = s->buckets[b];
    s->buckets[b] = ce;
    redis_lru_push(s, ce);
    s->ncached++;
    return ce;
}

static void redis_cache_touch(struct store_redis *s, struct redis_centry *ce)
{
    redis_lru_unlink(s, ce);
    redis_lru_push(s, ce);
}

/*
 * Redis holds a decision for key (a GET answer, or the existing value a SET
 * NX returned): it is the first writer's, so it replaces whatever the cache
 * says.  *out receives the entry as the cache now has it.
 */
static void redis_learn(struct store_redis *s, const char *key, size_t klen, const struct store_entry *e,
                        struct store_entry *out)
{
    uint64_t now = redis_clock(s);
    struct redis_centry *ce = redis_cache_find(s, key, klen, now);
    if (ce == NULL) {
        ce = redis_cache_insert(s, key, klen, e, now + store_ttl(s->conf, e->flags));
        if (ce != NULL)
            ce->ttl_state = REDIS_TTL_ADOPT;
        if (out != NULL)
            *out = ce != NULL ? ce->e : *e;
        return;
    }
    if (!redis_same_origin(&ce->e, e)) {
        /* our local decision lost: the winner's route from now on, our last_hash kept */
        memcpy(ce->e.method, e->method, sizeof ce->e.method);
        memcpy(ce->e.route, e->route, sizeof ce->e.route);
        ce->e.first_seen_ms = e->first_seen_ms;
        ce->e.flags = e->flags;
        ce->redis_flags = e->flags;
        ce->ttl_state = REDIS_TTL_RESEND;
    }
    if (out != NULL)
        *out = ce->e;
}

/* ---- commands in flight ---- */

static struct redis_cmd *redis_cmd_new(struct store_redis *s, enum redis_cmd_kind kind, const char *key, size_t klen)
{
    struct redis_cmd *cmd = calloc(1, sizeof *cmd + klen);
    if (cmd == NULL)
        return NULL;
    cmd->s = s;
    cmd->kind = kind;
    cmd->klen = klen;
    memcpy(cmd->key, key, klen);
    return cmd;
}

static void redis_inflight_unlink(struct store_redis *s, struct redis_cmd *cmd)
{
    if (cmd->prev != NULL)
        cmd->prev->next = cmd->next;
    else
        s->inflight_head = cmd->next;
    if (cmd->next != NULL)
        cmd->next->prev = cmd->prev;
    else
        s->inflight_tail = cmd->prev;
    cmd->prev = cmd->next = NULL;
    s->ninflight--;
}

static void redis_wait_unlink(struct store_redis *s, struct redis_cmd *cmd)
{
    if (!cmd->waiting)
        return;
    if (cmd->wprev != NULL)
        cmd->wprev->wnext = cmd->wnext;
    else
        s->wait_head = cmd->wnext;
    if (cmd->wnext != NULL)
        cmd->wnext->wprev = cmd->wprev;
    else
        s->wait_tail = cmd->wprev;
    cmd->wprev = cmd->wnext = NULL;
    cmd->waiting = false;
}

/* Answers a GET once: from its reply, its timeout or its connection's end. */
static void redis_answer(struct store_redis *s, struct redis_cmd *cmd, const struct store_entry *e)
{
    if (!cmd->waiting)
        return;
    redis_wait_unlink(s, cmd);
    if (s->answer != NULL && !s->freeing)
        s->answer(s->answer_arg, cmd->key, cmd->klen, e, clock_mono_ms(), clock_wall_ms());
}

/* "<prefix>call:<key>" in the scratch buffer; NULL when out of memory. */
static const char *redis_key(struct store_redis *s, const char *key, size_t klen, size_t *out_len)
{
    const char *prefix = s->conf->redis.prefix != NULL ? s->conf->redis.prefix : "";
    size_t plen = strlen(prefix), ilen = strlen(REDIS_KEY_INFIX), need = plen + ilen + klen;
    if (need > s->keycap) {
        char *n = realloc(s->keybuf, need);
        if (n == NULL)
            return NULL;
        s->keybuf = n;
        s->keycap = need;
    }
    memcpy(s->keybuf, prefix, plen);
    memcpy(s->keybuf + plen, REDIS_KEY_INFIX, ilen);
    memcpy(s->keybuf + plen + ilen, key, klen);
    *out_len = need;
    return s->keybuf;
}

static void redis_arm_query_timer(struct store_redis *s);

/* Hands cmd to hiredis and records it in flight; -1 when hiredis refuses. */
static int redis_send(struct store_redis *s, struct redis_cmd *cmd, redisCallbackFn *fn, int argc,
                      const char **argv, const size_t *argvlen)
{
    if (s->ac == NULL || redisAsyncCommandArgv(s->ac, fn, cmd, argc, argv, argvlen) != REDIS_OK)
        return -1;
    cmd->sent_mono_ms = clock_mono_ms();
    cmd->prev = s->inflight_tail;
    if (s->inflight_tail != NULL)
        s->inflight_tail->next = cmd;
    else
        s->inflight_head = cmd;
    s->inflight_tail = cmd;
    s->ninflight++;
    redis_arm_query_timer(s);
    return 0;
}

static bool redis_room_in_flight(const struct store_redis *s)
{
    size_t max = s->conf->redis.max_inflight;
    return max == 0 || s->ninflight < max;
}

static bool redis_can_send(const struct store_redis *s)
{
    return s->ready && s->ac != NULL && redis_room_in_flight(s);
}

/* ---- writes ---- */

static void redis_on_set(redisAsyncContext *ac, void *r, void *priv);
static void redis_on_expire(redisAsyncContext *ac, void *r, void *priv);

/* Seconds for EX / EXPIRE, rounded up: a key never goes before its deadline. */
static uint64_t redis_ttl_seconds(uint64_t ttl_ms)
{
    uint64_t secs = (ttl_ms + CLOCK_MS_PER_S - 1) / CLOCK_MS_PER_S;
    return secs > 0 ? secs : 1;
}

/*
 * Sends a SET NX (e) or an EXPIRE for key, with the TTL left until
 * deadline_ms.  0 when sent, or when there is nothing to send (the call has
 * expired meanwhile); -1 when it could not go now.
 */
static int redis_send_write(struct store_redis *s, const char *key, size_t klen, bool is_set,
                            const struct store_entry *e, uint64_t deadline_ms)
{
    uint64_t now = redis_clock(s);
    if (deadline_ms <= now)
        return 0;
    char value[REDIS_VALUE_MAX], secs[REDIS_NUM_MAX];
    size_t vlen = 0;
    if (is_set) {
        vlen = redis_value_format(e, value, sizeof value);
        if (vlen == 0) {
            s->m->store_errors++;
            log_ratelimited(&s->error_limit, s->conf->log_interval_ms, LOG_LEVEL_WARN,
                            "redis %s: call decision not written: method or route name cannot be stored",
                            s->addr_text);
            return 0;
        }
    }
    int slen = snprintf(secs, sizeof secs, "%llu", (unsigned long long)redis_ttl_seconds(deadline_ms - now));
    struct redis_cmd *cmd = redis_cmd_new(s, is_set ? REDIS_CMD_SET : REDIS_CMD_EXPIRE, key, klen);
    size_t rklen = 0;
    const char *rkey = cmd != NULL ? redis_key(s, key, klen, &rklen) : NULL;
    if (rkey == NULL) {
        free(cmd);
        return -1;
    }
    if (is_set)
        cmd->e = *e;
    cmd->deadline_ms = deadline_ms;
    int rc;
    if (is_set) {
        const char *argv[] = { "SET", rkey, value, "NX", "EX", secs, "GET" };
        const size_t argvlen[] = { strlen(argv[0]), rklen, vlen, strlen(argv[3]), strlen(argv[4]),
                                   (size_t)slen, strlen(argv[6]) };
        rc = redis_send(s, cmd, redis_on_set, REDIS_ARGC(argv), argv, argvlen);
    } else {
        const char *argv[] = { "EXPIRE", rkey, secs };
        const size_t argvlen[] = { strlen(argv[0]), rklen, (size_t)slen };
        rc = redis_send(s, cmd, redis_on_expire, REDIS_ARGC(argv), argv, argvlen);
    }
    if (rc != 0) {
        free(cmd);
        return -1;
    }
    s->m->store_writes++;
    return 0;
}

/* What a cache entry's bookkeeping says once one of its writes is lost. */
static void redis_mark_lost(struct redis_centry *ce, bool is_set)
{
    if (ce != NULL)
        ce->ttl_state = is_set ? REDIS_TTL_UNWRITTEN : REDIS_TTL_RESEND;
}

static void redis_count_lost(struct store_redis *s)
{
    s->m->store_lost_writes++;
    log_ratelimited(&s->lost_limit, s->conf->log_interval_ms, LOG_LEVEL_WARN,
                    "redis %s: call decisions lost: Redis unavailable and %zu writes already waiting",
                    s->addr_text, s->npending);
}

static void redis_pending_unlink(struct store_redis *s, struct redis_pending *p)
{
    if (s->requeue_mark == p)
        s->requeue_mark = p->prev;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        s->pend_head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        s->pend_tail = p->prev;
    if (p->centry != NULL)
        p->centry->pending = NULL;
    s->npending--;
}

static void redis_pending_drop_oldest(struct store_redis *s)
{
    struct redis_pending *p = s->pend_head;
    redis_mark_lost(p->centry, p->is_set);
    redis_pending_unlink(s, p);
    free(p);
    redis_count_lost(s);
}

/*
 * Queues a write.  New writes go last, dropping the oldest when the queue is
 * full; writes that were in flight when their connection went (requeue) are
 * older than anything queued, so they go first, in their order, and are the
 * ones lost when there is no room.
 */
static void redis_pending_add(struct store_redis *s, struct redis_centry *ce, const char *key, size_t klen,
                              bool is_set, const struct store_entry *e, uint64_t deadline_ms, bool requeue)
{
    size_t max = s->conf->redis.max_pending_writes;
    if (!requeue)
        while (s->npending >= max && s->pend_head != NULL)
            redis_pending_drop_oldest(s);
    struct redis_pending *p = s->npending < max ? calloc(1, sizeof *p + klen) : NULL;
    if (p == NULL) {
        redis_mark_lost(ce, is_set);
        redis_count_lost(s);
        return;
    }
    p->is_set = is_set;
    p->requeued = requeue;
    if (is_set)
        p->e = *e;
    p->deadline_ms = deadline_ms;
    p->klen = klen;
    memcpy(p->key, key, klen);
    if (ce != NULL) {
        ce->pending = p;
        p->centry = ce;
    }
    struct redis_pending *after = requeue ? s->requeue_mark : s->pend_tail;
    p->prev = after;
    p->next = after != NULL ? after->next : s->pend_head;
    if (p->prev != NULL)
        p->prev->next = p;
    else
        s->pend_head = p;
    if (p->next != NULL)
        p->next->prev = p;
    else
        s->pend_tail = p;
    if (requeue)
        s->requeue_mark = p;
    s->npending++;
}

/*
 * A write for key: merged into the entry's queued write when it has one
 * (one write per call waits, whatever happened meanwhile), sent when a
 * connection has room and nothing older waits, queued otherwise.  The
 * entry's bookkeeping is the caller's.
 */
static void redis_write(struct store_redis *s, struct redis_centry *ce, const char *key, size_t klen,
                        bool is_set, const struct store_entry *e, uint64_t deadline_ms)
{
    if (ce != NULL && ce->pending != NULL) {
        struct redis_pending *p = ce->pending;
        if (is_set) {
            p->is_set = true;
            p->e = *e;
        } else if (p->is_set) {
            p->e.flags = ce->e.flags;
        }
        p->deadline_ms = deadline_ms;
        return;
    }
    if (s->pend_head == NULL && redis_can_send(s) &&
        redis_send_write(s, key, klen, is_set, e, deadline_ms) == 0)
        return;
    redis_pending_add(s, ce, key, klen, is_set, e, deadline_ms, false);
}

/* Sends queued writes while the connection has room. */
static void redis_flush(struct store_redis *s)
{
    while (s->pend_head != NULL && redis_can_send(s)) {
        struct redis_pending *p = s->pend_head;
        if (redis_send_write(s, p->key, p->klen, p->is_set, &p->e, p->deadline_ms) != 0)
            break;
        redis_pending_unlink(s, p);
        free(p);
    }
    if (s->pend_head == NULL)
        s->requeue_mark = NULL;
}

/* A write whose connection went before it was answered: it waits for the next one. */
static void redis_requeue(struct store_redis *s, struct redis_cmd *cmd)
{
    struct redis_centry *ce = redis_cache_find(s, cmd->key, cmd->klen, redis_clock(s));
    bool is_set = cmd->kind == REDIS_CMD_SET;
    if (ce != NULL && ce->pending != NULL) {
        struct redis_pending *p = ce->pending;
        if (is_set && !p->is_set) {
            p->is_set = true;
            p->e = cmd->e;
            p->e.flags = ce->e.flags;
        }
        if (p->requeued)
            p->deadline_ms = cmd->deadline_ms;      /* sent after p's: newer */
        return;
    }
    redis_pending_add(s, ce, cmd->key, cmd->klen, is_set, &cmd->e, cmd->deadline_ms, true);
}

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
    pthread_mutex_lock(&job->lock);
    job->finished = true;
    job->error = err;
    memcpy(job->addr, addr, sizeof addr);
    if (job->loop != NULL)
        ev_async_send(job->loop, job->done);
    redis_resolve_release(job);
    return NULL;
}

/* Starts resolving host for peer on a detached thread; false when none could start. */
static bool redis_resolve_start(struct store_redis *s, enum redis_peer peer, const char *host)
{
    struct redis_resolve *job = calloc(1, sizeof *job);
    if (job == NULL || pthread_mutex_init(&job->lock, NULL) != 0) {
        free(job);
        return false;
    }
    job->refs = 2;
    job->loop = s->loop;
    job->done = &s->resolve_async;
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
    s->resolving = job;
    s->resolving_peer = peer;
    s->resolved = false;
    return true;
}

/* The store lets go of a resolution still running (the thread frees it). */
static void redis_resolve_abandon(struct store_redis *s)
{
    struct redis_resolve *job = s->resolving;
    if (job == NULL)
        return;
    s->resolving = NULL;
    pthread_mutex_lock(&job->lock);
    job->loop = NULL;
    redis_resolve_release(job);
}

/*
 * The numeric address to connect peer to: host itself when numeric, else
 * the answer of a finished resolution of host.  NULL while a resolution
 * runs (the attempt is made again when it ends) or, with *why set, when
 * none can be started.
 */
static const char *redis_address(struct store_redis *s, enum redis_peer peer, const char *host, const char **why)
{
    *why = NULL;
    if (redis_is_numeric(host))
        return host;
    if (s->resolved && s->resolved_peer == peer && strcmp(s->resolved_host, host) == 0) {
        s->resolved = false;
        return s->resolved_addr;
    }
    if (s->resolving == NULL && !redis_resolve_start(s, peer, host))
        *why = "cannot start a thread to resolve the host name";
    return NULL;
}

/* ---- connection management ---- */

static void redis_schedule(struct store_redis *s, uint64_t delay_ms)
{
    ev_tstamp delay = clock_ms_to_s(delay_ms);
    if (ev_is_active(&s->reconnect_timer)) {
        if (ev_timer_remaining(s->loop, &s->reconnect_timer) <= delay)
            return;
        ev_timer_stop(s->loop, &s->reconnect_timer);
    }
    ev_timer_set(&s->reconnect_timer, delay, 0.);
    ev_timer_start(s->loop, &s->reconnect_timer);
}

/* The delay before the next attempt; the one after it doubles, up to reconnect_max. */
static uint64_t redis_next_backoff(struct store_redis *s)
{
    uint64_t d = s->backoff_ms;
    uint64_t max = s->conf->reconnect_max_ms > 0 ? s->conf->reconnect_max_ms : d;
    s->backoff_ms = d * 2 < max ? d * 2 : max;
    if (s->backoff_ms == 0)
        s->backoff_ms = 1;
    return d;
}

static void redis_backoff_reset(struct store_redis *s)
{
    s->backoff_ms = s->conf->reconnect_min_ms > 0 ? s->conf->reconnect_min_ms : 1;
}

static void redis_free_dead_data(struct store_redis *s)
{
    if (s->dead_ac != NULL) {
        redisAsyncContext *ac = s->dead_ac;
        s->dead_ac = NULL;
        redisAsyncFree(ac);
    }
}

static void redis_free_dead_sentinel(struct store_redis *s)
{
    if (s->dead_sac != NULL) {
        redisAsyncContext *ac = s->dead_sac;
        s->dead_sac = NULL;
        redisAsyncFree(ac);
    }
}

static void redis_on_drop_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct store_redis *s = w->data;
    (void)loop;
    (void)revents;
    redis_free_dead_data(s);
    redis_free_dead_sentinel(s);
}

static void redis_drop_later(struct store_redis *s)
{
    if (!ev_is_active(&s->drop_timer)) {
        ev_timer_set(&s->drop_timer, 0., 0.);
        ev_timer_start(s->loop, &s->drop_timer);
    }
}

/* Re-asks the Sentinels on the next attempt (the master may have moved). */
static void redis_sentinel_reask(struct store_redis *s)
{
    s->master_known = false;
    if (s->sac != NULL) {
        redis_free_dead_sentinel(s);    /* not ours to be inside of: only sac's callbacks run */
        s->dead_sac = s->sac;
        s->sac = NULL;
        ev_timer_stop(s->loop, &s->sentinel_timer);
        redis_drop_later(s);
    }
}

/*
 * The data connection is gone (hiredis frees it) or being dropped: nothing
 * more goes out on it, and the next attempt comes after the backoff.
 */
static void redis_data_lost(struct store_redis *s, const char *why)
{
    bool was_ready = s->ready;
    s->ac = NULL;
    s->ready = false;
    s->handshake_left = 0;
    ev_timer_stop(s->loop, &s->connect_timer);
    if (s->conf->redis.nsentinels > 0)
        redis_sentinel_reask(s);
    uint64_t delay = redis_next_backoff(s);
    log_ratelimited(&s->conn_limit, s->conf->log_interval_ms, LOG_LEVEL_WARN,
                    "redis %s: %s: %s; calls decided by the cache and the fallback, retrying in %llu ms",
                    s->addr_text, was_ready ? "connection lost" : "cannot connect", why,
                    (unsigned long long)delay);
    redis_schedule(s, delay);
}

/* Drops the live data connection (freed outside its callbacks) after a failure. */
static void redis_data_fail(struct store_redis *s, const char *why)
{
    if (s->ac == NULL)
        return;
    redis_free_dead_data(s);            /* never the one whose callback runs: that is s->ac */
    s->dead_ac = s->ac;
    redis_drop_later(s);
    redis_data_lost(s, why);
}

static void redis_data_ready(struct store_redis *s)
{
    ev_timer_stop(s->loop, &s->connect_timer);
    s->ready = true;
    redis_backoff_reset(s);
    if (s->ever_ready) {
        s->m->store_reconnects++;
        log_info("redis %s: connected again; %zu queued writes to send", s->addr_text, s->npending);
    } else {
        log_info("redis %s: connected", s->addr_text);
    }
    s->ever_ready = true;
    s->requeue_mark = NULL;
    redis_flush(s);
}

static void redis_on_connect(const redisAsyncContext *ac, int status)
{
    struct store_redis *s = ac->data;
    if (s->freeing)
        return;
    if (ac == s->dead_ac) {
        if (status != REDIS_OK)
            s->dead_ac = NULL;          /* hiredis frees it now */
        return;
    }
    if (ac == s->ac && status != REDIS_OK)
        redis_data_lost(s, ac->errstr != NULL ? ac->errstr : "connect failed");
}

static void redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct store_redis *s = ac->data;
    if (s->freeing)
        return;
    if (ac == s->dead_ac) {
        s->dead_ac = NULL;
        return;
    }
    if (ac == s->ac)
        redis_data_lost(s, status == REDIS_OK || ac->errstr == NULL ? "closed by the server" : ac->errstr);
}

/* One handshake reply; the last one makes the connection ready. */
static void redis_handshake_step(redisAsyncContext *ac, redisReply *reply, struct store_redis *s,
                                 const char *what, bool is_role)
{
    char why[REDIS_WHY_MAX];
    if (s->freeing || ac != s->ac || reply == NULL)
        return;                         /* a lost connection is handled by its disconnect */
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof why, "%s failed: %s", what, reply->str);
        if (strcmp(what, "AUTH") == 0 || strcmp(what, "SELECT") == 0)
            log_ratelimited(&s->error_limit, s->conf->log_interval_ms, LOG_LEVEL_ERROR, "redis %s: %s",
                            s->addr_text, why);
        redis_data_fail(s, why);
        return;
    }
    if (is_role && (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 ||
                    reply->element[0]->type != REDIS_REPLY_STRING ||
                    strcmp(reply->element[0]->str, "master") != 0)) {
        redis_data_fail(s, "not the master (any more): asking the Sentinels again");
        return;
    }
    if (s->handshake_left > 0 && --s->handshake_left == 0)
        redis_data_ready(s);
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
    struct store_redis *s = w->data;
    (void)loop;
    (void)revents;
    if (s->ac != NULL && !s->ready)
        redis_data_fail(s, "no answer within limits.connect_timeout");
}

/* Queues one handshake command on the data connection; false when hiredis refuses it. */
static bool redis_handshake_cmd(struct store_redis *s, redisCallbackFn *fn, int argc, const char **argv)
{
    size_t argvlen[REDIS_HANDSHAKE_ARGC_MAX];
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(s->ac, fn, s, argc, argv, argvlen) != REDIS_OK)
        return false;
    s->handshake_left++;
    return true;
}

/* Opens the data connection and queues the handshake; hiredis sends it once connected. */
static void redis_data_connect(struct store_redis *s)
{
    const struct conf_redis *rc = &s->conf->redis;
    redisAsyncContext *ac;

    redis_free_dead_data(s);
    if (rc->unix_path != NULL && rc->nsentinels == 0) {
        snprintf(s->addr_text, sizeof s->addr_text, "unix:%s", rc->unix_path);
        ac = redisAsyncConnectUnix(rc->unix_path);
    } else {
        const char *host = rc->nsentinels > 0 ? s->master_host : rc->host != NULL ? rc->host : "";
        int port = rc->nsentinels > 0 ? s->master_port : (int)rc->port;
        const char *why;
        snprintf(s->addr_text, sizeof s->addr_text, "%s:%d", host, port);
        const char *addr = redis_address(s, REDIS_PEER_DATA, host, &why);
        if (addr == NULL) {
            if (why != NULL)
                redis_data_lost(s, why);
            return;                     /* resolving: back here when done */
        }
        ac = redisAsyncConnect(addr, port);
    }
    if (ac == NULL || ac->err) {
        char why[REDIS_WHY_MAX];
        snprintf(why, sizeof why, "%s", ac != NULL && ac->errstr != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        redis_data_lost(s, why);
        return;
    }
    ac->data = s;
    redisLibevAttach(s->loop, ac);
    redisAsyncSetConnectCallback(ac, redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
    s->ac = ac;
    s->ready = false;
    s->handshake_left = 0;
    s->requeue_mark = NULL;

    /* AUTH [user] pass, SELECT db, then ROLE (Sentinel) or PING: replies come in this order */
    bool ok = true;
    if (rc->password != NULL) {
        const char *auth_user[] = { "AUTH", rc->username, rc->password };
        const char *auth[] = { "AUTH", rc->password };
        ok = rc->username != NULL ? redis_handshake_cmd(s, redis_on_auth, REDIS_ARGC(auth_user), auth_user)
                                  : redis_handshake_cmd(s, redis_on_auth, REDIS_ARGC(auth), auth);
    }
    if (ok && rc->db != 0) {
        char db[REDIS_NUM_MAX];
        snprintf(db, sizeof db, "%u", rc->db);
        const char *select_db[] = { "SELECT", db };
        ok = redis_handshake_cmd(s, redis_on_select, REDIS_ARGC(select_db), select_db);
    }
    const char *probe[] = { rc->nsentinels > 0 ? "ROLE" : "PING" };
    if (ok)
        ok = redis_handshake_cmd(s, rc->nsentinels > 0 ? redis_on_role : redis_on_ping, REDIS_ARGC(probe), probe);
    if (!ok) {
        redis_data_fail(s, "cannot queue the handshake");
        return;
    }
    ev_timer_set(&s->connect_timer, clock_ms_to_s(s->conf->connect_timeout_ms), 0.);
    ev_timer_start(s->loop, &s->connect_timer);
}

/* ---- Sentinel ---- */

/* Splits "host:port", "[v6]:port" or a bare host; -1 when it makes no sense. */
static int redis_split_addr(const char *text, char *host, size_t hlen, int *port, int default_port)
{
    const char *h = text, *p = NULL;
    size_t n;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return -1;
        h = text + 1;
        n = (size_t)(close - h);
        if (close[1] == ':')
            p = close + 2;
        else if (close[1] != '\0')
            return -1;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon != NULL && colon == strchr(text, ':')) {
            n = (size_t)(colon - text);
            p = colon + 1;
        } else {
            n = strlen(text);           /* no port, or a bare IPv6 address */
        }
    }
    if (n == 0 || n >= hlen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = default_port;
    if (p != NULL) {
        char *end;
        long v = strtol(p, &end, 10);
        if (*p == '\0' || *end != '\0' || v < 1 || v > REDIS_PORT_MAX)
            return -1;
        *port = (int)v;
    }
    return 0;
}

static void redis_sentinel_connect(struct store_redis *s);

/*
 * The Sentinel asked now failed: the next one is asked at once, until each
 * failed in this round; then the round starts again after the backoff.
 */
static void redis_sentinel_failed(struct store_redis *s, const char *why, bool drop)
{
    const char *name = s->conf->redis.sentinels[s->sentinel_index];
    if (drop && s->sac != NULL) {
        redis_free_dead_sentinel(s);
        s->dead_sac = s->sac;
        redis_drop_later(s);
    }
    s->sac = NULL;
    ev_timer_stop(s->loop, &s->sentinel_timer);
    log_ratelimited(&s->conn_limit, s->conf->log_interval_ms, LOG_LEVEL_WARN, "redis sentinel %s: %s", name, why);
    s->sentinel_index = (s->sentinel_index + 1) % s->conf->redis.nsentinels;
    if (++s->sentinel_attempts < s->conf->redis.nsentinels) {
        redis_schedule(s, 0);
    } else {
        s->sentinel_attempts = 0;
        redis_schedule(s, redis_next_backoff(s));
    }
}

/* The master is host:port: connect to it, leaving a connection to another one. */
static void redis_master_is(struct store_redis *s, const char *host, size_t hlen, int port)
{
    if (hlen == 0 || hlen >= sizeof s->master_host)
        return;
    bool same = s->master_known && strlen(s->master_host) == hlen && memcmp(s->master_host, host, hlen) == 0 &&
                s->master_port == port;
    memcpy(s->master_host, host, hlen);
    s->master_host[hlen] = '\0';
    s->master_known = true;
    if (same && s->ac != NULL)
        return;
    if (s->ac != NULL) {
        log_info("redis: the master is now %s:%d (was %s)", s->master_host, port, s->addr_text);
        redis_free_dead_data(s);
        s->dead_ac = s->ac;
        s->ac = NULL;
        s->ready = false;
        ev_timer_stop(s->loop, &s->connect_timer);
        redis_drop_later(s);
    }
    s->master_port = port;
    redis_schedule(s, 0);
}

static bool redis_parse_port(const char *text, size_t len, int *port)
{
    const char *p = text;
    uint64_t v;
    if (!redis_parse_u64(&p, text + len, REDIS_MS_DIGITS_MAX, &v) || p != text + len || v == 0 ||
        v > REDIS_PORT_MAX)
        return false;
    *port = (int)v;
    return true;
}

static void redis_sentinel_on_master(redisAsyncContext *ac, void *r, void *priv)
{
    struct store_redis *s = priv;
    redisReply *reply = r;
    int port;
    if (s->freeing || ac != s->sac || reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING && reply->element[1]->type == REDIS_REPLY_STRING &&
        reply->element[0]->len > 0 && reply->element[0]->len < sizeof s->master_host &&
        redis_parse_port(reply->element[1]->str, reply->element[1]->len, &port)) {
        ev_timer_stop(s->loop, &s->sentinel_timer);
        s->sentinel_attempts = 0;
        s->sentinel_answered = true;
        redis_master_is(s, reply->element[0]->str, reply->element[0]->len, port);
        return;
    }
    char why[REDIS_WHY_MAX];
    if (reply->type == REDIS_REPLY_ERROR)
        snprintf(why, sizeof why, "SENTINEL get-master-addr-by-name failed: %s", reply->str);
    else
        snprintf(why, sizeof why, "does not know master \"%s\"", s->conf->redis.master_name);
    redis_sentinel_failed(s, why, true);
}

/* "+switch-master" messages: "<name> <old ip> <old port> <new ip> <new port>". */
static void redis_sentinel_on_message(redisAsyncContext *ac, void *r, void *priv)
{
    struct store_redis *s = priv;
    redisReply *reply = r;
    if (s->freeing || ac != s->sac || reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
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
    const char *name = s->conf->redis.master_name;
    int port;
    if (strlen(name) != flen[0] || memcmp(name, field[0], flen[0]) != 0 ||
        !redis_parse_port(field[4], flen[4], &port))
        return;
    redis_backoff_reset(s);
    redis_master_is(s, field[3], flen[3], port);
}

static void redis_sentinel_on_connect(const redisAsyncContext *ac, int status)
{
    struct store_redis *s = ac->data;
    if (s->freeing)
        return;
    if (ac == s->dead_sac) {
        if (status != REDIS_OK)
            s->dead_sac = NULL;
        return;
    }
    if (ac == s->sac && status != REDIS_OK)
        redis_sentinel_failed(s, ac->errstr != NULL ? ac->errstr : "connect failed", false);
}

static void redis_sentinel_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct store_redis *s = ac->data;
    (void)status;
    if (s->freeing)
        return;
    if (ac == s->dead_sac) {
        s->dead_sac = NULL;
        return;
    }
    if (ac == s->sac)
        redis_sentinel_failed(s, "connection lost", false);
}

static void redis_on_sentinel_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct store_redis *s = w->data;
    (void)loop;
    (void)revents;
    if (s->sac != NULL && !s->sentinel_answered)
        redis_sentinel_failed(s, "no answer within limits.connect_timeout", true);
}

/*
 * Asks the current Sentinel where the master is, and stays subscribed to
 * its fail-over announcements on the same connection (the question is
 * answered before the subscription starts).
 */
static void redis_sentinel_connect(struct store_redis *s)
{
    const struct conf_redis *rc = &s->conf->redis;
    const char *text = rc->sentinels[s->sentinel_index];
    char host[REDIS_HOST_MAX];
    int port;

    redis_free_dead_sentinel(s);
    if (redis_split_addr(text, host, sizeof host, &port, REDIS_SENTINEL_DEFAULT_PORT) != 0) {
        redis_sentinel_failed(s, "not a host:port", false);
        return;
    }
    const char *why;
    const char *addr = redis_address(s, REDIS_PEER_SENTINEL, host, &why);
    if (addr == NULL) {
        if (why != NULL)
            redis_sentinel_failed(s, why, false);
        return;                         /* resolving: back here when done */
    }
    redisAsyncContext *ac = redisAsyncConnect(addr, port);
    if (ac == NULL || ac->err) {
        char reason[REDIS_WHY_MAX];
        snprintf(reason, sizeof reason, "%s", ac != NULL && ac->errstr != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        redis_sentinel_failed(s, reason, false);
        return;
    }
    ac->data = s;
    redisLibevAttach(s->loop, ac);
    redisAsyncSetConnectCallback(ac, redis_sentinel_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_sentinel_on_disconnect);
    s->sac = ac;
    s->sentinel_answered = false;
    const char *ask[] = { "SENTINEL", "get-master-addr-by-name", rc->master_name };
    const size_t asklen[] = { strlen(ask[0]), strlen(ask[1]), strlen(ask[2]) };
    const char *sub[] = { "SUBSCRIBE", REDIS_SWITCH_CHANNEL };
    const size_t sublen[] = { strlen(sub[0]), strlen(sub[1]) };
    if (redisAsyncCommandArgv(ac, redis_sentinel_on_master, s, REDIS_ARGC(ask), ask, asklen) != REDIS_OK ||
        redisAsyncCommandArgv(ac, redis_sentinel_on_message, s, REDIS_ARGC(sub), sub, sublen) != REDIS_OK) {
        redis_sentinel_failed(s, "cannot queue the question", true);
        return;
    }
    ev_timer_set(&s->sentinel_timer, clock_ms_to_s(s->conf->connect_timeout_ms), 0.);
    ev_timer_start(s->loop, &s->sentinel_timer);
}

/* The one place connections start: at open, and after a backoff or a switch. */
static void redis_connect_missing(struct store_redis *s)
{
    if (s->freeing)
        return;
    if (s->conf->redis.nsentinels > 0) {
        if (s->sac == NULL)
            redis_sentinel_connect(s);  /* its answer names the master, then we come back here */
        else if (s->ac == NULL && s->master_known)
            redis_data_connect(s);
        return;
    }
    if (s->ac == NULL)
        redis_data_connect(s);
}

/* A resolution ended: the attempt it held up goes on (or fails like a refused connect). */
static void redis_on_resolved(struct ev_loop *loop, ev_async *w, int revents)
{
    struct store_redis *s = w->data;
    struct redis_resolve *job = s->resolving;
    (void)loop;
    (void)revents;
    if (job == NULL)
        return;
    pthread_mutex_lock(&job->lock);
    if (!job->finished) {
        pthread_mutex_unlock(&job->lock);
        return;
    }
    int err = job->error;
    enum redis_peer peer = s->resolving_peer;
    snprintf(s->resolved_host, sizeof s->resolved_host, "%s", job->host);
    memcpy(s->resolved_addr, job->addr, sizeof s->resolved_addr);
    s->resolving = NULL;
    redis_resolve_release(job);
    if (err != 0) {
        char why[REDIS_WHY_MAX];
        snprintf(why, sizeof why, "cannot resolve %s: %s", s->resolved_host, gai_strerror(err));
        if (peer == REDIS_PEER_DATA)
            redis_data_lost(s, why);
        else
            redis_sentinel_failed(s, why, false);
        return;
    }
    s->resolved = true;
    s->resolved_peer = peer;
    redis_connect_missing(s);
}

static void redis_on_reconnect_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    redis_connect_missing(w->data);
}

/* ---- replies ---- */

static bool redis_is_error(const redisReply *reply, const char *code)
{
    size_t n = strlen(code);
    return reply->type == REDIS_REPLY_ERROR && reply->len >= n && strncmp(reply->str, code, n) == 0 &&
           (reply->len == n || reply->str[n] == ' ');
}

/* Counts an error reply; a demoted master (READONLY) makes us look for the new one. */
static void redis_reply_error(struct store_redis *s, redisAsyncContext *ac, const redisReply *reply,
                              const char *what)
{
    s->m->store_errors++;
    log_ratelimited(&s->error_limit, s->conf->log_interval_ms, LOG_LEVEL_WARN, "redis %s: %s failed: %s",
                    s->addr_text, what, reply->str);
    if (redis_is_error(reply, "READONLY") && ac == s->ac)
        redis_data_fail(s, "the server is a replica now (READONLY)");
}

/* Common end of every data reply: the command leaves the in-flight list. */
static struct store_redis *redis_reply_begin(struct redis_cmd *cmd)
{
    struct store_redis *s = cmd->s;
    redis_inflight_unlink(s, cmd);
    return s;
}

static void redis_reply_end(struct store_redis *s, struct redis_cmd *cmd)
{
    free(cmd);
    if (!s->freeing)
        redis_flush(s);
}

static void redis_on_get(redisAsyncContext *ac, void *r, void *priv)
{
    struct redis_cmd *cmd = priv;
    struct store_redis *s = redis_reply_begin(cmd);
    redisReply *reply = r;
    struct store_entry e;
    char ktext[REDIS_LOG_KEY_TEXT_MAX];

    if (s->freeing) {
        redis_wait_unlink(s, cmd);
        free(cmd);
        return;
    }
    if (reply == NULL) {
        redis_answer(s, cmd, NULL);     /* the connection went */
    } else if (reply->type == REDIS_REPLY_NIL) {
        s->m->store_misses++;
        redis_answer(s, cmd, NULL);
    } else if (reply->type == REDIS_REPLY_STRING) {
        if (redis_value_parse(reply->str, reply->len, &e) != 0) {
            s->m->store_errors++;
            log_ratelimited(&s->error_limit, s->conf->log_interval_ms, LOG_LEVEL_WARN,
                            "redis %s: malformed value for call %s: taken as unknown", s->addr_text,
                            redis_log_quote(cmd->key, cmd->klen, ktext, sizeof ktext));
            redis_answer(s, cmd, NULL);
        } else {
            s->m->store_hits++;
            redis_learn(s, cmd->key, cmd->klen, &e, &e);    /* a late answer still fills the cache */
            redis_answer(s, cmd, &e);
        }
    } else if (reply->type == REDIS_REPLY_ERROR) {
        redis_reply_error(s, ac, reply, "GET");
        redis_answer(s, cmd, NULL);
    } else {
        s->m->store_errors++;
        redis_answer(s, cmd, NULL);
    }
    redis_reply_end(s, cmd);
}

static void redis_on_set(redisAsyncContext *ac, void *r, void *priv)
{
    struct redis_cmd *cmd = priv;
    struct store_redis *s = redis_reply_begin(cmd);
    redisReply *reply = r;
    struct store_entry winner;
    char ktext[REDIS_LOG_KEY_TEXT_MAX], rtext[REDIS_LOG_KEY_TEXT_MAX];

    if (s->freeing) {
        free(cmd);
        return;
    }
    if (reply == NULL && cmd->oversized) {
        /* the call exists with a value too large to read: kept local, as for a malformed one */
    } else if (reply == NULL) {
        redis_requeue(s, cmd);          /* NX makes sending it again harmless */
    } else if (reply->type == REDIS_REPLY_STRING) {
        /* the call existed: the first writer's decision wins over ours */
        if (redis_value_parse(reply->str, reply->len, &winner) != 0) {
            s->m->store_errors++;
            log_ratelimited(&s->error_limit, s->conf->log_interval_ms, LOG_LEVEL_WARN,
                            "redis %s: malformed value for call %s: kept the local decision",
                            s->addr_text, redis_log_quote(cmd->key, cmd->klen, ktext, sizeof ktext));
        } else if (!redis_same_origin(&winner, &cmd->e)) {
            /* the route name is another writer's: any byte but NUL */
            log_debug("redis %s: call %s was stored first elsewhere (route %s): following it", s->addr_text,
                      redis_log_quote(cmd->key, cmd->klen, ktext, sizeof ktext),
                      redis_log_quote(winner.route, strlen(winner.route), rtext, sizeof rtext));
            redis_learn(s, cmd->key, cmd->klen, &winner, NULL);
        }
    } else if (reply->type == REDIS_REPLY_ERROR) {
        bool readonly = redis_is_error(reply, "READONLY");
        redis_reply_error(s, ac, reply, "SET");
        if (readonly) {
            redis_requeue(s, cmd);
        } else {
            redis_mark_lost(redis_cache_find(s, cmd->key, cmd->klen, redis_clock(s)), true);
            redis_count_lost(s);
        }
    }
    redis_reply_end(s, cmd);
}

static void redis_on_expire(redisAsyncContext *ac, void *r, void *priv)
{
    struct redis_cmd *cmd = priv;
    struct store_redis *s = redis_reply_begin(cmd);
    redisReply *reply = r;

    if (s->freeing) {
        free(cmd);
        return;
    }
    if (reply == NULL && cmd->oversized) {
        redis_mark_lost(redis_cache_find(s, cmd->key, cmd->klen, redis_clock(s)), false);
    } else if (reply == NULL) {
        redis_requeue(s, cmd);
    } else if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        /* Redis lost the call (restarted, evicted): store it again from the cache */
        struct redis_centry *ce = redis_cache_find(s, cmd->key, cmd->klen, redis_clock(s));
        if (ce != NULL && ce->pending != NULL) {
            ce->pending->is_set = true;         /* a newer write waits: it becomes the SET */
            ce->pending->e = ce->e;
        } else if (ce != NULL) {
            /* the latest TTL asked for (an update may have come after this EXPIRE) */
            ce->ttl_state = REDIS_TTL_SET;
            ce->redis_flags = ce->e.flags;
            redis_write(s, ce, ce->key, ce->klen, true, &ce->e, ce->redis_deadline_ms);
        }
    } else if (reply->type == REDIS_REPLY_ERROR) {
        bool readonly = redis_is_error(reply, "READONLY");
        redis_reply_error(s, ac, reply, "EXPIRE");
        if (readonly)
            redis_requeue(s, cmd);
        else
            redis_mark_lost(redis_cache_find(s, cmd->key, cmd->klen, redis_clock(s)), false);
    }
    redis_reply_end(s, cmd);
}

/* ---- timeouts ---- */

/* No reply for this long means the connection is stuck: drop it. */
static uint64_t redis_stall_ms(const struct store_redis *s)
{
    uint64_t t = s->conf->connect_timeout_ms;
    return t > s->conf->redis.timeout_ms ? t : s->conf->redis.timeout_ms;
}

/* Arms the timer for the earliest GET deadline or stall limit (sooner than it is set for, if need be). */
static void redis_arm_query_timer(struct store_redis *s)
{
    if (s->freeing)
        return;
    uint64_t due = UINT64_MAX;
    if (s->wait_head != NULL && s->conf->redis.timeout_ms > 0)
        due = s->wait_head->sent_mono_ms + s->conf->redis.timeout_ms;
    if (s->ac != NULL && s->inflight_head != NULL && redis_stall_ms(s) > 0 &&
        s->inflight_head->sent_mono_ms + redis_stall_ms(s) < due)
        due = s->inflight_head->sent_mono_ms + redis_stall_ms(s);
    if (due == UINT64_MAX)
        return;
    uint64_t now = clock_mono_ms();
    ev_tstamp delay = clock_ms_to_s(due > now ? due - now : 0);
    if (ev_is_active(&s->query_timer)) {
        if (ev_timer_remaining(s->loop, &s->query_timer) <= delay)
            return;
        ev_timer_stop(s->loop, &s->query_timer);
    }
    ev_timer_set(&s->query_timer, delay, 0.);
    ev_timer_start(s->loop, &s->query_timer);
}

/*
 * GETs older than timeout_ms are answered NULL now (their late replies
 * still fill the cache); a connection whose oldest command waited longer
 * than the stall limit is dropped, which answers and requeues the rest.
 */
static void redis_on_query_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct store_redis *s = w->data;
    uint64_t now = clock_mono_ms();
    (void)loop;
    (void)revents;
    if (s->conf->redis.timeout_ms > 0) {
        while (s->wait_head != NULL && s->wait_head->sent_mono_ms + s->conf->redis.timeout_ms <= now) {
            s->m->store_timeouts++;
            redis_answer(s, s->wait_head, NULL);
        }
    }
    if (s->ac != NULL && s->inflight_head != NULL && redis_stall_ms(s) > 0 &&
        s->inflight_head->sent_mono_ms + redis_stall_ms(s) <= now)
        redis_data_fail(s, "no reply within limits.connect_timeout");
    redis_arm_query_timer(s);
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
 * is ever buffered beyond the cap.  The command whose reply it was counts
 * as answered with a malformed value: it is not sent again (it would only
 * be dropped again).  The adapter's watchers are not touched.
 */
static void redis_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct store_redis *s = w->data;
    size_t max = s->conf->redis.max_reply_bytes, n;
    char why[REDIS_WHY_MAX + REDIS_LOG_KEY_TEXT_MAX], ktext[REDIS_LOG_KEY_TEXT_MAX];
    (void)loop;
    (void)revents;
    if (max == 0 || s->freeing)
        return;
    if (s->ac != NULL && (n = redis_unfinished_bytes(s->ac)) > max) {
        /* replies come in order: once ready, the one being read is the oldest command's */
        struct redis_cmd *cmd = s->ready ? s->inflight_head : NULL;
        s->m->store_errors++;
        if (cmd != NULL) {
            cmd->oversized = true;      /* not sent again: it would only be dropped again */
            snprintf(why, sizeof why, "the reply for call %s is longer than store.redis.max_reply_bytes "
                     "(%zu bytes of it read)", redis_log_quote(cmd->key, cmd->klen, ktext, sizeof ktext), n);
        } else {
            snprintf(why, sizeof why, "a reply longer than store.redis.max_reply_bytes (%zu bytes of it read)", n);
        }
        redis_data_fail(s, why);
    }
    if (s->sac != NULL && (n = redis_unfinished_bytes(s->sac)) > max) {
        s->m->store_errors++;
        snprintf(why, sizeof why, "a reply longer than store.redis.max_reply_bytes (%zu bytes of it read)", n);
        redis_sentinel_failed(s, why, true);
    }
}

/* ---- store_ops ---- */

static struct store_redis *redis_of(struct store *base)
{
    return (struct store_redis *)(void *)base;
}

static int store_redis_get(struct store *base, const char *key, size_t klen, uint64_t now_ms,
                           struct store_entry *out)
{
    struct store_redis *s = redis_of(base);
    redis_touch_clock(s, now_ms);
    struct redis_centry *ce = redis_cache_find(s, key, klen, now_ms);
    if (ce == NULL) {
        s->m->store_cache_misses++;
        return 0;
    }
    s->m->store_cache_hits++;
    redis_cache_touch(s, ce);
    *out = ce->e;
    return 1;
}

/*
 * put() answers at once from the cache: 0 with *winner when the cache
 * already knows the call, else 1 (stored here, written in the background).
 * When Redis turns out to know the call already (another instance was
 * first), its decision replaces ours in the cache for the rest of the call;
 * the packet that made this put() was routed by ours.
 */
static int store_redis_put(struct store *base, const char *key, size_t klen, const struct store_entry *e,
                           uint64_t ttl_ms, uint64_t now_ms, struct store_entry *winner)
{
    struct store_redis *s = redis_of(base);
    redis_touch_clock(s, now_ms);
    uint64_t deadline = now_ms + ttl_ms;
    struct redis_centry *ce = redis_cache_find(s, key, klen, now_ms);
    if (ce != NULL) {
        if (winner != NULL)
            *winner = ce->e;
        return 0;
    }
    if (redis_cache_on(s)) {
        ce = redis_cache_insert(s, key, klen, e, deadline);
        if (ce == NULL)
            return -1;
        ce->ttl_state = REDIS_TTL_SET;
        ce->redis_deadline_ms = deadline;
        ce->redis_flags = e->flags;
    }
    redis_write(s, ce, key, klen, true, e, deadline);
    return 1;
}

/*
 * Records the packet in the cache; Redis hears of it only when the flags
 * change or the TTL it holds would run out too early (see the top).
 * Without the call in the cache, only a flag change is sent.
 */
static int store_redis_update(struct store *base, const char *key, size_t klen, uint64_t ttl_ms, unsigned set,
                              unsigned clear, uint64_t last_hash, uint64_t now_ms)
{
    struct store_redis *s = redis_of(base);
    redis_touch_clock(s, now_ms);
    uint64_t deadline = now_ms + ttl_ms;
    struct redis_centry *ce = redis_cache_find(s, key, klen, now_ms);
    if (ce == NULL) {
        if ((set | clear) & REDIS_TTL_FLAGS)
            redis_write(s, NULL, key, klen, false, NULL, deadline);
        return 0;
    }
    unsigned flags = (ce->e.flags | set) & ~clear;
    ce->e.flags = flags;
    ce->e.last_hash = last_hash;
    ce->expires_ms = deadline;
    redis_cache_touch(s, ce);

    bool is_set = false, send;
    switch (ce->ttl_state) {
    case REDIS_TTL_UNWRITTEN:
        is_set = send = true;
        break;
    case REDIS_TTL_RESEND:
        send = true;
        break;
    case REDIS_TTL_ADOPT:
        /* learned by GET: the TTL Redis holds is unknown here, so set it once */
        send = true;
        break;
    case REDIS_TTL_SET:
    default:
        send = ((flags ^ ce->redis_flags) & REDIS_TTL_FLAGS) != 0 ||
               ce->redis_deadline_ms < now_ms + ttl_ms / REDIS_REFRESH_DIVISOR;
        break;
    }
    if (!send)
        return 1;
    /* what Redis holds: only what was last sent, so activity refreshes it */
    ce->ttl_state = REDIS_TTL_SET;
    ce->redis_flags = flags;
    ce->redis_deadline_ms = deadline;
    redis_write(s, ce, ce->key, ce->klen, is_set, &ce->e, deadline);
    return 1;
}

/* Bounded sweep of the cache: REDIS_EXPIRE_SCAN buckets per call, round robin. */
static size_t store_redis_expire(struct store *base, uint64_t now_ms)
{
    struct store_redis *s = redis_of(base);
    size_t removed = 0;
    redis_touch_clock(s, now_ms);
    if (!redis_cache_on(s))
        return 0;
    size_t scan = s->nbuckets < REDIS_EXPIRE_SCAN ? s->nbuckets : REDIS_EXPIRE_SCAN;
    for (size_t i = 0; i < scan; i++) {
        struct redis_centry *ce = s->buckets[s->expire_cursor++ & (s->nbuckets - 1)];
        while (ce != NULL) {
            struct redis_centry *next = ce->hnext;
            if (ce->expires_ms <= now_ms) {
                redis_cache_remove(s, ce);
                removed++;
            }
            ce = next;
        }
    }
    return removed;
}

static size_t store_redis_count(struct store *base)
{
    return redis_of(base)->ncached;
}

static int store_redis_query(struct store *base, const char *key, size_t klen, uint64_t now_ms)
{
    struct store_redis *s = redis_of(base);
    redis_touch_clock(s, now_ms);
    if (s->answer == NULL || !redis_can_send(s)) {
        s->m->store_unavailable++;
        return -1;
    }
    struct redis_cmd *cmd = redis_cmd_new(s, REDIS_CMD_GET, key, klen);
    size_t rklen = 0;
    const char *rkey = cmd != NULL ? redis_key(s, key, klen, &rklen) : NULL;
    const char *argv[] = { "GET", rkey };
    const size_t argvlen[] = { strlen(argv[0]), rklen };
    if (rkey == NULL || redis_send(s, cmd, redis_on_get, REDIS_ARGC(argv), argv, argvlen) != 0) {
        free(cmd);
        s->m->store_unavailable++;
        return -1;
    }
    cmd->waiting = true;
    cmd->wprev = s->wait_tail;
    if (s->wait_tail != NULL)
        s->wait_tail->wnext = cmd;
    else
        s->wait_head = cmd;
    s->wait_tail = cmd;
    s->m->store_lookups++;
    redis_arm_query_timer(s);
    return 0;
}

static void store_redis_set_answer_fn(struct store *base, store_answer_fn fn, void *arg)
{
    struct store_redis *s = redis_of(base);
    s->answer = fn;
    s->answer_arg = arg;
}

/* Disconnects (hiredis runs the callbacks left, which only free) and frees everything. */
static size_t store_redis_pending(struct store *base)
{
    struct store_redis *s = redis_of(base);
    return s->npending + s->ninflight;
}

static void store_redis_free(struct store *base)
{
    struct store_redis *s = redis_of(base);
    s->freeing = true;
    /* decisions never written: the drain ran out of time, or Redis was away */
    s->m->store_lost_writes += s->npending;
    ev_timer_stop(s->loop, &s->reconnect_timer);
    ev_timer_stop(s->loop, &s->drop_timer);
    ev_timer_stop(s->loop, &s->connect_timer);
    ev_timer_stop(s->loop, &s->sentinel_timer);
    ev_timer_stop(s->loop, &s->query_timer);
    ev_ref(s->loop);                    /* taken back at open */
    ev_prepare_stop(s->loop, &s->reply_watch);
    ev_async_stop(s->loop, &s->resolve_async);
    redis_resolve_abandon(s);
    redis_free_dead_data(s);
    redis_free_dead_sentinel(s);
    if (s->ac != NULL) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac);
    }
    if (s->sac != NULL) {
        redisAsyncContext *ac = s->sac;
        s->sac = NULL;
        redisAsyncFree(ac);
    }
    while (s->pend_head != NULL) {
        struct redis_pending *p = s->pend_head;
        redis_pending_unlink(s, p);
        free(p);
    }
    while (s->oldest != NULL)
        redis_cache_remove(s, s->oldest);
    free(s->buckets);
    free(s->keybuf);
    free(s);
}

static const struct store_ops store_redis_ops = {
    .name = "redis",
    .get = store_redis_get,
    .put = store_redis_put,
    .update = store_redis_update,
    .expire = store_redis_expire,
    .count = store_redis_count,
    .free = store_redis_free,
    .query = store_redis_query,
    .set_answer_fn = store_redis_set_answer_fn,
    .pending = store_redis_pending,
};

struct store *store_redis_new(const struct conf *conf, struct ev_loop *loop, struct metrics *m)
{
    const struct conf_redis *rc = &conf->redis;
    if (loop == NULL) {
        log_error("redis store: needs the worker's event loop");
        return NULL;
    }
    if (rc->nsentinels > 0 ? rc->master_name == NULL : rc->host == NULL && rc->unix_path == NULL) {
        log_error("redis store: %s", rc->nsentinels > 0 ? "Sentinels given without a master name"
                                                        : "neither a host nor a unix socket given");
        return NULL;
    }
    struct store_redis *s = calloc(1, sizeof *s);
    if (s == NULL) {
        log_error("redis store: out of memory");
        return NULL;
    }
    s->base.ops = &store_redis_ops;
    s->conf = conf;
    s->loop = loop;
    s->m = m != NULL ? m : &s->own_metrics;
    redis_touch_clock(s, clock_mono_ms());
    if (conf->cache_entries > 0) {
        size_t n = REDIS_BUCKETS_MIN;
        while (n < conf->cache_entries && n <= SIZE_MAX / 4)
            n *= 2;
        s->buckets = calloc(n, sizeof *s->buckets);
        if (s->buckets == NULL) {
            log_error("redis store: out of memory for a cache of %zu calls", conf->cache_entries);
            free(s);
            return NULL;
        }
        s->nbuckets = n;
    }
    hash_random_key(s->hash_key);
    redis_backoff_reset(s);
    snprintf(s->addr_text, sizeof s->addr_text, "%s",
             rc->nsentinels > 0 ? rc->master_name : rc->unix_path != NULL ? rc->unix_path : rc->host);
    ev_timer_init(&s->reconnect_timer, redis_on_reconnect_timer, 0., 0.);
    ev_timer_init(&s->drop_timer, redis_on_drop_timer, 0., 0.);
    ev_timer_init(&s->connect_timer, redis_on_connect_timer, 0., 0.);
    ev_timer_init(&s->sentinel_timer, redis_on_sentinel_timer, 0., 0.);
    ev_timer_init(&s->query_timer, redis_on_query_timer, 0., 0.);
    s->reconnect_timer.data = s->drop_timer.data = s->connect_timer.data = s;
    s->sentinel_timer.data = s->query_timer.data = s;
    ev_async_init(&s->resolve_async, redis_on_resolved);
    s->resolve_async.data = s;
    ev_async_start(loop, &s->resolve_async);
    ev_prepare_init(&s->reply_watch, redis_on_prepare);
    s->reply_watch.data = s;
    ev_prepare_start(loop, &s->reply_watch);
    ev_unref(loop);                     /* the watch alone keeps no loop running */
    redis_connect_missing(s);           /* never waits: the loop completes it */
    return &s->base;
}

/* ---- start-up check (synchronous, before the workers run) ---- */

struct redis_check {
    const struct conf *conf;
    redisContext *c;
    char where[REDIS_ADDR_TEXT_MAX];    /* "redis 127.0.0.1:6379" */
    char *errbuf;
    size_t errlen;
};

static struct timeval redis_timeval(uint64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / CLOCK_MS_PER_S);
    tv.tv_usec = (suseconds_t)(ms % CLOCK_MS_PER_S * CLOCK_US_PER_MS);
    return tv;
}

/* Errors that pass by themselves: the server is starting, busy or between masters. */
static bool redis_transient(const redisReply *reply)
{
    return redis_is_error(reply, "LOADING") || redis_is_error(reply, "BUSY") ||
           redis_is_error(reply, "MASTERDOWN") || redis_is_error(reply, "TRYAGAIN");
}

static int redis_check_unreachable(struct redis_check *k, const char *why)
{
    snprintf(k->errbuf, k->errlen, "%s: %s", k->where, why);
    log_warn("%s: %s: starting anyway; calls are decided by the cache and the fallback until it answers",
             k->where, why);
    return 0;
}

/*
 * Runs one command of the check: 1 with *out when it succeeded, 0 when the
 * server could not be asked (warned), -1 when it refused (reason in errbuf).
 */
static int redis_check_cmd(struct redis_check *k, const char *what, int argc, const char **argv,
                           redisReply **out)
{
    size_t argvlen[REDIS_CHECK_ARGC_MAX];
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    redisReply *reply = redisCommandArgv(k->c, argc, argv, argvlen);
    *out = NULL;
    if (reply == NULL) {
        char why[REDIS_WHY_MAX];
        snprintf(why, sizeof why, "%s: %s", what, k->c->errstr);
        return redis_check_unreachable(k, why);
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (redis_transient(reply)) {
            char why[REDIS_WHY_MAX];
            snprintf(why, sizeof why, "%s: %s", what, reply->str);
            freeReplyObject(reply);
            return redis_check_unreachable(k, why);
        }
        if (redis_is_error(reply, "ERR") && strstr(reply->str, "syntax") != NULL &&
            strcmp(what, REDIS_CHECK_SET) == 0)
            snprintf(k->errbuf, k->errlen, "%s: needs Redis 7.0 or later (%s failed: %s)", k->where, what,
                     reply->str);
        else
            snprintf(k->errbuf, k->errlen, "%s: %s failed: %s", k->where, what, reply->str);
        freeReplyObject(reply);
        return -1;
    }
    *out = reply;
    return 1;
}

/* Asks the Sentinels in turn for the master: 1 and host/port, 0 (none reachable), -1. */
static int redis_check_sentinels(const struct conf *conf, char *host, size_t hlen, int *port, char *errbuf,
                                 size_t errlen)
{
    const struct conf_redis *rc = &conf->redis;
    struct timeval tv = redis_timeval(conf->connect_timeout_ms);
    char refused[REDIS_ADDR_TEXT_MAX * 2] = "";
    for (size_t i = 0; i < rc->nsentinels; i++) {
        char shost[REDIS_HOST_MAX];
        int sport;
        if (redis_split_addr(rc->sentinels[i], shost, sizeof shost, &sport, REDIS_SENTINEL_DEFAULT_PORT) != 0) {
            snprintf(errbuf, errlen, "redis sentinel %s: not a host:port", rc->sentinels[i]);
            return -1;
        }
        redisContext *c = redisConnectWithTimeout(shost, sport, tv);
        if (c == NULL || c->err) {
            log_warn("redis sentinel %s: %s", rc->sentinels[i], c != NULL ? c->errstr : "out of memory");
            redisFree(c);
            continue;
        }
        redisSetTimeout(c, tv);
        redisReply *reply = redisCommand(c, "SENTINEL get-master-addr-by-name %s", rc->master_name);
        if (reply == NULL) {
            log_warn("redis sentinel %s: %s", rc->sentinels[i], c->errstr);
        } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                   reply->element[0]->type == REDIS_REPLY_STRING &&
                   reply->element[1]->type == REDIS_REPLY_STRING && reply->element[0]->len < hlen &&
                   redis_parse_port(reply->element[1]->str, reply->element[1]->len, port)) {
            memcpy(host, reply->element[0]->str, reply->element[0]->len + 1);
            freeReplyObject(reply);
            redisFree(c);
            return 1;
        } else if (reply->type == REDIS_REPLY_ERROR) {
            snprintf(refused, sizeof refused, "redis sentinel %s: SENTINEL get-master-addr-by-name failed: %s",
                     rc->sentinels[i], reply->str);
        } else {
            snprintf(refused, sizeof refused, "redis sentinel %s: does not know master \"%s\"",
                     rc->sentinels[i], rc->master_name);
        }
        freeReplyObject(reply);
        redisFree(c);
    }
    if (refused[0] != '\0') {
        snprintf(errbuf, errlen, "%s", refused);
        return -1;
    }
    snprintf(errbuf, errlen, "redis: no Sentinel reachable");
    log_warn("redis: no Sentinel reachable: starting anyway; calls are decided by the cache and the fallback "
             "until one answers");
    return 0;
}

int store_redis_check(const struct conf *conf, char *errbuf, size_t errlen)
{
    const struct conf_redis *rc = &conf->redis;
    struct timeval tv = redis_timeval(conf->connect_timeout_ms);
    struct redis_check k = { .conf = conf, .errbuf = errbuf, .errlen = errlen };
    char host[REDIS_HOST_MAX];
    int port = (int)rc->port;
    redisReply *reply;
    int st;

    if (errbuf == NULL)
        k.errlen = 0;
    if (rc->nsentinels > 0) {
        if (rc->master_name == NULL) {
            snprintf(errbuf, k.errlen, "redis: Sentinels given without a master name");
            return -1;
        }
        st = redis_check_sentinels(conf, host, sizeof host, &port, errbuf, k.errlen);
        if (st <= 0)
            return st;
        snprintf(k.where, sizeof k.where, "redis %s:%d", host, port);
        k.c = redisConnectWithTimeout(host, port, tv);
    } else if (rc->unix_path != NULL) {
        snprintf(k.where, sizeof k.where, "redis unix:%s", rc->unix_path);
        k.c = redisConnectUnixWithTimeout(rc->unix_path, tv);
    } else if (rc->host != NULL) {
        snprintf(k.where, sizeof k.where, "redis %s:%u", rc->host, rc->port);
        k.c = redisConnectWithTimeout(rc->host, port, tv);
    } else {
        snprintf(errbuf, k.errlen, "redis: neither a host nor a unix socket given");
        return -1;
    }
    if (k.c == NULL || k.c->err) {
        st = redis_check_unreachable(&k, k.c != NULL ? k.c->errstr : "out of memory");
        redisFree(k.c);
        return st;
    }
    redisSetTimeout(k.c, tv);

    char db[REDIS_NUM_MAX], key[REDIS_HOST_MAX];
    snprintf(db, sizeof db, "%u", rc->db);
    snprintf(key, sizeof key, "%s%s", rc->prefix != NULL ? rc->prefix : "", REDIS_CHECK_KEY);
    const char *auth_user[] = { "AUTH", rc->username, rc->password };
    const char *auth[] = { "AUTH", rc->password };
    const char *select_db[] = { "SELECT", db };
    const char *ping[] = { "PING" };
    /* the commands the store sends, on a key of its own prefix (ACL key patterns) */
    const char *set[] = { "SET", key, "1", "NX", "EX", REDIS_CHECK_TTL_S, "GET" };
    const char *expire[] = { "EXPIRE", key, REDIS_CHECK_TTL_S };
    const char *role[] = { "ROLE" };

    st = 1;
    if (rc->password != NULL && rc->username != NULL)
        st = redis_check_cmd(&k, "AUTH", REDIS_ARGC(auth_user), auth_user, &reply);
    else if (rc->password != NULL)
        st = redis_check_cmd(&k, "AUTH", REDIS_ARGC(auth), auth, &reply);
    if (st == 1 && rc->password != NULL)
        freeReplyObject(reply);
    if (st == 1 && rc->db != 0 && (st = redis_check_cmd(&k, "SELECT", REDIS_ARGC(select_db), select_db, &reply)) == 1)
        freeReplyObject(reply);
    if (st == 1 && (st = redis_check_cmd(&k, "PING", REDIS_ARGC(ping), ping, &reply)) == 1)
        freeReplyObject(reply);
    if (st == 1 && rc->nsentinels > 0 && (st = redis_check_cmd(&k, "ROLE", REDIS_ARGC(role), role, &reply)) == 1) {
        bool master = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                      reply->element[0]->type == REDIS_REPLY_STRING &&
                      strcmp(reply->element[0]->str, "master") == 0;
        freeReplyObject(reply);
        if (!master)
            st = redis_check_unreachable(&k, "the Sentinels' master is not a master (fail-over under way?)");
    }
    if (st == 1 && (st = redis_check_cmd(&k, REDIS_CHECK_SET, REDIS_ARGC(set), set, &reply)) == 1)
        freeReplyObject(reply);
    if (st == 1 && (st = redis_check_cmd(&k, "EXPIRE", REDIS_ARGC(expire), expire, &reply)) == 1)
        freeReplyObject(reply);
    if (st == 1) {
        snprintf(errbuf, k.errlen, "%s: ok", k.where);
        st = 0;
    }
    redisFree(k.c);
    return st;
}
