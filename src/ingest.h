/*
 * ingest.h - listeners: UDP (recvmmsg batches), TCP (HEP3 streams, cut
 * into frames by framer.h) and TLS (the same streams inside TLS, tls.h).
 *
 * Every worker opens its own sockets on the configured addresses with
 * SO_REUSEPORT, so the kernel spreads senders over workers.  Each received
 * datagram or complete TCP frame is handed to the packet callback; after a
 * batch (one recvmmsg, one TCP read) the batch-end callback runs, which is
 * where the router flushes its output.  A TCP connection whose frame has a
 * bad magic or a length < 6 or > limits.tcp_max_frame is closed and counted;
 * connections above limits.tcp_max_connections are refused and counted; a
 * connection that ends with part of a frame buffered (the peer closed or
 * reset it mid-frame, idle timeout, shutdown) counts that frame as
 * tcp_truncated and logs a rate-limited warning naming the peer.  A
 * connection that neither begins nor completes a frame for
 * limits.tcp_idle_timeout is closed as idle: bytes that only add to an
 * unfinished frame do not count, so a trickling sender cannot hold it open.
 *
 * A tls: listener's connections begin with a TLS handshake (its context
 * from conf->tls_set), which must end within limits.tls_handshake_timeout;
 * a failed one is counted by kind (tls_failed_*) and logged rate-limited.
 * Then the same framing and bounds apply.  With tls.client_capture_ids, a
 * connection's frames may claim only the capture ids its certificate's
 * subject is bound to (in the running configuration: a reload applies to
 * open connections too).
 */
#ifndef HEPROUTER_INGEST_H
#define HEPROUTER_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

struct conf;
struct conf_sources;
struct hep_view;
struct metrics;
struct ingest;

/* Where a packet came from (for logs), and the rules it must pass once decoded. */
struct ingest_source {
    const struct sockaddr *peer;
    socklen_t peerlen;
    int transport;                  /* CONF_UDP / CONF_TCP */
    const struct conf_sources *packet_rules;    /* its listener's auth keys / capture ids; NULL: none */
    bool cert_bound;                /* tls.client_capture_ids applies: only cert_ids may be claimed */
    const uint32_t *cert_ids;       /* what the client certificate may claim (none when not listed) */
    size_t ncert_ids;
    const char *cert_subject;       /* its subject (RFC 2253), for the log; NULL: none */
};

typedef void (*ingest_packet_fn)(void *arg, const uint8_t *data, size_t len,
                                 const struct ingest_source *src);
typedef void (*ingest_batch_end_fn)(void *arg);

/*
 * Binds every listener of conf on loop.  Returns NULL after logging which
 * address failed and why.
 */
struct ingest *ingest_new(struct ev_loop *loop, const struct conf *conf, struct metrics *m,
                          ingest_packet_fn on_packet, ingest_batch_end_fn on_batch_end, void *arg);

/*
 * Closes every socket that is still open and frees everything, without
 * reading or delivering anything more; after ingest_stop() there is
 * nothing left to close.
 */
void ingest_free(struct ingest *in);

/*
 * Shutdown (drain): closes every listener and connection, so that UDP
 * senders get ICMP port unreachable and TCP connects are refused instead
 * of data piling up in kernel buffers nobody reads.  What the kernel had
 * already accepted is handed out first, through the callbacks, from inside
 * this call: the datagrams queued on each UDP socket (bounded by its
 * SO_RCVBUF), the connections waiting to be accepted, and the bytes queued
 * on each TCP connection, whose whole frames are delivered and whose
 * partial frame is counted as tcp_truncated.  Call it from the loop, not
 * from inside a callback; a second call does nothing.
 */
void ingest_stop(struct ingest *in);

/*
 * A configuration reload, between two batches; old is the configuration
 * the listeners were opened from.  A listener whose address did not
 * change (conf_addr_equal(): the port a port-0 listener was given must
 * already be in conf) keeps its socket and connections: not one packet is
 * lost.  A new one is bound and started; a removed one hands out what the
 * kernel holds for it and closes.  Counters must already be laid out for
 * conf.  0, or -1 when a listener could not be opened (logged; the others
 * are in place).
 */
int ingest_reconfigure(struct ingest *in, const struct conf *old, const struct conf *conf);

/*
 * The address a listener actually bound (port 0 resolved); i < conf->nlisten.
 * -1 once ingest_stop() has closed it.
 */
int ingest_bound_addr(const struct ingest *in, size_t i, struct sockaddr_storage *out, socklen_t *len);

/*
 * Listener i's name, "udp:127.0.0.1:9060" with the port it bound (the text
 * of ready.h's lines and of the log); i < conf->nlisten.  Valid while in is;
 * NULL when a reload could not open it.
 */
const char *ingest_listener_name(const struct ingest *in, size_t i);

/*
 * Admission (sources: in heprouter.yaml(5)).  The allowlist is applied
 * here, before a packet is handed out: TCP connections from elsewhere are
 * closed at accept (counted as tcp_not_allowed), and every datagram and
 * frame from a source not allowed (a reload may narrow the list under an
 * open connection) is counted as refused, not_allowed.  The rules that need
 * the decoded packet are the consumer's to apply, once it has decoded it:
 * ingest_admit() with the packet's source says whether it may go on
 * (ADMISSION_OK) or why not (counted and logged by reason).  Refusals are logged as one
 * summary line per reason and log.interval, naming a sender; keys never.
 */
int ingest_admit(struct ingest *in, const struct ingest_source *src, const struct hep_view *v);

/* Writes the refusal summaries whose log.interval is over; call it periodically. */
void ingest_logs(struct ingest *in, uint64_t now_ms);

/*
 * Lifetime of the bytes handed to ingest_packet_fn: a UDP datagram or TCP
 * frame stays valid during the callback and until the following
 * ingest_batch_end_fn returns; the next read reuses the buffer.  So a
 * consumer may keep pointers (e.g. queue UDP sends) until it flushes in
 * on_batch_end.  on_batch_end runs once per recvmmsg() batch and once per
 * TCP read that completed at least one frame.  tcp_max_connections counts
 * the connections of one listener of one worker.  The ingest copies what it
 * needs from conf.
 */

#endif
