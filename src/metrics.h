/*
 * metrics.h - the router's counters, in one list.
 *
 * Each worker owns one struct metrics and bumps plain integers on its packet
 * path (no atomics, no locks); metrics_add() sums them for reporting.
 * Per-destination and per-target counters are arrays laid out like the
 * configuration: target j of destination i is targets[dest_first_target[i] + j].
 *
 * Every counter is named once, in the lists below (twemproxy's
 * STATS_POOL_CODEC): the struct fields, metrics_reset(), metrics_add(),
 * metrics_write_json() and the check of heprouter(8)'s COUNTERS section
 * (tests/unit/test_metrics.c) are all made from them.  The order of a list
 * is the order of the JSON line, which operators and tests parse.
 */
#ifndef HEPROUTER_METRICS_H
#define HEPROUTER_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hep.h"
#include "sip.h"

struct conf;

#define METRICS_HEP_VERSIONS 4      /* index 1..3 */

/*
 * The top-level counters.  Each entry is one of
 *   COUNTER(name, help)              uint64_t name;  JSON "name":n
 *   SERIES(name, count, key, help)   uint64_t name[count];  element i is
 *                                    its own key, key(i):n ("in_v1":n)
 *   GROUP(name, count, key, help)    uint64_t name[count];  one object,
 *                                    "name":{key(i):n,...}
 * where key is a const char *(int) naming element i.  Element 0 of an array
 * is never counted or written (HEP_OK, SIP_OK, no HEP version 0).
 */
#define METRICS_COUNTERS(COUNTER, SERIES, GROUP)                                                    \
    /* ingest */                                                                                    \
    COUNTER(packets_in, "packets received")                                                         \
    COUNTER(bytes_in, "bytes received")                                                             \
    SERIES(in_version, METRICS_HEP_VERSIONS, metrics_in_version_name, "packets by HEP version")     \
    COUNTER(in_sip, "SIP packets received")                                                         \
    COUNTER(in_rtcp, "RTCP packets received")                                                       \
    COUNTER(in_log, "log packets received")                                                         \
    COUNTER(in_other, "packets of other HEP protocol types received")                               \
    GROUP(decode_errors, HEP_STATUS_COUNT, hep_status_name, "malformed HEP dropped, by reason")     \
    COUNTER(payload_inflated, "compressed payload (chunk 0x0010) inflated to route it")             \
    COUNTER(payload_inflate_errors, "compressed payload not inflated: routed without call context") \
    COUNTER(udp_oversize, "datagram larger than the receive buffer")                                \
    COUNTER(recv_errors, "socket receive errors")                                                   \
    COUNTER(tcp_accepted, "inbound TCP connections accepted")                                       \
    COUNTER(tcp_rejected, "over limits.tcp_max_connections")                                        \
    COUNTER(tcp_bad_magic, "connection closed: frame without \"HEP3\"")                             \
    COUNTER(tcp_bad_length, "connection closed: length < 6 or > limit")                             \
    COUNTER(tcp_idle_closed, "connection closed after limits.tcp_idle_timeout")                     \
    COUNTER(tcp_truncated, "connection ended with a partial frame buffered: lost")                  \
    COUNTER(tcp_closed, "all inbound closes, any reason")                                           \
    /* classify / decide */                                                                         \
    GROUP(sip_errors, SIP_STATUS_COUNT, sip_status_name, "unscannable SIP: sent to default")        \
    COUNTER(sip_lines_skipped, "header lines without a colon or with a bad name: skipped")          \
    COUNTER(calls_new, "origin seen, call stored")                                                  \
    COUNTER(calls_followed, "packet of a known call")                                               \
    COUNTER(calls_fallback, "decision by the packet's own CSeq method")                             \
    COUNTER(calls_not_stored, "decision the store could not take (e.g. ENOMEM): routed anyway")     \
    COUNTER(uncorrelated, "no Call-ID / correlation id: default route")                             \
    COUNTER(duplicates, "same bytes as the call's previous packet")                                 \
    COUNTER(route_dropped, "the matching route discards")                                           \
    /* shared store (Redis) */                                                                      \
    COUNTER(store_lookups, "GETs sent")                                                             \
    COUNTER(store_hits, "GET answered with a call")                                                 \
    COUNTER(store_misses, "GET answered: unknown call")                                             \
    COUNTER(store_timeouts, "answers later than store.redis.timeout_ms")                            \
    COUNTER(store_errors, "error replies, failed commands")                                         \
    COUNTER(store_writes, "SET / EXPIRE sent")                                                      \
    COUNTER(store_lost_writes, "decisions not written: down too long, backlog full")                \
    COUNTER(store_reconnects, "connections (re)established after a loss")                           \
    COUNTER(store_unavailable, "questions not asked: down or too many in flight")                   \
    COUNTER(store_cache_hits, "decided from the in-process cache")                                  \
    COUNTER(store_cache_misses, "not found in the in-process cache")                                \
    /*                                                                                              \
     * Memory store: a property of the shared store, not a worker counter:                          \
     * workers leave it 0 and the main thread sets it in the total it reports.                      \
     */                                                                                             \
    COUNTER(store_evictions, "live calls evicted at store.max_calls")                               \
    /* orphans */                                                                                   \
    COUNTER(orphans_held, "packets that waited for their call")                                     \
    COUNTER(orphans_released_origin, "released because their call became known")                    \
    COUNTER(orphans_released_fallback, "released by the fallback")                                  \
    COUNTER(orphans_queue_full, "hold queue full: fallback at once")

/* Per destination: COUNTER(name, help), JSON "destinations":{"<name>":{...}}. */
#define METRICS_DEST_COUNTERS(COUNTER)                                                              \
    COUNTER(packets, "handed to the destination")                                                   \
    COUNTER(bytes, "bytes handed to the destination")                                               \
    COUNTER(converted, "re-encoded (version or chunk rewrite)")                                     \
    COUNTER(too_big, "above max_packet: counted, not sent")                                         \
    COUNTER(encode_errors, "could not be re-encoded")

/* Per target, inside its destination's "targets":{"<addr>":{...}}. */
#define METRICS_TARGET_COUNTERS(COUNTER)                                                            \
    COUNTER(packets, "written to the socket")                                                       \
    COUNTER(bytes, "bytes written to the socket")                                                   \
    COUNTER(send_errors, "failed sends")                                                            \
    COUNTER(queue_drops, "TCP queue full, oldest dropped")                                          \
    COUNTER(down_drops, "target down and nowhere else to go")                                       \
    COUNTER(exit_drops, "still queued when the drain timed out")                                    \
    COUNTER(connects, "connections made")                                                           \
    COUNTER(disconnects, "connections lost")

#define METRICS_FIELD(name, help) uint64_t name;
#define METRICS_ARRAY_FIELD(name, count, key, help) uint64_t name[count];

struct metrics_dest {
    METRICS_DEST_COUNTERS(METRICS_FIELD)
};

struct metrics_target {
    METRICS_TARGET_COUNTERS(METRICS_FIELD)
};

struct metrics {
    METRICS_COUNTERS(METRICS_FIELD, METRICS_ARRAY_FIELD, METRICS_ARRAY_FIELD)

    /* dispatch */
    size_t ndests;
    struct metrics_dest *dests;
    size_t *dest_first_target;
    size_t ntargets;
    struct metrics_target *targets;
};

/* "in_v1".."in_v3": the JSON key of in_version[version]. */
const char *metrics_in_version_name(int version);

/* Sizes the per-destination and per-target arrays from conf; -1 on ENOMEM. */
int metrics_init(struct metrics *m, const struct conf *conf);

void metrics_free(struct metrics *m);

/* Zeroes every counter, keeping the arrays. */
void metrics_reset(struct metrics *m);

/* dst += src; both initialised from the same conf. */
void metrics_add(struct metrics *dst, const struct metrics *src);

/* Writes the counters as one JSON object on one line (names from conf). */
void metrics_write_json(const struct metrics *m, const struct conf *conf, FILE *out);

#endif
