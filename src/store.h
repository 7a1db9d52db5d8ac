/*
 * store.h - the call context store: Call-ID -> what started the call.
 *
 * One interface, several back-ends (store_mem.c now, store_redis.c later),
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

struct conf;

#define STORE_METHOD_MAX 32         /* longest method name kept, incl. NUL */
#define STORE_ROUTE_MAX 64          /* longest route name kept, incl. NUL */

enum store_flag {
    STORE_F_ENDED = 1u << 0,        /* BYE answered / INVITE failed: ttl.ended */
    STORE_F_FALLBACK = 1u << 1,     /* decided by an orphan's own CSeq method */
    STORE_F_REGISTER = 1u << 2,     /* a REGISTER dialog: ttl.register */
};

/* What the store remembers about a call. */
struct store_entry {
    char method[STORE_METHOD_MAX];  /* origin method, NUL-terminated */
    char route[STORE_ROUTE_MAX];    /* route the origin matched, NUL-terminated */
    uint64_t first_seen_ms;         /* wall clock, ms since the epoch */
    unsigned flags;                 /* enum store_flag */
    uint64_t last_hash;             /* hash of the call's latest packet (duplicates) */
};

struct store;

struct store_ops {
    const char *name;
    /* 1 and *out filled when key is known and not expired, else 0. */
    int (*get)(struct store *s, const char *key, size_t klen, uint64_t now_ms, struct store_entry *out);
    /*
     * Stores e under key unless the key exists (first writer wins): returns
     * 1 when stored, 0 when it existed (and fills *winner with the stored
     * entry), -1 on failure (e.g. out of memory).
     */
    int (*put)(struct store *s, const char *key, size_t klen, const struct store_entry *e,
               uint64_t ttl_ms, uint64_t now_ms, struct store_entry *winner);
    /*
     * Updates a known call: sets the expiry to now + ttl_ms, sets flags |=
     * set, flags &= ~clear, and records last_hash.  Returns 1 when the key
     * was there, 0 otherwise.
     */
    int (*update)(struct store *s, const char *key, size_t klen, uint64_t ttl_ms,
                  unsigned set, unsigned clear, uint64_t last_hash, uint64_t now_ms);
    /* Drops expired entries (bounded work per call); returns how many. */
    size_t (*expire)(struct store *s, uint64_t now_ms);
    /* Calls currently held. */
    size_t (*count)(struct store *s);
    void (*free)(struct store *s);
};

struct store {
    const struct store_ops *ops;
};

/* Opens the back-end conf names; NULL (and a logged reason) on failure. */
struct store *store_open(const struct conf *conf);

/*
 * The memory back-end; max_calls bounds it (the soonest-expiring go first),
 * 0 means no bound.  count() includes expired calls not yet swept.
 */
struct store *store_mem_new(size_t max_calls);

/*
 * Method name a memory store returns for a call whose method it could not
 * intern (more distinct live method names than it keeps); route names are
 * never replaced: a put whose route cannot be interned fails (-1).
 */
#define STORE_METHOD_OVERFLOW "OTHER"

/* What a memory store holds and has done since it was created. */
struct store_mem_stats {
    size_t calls;                   /* entries held, expired ones not yet swept included */
    size_t slots;                   /* table capacity, all stripes */
    size_t slot_bytes;              /* bytes per slot */
    size_t bytes;                   /* tables, name tables and headers */
    size_t stripes;                 /* independently locked parts */
    size_t evictions;               /* live calls dropped to stay within max_calls */
    size_t expired;                 /* expired calls removed (lazily or by expire) */
    size_t method_overflows;        /* calls stored with STORE_METHOD_OVERFLOW */
    size_t route_overflows;         /* puts refused: too many distinct route names */
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

static inline int store_put(struct store *s, const char *key, size_t klen, const struct store_entry *e,
                            uint64_t ttl_ms, uint64_t now_ms, struct store_entry *winner)
{
    return s->ops->put(s, key, klen, e, ttl_ms, now_ms, winner);
}

static inline int store_update(struct store *s, const char *key, size_t klen, uint64_t ttl_ms,
                               unsigned set, unsigned clear, uint64_t last_hash, uint64_t now_ms)
{
    return s->ops->update(s, key, klen, ttl_ms, set, clear, last_hash, now_ms);
}

static inline size_t store_expire(struct store *s, uint64_t now_ms)
{
    return s->ops->expire(s, now_ms);
}

static inline size_t store_count(struct store *s)
{
    return s->ops->count(s);
}

static inline void store_free(struct store *s)
{
    if (s != NULL)
        s->ops->free(s);
}

#endif
