/*
 * store.h - the call context store: Call-ID -> what started the call.
 *
 * One interface, several back-ends (mem.c, redis.c; open.h opens one),
 * chosen by `store.type`.  Keys are call keys as the router builds them: the
 * Call-ID (or a correlation id), already hashed by the router when longer
 * than limits.call_id_max.  Every operation takes the caller's clock so
 * expiry is testable without sleeping.  Back-ends are safe to call from
 * several worker threads at once.
 */
#ifndef HEPROUTER_STORE_H
#define HEPROUTER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define STORE_METHOD_MAX (CONF_METHOD_MAX + 1)  /* longest method name kept, incl. NUL */
#define STORE_ROUTE_MAX (CONF_NAME_MAX + 1)     /* longest route name kept, incl. NUL */

enum store_flag {
    STORE_F_ENDED = 1u << 0,        /* BYE answered / INVITE failed: ttl.ended */
    STORE_F_FALLBACK = 1u << 1,     /* decided by an orphan's own CSeq method */
    STORE_F_REGISTER = 1u << 2,     /* a REGISTER dialog: ttl.register */
    STORE_F_CONFIRMED = 1u << 3,    /* an INVITE got a 2xx: later failures do not end it */
    STORE_F_ALL = (1u << 4) - 1,
};

/*
 * How long a call is kept, by its flags: ttl.ended once it ended, else
 * ttl.register for a REGISTER dialog and ttl.call for any other.  The one
 * rule the router and every back-end use.
 */
static inline uint64_t store_ttl(const struct conf *conf, unsigned flags)
{
    if (flags & STORE_F_ENDED)
        return conf->ttl_ended_ms;
    return (flags & STORE_F_REGISTER) ? conf->ttl_register_ms : conf->ttl_call_ms;
}

/* What the store remembers about a call. */
struct store_entry {
    char method[STORE_METHOD_MAX];  /* origin method, NUL-terminated */
    char route[STORE_ROUTE_MAX];    /* route the origin matched, NUL-terminated */
    uint64_t first_seen_ms;         /* wall clock, ms since the epoch */
    unsigned flags;                 /* enum store_flag */
    uint64_t last_hash;             /* hash of the call's latest packet (duplicates) */
    uint64_t origin_bits;           /* policy_origin_bits() of the origin (0 after a fallback) */
    uint32_t origin_signature;      /* conf.origin_signature they were judged under; 0: none */
    uint32_t refused_dests;         /* bit conf_dest.rate_bit: the new call was over its max_new_calls_per_s */
    uint64_t expires_ms;            /* monotonic ms, when get() can tell (memory store); else 0 */
};

struct store;
struct store_names;

/* What a packet of a known call changes in it: as store_update()'s arguments. */
struct store_touch {
    uint64_t ttl_ms;
    unsigned set, clear;
    uint64_t last_hash;
};

/*
 * store_follow()'s judge: fills *t from the call's entry e for the packet
 * in hand.  It may be called with a lock of the store held: it must not
 * call the store, nor block.
 */
typedef void (*store_touch_fn)(void *arg, const struct store_entry *e, struct store_touch *t);

/*
 * What a store works out from a call key ahead of looking it up: the
 * memory store's hash of the key, with the cache lines its lookup will read
 * already on their way.  store_hint() fills it as soon as a packet's call
 * key is known, so that the rest of the work on the packet overlaps the
 * fetch, and store_follow_hinted() and store_put_hinted() do not hash the
 * key again.  A hint is for the one key it was made from.
 */
struct store_hint {
    bool set;                       /* false: nothing worked out (the ops hash the key themselves) */
    uint64_t h[2];
};

/*
 * How a shared back-end (Redis) answers store_query(), later, on the
 * worker's loop: e is the call's entry, or NULL when the shared store does
 * not know the call (or could not be asked: down, timed out).  now_ms and
 * wall_ms are the clocks (monotonic, wall) when the answer came, read by
 * the back-end: the core reads no clock.
 */
typedef void (*store_answer_fn)(void *arg, const char *key, size_t klen, const struct store_entry *e,
                                uint64_t now_ms, uint64_t wall_ms);

/*
 * How a shared back-end answers store_claim(), later, on the worker's loop:
 * claimed is 1 (this instance was first), 0 (another instance claimed the
 * key within its time), or -1 (no answer: down, timed out, an error).
 */
typedef void (*store_claim_fn)(void *arg, uint64_t token, int claimed, uint64_t now_ms, uint64_t wall_ms);

struct store_ops {
    const char *name;
    /* 1 and *out filled when key is known and not expired, else 0. */
    int (*get)(struct store *s, const char *key, size_t klen, uint64_t now_ms, struct store_entry *out);
    /*
     * Stores e under key unless the key exists (first writer wins): returns
     * 1 when stored, 0 when it existed (and fills *winner with the stored
     * entry), -1 on failure (e.g. out of memory).
     */
    int (*put)(struct store *s, const char *key, size_t klen, const struct store_hint *hint,
               const struct store_entry *e, uint64_t ttl_ms, uint64_t now_ms, struct store_entry *winner);
    /*
     * Updates a known call: sets the expiry to now + ttl_ms, sets flags |=
     * set, flags &= ~clear, and records last_hash.  Returns 1 when the key
     * was there, 0 otherwise.
     */
    int (*update)(struct store *s, const char *key, size_t klen, uint64_t ttl_ms,
                  unsigned set, unsigned clear, uint64_t last_hash, uint64_t now_ms);
    /*
     * get(), and when the key is known, update() with what touch makes of
     * the entry; *out is the entry as get() saw it.  NULL: store_follow()
     * does get() then update(); the memory store does both with one lookup
     * under one lock.
     */
    int (*follow)(struct store *s, const char *key, size_t klen, const struct store_hint *hint, uint64_t now_ms,
                  struct store_entry *out, store_touch_fn touch, void *arg);
    /* Fills *out for key (struct store_hint); NULL: the store takes no hint. */
    void (*hint)(struct store *s, const char *key, size_t klen, struct store_hint *out);
    /* Drops expired entries (bounded work per call); returns how many. */
    size_t (*expire)(struct store *s, uint64_t now_ms);
    /* Calls currently held. */
    size_t (*count)(struct store *s);
    void (*free)(struct store *s);
    /*
     * Shared back-ends only (NULL for memory): get() and put() see the local
     * cache at once and talk to the shared store in the background; query()
     * asks the shared store about a call get() did not know.  Returns 0 when
     * the question is on its way (the answer fn will be called exactly
     * once), -1 when it cannot be asked now (down, too many in flight):
     * decide without it.
     */
    int (*query)(struct store *s, const char *key, size_t klen, uint64_t now_ms);
    /* Where query() answers go (one per worker: the router). */
    void (*set_answer_fn)(struct store *s, store_answer_fn fn, void *arg);
    /*
     * Shared back-ends only: claims key (any bytes) for ttl_ms across every
     * instance sharing the store, the first claim winning (a shared dedup
     * window).  0 when the claim is on its way (the claim fn is called
     * exactly once with token), -1 when it cannot be asked now.
     */
    int (*claim)(struct store *s, const uint8_t *key, size_t klen, uint64_t ttl_ms, uint64_t now_ms,
                 uint64_t token);
    void (*set_claim_fn)(struct store *s, store_claim_fn fn, void *arg);
    /*
     * Shared back-ends only: commands waiting or in flight, so a drain can
     * wait for them; what is still waiting at free() is counted as lost.
     */
    size_t (*pending)(struct store *s);
    /*
     * A configuration reload: makes the names of the new policy storable
     * (NULL when any name is: the shared back-ends store text).  Called
     * from one thread while the workers use the store.  0, or -1 on ENOMEM.
     */
    int (*add_names)(struct store *s, const struct store_names *names);
    /* Shared back-ends only (NULL: always up): connected and answering. */
    bool (*is_up)(struct store *s);
    /*
     * A configuration reload: a store that keeps a pointer to the
     * configuration (NULL when none does) reads conf from now on.  conf
     * keeps the running store.* values (conf_keep_restart_values()).
     */
    void (*set_conf)(struct store *s, const struct conf *conf);
};

struct store {
    const struct store_ops *ops;
};

/*
 * The names a memory store keeps per call as indexes, from the running
 * policy: every route name (the default one included), and every method
 * name the policy compares (routes' `method` lists) plus the standard SIP
 * methods.  Repeats are kept once.
 */
struct store_names {
    const char *const *methods;
    size_t nmethods;
    const char *const *routes;
    size_t nroutes;
};

/*
 * The method a memory store returns for a call that started with a method
 * not among its names.  No policy can tell such methods apart (a `method`
 * list names upper-case tokens, and this is not one), so routing by it is
 * routing by the method itself, and senders cannot fill any table with
 * names of their choosing.
 */
#define STORE_METHOD_UNLISTED "(unlisted)"

/* Fills *names from conf (store_names_free() frees it); -1 on ENOMEM. */
int store_names_from_conf(const struct conf *conf, struct store_names *names);

void store_names_free(struct store_names *names);

/*
 * A configuration reload: the names of conf's policy become storable in s
 * (nothing to do for a store that keeps text).  0, or -1 on ENOMEM / too
 * many method names.
 */
int store_add_conf_names(struct store *s, const struct conf *conf);

/*
 * The memory back-end; max_calls bounds it (the soonest-expiring go first),
 * 0 means no bound.  count() includes expired calls not yet swept.  names
 * is copied.  A put whose route is not among the names fails (-1).  NULL on
 * ENOMEM, or when names holds more than STORE_MEM_METHODS_MAX distinct methods.
 */
#define STORE_MEM_METHODS_MAX 65535u
struct store *store_mem_new(size_t max_calls, const struct store_names *names);

/*
 * The memory store conf asks for (store.max_calls, the names of its
 * policy); NULL, with the reason logged, on failure.
 */
struct store *store_mem_from_conf(const struct conf *conf);

/* What a memory store holds and has done since it was created. */
struct store_mem_stats {
    size_t calls;                   /* entries held, expired ones not yet swept included */
    size_t slots;                   /* table capacity, all stripes */
    size_t slot_bytes;              /* bytes per slot (its tag byte aside; bytes counts both) */
    size_t bytes;                   /* tables, name tables and headers */
    size_t stripes;                 /* independently locked parts */
    size_t evictions;               /* live calls dropped to stay within max_calls */
    size_t expired;                 /* expired calls removed (lazily or by expire) */
    size_t unlisted;                /* calls stored with STORE_METHOD_UNLISTED */
    size_t unknown_routes;          /* puts refused: a route not among the names */
};

/* Fills *out; -1 (and zeroes) when s is not a memory store. */
int store_mem_stats(struct store *s, struct store_mem_stats *out);

/* Live calls evicted because of max_calls; 0 for other back-ends. */
size_t store_mem_evictions(struct store *s);

static inline int store_get(struct store *s, const char *key, size_t klen, uint64_t now_ms,
                            struct store_entry *out)
{
    return s->ops->get(s, key, klen, now_ms, out);
}

static inline void store_hint(struct store *s, const char *key, size_t klen, struct store_hint *out)
{
    out->set = false;
    if (s->ops->hint != NULL)
        s->ops->hint(s, key, klen, out);
}

/* store_put() with the hint made from key (NULL: none). */
static inline int store_put_hinted(struct store *s, const char *key, size_t klen, const struct store_hint *hint,
                                   const struct store_entry *e, uint64_t ttl_ms, uint64_t now_ms,
                                   struct store_entry *winner)
{
    return s->ops->put(s, key, klen, hint, e, ttl_ms, now_ms, winner);
}

static inline int store_put(struct store *s, const char *key, size_t klen, const struct store_entry *e,
                            uint64_t ttl_ms, uint64_t now_ms, struct store_entry *winner)
{
    return store_put_hinted(s, key, klen, NULL, e, ttl_ms, now_ms, winner);
}

static inline int store_update(struct store *s, const char *key, size_t klen, uint64_t ttl_ms,
                               unsigned set, unsigned clear, uint64_t last_hash, uint64_t now_ms)
{
    return s->ops->update(s, key, klen, ttl_ms, set, clear, last_hash, now_ms);
}

/*
 * A packet of a call that may be known: 1 with *out the call's entry (as it
 * was before this packet) and the call updated with what touch(arg, out)
 * says, or 0 when the call is not known (nothing is changed).
 */
static inline int store_follow_hinted(struct store *s, const char *key, size_t klen, const struct store_hint *hint,
                                      uint64_t now_ms, struct store_entry *out, store_touch_fn touch, void *arg)
{
    if (s->ops->follow != NULL)
        return s->ops->follow(s, key, klen, hint, now_ms, out, touch, arg);
    if (!s->ops->get(s, key, klen, now_ms, out))
        return 0;
    struct store_touch t;
    touch(arg, out, &t);
    s->ops->update(s, key, klen, t.ttl_ms, t.set, t.clear, t.last_hash, now_ms);
    return 1;
}

static inline int store_follow(struct store *s, const char *key, size_t klen, uint64_t now_ms,
                               struct store_entry *out, store_touch_fn touch, void *arg)
{
    return store_follow_hinted(s, key, klen, NULL, now_ms, out, touch, arg);
}

static inline size_t store_expire(struct store *s, uint64_t now_ms)
{
    return s->ops->expire(s, now_ms);
}

static inline size_t store_count(struct store *s)
{
    return s->ops->count(s);
}

static inline int store_query(struct store *s, const char *key, size_t klen, uint64_t now_ms)
{
    return s->ops->query != NULL ? s->ops->query(s, key, klen, now_ms) : -1;
}

static inline void store_set_answer_fn(struct store *s, store_answer_fn fn, void *arg)
{
    if (s->ops->set_answer_fn != NULL)
        s->ops->set_answer_fn(s, fn, arg);
}

static inline size_t store_pending(struct store *s)
{
    return s->ops->pending != NULL ? s->ops->pending(s) : 0;
}

/* True for back-ends whose get() may miss what another instance knows. */
static inline void store_set_conf(struct store *s, const struct conf *conf)
{
    if (s->ops->set_conf != NULL)
        s->ops->set_conf(s, conf);
}

static inline bool store_is_up(struct store *s)
{
    return s->ops->is_up == NULL || s->ops->is_up(s);
}

static inline int store_claim(struct store *s, const uint8_t *key, size_t klen, uint64_t ttl_ms, uint64_t now_ms,
                              uint64_t token)
{
    return s->ops->claim != NULL ? s->ops->claim(s, key, klen, ttl_ms, now_ms, token) : -1;
}
static inline void store_set_claim_fn(struct store *s, store_claim_fn fn, void *arg)
{
    if (s->ops->set_claim_fn != NULL)
        s->ops->set_claim_fn(s, fn, arg);
}
static inline bool store_is_shared(const struct store *s)
{
    return s->ops->query != NULL;
}

static inline void store_free(struct store *s)
{
    if (s != NULL)
        s->ops->free(s);
}

#endif
