/*
 * dedup.h - the window of packets recently sent to each destination, to
 * drop double captures (dedup: in heprouter.yaml(5)).
 *
 * The same message captured twice (two agents on two hops, Kamailio
 * tracing in script and core mode at once, one host seen on two
 * interfaces) arrives as two HEP packets that differ in capture id, node
 * name, HEP timestamp and agent address, and perhaps in a byte of the
 * payload.  What they share is the message's identity: for SIP its Call-ID,
 * CSeq, request method or status code and top Via branch; for other
 * payloads (RTCP, logs) its correlation id, HEP protocol type and payload
 * bytes; and for both the hop it was captured on (addresses, ports,
 * transport).  dedup_key() hashes an identity and a destination into a
 * 128-bit key; dedup_check() answers whether that key was sent within the
 * window, and records it when not.  The first arrival wins.
 *
 * One table serves every destination of an instance (the destination
 * index is part of the key) and is shared by its workers: thread-safe,
 * split into stripes that each have their own spin lock (held for one
 * look at two buckets, a few hundred instructions at most: cheaper than a
 * mutex uncontended, and a waiter spins for no longer than that).  No
 * I/O, no clock (the caller passes its monotonic arrival time), no
 * allocation per packet.
 *
 * Memory: allocated up front and never grown: 16 bytes per slot (the
 * key's first word and an 8-byte deadline) plus one cache-line-aligned
 * lock and counters per stripe (64 bytes).  dedup_new(1000000, 0) maps
 * 16 MB, made resident by dedup_populate() once a destination deduplicates
 * (no packet then waits for a page to be faulted in), on huge pages where
 * the kernel allows (bigmem.h: a random probe then costs no TLB miss).  A
 * key may sit in either of two buckets of
 * DEDUP_WAYS slots; a new key goes to the bucket with fewer live entries,
 * into its empty slot, else a slot whose window is over, and only when
 * both buckets are full of live entries over the one whose window ends
 * first (the oldest).  So a full table never blocks nor fails a packet:
 * the worst case is a live entry overwritten (counted in evicted_live) and
 * a late copy of it sent.  Measured with a million slots, keys of
 * sequential Call-IDs: no live entry is overwritten while at most half the
 * slots are live, 7 in a million checks at 60 %, 0.19 % at 70 %.  Size max_entries at DEDUP_LOAD_HINT times the
 * entries live at once (packets per second sent to destinations with dedup,
 * times their window).
 *
 * Cost per packet: dedup_hash() is a chain of multiplications, two
 * words a step, over at most 69 bytes plus the identity's strings (about
 * a hundred instructions), once per packet whatever the destinations;
 * dedup_key_to() one more step per destination; dedup_check() one lock
 * and two buckets of two cache lines each; nothing is allocated.
 */
#ifndef HEPROUTER_DEDUP_H
#define HEPROUTER_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

#define DEDUP_WAYS              8u      /* slots per bucket; a key may sit in either of two buckets */
#define DEDUP_SLOT_BYTES        16u     /* what one slot takes: key[0] and a deadline */
#define DEDUP_STRIPES_DEFAULT   16u     /* stripes (locks) when dedup_new() is given 0 */
#define DEDUP_STRIPES_MAX       256u
#define DEDUP_LOAD_HINT         2u      /* max_entries per entry live at once that keeps evicted_live near 0 */

/* A length-carrying byte string pointing into the packet; ptr may be NULL when len is 0. */
struct dedup_bytes {
    const void *ptr;
    size_t len;
};

enum dedup_kind {
    DEDUP_SIP = 1,              /* keyed by the SIP fields */
    DEDUP_OTHER = 2             /* RTCP, logs, anything not SIP: keyed by the non-SIP fields */
};

/*
 * What makes two copies the same packet.  Set kind, then every field of
 * that kind and of the hop (zeroing it first does); the fields of the
 * other kind are not read.  Capture id, node name, HEP timestamp and the agent's address are
 * not here on purpose: they differ between copies.  Strings are compared as
 * exact bytes (pass them as the packet has them, or all in one canonical
 * form).
 */
struct dedup_identity {
    enum dedup_kind kind;

    /* DEDUP_SIP */
    struct dedup_bytes call_id;
    uint32_t cseq;              /* CSeq number */
    struct dedup_bytes cseq_method;     /* CSeq method as written */
    struct dedup_bytes method;  /* request method as written; empty in a reply */
    unsigned status;            /* reply status code; 0 in a request */
    struct dedup_bytes via_branch;      /* branch of the top Via; empty when absent */

    /* DEDUP_OTHER */
    struct dedup_bytes correlation_id;  /* HEP chunk 0x0011 */
    uint8_t proto_type;         /* HEP chunk 0x000b: 5 RTCP, 100 log, ... */
    struct dedup_bytes payload; /* the payload as received; dedup_key() hashes its bytes itself */

    /* The hop, both kinds */
    uint8_t addr_len;           /* 4 or 16; 0 when the packet carries no addresses */
    const uint8_t *src_addr;    /* addr_len bytes, network order */
    const uint8_t *dst_addr;
    uint16_t src_port;
    uint16_t dst_port;
    uint8_t transport;          /* HEP ip_proto: 17 UDP, 6 TCP, ... */
};

/* What dedup_stats() reports; the counters run from dedup_new(). */
struct dedup_stats {
    uint64_t checked;           /* dedup_check() calls that looked (window_ms > 0) */
    uint64_t duplicates;        /* of them, copies within the window: not to be sent */
    uint64_t evicted_live;      /* entries overwritten within their window: a later copy goes unseen */
    size_t entries;             /* slots ever filled; an entry stays until its slot is taken */
    size_t capacity;            /* slots */
    size_t stripes;             /* locks */
    size_t bytes;               /* the table's memory, fixed from dedup_new() on */
};

struct dedup;

/*
 * A table of at most max_entries slots (rounded down to whole buckets; one
 * bucket at least) in `stripes` stripes (0: DEDUP_STRIPES_DEFAULT; fewer
 * for small tables, so that each has 1024 slots or more), with a random
 * hash key of its own.  NULL when max_entries is 0 or on ENOMEM.
 */
struct dedup *dedup_new(size_t max_entries, unsigned stripes);

/*
 * Makes the table resident (bigmem_populate()): called, once, when a
 * configuration with a dedup window is loaded, before a packet uses it.
 */
void dedup_populate(struct dedup *d);

void dedup_free(struct dedup *d);

/*
 * An identity hashed once, whatever destinations it goes to: a chain of
 * 64x64->128-bit multiplications (two words a step, the halves folded),
 * keyed by d's random key, over every field
 * of id's kind, each of fixed width or preceded by its length, so that
 * different identities share a key by accident with negligible
 * probability, and a sender, who never sees a key nor the seed, cannot aim
 * at one.  Hashes are d's own: another table, process or instance makes
 * others for the same identity.
 */
struct dedup_hash {
    uint64_t h;                 /* the chain over the identity */
    uint64_t tweak;             /* the key's second word, for key[0] */
};

/*
 * Also asks memory for the two buckets the identity's keys sit in, whatever
 * the destination: hashed as soon as the packet is decoded, the buckets
 * arrive while its call is looked up and its route decided, and
 * dedup_check() then rarely waits for them.
 */
void dedup_hash(const struct dedup *d, const struct dedup_identity *id, struct dedup_hash *out);

/*
 * The same under a fixed key, the same in every instance: for a window
 * instances share (through the Redis store, dedup.shared).  Being fixed,
 * it can be aimed at by a sender who knows the code; such a sender can only
 * make its own copies look like others', as it could by sending them first.
 */
void dedup_shared_hash(const struct dedup_identity *id, struct dedup_hash *out);

/*
 * The 128-bit key of a hashed identity sent to destination dest (inline:
 * once per copy): key[1], where the window keeps it, is the identity's
 * alone, so that dedup_hash() can fetch it before the destinations are
 * known; key[0], what the window compares, has the destination folded in.
 */
static inline void dedup_key_to(const struct dedup_hash *ih, uint32_t dest, uint64_t key[2])
{
    key[1] = ih->h;
    key[0] = hash_mul_fold(ih->h ^ HASH_FMIX64_MUL, dest ^ ih->tweak);
}


/* dedup_hash() then dedup_key_to(); dedup_shared_hash() then dedup_key_to(). */
void dedup_key(const struct dedup *d, const struct dedup_identity *id, uint32_t dest, uint64_t key[2]);
void dedup_shared_key(const struct dedup_identity *id, uint32_t dest, uint64_t key[2]);

/*
 * True when key was recorded less than window_ms before now_ms (the
 * window it was recorded with): a copy, not to be sent; its arrival does
 * not extend the window of the first.
 * Otherwise records key at now_ms, for window_ms, and returns false.  A
 * window_ms of 0 records nothing and returns false.  now_ms is the caller's
 * monotonic arrival time; workers may pass slightly different clocks: a key
 * recorded "in the future" is a duplicate until its window ends.
 */
bool dedup_check(struct dedup *d, const uint64_t key[2], uint64_t now_ms, uint64_t window_ms);

/* Sums the stripes' counters (each stripe locked in turn). */
void dedup_stats(struct dedup *d, struct dedup_stats *out);

#endif
