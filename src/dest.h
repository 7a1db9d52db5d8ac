/*
 * dest.h - destinations: fan-out targets, balancing, output format, sockets.
 *
 * Each worker owns one dest_set built from the configuration: for every
 * destination its targets (udp:/tcp:), a balance mode and an output format.
 * dest_send() never blocks: UDP datagrams are batched and leave with
 * sendmmsg() at dest_flush(); TCP targets have a bounded byte queue drained
 * when the socket is writable, with reconnect and exponential backoff, and
 * drop the oldest packets (counted) when the queue is full, or, with a
 * spool, keep what they cannot take on disk and replay it later.  One
 * unreachable target never delays another.
 */
#ifndef HEPROUTER_DEST_H
#define HEPROUTER_DEST_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "hep.h"

struct conf;
struct metrics;
struct dest_set;

/*
 * Details the callers can rely on (dest.c says why):
 * - A UDP target is a connected socket: an ICMP port-unreachable shows up
 *   as ECONNREFUSED (counted in refusals); limits.udp_refusals_down of
 *   them in a row take the target "down" (skipped, counted as down_drops
 *   when nothing else takes its packets) until a probe after the
 *   reconnect backoff is not refused within limits.connect_timeout
 *   (meanwhile balancing prefers other targets; balance all sends).
 *   A TCP target is "up" while connected.  went_up / went_down count the
 *   changes of either.
 * - hash / round_robin / failover pick the preferred target (hash of key
 *   with FNV-1a, the next in turn, the first) if it is up, else the next
 *   one that is up, else the preferred one anyway (TCP queues it).
 * - A destination with a TCP target always emits HEPv3 (the stream is
 *   framed by the HEP3 length), so v1/v2 input is converted for it.
 * - max_packet 0 means no limit.
 * - A target named by DNS (resolve.h) is down until its name resolves; it
 *   keeps its last address while later lookups fail; a UDP socket moves to
 *   a new address at once, a TCP target at its next connect, and looks the
 *   name up again before each one.
 * - The set copies what it needs from conf; conf may be freed after
 *   dest_set_new().
 */

/*
 * Opens the sockets of every target; NULL (with a logged reason) on failure.
 * worker (of conf->workers) names the spools' directories.
 */
struct dest_set *dest_set_new(struct ev_loop *loop, const struct conf *conf, struct metrics *m, unsigned worker);

void dest_set_free(struct dest_set *ds);

/*
 * Sends one packet to destination index di.  view is the decoded packet
 * (its raw bytes are forwarded unchanged unless the destination converts or
 * rewrites); key is the call key used by `balance: hash`.  UDP sends keep
 * pointers to view->raw until dest_flush(): the caller keeps those bytes
 * alive until then.  TCP sends and re-encoded packets are copied.
 */
void dest_send(struct dest_set *ds, size_t di, const struct hep_view *view, const char *key, size_t klen);

/* Sends everything batched by dest_send() (one sendmmsg per UDP socket). */
void dest_flush(struct dest_set *ds);

/* Bytes still queued for TCP targets (drain on shutdown). */
size_t dest_pending(const struct dest_set *ds);

/*
 * Shutdown after the drain timeout: discards what TCP targets still queue,
 * counting each frame in exit_drops.  Returns the number of frames.
 */
size_t dest_abandon(struct dest_set *ds);

/*
 * A configuration reload, between two batches; old is the configuration
 * the set was built from, conf the new one, and the set's metrics must
 * already be laid out for conf (metrics_add_mapped()).  A destination
 * whose configuration did not change (same name, conf_dest_equal()) keeps
 * its sockets, TCP connections, queues and balancing state.  A changed or
 * removed one is retired: its TCP targets send what they queue, take
 * nothing new, and are closed once empty or limits.drain_timeout after the
 * reload (what is left then is dropped, counted in exit_drops); the new
 * version is built from conf.  0, or -1 when something could not be built
 * (logged; such a destination drops its packets until the next reload).
 */
int dest_set_reconfigure(struct dest_set *ds, const struct conf *old, const struct conf *conf);

/* Closes retired destinations that are done or out of time; call it periodically. */
void dest_housekeeping(struct dest_set *ds);

/*
 * Sets the gauges (queue depth, up; the spools') of every target and
 * destination in the set's metrics, and adds what the spools counted since.
 */
void dest_gauges(struct dest_set *ds);

#endif
