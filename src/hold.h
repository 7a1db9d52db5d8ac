/*
 * hold.h - the orphan hold queue.
 *
 * A packet whose call is not known yet waits here, copied, for at most
 * orphans.wait_ms.  hold_take() releases every packet of one call the moment
 * its origin shows up; hold_expire() hands out the packets whose wait is
 * over.  Both deliver in arrival order.  The queue is bounded by
 * orphans.max_held; hold_add() refuses beyond it and the caller takes the
 * fallback at once.  One hold queue per worker: not thread-safe.
 */
#ifndef HEPROUTER_HOLD_H
#define HEPROUTER_HOLD_H

#include <stddef.h>
#include <stdint.h>

struct hold;

/* Called for each released packet; the bytes are freed when it returns.  A NULL fn drops them. */
typedef void (*hold_release_fn)(void *arg, const char *key, size_t klen,
                                const uint8_t *pkt, size_t len, uint64_t held_since_ms);

struct hold *hold_new(size_t max_held, uint64_t wait_ms);

void hold_free(struct hold *h);

/* Copies pkt and holds it under key until now_ms + wait_ms.  0, or -1 when full / ENOMEM. */
int hold_add(struct hold *h, const char *key, size_t klen, const uint8_t *pkt, size_t len, uint64_t now_ms);

/* Releases every packet held under key, oldest first; returns how many. */
size_t hold_take(struct hold *h, const char *key, size_t klen, hold_release_fn fn, void *arg);

/*
 * Releases the packets whose deadline is <= now_ms, oldest first; returns
 * how many.  fn may call hold_take() and hold_add() on the same queue.
 */
size_t hold_expire(struct hold *h, uint64_t now_ms, hold_release_fn fn, void *arg);

/* Releases everything, oldest first (shutdown). */
size_t hold_flush(struct hold *h, hold_release_fn fn, void *arg);

/* Deadline of the oldest held packet, or UINT64_MAX when empty. */
uint64_t hold_next_deadline(const struct hold *h);

/* Packets held now. */
size_t hold_count(const struct hold *h);

/* 1 when packets are held under key. */
int hold_has(const struct hold *h, const char *key, size_t klen);

#endif
