/*
 * resolve.h - the DNS names of targets, looked up off the event loop.
 *
 * getaddrinfo() blocks for as long as the name servers take, which an event
 * loop must never do.  A resolver belongs to one loop: it runs the lookups
 * on a thread of its own, one at a time, and hands each answer back to its
 * loop (ev_async), where the watch's callback runs.  A slow name delays the
 * names queued behind it, never a packet.
 *
 * A watch keeps one name fresh: it is looked up at once, then every
 * refresh interval (limits.dns_refresh), and again whenever its owner asks
 * (a TCP target before each reconnect).  After a failed lookup the next
 * one comes after the reconnect backoff (limits.reconnect_min doubling up
 * to limits.reconnect_max), not after the refresh interval.
 *
 * The address used is the first that getaddrinfo() returns for the
 * target's socket type with any family (AF_UNSPEC): the system's order
 * (RFC 6724 and /etc/gai.conf) decides between IPv4 and IPv6, and between
 * the addresses of a name that has several.
 */
#ifndef HEPROUTER_RESOLVE_H
#define HEPROUTER_RESOLVE_H

#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

struct resolver;
struct resolve_watch;

/*
 * An answer, on the loop's thread: sa (salen bytes, the port set) on
 * success; on failure sa is NULL and error says why ("Name or service not
 * known").  The callback may call resolve_now() and resolve_watch_free()
 * on its own watch.
 */
typedef void (*resolve_fn)(void *arg, const struct sockaddr *sa, socklen_t salen, const char *error);

/* A resolver for loop, with its thread; NULL (logged) on failure. */
struct resolver *resolver_new(struct ev_loop *loop, uint64_t refresh_ms, uint64_t retry_min_ms,
                              uint64_t retry_max_ms);

/*
 * Frees the resolver; its watches must be freed first.  Never waits: a
 * lookup still running finishes on its thread, which then frees what is
 * left.
 */
void resolver_free(struct resolver *r);

/* A reload: the intervals the next lookups are scheduled with. */
void resolver_configure(struct resolver *r, uint64_t refresh_ms, uint64_t retry_min_ms, uint64_t retry_max_ms);

/*
 * Starts keeping host (a DNS name) fresh for port and socktype
 * (SOCK_STREAM, SOCK_DGRAM); the first lookup starts now.  NULL when out
 * of memory.
 */
struct resolve_watch *resolve_watch_new(struct resolver *r, const char *host, unsigned port, int socktype,
                                        resolve_fn fn, void *arg);

/* Looks the name up again now, unless a lookup is already under way (its answer serves). */
void resolve_now(struct resolve_watch *w);

/* Stops the watch; no callback comes after this. */
void resolve_watch_free(struct resolve_watch *w);

#endif
