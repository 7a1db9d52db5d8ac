/*
 * hold.h - the orphan hold queue.
 *
 * A packet whose call is not known yet waits here, copied, for at most
 * orphans.wait_ms.  hold_take() releases every packet of one call the moment
 * its origin shows up; hold_expire() hands out the packets whose wait is
 * over.  Both deliver in arrival order.  The queue is bounded twice, by
 * orphans.max_held packets and by orphans.max_bytes; hold_add() refuses
 * beyond either and the caller takes the fallback at once.
 *
 * While a call waits, hold_recheck() offers it HOLD_RECHECKS times (at 1/3
 * and 2/3 of wait_ms after its first packet was held) for its caller to
 * look for its origin again: another worker, or another instance sharing
 * the store, may have stored it meanwhile.  That schedule lives in the
 * call's own node, so it is counted within max_bytes and goes away with
 * the call's last packet.  One hold queue per worker: not thread-safe.
 */
#ifndef HEPROUTER_HOLD_H
#define HEPROUTER_HOLD_H

#include <stddef.h>
#include <stdint.h>

struct hold;

/*
 * What one held packet counts against max_bytes besides its key and its
 * bytes: an upper bound on its bookkeeping (its list node, its share of a
 * call node and of the hash buckets), so that max_bytes bounds the memory
 * the queue really takes, small packets included.
 */
#define HOLD_PKT_OVERHEAD   160u

/* Looks for a held call's origin again, besides when its first packet came. */
#define HOLD_RECHECKS       2u

/* Called for each released packet; the bytes are freed when it returns.  A NULL fn drops them. */
typedef void (*hold_release_fn)(void *arg, const char *key, size_t klen,
                                const uint8_t *pkt, size_t len, uint64_t held_since_ms);

/* At most max_held packets and max_bytes bytes (see hold_bytes()); NULL on ENOMEM. */
struct hold *hold_new(size_t max_held, size_t max_bytes, uint64_t wait_ms);

void hold_free(struct hold *h);

/*
 * Copies pkt and holds it under key until now_ms + wait_ms.  0, or -1 when
 * max_held packets are held, when klen + len + HOLD_PKT_OVERHEAD more
 * bytes would take hold_bytes() beyond max_bytes, or on ENOMEM.
 */
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

/* Called for a held call whose recheck is due; it may take the call's packets. */
typedef void (*hold_recheck_fn)(void *arg, const char *key, size_t klen);

/*
 * Offers every call whose recheck is due at now_ms to fn, in due order, and
 * schedules its next one (none after the last).  Returns how many.
 */
size_t hold_recheck(struct hold *h, uint64_t now_ms, hold_recheck_fn fn, void *arg);

/* When hold_recheck() next has a call to offer, or UINT64_MAX. */
uint64_t hold_next_recheck(const struct hold *h);

/* Packets held now. */
size_t hold_count(const struct hold *h);

/* Bytes held now: klen + len + HOLD_PKT_OVERHEAD for each held packet. */
size_t hold_bytes(const struct hold *h);

/* 1 when packets are held under key. */
int hold_has(const struct hold *h, const char *key, size_t klen);

#endif
