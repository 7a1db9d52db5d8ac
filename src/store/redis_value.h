/*
 * redis_value.h - the value a Redis store keeps per call, as text (core).
 *
 * Value:  1|<flags>|<first seen>|<origin method>|<route name>
 *    or   2|<flags>|<first seen>|<origin method>|<origin bits>|<signature>|<refused>|<route name>
 *   1, 2          format version; a value with any other version is refused.
 *                 Version 2 is written when the configuration has routes
 *                 with origin keys, version 1 otherwise (what heprouter
 *                 wrote before them: instances of both can share a store)
 *   flags         decimal bit set: 1 ended, 2 fallback (decided by an
 *                 orphan's CSeq method), 4 REGISTER dialog, 8 confirmed
 *                 (an INVITE got a 2xx); unknown bits are ignored
 *   first seen    wall clock of the origin, ms since the epoch, decimal
 *   origin method the method that started the call (visible ASCII without
 *                 '|', at most 31 bytes)
 *   origin bits   decimal: the routes whose origin keys the origin matched
 *                 (policy_origin_bits(), bit = conf_route.origin_bit)
 *   signature     decimal, not 0: conf.origin_signature of the rules the
 *                 bits were judged by
 *   refused       decimal: the destinations (bit conf_dest.rate_bit) the new
 *                 call was over max_new_calls_per_s of
 *   route name    the route the origin matched, by name, never by index
 *                 (at most 63 bytes; last, so it may contain '|')
 * e.g. "1|0|1700000000123|INVITE|voipmonitor".  A value that does not parse
 * exactly so is a malformed value.  Other instances write these values, so
 * the decoder takes any bytes (fuzz/fuzz_redis_value.c); it does no I/O and
 * allocates nothing.
 */
#ifndef HEPROUTER_STORE_REDIS_VALUE_H
#define HEPROUTER_STORE_REDIS_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define REDIS_VALUE_VERSION "1"
#define REDIS_VALUE_VERSION_ORIGIN "2"      /* with origin bits and signature */
#define REDIS_BITS_DIGITS_MAX 20            /* a uint64_t */
#define REDIS_SIGNATURE_DIGITS_MAX 10       /* a uint32_t */
#define REDIS_REFUSED_DIGITS_MAX 10         /* a uint32_t */
#define REDIS_VALUE_SEP '|'
#define REDIS_FLAGS_DIGITS_MAX 10           /* an unsigned int */
#define REDIS_MS_DIGITS_MAX 20              /* a uint64_t */
/* The longest value and its NUL: a buffer of this size holds any value. */
#define REDIS_VALUE_MAX (sizeof REDIS_VALUE_VERSION_ORIGIN + REDIS_FLAGS_DIGITS_MAX + 1 + REDIS_MS_DIGITS_MAX + 1 \
                         + STORE_METHOD_MAX + REDIS_BITS_DIGITS_MAX + 1 + REDIS_SIGNATURE_DIGITS_MAX + 1 \
                         + REDIS_REFUSED_DIGITS_MAX + 1 \
                         + STORE_ROUTE_MAX)

/*
 * Writes e as a value into buf (NUL-terminated); its length, or 0 when e
 * cannot be written (an empty, overlong or unterminated method or route, a
 * method byte the format cannot hold) or buf is too small.
 */
size_t redis_value_format(const struct store_entry *e, char *buf, size_t len);

/* Parses v[0..len) into *out (zeroed first); -1 when it is malformed in any way. */
int redis_value_parse(const char *v, size_t len, struct store_entry *out);

/* Same origin decision: what the value holds apart from the flags. */
bool redis_value_same_origin(const struct store_entry *a, const struct store_entry *b);

/*
 * Reads a decimal of 1 to max_digits digits, no sign, at *p (before end),
 * as the value writes its numbers (Redis writes ports in its replies the
 * same way); advances *p past it.  false when there is none, it is longer,
 * or it does not fit a uint64_t.
 */
bool redis_value_decimal(const char **p, const char *end, size_t max_digits, uint64_t *out);

#endif
