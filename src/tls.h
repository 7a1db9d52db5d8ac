/*
 * tls.h - TLS for tls: listeners and targets (OpenSSL 3), never blocking.
 *
 * A configuration's certificates are loaded once, by the main thread, into
 * a tls_set: one server context per tls: listener (its own tls: section or
 * the top-level one) and one client context per destination with tls:
 * targets.  The workers share them (OpenSSL contexts are thread-safe);
 * every connection holds a reference to the context it was made with, so a
 * reload (a new configuration, a new set: the files read again) changes the
 * certificates of new handshakes only, and connections already up keep
 * theirs until they close.
 *
 * A connection wraps a non-blocking socket: every call does what it can
 * and says what it waits for (TLS_WANT_READ / TLS_WANT_WRITE), so the
 * caller's event loop decides when to call again; nothing here waits.
 */
#ifndef HEPROUTER_TLS_H
#define HEPROUTER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The most plain text one TLS record carries (RFC 8446 5.1): a writer's unit. */
#define TLS_RECORD_MAX 16384

/* Room for a certificate subject's text (RFC 2253) or common name; longer ones are cut and match nothing. */
#define TLS_SUBJECT_MAX 512

struct conf;
struct conf_tls;
struct tls_set;
struct tls_ctx;
struct tls_conn;

/*
 * Loads every certificate, key and CA file conf's tls: listeners and
 * targets need.  NULL after writing to err (may be NULL) one line per
 * problem, "FILE:LINE:COL: tls: cannot load cert /path: reason", where
 * FILE:LINE:COL is the tls: section's place in the configuration.  A
 * configuration without TLS gets an empty set.
 */
struct tls_set *tls_set_load(const struct conf *conf, FILE *err);

void tls_set_free(struct tls_set *ts);

/*
 * A context for as long as the holder needs it, beyond its set's life
 * (a destination kept by a reload, one retired while it drains).
 */
struct tls_ctx *tls_ctx_ref(struct tls_ctx *c);
void tls_ctx_unref(struct tls_ctx *c);

/* The server context of listener i; NULL when it is not a tls: listener (or ts is NULL). */
struct tls_ctx *tls_set_listener(const struct tls_set *ts, size_t i);

/* The client context of destination di's tls: targets; NULL when it has none. */
struct tls_ctx *tls_set_dest(const struct tls_set *ts, size_t di);

/* What a call did, or waits for. */
enum tls_status {
    TLS_OK = 0,
    TLS_WANT_READ,                  /* call again when the socket is readable */
    TLS_WANT_WRITE,                 /* call again when the socket is writable */
    TLS_CLOSED,                     /* the peer closed the connection */
    TLS_FAILED,                     /* a protocol or certificate error: tls_conn_error() says which */
};

/* Why a handshake failed, for the counters. */
enum tls_failure {
    TLS_FAIL_PROTOCOL = 0,          /* not TLS, no common version or cipher, closed mid-handshake */
    TLS_FAIL_CERTIFICATE,           /* a certificate not trusted, expired, of another name (either side's) */
    TLS_FAIL_NO_CERTIFICATE,        /* a client certificate required, none sent */
    TLS_FAIL_TIMEOUT,               /* not done in time (the caller's clock: never from here) */
    TLS_FAILURE_COUNT
};

/*
 * A connection on the connected, non-blocking socket fd (not closed by
 * tls_conn_free).  A client (server false) sends server_name as SNI when it
 * is a DNS name, and, when its context verifies, checks the server's
 * certificate against server_name (a DNS name or an IP address).  NULL: out
 * of memory.
 */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, bool server, const char *server_name);

/* Sends a close_notify if the socket takes it at once, and frees; fd stays open. */
void tls_conn_free(struct tls_conn *c);

/* Drives the handshake: TLS_OK once it is done. */
enum tls_status tls_handshake(struct tls_conn *c);

/* Reads up to len bytes: TLS_OK with *got > 0, or what it waits for. */
enum tls_status tls_read(struct tls_conn *c, void *buf, size_t len, size_t *got);

/* Writes up to len bytes: TLS_OK with *put > 0 (perhaps fewer), or what it waits for. */
enum tls_status tls_write(struct tls_conn *c, const void *buf, size_t len, size_t *put);

/*
 * Bytes the connection has taken from its socket and not yet handed out
 * (plain text, and records not yet decrypted: at least as many as the
 * plain text they hold), which the socket's readiness will not announce.
 */
size_t tls_buffered(const struct tls_conn *c);

/* After TLS_FAILED: why, as text ("certificate verify failed: certificate has expired"). */
const char *tls_conn_error(const struct tls_conn *c);

/* After a failed handshake: which kind of failure. */
enum tls_failure tls_conn_failure(const struct tls_conn *c);

/* "TLSv1.3", after the handshake. */
const char *tls_conn_version(const struct tls_conn *c);

/*
 * The peer certificate's subject in RFC 2253 form ("CN=kamailio-a,O=Example")
 * and its common name, after a handshake in which it was verified; false
 * (both "") when there is none.
 */
bool tls_conn_peer(const struct tls_conn *c, char *subject, size_t subject_size, char *cn, size_t cn_size);

#endif
