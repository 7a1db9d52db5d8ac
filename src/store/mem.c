/*
 * mem.c - the embedded memory back-end of the call context store.
 *
 * Sized for a million tracked calls in about 100 bytes each, so it keeps
 * neither the Call-ID nor struct store_entry per call:
 *
 * - The key is replaced by a 128-bit SipHash-1-3 of it (hash.h), keyed
 *   with 16 random bytes per store.  Two different Call-IDs share a slot
 *   only if their 128-bit tags collide: about n^2 / 2^129, i.e. 1e-27 with
 *   a million calls, and the random key keeps a sender from crafting
 *   collisions or piling its Call-IDs into one probe chain.
 * - Method and route names are indexes into two read-only tables made at
 *   creation from the running policy (struct store_names): the route names,
 *   and the method names the policy compares plus the standard SIP ones.
 *   What senders choose cannot fill them: any other method is kept as
 *   STORE_METHOD_UNLISTED, which no route matches, exactly as the policy
 *   would judge the name itself.  Nothing is interned per call.
 * - Slots live in one open-addressing array per stripe (linear probing,
 *   backward-shift deletion: no tombstones), doubled when the load passes
 *   STORE_MEM_LOAD_NUM / STORE_MEM_LOAD_DEN.  No per-call malloc.  Beside
 *   it, a byte per slot: 0 when free, else a tag of 7 bits of the hash.  A
 *   probe reads the tags (64 slots per cache line) and a slot's own line
 *   only when its tag matches, so a lookup reads the line of the call it
 *   finds and, for a call not there (every new call), no slot line at all
 *   (another call's tag matches 1 time in 128).
 *
 * The table is split into stripes, each with its own lock, array and name
 * tables; a call's stripe comes from bits of its hash that do not pick its
 * slot.  max_calls is shared out between the stripes, so the bound is exact
 * but a stripe may start evicting a little before the whole store is full
 * (about 0.15% of a million calls, from the spread of the hash).
 *
 * Expiry is lazy (a get, put or update that meets an expired entry removes
 * or reuses it) plus store_expire(), which sweeps each stripe in
 * proportion to the time since its last sweep, a whole pass every
 * STORE_MEM_SWEEP_PASS_MS, but at most STORE_MEM_SWEEP_SLOTS slots per call
 * in all, so a periodic timer never stalls the workers (every 100 ms it
 * covers the 2M slots of a million calls in about 13 s) and a small table
 * is not read through ten times a second (each pass over a stripe reads
 * its slot lines, and pushes the lines the packets use out of the
 * cache).  A stripe at its quota carries the same sweep on before it
 * evicts a live call.  Arrays never shrink: after a burst the capacity
 * stays at its high-water mark (bounded by max_calls) and freed slots are
 * reused, so RSS stays flat.
 */
#include "store/store.h"

#include "conf.h"
#include "hash.h"
#include "lockstat.h"
#include "log.h"
#include "policy.h"
#include "sip.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORE_MEM_STRIPES           16      /* most stripes (locks) per store; a power of two */
#define STORE_MEM_STRIPE_MIN_CALLS  1024    /* bounded stores: fewer stripes below this per stripe */
#define STORE_MEM_INITIAL_SLOTS     64      /* per stripe; a power of two */
#define STORE_MEM_LOAD_NUM          3       /* grow beyond 3/4 full */
#define STORE_MEM_LOAD_DEN          4
#define STORE_MEM_SWEEP_SLOTS       16384   /* most slots store_expire() visits per call, all stripes */
#define STORE_MEM_SWEEP_PASS_MS     5000    /* store_expire() covers a stripe about this often, or slower */
#define STORE_MEM_SWEEP_MIN         64      /* fewest slots a call visits per stripe */
#define STORE_MEM_EVICT_SCAN        128     /* slots looked at to choose an eviction victim */
#define STORE_MEM_METHOD_UNLISTED   STORE_MEM_METHODS_MAX  /* method index meaning STORE_METHOD_UNLISTED */
#define STORE_MEM_FLAGS_MASK        UINT8_MAX   /* flags kept per call */
#define STORE_MEM_NAME_LOAD         2           /* name index slots per name, at least */
#define STORE_MEM_TAG_USED          0x80u       /* a tag's high bit: the slot holds a call */
#define STORE_MEM_TAG_SHIFT         57          /* a tag's other 7 bits: key[0]'s top (its low bits pick the slot) */

_Static_assert(STORE_F_ALL <= STORE_MEM_FLAGS_MASK, "a slot keeps every store flag");
_Static_assert(STORE_MEM_METHOD_UNLISTED <= UINT16_MAX, "a slot keeps every method index");
_Static_assert(sizeof STORE_METHOD_UNLISTED <= STORE_METHOD_MAX, "an entry holds the unlisted method's name");

/*
 * One tracked call: 64 bytes (48 before the origin keys).  key[0] picks
 * the slot, key[1] the stripe; both together identify the call.
 */
struct mem_slot {
    uint64_t key[2];            /* SipHash-1-3-128 of the call key */
    uint64_t expires_ms;        /* caller's clock; expired when <= now */
    uint64_t first_seen_ms;
    uint64_t last_hash;
    uint64_t origin_bits;       /* store_entry.origin_bits */
    uint32_t origin_signature;
    uint32_t refused_dests;     /* store_entry.refused_dests */
    uint32_t route;             /* index into the route names */
    uint16_t method;            /* index into the method names, or STORE_MEM_METHOD_UNLISTED */
    uint8_t flags;              /* enum store_flag */
};

#define STORE_MEM_LINE 64             /* cache line: one slot each, never two */
_Static_assert(sizeof(struct mem_slot) == STORE_MEM_LINE, "a slot fills one cache line");

/*
 * cap zeroed slots, each on a cache line of its own (a lookup misses the
 * cache once, not twice), and their tags, all free.  -1 on ENOMEM.
 */
static int slots_alloc(size_t cap, struct mem_slot **slots, uint8_t **tags)
{
    *slots = aligned_alloc(STORE_MEM_LINE, cap * sizeof **slots);
    *tags = calloc(cap, 1);
    if (*slots == NULL || *tags == NULL) {
        free(*slots);
        free(*tags);
        *slots = NULL;
        *tags = NULL;
        return -1;
    }
    memset(*slots, 0, cap * sizeof **slots);
    return 0;
}

/* The tag of a used slot holding key. */
static inline uint8_t slot_tag(const uint64_t key[2])
{
    return (uint8_t)(STORE_MEM_TAG_USED | (key[0] >> STORE_MEM_TAG_SHIFT));
}

/*
 * A read-only name table: names by index, and an open-addressing index
 * over them (slot = index + 1, 0 = empty) to find a name's index.
 */
struct mem_names {
    char **text;
    size_t *len;                /* strlen(text[i]) */
    size_t n;
    uint32_t *index;
    size_t mask;                /* index slots - 1; a power of two minus one */
};

/* Cache-line aligned so that the locks of neighbouring stripes do not share a line. */
struct mem_stripe {
    _Alignas(STORE_MEM_LINE) pthread_mutex_t lock;
    struct mem_slot *slots;
    uint8_t *tags;              /* per slot: 0 free, else slot_tag() of its key */
    size_t cap;                 /* a power of two */
    size_t count;               /* used slots, expired ones included */
    size_t quota;               /* this stripe's share of max_calls */
    size_t sweep;               /* next slot store_expire() looks at */
    uint64_t swept_ms;          /* when store_expire() last visited it */
    size_t evictions;
    size_t expired;
    size_t unlisted;
    size_t unknown_routes;
};

/*
 * The method and route names of the policies run so far.  A set is never
 * changed once published: a reload that brings new names publishes a new
 * set that starts with every name of the old one at the same index (so
 * stored slots keep meaning the same), and the old set stays allocated
 * until the store is freed, since a worker may still be reading it.
 */
struct mem_name_set {
    struct mem_names methods;
    struct mem_names routes;
    struct mem_name_set *older;
};

struct mem_store {
    struct store base;
    uint8_t hash_key[HASH_SIPHASH_KEY_BYTES];
    size_t nstripes;
    struct mem_stripe *stripes;
    _Atomic(struct mem_name_set *) names;   /* read without a lock: see above */
};

static const struct store_ops mem_ops;

/* --- name tables ------------------------------------------------------- */

static uint64_t name_hash(const char *text, size_t len)
{
    return hash_fnv1a64(HASH_FNV64_OFFSET, text, len);
}

/* Index of text[0..len) in t, or -1. */
static long names_find(const struct mem_names *t, const char *text, size_t len)
{
    if (t->index == NULL)
        return -1;
    for (size_t i = (size_t)name_hash(text, len) & t->mask;; i = (i + 1) & t->mask) {
        uint32_t at = t->index[i];
        if (at == 0)
            return -1;
        const char *name = t->text[at - 1];
        if (strncmp(name, text, len) == 0 && name[len] == '\0')
            return (long)(at - 1);
    }
}

static void names_free(struct mem_names *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->text[i]);
    free(t->text);
    free(t->len);
    free(t->index);
    memset(t, 0, sizeof *t);
}

/*
 * Builds t from names[0..n), each cut to maxlen - 1 bytes and kept in
 * maxlen bytes, zeros after it; repeats are kept once.  -1 on ENOMEM or
 * when more than max distinct names are given.
 */
static int names_build(struct mem_names *t, const char *const *names, size_t n, size_t maxlen, size_t max)
{
    size_t slots = 1;
    memset(t, 0, sizeof *t);
    if (n == 0)
        return 0;
    while (slots < n * STORE_MEM_NAME_LOAD)
        slots *= 2;
    t->text = calloc(n, sizeof *t->text);
    t->len = calloc(n, sizeof *t->len);
    t->index = calloc(slots, sizeof *t->index);
    t->mask = slots - 1;
    if (t->text == NULL || t->len == NULL || t->index == NULL)
        goto fail;
    for (size_t k = 0; k < n; k++) {
        size_t len = strnlen(names[k], maxlen - 1);
        if (names_find(t, names[k], len) >= 0)
            continue;
        if (t->n == max)
            goto fail;
        char *copy = calloc(1, maxlen);     /* zero-padded to maxlen: slot_fill_entry() copies it whole */
        if (copy == NULL)
            goto fail;
        memcpy(copy, names[k], len);
        size_t i = (size_t)name_hash(copy, len) & t->mask;
        while (t->index[i] != 0)
            i = (i + 1) & t->mask;
        t->text[t->n] = copy;
        t->len[t->n] = len;
        t->index[i] = (uint32_t)++t->n;
    }
    return 0;
fail:
    names_free(t);
    return -1;
}

static void name_sets_free(struct mem_name_set *set)
{
    while (set != NULL) {
        struct mem_name_set *older = set->older;
        names_free(&set->methods);
        names_free(&set->routes);
        free(set);
        set = older;
    }
}

/* old's names first, at their indexes, then those of add[0..nadd) it lacks. */
static int names_build_after(struct mem_names *t, const struct mem_names *old, const char *const *add,
                             size_t nadd, size_t maxlen, size_t max)
{
    size_t nold = old != NULL ? old->n : 0;
    const char **all = calloc(nold + nadd > 0 ? nold + nadd : 1, sizeof *all);
    if (all == NULL)
        return -1;
    for (size_t i = 0; i < nold; i++)
        all[i] = old->text[i];
    for (size_t i = 0; i < nadd; i++)
        all[nold + i] = add[i];
    int rc = names_build(t, all, nold + nadd, maxlen, max);
    free(all);
    return rc;
}

/* A new set: older's names (may be NULL) and those of names; NULL on ENOMEM or too many methods. */
static struct mem_name_set *name_set_new(const struct mem_name_set *older, const struct store_names *names)
{
    struct mem_name_set *set = calloc(1, sizeof *set);
    if (set == NULL)
        return NULL;
    if (names_build_after(&set->methods, older != NULL ? &older->methods : NULL, names->methods,
                          names->nmethods, STORE_METHOD_MAX, STORE_MEM_METHODS_MAX) != 0 ||
        names_build_after(&set->routes, older != NULL ? &older->routes : NULL, names->routes, names->nroutes,
                          STORE_ROUTE_MAX, UINT32_MAX) != 0) {
        name_sets_free(set);
        return NULL;
    }
    return set;
}

/* --- one stripe ----------------------------------------------------------- */

static inline bool slot_expired(const struct mem_slot *sl, uint64_t now_ms)
{
    return sl->expires_ms <= now_ms;
}

static inline uint64_t expiry_after(uint64_t now_ms, uint64_t ttl_ms)
{
    return ttl_ms > UINT64_MAX - now_ms ? UINT64_MAX : now_ms + ttl_ms;
}

/* Slot index holding key, or cap when absent. */
static size_t stripe_find(const struct mem_stripe *st, const uint64_t key[2])
{
    size_t mask = st->cap - 1;
    uint8_t tag = slot_tag(key);
    for (size_t i = (size_t)key[0] & mask;; i = (i + 1) & mask) {
        uint8_t t = st->tags[i];
        if (t == 0)
            return st->cap;
        if (t == tag && st->slots[i].key[0] == key[0] && st->slots[i].key[1] == key[1])
            return i;
    }
}

/*
 * Empties slot i and pulls later entries of its probe run back into the
 * hole (backward-shift deletion), so lookups never need tombstones.  Only
 * slots at or after i (cyclically) change.
 */
static void stripe_delete(struct mem_stripe *st, size_t i)
{
    size_t mask = st->cap - 1;
    for (size_t j = i;;) {
        j = (j + 1) & mask;
        if (st->tags[j] == 0)
            break;
        const struct mem_slot *sj = &st->slots[j];
        size_t home = (size_t)sj->key[0] & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            st->slots[i] = *sj;
            st->tags[i] = st->tags[j];
            i = j;
        }
    }
    st->tags[i] = 0;
    st->count--;
}

static void slots_place(struct mem_slot *slots, uint8_t *tags, size_t cap, const struct mem_slot *sl, uint8_t tag)
{
    size_t mask = cap - 1;
    size_t i = (size_t)sl->key[0] & mask;
    while (tags[i] != 0)
        i = (i + 1) & mask;
    slots[i] = *sl;
    tags[i] = tag;
}

/* Doubles the array, dropping the entries that have expired by now_ms. */
static int stripe_grow(struct mem_stripe *st, uint64_t now_ms)
{
    size_t ncap = st->cap * 2;
    if (ncap < st->cap || ncap > SIZE_MAX / sizeof(struct mem_slot))
        return -1;
    struct mem_slot *ns;
    uint8_t *ntags;
    if (slots_alloc(ncap, &ns, &ntags) != 0)
        return -1;
    for (size_t i = 0; i < st->cap; i++) {
        struct mem_slot *sl = &st->slots[i];
        if (st->tags[i] == 0)
            continue;
        if (slot_expired(sl, now_ms)) {
            st->count--;
            st->expired++;
            continue;
        }
        slots_place(ns, ntags, ncap, sl, st->tags[i]);
    }
    free(st->slots);
    free(st->tags);
    /* atomic for mem_hint(), which reads them without the lock */
    __atomic_store_n(&st->slots, ns, __ATOMIC_RELAXED);
    __atomic_store_n(&st->tags, ntags, __ATOMIC_RELAXED);
    __atomic_store_n(&st->cap, ncap, __ATOMIC_RELAXED);
    st->sweep = 0;
    return 0;
}

/*
 * Frees room in a stripe at its quota, like a clock hand: it carries the
 * expiry sweep on for STORE_MEM_EVICT_SCAN slots from the sweep cursor
 * (further only while it has found nothing), removing the expired entries
 * it meets.  Only if there were none does it evict the soonest-expiring live
 * entry of that window, which counts as an eviction.  The cursor keeps
 * moving, so expired calls go before live ones and the victims are spread
 * over the whole table.
 */
static void stripe_make_room(struct mem_stripe *st, uint64_t now_ms)
{
    size_t mask = st->cap - 1;
    size_t victim = st->cap, freed = 0;
    size_t i = st->sweep & mask;
    for (size_t n = 0; n < st->cap; n++) {
        const struct mem_slot *sl = &st->slots[i];
        bool used = st->tags[i] != 0;
        if (used && slot_expired(sl, now_ms)) {
            /* The shift may pull another entry into i: look again. */
            stripe_delete(st, i);
            st->expired++;
            freed++;
            continue;
        }
        if (used && (victim == st->cap || sl->expires_ms < st->slots[victim].expires_ms))
            victim = i;
        i = (i + 1) & mask;
        if (n + 1 >= STORE_MEM_EVICT_SCAN && (freed > 0 || victim != st->cap))
            break;
    }
    st->sweep = i;
    if (freed == 0 && victim != st->cap) {
        stripe_delete(st, victim);
        st->evictions++;
    }
}

static const struct mem_name_set *mem_names_now(const struct mem_store *ms)
{
    return atomic_load_explicit(&ms->names, memory_order_acquire);
}

/*
 * Every field of *out from the slot; the names as kept (zero-padded to
 * their arrays' sizes), copied whole: a copy of a constant size is a few
 * moves, where one of the name's length is a call.
 */
static void slot_fill_entry(const struct mem_store *ms, const struct mem_slot *sl, struct store_entry *out)
{
    const struct mem_name_set *names = mem_names_now(ms);
    _Static_assert(sizeof out->method == STORE_METHOD_MAX && sizeof out->route == STORE_ROUTE_MAX,
                   "the names are kept in arrays of the entry's sizes");
    if (sl->method == STORE_MEM_METHOD_UNLISTED) {
        memcpy(out->method, STORE_METHOD_UNLISTED, sizeof STORE_METHOD_UNLISTED);
    } else {
        memcpy(out->method, names->methods.text[sl->method], sizeof out->method);
    }
    memcpy(out->route, names->routes.text[sl->route], sizeof out->route);
    out->first_seen_ms = sl->first_seen_ms;
    out->flags = sl->flags;
    out->last_hash = sl->last_hash;
    out->origin_bits = sl->origin_bits;
    out->origin_signature = sl->origin_signature;
    out->refused_dests = sl->refused_dests;
    out->expires_ms = sl->expires_ms;
}

/* --- the store ops ------------------------------------------------------ */

/* key's hash in h (from the hint when there is one) and its stripe. */
static struct mem_stripe *mem_stripe_of(struct mem_store *ms, const char *key, size_t klen,
                                        const struct store_hint *hint, uint64_t h[2])
{
    if (hint != NULL && hint->set) {
        h[0] = hint->h[0];
        h[1] = hint->h[1];
    } else {
        hash_siphash13_128(ms->hash_key, key, klen, h);
    }
    return &ms->stripes[(size_t)(h[1] >> 32) & (ms->nstripes - 1)];
}

/*
 * The hash, and the fetch of the tag and the slot at the key's home: a
 * lookup reads them first (one after the other), and most calls are found
 * there.  No lock is taken: the arrays are read with relaxed atomic loads
 * (stripe_grow() stores them so), and a prefetch of a stale address does
 * no harm.
 */
static void mem_hint(struct store *s, const char *key, size_t klen, struct store_hint *out)
{
    struct mem_store *ms = (struct mem_store *)s;
    struct mem_stripe *st = mem_stripe_of(ms, key, klen, NULL, out->h);
    out->set = true;
    size_t cap = __atomic_load_n(&st->cap, __ATOMIC_RELAXED);
    const uint8_t *tags = __atomic_load_n(&st->tags, __ATOMIC_RELAXED);
    const struct mem_slot *slots = __atomic_load_n(&st->slots, __ATOMIC_RELAXED);
    size_t i = (size_t)out->h[0] & (cap - 1);
    __builtin_prefetch(&tags[i]);
    __builtin_prefetch(&slots[i]);
}

/*
 * The live slot of h in st, or NULL; an expired one found there is removed
 * (and counted) on the way.  st->lock is held.
 */
static struct mem_slot *stripe_live(struct mem_stripe *st, const uint64_t h[2], uint64_t now_ms)
{
    size_t i = stripe_find(st, h);
    if (i == st->cap)
        return NULL;
    if (slot_expired(&st->slots[i], now_ms)) {
        stripe_delete(st, i);
        st->expired++;
        return NULL;
    }
    return &st->slots[i];
}

static int mem_get(struct store *s, const char *key, size_t klen, uint64_t now_ms, struct store_entry *out)
{
    struct mem_store *ms = (struct mem_store *)s;
    uint64_t h[2];
    struct mem_stripe *st = mem_stripe_of(ms, key, klen, NULL, h);

    lockstat_lock(&st->lock, LOCKSTAT_STORE);
    struct mem_slot *sl = stripe_live(st, h, now_ms);
    if (sl != NULL && out != NULL)
        slot_fill_entry(ms, sl, out);
    pthread_mutex_unlock(&st->lock);
    return sl != NULL;
}

/* Sets a slot's contents from e; the names are already interned. */
static void slot_set(struct mem_slot *sl, const uint64_t h[2], const struct store_entry *e, uint16_t method,
                     uint32_t route, uint64_t ttl_ms, uint64_t now_ms)
{
    sl->key[0] = h[0];
    sl->key[1] = h[1];
    sl->expires_ms = expiry_after(now_ms, ttl_ms);
    sl->first_seen_ms = e->first_seen_ms;
    sl->last_hash = e->last_hash;
    sl->origin_bits = e->origin_bits;
    sl->origin_signature = e->origin_signature;
    sl->refused_dests = e->refused_dests;
    sl->method = method;
    sl->route = route;
    sl->flags = (uint8_t)(e->flags & STORE_MEM_FLAGS_MASK);
}

static int mem_put(struct store *s, const char *key, size_t klen, const struct store_hint *hint,
                   const struct store_entry *e, uint64_t ttl_ms, uint64_t now_ms, struct store_entry *winner)
{
    struct mem_store *ms = (struct mem_store *)s;
    uint64_t h[2];
    struct mem_stripe *st = mem_stripe_of(ms, key, klen, hint, h);
    int rc = -1;

    lockstat_lock(&st->lock, LOCKSTAT_STORE);
    size_t i = stripe_find(st, h);
    if (i != st->cap && !slot_expired(&st->slots[i], now_ms)) {
        if (winner != NULL)
            slot_fill_entry(ms, &st->slots[i], winner);
        rc = 0;
        goto out;
    }

    const struct mem_name_set *names = mem_names_now(ms);
    long route = names_find(&names->routes, e->route, strnlen(e->route, STORE_ROUTE_MAX - 1));
    if (route < 0) {
        st->unknown_routes++;
        goto out;
    }
    long method = names_find(&names->methods, e->method, strnlen(e->method, STORE_METHOD_MAX - 1));
    if (method < 0) {
        st->unlisted++;
        method = STORE_MEM_METHOD_UNLISTED;
    }

    if (i != st->cap) {
        /* The call is there but expired: reuse its slot. */
        st->expired++;
    } else {
        if (st->count >= st->quota)
            stripe_make_room(st, now_ms);
        if ((st->count + 1) * STORE_MEM_LOAD_DEN > st->cap * STORE_MEM_LOAD_NUM
            && stripe_grow(st, now_ms) != 0 && st->count + 1 >= st->cap)
            goto out;
        size_t mask = st->cap - 1;
        for (i = (size_t)h[0] & mask; st->tags[i] != 0; i = (i + 1) & mask)
            ;
        st->tags[i] = slot_tag(h);
        st->count++;
    }
    slot_set(&st->slots[i], h, e, (uint16_t)method, (uint32_t)route, ttl_ms, now_ms);
    rc = 1;
out:
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static void slot_touch(struct mem_slot *sl, uint64_t ttl_ms, unsigned set, unsigned clear, uint64_t last_hash,
                       uint64_t now_ms)
{
    sl->expires_ms = expiry_after(now_ms, ttl_ms);
    sl->flags = (uint8_t)((sl->flags | (set & STORE_MEM_FLAGS_MASK)) & ~clear);
    sl->last_hash = last_hash;
}

static int mem_update(struct store *s, const char *key, size_t klen, uint64_t ttl_ms, unsigned set, unsigned clear,
                      uint64_t last_hash, uint64_t now_ms)
{
    struct mem_store *ms = (struct mem_store *)s;
    uint64_t h[2];
    struct mem_stripe *st = mem_stripe_of(ms, key, klen, NULL, h);

    lockstat_lock(&st->lock, LOCKSTAT_STORE);
    struct mem_slot *sl = stripe_live(st, h, now_ms);
    if (sl != NULL)
        slot_touch(sl, ttl_ms, set, clear, last_hash, now_ms);
    pthread_mutex_unlock(&st->lock);
    return sl != NULL;
}

static int mem_follow(struct store *s, const char *key, size_t klen, const struct store_hint *hint,
                      uint64_t now_ms, struct store_entry *out, store_touch_fn touch, void *arg)
{
    struct mem_store *ms = (struct mem_store *)s;
    uint64_t h[2];
    struct mem_stripe *st = mem_stripe_of(ms, key, klen, hint, h);

    lockstat_lock(&st->lock, LOCKSTAT_STORE);
    struct mem_slot *sl = stripe_live(st, h, now_ms);
    if (sl != NULL) {
        struct store_touch t;
        slot_fill_entry(ms, sl, out);
        touch(arg, out, &t);
        slot_touch(sl, t.ttl_ms, t.set, t.clear, t.last_hash, now_ms);
    }
    pthread_mutex_unlock(&st->lock);
    return sl != NULL;
}

/*
 * Visits each stripe's slots in proportion to the time since its last
 * visit (its whole capacity per STORE_MEM_SWEEP_PASS_MS), at least
 * STORE_MEM_SWEEP_MIN and at most its share of STORE_MEM_SWEEP_SLOTS, each
 * lock held for its stripe only, resuming where the last call stopped, and
 * removes the expired entries it meets.  Repeated calls cover the whole
 * table, even at one instant.
 */
static size_t stripe_sweep_budget(struct mem_stripe *st, size_t most, uint64_t now_ms)
{
    uint64_t elapsed = now_ms > st->swept_ms ? now_ms - st->swept_ms : 0;
    if (elapsed > STORE_MEM_SWEEP_PASS_MS)
        elapsed = STORE_MEM_SWEEP_PASS_MS;
    size_t budget = (size_t)((uint64_t)st->cap * elapsed / STORE_MEM_SWEEP_PASS_MS);
    if (budget < STORE_MEM_SWEEP_MIN)
        budget = STORE_MEM_SWEEP_MIN;
    st->swept_ms = now_ms;
    return budget < most ? budget : most;
}

static size_t mem_expire(struct store *s, uint64_t now_ms)
{
    struct mem_store *ms = (struct mem_store *)s;
    size_t most = STORE_MEM_SWEEP_SLOTS / ms->nstripes;
    size_t removed = 0;

    for (size_t k = 0; k < ms->nstripes; k++) {
        struct mem_stripe *st = &ms->stripes[k];
        lockstat_lock(&st->lock, LOCKSTAT_STORE);
        size_t budget = stripe_sweep_budget(st, most, now_ms);
        size_t mask = st->cap - 1;
        for (size_t n = 0; n < budget && st->count > 0; n++) {
            size_t i = st->sweep & mask;
            if (st->tags[i] != 0 && slot_expired(&st->slots[i], now_ms)) {
                /* The shift may pull an unvisited entry into i: look again. */
                stripe_delete(st, i);
                st->expired++;
                removed++;
            } else {
                st->sweep = (i + 1) & mask;
            }
        }
        pthread_mutex_unlock(&st->lock);
    }
    return removed;
}

static size_t mem_count(struct store *s)
{
    struct mem_store *ms = (struct mem_store *)s;
    size_t n = 0;
    for (size_t k = 0; k < ms->nstripes; k++) {
        struct mem_stripe *st = &ms->stripes[k];
        lockstat_lock(&st->lock, LOCKSTAT_STORE);
        n += st->count;
        pthread_mutex_unlock(&st->lock);
    }
    return n;
}

/*
 * A reload: the new policy's names join the set.  Called by one thread at
 * a time (the main thread) while workers read the set.
 */
static int mem_add_names(struct store *s, const struct store_names *names)
{
    struct mem_store *ms = (struct mem_store *)s;
    struct mem_name_set *now = atomic_load_explicit(&ms->names, memory_order_acquire);
    bool missing = false;
    for (size_t i = 0; i < names->nroutes && !missing; i++)
        missing = names_find(&now->routes, names->routes[i], strnlen(names->routes[i], STORE_ROUTE_MAX - 1)) < 0;
    for (size_t i = 0; i < names->nmethods && !missing; i++)
        missing = names_find(&now->methods, names->methods[i], strnlen(names->methods[i], STORE_METHOD_MAX - 1)) < 0;
    if (!missing)
        return 0;
    struct mem_name_set *set = name_set_new(now, names);
    if (set == NULL)
        return -1;
    set->older = now;
    atomic_store_explicit(&ms->names, set, memory_order_release);
    return 0;
}

static void mem_free(struct store *s)
{
    struct mem_store *ms = (struct mem_store *)s;
    for (size_t k = 0; k < ms->nstripes; k++) {
        struct mem_stripe *st = &ms->stripes[k];
        pthread_mutex_destroy(&st->lock);
        free(st->slots);
        free(st->tags);
    }
    free(ms->stripes);
    name_sets_free(atomic_load(&ms->names));
    free(ms);
}

static const struct store_ops mem_ops = {
    .name = "memory",
    .get = mem_get,
    .put = mem_put,
    .update = mem_update,
    .follow = mem_follow,
    .hint = mem_hint,
    .expire = mem_expire,
    .count = mem_count,
    .free = mem_free,
    .add_names = mem_add_names,
};

/*
 * Small bounded stores get fewer stripes so that each stripe's share of
 * max_calls stays large enough for the sampled eviction to be fair.  A
 * power of two, so that a key's stripe is a mask of its hash: a division
 * there would sit between the hash and every lookup's first load.
 */
_Static_assert((STORE_MEM_STRIPES & (STORE_MEM_STRIPES - 1)) == 0, "stripes are picked by a mask");

static size_t mem_stripe_count(size_t max_calls)
{
    size_t n = STORE_MEM_STRIPES;
    if (max_calls == 0)
        return n;
    while (n > 1 && max_calls / n < STORE_MEM_STRIPE_MIN_CALLS)
        n /= 2;
    return n;
}

struct store *store_mem_new(size_t max_calls, const struct store_names *names)
{
    struct mem_store *ms = calloc(1, sizeof *ms);
    if (ms == NULL)
        return NULL;
    ms->base.ops = &mem_ops;
    hash_random_key(ms->hash_key);
    ms->nstripes = mem_stripe_count(max_calls);
    struct mem_name_set *set = name_set_new(NULL, names);
    if (set == NULL) {
        free(ms);
        return NULL;
    }
    atomic_init(&ms->names, set);

    size_t bytes = ms->nstripes * sizeof(struct mem_stripe);
    ms->stripes = aligned_alloc(_Alignof(struct mem_stripe), bytes);
    if (ms->stripes == NULL) {
        name_sets_free(set);
        free(ms);
        return NULL;
    }
    memset(ms->stripes, 0, bytes);
    for (size_t k = 0; k < ms->nstripes; k++) {
        struct mem_stripe *st = &ms->stripes[k];
        st->quota = SIZE_MAX;
        if (max_calls != 0)
            st->quota = max_calls / ms->nstripes + (k < max_calls % ms->nstripes ? 1 : 0);
        st->cap = STORE_MEM_INITIAL_SLOTS;
        if (slots_alloc(st->cap, &st->slots, &st->tags) != 0 || pthread_mutex_init(&st->lock, NULL) != 0) {
            free(st->slots);
            free(st->tags);
            for (size_t j = 0; j < k; j++) {
                pthread_mutex_destroy(&ms->stripes[j].lock);
                free(ms->stripes[j].slots);
                free(ms->stripes[j].tags);
            }
            free(ms->stripes);
            name_sets_free(set);
            free(ms);
            return NULL;
        }
    }
    return &ms->base;
}

int store_mem_stats(struct store *s, struct store_mem_stats *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || s->ops != &mem_ops)
        return -1;
    struct mem_store *ms = (struct mem_store *)s;
    out->stripes = ms->nstripes;
    out->slot_bytes = sizeof(struct mem_slot);
    out->bytes = sizeof *ms + ms->nstripes * sizeof(struct mem_stripe);
    for (const struct mem_name_set *set = mem_names_now(ms); set != NULL; set = set->older)
        out->bytes += sizeof *set + (set->methods.n + set->routes.n) * (sizeof(char *) + sizeof(size_t))
                      + (set->methods.mask + set->routes.mask + 2) * sizeof(uint32_t);
    for (size_t k = 0; k < ms->nstripes; k++) {
        struct mem_stripe *st = &ms->stripes[k];
        lockstat_lock(&st->lock, LOCKSTAT_STORE);
        out->calls += st->count;
        out->slots += st->cap;
        out->bytes += st->cap * (sizeof(struct mem_slot) + sizeof *st->tags);
        out->evictions += st->evictions;
        out->expired += st->expired;
        out->unlisted += st->unlisted;
        out->unknown_routes += st->unknown_routes;
        pthread_mutex_unlock(&st->lock);
    }
    return 0;
}

size_t store_mem_evictions(struct store *s)
{
    struct store_mem_stats stats;
    return store_mem_stats(s, &stats) == 0 ? stats.evictions : 0;
}

/* --- the names of the running policy ------------------------------------ */

int store_names_from_conf(const struct conf *conf, struct store_names *names)
{
    size_t nmethods = SIP_METHOD_COUNT, nroutes = conf->nroutes + 1;
    for (size_t i = 0; i < conf->nroutes; i++)
        nmethods += conf->routes[i].match.nmethods;
    const char **methods = calloc(nmethods, sizeof *methods);
    const char **routes = calloc(nroutes, sizeof *routes);
    if (methods == NULL || routes == NULL) {
        free(methods);
        free(routes);
        return -1;
    }
    size_t m = 0;
    for (int id = SIP_METHOD_OTHER + 1; id < SIP_METHOD_COUNT; id++)
        methods[m++] = sip_method_name((enum sip_method)id);
    for (size_t i = 0; i < conf->nroutes; i++) {
        const struct conf_match *match = &conf->routes[i].match;
        for (size_t j = 0; j < match->nmethods; j++)
            methods[m++] = match->methods[j];
        routes[i] = conf->routes[i].name;
    }
    routes[conf->nroutes] = policy_route_name(conf, POLICY_DEFAULT);
    names->methods = methods;
    names->nmethods = m;
    names->routes = routes;
    names->nroutes = nroutes;
    return 0;
}

void store_names_free(struct store_names *names)
{
    free((void *)names->methods);
    free((void *)names->routes);
    names->methods = names->routes = NULL;
    names->nmethods = names->nroutes = 0;
}

int store_add_conf_names(struct store *s, const struct conf *conf)
{
    if (s->ops->add_names == NULL)
        return 0;
    struct store_names names;
    if (store_names_from_conf(conf, &names) != 0)
        return -1;
    int rc = s->ops->add_names(s, &names);
    store_names_free(&names);
    return rc;
}

struct store *store_mem_from_conf(const struct conf *conf)
{
    struct store_names names;
    if (store_names_from_conf(conf, &names) != 0) {
        log_error("memory store: out of memory");
        return NULL;
    }
    struct store *s = store_mem_new(conf->store_max_calls, &names);
    if (s == NULL)
        log_error("memory store: out of memory, or more than %u method names in the routes",
                  STORE_MEM_METHODS_MAX);
    store_names_free(&names);
    return s;
}
