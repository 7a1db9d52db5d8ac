/*
 * dedup.c - the window of recently sent packets (see dedup.h).
 *
 * One slot array for the whole table, cut into stripes, each cut into
 * buckets of DEDUP_WAYS slots (two cache lines, aligned).  A key's stripe
 * and its two candidate buckets come from key[1], the identity's alone
 * (where()), so a packet's buckets are known, and fetched, before its
 * destinations; a slot keeps key[0], which has the destination in it: two
 * keys share it and their buckets by accident once in 2^64 comparisons,
 * and a check makes at most 2 * DEDUP_WAYS of them.  Two choices keep the
 * buckets even: a key goes to the one with fewer live entries, so live
 * entries are overwritten only when the table is nearly full of them, not
 * whenever one bucket of many is crowded.
 *
 * A slot holds the key and the end of its window; a deadline of 0 marks a
 * slot never used.  Since empty < over <= now < live, a bucket's slot with
 * the smallest deadline is the one to take: empty first, then one whose
 * window is over, then the live entry that expires first.  Nothing is ever
 * deleted: no tombstones, no sweeps, no timer.
 */
#include "dedup.h"

#include "bigmem.h"
#include "hash.h"
#include "invariant.h"
#include "lockstat.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define DEDUP_STRIPE_MIN_SLOTS  1024u   /* fewer stripes below this many slots each, so load evens out */
#define DEDUP_CACHE_LINE        64u
#define DEDUP_KEY_FORMAT        5u      /* first byte hashed: changes when the encoding does */
#define DEDUP_ADDR_MAX          16u
#define DEDUP_HALF_BITS         32

/* A bucket's lines fetched ahead, its eight slots looked at without a loop's bookkeeping; the hash's steps inlined. */
#define DEDUP_BUCKET_LINES (DEDUP_WAYS * DEDUP_SLOT_BYTES / DEDUP_CACHE_LINE)

#if defined(__GNUC__)
#define DEDUP_PREFETCH(addr) __builtin_prefetch(addr)
#define DEDUP_UNROLL _Pragma("GCC unroll 8")
#define DEDUP_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define DEDUP_PREFETCH(addr) ((void)(addr))
#define DEDUP_ALWAYS_INLINE inline
#define DEDUP_UNROLL
#endif

/* 16 bytes: DEDUP_SLOT_BYTES. */
struct dedup_slot {
    uint64_t key;               /* key[0]; key[1] chose the stripe and the bucket */
    uint64_t deadline_ms;       /* a copy is a duplicate while now < this; 0: never used */
};

_Static_assert(sizeof(struct dedup_slot) == DEDUP_SLOT_BYTES, "dedup.h states the slot size");
_Static_assert(DEDUP_WAYS * DEDUP_SLOT_BYTES == 2 * DEDUP_CACHE_LINE, "a bucket is two cache lines (dedup_hash() fetches both)");

/* Cache-line aligned so that the locks of neighbouring stripes do not share a line. */
struct dedup_stripe {
    _Alignas(DEDUP_CACHE_LINE) atomic_bool lock;   /* stripe_lock() */
    struct dedup_slot *slots;   /* nbuckets * DEDUP_WAYS, in d->slots */
    uint64_t checked;
    uint64_t duplicates;
    uint64_t evicted_live;
    size_t entries;
};

struct dedup {
    uint8_t hash_key[HASH_SIPHASH_KEY_BYTES];
    size_t nstripes;
    size_t nbuckets;            /* per stripe */
    struct dedup_stripe *stripes;
    struct dedup_slot *slots;   /* every stripe's slots, in mem */
    struct bigmem mem;
    bool populated;             /* dedup_populate() ran */
};

/*
 * A spin lock, held for one look at two buckets (a few hundred
 * instructions at most): a waiter spins on a plain load until it is free.
 * Inline, it costs a packet one atomic exchange and one store.
 */
static inline void stripe_lock(struct dedup_stripe *st)
{
    lockstat_count(LOCKSTAT_DEDUP);
    while (atomic_exchange_explicit(&st->lock, true, memory_order_acquire))
        while (atomic_load_explicit(&st->lock, memory_order_relaxed))
            ;
}

static inline void stripe_unlock(struct dedup_stripe *st)
{
    atomic_store_explicit(&st->lock, false, memory_order_release);
}

/* x scaled from [0, 2^32) onto [0, n): a bucket without a division. */
static inline size_t scale32(uint64_t x, size_t n)
{
    return (size_t)(((x & UINT32_MAX) * (uint64_t)n) >> DEDUP_HALF_BITS);
}

/* How many stripes for max_entries slots: fewer for small tables, so each keeps some buckets. */
static size_t stripe_count(size_t max_entries, unsigned stripes)
{
    size_t n = stripes == 0 ? DEDUP_STRIPES_DEFAULT : stripes;
    if (n > DEDUP_STRIPES_MAX)
        n = DEDUP_STRIPES_MAX;
    size_t most = max_entries / DEDUP_STRIPE_MIN_SLOTS;
    if (n > most)
        n = most > 0 ? most : 1;
    return n;
}

struct dedup *dedup_new(size_t max_entries, unsigned stripes)
{
    if (max_entries == 0)
        return NULL;
    size_t nstripes = stripe_count(max_entries, stripes);
    size_t nbuckets = max_entries / (nstripes * DEDUP_WAYS);
    if (nbuckets == 0)
        nbuckets = 1;
    size_t nslots = nstripes * nbuckets * DEDUP_WAYS;
    if (nbuckets > UINT32_MAX || nslots > SIZE_MAX / 2 / sizeof(struct dedup_slot))
        return NULL;

    struct dedup *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    hash_random_key(d->hash_key);
    d->nstripes = nstripes;
    d->nbuckets = nbuckets;
    /* zero, resident as first written or by dedup_populate(), on huge pages where the kernel gives them (bigmem.h) */
    d->slots = bigmem_alloc(&d->mem, nslots * sizeof(struct dedup_slot));
    d->stripes = aligned_alloc(_Alignof(struct dedup_stripe), nstripes * sizeof(struct dedup_stripe));
    if (d->slots == NULL || d->stripes == NULL)
        goto error;
    memset(d->stripes, 0, nstripes * sizeof(struct dedup_stripe));
    for (size_t k = 0; k < nstripes; k++) {
        struct dedup_stripe *st = &d->stripes[k];
        st->slots = d->slots + k * nbuckets * DEDUP_WAYS;
        atomic_init(&st->lock, false);
    }
    return d;

error:
    bigmem_free(&d->mem);
    free(d->stripes);
    free(d);
    return NULL;
}

void dedup_populate(struct dedup *d)
{
    if (d != NULL && !d->populated) {
        bigmem_populate(&d->mem);
        d->populated = true;
    }
}

void dedup_free(struct dedup *d)
{
    if (d == NULL)
        return;
    bigmem_free(&d->mem);
    free(d->stripes);
    free(d);
}

/* --- the key ------------------------------------------------------------ */

/*
 * The chain: two 8-byte words per step, each step one 64x64->128-bit
 * multiplication whose halves are folded (hash_mul_fold(), the step of
 * wyhash): (a ^ k) * (b ^ h), k the table's key and h the chain so far.
 * About three instructions a word; murmur3's finaliser per word cost three
 * times that, and SipHash about 2,500 instructions per packet here, a third
 * of routing it.  dedup_key_to() folds the destination in with two more
 * multiplications, which spread every bit over the key.  64 bits are
 * enough: with a million packets in the window, a packet is taken for a
 * copy by accident once in some 10^13.  The key is random per table (the
 * shared key aside) and a sender sees no hash, so crafting copies of a
 * message it did not send stays out of reach.
 */
struct chain {
    uint64_t h;
    uint64_t k;
};

static DEDUP_ALWAYS_INLINE void chain_step(struct chain *c, uint64_t a, uint64_t b)
{
    c->h = hash_mul_fold(a ^ c->k, b ^ c->h);
}

/* The last 1 to 8 bytes as a little-endian word, in at most three loads (overlapping ones agree). */
static inline uint64_t tail_word(const uint8_t *p, size_t n)
{
    if (n >= sizeof(uint32_t)) {
        uint32_t lo, hi;
        memcpy(&lo, p, sizeof lo);
        memcpy(&hi, p + n - sizeof hi, sizeof hi);
        return lo | (uint64_t)hi << (CHAR_BIT * (n - sizeof hi));
    }
    return p[0] | (uint64_t)p[n / 2] << (CHAR_BIT * (n / 2)) | (uint64_t)p[n - 1] << (CHAR_BIT * (n - 1));
}

/*
 * n bytes, 16 a step.  The last step of a field of 8 bytes or more loads
 * its last 8 bytes whole, overlapping what came before (one load, and
 * every byte still at a fixed place for the field's length); a shorter
 * field is padded with zeros.  The lengths are hashed before.
 */
static DEDUP_ALWAYS_INLINE void chain_bytes(struct chain *c, const uint8_t *p, size_t n)
{
    uint64_t a, b;
    bool long_field = n >= sizeof a;
    for (; n >= 2 * sizeof a; p += 2 * sizeof a, n -= 2 * sizeof a) {
        memcpy(&a, p, sizeof a);
        memcpy(&b, p + sizeof a, sizeof b);
        chain_step(c, a, b);
    }
    if (n > sizeof a) {
        memcpy(&a, p, sizeof a);
        memcpy(&b, p + n - sizeof b, sizeof b);
        chain_step(c, a, b);
    } else if (n > 0 && long_field) {
        memcpy(&a, p + n - sizeof a, sizeof a);
        chain_step(c, a, 0);
    } else if (n > 0) {
        chain_step(c, tail_word(p, n), 0);
    }
}

/*
 * The words hashed: the format, kind, protocol type, transport and the
 * addresses' length; the CSeq number; the status and both ports; the four
 * variable fields' lengths; the addresses' own bytes; then the variable
 * fields' bytes one after the other.  Every length comes before the bytes,
 * so they split into fields one way only: ("ab", "c") and ("a", "bc") hash
 * different words.  The destination comes last, in dedup_key_to(), so that
 * a packet sent to several destinations is hashed once.
 */
static void hash_under(const uint8_t hash_key[HASH_SIPHASH_KEY_BYTES], const struct dedup_identity *id,
                       struct dedup_hash *out)
{
    INVARIANT(id->kind == DEDUP_SIP || id->kind == DEDUP_OTHER);
    bool sip = id->kind == DEDUP_SIP;
    /* the other kind's fields are not read: they may be unset */
    struct dedup_bytes v0 = sip ? id->call_id : id->correlation_id;
    struct dedup_bytes v1 = sip ? id->cseq_method : id->payload;
    struct dedup_bytes v2 = sip ? id->method : (struct dedup_bytes){ NULL, 0 };
    struct dedup_bytes v3 = sip ? id->via_branch : (struct dedup_bytes){ NULL, 0 };
    uint64_t cseq = sip ? id->cseq : 0, status = sip ? id->status : 0, proto_type = sip ? 0 : id->proto_type;
    INVARIANT((v0.ptr != NULL || v0.len == 0) && (v1.ptr != NULL || v1.len == 0) &&
              (v2.ptr != NULL || v2.len == 0) && (v3.ptr != NULL || v3.len == 0));
    v0.len = v0.ptr != NULL ? v0.len : 0;
    v1.len = v1.ptr != NULL ? v1.len : 0;
    v2.len = v2.ptr != NULL ? v2.len : 0;
    v3.len = v3.ptr != NULL ? v3.len : 0;
    uint64_t alen = id->addr_len;
    INVARIANT(alen <= DEDUP_ADDR_MAX);
    if (alen > DEDUP_ADDR_MAX || id->src_addr == NULL || id->dst_addr == NULL)
        alen = 0;

    struct chain c;
    memcpy(&c.h, hash_key, sizeof c.h);
    memcpy(&c.k, hash_key + sizeof c.h, sizeof c.k);
    out->tweak = c.k;
    chain_step(&c, DEDUP_KEY_FORMAT | (uint64_t)id->kind << 8 | proto_type << 16 | (uint64_t)id->transport << 24 |
                       alen << 32, cseq);
    chain_step(&c, (status & UINT32_MAX) | (uint64_t)id->src_port << 32 | (uint64_t)id->dst_port << 48,
               (uint64_t)(v0.len & UINT32_MAX) << 32 | (v1.len & UINT32_MAX));
    uint64_t lens23 = (uint64_t)(v2.len & UINT32_MAX) << 32 | (v3.len & UINT32_MAX);
    if (alen == sizeof(uint32_t)) {
        uint32_t src, dst;
        memcpy(&src, id->src_addr, sizeof src);
        memcpy(&dst, id->dst_addr, sizeof dst);
        chain_step(&c, lens23, src | (uint64_t)dst << 32);
    } else {
        chain_step(&c, lens23, 0);
        if (alen > 0) {
            chain_bytes(&c, id->src_addr, alen);
            chain_bytes(&c, id->dst_addr, alen);
        }
    }
    /* an empty field adds no step (its length, 0, is in the words above) */
    chain_bytes(&c, v0.ptr, v0.len);
    chain_bytes(&c, v1.ptr, v1.len);
    chain_bytes(&c, v2.ptr, v2.len);
    chain_bytes(&c, v3.ptr, v3.len);
    out->h = c.h;
}

/* Where key[1] (the identity's word) sits: its stripe and its two buckets there. */
static inline struct dedup_stripe *where(const struct dedup *d, uint64_t position, struct dedup_slot *bucket[2])
{
    struct dedup_stripe *st = &d->stripes[scale32(hash_mul_fold(position, HASH_FMIX64_MUL), d->nstripes)];
    bucket[0] = st->slots + scale32(position, d->nbuckets) * DEDUP_WAYS;
    bucket[1] = st->slots + scale32(position >> DEDUP_HALF_BITS, d->nbuckets) * DEDUP_WAYS;
    return st;
}

void dedup_hash(const struct dedup *d, const struct dedup_identity *id, struct dedup_hash *out)
{
    hash_under(d->hash_key, id, out);
    /* both buckets asked of memory now: they arrive while the packet's call and route are looked up */
    struct dedup_slot *bucket[2];
    (void)where(d, out->h, bucket);
    DEDUP_PREFETCH(bucket[0]);
    DEDUP_PREFETCH(bucket[1]);
    DEDUP_PREFETCH(bucket[0] + DEDUP_WAYS / DEDUP_BUCKET_LINES);
    DEDUP_PREFETCH(bucket[1] + DEDUP_WAYS / DEDUP_BUCKET_LINES);
}

/* Fixed: instances sharing a window must key a packet alike. */
static const uint8_t shared_hash_key[HASH_SIPHASH_KEY_BYTES] = "heprouter-dedup!";

void dedup_shared_hash(const struct dedup_identity *id, struct dedup_hash *out)
{
    hash_under(shared_hash_key, id, out);
}

void dedup_key(const struct dedup *d, const struct dedup_identity *id, uint32_t dest, uint64_t key[2])
{
    struct dedup_hash ih;
    dedup_hash(d, id, &ih);
    dedup_key_to(&ih, dest, key);
}

void dedup_shared_key(const struct dedup_identity *id, uint32_t dest, uint64_t key[2])
{
    struct dedup_hash ih;
    dedup_shared_hash(id, &ih);
    dedup_key_to(&ih, dest, key);
}

/* --- the window --------------------------------------------------------- */

/* What one bucket holds for a key: the key's slot, else its live entries and the slot to take. */
struct bucket_look {
    struct dedup_slot *match;   /* the key's slot, or NULL */
    struct dedup_slot *oldest;  /* the slot with the smallest deadline (when no match) */
    unsigned live;              /* entries whose window is not over (when no match) */
};

/* One bucket, looked at in registers; the key compared first: it differs in nearly every slot. */
static inline struct bucket_look bucket_look(struct dedup_slot *bucket, const uint64_t key[2], uint64_t now_ms)
{
    struct bucket_look r = { NULL, bucket, 0 };
    uint64_t oldest = UINT64_MAX;
    DEDUP_UNROLL
    for (size_t w = 0; w < DEDUP_WAYS; w++) {
        struct dedup_slot *sl = &bucket[w];
        uint64_t dl = sl->deadline_ms;
        if (sl->key == key[0] && dl != 0) {
            r.match = sl;
            return r;
        }
        r.live += dl > now_ms;
        if (dl < oldest) {
            oldest = dl;
            r.oldest = sl;
        }
    }
    return r;
}


bool dedup_check(struct dedup *d, const uint64_t key[2], uint64_t now_ms, uint64_t window_ms)
{
    if (window_ms == 0)
        return false;
    uint64_t deadline = window_ms > UINT64_MAX - now_ms ? UINT64_MAX : now_ms + window_ms;
    struct dedup_slot *bucket[2];
    struct dedup_stripe *st = where(d, key[1], bucket);
    bool duplicate = false;

    stripe_lock(st);
    st->checked++;
    struct bucket_look look[2] = { bucket_look(bucket[0], key, now_ms), { NULL, NULL, 0 } };
    struct dedup_slot *take = look[0].match;
    if (take == NULL) {
        look[1] = bucket_look(bucket[1], key, now_ms);
        take = look[1].match;
    }
    if (take != NULL && take->deadline_ms > now_ms) {
        /* A copy: the first arrival's window stands as it was. */
        st->duplicates++;
        duplicate = true;
    } else {
        if (take == NULL) {
            /* The bucket with fewer live entries; of two full ones, the entry that expires first. */
            bool full = look[0].live == DEDUP_WAYS && look[1].live == DEDUP_WAYS;
            size_t b = look[1].live < look[0].live ||
                               (full && look[1].oldest->deadline_ms < look[0].oldest->deadline_ms) ? 1 : 0;
            take = look[b].oldest;
            if (take->deadline_ms == 0)
                st->entries++;
            else if (take->deadline_ms > now_ms)
                st->evicted_live++;
            take->key = key[0];
        }
        take->deadline_ms = deadline;
    }
    stripe_unlock(st);
    return duplicate;
}

void dedup_stats(struct dedup *d, struct dedup_stats *out)
{
    memset(out, 0, sizeof *out);
    if (d == NULL)
        return;
    out->stripes = d->nstripes;
    out->capacity = d->nstripes * d->nbuckets * DEDUP_WAYS;
    out->bytes = sizeof *d + d->nstripes * sizeof(struct dedup_stripe) + d->mem.len;
    for (size_t k = 0; k < d->nstripes; k++) {
        struct dedup_stripe *st = &d->stripes[k];
        stripe_lock(st);
        out->checked += st->checked;
        out->duplicates += st->duplicates;
        out->evicted_live += st->evicted_live;
        out->entries += st->entries;
        stripe_unlock(st);
    }
}
