/*
 * hold.c - the orphan hold queue: packets of calls not known yet wait here.
 *
 * Each held packet is one allocation holding its bookkeeping, a copy of
 * its call key and a copy of its bytes.  It sits on two lists:
 *
 * - the global FIFO (arrival order, which is deadline order because every
 *   packet waits the same wait_ms), which hold_expire() eats from the head;
 * - its call's FIFO, found through a chained hash table keyed by the exact
 *   key bytes, which hold_take() empties.
 *
 * A call node exists while its call has packets; its key is the one copied
 * into its oldest packet.  While a recheck is due for it, the call node is
 * also on that round's FIFO of calls (due order, since every call waits the
 * same), and leaves it when it is rechecked or its last packet goes.
 *
 * The byte bound counts each packet's key and bytes plus HOLD_PKT_OVERHEAD,
 * a fixed upper bound on its share of the bookkeeping (checked below), so
 * that a flood of small packets cannot slip past it.
 *
 * Release callbacks may add to and take from the same queue.  So each
 * packet is unlinked from both lists before its callback runs, every loop
 * re-reads the queue after each callback, and a release pass stops at
 * packets added after it started (sequence numbers): a callback that holds
 * again cannot keep a pass going forever.
 */
#include "hold.h"

#include "hash.h"
#include "list.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define HOLD_BUCKETS_INITIAL    64      /* call hash buckets at first; a power of two */
#define HOLD_CALLS_PER_BUCKET   1       /* grow the buckets beyond this load */


struct hold_call;

struct hold_pkt {
    struct list_link link;          /* global FIFO */
    struct hold_pkt *call_next;     /* this call's FIFO */
    struct hold_call *call;
    uint64_t seq;                   /* arrival number */
    uint64_t since_ms;
    uint64_t deadline_ms;
    size_t klen;
    size_t len;
    char bytes[];                   /* key, then packet */
};

struct hold_call {
    struct hold_call *bucket_next;
    struct hold_pkt *head;          /* oldest; holds the key */
    struct hold_pkt *tail;
    uint64_t hash;
    struct list_link rc_link;       /* FIFO of the round whose recheck is due next */
    uint64_t since_ms;              /* when its first packet was held */
    unsigned round;                 /* next recheck round; HOLD_RECHECKS: none */
};

/*
 * Per packet: its node, at most one call node, and at most two bucket
 * pointers (hold_grow() doubles the buckets once the calls outnumber them).
 */
_Static_assert(sizeof(struct hold_pkt) + sizeof(struct hold_call) + 2 * sizeof(struct hold_call *)
               <= HOLD_PKT_OVERHEAD, "HOLD_PKT_OVERHEAD must cover a packet's bookkeeping");

struct hold {
    size_t max_held;
    size_t max_bytes;
    size_t count;
    size_t bytes;                   /* hold_cost() of every held packet */
    uint64_t wait_ms;
    uint64_t next_seq;
    uint8_t hash_key[HASH_SIPHASH_KEY_BYTES];  /* hold_hash()'s */
    struct list pkts;               /* every held packet, oldest first */
    struct hold_call **buckets;
    size_t nbuckets;                /* a power of two */
    size_t ncalls;
    struct list rechecks[HOLD_RECHECKS];    /* per round: its calls, due first */
    char *rc_key;                   /* the key hold_recheck() hands out */
    size_t rc_key_cap;
};

static inline struct hold_pkt *hold_oldest(const struct hold *h)
{
    return list_first_entry(&h->pkts, struct hold_pkt, link);
}

/* The call whose round-`round` recheck is due first, or NULL. */
static inline struct hold_call *rc_first(const struct hold *h, unsigned round)
{
    return list_first_entry(&h->rechecks[round], struct hold_call, rc_link);
}

static inline const uint8_t *pkt_data(const struct hold_pkt *p)
{
    return (const uint8_t *)p->bytes + p->klen;
}

/* What a packet counts against max_bytes; hold_add() has checked the sum fits. */
static inline size_t hold_cost(size_t klen, size_t len)
{
    return klen + len + HOLD_PKT_OVERHEAD;
}

/*
 * Keyed SipHash with a random per-queue key: Call-IDs come from the
 * network, and nobody who does not know the key can make them share a
 * bucket.
 */
static uint64_t hold_hash(const struct hold *h, const char *key, size_t klen)
{
    uint64_t out[2];
    hash_siphash128(h->hash_key, key, klen, out);
    return out[0];
}

static struct hold_call *hold_find(const struct hold *h, uint64_t hash, const char *key, size_t klen)
{
    struct hold_call *c = h->buckets[hash & (h->nbuckets - 1)];
    for (; c != NULL; c = c->bucket_next) {
        const struct hold_pkt *p = c->head;
        if (c->hash == hash && p->klen == klen && (klen == 0 || memcmp(p->bytes, key, klen) == 0))
            return c;
    }
    return NULL;
}

/* Doubles the bucket array; on failure the chains just get longer. */
static void hold_grow(struct hold *h)
{
    size_t n = h->nbuckets * 2;
    struct hold_call **nb = calloc(n, sizeof *nb);
    if (nb == NULL)
        return;
    for (size_t i = 0; i < h->nbuckets; i++) {
        struct hold_call *c = h->buckets[i];
        while (c != NULL) {
            struct hold_call *next = c->bucket_next;
            size_t b = c->hash & (n - 1);
            c->bucket_next = nb[b];
            nb[b] = c;
            c = next;
        }
    }
    free(h->buckets);
    h->buckets = nb;
    h->nbuckets = n;
}

/* When round `round` of c's rechecks is due: at (round + 1) / (HOLD_RECHECKS + 1) of the wait. */
static uint64_t rc_due(const struct hold *h, const struct hold_call *c)
{
    return c->since_ms + h->wait_ms * (c->round + 1) / (HOLD_RECHECKS + 1);
}

/* Puts c at the tail of its round's FIFO (nothing after the last round). */
static void rc_schedule(struct hold *h, struct hold_call *c)
{
    if (c->round < HOLD_RECHECKS)
        list_insert_tail(&h->rechecks[c->round], &c->rc_link);
}

static void rc_unschedule(struct hold *h, struct hold_call *c)
{
    if (c->round < HOLD_RECHECKS)
        list_remove(&h->rechecks[c->round], &c->rc_link);
}

static void hold_call_remove(struct hold *h, struct hold_call *c)
{
    rc_unschedule(h, c);
    struct hold_call **pp = &h->buckets[c->hash & (h->nbuckets - 1)];
    while (*pp != c)
        pp = &(*pp)->bucket_next;
    *pp = c->bucket_next;
    h->ncalls--;
    free(c);
}

/* Takes p off both lists (and drops its call node if p was its last packet). */
static void hold_unlink(struct hold *h, struct hold_pkt *p)
{
    list_remove(&h->pkts, &p->link);

    struct hold_call *c = p->call;
    struct hold_pkt **pp = &c->head;
    struct hold_pkt *before = NULL;
    while (*pp != p) {
        before = *pp;
        pp = &(*pp)->call_next;
    }
    *pp = p->call_next;
    if (c->tail == p)
        c->tail = before;
    if (c->head == NULL)
        hold_call_remove(h, c);
    h->count--;
    h->bytes -= hold_cost(p->klen, p->len);
}

/* Unlinks p, hands it to fn and frees it. */
static void hold_release(struct hold *h, struct hold_pkt *p, hold_release_fn fn, void *arg)
{
    hold_unlink(h, p);
    if (fn != NULL)
        fn(arg, p->bytes, p->klen, pkt_data(p), p->len, p->since_ms);
    free(p);
}

struct hold *hold_new(size_t max_held, size_t max_bytes, uint64_t wait_ms)
{
    struct hold *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->max_held = max_held;
    h->max_bytes = max_bytes;
    h->wait_ms = wait_ms;
    hash_random_key(h->hash_key);
    h->nbuckets = HOLD_BUCKETS_INITIAL;
    h->buckets = calloc(h->nbuckets, sizeof *h->buckets);
    if (h->buckets == NULL) {
        free(h);
        return NULL;
    }
    return h;
}

void hold_free(struct hold *h)
{
    if (h == NULL)
        return;
    struct list_link *pl, *pnext;
    list_foreach_safe(pl, pnext, &h->pkts)
        free(list_entry(pl, struct hold_pkt, link));
    for (size_t i = 0; i < h->nbuckets; i++) {
        for (struct hold_call *c = h->buckets[i], *next; c != NULL; c = next) {
            next = c->bucket_next;
            free(c);
        }
    }
    free(h->buckets);
    free(h->rc_key);
    free(h);
}

int hold_add(struct hold *h, const char *key, size_t klen, const uint8_t *pkt, size_t len, uint64_t now_ms)
{
    if (h->count >= h->max_held)
        return -1;
    /* h->bytes <= h->max_bytes always holds, so the subtraction cannot wrap */
    if (len > SIZE_MAX - HOLD_PKT_OVERHEAD || klen > SIZE_MAX - HOLD_PKT_OVERHEAD - len ||
        hold_cost(klen, len) > h->max_bytes - h->bytes)
        return -1;
    struct hold_pkt *p = malloc(sizeof *p + klen + len);
    if (p == NULL)
        return -1;

    uint64_t hash = hold_hash(h, key, klen);
    struct hold_call *c = hold_find(h, hash, key, klen);
    if (c == NULL) {
        c = malloc(sizeof *c);
        if (c == NULL) {
            free(p);
            return -1;
        }
        if (h->ncalls >= h->nbuckets * HOLD_CALLS_PER_BUCKET)
            hold_grow(h);
        size_t b = hash & (h->nbuckets - 1);
        c->hash = hash;
        c->head = c->tail = NULL;
        c->bucket_next = h->buckets[b];
        h->buckets[b] = c;
        h->ncalls++;
        c->since_ms = now_ms;
        c->round = 0;
        rc_schedule(h, c);
    }

    if (klen > 0)
        memcpy(p->bytes, key, klen);
    if (len > 0)
        memcpy(p->bytes + klen, pkt, len);
    p->klen = klen;
    p->len = len;
    p->seq = h->next_seq++;
    p->since_ms = now_ms;
    p->deadline_ms = h->wait_ms > UINT64_MAX - now_ms ? UINT64_MAX : now_ms + h->wait_ms;
    p->call = c;
    p->call_next = NULL;
    if (c->tail != NULL)
        c->tail->call_next = p;
    else
        c->head = p;
    c->tail = p;
    list_insert_tail(&h->pkts, &p->link);
    h->count++;
    h->bytes += hold_cost(klen, len);
    return 0;
}

size_t hold_take(struct hold *h, const char *key, size_t klen, hold_release_fn fn, void *arg)
{
    if (h->count == 0)
        return 0;                   /* the usual case: nothing held, nothing to hash */
    uint64_t hash = hold_hash(h, key, klen);
    uint64_t end_seq = h->next_seq;
    size_t n = 0;
    for (;;) {
        struct hold_call *c = hold_find(h, hash, key, klen);
        if (c == NULL || c->head->seq >= end_seq)
            break;
        hold_release(h, c->head, fn, arg);
        n++;
    }
    return n;
}

size_t hold_expire(struct hold *h, uint64_t now_ms, hold_release_fn fn, void *arg)
{
    uint64_t end_seq = h->next_seq;
    size_t n = 0;
    struct hold_pkt *p;
    while ((p = hold_oldest(h)) != NULL && p->deadline_ms <= now_ms && p->seq < end_seq) {
        hold_release(h, p, fn, arg);
        n++;
    }
    return n;
}

size_t hold_flush(struct hold *h, hold_release_fn fn, void *arg)
{
    uint64_t end_seq = h->next_seq;
    size_t n = 0;
    struct hold_pkt *p;
    while ((p = hold_oldest(h)) != NULL && p->seq < end_seq) {
        hold_release(h, p, fn, arg);
        n++;
    }
    return n;
}

uint64_t hold_next_deadline(const struct hold *h)
{
    const struct hold_pkt *p = hold_oldest(h);
    return p != NULL ? p->deadline_ms : UINT64_MAX;
}

uint64_t hold_next_recheck(const struct hold *h)
{
    uint64_t next = UINT64_MAX;
    for (unsigned i = 0; i < HOLD_RECHECKS; i++) {
        const struct hold_call *c = rc_first(h, i);
        if (c != NULL && rc_due(h, c) < next)
            next = rc_due(h, c);
    }
    return next;
}

/*
 * fn gets a copy of the key (the one in the call's oldest packet goes away
 * if fn takes the call); the copy's buffer is kept for the next call.
 */
static const char *rc_key_copy(struct hold *h, const struct hold_call *c)
{
    size_t klen = c->head->klen;
    if (klen > h->rc_key_cap) {
        char *k = realloc(h->rc_key, klen);
        if (k == NULL)
            return NULL;
        h->rc_key = k;
        h->rc_key_cap = klen;
    }
    if (klen > 0)
        memcpy(h->rc_key, c->head->bytes, klen);
    return h->rc_key != NULL ? h->rc_key : "";
}

size_t hold_recheck(struct hold *h, uint64_t now_ms, hold_recheck_fn fn, void *arg)
{
    size_t n = 0;
    for (unsigned round = 0; round < HOLD_RECHECKS; round++) {
        struct hold_call *c;
        while ((c = rc_first(h, round)) != NULL && rc_due(h, c) <= now_ms) {
            /* scheduled for its next round first: fn may take the call and free c */
            rc_unschedule(h, c);
            c->round++;
            rc_schedule(h, c);
            size_t klen = c->head->klen;
            const char *key = rc_key_copy(h, c);
            if (key != NULL)
                fn(arg, key, klen);
            n++;
        }
    }
    return n;
}

size_t hold_count(const struct hold *h)
{
    return h->count;
}

size_t hold_bytes(const struct hold *h)
{
    return h->bytes;
}

int hold_has(const struct hold *h, const char *key, size_t klen)
{
    if (h->count == 0)
        return 0;                   /* the usual case: nothing held, nothing to hash */
    return hold_find(h, hold_hash(h, key, klen), key, klen) != NULL;
}
