/*
 * dedup.c - the window of recently sent packets (see dedup.h).
 *
 * One slot array for the whole table, cut into stripes, each cut into
 * buckets of DEDUP_WAYS slots (three cache lines, aligned).  A key's stripe
 * comes from key[1], its two candidate buckets from the two halves of
 * key[0].  Two choices keep the buckets even: a key goes to the one with
 * fewer live entries, so live entries are overwritten only when the table
 * is nearly full of them, not whenever one bucket of many is crowded.
 *
 * A slot holds the key and the end of its window; a deadline of 0 marks a
 * slot never used.  Since empty < over <= now < live, a bucket's slot with
 * the smallest deadline is the one to take: empty first, then one whose
 * window is over, then the live entry that expires first.  Nothing is ever
 * deleted: no tombstones, no sweeps, no timer.
 */
#include "dedup.h"

#include "hash.h"
#include "invariant.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DEDUP_STRIPE_MIN_SLOTS  1024u   /* fewer stripes below this many slots each, so load evens out */
#define DEDUP_CACHE_LINE        64u
#define DEDUP_KEY_FORMAT        3u      /* first byte hashed: changes when the encoding does */
#define DEDUP_ADDR_MAX          16u
#define DEDUP_VAR_FIELDS        4u      /* variable-length fields hashed per kind */
#define DEDUP_HALF_BITS         32

/* 24 bytes: DEDUP_SLOT_BYTES. */
struct dedup_slot {
    uint64_t key[2];
    uint64_t deadline_ms;       /* a copy is a duplicate while now < this; 0: never used */
};

_Static_assert(sizeof(struct dedup_slot) == DEDUP_SLOT_BYTES, "dedup.h states the slot size");

/* Cache-line aligned so that the locks of neighbouring stripes do not share a line. */
struct dedup_stripe {
    _Alignas(DEDUP_CACHE_LINE) pthread_mutex_t lock;
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
    struct dedup_slot *slots;   /* every stripe's slots, cache-line aligned in mem */
    void *mem;
};

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
    if (nbuckets > UINT32_MAX || nslots > (SIZE_MAX - DEDUP_CACHE_LINE) / sizeof(struct dedup_slot))
        return NULL;

    struct dedup *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    size_t inited = 0;
    hash_random_key(d->hash_key);
    d->nstripes = nstripes;
    d->nbuckets = nbuckets;
    /* calloc, not aligned_alloc and memset: pages become resident as they are first used. */
    d->mem = calloc(nslots * sizeof(struct dedup_slot) + DEDUP_CACHE_LINE, 1);
    d->stripes = aligned_alloc(_Alignof(struct dedup_stripe), nstripes * sizeof(struct dedup_stripe));
    if (d->mem == NULL || d->stripes == NULL)
        goto error;
    uintptr_t at = ((uintptr_t)d->mem + DEDUP_CACHE_LINE - 1) & ~(uintptr_t)(DEDUP_CACHE_LINE - 1);
    d->slots = (struct dedup_slot *)at;
    memset(d->stripes, 0, nstripes * sizeof(struct dedup_stripe));
    for (; inited < nstripes; inited++) {
        struct dedup_stripe *st = &d->stripes[inited];
        st->slots = d->slots + inited * nbuckets * DEDUP_WAYS;
        if (pthread_mutex_init(&st->lock, NULL) != 0)
            goto error;
    }
    return d;

error:
    for (size_t k = 0; k < inited; k++)
        pthread_mutex_destroy(&d->stripes[k].lock);
    free(d->mem);
    free(d->stripes);
    free(d);
    return NULL;
}

void dedup_free(struct dedup *d)
{
    if (d == NULL)
        return;
    for (size_t k = 0; k < d->nstripes; k++)
        pthread_mutex_destroy(&d->stripes[k].lock);
    free(d->mem);
    free(d->stripes);
    free(d);
}

/* --- the key ------------------------------------------------------------ */

static struct dedup_bytes checked_bytes(struct dedup_bytes b)
{
    INVARIANT(b.ptr != NULL || b.len == 0);
    if (b.ptr == NULL)
        b.len = 0;
    return b;
}

/*
 * The encoding hashed: a block (format, kind, destination, the
 * fixed-width fields of the kind, the hop: the addresses' length, the
 * ports, both addresses, and the lengths of the kind's variable fields),
 * then those fields' bytes one after the other.  Every length is in the
 * block, so the bytes split into fields one way only: ("ab", "c") and
 * ("a", "bc") hash different blocks.
 */
/*
 * murmur3's 64-bit finaliser chained over 8-byte words, seeded by the key:
 * about a word per ten instructions.  SipHash cost about 2,500
 * instructions per packet here, a third of routing it.  64 bits are
 * enough: with a million packets in the window, a packet is taken for a
 * copy by accident once in some 10^13.  The seed is random per table (the
 * shared key aside) and a sender sees no hash, so crafting copies of a
 * message it did not send stays out of reach.
 */
static inline uint64_t chain_word(uint64_t h, uint64_t w)
{
    return hash_fmix64(h ^ w);
}

/* The last 1 to 7 bytes as a little-endian word, in at most three loads (overlapping ones agree). */
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

static inline uint64_t chain_bytes(uint64_t h, const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + sizeof(uint64_t) <= n; i += sizeof(uint64_t)) {
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        h = chain_word(h, w);
    }
    if (i < n)
        h = chain_word(h, tail_word(p + i, n - i));
    return h;
}

/*
 * The words hashed: the format, kind, protocol type, transport and the
 * addresses' length; the destination and the CSeq number; the status and
 * both ports; the four variable fields' lengths; the addresses' own bytes;
 * then the variable fields' bytes one after the other.  Every length comes
 * before the bytes, so they split into fields one way only: ("ab", "c")
 * and ("a", "bc") hash different words.
 */
static void key_under(const uint8_t hash_key[HASH_SIPHASH_KEY_BYTES], const struct dedup_identity *id, uint32_t dest,
                      uint64_t key[2])
{
    struct dedup_bytes var[DEDUP_VAR_FIELDS] = { { NULL, 0 } };
    uint64_t cseq = 0, status = 0, proto_type = 0;

    INVARIANT(id->kind == DEDUP_SIP || id->kind == DEDUP_OTHER);
    if (id->kind == DEDUP_SIP) {
        var[0] = checked_bytes(id->call_id);
        var[1] = checked_bytes(id->cseq_method);
        var[2] = checked_bytes(id->method);
        var[3] = checked_bytes(id->via_branch);
        cseq = id->cseq;
        status = id->status;
    } else {
        var[0] = checked_bytes(id->correlation_id);
        var[1] = checked_bytes(id->payload);
        proto_type = id->proto_type;
    }
    uint64_t alen = id->addr_len;
    INVARIANT(alen <= DEDUP_ADDR_MAX);
    if (alen > DEDUP_ADDR_MAX || id->src_addr == NULL || id->dst_addr == NULL)
        alen = 0;

    uint64_t seed, second;
    memcpy(&seed, hash_key, sizeof seed);
    memcpy(&second, hash_key + sizeof seed, sizeof second);
    uint64_t h = chain_word(seed, DEDUP_KEY_FORMAT | (uint64_t)id->kind << 8 | proto_type << 16 |
                                      (uint64_t)id->transport << 24 | alen << 32);
    h = chain_word(h, (uint64_t)dest << 32 | cseq);
    h = chain_word(h, (status & UINT32_MAX) | (uint64_t)id->src_port << 32 | (uint64_t)id->dst_port << 48);
    for (size_t i = 0; i < DEDUP_VAR_FIELDS; i += 2)
        h = chain_word(h, (uint64_t)(var[i].len & UINT32_MAX) << 32 | (var[i + 1].len & UINT32_MAX));
    if (alen > 0) {
        h = chain_bytes(h, id->src_addr, alen);
        h = chain_bytes(h, id->dst_addr, alen);
    }
    for (size_t i = 0; i < DEDUP_VAR_FIELDS; i++)
        if (var[i].len > 0)
            h = chain_bytes(h, var[i].ptr, var[i].len);
    key[0] = hash_fmix64(h ^ second);
    key[1] = h;
}

void dedup_key(const struct dedup *d, const struct dedup_identity *id, uint32_t dest, uint64_t key[2])
{
    key_under(d->hash_key, id, dest, key);
}

/* Fixed: instances sharing a window must key a packet alike. */
static const uint8_t shared_hash_key[HASH_SIPHASH_KEY_BYTES] = "heprouter-dedup!";

void dedup_shared_key(const struct dedup_identity *id, uint32_t dest, uint64_t key[2])
{
    key_under(shared_hash_key, id, dest, key);
}

/* --- the window --------------------------------------------------------- */

bool dedup_check(struct dedup *d, const uint64_t key[2], uint64_t now_ms, uint64_t window_ms)
{
    if (window_ms == 0)
        return false;
    uint64_t deadline = window_ms > UINT64_MAX - now_ms ? UINT64_MAX : now_ms + window_ms;
    struct dedup_stripe *st = &d->stripes[scale32(key[1], d->nstripes)];
    struct dedup_slot *bucket[2] = {
        st->slots + scale32(key[0], d->nbuckets) * DEDUP_WAYS,
        st->slots + scale32(key[0] >> DEDUP_HALF_BITS, d->nbuckets) * DEDUP_WAYS,
    };
    bool duplicate = false;

    pthread_mutex_lock(&st->lock);
    st->checked++;
    struct dedup_slot *take = NULL, *victim[2] = { bucket[0], bucket[1] };
    unsigned live[2] = { 0, 0 };
    for (size_t b = 0; b < 2 && take == NULL; b++) {
        for (size_t w = 0; w < DEDUP_WAYS; w++) {
            struct dedup_slot *sl = &bucket[b][w];
            if (sl->deadline_ms != 0 && sl->key[0] == key[0] && sl->key[1] == key[1]) {
                take = sl;
                break;
            }
            if (sl->deadline_ms > now_ms)
                live[b]++;
            if (sl->deadline_ms < victim[b]->deadline_ms)
                victim[b] = sl;
        }
    }
    if (take != NULL && take->deadline_ms > now_ms) {
        /* A copy: the first arrival's window stands as it was. */
        st->duplicates++;
        duplicate = true;
    } else {
        if (take == NULL) {
            /* The bucket with fewer live entries; of two full ones, the entry that expires first. */
            bool full = live[0] == DEDUP_WAYS && live[1] == DEDUP_WAYS;
            size_t b = live[1] < live[0] || (full && victim[1]->deadline_ms < victim[0]->deadline_ms) ? 1 : 0;
            take = victim[b];
            if (take->deadline_ms == 0)
                st->entries++;
            else if (take->deadline_ms > now_ms)
                st->evicted_live++;
            take->key[0] = key[0];
            take->key[1] = key[1];
        }
        take->deadline_ms = deadline;
    }
    pthread_mutex_unlock(&st->lock);
    return duplicate;
}

void dedup_stats(struct dedup *d, struct dedup_stats *out)
{
    memset(out, 0, sizeof *out);
    if (d == NULL)
        return;
    out->stripes = d->nstripes;
    out->capacity = d->nstripes * d->nbuckets * DEDUP_WAYS;
    out->bytes = sizeof *d + d->nstripes * sizeof(struct dedup_stripe) + out->capacity * sizeof(struct dedup_slot)
                 + DEDUP_CACHE_LINE;
    for (size_t k = 0; k < d->nstripes; k++) {
        struct dedup_stripe *st = &d->stripes[k];
        pthread_mutex_lock(&st->lock);
        out->checked += st->checked;
        out->duplicates += st->duplicates;
        out->evicted_live += st->evicted_live;
        out->entries += st->entries;
        pthread_mutex_unlock(&st->lock);
    }
}
