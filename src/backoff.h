/*
 * backoff.h - the reconnect delay: exponential, capped, reset on success.
 *
 * One rule for every outbound link (TCP destinations, the Redis store):
 * the first retry waits min_ms, each failure doubles the wait, never past
 * max_ms; a link that comes up starts again from min_ms.  A zero minimum
 * would reconnect in a busy loop, so it is taken as 1 ms; a maximum below
 * the minimum is the minimum.  Pure arithmetic: the caller arms its timer.
 */
#ifndef HEPROUTER_BACKOFF_H
#define HEPROUTER_BACKOFF_H

#include <stdint.h>

struct backoff {
    uint64_t min_ms;
    uint64_t max_ms;
    uint64_t next_ms;               /* the wait before the next attempt */
};

static inline void backoff_init(struct backoff *b, uint64_t min_ms, uint64_t max_ms)
{
    b->min_ms = min_ms > 0 ? min_ms : 1;
    b->max_ms = max_ms > b->min_ms ? max_ms : b->min_ms;
    b->next_ms = b->min_ms;
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

#endif
