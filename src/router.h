/*
 * router.h - the middle of the data path: decode -> classify -> decide ->
 * dispatch, for one worker.
 *
 * router_packet() takes one received HEP packet.  It decodes it, finds the
 * call it belongs to (Call-ID, or the correlation id of non-SIP HEP), looks
 * the call up in the context store and hands the packet to every
 * destination of the route that matches it.  A packet whose call is not
 * known yet waits in the hold queue; router_timer() releases what waited
 * long enough by the packet's own CSeq method.  The router does no I/O
 * itself: sending goes through the dispatch callbacks, so the whole
 * decision logic runs in unit tests with a recorder in place of sockets.
 */
#ifndef HEPROUTER_ROUTER_H
#define HEPROUTER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hep.h"
#include "sip.h"

struct conf;
struct store;
struct hold;
struct metrics;

/* How a packet's call was decided, as router_dispatch.explain() is told. */
#define ROUTER_HOWS(X)                                                                            \
    X(ROUTER_HOW_ORIGIN, "origin request")                  /* it starts its call */               \
    X(ROUTER_HOW_KNOWN, "known call")                       /* its call's origin was seen */       \
    X(ROUTER_HOW_HELD, "held")                              /* waits for its origin (no route yet) */ \
    X(ROUTER_HOW_HELD_ORIGIN, "held, released by its origin")                                      \
    X(ROUTER_HOW_FALLBACK, "CSeq fallback")                 /* no origin: its own CSeq method */   \
    X(ROUTER_HOW_HELD_FALLBACK, "held, then CSeq fallback") /* waited in vain */                   \
    X(ROUTER_HOW_NO_KEY, "no call key")                     /* no Call-ID nor correlation id */    \
    X(ROUTER_HOW_DECODE_ERROR, "decode error")              /* not routed: not HEP */              \
    X(ROUTER_HOW_REFUSED, "refused source")                 /* not routed: admit() said no */

#define ROUTER_HOW_ENUM(name, text) name,
enum router_how { ROUTER_HOWS(ROUTER_HOW_ENUM) ROUTER_HOW_COUNT };
#undef ROUTER_HOW_ENUM

const char *router_how_name(enum router_how how);

/* router_explain.route of a packet not routed (held, or not decoded): no policy answer. */
#define ROUTER_NO_ROUTE (-2L)

/* One decision, for router_dispatch.explain(). */
struct router_explain {
    enum router_how how;
    const struct hep_view *view;    /* NULL: not decoded (ROUTER_HOW_DECODE_ERROR) */
    const struct sip_msg *sip;      /* NULL: not a scanned SIP message */
    const char *key;                /* the call key (Call-ID, or the correlation id when !sip); NULL: none */
    size_t klen;
    long route;                     /* policy_match()'s answer, or ROUTER_NO_ROUTE */
    const char *method;             /* what the route was matched with: the call's method (NULL: none) */
    size_t mlen;
    const size_t *to;               /* the route's destinations (none: discarded) */
    size_t nto;
    uint64_t deduplicated;          /* bit i: to[i] was not sent a copy already sent (dedup) */
    uint64_t over_rate;             /* bit i: to[i] was not sent: the call was over its max_new_calls_per_s */
    int hep_error;                  /* ROUTER_HOW_DECODE_ERROR: the hep_decode() status */
    int refused;                    /* ROUTER_HOW_REFUSED: admit()'s verdict (admission.h) */
    const char *sender;             /* not routed (refused, not decoded): who sent it, from
                                       router_dispatch.source(); NULL otherwise or unknown */
    uint64_t received_wall_ms;      /* when it arrived (a held packet: before it waited) */
};

struct router_dispatch {
    /* Send view to destination di; the bytes stay valid until flush(). */
    void (*send)(void *arg, size_t di, const struct hep_view *view, const char *key, size_t klen);
    /* Everything sent so far may now leave; called before held bytes are freed. */
    void (*flush)(void *arg);
    void *arg;
    /*
     * Optional: the sender of the packet being routed, as text ("10.0.0.3"),
     * written to buf, or NULL when unknown.  Called only to log a bad packet.
     * source, here and in admit(), is the packet's router_in.source (NULL
     * for router_packet()'s).
     */
    const char *(*source)(void *source_arg, const void *source, char *buf, size_t len);
    void *source_arg;
    /*
     * Optional: whether the packet just decoded may be routed (the edge's
     * admission rules, which need the decoded view): 0 (ADMISSION_OK), or
     * why not (an enum admission_verdict), and it is dropped; the edge has
     * counted and logged it.  Asked once per received packet, before it is
     * counted by protocol, scanned or held.
     */
    int (*admit)(void *source_arg, const void *source, const struct hep_view *view);
    /*
     * Optional: told every decision (routed, discarded, held, not HEP) once
     * it is made, after the sends.  NULL costs one branch per packet.
     */
    void (*explain)(void *explain_arg, const struct router_explain *e);
    void *explain_arg;
};

struct router;

struct router *router_new(const struct conf *conf, struct store *store, struct metrics *m,
                          const struct router_dispatch *dispatch);

void router_free(struct router *r);

/*
 * A configuration reload, between two batches: later packets, held ones
 * included, are decided by conf.  What conf cannot change without a
 * restart (orphans.*, limits.call_id_max) must be the running values
 * (conf_keep_restart_values()).
 */
void router_set_conf(struct router *r, const struct conf *conf);

/*
 * The instance's dedup window (dedup.h), shared by the workers' routers:
 * destinations with dedup.window_ms are not sent a packet already sent to
 * them within the window.  NULL (the default): every copy is sent.
 */
struct dedup;
void router_set_dedup(struct router *r, struct dedup *d);

/*
 * Sets (or, with fn NULL, removes) router_dispatch.explain between two
 * batches, as a live tap opens and closes.
 */
void router_set_explain(struct router *r, void (*fn)(void *explain_arg, const struct router_explain *e),
                        void *arg);

/*
 * Pauses (or resumes) the explain hook without removing it: while paused,
 * each decision it would have been told is only counted, in
 * router_explain_skipped() (a live tap whose readers all stopped reading
 * counts the lines they lose without a decision being filled per packet).
 */
void router_pause_explain(struct router *r, bool paused);
uint64_t router_explain_skipped(const struct router *r);

/* The length of a hashed call key (a Call-ID longer than limits.call_id_max, or folded). */
#define ROUTER_HASHED_KEY_LEN 33

/*
 * The context store's key for a Call-ID, as the router makes it (long and
 * folded Call-IDs are hashed): written to out, its length returned (0 when
 * outlen is too small: a key is at most the larger of limits.call_id_max
 * and ROUTER_HASHED_KEY_LEN).  For the control socket's `call` command.
 */
size_t router_call_key(const struct conf *conf, const char *call_id, size_t len, char *out, size_t outlen);

/*
 * Routes one packet.  now_ms is a monotonic clock (expiry, hold), wall_ms
 * the wall clock (first-seen time kept with a call).
 */
void router_packet(struct router *r, const uint8_t *data, size_t len, uint64_t now_ms, uint64_t wall_ms);

/* A packet of a batch, and its sender as the edge knows it (given back to dispatch.source and .admit). */
struct router_in {
    const uint8_t *data;
    size_t len;
    const void *source;
};

/*
 * Routes the packets that arrived together (a recvmmsg() batch, the frames
 * of a TCP read), in order, as router_packet() would one by one, with the
 * same clocks.  Each packet is decoded and classified one packet ahead of
 * its routing, so that what its routing reads of the store comes into the
 * cache while the packet before it is routed.  The bytes must stay valid
 * until it returns.
 */
void router_packets(struct router *r, const struct router_in *in, size_t n, uint64_t now_ms, uint64_t wall_ms);

/* Releases held packets whose wait is over; expires store entries. */
/* Longest sender text router_dispatch.source() is given room for. */
#define ROUTER_SOURCE_MAX 64

/*
 * Writes the summary lines whose log.interval is over (malformed packets
 * by sender), so that the last window is not held back when bad packets
 * stop.  Call it periodically.
 */
void router_logs(struct router *r, uint64_t now_ms);

void router_timer(struct router *r, uint64_t now_ms, uint64_t wall_ms);

/* When router_timer() next has work: the oldest held packet's deadline. */
uint64_t router_next_deadline(const struct router *r);

/* Shutdown: every held packet takes its fallback now. */
void router_drain(struct router *r, uint64_t now_ms, uint64_t wall_ms);

/* Packets in the hold queue. */
size_t router_held(const struct router *r);

/*
 * The method a call must have started with, given an orphan's CSeq method:
 * the CSeq method itself, except for methods that only exist inside an
 * INVITE dialog or transaction (ACK, CANCEL, BYE, PRACK, UPDATE, INFO),
 * which give INVITE.
 */
const char *router_fallback_method(const char *cseq_method, size_t len, size_t *out_len);

#endif
