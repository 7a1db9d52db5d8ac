/*
 * dest.c - destinations: target sockets, balancing, output format.
 *
 * UDP targets: one connected, non-blocking UDP socket per target.  Being
 * connected means an ICMP port-unreachable comes back as ECONNREFUSED,
 * which is how a dead UDP target is noticed (for failover, hash and
 * metrics; see udp_refused()); sendmmsg() needs no per-message address.
 * dest_send()
 * appends an iovec pointing at the caller's bytes (forwarded unchanged) or
 * at a re-encoded copy in the set's arena; dest_flush() sends each target's
 * batch with sendmmsg() and never waits: what the kernel refuses is counted
 * and dropped.
 *
 * TCP targets: non-blocking connect with a timeout, a ring buffer of whole
 * HEP3 frames bounded by limits.tcp_queue_bytes (oldest frames dropped,
 * counted, when a new one does not fit), drained when writable, reconnect
 * with exponential backoff.  A frame is never split across connections: one
 * cut by a disconnect is sent again whole on the next.  Because a TCP stream
 * is framed by the HEP3 length, a destination with a TCP target emits HEPv3
 * (v1/v2 input is converted).
 *
 * Spool (spool.h): a destination with one sends to its spool what none of
 * its TCP targets can take (down, or its queue full), and whatever belongs
 * to a call that already waits there (so a call keeps its order).  A timer
 * replays the spool at spool.replay_rate, each packet to the target its
 * balance mode picks (or, for balance: all, the one it was kept for), but
 * only while that target's queue is under half full: a live packet queued
 * behind a replay waits for at most half of limits.tcp_queue_bytes.  The
 * spool learns that a replayed packet was written to a socket from the
 * target's count of bytes that left its queue (acks below).
 *
 * The set copies what it needs from the configuration, so it does not keep
 * pointers into struct conf.
 */
#include "dest.h"

#include "backoff.h"
#include "hash.h"
#include "segment.h"
#include "spool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "invariant.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "resolve.h"
#include "tls.h"

/*
 * Re-encoded packets wait here for dest_flush(); when the next one does not
 * fit, everything batched is flushed early.  Big enough for a few hundred
 * typical SIP packets, and at least one maximal HEP3 packet.
 */
#define DEST_ARENA_BYTES (4u * HEP3_MAX_LEN)

/* Back-ends are not expected to talk; whatever they send is read and dropped. */
#define DEST_TCP_DISCARD_BYTES 4096

/* one write: the aside tail, then the ring's (up to) two segments */
#define DEST_TCP_IOVS 3

/* Room for why a connection closed: "TLS handshake failed: " and OpenSSL's reason. */
#define DEST_WHY_MAX 320

/*
 * The replay timer's period while a spool has packets waiting: the pacing
 * granularity of spool.replay_rate (each tick replays what the rate allows
 * since the last one, at most two ticks' worth).
 */
#define DEST_REPLAY_TICK_S 0.005
#define DEST_REPLAY_BURST_TICKS 2.0

/* uint64_t per replayed batch: its spool position, then a start and an end mark per target */
#define DEST_ACK_STRIDE(d) (1 + 2 * (d)->ntargets)
#define DEST_ACK_START(d, a, j) ((a)[1 + (j)])
#define DEST_ACK_END(d, a, j) ((a)[1 + (d)->ntargets + (j)])



/*
 * A UDP target's health.  limits.udp_refusals_down refusals in a row take
 * it down; after the backoff the next packet for it is a probe, and when
 * no refusal comes back within limits.connect_timeout it is up again.
 * While on trial, hash / round_robin / failover prefer targets that are
 * up, but it still gets what is sent to it alone (balance all, or no
 * other target up): if it is dead those are lost either way, if it is
 * alive they arrive.
 */
enum dest_udp_state {
    DEST_UDP_UP = 0,
    DEST_UDP_DOWN,                  /* skipped until the backoff timer */
    DEST_UDP_PROBE_DUE,             /* the next packet for it is the probe */
    DEST_UDP_PROBING,               /* probe sent: on trial until the timer */
};

enum dest_tcp_state {
    DEST_TCP_WAITING = 0,           /* backoff timer before the next connect */
    DEST_TCP_CONNECTING,
    DEST_TCP_HANDSHAKE,             /* tls: connected, the TLS handshake under way */
    DEST_TCP_CONNECTED,
};

struct dest_set;

/*
 * How a dead target is found, from limits.*: TCP keepalive and user
 * timeout, set on each new connection (so a reload applies to the next
 * ones); for UDP, how many refusals in a row take a target down.
 */
struct dest_health {
    int keepalive_idle_s;           /* the kernel takes whole seconds */
    int keepalive_interval_s;
    int keepalive_count;
    unsigned user_timeout_ms;       /* 0: the kernel's default */
    size_t udp_refusals_down;       /* UDP: refusals in a row that take a target down */
};

struct dest_target {
    struct dest_set *ds;
    struct dest *d;
    struct conf_addr addr;
    struct sockaddr_storage sa;     /* addr's socket address */
    socklen_t salen;
    size_t mindex;                  /* into metrics.targets */
    int fd;

    /* UDP: the batch for the next sendmmsg() */
    struct mmsghdr *msgs;
    struct iovec *iov;
    size_t nbatch;
    bool unconnected;               /* connect() failed: address each message */
    enum dest_udp_state udp_state;  /* also uses io (refusals), timer (probe) and backoff below */
    size_t refusals_row;            /* refusals since the last send window without one */
    bool refused_in_window;         /* a refusal since the current send window began */
    unsigned window_iter;           /* the loop iteration that began it */

    /* TCP */
    enum dest_tcp_state state;
    ev_io io;
    int io_events;                  /* what io watches while started, 0 if stopped */
    ev_timer timer;                 /* connect timeout or reconnect backoff */
    struct backoff backoff;
    uint8_t *ring;                  /* whole HEP3 frames, oldest at head */
    size_t ring_cap;
    size_t ring_head;
    size_t ring_len;
    size_t ring_frames;             /* whole frames in the ring (the queue depth) */
    size_t head_sent;               /* bytes of the head frame already written */
    uint8_t *partial;               /* tail of an evicted in-flight frame */
    size_t partial_cap;
    size_t partial_len;
    size_t partial_off;
    size_t partial_frame_len;       /* the whole frame's length, for metrics */
    uint64_t queued_total;          /* bytes ever put in the ring */
    uint64_t done_total;            /* bytes ever taken out of it (written, or dropped) */

    /*
     * tls: the connection, and the record being written: bytes taken out
     * of the queue (as written) and handed to TLS, which must be offered
     * again unchanged until it takes them.
     */
    struct tls_conn *tls;
    uint8_t *stage;                 /* TLS_RECORD_MAX bytes; NULL: a plain target */
    size_t stage_len;

    struct log_limit up_limit;
    struct log_limit down_limit;
    struct log_limit error_limit;

    /* a target named by DNS (addr.host): sa is its last answer, salen 0 until one came */
    struct resolve_watch *watch;    /* NULL: a numeric target */
    bool connect_when_resolved;     /* TCP: tcp_connect() waits for the next answer */
    bool resolved;                  /* TCP: that answer came, connect to sa */
    struct log_limit resolve_limit;
    struct log_limit change_limit;
};

struct dest {
    char *name;
    struct dest_target *targets;
    size_t ntargets;
    size_t index;
    enum conf_balance balance;
    bool convert;                   /* emit HEPv3 when the input is not */
    bool rewrite;                   /* apply ov */
    bool has_tcp;
    char *node_name;
    char *auth_key;
    struct hep_overrides ov;
    size_t max_packet;              /* 0: no limit */
    uint64_t rr_next;
    struct log_limit too_big_limit;
    struct log_limit encode_limit;
    struct tls_ctx *tls;            /* its tls: targets' context (a reference); NULL: none */
    char *server_name;              /* tls.server_name, NULL: each target's own */

    struct spool *spool;            /* NULL: none */
    uint64_t replay_rate;
    double replay_tokens;
    ev_tstamp replay_last;
    /*
     * Replayed batches not yet known to be written: each entry is the spool
     * position after the batch, then every target's queued_total before
     * it, then after it (DEST_ACK_STRIDE); once each target's done_total
     * reaches its end mark, the spool is told.
     */
    uint64_t *acks;
    size_t nacks, acks_cap;
    struct spool_stats reported;    /* the spool's counts already in the metrics */
};

/*
 * A destination a reload changed or removed, while its TCP targets still
 * have queued packets: they finish sending them, take nothing new, and go
 * once their queues are empty or at their deadline (limits.drain_timeout
 * after the reload).
 */
struct dest_retired {
    struct dest d;
    ev_tstamp deadline;
    struct dest_retired *next;
};

struct dest_set {
    struct ev_loop *loop;
    struct metrics *m;
    struct dest *dests;
    size_t ndests;
    struct dest_retired *retired;
    struct metrics_target retired_counters;     /* what retired targets count: no series of their own */
    uint64_t drain_timeout_ms;
    size_t batch_cap;               /* messages per sendmmsg() */
    struct backoff reconnect;       /* each TCP target's starts as this */
    unsigned worker, nworkers;      /* for the spools' directories */
    ev_timer replay;                /* runs while a spool has packets waiting or unacknowledged */
    uint64_t connect_timeout_ms;
    uint64_t handshake_timeout_ms;  /* limits.tls_handshake_timeout */
    struct dest_health health;      /* limits.tcp_keepalive_*, tcp_user_timeout, udp_refusals_down */
    uint64_t log_interval_ms;
    uint8_t *arena;
    size_t arena_cap;
    size_t arena_used;
    struct resolver *resolver;      /* made when a target first names its host */
};

/* metrics index of a target whose destination a reload retired: counted apart */
#define DEST_MINDEX_RETIRED SIZE_MAX

static struct metrics_target *target_metrics(const struct dest_target *t)
{
    if (t->mindex == DEST_MINDEX_RETIRED)
        return &t->ds->retired_counters;
    return &t->ds->m->targets[t->mindex];
}

static size_t be16(const uint8_t *p)
{
    return (size_t)p[0] << 8 | p[1];
}

/* Whole seconds, rounded up: a keepalive time is never shortened to 0. */
static int ms_to_whole_s(uint64_t ms)
{
    uint64_t s = (ms + CLOCK_MS_PER_S - 1) / CLOCK_MS_PER_S;
    return s < INT_MAX ? (int)s : INT_MAX;
}

static void health_from_conf(struct dest_health *h, const struct conf *conf)
{
    h->keepalive_idle_s = ms_to_whole_s(conf->tcp_keepalive_idle_ms);
    h->keepalive_interval_s = ms_to_whole_s(conf->tcp_keepalive_interval_ms);
    h->keepalive_count = conf->tcp_keepalive_count < INT_MAX ? (int)conf->tcp_keepalive_count : INT_MAX;
    h->user_timeout_ms = conf->tcp_user_timeout_ms < UINT_MAX ? (unsigned)conf->tcp_user_timeout_ms : UINT_MAX;
    h->udp_refusals_down = conf->udp_refusals_down > 0 ? conf->udp_refusals_down : 1;
}

/* Each target backs off on its own schedule, its jitter seeded apart from the others'. */
static void target_backoff_init(struct dest_target *t, const struct dest_set *ds)
{
    t->backoff = ds->reconnect;
    /* the target's address differs between workers (and, with ASLR, processes); the clock between restarts */
    backoff_seed(&t->backoff, (uint64_t)(uintptr_t)t ^ clock_mono_ms());
}

/* ---- UDP ---- */

static bool udp_up(const struct dest_target *t)
{
    return t->udp_state == DEST_UDP_UP;
}

/* Whether balancing may pick it: up, or its probe is due. */
static bool udp_takes(const struct dest_target *t)
{
    return t->udp_state == DEST_UDP_UP || t->udp_state == DEST_UDP_PROBE_DUE;
}

static void udp_arm(struct dest_target *t, uint64_t ms)
{
    struct ev_loop *loop = t->ds->loop;
    ev_timer_stop(loop, &t->timer);
    ev_timer_set(&t->timer, clock_ms_to_s(ms), 0.);
    ev_timer_start(loop, &t->timer);
}

/* Down (from up, or a probe refused): skipped until the backoff's timer. */
static void udp_down(struct dest_target *t, const char *why)
{
    struct dest_set *ds = t->ds;
    bool was_up = t->udp_state == DEST_UDP_UP;
    uint64_t wait_ms = backoff_next_jittered(&t->backoff);
    t->udp_state = DEST_UDP_DOWN;
    udp_arm(t, wait_ms);
    if (was_up)
        target_metrics(t)->went_down++;
    log_ratelimited(&t->down_limit, ds->log_interval_ms, LOG_LEVEL_WARN,
                    "destination %s target %s: %s, %s; probed again in %llu ms", t->d->name, t->addr.text, why,
                    was_up ? "marked down" : "still down", (unsigned long long)wait_ms);
}

/*
 * One ECONNREFUSED: an ICMP port-unreachable came back for a datagram
 * sent earlier.  It counts towards limits.udp_refusals_down only while
 * the target is up; a refused probe takes it down again at once; a late
 * one for packets sent before it went down changes nothing.
 */
static void udp_refused(struct dest_target *t)
{
    target_metrics(t)->refusals++;
    t->refused_in_window = true;
    if (t->udp_state == DEST_UDP_UP) {
        if (++t->refusals_row >= t->ds->health.udp_refusals_down)
            udp_down(t, "connection refused");
    } else if (t->udp_state == DEST_UDP_PROBING) {
        udp_down(t, "probe refused");
    }
}

/*
 * A send window is what one loop iteration sends to the target; a window
 * that begins with no refusal seen since the previous one ends the run of
 * refusals.  Iterations, not flushes: the ICMP answer to one flush comes
 * back after it, so a second flush in the same iteration proves nothing.
 * And the answer may be waiting unread (the listener's watcher can run
 * before the target's in the next iteration): during a run, the socket's
 * pending error is read (SO_ERROR, which clears it as recv() would) before
 * a window is called clean.  A healthy target never pays that call.
 */
static void udp_window(struct dest_target *t)
{
    unsigned iter = ev_iteration(t->ds->loop);
    if (iter == t->window_iter)
        return;
    if (t->refusals_row > 0 && !t->refused_in_window) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == ECONNREFUSED)
            udp_refused(t);
    }
    if (!t->refused_in_window)
        t->refusals_row = 0;
    t->refused_in_window = false;
    t->window_iter = iter;
}

static void udp_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct dest_target *t = w->data;
    if (t->udp_state == DEST_UDP_DOWN) {
        t->udp_state = DEST_UDP_PROBE_DUE;
    } else if (t->udp_state == DEST_UDP_PROBING) {
        t->udp_state = DEST_UDP_UP;
        t->refusals_row = 0;
        backoff_reset(&t->backoff);
        target_metrics(t)->went_up++;
        log_ratelimited(&t->up_limit, t->ds->log_interval_ms, LOG_LEVEL_INFO,
                        "destination %s target %s: up again (its probe was not refused)", t->d->name,
                        t->addr.text);
    }
}

/*
 * The pending error of a connected UDP socket makes it readable, so this
 * watcher reads a refusal as soon as the ICMP arrives, with no packet to
 * send: that is what lets a probe (one datagram, then nothing) be judged,
 * and a refusal be seen before the next batch rather than by it.
 * Datagrams a back-end sends are read and dropped (MSG_TRUNC: whole).
 */
static void udp_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct dest_target *t = w->data;
    uint8_t byte;
    if (recv(t->fd, &byte, sizeof byte, MSG_DONTWAIT | MSG_TRUNC) < 0 && errno == ECONNREFUSED)
        udp_refused(t);
}

/*
 * Sends the target's batch.  sendmmsg() may take only part of it: the rest
 * is retried.  What cannot leave now (socket buffer full, target refusing)
 * is dropped and counted: the packet path never waits.
 */
static void udp_flush_target(struct dest_target *t)
{
    struct dest_set *ds = t->ds;
    struct metrics_target *mt = target_metrics(t);
    size_t off = 0;

    udp_window(t);
    if (t->udp_state == DEST_UDP_DOWN) {
        /* the refusal read just now took it down */
        mt->down_drops += t->nbatch;
        t->nbatch = 0;
        return;
    }
    while (off < t->nbatch) {
        int n = sendmmsg(t->fd, t->msgs + off, (unsigned)(t->nbatch - off), MSG_DONTWAIT);
        if (n > 0) {
            for (size_t i = off; i < off + (size_t)n; i++) {
                mt->packets++;
                mt->bytes += t->msgs[i].msg_len;
            }
            off += (size_t)n;
            continue;
        }
        int err = n < 0 ? errno : EAGAIN;
        if (err == EINTR)
            continue;
        if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
            mt->send_errors += t->nbatch - off;
            log_ratelimited(&t->error_limit, ds->log_interval_ms, LOG_LEVEL_WARN,
                            "destination %s target %s: send buffer full, %zu packets dropped",
                            t->d->name, t->addr.text, t->nbatch - off);
            break;
        }
        if (err == ECONNREFUSED) {
            /*
             * The error was pending from an earlier datagram; reporting it
             * cleared it and sent nothing, so this one is tried again,
             * unless the refusal took the target down.
             */
            udp_refused(t);
            if (t->udp_state == DEST_UDP_DOWN) {
                mt->down_drops += t->nbatch - off;
                break;
            }
            continue;
        }
        /* this message is unsendable (e.g. EMSGSIZE): skip it, keep the rest */
        mt->send_errors++;
        log_ratelimited(&t->error_limit, ds->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s target %s: send: %s", t->d->name, t->addr.text, strerror(err));
        off++;
    }
    t->nbatch = 0;
}

static void udp_queue(struct dest_target *t, const uint8_t *data, size_t len)
{
    if (t->udp_state == DEST_UDP_DOWN) {
        target_metrics(t)->down_drops++;
        return;
    }
    if (t->udp_state == DEST_UDP_PROBE_DUE) {
        /* this packet is the probe; balancing prefers other targets until it is judged */
        t->udp_state = DEST_UDP_PROBING;
        udp_arm(t, t->ds->connect_timeout_ms);
    }
    if (t->nbatch == t->ds->batch_cap)
        udp_flush_target(t);
    size_t i = t->nbatch++;
    t->iov[i].iov_base = (void *)data;
    t->iov[i].iov_len = len;
    struct msghdr *h = &t->msgs[i].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_iov = &t->iov[i];
    h->msg_iovlen = 1;
    if (t->unconnected) {
        h->msg_name = &t->sa;
        h->msg_namelen = t->salen;
    }
}

/* A connected UDP socket to sa. */
static int udp_socket(struct dest_target *t)
{
    t->fd = socket(t->sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->fd < 0) {
        log_error("destination %s target %s: socket: %s", t->d->name, t->addr.text, strerror(errno));
        return -1;
    }
    target_backoff_init(t, t->ds);
    ev_init(&t->timer, udp_timer_cb);
    t->timer.data = t;
    /* connect() only fails for want of a route; keep going with addressed sends */
    if (connect(t->fd, (const struct sockaddr *)&t->sa, t->salen) != 0) {
        log_warn("destination %s target %s: connect: %s (sending unconnected)", t->d->name,
                 t->addr.text, strerror(errno));
        t->unconnected = true;
        return 0;                   /* no refusal can come back to it */
    }
    ev_io_init(&t->io, udp_io_cb, t->fd, EV_READ);
    t->io.data = t;
    ev_io_start(t->ds->loop, &t->io);
    return 0;
}

static int udp_open(struct dest_target *t, size_t batch_cap)
{
    t->msgs = calloc(batch_cap, sizeof *t->msgs);
    t->iov = calloc(batch_cap, sizeof *t->iov);
    if (t->msgs == NULL || t->iov == NULL) {
        log_error("destination %s target %s: out of memory", t->d->name, t->addr.text);
        return -1;
    }
    if (t->salen == 0) {
        t->udp_state = DEST_UDP_DOWN;   /* a name: down, with no probe, until it resolves (target_resolved()) */
        return 0;
    }
    return udp_socket(t);
}

/* ---- targets named by DNS ---- */

static void tcp_connect(struct dest_target *t);
static uint64_t tcp_schedule_reconnect(struct dest_target *t);

/* The UDP socket follows the name to its new address; what was batched leaves first. */
static void udp_readdress(struct dest_target *t)
{
    if (t->nbatch > 0)
        udp_flush_target(t);
    ev_io_stop(t->ds->loop, &t->io);
    ev_timer_stop(t->ds->loop, &t->timer);
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    t->unconnected = false;
    t->refusals_row = 0;
    /* a new address gets a fresh chance; one that cannot be used waits for the next answer */
    t->udp_state = udp_socket(t) == 0 ? DEST_UDP_UP : DEST_UDP_DOWN;
}

/*
 * An answer for t's name.  A failure is counted; a target that resolved
 * before keeps its last address (a name server's hiccup does not take it
 * down), one that never did stays down.  A TCP connection is not cut when
 * the address changes: the next connect uses the new one.
 */
static void target_resolved(void *arg, const struct sockaddr *sa, socklen_t salen, const char *error)
{
    struct dest_target *t = arg;
    struct dest_set *ds = t->ds;
    bool connect_now = t->connect_when_resolved;
    t->connect_when_resolved = false;
    if (error != NULL) {
        target_metrics(t)->resolve_errors++;
        log_ratelimited(&t->resolve_limit, ds->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s target %s: cannot resolve: %s (%s)", t->d->name, t->addr.text, error,
                        t->salen > 0 ? "keeps its last address" : "down until it resolves");
    } else if (t->salen != salen || memcmp(&t->sa, sa, salen) != 0 ||
               (t->addr.transport == CONF_UDP && t->fd < 0)) {
        char now[NETADDR_TEXT_MAX], was[NETADDR_TEXT_MAX];
        log_ratelimited(&t->change_limit, ds->log_interval_ms, LOG_LEVEL_INFO,
                        "destination %s target %s: now %s (was %s)", t->d->name, t->addr.text,
                        netaddr_format(sa, now, sizeof now),
                        t->salen > 0 ? netaddr_format((const struct sockaddr *)&t->sa, was, sizeof was)
                                     : "unresolved");
        memset(&t->sa, 0, sizeof t->sa);
        memcpy(&t->sa, sa, salen);
        t->salen = salen;
        if (t->addr.transport == CONF_UDP)
            udp_readdress(t);
    }
    if (!connect_now)
        return;
    if (t->salen == 0) {
        tcp_schedule_reconnect(t);
        return;
    }
    t->resolved = true;
    tcp_connect(t);
}

/*
 * A TCP target named by DNS looks its name up again before each connect:
 * true while that answer is awaited (target_resolved() connects then).
 */
static bool target_resolve_first(struct dest_target *t)
{
    if (t->watch == NULL || t->resolved) {
        t->resolved = false;
        return false;
    }
    t->state = DEST_TCP_WAITING;
    t->connect_when_resolved = true;
    resolve_now(t->watch);
    return true;
}

/* Starts keeping t's name fresh (resolve.h); the set's resolver is made for the first one. */
static int target_watch(struct dest_target *t, const struct conf *conf)
{
    struct dest_set *ds = t->ds;
    if (ds->resolver == NULL)
        ds->resolver = resolver_new(ds->loop, conf->dns_refresh_ms, conf->reconnect_min_ms, conf->reconnect_max_ms);
    if (ds->resolver != NULL)
        t->watch = resolve_watch_new(ds->resolver, t->addr.host, t->addr.port,
                                     t->addr.transport == CONF_TCP ? SOCK_STREAM : SOCK_DGRAM, target_resolved, t);
    if (t->watch == NULL) {
        log_error("destination %s target %s: cannot look its name up", t->d->name, t->addr.text);
        return -1;
    }
    return 0;
}

/* ---- TCP queue: a ring of whole HEP3 frames ---- */

static size_t ring_head_frame_len(const struct dest_target *t)
{
    uint8_t hdr[2];
    hdr[0] = t->ring[(t->ring_head + 4) % t->ring_cap];
    hdr[1] = t->ring[(t->ring_head + 5) % t->ring_cap];
    return be16(hdr);
}

static void ring_pop(struct dest_target *t, size_t flen)
{
    t->ring_head = (t->ring_head + flen) % t->ring_cap;
    t->ring_len -= flen;
    t->ring_frames--;
    t->done_total += flen;
    if (t->ring_len == 0)
        t->ring_head = 0;           /* keeps the next frames contiguous */
}

/* Copies ring bytes [head + from, head + to) into out. */
static void ring_copy_out(const struct dest_target *t, size_t from, size_t to, uint8_t *out)
{
    for (size_t done = 0; from + done < to;) {
        size_t pos = (t->ring_head + from + done) % t->ring_cap;
        size_t run = t->ring_cap - pos;
        if (run > to - from - done)
            run = to - from - done;
        memcpy(out + done, t->ring + pos, run);
        done += run;
    }
}

static void ring_append(struct dest_target *t, const uint8_t *data, size_t len)
{
    size_t pos = (t->ring_head + t->ring_len) % t->ring_cap;
    size_t run = t->ring_cap - pos;
    if (run > len)
        run = len;
    memcpy(t->ring + pos, data, run);
    memcpy(t->ring, data + run, len - run);
    t->ring_len += len;
    t->ring_frames++;
    t->queued_total += len;
}

/*
 * Frees the oldest frame.  A frame already partly written on the current
 * connection must still be finished there, so its tail moves aside (it is
 * not a drop); any other frame is dropped and counted.
 */
static void ring_drop_oldest(struct dest_target *t)
{
    size_t flen = ring_head_frame_len(t);
    if (t->head_sent > 0) {
        t->partial_len = flen - t->head_sent;
        t->partial_off = 0;
        t->partial_frame_len = flen;
        ring_copy_out(t, t->head_sent, flen, t->partial);
        t->head_sent = 0;
    } else {
        target_metrics(t)->queue_drops++;
    }
    ring_pop(t, flen);
}

static size_t tcp_pending(const struct dest_target *t)
{
    return t->ring_len - t->head_sent + (t->partial_len - t->partial_off) + t->stage_len;
}

/*
 * Room left under limits.tcp_queue_bytes.  Bytes moved out of the ring but
 * not yet written (an aside tail, a TLS record in the stage) count against
 * it, so the queue never holds more than the bound.
 */
static size_t tcp_room(const struct dest_target *t)
{
    size_t used = t->ring_len + (t->partial_len - t->partial_off) + t->stage_len;
    return used < t->ring_cap ? t->ring_cap - used : 0;
}

/* Accounts n written bytes: completes frames (metrics) and frees them. */
static void tcp_consume(struct dest_target *t, size_t n)
{
    struct metrics_target *mt = target_metrics(t);
    if (t->partial_off < t->partial_len) {
        size_t take = t->partial_len - t->partial_off;
        if (take > n)
            take = n;
        t->partial_off += take;
        n -= take;
        if (t->partial_off == t->partial_len) {
            mt->packets++;
            mt->bytes += t->partial_frame_len;
            t->partial_len = t->partial_off = 0;
        }
    }
    while (n > 0) {
        size_t flen = ring_head_frame_len(t);
        size_t left = flen - t->head_sent;
        if (n < left) {
            t->head_sent += n;
            return;
        }
        n -= left;
        ring_pop(t, flen);
        t->head_sent = 0;
        mt->packets++;
        mt->bytes += flen;
    }
}

/* ---- TCP connection ---- */

static void tcp_connect(struct dest_target *t);

static void tcp_watch(struct dest_target *t, int events)
{
    struct ev_loop *loop = t->ds->loop;
    if (t->io_events == events)
        return;
    ev_io_stop(loop, &t->io);
    t->io_events = events;
    if (events != 0) {
        ev_io_set(&t->io, t->fd, events);
        ev_io_start(loop, &t->io);
    }
}

/* Returns the wait, in milliseconds. */
static uint64_t tcp_schedule_reconnect(struct dest_target *t)
{
    struct dest_set *ds = t->ds;
    uint64_t wait_ms = backoff_next_jittered(&t->backoff);
    t->state = DEST_TCP_WAITING;
    ev_timer_stop(ds->loop, &t->timer);
    ev_timer_set(&t->timer, clock_ms_to_s(wait_ms), 0.);
    ev_timer_start(ds->loop, &t->timer);
    return wait_ms;
}

/*
 * Closes the socket and schedules a reconnect.  Queued frames stay for the
 * next connection, a frame cut in the middle too: it goes again whole, so
 * the next connection starts on a frame boundary and nothing queued is
 * lost (the peer threw the cut copy away with the connection).  Only the
 * tail of a frame already evicted from a full queue is dropped, counted.
 */
static void tcp_close(struct dest_target *t, const char *why)
{
    struct dest_set *ds = t->ds;
    struct metrics_target *mt = target_metrics(t);
    bool was_up = t->state == DEST_TCP_CONNECTED, handshaking = t->state == DEST_TCP_HANDSHAKE;
    tcp_watch(t, 0);
    ev_timer_stop(ds->loop, &t->timer);
    tls_conn_free(t->tls);
    t->tls = NULL;
    t->stage_len = 0;               /* handed to TLS as written: lost like the kernel's send buffer */
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    uint64_t wait_ms = tcp_schedule_reconnect(t);
    if (was_up) {
        mt->disconnects++;
        mt->went_down++;
        log_ratelimited(&t->down_limit, ds->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s target %s: disconnected: %s (%zu bytes queued)",
                        t->d->name, t->addr.text, why, tcp_pending(t));
    } else {
        /* a failed handshake says so itself: the connect worked */
        log_ratelimited(&t->down_limit, ds->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s target %s: %s%s (retry in %llu ms)", t->d->name, t->addr.text,
                        handshaking ? "" : "connect failed: ", why, (unsigned long long)wait_ms);
    }
    if (t->partial_len > 0) {
        mt->send_errors++;
        t->partial_len = t->partial_off = 0;
    }
    t->head_sent = 0;               /* the cut frame goes again, whole, on the next connection */
}

/*
 * Writes as much of the queue as the socket takes.  Returns 0, or -1 when
 * the connection was closed (an error).
 */
/*
 * tls: the queue goes out a record at a time through the stage: up to
 * TLS_RECORD_MAX bytes are taken out of the queue (the aside tail first,
 * then the ring) and offered to TLS until it has taken them all.
 */
static int tls_write_queue(struct dest_target *t)
{
    for (;;) {
        if (t->stage_len == 0) {
            size_t n = tcp_pending(t), aside = t->partial_len - t->partial_off;
            if (n == 0)
                break;
            if (n > TLS_RECORD_MAX)
                n = TLS_RECORD_MAX;
            size_t from_aside = aside < n ? aside : n;
            memcpy(t->stage, t->partial + t->partial_off, from_aside);
            ring_copy_out(t, t->head_sent, t->head_sent + (n - from_aside), t->stage + from_aside);
            tcp_consume(t, n);
            t->stage_len = n;
        }
        size_t put = 0;
        switch (tls_write(t->tls, t->stage, t->stage_len, &put)) {
        case TLS_OK:
            t->stage_len -= put;
            if (t->stage_len > 0)
                memmove(t->stage, t->stage + put, t->stage_len);
            continue;
        case TLS_WANT_WRITE:
            tcp_watch(t, EV_READ | EV_WRITE);
            return 0;
        case TLS_WANT_READ:
            tcp_watch(t, EV_READ);
            return 0;
        case TLS_CLOSED:
            tcp_close(t, "closed by the peer");
            return -1;
        default:
            tcp_close(t, tls_conn_error(t->tls));
            return -1;
        }
    }
    tcp_watch(t, EV_READ);
    return 0;
}

static int tcp_write(struct dest_target *t)
{
    if (t->tls != NULL)
        return tls_write_queue(t);
    while (tcp_pending(t) > 0) {
        struct iovec iov[DEST_TCP_IOVS];
        int n = 0;
        if (t->partial_off < t->partial_len) {
            iov[n].iov_base = t->partial + t->partial_off;
            iov[n++].iov_len = t->partial_len - t->partial_off;
        }
        if (t->ring_len > t->head_sent) {
            size_t start = (t->ring_head + t->head_sent) % t->ring_cap;
            size_t len = t->ring_len - t->head_sent;
            size_t run = t->ring_cap - start;
            if (run > len)
                run = len;
            iov[n].iov_base = t->ring + start;
            iov[n++].iov_len = run;
            if (len > run) {
                iov[n].iov_base = t->ring;
                iov[n++].iov_len = len - run;
            }
        }
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(t->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            tcp_consume(t, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            tcp_watch(t, EV_READ | EV_WRITE);
            return 0;
        }
        /* no packet is lost by the error itself; tcp_close() counts a cut frame */
        tcp_close(t, w < 0 ? strerror(errno) : "send returned 0");
        return -1;
    }
    tcp_watch(t, EV_READ);
    return 0;
}

/* Connected (and for tls:, the handshake done): the queue goes out. */
static void tcp_up(struct dest_target *t)
{
    struct dest_set *ds = t->ds;
    ev_timer_stop(ds->loop, &t->timer);
    t->state = DEST_TCP_CONNECTED;
    backoff_reset(&t->backoff);
    target_metrics(t)->connects++;
    target_metrics(t)->went_up++;
    log_ratelimited(&t->up_limit, ds->log_interval_ms, LOG_LEVEL_INFO,
                    "destination %s target %s: connected (%zu bytes queued)", t->d->name,
                    t->addr.text, tcp_pending(t));
    tcp_write(t);
}

static void tls_failed(struct dest_target *t, const char *why)
{
    char text[DEST_WHY_MAX];
    target_metrics(t)->tls_failures++;
    snprintf(text, sizeof text, "TLS handshake failed: %s", why);
    tcp_close(t, text);
}

static void tls_handshake_step(struct dest_target *t)
{
    switch (tls_handshake(t->tls)) {
    case TLS_OK:
        tcp_up(t);
        return;
    case TLS_WANT_READ:
        tcp_watch(t, EV_READ);
        return;
    case TLS_WANT_WRITE:
        tcp_watch(t, EV_READ | EV_WRITE);
        return;
    case TLS_CLOSED:
        tls_failed(t, "closed by the peer");
        return;
    default:
        tls_failed(t, tls_conn_error(t->tls));
        return;
    }
}

/*
 * The name a tls: target's certificate must carry (and the SNI when it is
 * a DNS name): tls.server_name, else the name the target was written with,
 * else its address.
 */
static const char *tls_peer_name(const struct dest_target *t, char *buf, size_t size)
{
    if (t->d->server_name != NULL)
        return t->d->server_name;
    if (t->addr.host[0] != '\0')
        return t->addr.host;
    return inet_ntop(t->addr.addr_len == sizeof(struct in_addr) ? AF_INET : AF_INET6, t->addr.addr, buf,
                     (socklen_t)size);
}

static void tcp_connected(struct dest_target *t)
{
    struct dest_set *ds = t->ds;
    if (!t->addr.tls) {
        tcp_up(t);
        return;
    }
    char ip[INET6_ADDRSTRLEN];
    t->tls = tls_conn_new(t->d->tls, t->fd, false, tls_peer_name(t, ip, sizeof ip));
    if (t->tls == NULL) {
        tcp_close(t, "out of memory for TLS");
        return;
    }
    t->state = DEST_TCP_HANDSHAKE;
    ev_timer_stop(ds->loop, &t->timer);
    ev_timer_set(&t->timer, clock_ms_to_s(ds->handshake_timeout_ms), 0.);
    ev_timer_start(ds->loop, &t->timer);
    tls_handshake_step(t);
}

/*
 * A back-end has nothing to say; reading tells us when it hangs up.  One
 * read per wakeup: a chatty peer cannot hold the loop.
 */
static void tcp_read_discard(struct dest_target *t)
{
    uint8_t buf[DEST_TCP_DISCARD_BYTES];
    if (t->tls != NULL) {
        size_t got;
        switch (tls_read(t->tls, buf, sizeof buf, &got)) {
        case TLS_CLOSED:
            tcp_close(t, "closed by the peer");
            return;
        case TLS_FAILED:
            tcp_close(t, tls_conn_error(t->tls));
            return;
        case TLS_WANT_WRITE:
            tcp_watch(t, EV_READ | EV_WRITE);
            return;
        default:
            return;                 /* what it said (session tickets, say) is TLS's own */
        }
    }
    ssize_t n = recv(t->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0)
        tcp_close(t, "closed by the peer");
    else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        tcp_close(t, strerror(errno));
}

static void tcp_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct dest_target *t = w->data;
    if (t->state == DEST_TCP_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0)
            tcp_close(t, strerror(err));
        else
            tcp_connected(t);
        return;
    }
    if (t->state == DEST_TCP_HANDSHAKE) {
        tls_handshake_step(t);
        return;
    }
    if (t->state != DEST_TCP_CONNECTED)
        return;
    if (revents & EV_READ) {
        tcp_read_discard(t);
        if (t->state != DEST_TCP_CONNECTED)
            return;
        /* a TLS write that waited for the peer to speak (TLS_WANT_READ) goes on now */
        if (t->tls != NULL && !(t->io_events & EV_WRITE) && tcp_pending(t) > 0)
            revents |= EV_WRITE;
    }
    if (revents & EV_WRITE)
        tcp_write(t);
}

static void tcp_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct dest_target *t = w->data;
    if (t->state == DEST_TCP_CONNECTING)
        tcp_close(t, "connect timeout");
    else if (t->state == DEST_TCP_HANDSHAKE)
        tls_failed(t, "not done within limits.tls_handshake_timeout");
    else if (t->state == DEST_TCP_WAITING)
        tcp_connect(t);
}

/*
 * A back-end that vanishes without a RST (host down, cable cut, a
 * firewall forgetting the flow) would leave an idle connection "up"
 * forever and a busy one retransmitting for about 15 minutes, its queue
 * filling meanwhile.  Keepalive finds the idle case, TCP_USER_TIMEOUT the
 * busy one (data unacknowledged that long); either way the kernel reports
 * an error on the socket and tcp_close() reconnects.  Failing to set them
 * only loses the early warning: logged, not fatal.
 */
static void tcp_set_health(struct dest_target *t)
{
    const struct dest_health *h = &t->ds->health;
    int one = 1;
    if (setsockopt(t->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) != 0 ||
        setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPIDLE, &h->keepalive_idle_s, sizeof h->keepalive_idle_s) != 0 ||
        setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPINTVL, &h->keepalive_interval_s, sizeof h->keepalive_interval_s) != 0 ||
        setsockopt(t->fd, IPPROTO_TCP, TCP_KEEPCNT, &h->keepalive_count, sizeof h->keepalive_count) != 0 ||
        setsockopt(t->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &h->user_timeout_ms, sizeof h->user_timeout_ms) != 0)
        log_ratelimited(&t->error_limit, t->ds->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s target %s: keepalive / user timeout: %s", t->d->name, t->addr.text,
                        strerror(errno));
}

static void tcp_connect(struct dest_target *t)
{
    if (target_resolve_first(t))
        return;
    struct dest_set *ds = t->ds;
    t->state = DEST_TCP_CONNECTING;
    t->fd = socket(t->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->fd < 0) {
        tcp_close(t, strerror(errno));
        return;
    }
    /* frames are already batched per flush: Nagle would only add latency */
    int one = 1;
    setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    tcp_set_health(t);
    if (connect(t->fd, (const struct sockaddr *)&t->sa, t->salen) == 0) {
        tcp_watch(t, EV_READ);
        tcp_connected(t);
        return;
    }
    if (errno != EINPROGRESS) {
        tcp_close(t, strerror(errno));
        return;
    }
    tcp_watch(t, EV_WRITE);
    if (ds->connect_timeout_ms > 0) {
        ev_timer_set(&t->timer, clock_ms_to_s(ds->connect_timeout_ms), 0.);
        ev_timer_start(ds->loop, &t->timer);
    }
}

/*
 * Queues one whole frame.  Before dropping anything, a connected target
 * tries to write: a full queue on a healthy connection only means the last
 * flush was a while ago.
 */
static void tcp_queue(struct dest_target *t, const uint8_t *data, size_t len)
{
    struct metrics_target *mt = target_metrics(t);
    if (len > t->ring_cap) {
        mt->queue_drops++;
        log_ratelimited(&t->error_limit, t->ds->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s target %s: packet of %zu bytes exceeds tcp_queue_bytes",
                        t->d->name, t->addr.text, len);
        return;
    }
    if (tcp_room(t) < len && t->state == DEST_TCP_CONNECTED)
        tcp_write(t);
    if (tcp_room(t) < len) {
        /* head_sent > 0 implies the aside buffer is empty: it is written first */
        while (tcp_room(t) < len && t->ring_len > 0)
            ring_drop_oldest(t);
        if (tcp_room(t) < len) {
            /* only an unwritten tail is left, and it and this packet exceed the bound */
            mt->queue_drops++;
            return;
        }
        log_ratelimited(&t->error_limit, t->ds->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s target %s: queue full (tcp_queue_bytes %zu), oldest packets dropped",
                        t->d->name, t->addr.text, t->ring_cap);
    }
    ring_append(t, data, len);
}

static int tcp_open(struct dest_target *t, const struct dest_set *ds, size_t queue_bytes)
{
    t->fd = -1;
    t->ring_cap = queue_bytes;
    t->partial_cap = queue_bytes < HEP3_MAX_LEN ? queue_bytes : HEP3_MAX_LEN;
    t->ring = malloc(t->ring_cap > 0 ? t->ring_cap : 1);
    t->partial = malloc(t->partial_cap > 0 ? t->partial_cap : 1);
    if (t->addr.tls)
        t->stage = malloc(TLS_RECORD_MAX);
    if (t->ring == NULL || t->partial == NULL || (t->addr.tls && t->stage == NULL)) {
        log_error("destination %s target %s: out of memory", t->d->name, t->addr.text);
        return -1;
    }
    target_backoff_init(t, ds);
    ev_init(&t->io, tcp_io_cb);
    t->io.data = t;
    ev_init(&t->timer, tcp_timer_cb);
    t->timer.data = t;
    return 0;
}

/* ---- the set ---- */

static bool target_up(const struct dest_target *t)
{
    if (t->addr.transport == CONF_TCP)
        return t->state == DEST_TCP_CONNECTED;
    return udp_up(t);
}

/* Whether balancing may pick it: up, or (UDP) its probe is due. */
static bool target_takes(const struct dest_target *t)
{
    if (t->addr.transport == CONF_TCP)
        return target_up(t);
    return udp_takes(t);
}

/* ---- spool ---- */

static void replay_arm(struct dest_set *ds)
{
    if (!ev_is_active(&ds->replay))
        ev_timer_start(ds->loop, &ds->replay);
}

/* A connected target whose queue has room for len bytes (after writing what the socket takes). */
static bool tcp_can_take(struct dest_target *t, size_t len)
{
    if (t->state != DEST_TCP_CONNECTED)
        return false;
    if (tcp_room(t) < len)
        tcp_write(t);
    return t->state == DEST_TCP_CONNECTED && tcp_room(t) >= len;
}

/* A packet's call key, hashed only when something needs the hash. */
struct dest_call {
    const char *key;
    size_t klen;
    uint64_t hash;
    bool hashed;
};

/* FNV-1a: the same in every run and instance, so a call keeps its target (and a spooled one its order). */
static uint64_t call_hash(struct dest_call *c)
{
    if (!c->hashed) {
        c->hash = hash_fnv1a64(HASH_FNV64_OFFSET, c->key, c->key != NULL ? c->klen : 0);
        c->hashed = true;
    }
    return c->hash;
}

/*
 * Sends one packet to t, or keeps it in d's spool when t cannot take it or
 * its call already waits there.  spool_target is what the spool records:
 * t's index (balance: all) or SEGMENT_ANY_TARGET (the balance mode picks).
 */
static void target_send(struct dest *d, struct dest_target *t, const uint8_t *data, size_t len,
                        struct dest_call *call, unsigned spool_target)
{
    if (t->addr.transport != CONF_TCP) {
        udp_queue(t, data, len);
        return;
    }
    if (d->spool != NULL && ((spool_waiting(d->spool) && spool_holds_call(d->spool, call_hash(call), spool_target)) ||
                             !tcp_can_take(t, len))) {
        struct segment_record r = { .call_hash = call_hash(call), .target = spool_target, .data = data, .len = len };
        spool_append(d->spool, &r);
        replay_arm(t->ds);
        return;
    }
    tcp_queue(t, data, len);
}

/*
 * The one target of a hash / round_robin / failover destination: the
 * preferred one if up, else the next one that is up, else the preferred
 * one anyway (a TCP target queues until it reconnects).
 */
static struct dest_target *pick_one(struct dest *d, size_t preferred)
{
    for (size_t k = 0; k < d->ntargets; k++) {
        struct dest_target *t = &d->targets[(preferred + k) % d->ntargets];
        if (target_takes(t))
            return t;
    }
    return &d->targets[preferred];
}

/* The target a spooled packet goes to: the one it was kept for, or the one its balance mode picks now. */
static struct dest_target *replay_target(struct dest *d, const struct segment_record *r)
{
    if (r->target != SEGMENT_ANY_TARGET && r->target < d->ntargets)
        return &d->targets[r->target];
    size_t preferred = 0;
    if (d->balance == CONF_BALANCE_HASH)
        preferred = (size_t)(r->call_hash % d->ntargets);
    else if (d->balance == CONF_BALANCE_ROUND_ROBIN)
        preferred = (size_t)(d->rr_next % d->ntargets);
    struct dest_target *t = pick_one(d, preferred);
    /* a destination that mixes udp: and tcp: targets replays to a stream one */
    for (size_t k = 0; k < d->ntargets && t->addr.transport != CONF_TCP; k++) {
        struct dest_target *u = &d->targets[(preferred + k) % d->ntargets];
        if (u->addr.transport == CONF_TCP && u->state == DEST_TCP_CONNECTED)
            t = u;
    }
    return t;
}

/* Tells the spool about the replayed batches every target has now written. */
static void replay_acks(struct dest *d)
{
    size_t stride = DEST_ACK_STRIDE(d), done = 0;
    for (; done < d->nacks; done++) {
        const uint64_t *a = d->acks + done * stride;
        bool written = true;
        for (size_t j = 0; j < d->ntargets && written; j++)
            written = DEST_ACK_END(d, a, j) == DEST_ACK_START(d, a, j) ||     /* not in the batch */
                      d->targets[j].done_total >= DEST_ACK_END(d, a, j);
        if (!written)
            break;
        spool_ack(d->spool, a[0]);
    }
    if (done > 0) {
        memmove(d->acks, d->acks + done * stride, (d->nacks - done) * stride * sizeof *d->acks);
        d->nacks -= done;
    }
}

/*
 * A replayed batch starts: its entry, past the last one, holds every
 * target's queue position now; NULL on ENOMEM (nothing is replayed then).
 */
static uint64_t *replay_begin(struct dest *d)
{
    size_t stride = DEST_ACK_STRIDE(d);
    if (d->nacks == d->acks_cap) {
        size_t cap = d->acks_cap > 0 ? 2 * d->acks_cap : 16;
        uint64_t *n = realloc(d->acks, cap * stride * sizeof *n);
        if (n == NULL)
            return NULL;
        d->acks = n;
        d->acks_cap = cap;
    }
    uint64_t *a = d->acks + d->nacks * stride;
    for (size_t j = 0; j < d->ntargets; j++)
        DEST_ACK_START(d, a, j) = d->targets[j].queued_total;
    return a;
}

/* The batch begun at a ended at spool position pos: it waits to be acked. */
static void replay_end(struct dest *d, uint64_t *a, uint64_t pos)
{
    a[0] = pos;
    for (size_t j = 0; j < d->ntargets; j++)
        DEST_ACK_END(d, a, j) = d->targets[j].queued_total;
    d->nacks++;
}

/* true when the frame at queue position at of target j came from d's spool and is not yet acked there. */
static bool replayed_frame(const struct dest *d, size_t j, uint64_t at)
{
    size_t stride = DEST_ACK_STRIDE(d);
    for (size_t k = 0; k < d->nacks; k++) {
        const uint64_t *a = d->acks + k * stride;
        if (at >= DEST_ACK_START(d, a, j) && at < DEST_ACK_END(d, a, j))
            return true;
    }
    return false;
}

/*
 * Replays what d's rate allows since the last tick, in order, while the
 * target of the next packet is connected and its queue under half full.
 */
static void dest_replay(struct dest *d, ev_tstamp now)
{
    double burst = (double)d->replay_rate * DEST_REPLAY_TICK_S * DEST_REPLAY_BURST_TICKS;
    d->replay_tokens += (now - d->replay_last) * (double)d->replay_rate;
    d->replay_last = now;
    if (d->replay_tokens > burst)
        d->replay_tokens = burst < 1 ? 1 : burst;
    uint64_t pos = 0;
    bool any = false;
    struct segment_record r;
    uint64_t *batch = replay_begin(d);
    while (batch != NULL && d->replay_tokens >= 1 && spool_peek(d->spool, &r)) {
        struct dest_target *t = replay_target(d, &r);
        if (t->addr.transport != CONF_TCP || t->state != DEST_TCP_CONNECTED ||
            (t->ring_len > 0 && t->ring_len + r.len > t->ring_cap / 2))
            break;
        tcp_queue(t, r.data, r.len);
        if (r.target == SEGMENT_ANY_TARGET && d->balance == CONF_BALANCE_ROUND_ROBIN)
            d->rr_next++;
        pos = spool_consume(d->spool);
        d->replay_tokens -= 1;
        any = true;
    }
    if (!any)
        return;
    replay_end(d, batch, pos);
    spool_ack(d->spool, 0);         /* saves how far the spool was queued */
    for (size_t j = 0; j < d->ntargets; j++) {
        struct dest_target *t = &d->targets[j];
        if (t->addr.transport == CONF_TCP && t->state == DEST_TCP_CONNECTED && !(t->io_events & EV_WRITE))
            tcp_write(t);
    }
}

static void replay_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct dest_set *ds = w->data;
    bool busy = false;
    for (size_t i = 0; i < ds->ndests; i++) {
        struct dest *d = &ds->dests[i];
        if (d->spool == NULL)
            continue;
        replay_acks(d);
        dest_replay(d, ev_now(loop));
        busy |= spool_waiting(d->spool) || d->nacks > 0;
    }
    if (!busy)
        ev_timer_stop(loop, w);
}

/* Adds what d's spool counted since the last call to the metrics, and sets its gauges. */
static void spool_report(const struct dest_set *ds, struct dest *d)
{
    if (d->spool == NULL)
        return;
    const struct spool_stats *st = spool_stats(d->spool);
    struct spool_stats *was = &d->reported;
    struct metrics_dest *md = &ds->m->dests[d->index];
    md->spool_written += st->written - was->written;
    md->spool_replayed += st->replayed - was->replayed;
    md->spool_resent += st->resent - was->resent;
    md->spool_damaged += st->damaged - was->damaged;
    md->spool_dropped_max_bytes += st->dropped[SPOOL_DROP_MAX_BYTES] - was->dropped[SPOOL_DROP_MAX_BYTES];
    md->spool_dropped_max_age += st->dropped[SPOOL_DROP_MAX_AGE] - was->dropped[SPOOL_DROP_MAX_AGE];
    md->spool_dropped_disk_full += st->dropped[SPOOL_DROP_DISK_FULL] - was->dropped[SPOOL_DROP_DISK_FULL];
    md->spool_dropped_write_error += st->dropped[SPOOL_DROP_WRITE_ERROR] - was->dropped[SPOOL_DROP_WRITE_ERROR];
    md->spool_dropped_slow_disk += st->dropped[SPOOL_DROP_SLOW_DISK] - was->dropped[SPOOL_DROP_SLOW_DISK];
    md->spool_packets = st->packets;
    md->spool_bytes = st->bytes;
    uint64_t now = (uint64_t)ev_now(ds->loop);
    md->spool_oldest_seconds = st->oldest_s > 0 && now > st->oldest_s ? now - st->oldest_s : 0;
    *was = *st;
}

/* Writes what d's spool buffers and saves its cursor; its packets stay on disk for the next run. */
static void spool_close(struct dest *d)
{
    spool_free(d->spool);
    d->spool = NULL;
    free(d->acks);
    d->acks = NULL;
    d->nacks = d->acks_cap = 0;
}

static void set_free_dest(struct dest_set *ds, struct dest *d)
{
    spool_close(d);
    for (size_t j = 0; j < d->ntargets && d->targets != NULL; j++) {
        struct dest_target *t = &d->targets[j];
        /* both transports use them (never started ones stop as no-ops) */
        ev_io_stop(ds->loop, &t->io);
        ev_timer_stop(ds->loop, &t->timer);
        resolve_watch_free(t->watch);
        if (t->fd >= 0)
            close(t->fd);
        free(t->msgs);
        free(t->iov);
        free(t->ring);
        free(t->partial);
        tls_conn_free(t->tls);
        free(t->stage);
    }
    free(d->targets);
    tls_ctx_unref(d->tls);
    free(d->server_name);
    free(d->name);
    free(d->node_name);
    free(d->auth_key);
}

void dest_set_free(struct dest_set *ds)
{
    if (ds == NULL)
        return;
    ev_timer_stop(ds->loop, &ds->replay);
    for (size_t i = 0; i < ds->ndests && ds->dests != NULL; i++)
        spool_report(ds, &ds->dests[i]);
    while (ds->retired != NULL) {
        struct dest_retired *r = ds->retired;
        ds->retired = r->next;
        set_free_dest(ds, &r->d);
        free(r);
    }
    for (size_t i = 0; i < ds->ndests && ds->dests != NULL; i++)
        set_free_dest(ds, &ds->dests[i]);
    free(ds->dests);
    free(ds->arena);
    resolver_free(ds->resolver);
    free(ds);
}

static char *dup_or_null(const char *s, bool *failed)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *failed = true;
    return d;
}

static int dest_init(struct dest_set *ds, struct dest *d, size_t di, const struct conf *conf)
{
    const struct conf_dest *cd = &conf->dests[di];
    bool nomem = false;
    d->index = di;
    d->name = dup_or_null(cd->name != NULL ? cd->name : "?", &nomem);
    d->node_name = dup_or_null(cd->node_name, &nomem);
    d->auth_key = dup_or_null(cd->auth_key, &nomem);
    d->server_name = dup_or_null(cd->tls.server_name, &nomem);
    d->tls = tls_ctx_ref(tls_set_dest(conf->tls_set, di));
    d->targets = calloc(cd->ntargets > 0 ? cd->ntargets : 1, sizeof *d->targets);
    if (nomem || d->targets == NULL) {
        log_error("destination %s: out of memory", cd->name);
        return -1;
    }
    d->ntargets = cd->ntargets;
    for (size_t j = 0; j < d->ntargets; j++)
        d->targets[j].fd = -1;      /* so a failure below closes only what was opened */
    d->balance = cd->balance;
    d->max_packet = cd->max_packet;
    d->rewrite = conf_dest_rewrites(cd);
    d->has_tcp = conf_dest_has_tcp(cd);
    d->convert = conf_dest_emits_v3(cd);
    d->ov.set_capture_id = cd->set_capture_id;
    d->ov.capture_id = cd->capture_id;
    if (d->node_name != NULL) {
        d->ov.node_name.set = true;
        d->ov.node_name.value.data = (const uint8_t *)d->node_name;
        d->ov.node_name.value.len = strlen(d->node_name);
    }
    if (d->auth_key != NULL) {
        d->ov.auth_key.set = true;
        d->ov.auth_key.value.data = (const uint8_t *)d->auth_key;
        d->ov.auth_key.value.len = strlen(d->auth_key);
    } else if (cd->strip_auth_key) {
        d->ov.auth_key.set = true;      /* an empty value removes chunk 0x000e */
    }

    for (size_t j = 0; j < d->ntargets; j++) {
        struct dest_target *t = &d->targets[j];
        t->ds = ds;
        t->d = d;
        t->addr = cd->targets[j];
        t->salen = netaddr_from_conf(&t->addr, &t->sa);
        t->fd = -1;
        t->mindex = ds->m->dest_first_target[di] + j;
        if (t->addr.tls && d->tls == NULL) {
            log_error("destination %s target %s: no TLS context (the certificates were not loaded)", d->name,
                      t->addr.text);
            return -1;
        }
        if (t->addr.transport == CONF_TCP) {
            if (tcp_open(t, ds, conf->tcp_queue_bytes) != 0)
                return -1;
        } else if (udp_open(t, ds->batch_cap) != 0) {
            return -1;
        }
        if (t->addr.addr_len == 0 && target_watch(t, conf) != 0)
            return -1;
    }
    if (cd->spool.dir != NULL) {
        d->spool = spool_new(d->name, &cd->spool, ds->worker, ds->nworkers, ds->log_interval_ms);
        if (d->spool == NULL) {
            log_error("destination %s: out of memory for its spool", cd->name);
            return -1;
        }
        d->replay_rate = cd->spool.replay_rate;
        replay_arm(ds);             /* the first tick opens it, on the worker's thread */
    }
    return 0;
}

struct dest_set *dest_set_new(struct ev_loop *loop, const struct conf *conf, struct metrics *m, unsigned worker)
{
    struct dest_set *ds = calloc(1, sizeof *ds);
    if (ds == NULL) {
        log_error("destinations: out of memory");
        return NULL;
    }
    ds->loop = loop;
    ds->m = m;
    ds->worker = worker;
    ds->nworkers = conf->workers;
    ev_timer_init(&ds->replay, replay_cb, DEST_REPLAY_TICK_S, DEST_REPLAY_TICK_S);
    ds->replay.data = ds;
    ds->batch_cap = conf->udp_batch > 0 ? conf->udp_batch : 1;
    if (ds->batch_cap > IOV_MAX)
        ds->batch_cap = IOV_MAX;    /* sendmmsg() takes at most this many */
    backoff_init(&ds->reconnect, conf->reconnect_min_ms, conf->reconnect_max_ms);
    ds->connect_timeout_ms = conf->connect_timeout_ms;
    ds->handshake_timeout_ms = conf->tls_handshake_timeout_ms;
    health_from_conf(&ds->health, conf);
    ds->log_interval_ms = conf->log_interval_ms;
    ds->drain_timeout_ms = conf->drain_timeout_ms;
    ds->arena_cap = DEST_ARENA_BYTES;
    ds->arena = malloc(ds->arena_cap);
    ds->dests = calloc(conf->ndests > 0 ? conf->ndests : 1, sizeof *ds->dests);
    if (ds->arena == NULL || ds->dests == NULL) {
        log_error("destinations: out of memory");
        goto error;
    }
    ds->ndests = conf->ndests;
    for (size_t i = 0; i < ds->ndests; i++)
        if (dest_init(ds, &ds->dests[i], i, conf) != 0)
            goto error;

    /* connect only once everything is built: a failure above frees cleanly */
    for (size_t i = 0; i < ds->ndests; i++)
        for (size_t j = 0; j < ds->dests[i].ntargets; j++)
            if (ds->dests[i].targets[j].addr.transport == CONF_TCP)
                tcp_connect(&ds->dests[i].targets[j]);
    return ds;

error:
    dest_set_free(ds);
    return NULL;
}

/*
 * Builds the bytes destination d sends for view: view->raw itself, or a
 * HEPv3 re-encoding in the arena.  Returns false (counted) when nothing
 * should be sent.
 */
static bool dest_output(struct dest_set *ds, struct dest *d, const struct hep_view *view,
                        const uint8_t **out, size_t *out_len, bool *in_arena)
{
    struct metrics_dest *md = &ds->m->dests[d->index];
    const struct hep_overrides *ov = d->rewrite ? &d->ov : NULL;
    bool encode = d->convert && hep_encode_needed(view, ov);
    size_t len = encode ? hep_encoded_len(view, ov) : view->raw.len;

    *in_arena = false;
    if (d->max_packet > 0 && len > d->max_packet) {
        md->too_big++;
        log_ratelimited(&d->too_big_limit, ds->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s: packet of %zu bytes above max_packet %zu, not sent",
                        d->name, len, d->max_packet);
        return false;
    }
    if (!encode) {
        *out = view->raw.data;
        *out_len = len;
        return true;
    }
    if (len > HEP3_MAX_LEN) {
        md->encode_errors++;
        log_ratelimited(&d->encode_limit, ds->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s: re-encoded packet would be %zu bytes, above %u", d->name,
                        len, HEP3_MAX_LEN);
        return false;
    }
    if (ds->arena_cap - ds->arena_used < len)
        dest_flush(ds);             /* frees the arena */
    uint8_t *p = ds->arena + ds->arena_used;
    int rc = hep_encode(view, ov, p, ds->arena_cap - ds->arena_used, &len);
    if (rc != HEP_OK) {
        md->encode_errors++;
        log_ratelimited(&d->encode_limit, ds->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s: cannot encode: %s", d->name, hep_strerror(rc));
        return false;
    }
    ds->arena_used += len;
    md->converted++;
    *out = p;
    *out_len = len;
    *in_arena = true;
    return true;
}

/* A TCP stream is framed by the HEP3 header: never queue anything else. */
static bool is_hep3_frame(const uint8_t *p, size_t len)
{
    return len >= HEP3_HDR_LEN && memcmp(p, HEP3_MAGIC, sizeof HEP3_MAGIC - 1) == 0 &&
           be16(p + 4) == len;
}

void dest_send(struct dest_set *ds, size_t di, const struct hep_view *view, const char *key, size_t klen)
{
    INVARIANT(di < ds->ndests);
    if (di >= ds->ndests)
        return;
    struct dest *d = &ds->dests[di];
    struct metrics_dest *md = &ds->m->dests[di];
    md->packets++;
    if (d->ntargets == 0)
        return;

    const uint8_t *data;
    size_t len;
    bool in_arena;
    if (!dest_output(ds, d, view, &data, &len, &in_arena))
        return;
    if (d->has_tcp && !is_hep3_frame(data, len)) {
        md->encode_errors++;
        log_ratelimited(&d->encode_limit, ds->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s: packet is not a well-formed HEP3 frame, not sent", d->name);
        if (in_arena)
            ds->arena_used -= len;
        return;
    }
    md->bytes += len;

    struct dest_call call = { .key = key, .klen = klen };
    struct dest_target *one = NULL;
    switch (d->balance) {
    case CONF_BALANCE_HASH:
        one = pick_one(d, (size_t)(call_hash(&call) % d->ntargets));
        break;
    case CONF_BALANCE_ROUND_ROBIN:
        one = pick_one(d, (size_t)(d->rr_next++ % d->ntargets));
        break;
    case CONF_BALANCE_FAILOVER:
        one = pick_one(d, 0);
        break;
    case CONF_BALANCE_ALL:
    default:
        break;
    }

    bool udp_ref = false;
    if (one != NULL) {
        target_send(d, one, data, len, &call, SEGMENT_ANY_TARGET);
        udp_ref = one->addr.transport == CONF_UDP;
    } else {
        for (size_t j = 0; j < d->ntargets; j++) {
            target_send(d, &d->targets[j], data, len, &call, (unsigned)j);
            udp_ref |= d->targets[j].addr.transport == CONF_UDP;
        }
    }
    /* TCP copied the bytes: give the arena space back unless a UDP batch points at it */
    if (in_arena && !udp_ref && ds->arena + ds->arena_used == data + len)
        ds->arena_used -= len;
}

void dest_flush(struct dest_set *ds)
{
    for (size_t i = 0; i < ds->ndests; i++) {
        struct dest *d = &ds->dests[i];
        for (size_t j = 0; j < d->ntargets; j++) {
            struct dest_target *t = &d->targets[j];
            if (t->addr.transport == CONF_UDP) {
                if (t->nbatch > 0)
                    udp_flush_target(t);
            } else if (t->state == DEST_TCP_CONNECTED && tcp_pending(t) > 0 &&
                       !(t->io_events & EV_WRITE)) {
                tcp_write(t);
            }
        }
    }
    /* the spools' writes after every socket's: no destination waits for another's disk */
    for (size_t i = 0; i < ds->ndests; i++)
        if (ds->dests[i].spool != NULL)
            spool_flush(ds->dests[i].spool);
    ds->arena_used = 0;
}

/*
 * Drops what d's TCP targets still queue; returns how many frames
 * (exit_drops).  With a spool, nothing queued is lost: what came from the
 * spool is still there (not acked), and the rest goes to its front, for
 * the target it was queued for, to be replayed first.
 */
static size_t dest_abandon_one(struct dest *d)
{
    size_t frames = 0;
    uint8_t *frame = d->spool != NULL ? malloc(HEP3_MAX_LEN) : NULL;
    for (size_t j = 0; j < d->ntargets; j++) {
        struct dest_target *t = &d->targets[j];
        if (t->addr.transport != CONF_TCP)
            continue;
        if (t->partial_off < t->partial_len) {
            frames++;
            target_metrics(t)->exit_drops++;
            t->partial_off = t->partial_len;
        }
        t->head_sent = 0;
        t->stage_len = 0;           /* tls: a record handed to TLS counts as written, like the socket's buffer */
        while (t->ring_len > 0) {
            size_t flen = ring_head_frame_len(t);
            if (frame != NULL && !replayed_frame(d, j, t->done_total)) {
                ring_copy_out(t, 0, flen, frame);
                struct segment_record r = { .target = (unsigned)j, .data = frame, .len = flen };
                spool_keep_first(d->spool, &r);
            } else if (frame == NULL) {
                target_metrics(t)->exit_drops++;
                frames++;
            }
            ring_pop(t, flen);
        }
    }
    free(frame);
    return frames;
}

static size_t dest_pending_one(const struct dest *d)
{
    size_t n = 0;
    for (size_t j = 0; j < d->ntargets; j++)
        if (d->targets[j].addr.transport == CONF_TCP)
            n += tcp_pending(&d->targets[j]);
    return n;
}

size_t dest_abandon(struct dest_set *ds)
{
    size_t frames = 0;
    for (size_t i = 0; i < ds->ndests; i++) {
        if (ds->dests[i].spool != NULL)
            replay_acks(&ds->dests[i]);     /* what was written is not replayed again */
        frames += dest_abandon_one(&ds->dests[i]);
        spool_report(ds, &ds->dests[i]);
        spool_close(&ds->dests[i]);
    }
    for (struct dest_retired *r = ds->retired; r != NULL; r = r->next)
        frames += dest_abandon_one(&r->d);
    return frames;
}

size_t dest_pending(const struct dest_set *ds)
{
    size_t n = 0;
    for (size_t i = 0; i < ds->ndests; i++)
        n += dest_pending_one(&ds->dests[i]);
    for (const struct dest_retired *r = ds->retired; r != NULL; r = r->next)
        n += dest_pending_one(&r->d);
    return n;
}

/* ---- reload ---- */

/* d now lives at *d, index di, its counters at metrics index first (or retired). */
static void dest_moved(struct dest *d, size_t di, size_t first)
{
    d->index = di;
    for (size_t j = 0; j < d->ntargets; j++) {
        d->targets[j].d = d;
        d->targets[j].mindex = first == DEST_MINDEX_RETIRED ? DEST_MINDEX_RETIRED : first + j;
    }
}

/* A changed or removed destination: gone now, or once its TCP queues are sent. */
static void dest_retire(struct dest_set *ds, struct dest *d)
{
    /* closed now: the new version of the destination opens the same directory and replays from it */
    if (d->spool != NULL)
        replay_acks(d);
    spool_report(ds, d);
    spool_close(d);
    struct dest_retired *r = NULL;
    if (d->has_tcp && dest_pending_one(d) > 0)
        r = calloc(1, sizeof *r);
    if (r == NULL) {
        size_t dropped = dest_abandon_one(d);
        if (dropped > 0)
            log_warn("destination %s: changed by a reload and out of memory: %zu queued packets dropped",
                     d->name, dropped);
        set_free_dest(ds, d);
        return;
    }
    r->d = *d;
    dest_moved(&r->d, 0, DEST_MINDEX_RETIRED);
    r->deadline = ev_now(ds->loop) + clock_ms_to_s(ds->drain_timeout_ms);
    r->next = ds->retired;
    ds->retired = r;
    log_info("destination %s: changed by a reload; its old TCP targets send the %zu bytes they queue "
             "first (at most limits.drain_timeout)", d->name, dest_pending_one(&r->d));
}

int dest_set_reconfigure(struct dest_set *ds, const struct conf *old, const struct conf *conf)
{
    struct dest *next = calloc(conf->ndests > 0 ? conf->ndests : 1, sizeof *next);
    bool *kept = calloc(ds->ndests > 0 ? ds->ndests : 1, sizeof *kept);
    bool *built = calloc(conf->ndests > 0 ? conf->ndests : 1, sizeof *built);
    if (next == NULL || kept == NULL || built == NULL) {
        free(next);
        free(kept);
        free(built);
        log_error("destinations: out of memory for the reload; destinations unchanged");
        return -1;
    }
    dest_flush(ds);
    backoff_init(&ds->reconnect, conf->reconnect_min_ms, conf->reconnect_max_ms);
    ds->connect_timeout_ms = conf->connect_timeout_ms;
    ds->handshake_timeout_ms = conf->tls_handshake_timeout_ms;
    health_from_conf(&ds->health, conf);
    ds->log_interval_ms = conf->log_interval_ms;
    ds->drain_timeout_ms = conf->drain_timeout_ms;

    int rc = 0;
    if (ds->resolver != NULL)
        resolver_configure(ds->resolver, conf->dns_refresh_ms, conf->reconnect_min_ms, conf->reconnect_max_ms);
    for (size_t i = 0; i < conf->ndests; i++) {
        long oi = conf_dest_index(old, conf->dests[i].name);
        if (oi >= 0 && (size_t)oi < ds->ndests && !kept[oi] && conf_dest_equal(&old->dests[oi], &conf->dests[i])) {
            kept[oi] = true;
            next[i] = ds->dests[oi];
            dest_moved(&next[i], i, ds->m->dest_first_target[i]);
            /* the certificates were read again: the next handshakes use them */
            tls_ctx_unref(next[i].tls);
            next[i].tls = tls_ctx_ref(tls_set_dest(conf->tls_set, i));
            continue;
        }
        if (dest_init(ds, &next[i], i, conf) != 0) {
            /* its packets are counted and go nowhere until a reload fixes it */
            log_error("destination %s: cannot be built; its packets are dropped", conf->dests[i].name);
            set_free_dest(ds, &next[i]);
            memset(&next[i], 0, sizeof next[i]);
            next[i].index = i;
            rc = -1;
            continue;
        }
        built[i] = true;
    }
    for (size_t oi = 0; oi < ds->ndests; oi++)
        if (!kept[oi])
            dest_retire(ds, &ds->dests[oi]);
    free(ds->dests);
    ds->dests = next;
    ds->ndests = conf->ndests;
    for (size_t i = 0; i < ds->ndests; i++)
        for (size_t j = 0; built[i] && j < ds->dests[i].ntargets; j++)
            if (ds->dests[i].targets[j].addr.transport == CONF_TCP)
                tcp_connect(&ds->dests[i].targets[j]);
    free(kept);
    free(built);
    return rc;
}

void dest_housekeeping(struct dest_set *ds)
{
    ev_tstamp now = ev_now(ds->loop);
    for (size_t i = 0; i < ds->ndests; i++)
        if (ds->dests[i].spool != NULL)
            spool_expire(ds->dests[i].spool);
    for (struct dest_retired **at = &ds->retired; *at != NULL;) {
        struct dest_retired *r = *at;
        size_t pending = dest_pending_one(&r->d);
        if (pending > 0 && now < r->deadline) {
            at = &r->next;
            continue;
        }
        if (pending > 0)
            log_warn("destination %s (changed by a reload): %zu packets still queued for its old targets "
                     "after limits.drain_timeout are dropped", r->d.name, dest_abandon_one(&r->d));
        *at = r->next;
        set_free_dest(ds, &r->d);
        free(r);
    }
}

void dest_gauges(struct dest_set *ds)
{
    for (size_t i = 0; i < ds->ndests; i++) {
        struct dest *d = &ds->dests[i];
        spool_report(ds, d);
        for (size_t j = 0; j < d->ntargets; j++) {
            const struct dest_target *t = &d->targets[j];
            struct metrics_target *mt = target_metrics(t);
            bool tcp = t->addr.transport == CONF_TCP;
            mt->queue_packets = tcp ? t->ring_frames + (t->partial_off < t->partial_len) : t->nbatch;
            mt->queue_bytes = tcp ? tcp_pending(t) : 0;
            mt->up = target_up(t);
        }
    }
}
