/*
 * backoff.h - the reconnect delay: exponential, capped, reset on success,
 * with jitter.
 *
 * One rule for every outbound link (TCP and UDP destinations, the Redis
 * store): the first retry waits min_ms, each failure doubles the wait,
 * never past max_ms; a link that comes up starts again from min_ms.  A zero
 * minimum would reconnect in a busy loop, so it is taken as 1 ms; a
 * maximum below the minimum is the minimum.
 *
 * Jitter: every worker of every instance loses a back-end at the same
 * moment, and with the same schedule they would all come back at the same
 * moments too.  backoff_next_jittered() draws the wait uniformly from the
 * upper half of the schedule's delay, [d - d/2, d], from a xorshift state
 * in the struct that the owner seeds (backoff_seed()) with something that
 * differs between links, workers and processes.  Pure arithmetic: no
 * global state, no clock; the caller arms its timer.
 */
#ifndef HEPROUTER_BACKOFF_H
#define HEPROUTER_BACKOFF_H

#include <stdint.h>

/* xorshift64 must never hold 0; the state a zero seed scrambles to is replaced by this */
#define BACKOFF_RNG_NONZERO UINT64_C(0x9e3779b97f4a7c15)

struct backoff {
    uint64_t min_ms;
    uint64_t max_ms;
    uint64_t next_ms;               /* the wait before the next attempt */
    uint64_t rng;                   /* xorshift64 state for the jitter, never 0 */
};

static inline void backoff_init(struct backoff *b, uint64_t min_ms, uint64_t max_ms)
{
    b->min_ms = min_ms > 0 ? min_ms : 1;
    b->max_ms = max_ms > b->min_ms ? max_ms : b->min_ms;
    b->next_ms = b->min_ms;
    b->rng = BACKOFF_RNG_NONZERO;
}

/*
 * Seeds the jitter.  The seed goes through splitmix64 first, so seeds that
 * differ in a few low bits (addresses, clocks) give unrelated sequences.
 */
static inline void backoff_seed(struct backoff *b, uint64_t seed)
{
    uint64_t z = seed + BACKOFF_RNG_NONZERO;
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    z ^= z >> 31;
    b->rng = z != 0 ? z : BACKOFF_RNG_NONZERO;
}

/* After a success: the next failure waits min_ms again. */
static inline void backoff_reset(struct backoff *b)
{
    b->next_ms = b->min_ms;
}

/* The wait before this attempt; the one after it doubles, up to max_ms. */
static inline uint64_t backoff_next(struct backoff *b)
{
    uint64_t d = b->next_ms;
    b->next_ms = d <= b->max_ms / 2 ? d * 2 : b->max_ms;
    return d;
}

/* The next value of the struct's xorshift64 generator. */
static inline uint64_t backoff_random(struct backoff *b)
{
    uint64_t x = b->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b->rng = x;
    return x;
}

/*
 * backoff_next()'s delay d, drawn uniformly from [d - d/2, d]: never more
 * than the schedule (so never past max_ms), never less than half of it
 * (so never 0: d is at least 1).
 */
static inline uint64_t backoff_next_jittered(struct backoff *b)
{
    uint64_t d = backoff_next(b);
    uint64_t span = d / 2;          /* below 2^63: span + 1 cannot wrap */
    return d - span + backoff_random(b) % (span + 1);
}

#endif
