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
 * metrics_write_json(), metrics_write_prometheus() and the check of
 * heprouter(8)'s METRICS section (tests/unit/test_metrics.c) are all made
 * from them.  The order of a list is the order of the JSON line, which
 * operators and tests parse.  Listeners (conf->listen) and routes
 * (conf->routes, then the default) have arrays of their own.
 */
#ifndef HEPROUTER_METRICS_H
#define HEPROUTER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "admission.h"
#include "hep.h"
#include "sip.h"

struct conf;

#define METRICS_HEP_VERSIONS 4      /* index 1..3; 0: not a HEP packet (listeners only) */

/* How a value of one worker's struct combines with another's in metrics_add(). */
static inline uint64_t metrics_sum(uint64_t a, uint64_t b)
{
    return a + b;
}

static inline uint64_t metrics_min(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static inline uint64_t metrics_max(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/*
 * The top-level values.  Each entry is one of
 *   FAMILY(prom, type, label, help)  opens a Prometheus family: name
 *                                    ("heprouter_..."; NULL: the entries
 *                                    until the next FAMILY are in the JSON
 *                                    line only, help says where Prometheus
 *                                    has them), type "counter" or "gauge",
 *                                    the name of its one label or NULL,
 *                                    and its HELP text
 *   COUNTER(name, value, help)       uint64_t name, summed; JSON "name":n;
 *                                    in the open family with label=value
 *                                    (value NULL when it has no label)
 *   SERIES(name, count, key, help)   uint64_t name[count], summed; element
 *                                    i is its own JSON key, key(i):n
 *   GROUP(name, count, key, help)    uint64_t name[count], summed; JSON
 *                                    "name":{key(i):n,...}; in the open
 *                                    family with label=key(i)
 *   GAUGE(name, agg, value, help)    uint64_t name, combined with
 *                                    metrics_<agg> (sum or min); not in
 *                                    the JSON line (a gauge is no count)
 * where key is a const char *(int) naming element i.  Element 0 of an array
 * is never counted or written (HEP_OK, SIP_OK, no HEP version 0).  Entries
 * of one family are adjacent, and families are named once over all lists
 * (tests/unit/test_metrics.c checks both).
 */
#define METRICS_COUNTERS(FAMILY, COUNTER, SERIES, GROUP, GAUGE)                                                \
    /* ingest */                                                                                               \
    FAMILY(NULL, "counter", NULL, "JSON only: heprouter_received_packets_total and "                            \
           "heprouter_received_bytes_total count the same packets per listener")                               \
    COUNTER(packets_in, NULL, "packets received")                                                              \
    COUNTER(bytes_in, NULL, "bytes received")                                                                  \
    SERIES(in_version, METRICS_HEP_VERSIONS, metrics_in_version_name, "packets by HEP version")                \
    FAMILY("heprouter_received_protocol_packets_total", "counter", "protocol",                                 \
           "HEP packets received, by HEP protocol type")                                                       \
    COUNTER(in_sip, "sip", "SIP packets received")                                                             \
    COUNTER(in_rtcp, "rtcp", "RTCP packets received")                                                         \
    COUNTER(in_log, "log", "log packets received")                                                             \
    COUNTER(in_other, "other", "packets of other HEP protocol types received")                                 \
    FAMILY("heprouter_decode_errors_total", "counter", "reason", "Malformed HEP packets dropped, by reason")    \
    GROUP(decode_errors, HEP_STATUS_COUNT, hep_status_name, "malformed HEP dropped, by reason")                \
    FAMILY("heprouter_refused_packets_total", "counter", "reason",                                             \
           "Packets refused by the sources: rules of their listener, by reason")                               \
    GROUP(refused, ADMISSION_VERDICT_COUNT, admission_verdict_name, "refused by sources:, by reason")           \
    FAMILY("heprouter_payload_inflated_total", "counter", NULL,                                                \
           "Compressed payloads (chunk 0x0010) inflated to route them")                                        \
    COUNTER(payload_inflated, NULL, "compressed payload (chunk 0x0010) inflated to route it")                  \
    FAMILY("heprouter_payload_inflate_errors_total", "counter", NULL,                                          \
           "Compressed payloads not inflated: routed without call context")                                    \
    COUNTER(payload_inflate_errors, NULL, "compressed payload not inflated: routed without call context")      \
    FAMILY("heprouter_udp_oversize_total", "counter", NULL, "Datagrams larger than the receive buffer")        \
    COUNTER(udp_oversize, NULL, "datagram larger than the receive buffer")                                     \
    FAMILY("heprouter_receive_errors_total", "counter", NULL, "Socket receive errors")                         \
    COUNTER(recv_errors, NULL, "socket receive errors")                                                        \
    FAMILY("heprouter_tcp_connections_accepted_total", "counter", NULL, "Inbound TCP connections accepted")    \
    COUNTER(tcp_accepted, NULL, "inbound TCP connections accepted")                                            \
    FAMILY("heprouter_tcp_connections_rejected_total", "counter", NULL,                                        \
           "Inbound TCP connections refused over limits.tcp_max_connections")                                  \
    COUNTER(tcp_rejected, NULL, "over limits.tcp_max_connections")                                             \
    FAMILY("heprouter_tcp_connections_not_allowed_total", "counter", NULL,                                     \
           "Inbound TCP connections closed at accept: the source is not in sources.allow")                     \
    COUNTER(tcp_not_allowed, NULL, "closed at accept: not in sources.allow")                                   \
    FAMILY("heprouter_tcp_connections_closed_by_router_total", "counter", "reason",                            \
           "Inbound TCP connections the router closed, by reason")                                             \
    COUNTER(tcp_bad_magic, "bad_magic", "connection closed: frame without \"HEP3\"")                           \
    COUNTER(tcp_bad_length, "bad_length", "connection closed: length < 6 or > limit")                          \
    COUNTER(tcp_idle_closed, "idle", "connection closed after limits.tcp_idle_timeout")                        \
    FAMILY("heprouter_tls_handshakes_total", "counter", NULL, "Inbound TLS handshakes completed")              \
    COUNTER(tls_handshakes, NULL, "inbound TLS handshakes completed")                                         \
    FAMILY("heprouter_tls_handshake_failures_total", "counter", "reason",                                      \
           "Inbound TLS handshakes refused, by reason")                                                        \
    COUNTER(tls_failed_certificate, "certificate", "a client certificate not trusted, expired, or ours refused") \
    COUNTER(tls_failed_no_certificate, "no_certificate", "a client certificate required, none sent")          \
    COUNTER(tls_failed_protocol, "protocol", "not TLS, no common version or cipher, closed mid-handshake")   \
    COUNTER(tls_failed_timeout, "timeout", "not done within limits.tls_handshake_timeout")                    \
    FAMILY("heprouter_tcp_truncated_frames_total", "counter", NULL,                                            \
           "Inbound TCP connections that ended with a partial frame buffered (lost)")                          \
    COUNTER(tcp_truncated, NULL, "connection ended with a partial frame buffered: lost")                       \
    FAMILY("heprouter_tcp_connections_closed_total", "counter", NULL, "Inbound TCP connections closed, any reason") \
    COUNTER(tcp_closed, NULL, "all inbound closes, any reason")                                                \
    /* classify / decide */                                                                                    \
    FAMILY("heprouter_sip_errors_total", "counter", "reason",                                                  \
           "Unscannable SIP payloads, by reason: routed without call context")                                 \
    GROUP(sip_errors, SIP_STATUS_COUNT, sip_status_name, "unscannable SIP: sent to default")                   \
    FAMILY("heprouter_sip_lines_skipped_total", "counter", NULL,                                               \
           "SIP header lines without a colon or with a bad name, skipped")                                     \
    COUNTER(sip_lines_skipped, NULL, "header lines without a colon or with a bad name: skipped")               \
    FAMILY("heprouter_calls_total", "counter", "decision", "Call decisions, by kind")                          \
    COUNTER(calls_new, "new", "origin seen, call stored")                                                      \
    COUNTER(calls_followed, "followed", "packet of a known call")                                              \
    COUNTER(calls_fallback, "fallback", "decision by the packet's own CSeq method")                            \
    COUNTER(calls_not_stored, "not_stored", "decision the store could not take (e.g. ENOMEM): routed anyway")  \
    FAMILY("heprouter_uncorrelated_packets_total", "counter", NULL,                                            \
           "Packets without Call-ID or correlation id: default route")                                         \
    COUNTER(uncorrelated, NULL, "no Call-ID / correlation id: default route")                                  \
    FAMILY("heprouter_duplicate_packets_total", "counter", NULL,                                               \
           "Packets whose payload equals their call's previous packet (forwarded)")                            \
    COUNTER(duplicates, NULL, "same bytes as the call's previous packet")                                      \
    FAMILY("heprouter_route_dropped_packets_total", "counter", NULL, "Packets whose route discards them")      \
    COUNTER(route_dropped, NULL, "the matching route discards")                                                \
    /* shared store (Redis) */                                                                                 \
    FAMILY("heprouter_store_lookups_total", "counter", NULL, "Redis store: GETs sent")                         \
    COUNTER(store_lookups, NULL, "GETs sent")                                                                  \
    FAMILY("heprouter_store_hits_total", "counter", NULL, "Redis store: GETs answered with a call")            \
    COUNTER(store_hits, NULL, "GET answered with a call")                                                      \
    FAMILY("heprouter_store_misses_total", "counter", NULL, "Redis store: GETs answered: unknown call")        \
    COUNTER(store_misses, NULL, "GET answered: unknown call")                                                  \
    FAMILY("heprouter_store_timeouts_total", "counter", NULL,                                                  \
           "Redis store: answers later than store.redis.timeout_ms")                                           \
    COUNTER(store_timeouts, NULL, "answers later than store.redis.timeout_ms")                                 \
    FAMILY("heprouter_store_errors_total", "counter", NULL, "Redis store: error replies, failed commands")      \
    COUNTER(store_errors, NULL, "error replies, failed commands")                                              \
    FAMILY("heprouter_store_writes_total", "counter", NULL, "Redis store: SET and EXPIRE commands sent")       \
    COUNTER(store_writes, NULL, "SET / EXPIRE sent")                                                           \
    FAMILY("heprouter_store_lost_writes_total", "counter", NULL,                                               \
           "Redis store: decisions not written (down too long, backlog full)")                                 \
    COUNTER(store_lost_writes, NULL, "decisions not written: down too long, backlog full")                     \
    FAMILY("heprouter_store_reconnects_total", "counter", NULL,                                                \
           "Redis store: connections (re)established after a loss")                                            \
    COUNTER(store_reconnects, NULL, "connections (re)established after a loss")                                \
    FAMILY("heprouter_store_unavailable_total", "counter", NULL,                                               \
           "Redis store: questions not asked (down or too many in flight)")                                    \
    COUNTER(store_unavailable, NULL, "questions not asked: down or too many in flight")                        \
    FAMILY("heprouter_store_cache_hits_total", "counter", NULL, "Lookups decided from the in-process cache")   \
    COUNTER(store_cache_hits, NULL, "decided from the in-process cache")                                       \
    FAMILY("heprouter_store_cache_misses_total", "counter", NULL, "Lookups not found in the in-process cache") \
    COUNTER(store_cache_misses, NULL, "not found in the in-process cache")                                     \
    /*                                                                                                         \
     * Memory store: a property of the shared store, not a worker counter:                                     \
     * workers leave it 0 and the main thread sets it in the total it reports.                                 \
     */                                                                                                        \
    FAMILY("heprouter_store_evictions_total", "counter", NULL,                                                 \
           "Memory store: live calls evicted at store.max_calls")                                              \
    COUNTER(store_evictions, NULL, "live calls evicted at store.max_calls")                                    \
    /* orphans */                                                                                              \
    FAMILY("heprouter_orphans_held_total", "counter", NULL, "Packets that waited for their call")             \
    COUNTER(orphans_held, NULL, "packets that waited for their call")                                          \
    FAMILY("heprouter_orphans_released_total", "counter", "by", "Held packets released, by what released them") \
    COUNTER(orphans_released_origin, "origin", "released because their call became known")                    \
    COUNTER(orphans_released_fallback, "fallback", "released by the fallback")                                 \
    FAMILY("heprouter_orphans_dropped_total", "counter", NULL,                                                 \
           "Packets not held because the hold queue was full: routed by the fallback at once")                 \
    COUNTER(orphans_queue_full, NULL, "hold queue full: fallback at once")                                     \
    /* the live tap (control socket `tap`) */                                                                  \
    FAMILY("heprouter_tap_lines_total", "counter", NULL, "Decision lines queued for live tap readers")         \
    COUNTER(tap_lines, NULL, "decision lines queued for tap readers")                                          \
    FAMILY("heprouter_tap_lost_lines_total", "counter", NULL,                                                  \
           "Tap lines lost: a full queue, or a tap reader that does not keep up")                              \
    COUNTER(tap_lost, NULL, "tap lines lost: full queue, or a reader that does not keep up")                   \
    /* gauges, set by the workers */                                                                           \
    FAMILY("heprouter_orphans_held", "gauge", NULL, "Packets held now, waiting for their call")               \
    GAUGE(orphans_held_now, sum, NULL, "packets held now")                                                     \
    FAMILY("heprouter_store_link_up", "gauge", NULL,                                                           \
           "1 when every worker's link to the store is up (always 1 for the memory store)")                    \
    GAUGE(store_link_up, min, NULL, "1: every worker's store link is up")

/*
 * Per destination, label destination=<name>; JSON "destinations":{"<name>":{...}}.
 *   COUNTER(name, prom, help)         uint64_t name, summed, family prom
 *   GAUGE(name, agg, prom, help)      uint64_t name, combined with metrics_<agg>,
 *                                     not in the JSON line
 * help is the family's HELP text.
 */
#define METRICS_DEST_COUNTERS(COUNTER, GAUGE)                                                                  \
    COUNTER(packets, "heprouter_destination_packets_total", "Packets handed to the destination")               \
    COUNTER(bytes, "heprouter_destination_bytes_total", "Bytes handed to the destination")                     \
    COUNTER(converted, "heprouter_destination_converted_total",                                                \
            "Packets re-encoded for the destination (version or chunk rewrite)")                               \
    COUNTER(too_big, "heprouter_destination_too_big_total", "Packets above max_packet: counted, not sent")     \
    COUNTER(encode_errors, "heprouter_destination_encode_errors_total", "Packets that could not be re-encoded")   \
    COUNTER(deduplicated, "heprouter_destination_deduplicated_total",                                          \
            "Packets not sent: a copy of one sent within dedup.window_ms")                                     \
    COUNTER(calls_over_rate, "heprouter_destination_calls_over_rate_total",                                    \
            "New calls not sent: over max_new_calls_per_s")                                                    \
    COUNTER(packets_over_rate, "heprouter_destination_packets_over_rate_total",                                \
            "Packets not sent: their call was over max_new_calls_per_s when it started")                       \
    COUNTER(spool_written, "heprouter_spool_written_packets_total",                                            \
            "Packets given to the destination's spool (no target could take them)")                          \
    COUNTER(spool_replayed, "heprouter_spool_replayed_packets_total", "Packets replayed from the spool")       \
    COUNTER(spool_resent, "heprouter_spool_resent_packets_total",                                              \
            "Packets replayed after a restart that may have been sent before it")                             \
    COUNTER(spool_damaged, "heprouter_spool_damaged_total", "Damaged or torn stretches of the spool skipped")  \
    COUNTER(spool_dropped_max_bytes, "heprouter_spool_dropped_max_bytes_total",                               \
            "Spooled packets dropped: oldest segment deleted for spool.max_bytes")                            \
    COUNTER(spool_dropped_max_age, "heprouter_spool_dropped_max_age_total",                                   \
            "Spooled packets dropped: segment older than spool.max_age")                                     \
    COUNTER(spool_dropped_disk_full, "heprouter_spool_dropped_disk_full_total",                               \
            "Packets not spooled: the file system is full")                                                  \
    COUNTER(spool_dropped_write_error, "heprouter_spool_dropped_write_error_total",                           \
            "Packets not spooled: the spool directory or a segment could not be written")                    \
    COUNTER(spool_dropped_slow_disk, "heprouter_spool_dropped_slow_disk_total",                               \
            "Packets not spooled: the writer thread was behind by spool.max_unwritten")                      \
    GAUGE(spool_packets, sum, "heprouter_spool_packets", "Packets waiting in the spool now")                    \
    GAUGE(spool_bytes, sum, "heprouter_spool_bytes", "Bytes the spool takes on disk now")                      \
    GAUGE(spool_oldest_seconds, max, "heprouter_spool_oldest_seconds",                                         \
          "Age of the segment holding the oldest waiting packet")

/* Per target, labels destination, target=<address as written>; inside its destination's "targets":{"<addr>":{...}}. */
#define METRICS_TARGET_COUNTERS(COUNTER, GAUGE)                                                                \
    COUNTER(packets, "heprouter_target_packets_total", "Packets written to the target's socket")               \
    COUNTER(bytes, "heprouter_target_bytes_total", "Bytes written to the target's socket")                     \
    COUNTER(send_errors, "heprouter_target_send_errors_total", "Failed sends to the target")                   \
    COUNTER(queue_drops, "heprouter_target_queue_drops_total", "TCP queue full: oldest packets dropped")        \
    COUNTER(down_drops, "heprouter_target_down_drops_total", "Packets dropped: target down and nowhere else to go") \
    COUNTER(exit_drops, "heprouter_target_exit_drops_total", "Packets still queued when the drain timed out")  \
    COUNTER(connects, "heprouter_target_connects_total", "TCP connections made to the target")                 \
    COUNTER(disconnects, "heprouter_target_disconnects_total", "TCP connections to the target lost")           \
    COUNTER(tls_failures, "heprouter_target_tls_failures_total",                                               \
            "TLS handshakes with the target that failed (its certificate refused, timeout)")                   \
    COUNTER(resolve_errors, "heprouter_target_resolve_errors_total", "Failed DNS lookups of the target's name") \
    COUNTER(refusals, "heprouter_target_refusals_total", "UDP sends refused (ICMP port unreachable)")          \
    COUNTER(went_up, "heprouter_target_up_transitions_total", "Times the target went from down to up")        \
    COUNTER(went_down, "heprouter_target_down_transitions_total", "Times the target went from up to down")     \
    GAUGE(queue_packets, sum, "heprouter_target_queue_packets", "Packets queued for the target now")           \
    GAUGE(queue_bytes, sum, "heprouter_target_queue_bytes", "Bytes queued for the target now")                 \
    GAUGE(up, min, "heprouter_target_up", "1 when every worker's connection to the target is up")

/*
 * Per listener, labels listener=<address as written>, version="1".."3" or
 * "other" (element 0: not a HEP packet); not in the JSON line.
 *   VERSIONS(name, prom, help)        uint64_t name[METRICS_HEP_VERSIONS], summed
 */
#define METRICS_LISTENER_COUNTERS(VERSIONS)                                                                    \
    VERSIONS(packets, "heprouter_received_packets_total", "Packets received, by listener and HEP version")      \
    VERSIONS(bytes, "heprouter_received_bytes_total", "Bytes received, by listener and HEP version")

/* Per route, label route=<name> or "(default)"; not in the JSON line. COUNTER as for destinations. */
#define METRICS_ROUTE_COUNTERS(COUNTER, GAUGE)                                                                 \
    COUNTER(hits, "heprouter_route_packets_total", "Packets that took the route")

/*
 * The values the main thread owns, written by metrics_write_prometheus()
 * from struct metrics_process: F(prom, type, labels, help).
 */
#define METRICS_PROCESS_FAMILIES(F)                                                                            \
    F("heprouter_build_info", "gauge", "version", "Always 1; the version of heprouter")                        \
    F("heprouter_config_info", "gauge", "hash,path", "Always 1; the configuration in use")                    \
    F("heprouter_config_reloads_total", "counter", "result", "Configuration loads asked for after the start")  \
    F("heprouter_config_last_reload_timestamp_seconds", "gauge", NULL,                                         \
      "Unix time of the last successful configuration load (the start included)")                             \
    F("heprouter_store_calls", "gauge", NULL, "Calls the store tracks now (absent when the store cannot tell)")

/* The labels of the families of each list, as written in heprouter(8). */
#define METRICS_DEST_LABELS "destination"
#define METRICS_TARGET_LABELS "destination,target"
#define METRICS_LISTENER_LABELS "listener,version"
#define METRICS_ROUTE_LABELS "route"
#define METRICS_DEFAULT_ROUTE "(default)"

#define METRICS_FIELD(name, ...) uint64_t name;
#define METRICS_ARRAY_FIELD(name, count, ...) uint64_t name[count];
#define METRICS_VERSIONS_FIELD(name, ...) uint64_t name[METRICS_HEP_VERSIONS];
#define METRICS_NO_FIELD(...)

struct metrics_dest {
    METRICS_DEST_COUNTERS(METRICS_FIELD, METRICS_FIELD)
};

struct metrics_target {
    METRICS_TARGET_COUNTERS(METRICS_FIELD, METRICS_FIELD)
};

struct metrics_listener {
    METRICS_LISTENER_COUNTERS(METRICS_VERSIONS_FIELD)
};

struct metrics_route {
    METRICS_ROUTE_COUNTERS(METRICS_FIELD, METRICS_FIELD)
};

struct metrics {
    METRICS_COUNTERS(METRICS_NO_FIELD, METRICS_FIELD, METRICS_ARRAY_FIELD, METRICS_ARRAY_FIELD, METRICS_FIELD)

    /* dispatch */
    size_t ndests;
    struct metrics_dest *dests;
    size_t *dest_first_target;
    size_t ntargets;
    struct metrics_target *targets;

    /* ingest: conf->listen[i]; routes: conf->routes[i], then the default */
    size_t nlisteners;
    struct metrics_listener *listeners;
    size_t nroutes;
    struct metrics_route *routes;

    /*
     * Gauges: how many structs' readings are combined in this one (0: none
     * yet, the next added replaces them), and whether this struct's own
     * are left out when it is added (metrics_keep_counters_only()).
     */
    size_t gauge_readings;
    bool counters_only;
};

/* What the main thread knows, for metrics_write_prometheus(). */
struct metrics_process {
    uint64_t reloads_ok;            /* loads after the start that succeeded */
    uint64_t reloads_failed;
    double last_reload_s;           /* unix time of the last good load, the start included */
    const char *config_hash;        /* 16 hex digits */
    const char *config_path;
    const char *version;            /* PACKAGE_VERSION */
    uint64_t calls_tracked;         /* store_count() */
    bool calls_tracked_known;       /* false: heprouter_store_calls is left out */
};

/* "in_v1".."in_v3": the JSON key of in_version[version]. */
const char *metrics_in_version_name(int version);

/* "other", "1".."3": the Prometheus version label of a listener's element. */
const char *metrics_version_label(int version);

/*
 * Sizes the per-destination, per-target, per-listener and per-route arrays
 * from conf; -1 on ENOMEM.
 */
int metrics_init(struct metrics *m, const struct conf *conf);

void metrics_free(struct metrics *m);

/* Zeroes every counter and gauge, keeping the arrays; the gauges hold no reading. */
void metrics_reset(struct metrics *m);

/*
 * Marks m as counters only: when added to another struct its gauges are
 * left out (for what a reload keeps of retired workers: their counts, not
 * their queues).
 */
void metrics_keep_counters_only(struct metrics *m);

/*
 * dst += src, both initialised from the same conf: counters summed, gauges
 * combined as their list says (into a dst without readings yet: copied).
 */
void metrics_add(struct metrics *dst, const struct metrics *src);

/*
 * dst += src where src was initialised from sconf and dst from dconf:
 * destinations matched by name, targets by address text within the
 * same-named destination, routes by name (default to default), listeners by
 * address text; what has no match in dconf is left out.  Carries counters
 * over a reload and sums snapshots of workers on different configurations.
 */
void metrics_add_mapped(struct metrics *dst, const struct conf *dconf, const struct metrics *src,
                        const struct conf *sconf);

/* Writes the counters as one JSON object on one line (names from conf). */
void metrics_write_json(const struct metrics *m, const struct conf *conf, FILE *out);

/*
 * Writes m and p in the Prometheus text exposition format 0.0.4: every
 * family of the lists, labels from conf (escaped), p's process families.
 */
void metrics_write_prometheus(const struct metrics *m, const struct conf *conf, const struct metrics_process *p,
                              FILE *out);

#endif
