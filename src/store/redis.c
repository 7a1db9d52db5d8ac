/*
 * redis.c - the Redis back-end of the call context store, for several
 * heprouter instances (or workers) sharing their calls: what the store
 * means (the cache, the commands, their answers).  Its connections are the
 * link's (redis_link.c), the value's text the codec's (redis_value.c), the
 * start-up check redis_check.c's.
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
 * Value:  1|<flags>|<first seen>|<origin method>|<route name> (redis_value.h)
 * A value that does not parse exactly so is a malformed value: the call is
 * unknown and store_errors counts it.  The flags are those the decision had
 * when it was written; later flag changes (a call ending, then restarting)
 * show in Redis as the key's TTL only.
 *
 * Commands:
 *   put()     SET key value NX EX ttl GET (Redis >= 7.0): stores the
 *             decision unless the call exists, and returns the existing one
 *             in the same round trip.  put() itself returns 1 at once (the
 *             decision is in the cache and the packet is routed by it); when
 *             the reply shows another instance was first, its value replaces
 *             the cache entry, so the rest of the call follows the winner.
 *   query()   GET key, for a call the cache does not know.
 *   claim()   SET <prefix>dedup:<hex of the key> 1 NX PX ttl, a shared dedup
 *             window: "OK" claimed, nil another instance was first;
 *             answered like a GET (timeout_ms, the connection's end).
 *   update()  EXPIRE key ttl, only when the end of the call changes (ended / reset) or
 *             when less than half of the TTL Redis holds (as last set) is
 *             left; nothing otherwise.  An EXPIRE that finds no key (Redis
 *             lost it, e.g. restarted without persistence) sends the SET
 *             again.
 *   connect   the link's handshake (redis_link.c) before anything else on
 *             each new connection.
 *
 * Writes (SET, EXPIRE) wait up to store.redis.write_delay_ms in the queue of
 * writes and go out together: Redis then reads, runs and answers them in
 * one go, instead of paying a read, a write and a wakeup per command, and
 * two writes for one call in that time become one.  Routing never waits
 * for a write (the cache has the decision); lookups (GET) go at once.
 *
 * When Redis is down, slow or failing: get() still answers from the cache;
 * query() returns -1 at once (down, or max_inflight commands in flight) or
 * answers NULL after redis.timeout_ms; writes wait in a queue of at most
 * max_pending_writes (the oldest dropped and counted as store_lost_writes)
 * and go out once a connection is ready again.  A connection that stalls
 * (no reply within the stall limit) is dropped through the link, which
 * reconnects after its backoff.  Call keys come from the network: log lines
 * show them quoted and escaped.
 */
#include "store/store.h"
#include "store/open.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "conf.h"
#include "hash.h"
#include "list.h"
#include "log.h"
#include "metrics.h"
#include "store/redis_internal.h"
#include "store/redis_link.h"
#include "store/redis_value.h"

/* The flags whose change changes the TTL, and so are worth an EXPIRE. */
#define REDIS_TTL_FLAGS STORE_F_ENDED
#define REDIS_KEY_INFIX "call:"
#define REDIS_CLAIM_INFIX "dedup:"
#define REDIS_HEX_DIGITS "0123456789abcdef"
/* The TTL Redis holds is refreshed when less than 1/REDIS_REFRESH_DIVISOR of it is left. */
#define REDIS_REFRESH_DIVISOR 2
#define REDIS_EXPIRE_SCAN 1024              /* cache buckets one expire() call looks at */
#define REDIS_BUCKETS_MIN 16

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
    struct list_link lru;                   /* in s->lru, oldest first */
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
    struct list_link link;                  /* store_redis.pending */
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
    REDIS_CMD_CLAIM,
};

/* A data command in flight; the call key follows the struct. */
struct redis_cmd {
    struct store_redis *s;
    struct list_link link;                  /* in flight, in the order sent */
    struct list_link wait_link;             /* GETs and claims whose answer is still owed */
    enum redis_cmd_kind kind;
    bool waiting;                           /* GET, claim: on the waiting list */
    uint64_t token;                         /* claim: the caller's */
    bool oversized;                         /* its reply was above max_reply_bytes: never read */
    uint64_t sent_mono_ms;
    struct store_entry e;                   /* SET: the value sent */
    uint64_t deadline_ms;                   /* SET, EXPIRE */
    size_t klen;
    char key[];
};

struct store_redis {
    struct store base;
    const struct conf *conf;
    struct ev_loop *loop;
    struct metrics *m;
    struct metrics own_metrics;             /* when the caller gives none */
    store_answer_fn answer;
    void *answer_arg;
    store_claim_fn claimed;
    void *claimed_arg;
    bool freeing;

    /* the caller's clock, carried forward by the monotonic one between calls */
    uint64_t now_ms;
    uint64_t now_mono_ms;

    /* cache */
    struct redis_centry **buckets;
    size_t nbuckets;                        /* a power of two; 0: no cache */
    size_t ncached;
    size_t expire_cursor;
    struct list lru;                        /* of redis_centry.lru: least recently used first */
    uint8_t hash_key[HASH_SIPHASH_KEY_BYTES];

    struct redis_link link;                 /* the connections */

    /* commands in flight, and GETs still to answer (both oldest first) */
    struct list inflight;                   /* of redis_cmd.link */
    size_t ninflight;
    struct list waiting;                    /* of redis_cmd.wait_link */

    /* writes waiting (oldest first); requeued ones go after requeue_mark (NULL: first) */
    struct list pending;                    /* of redis_pending.link */
    struct list_link *requeue_mark;
    size_t npending;

    ev_timer query_timer;                   /* GET timeouts, stalled connection */
    ev_timer write_timer;                   /* the queued writes go out (write_delay_ms) */

    char *keybuf;                           /* scratch for "<prefix>call:<key>" */
    size_t keycap;
    struct log_limit lost_limit;            /* error lines share link.error_limit */
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

static struct redis_centry *redis_lru_oldest(const struct store_redis *s)
{
    return list_first_entry(&s->lru, struct redis_centry, lru);
}

static void redis_cache_remove(struct store_redis *s, struct redis_centry *ce)
{
    struct redis_centry **pp = &s->buckets[ce->hash & (s->nbuckets - 1)];
    while (*pp != ce)
        pp = &(*pp)->hnext;
    *pp = ce->hnext;
    list_remove(&s->lru, &ce->lru);
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
    if (s->ncached >= s->conf->cache_entries && !list_empty(&s->lru))
        redis_cache_remove(s, redis_lru_oldest(s));
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
    list_insert_tail(&s->lru, &ce->lru);
    s->ncached++;
    return ce;
}

static void redis_cache_touch(struct store_redis *s, struct redis_centry *ce)
{
    list_remove(&s->lru, &ce->lru);
    list_insert_tail(&s->lru, &ce->lru);
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
    if (!redis_value_same_origin(&ce->e, e)) {
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

/* The command sent first among those in flight, or NULL. */
static struct redis_cmd *redis_inflight_oldest(const struct store_redis *s)
{
    return list_first_entry(&s->inflight, struct redis_cmd, link);
}

/* The GET asked first among those still to answer, or NULL. */
static struct redis_cmd *redis_wait_oldest(const struct store_redis *s)
{
    return list_first_entry(&s->waiting, struct redis_cmd, wait_link);
}

static void redis_inflight_unlink(struct store_redis *s, struct redis_cmd *cmd)
{
    list_remove(&s->inflight, &cmd->link);
    s->ninflight--;
}

static void redis_wait_unlink(struct store_redis *s, struct redis_cmd *cmd)
{
    if (!cmd->waiting)
        return;
    list_remove(&s->waiting, &cmd->wait_link);
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

/* Answers a claim once (1 claimed, 0 not, -1 no answer). */
static void redis_answer_claim(struct store_redis *s, struct redis_cmd *cmd, int claimed)
{
    if (!cmd->waiting)
        return;
    redis_wait_unlink(s, cmd);
    if (s->claimed != NULL && !s->freeing)
        s->claimed(s->claimed_arg, cmd->token, claimed, clock_mono_ms(), clock_wall_ms());
}

/* A waiting command's timeout or lost connection: no answer. */
static void redis_answer_none(struct store_redis *s, struct redis_cmd *cmd)
{
    if (cmd->kind == REDIS_CMD_CLAIM)
        redis_answer_claim(s, cmd, -1);
    else
        redis_answer(s, cmd, NULL);
}

/*
 * "<prefix><infix>" and room for n more bytes in the scratch buffer: where
 * those bytes go, or NULL when out of memory; *out_len is the whole key's.
 */
static char *redis_key_room(struct store_redis *s, const char *infix, size_t n, size_t *out_len)
{
    const char *prefix = s->conf->redis.prefix != NULL ? s->conf->redis.prefix : "";
    size_t plen = strlen(prefix), ilen = strlen(infix), need = plen + ilen + n;
    if (need > s->keycap) {
        char *grown = realloc(s->keybuf, need);
        if (grown == NULL)
            return NULL;
        s->keybuf = grown;
        s->keycap = need;
    }
    memcpy(s->keybuf, prefix, plen);
    memcpy(s->keybuf + plen, infix, ilen);
    *out_len = need;
    return s->keybuf + plen + ilen;
}

/* "<prefix>call:<key>" in the scratch buffer; NULL when out of memory. */
static const char *redis_key(struct store_redis *s, const char *key, size_t klen, size_t *out_len)
{
    char *at = redis_key_room(s, REDIS_KEY_INFIX, klen, out_len);
    if (at == NULL)
        return NULL;
    memcpy(at, key, klen);
    return s->keybuf;
}

static void redis_arm_query_timer(struct store_redis *s);

/* Hands cmd to hiredis and records it in flight; -1 when hiredis refuses. */
static int redis_send(struct store_redis *s, struct redis_cmd *cmd, redisCallbackFn *fn, int argc,
                      const char **argv, const size_t *argvlen)
{
    if (redis_link_send(&s->link, fn, cmd, argc, argv, argvlen) != 0)
        return -1;
    cmd->sent_mono_ms = clock_mono_ms();
    list_insert_tail(&s->inflight, &cmd->link);
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
    return redis_link_ready(&s->link) && redis_room_in_flight(s);
}

/* ---- writes ---- */

static void redis_on_set(redisAsyncContext *ac, void *r, void *priv);
static void redis_flush(struct store_redis *s);

/*
 * The queued writes go out write_delay_ms from now (set each time: a
 * stopped timer keeps what it had left).  "Now" is read afresh, once per
 * batch of writes: the loop's time is that of its last wakeup, which a
 * caller outside a loop callback may have left long behind.
 */
static void redis_arm_write_timer(struct store_redis *s)
{
    ev_now_update(s->loop);
    ev_timer_set(&s->write_timer, (double)s->conf->redis.write_delay_ms / CLOCK_MS_PER_S, 0.);
    ev_timer_start(s->loop, &s->write_timer);
}

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
            log_ratelimited(&s->link.error_limit, s->conf->log_interval_ms, LOG_LEVEL_WARN,
                            "redis %s: call decision not written: method or route name cannot be stored",
                            s->link.addr_text);
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
                    s->link.addr_text, s->npending);
}

/* The write queued first, or NULL. */
static struct redis_pending *redis_pending_oldest(const struct store_redis *s)
{
    return list_first_entry(&s->pending, struct redis_pending, link);
}

static void redis_pending_unlink(struct store_redis *s, struct redis_pending *p)
{
    if (s->requeue_mark == &p->link)
        s->requeue_mark = list_prev(&p->link);
    list_remove(&s->pending, &p->link);
    if (p->centry != NULL)
        p->centry->pending = NULL;
    s->npending--;
}

static void redis_pending_drop_oldest(struct store_redis *s)
{
    struct redis_pending *p = redis_pending_oldest(s);
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
        while (s->npending >= max && !list_empty(&s->pending))
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
    if (requeue) {
        list_insert_after(&s->pending, s->requeue_mark, &p->link);
        s->requeue_mark = &p->link;
    } else {
        list_insert_tail(&s->pending, &p->link);
    }
    s->npending++;
}

/*
 * A write for key: merged into the entry's queued write when it has one
 * (one write per call waits, whatever happened meanwhile).  With a
 * write_delay_ms, queued, and the queue goes out when the delay is over (at
 * once when it holds max_inflight writes); without one, sent when a
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
    const struct conf_redis *rc = &s->conf->redis;
    if (rc->write_delay_ms == 0 || rc->max_pending_writes == 0) {
        if (list_empty(&s->pending) && redis_can_send(s) &&
            redis_send_write(s, key, klen, is_set, e, deadline_ms) == 0)
            return;
        redis_pending_add(s, ce, key, klen, is_set, e, deadline_ms, false);
        return;
    }
    redis_pending_add(s, ce, key, klen, is_set, e, deadline_ms, false);
    if (s->npending >= rc->max_inflight)
        redis_flush(s);                 /* a batch as large as may be in flight goes now */
    else if (!ev_is_active(&s->write_timer))
        redis_arm_write_timer(s);
}

/* Sends queued writes while the connection has room. */
static void redis_flush(struct store_redis *s)
{
    if (ev_is_active(&s->write_timer))
        ev_timer_stop(s->loop, &s->write_timer);
    struct redis_pending *p;
    while ((p = redis_pending_oldest(s)) != NULL && redis_can_send(s)) {
        if (redis_send_write(s, p->key, p->klen, p->is_set, &p->e, p->deadline_ms) != 0)
            break;
        redis_pending_unlink(s, p);
        free(p);
    }
    if (list_empty(&s->pending))
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

/* ---- replies ---- */

/* Counts an error reply; a demoted master (READONLY) makes us look for the new one. */
static void redis_reply_error(struct store_redis *s, redisAsyncContext *ac, const redisReply *reply,
                              const char *what)
{
    s->m->store_errors++;
    log_ratelimited(&s->link.error_limit, s->conf->log_interval_ms, LOG_LEVEL_WARN, "redis %s: %s failed: %s",
                    s->link.addr_text, what, reply->str);
    if (redis_is_error(reply, "READONLY") && redis_link_is_data(&s->link, ac))
        redis_link_fail(&s->link, "the server is a replica now (READONLY)");
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
    if (!s->freeing && !ev_is_active(&s->write_timer))
        redis_flush(s);                 /* else the queued writes wait for their batch */
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
            log_ratelimited(&s->link.error_limit, s->conf->log_interval_ms, LOG_LEVEL_WARN,
                            "redis %s: malformed value for call %s: taken as unknown", s->link.addr_text,
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
            log_ratelimited(&s->link.error_limit, s->conf->log_interval_ms, LOG_LEVEL_WARN,
                            "redis %s: malformed value for call %s: kept the local decision",
                            s->link.addr_text, redis_log_quote(cmd->key, cmd->klen, ktext, sizeof ktext));
        } else if (!redis_value_same_origin(&winner, &cmd->e)) {
            /* the route name is another writer's: any byte but NUL */
            log_debug("redis %s: call %s was stored first elsewhere (route %s): following it", s->link.addr_text,
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
    const struct redis_cmd *get = redis_wait_oldest(s), *oldest = redis_inflight_oldest(s);
    if (get != NULL && s->conf->redis.timeout_ms > 0)
        due = get->sent_mono_ms + s->conf->redis.timeout_ms;
    if (redis_link_connected(&s->link) && oldest != NULL && redis_stall_ms(s) > 0 &&
        oldest->sent_mono_ms + redis_stall_ms(s) < due)
        due = oldest->sent_mono_ms + redis_stall_ms(s);
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
        struct redis_cmd *get;
        while ((get = redis_wait_oldest(s)) != NULL && get->sent_mono_ms + s->conf->redis.timeout_ms <= now) {
            s->m->store_timeouts++;
            redis_answer_none(s, get);
        }
    }
    const struct redis_cmd *oldest = redis_inflight_oldest(s);
    if (redis_link_connected(&s->link) && oldest != NULL && redis_stall_ms(s) > 0 &&
        oldest->sent_mono_ms + redis_stall_ms(s) <= now)
        redis_link_fail(&s->link, "no reply within limits.connect_timeout");
    redis_arm_query_timer(s);
}

/* ---- what the link tells ---- */

static void redis_on_write_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    redis_flush(w->data);
}

/* A new connection: requeued writes start a new run (those of the last one are all in). */
static void redis_on_link_opened(void *arg)
{
    struct store_redis *s = arg;
    s->requeue_mark = NULL;
}

static void redis_on_link_ready(void *arg, bool again)
{
    struct store_redis *s = arg;
    if (again)
        log_info("redis %s: connected again; %zu queued writes to send", s->link.addr_text, s->npending);
    else
        log_info("redis %s: connected", s->link.addr_text);
    s->requeue_mark = NULL;
    redis_flush(s);
}

/* The reply too long to read is the oldest command's: it is not sent again (it would only be dropped again). */
static bool redis_on_reply_too_long(void *arg, size_t nread, char *why, size_t size)
{
    struct store_redis *s = arg;
    char ktext[REDIS_LOG_KEY_TEXT_MAX];
    /* replies come in order: once ready, the one being read is the oldest command's */
    struct redis_cmd *cmd = s->link.ready ? redis_inflight_oldest(s) : NULL;
    if (cmd == NULL)
        return false;
    cmd->oversized = true;
    snprintf(why, size, "the reply for call %s is longer than store.redis.max_reply_bytes "
             "(%zu bytes of it read)", redis_log_quote(cmd->key, cmd->klen, ktext, sizeof ktext), nread);
    return true;
}

static const struct redis_link_events redis_link_events = {
    .opened = redis_on_link_opened,
    .ready = redis_on_link_ready,
    .reply_too_long = redis_on_reply_too_long,
};

/* ---- store_ops ---- */

static struct store_redis *redis_of(struct store *base)
{
    return (struct store_redis *)(void *)base;
}

/* A packet's look in the cache, counted as a hit or a miss: the entry, with *out its copy, or NULL. */
static struct redis_centry *redis_cache_lookup(struct store_redis *s, const char *key, size_t klen,
                                               uint64_t now_ms, struct store_entry *out)
{
    redis_touch_clock(s, now_ms);
    struct redis_centry *ce = redis_cache_find(s, key, klen, now_ms);
    if (ce == NULL) {
        s->m->store_cache_misses++;
        return NULL;
    }
    s->m->store_cache_hits++;
    *out = ce->e;
    return ce;
}

static int store_redis_get(struct store *base, const char *key, size_t klen, uint64_t now_ms,
                           struct store_entry *out)
{
    struct store_redis *s = redis_of(base);
    struct redis_centry *ce = redis_cache_lookup(s, key, klen, now_ms, out);
    if (ce == NULL)
        return 0;
    redis_cache_touch(s, ce);
    return 1;
}

/*
 * put() answers at once from the cache: 0 with *winner when the cache
 * already knows the call, else 1 (stored here, written in the background).
 * When Redis turns out to know the call already (another instance was
 * first), its decision replaces ours in the cache for the rest of the call;
 * the packet that made this put() was routed by ours.
 */
static int store_redis_put(struct store *base, const char *key, size_t klen, const struct store_hint *hint,
                           const struct store_entry *e, uint64_t ttl_ms, uint64_t now_ms, struct store_entry *winner)
{
    struct store_redis *s = redis_of(base);
    (void)hint;                     /* none is made: the cache hashes the key itself */
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
/*
 * A known call's cached entry takes a packet's update; what Redis holds is
 * written only when the flags that set its TTL change or its TTL runs low.
 */
static void redis_update_cached(struct store_redis *s, struct redis_centry *ce, uint64_t ttl_ms, unsigned set,
                                unsigned clear, uint64_t last_hash, uint64_t now_ms)
{
    uint64_t deadline = now_ms + ttl_ms;
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
        return;
    /* what Redis holds: only what was last sent, so activity refreshes it */
    ce->ttl_state = REDIS_TTL_SET;
    ce->redis_flags = flags;
    ce->redis_deadline_ms = deadline;
    redis_write(s, ce, ce->key, ce->klen, is_set, &ce->e, deadline);
}

static int store_redis_update(struct store *base, const char *key, size_t klen, uint64_t ttl_ms, unsigned set,
                              unsigned clear, uint64_t last_hash, uint64_t now_ms)
{
    struct store_redis *s = redis_of(base);
    redis_touch_clock(s, now_ms);
    struct redis_centry *ce = redis_cache_find(s, key, klen, now_ms);
    if (ce == NULL) {
        if ((set | clear) & REDIS_TTL_FLAGS)
            redis_write(s, NULL, key, klen, false, NULL, now_ms + ttl_ms);
        return 0;
    }
    redis_update_cached(s, ce, ttl_ms, set, clear, last_hash, now_ms);
    return 1;
}

/* get() and update() with one look in the cache (store_ops.follow). */
static int store_redis_follow(struct store *base, const char *key, size_t klen, const struct store_hint *hint,
                              uint64_t now_ms, struct store_entry *out, store_touch_fn touch, void *arg)
{
    struct store_redis *s = redis_of(base);
    (void)hint;
    struct redis_centry *ce = redis_cache_lookup(s, key, klen, now_ms, out);
    if (ce == NULL)
        return 0;
    struct store_touch t;
    touch(arg, out, &t);
    redis_update_cached(s, ce, t.ttl_ms, t.set, t.clear, t.last_hash, now_ms);
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
    list_insert_tail(&s->waiting, &cmd->wait_link);
    s->m->store_lookups++;
    redis_arm_query_timer(s);
    return 0;
}

static void redis_on_claim(redisAsyncContext *ac, void *r, void *priv)
{
    struct redis_cmd *cmd = priv;
    struct store_redis *s = redis_reply_begin(cmd);
    redisReply *reply = r;
    if (s->freeing) {
        redis_wait_unlink(s, cmd);
        free(cmd);
        return;
    }
    if (reply == NULL) {
        redis_answer_claim(s, cmd, -1);     /* the connection went */
    } else if (reply->type == REDIS_REPLY_STATUS) {
        redis_answer_claim(s, cmd, 1);
    } else if (reply->type == REDIS_REPLY_NIL) {
        redis_answer_claim(s, cmd, 0);
    } else {
        if (reply->type == REDIS_REPLY_ERROR)
            redis_reply_error(s, ac, reply, "SET NX (dedup)");
        else
            s->m->store_errors++;
        redis_answer_claim(s, cmd, -1);
    }
    redis_reply_end(s, cmd);
}

/* "<prefix>dedup:<hex of key>" in the scratch buffer; NULL when out of memory. */
static const char *redis_claim_key(struct store_redis *s, const uint8_t *key, size_t klen, size_t *out_len)
{
    char *at = redis_key_room(s, REDIS_CLAIM_INFIX, 2 * klen, out_len);
    if (at == NULL)
        return NULL;
    for (size_t i = 0; i < klen; i++) {
        at[2 * i] = REDIS_HEX_DIGITS[key[i] >> 4];
        at[2 * i + 1] = REDIS_HEX_DIGITS[key[i] & 0xf];
    }
    return s->keybuf;
}

static int store_redis_claim(struct store *base, const uint8_t *key, size_t klen, uint64_t ttl_ms, uint64_t now_ms,
                             uint64_t token)
{
    struct store_redis *s = redis_of(base);
    char ttl[REDIS_MS_DIGITS_MAX + 1];
    redis_touch_clock(s, now_ms);
    if (s->claimed == NULL || !redis_can_send(s)) {
        s->m->store_unavailable++;
        return -1;
    }
    struct redis_cmd *cmd = redis_cmd_new(s, REDIS_CMD_CLAIM, "", 0);
    size_t rklen = 0;
    const char *rkey = cmd != NULL ? redis_claim_key(s, key, klen, &rklen) : NULL;
    int tlen = snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)(ttl_ms > 0 ? ttl_ms : 1));
    const char *argv[] = { "SET", rkey, "1", "NX", "PX", ttl };
    const size_t argvlen[] = { strlen(argv[0]), rklen, 1, 2, 2, (size_t)tlen };
    if (rkey == NULL || redis_send(s, cmd, redis_on_claim, REDIS_ARGC(argv), argv, argvlen) != 0) {
        free(cmd);
        s->m->store_unavailable++;
        return -1;
    }
    cmd->token = token;
    cmd->waiting = true;
    list_insert_tail(&s->waiting, &cmd->wait_link);
    redis_arm_query_timer(s);
    return 0;
}

static void store_redis_set_claim_fn(struct store *base, store_claim_fn fn, void *arg)
{
    struct store_redis *s = redis_of(base);
    s->claimed = fn;
    s->claimed_arg = arg;
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
    ev_timer_stop(s->loop, &s->query_timer);
    ev_timer_stop(s->loop, &s->write_timer);
    redis_link_close(&s->link);         /* the callbacks left run, and only free */
    struct redis_pending *p;
    while ((p = redis_pending_oldest(s)) != NULL) {
        redis_pending_unlink(s, p);
        free(p);
    }
    while (!list_empty(&s->lru))
        redis_cache_remove(s, redis_lru_oldest(s));
    free(s->buckets);
    free(s->keybuf);
    free(s);
}

static bool store_redis_is_up(struct store *base)
{
    return redis_link_connected(&((struct store_redis *)base)->link);
}

static void store_redis_set_conf(struct store *base, const struct conf *conf)
{
    struct store_redis *s = (struct store_redis *)base;
    s->conf = conf;
    s->link.conf = conf;
}

static const struct store_ops store_redis_ops = {
    .name = "redis",
    .get = store_redis_get,
    .put = store_redis_put,
    .update = store_redis_update,
    .follow = store_redis_follow,
    .expire = store_redis_expire,
    .count = store_redis_count,
    .free = store_redis_free,
    .query = store_redis_query,
    .set_answer_fn = store_redis_set_answer_fn,
    .claim = store_redis_claim,
    .set_claim_fn = store_redis_set_claim_fn,
    .pending = store_redis_pending,
    .is_up = store_redis_is_up,
    .set_conf = store_redis_set_conf,
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
    redis_link_init(&s->link, conf, loop, s->m, &redis_link_events, s);
    ev_timer_init(&s->query_timer, redis_on_query_timer, 0., 0.);
    s->query_timer.data = s;
    ev_timer_init(&s->write_timer, redis_on_write_timer, 0., 0.);
    s->write_timer.data = s;
    redis_link_start(&s->link);         /* never waits: the loop completes it */
    return &s->base;
}
