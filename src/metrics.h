/*
 * metrics.h - the router's counters, in one struct.
 *
 * Each worker owns one struct metrics and bumps plain integers on its packet
 * path (no atomics, no locks); metrics_sum() adds them up for reporting.
 * Per-destination and per-target counters are arrays laid out like the
 * configuration: target j of destination i is targets[dest_first_target[i] + j].
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

struct metrics_dest {
    uint64_t packets;               /* handed to the destination */
    uint64_t bytes;
    uint64_t converted;             /* re-encoded (version or chunk rewrite) */
    uint64_t too_big;               /* above max_packet: counted, not sent */
    uint64_t encode_errors;
};

struct metrics_target {
    uint64_t packets;               /* written to the socket */
    uint64_t bytes;
    uint64_t send_errors;
    uint64_t queue_drops;           /* TCP queue full, oldest dropped */
    uint64_t down_drops;            /* target down and nowhere else to go */
    uint64_t exit_drops;            /* still queued when the drain timed out */
    uint64_t connects;
    uint64_t disconnects;
};

struct metrics {
    /* ingest */
    uint64_t packets_in;
    uint64_t bytes_in;
    uint64_t in_version[METRICS_HEP_VERSIONS];
    uint64_t in_sip;
    uint64_t in_rtcp;
    uint64_t in_log;
    uint64_t in_other;
    uint64_t decode_errors[HEP_STATUS_COUNT];
    uint64_t payload_inflated;      /* compressed payload (chunk 0x0010) inflated to route it */
    uint64_t payload_inflate_errors;    /* compressed payload not inflated: routed without call context */
    uint64_t udp_oversize;          /* datagram larger than the receive buffer */
    uint64_t recv_errors;
    uint64_t tcp_accepted;
    uint64_t tcp_rejected;          /* over limits.tcp_max_connections */
    uint64_t tcp_bad_magic;         /* connection closed: frame without "HEP3" */
    uint64_t tcp_bad_length;        /* connection closed: length < 6 or > limit */
    uint64_t tcp_idle_closed;
    uint64_t tcp_truncated;         /* connection ended with a partial frame buffered: lost */
    uint64_t tcp_closed;            /* all inbound closes, any reason */

    /* classify / decide */
    uint64_t sip_errors[SIP_STATUS_COUNT];  /* unscannable SIP: sent to default */
    uint64_t sip_lines_skipped;     /* header lines without a colon or with a bad name: skipped */
    uint64_t calls_new;             /* origin seen, call stored */
    uint64_t calls_followed;        /* packet of a known call */
    uint64_t calls_fallback;        /* decision by the packet's own CSeq method */
    uint64_t calls_not_stored;      /* decision the store could not take (e.g. ENOMEM): routed anyway */
    uint64_t uncorrelated;          /* no Call-ID / correlation id: default route */
    uint64_t duplicates;            /* same bytes as the call's previous packet */
    uint64_t route_dropped;         /* the matching route discards */

    /* shared store (Redis) */
    uint64_t store_lookups;         /* GETs sent */
    uint64_t store_hits;            /* GET answered with a call */
    uint64_t store_misses;          /* GET answered: unknown call */
    uint64_t store_timeouts;        /* answers later than store.redis.timeout_ms */
    uint64_t store_errors;          /* error replies, failed commands */
    uint64_t store_writes;          /* SET / EXPIRE sent */
    uint64_t store_lost_writes;     /* decisions not written: down too long, backlog full */
    uint64_t store_reconnects;      /* connections (re)established after a loss */
    uint64_t store_unavailable;     /* questions not asked: down or too many in flight */
    uint64_t store_cache_hits;      /* decided from the in-process cache */
    uint64_t store_cache_misses;
    /*
     * Memory store: live calls evicted at store.max_calls.  A property of
     * the shared store, not a worker counter: workers leave it 0 and the
     * main thread sets it in the total it reports.
     */
    uint64_t store_evictions;

    /* orphans */
    uint64_t orphans_held;
    uint64_t orphans_released_origin;
    uint64_t orphans_released_fallback;
    uint64_t orphans_queue_full;    /* hold queue full: fallback at once */

    /* dispatch */
    size_t ndests;
    struct metrics_dest *dests;
    size_t *dest_first_target;
    size_t ntargets;
    struct metrics_target *targets;
};

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
