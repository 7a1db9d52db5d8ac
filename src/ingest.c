/*
 * ingest.c - the listeners: UDP sockets read with recvmmsg() and TCP
 * listeners whose connections carry a HEP3 stream.
 *
 * Everything runs on the worker's libev loop and never blocks.  UDP
 * datagrams land in buffers preallocated once per worker (udp_batch of them,
 * HEP3_MAX_LEN bytes each); a TCP connection owns one framer (framer.h)
 * whose buffer holds tcp_max_frame bytes.  Packets are handed out as pointers into those
 * buffers, valid until the batch-end callback returns.
 *
 * Coalescing: a wakeup that finds more than one datagram waiting means
 * packets arrive faster than the worker wakes up for them.  Then the loop
 * polls again only limits.udp_coalesce_us after this wakeup (libev's I/O
 * collect interval; it sleeps the rest), so that the next read takes a
 * larger batch and each system call and sendmmsg() carries more packets.
 * The wakeup that ends such a wait never starts another: when packets come
 * in bursts (a sender's sendmmsg()), the wait has gathered the burst, and a
 * second one would sleep through the gap before the next burst, a timer
 * wakeup for nothing.  A wakeup that finds one datagram turns it off too:
 * a quiet worker never waits, and a packet waits at most that long.
 * Timers are not delayed.
 *
 * ingest_stop() closes every socket, so that senders are refused rather
 * than queued for nobody, but first hands out what the kernel has already
 * accepted: the datagrams queued on each UDP socket, the connections waiting
 * in each accept queue, and the bytes queued on each TCP connection.
 */
#include "ingest.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admission.h"
#include "clock.h"
#include "conf.h"
#include "framer.h"
#include "hep.h"
#include "list.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "ready.h"
#include "tls.h"

/*
 * Fairness: a busy socket gets at most this many recvmmsg() batches (or
 * reads, or accepts) per loop iteration before the other watchers run.
 * libev is level-triggered, so what is left is read on the next iteration.
 */
#define INGEST_UDP_BATCHES_PER_WAKEUP 8
#define INGEST_TCP_READS_PER_WAKEUP 8
#define INGEST_TCP_ACCEPTS_PER_WAKEUP 64

/* The kernel caps the backlog to net.core.somaxconn anyway. */
#define INGEST_TCP_BACKLOG SOMAXCONN

/*
 * ingest_stop() reads a UDP socket until it is empty, but at most
 * SO_RCVBUF / INGEST_UDP_MIN_TRUESIZE datagrams, so that a sender that keeps
 * sending cannot keep it going: each queued datagram costs the kernel more
 * than this (its sk_buff alone), so no more than that can have been queued.
 */
#define INGEST_UDP_MIN_TRUESIZE 256

/*
 * When accept() fails for lack of descriptors or memory, the pending
 * connection stays in the queue and the socket stays readable: stop
 * watching it for this long instead of spinning.
 */
#define INGEST_ACCEPT_PAUSE_S 0.1


struct ingest_listener;

/* One inbound TCP connection (of a tls: listener: inside TLS). */
struct ingest_conn {
    struct ingest_listener *l;
    struct list_link link;          /* l->conns */
    int fd;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    ev_io io;
    int io_events;                  /* what io watches */
    ev_timer idle;                  /* while handshaking: the handshake timeout */
    ev_tstamp last_active;
    struct framer framer;
    /* TLS */
    struct tls_conn *tls;           /* NULL: plain TCP */
    bool handshaking;
    bool tls_ended;                 /* a close or an error came after bytes: the next read reports it */
    char *subject;                  /* the client certificate's, RFC 2253; NULL: none */
    char *cn;                       /* its common name */
    const struct conf_subject_binding *binding;     /* in the listener's tls: section, for subject */
    unsigned binding_gen;           /* the listener's tls_gen binding was looked up for */
};

/* listener_count()'s index of a listener a reload removed, while it hands out what it holds */
#define INGEST_MINDEX_REMOVED SIZE_MAX

struct ingest_listener {
    struct ingest *in;
    size_t mindex;                  /* into metrics.listeners */
    int transport;                  /* CONF_UDP / CONF_TCP */
    int fd;
    struct tls_ctx *tls;            /* a tls: listener's context (the running conf's set); NULL: plain */
    const struct conf_tls *tls_conf;    /* its tls: section, in the running conf */
    unsigned tls_gen;               /* +1 when a reload changes tls_conf: bindings looked up again */
    struct log_limit tls_limit[TLS_FAILURE_COUNT];  /* failed handshakes, by kind */
    struct sockaddr_storage bound;
    socklen_t boundlen;
    char name[READY_ADDR_MAX];      /* "udp:127.0.0.1:9060", the bound port */
    const struct conf_sources *sources;     /* its sources: rules, in the running conf */
    const struct conf_sources *packet_rules;    /* the same when it has keys or capture ids, else NULL */
    ev_io io;
    ev_timer accept_pause;
    struct list conns;              /* newest first */
    size_t nconns;
    struct log_limit reject_limit;  /* over tcp_max_connections */
    struct log_limit frame_limit;   /* bad magic / bad length */
    struct log_limit truncated_limit;   /* closed with a partial frame buffered */
    struct log_limit error_limit;   /* recv / accept errors, oversize */
};

struct ingest {
    struct ev_loop *loop;
    struct metrics *m;
    ingest_packet_fn on_packet;
    ingest_batch_end_fn on_batch_end;
    void *arg;

    size_t max_connections;
    size_t max_frame;
    ev_tstamp idle_timeout;         /* seconds, 0: none */
    ev_tstamp handshake_timeout;    /* seconds */
    uint64_t log_interval_ms;
    ev_tstamp udp_coalesce;         /* limits.udp_coalesce_us, seconds (0: never) */
    bool coalescing;                /* the loop's I/O collect interval is udp_coalesce */
    bool stopped;

    /* refused by sources: one summary line per reason and log.interval */
    struct log_tally refused_tally[ADMISSION_VERDICT_COUNT];
    struct log_tally not_allowed_conn_tally;

    struct ingest_listener **listeners;     /* each its own allocation: connections point to it */
    size_t nlisteners;

    /* One recvmmsg() batch, shared by this worker's UDP listeners. */
    size_t udp_batch;
    uint8_t *udp_bufs;              /* udp_batch buffers of HEP3_MAX_LEN */
    size_t udp_used;                /* headers the last recvmmsg() filled */
    struct mmsghdr *udp_msgs;
    struct iovec *udp_iov;
    struct sockaddr_storage *udp_peers;
};

/* ---- helpers ---- */

static const char *transport_name(const struct conf_addr *addr)
{
    return addr->tls ? "tls" : addr->transport == CONF_TCP ? "tcp" : "udp";
}

static bool is_v6_any(const struct sockaddr_storage *sa)
{
    if (sa->ss_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
    return IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
}

static int set_int_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value);
}

/*
 * The options every listener needs: SO_REUSEPORT so each worker binds the
 * same address, IPV6_V6ONLY on [::] so a 0.0.0.0 bind on the same port
 * does not clash with it.
 */
static int socket_common(int fd, const struct conf_addr *addr, const struct sockaddr_storage *sa)
{
    if (set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) != 0 ||
        set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) != 0) {
        log_error("listen %s: setsockopt: %s", addr->text, strerror(errno));
        return -1;
    }
    if (is_v6_any(sa) && set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1) != 0) {
        log_error("listen %s: IPV6_V6ONLY: %s", addr->text, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN; without
 * it SO_RCVBUF is silently capped, so say so: a small buffer is where UDP
 * bursts get lost.
 */
static void set_rcvbuf(int fd, const struct conf_addr *addr, size_t want)
{
    if (want == 0)
        return;
    int v = want > (size_t)INT32_MAX / 2 ? INT32_MAX / 2 : (int)want;
    if (set_int_opt(fd, SOL_SOCKET, SO_RCVBUFFORCE, v) != 0 &&
        set_int_opt(fd, SOL_SOCKET, SO_RCVBUF, v) != 0) {
        log_warn("listen %s: SO_RCVBUF %d: %s", addr->text, v, strerror(errno));
        return;
    }
    int got = 0;
    socklen_t len = sizeof got;
    /* Linux reports twice the value it granted (bookkeeping overhead) */
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) == 0 && got / 2 < v)
        log_warn("listen %s: udp_rcvbuf %d capped to %d by the kernel (raise net.core.rmem_max)",
                 addr->text, v, got / 2);
}

/* Per listener and HEP version, before anything is decoded. */
static inline void listener_count(const struct ingest_listener *l, const uint8_t *data, size_t len)
{
    if (l->mindex == INGEST_MINDEX_REMOVED)
        return;
    struct metrics_listener *ml = &l->in->m->listeners[l->mindex];
    int v = hep_peek_version(data, len);
    ml->packets[v]++;
    ml->bytes[v] += len;
}

/* ---- sources ---- */

/* The log lines of refused packets, by reason: "N packets refused (bad_auth_key) from ADDR". */
static const char *const refused_what[ADMISSION_VERDICT_COUNT] = {
    "packets accepted",
#define INGEST_REFUSED_WHAT(id, name) "packets refused (" name ")",
    ADMISSION_REASONS(INGEST_REFUSED_WHAT)
#undef INGEST_REFUSED_WHAT
};
#define INGEST_NOT_ALLOWED_CONNS "TCP connections refused (not_allowed)"

/* Listener i's rules and certificates in conf (at start and at every reload). */
static void listener_set_conf(struct ingest_listener *l, const struct conf *conf, size_t i)
{
    l->sources = conf_listen_sources(conf, i);
    l->packet_rules = admission_has_packet_rules(l->sources) ? l->sources : NULL;
    if (conf->listen[i].tls) {
        l->tls = tls_set_listener(conf->tls_set, i);
        l->tls_conf = conf_listen_tls(conf, i);
        l->tls_gen++;
    }
}

static bool peer_allowed(const struct ingest_listener *l, const struct sockaddr *peer)
{
    if (l->sources->nallow == 0)
        return true;
    const uint8_t *addr;
    unsigned len = netaddr_bytes(peer, &addr);
    return admission_source_allowed(l->sources, len, addr);
}

/* Counts one refused packet and adds it to its reason's summary line. */
static void count_refused_from(struct ingest *in, int verdict, const char *sender)
{
    in->m->refused[verdict]++;
    log_tally(&in->refused_tally[verdict], in->log_interval_ms, clock_mono_ms(), LOG_LEVEL_WARN,
              refused_what[verdict], sender);
}

static void count_refused(struct ingest *in, int verdict, const struct sockaddr *peer)
{
    char text[NETADDR_TEXT_MAX];
    count_refused_from(in, verdict, netaddr_format(peer, text, sizeof text));
}

int ingest_admit(struct ingest *in, const struct ingest_source *src, const struct hep_view *v)
{
    enum admission_verdict verdict = ADMISSION_OK;
    if (src->packet_rules != NULL) {
        const uint8_t *addr;
        unsigned len = netaddr_bytes(src->peer, &addr);
        verdict = admission_check_packet(src->packet_rules, len, addr, v);
    }
    if (verdict == ADMISSION_OK && src->cert_bound && !admission_ids_claimed(src->cert_ids, src->ncert_ids, v)) {
        /* the summary names the certificate: the binding to fix is its subject's */
        char text[NETADDR_TEXT_MAX + TLS_SUBJECT_MAX + sizeof " (certificate )"], peer[NETADDR_TEXT_MAX];
        snprintf(text, sizeof text, "%s (certificate %s)", netaddr_format(src->peer, peer, sizeof peer),
                 src->cert_subject != NULL ? src->cert_subject : "none");
        count_refused_from(in, ADMISSION_CAPTURE_ID_NOT_ALLOWED, text);
        return ADMISSION_CAPTURE_ID_NOT_ALLOWED;
    }
    if (verdict != ADMISSION_OK)
        count_refused(in, verdict, src->peer);
    return (int)verdict;
}

void ingest_logs(struct ingest *in, uint64_t now_ms)
{
    if (in == NULL)
        return;
    for (int i = 1; i < ADMISSION_VERDICT_COUNT; i++)
        log_tally_tick(&in->refused_tally[i], in->log_interval_ms, now_ms, LOG_LEVEL_WARN, refused_what[i]);
    log_tally_tick(&in->not_allowed_conn_tally, in->log_interval_ms, now_ms, LOG_LEVEL_WARN,
                   INGEST_NOT_ALLOWED_CONNS);
}

/* ---- UDP ---- */

/*
 * Reads at most max_batches recvmmsg() batches, fewer once the socket is
 * empty; returns the datagrams read.
 */
static size_t udp_read(struct ingest_listener *l, size_t max_batches)
{
    struct ingest *in = l->in;
    size_t got = 0;

    for (size_t b = 0; b < max_batches; b++) {
        /* what the kernel wrote in the last batch's headers, put back (udp_buffers_alloc() set them all) */
        for (size_t i = 0; i < in->udp_used; i++) {
            in->udp_msgs[i].msg_hdr.msg_namelen = sizeof in->udp_peers[i];
            in->udp_msgs[i].msg_hdr.msg_flags = 0;
        }
        in->udp_used = 0;
        int n = recvmmsg(l->fd, in->udp_msgs, (unsigned)in->udp_batch, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                in->m->recv_errors++;
                log_ratelimited(&l->error_limit, in->log_interval_ms, LOG_LEVEL_WARN,
                                "%s: recvmmsg: %s", l->name, strerror(errno));
            }
            return got;
        }
        in->udp_used = (size_t)n;
        got += (size_t)n;
        for (int i = 0; i < n; i++) {
            struct msghdr *h = &in->udp_msgs[i].msg_hdr;
            if (h->msg_flags & MSG_TRUNC) {
                char peer[NETADDR_TEXT_MAX];
                in->m->udp_oversize++;
                log_ratelimited(&l->error_limit, in->log_interval_ms, LOG_LEVEL_WARN,
                                "%s: datagram from %s larger than %u bytes dropped", l->name,
                                netaddr_format(h->msg_name, peer, sizeof peer), HEP3_MAX_LEN);
                continue;
            }
            struct ingest_source src = {
                .peer = h->msg_name,
                .peerlen = h->msg_namelen,
                .transport = CONF_UDP,
                .packet_rules = l->packet_rules,
            };
            listener_count(l, h->msg_iov->iov_base, in->udp_msgs[i].msg_len);
            if (!peer_allowed(l, h->msg_name)) {
                count_refused(in, ADMISSION_NOT_ALLOWED, h->msg_name);
                continue;
            }
            in->on_packet(in->arg, h->msg_iov->iov_base, in->udp_msgs[i].msg_len, &src);
        }
        if (n > 0 && in->on_batch_end != NULL)
            in->on_batch_end(in->arg);
        if ((size_t)n < in->udp_batch)
            return got;             /* the socket is drained */
    }
    return got;
}

/* See "Coalescing" at the top. */
static void udp_coalesce(struct ingest *in, size_t got)
{
    bool busy = got > 1 && in->udp_coalesce > 0 && !in->coalescing;
    if (busy != in->coalescing) {
        ev_set_io_collect_interval(in->loop, busy ? in->udp_coalesce : 0.);
        in->coalescing = busy;
    }
}

static void udp_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct ingest_listener *l = w->data;
    udp_coalesce(l->in, udp_read(l, INGEST_UDP_BATCHES_PER_WAKEUP));
}

/* Shutdown: hands out what is queued on the socket (see INGEST_UDP_MIN_TRUESIZE). */
static void udp_read_queued(struct ingest_listener *l)
{
    int rcvbuf = 0;
    socklen_t len = sizeof rcvbuf;
    if (getsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len) != 0 || rcvbuf < 0)
        rcvbuf = 0;
    size_t datagrams = (size_t)rcvbuf / INGEST_UDP_MIN_TRUESIZE + 1;
    udp_read(l, datagrams / l->in->udp_batch + 1);
}

static int udp_buffers_alloc(struct ingest *in)
{
    in->udp_bufs = malloc(in->udp_batch * HEP3_MAX_LEN);
    in->udp_msgs = calloc(in->udp_batch, sizeof *in->udp_msgs);
    in->udp_iov = calloc(in->udp_batch, sizeof *in->udp_iov);
    in->udp_peers = calloc(in->udp_batch, sizeof *in->udp_peers);
    if (in->udp_bufs == NULL || in->udp_msgs == NULL || in->udp_iov == NULL || in->udp_peers == NULL)
        return -1;
    for (size_t i = 0; i < in->udp_batch; i++) {
        in->udp_iov[i].iov_base = in->udp_bufs + i * HEP3_MAX_LEN;
        in->udp_iov[i].iov_len = HEP3_MAX_LEN;
        in->udp_msgs[i].msg_hdr.msg_iov = &in->udp_iov[i];
        in->udp_msgs[i].msg_hdr.msg_iovlen = 1;
        in->udp_msgs[i].msg_hdr.msg_name = &in->udp_peers[i];
        in->udp_msgs[i].msg_hdr.msg_namelen = sizeof in->udp_peers[i];
    }
    in->udp_used = 0;
    return 0;
}

/* ---- TCP connections ---- */

static void conn_close(struct ingest_conn *c)
{
    struct ingest_listener *l = c->l;
    struct ingest *in = l->in;
    ev_io_stop(in->loop, &c->io);
    ev_timer_stop(in->loop, &c->idle);
    tls_conn_free(c->tls);
    free(c->subject);
    free(c->cn);
    close(c->fd);
    list_remove(&l->conns, &c->link);
    l->nconns--;
    framer_free(&c->framer);
    free(c);
}

/*
 * Counts and reports the partial frame a connection leaves behind when it
 * ends (why: the peer closed or reset it mid-frame, it went idle, shutdown):
 * those bytes can never become a packet.
 */
static void conn_count_truncated(struct ingest_conn *c, const char *why)
{
    size_t pending = framer_pending(&c->framer);
    if (pending == 0)
        return;
    struct ingest *in = c->l->in;
    char peer[NETADDR_TEXT_MAX];
    in->m->tcp_truncated++;
    log_ratelimited(&c->l->truncated_limit, in->log_interval_ms, LOG_LEVEL_WARN,
                    "%s: connection from %s ended mid-frame (%s): %zu bytes of a partial HEP3 frame lost",
                    c->l->name, netaddr_format((const struct sockaddr *)&c->peer, peer, sizeof peer), why,
                    pending);
}

/* Closes a connection for a reason the operator should see, counted. */
static void conn_close_counted(struct ingest_conn *c, uint64_t *counter)
{
    if (counter != NULL)
        (*counter)++;
    c->l->in->m->tcp_closed++;
    conn_close(c);
}

/*
 * tls.client_capture_ids: what the connection's certificate may claim, in
 * the running configuration (looked up again after a reload changed it).
 */
static void conn_binding(struct ingest_conn *c, struct ingest_source *src)
{
    const struct ingest_listener *l = c->l;
    if (c->tls == NULL || l->tls_conf == NULL || l->tls_conf->nclient_capture_ids == 0)
        return;
    if (c->binding_gen != l->tls_gen) {
        c->binding = admission_subject_binding(l->tls_conf, c->subject != NULL ? c->subject : "",
                                               c->cn != NULL ? c->cn : "");
        c->binding_gen = l->tls_gen;
    }
    src->cert_bound = true;
    src->cert_subject = c->subject;
    if (c->binding != NULL) {
        src->cert_ids = c->binding->ids;
        src->ncert_ids = c->binding->nids;
    }
}

/*
 * Hands every whole frame in the buffer to on_packet, then runs on_batch_end
 * while the frames are still in place.  Returns the framer's final status.
 */
static enum framer_status conn_deliver(struct ingest_conn *c, size_t *ndelivered)
{
    struct ingest *in = c->l->in;
    struct ingest_source src = {
        .peer = (const struct sockaddr *)&c->peer,
        .peerlen = c->peerlen,
        .transport = CONF_TCP,
        .packet_rules = c->l->packet_rules,
    };
    conn_binding(c, &src);
    const uint8_t *frame = NULL;
    size_t len = 0, delivered = 0;
    enum framer_status st;
    /* accepted once; a reload may have narrowed sources.allow since */
    bool allowed = peer_allowed(c->l, src.peer);
    while ((st = framer_next(&c->framer, &frame, &len)) == FRAMER_OK) {
        listener_count(c->l, frame, len);
        if (!allowed) {
            count_refused(in, ADMISSION_NOT_ALLOWED, src.peer);
            continue;
        }
        in->on_packet(in->arg, frame, len, &src);
        delivered++;
    }
    if (delivered > 0 && in->on_batch_end != NULL)
        in->on_batch_end(in->arg);
    if (ndelivered != NULL)
        *ndelivered = delivered;
    if (st == FRAMER_BAD_MAGIC) {
        char peer[NETADDR_TEXT_MAX];
        in->m->tcp_bad_magic++;
        log_ratelimited(&c->l->frame_limit, in->log_interval_ms, LOG_LEVEL_WARN,
                        "%s: connection from %s closed: stream is not HEP3 (bad magic)", c->l->name,
                        netaddr_format((const struct sockaddr *)&c->peer, peer, sizeof peer));
    } else if (st == FRAMER_BAD_LENGTH) {
        char peer[NETADDR_TEXT_MAX];
        in->m->tcp_bad_length++;
        log_ratelimited(&c->l->frame_limit, in->log_interval_ms, LOG_LEVEL_WARN,
                        "%s: connection from %s closed: HEP3 length %zu outside [%u, %zu]",
                        c->l->name,
                        netaddr_format((const struct sockaddr *)&c->peer, peer, sizeof peer), len,
                        HEP3_HDR_LEN, in->max_frame);
    }
    return st;
}

static void conn_watch(struct ingest_conn *c, int events)
{
    if (c->io_events == events)
        return;
    struct ev_loop *loop = c->l->in->loop;
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    c->io_events = events;
    ev_io_start(loop, &c->io);
}

/*
 * One read from the connection, like read(2): bytes, 0 at the end, or -1
 * with errno (EAGAIN: nothing now; EPROTO: a TLS error, why in *tls_why).
 * Over TLS, record after record until room is full or none is left, so
 * that the frames of many records (Kamailio sends one per packet) are one
 * batch; an end or an error after some bytes comes at the next call.
 */
static ssize_t conn_recv(struct ingest_conn *c, uint8_t *p, size_t room, const char **tls_why)
{
    if (c->tls == NULL)
        return read(c->fd, p, room);
    size_t total = 0;
    for (;;) {
        size_t got = 0;
        enum tls_status st = tls_read(c->tls, p + total, room - total, &got);
        if (st == TLS_OK) {
            total += got;
            if (total == room)
                return (ssize_t)total;
            continue;
        }
        if (st == TLS_WANT_WRITE)
            conn_watch(c, EV_READ | EV_WRITE);     /* TLS needs to send first (a key update) */
        if (total > 0) {
            c->tls_ended = st == TLS_CLOSED || st == TLS_FAILED;
            return (ssize_t)total;
        }
        switch (st) {
        case TLS_CLOSED:
            return 0;
        case TLS_WANT_READ:
        case TLS_WANT_WRITE:
            errno = EAGAIN;
            return -1;
        default:
            *tls_why = tls_conn_error(c->tls);
            errno = EPROTO;
            return -1;
        }
    }
}

static void conn_read(struct ingest_conn *c)
{
    struct ingest *in = c->l->in;
    struct ev_loop *loop = in->loop;
    if (c->tls != NULL)
        conn_watch(c, EV_READ);
    for (int r = 0; r < INGEST_TCP_READS_PER_WAKEUP; r++) {
        size_t room;
        bool at_boundary = framer_pending(&c->framer) == 0;
        uint8_t *p = framer_space(&c->framer, &room);
        const char *tls_why = NULL;
        ssize_t n = conn_recv(c, p, room, &tls_why);
        if (n > 0) {
            framer_commit(&c->framer, (size_t)n);
            size_t delivered = 0;
            enum framer_status st = conn_deliver(c, &delivered);
            /*
             * Idle means no frame begun or completed: bytes that only add
             * to an unfinished frame do not count, so a frame must complete
             * within limits.tcp_idle_timeout of its first byte.
             */
            if (at_boundary || delivered > 0)
                c->last_active = ev_now(loop);
            if (st == FRAMER_BAD_MAGIC || st == FRAMER_BAD_LENGTH) {
                conn_close_counted(c, NULL);
                return;
            }
            if ((size_t)n < room && c->tls == NULL)
                return;             /* the socket is drained (TLS reads a record at a time) */
            continue;
        }
        if (n == 0) {
            /* a frame cut by EOF is lost: the sender closed mid-write */
            if (log_current_level >= LOG_LEVEL_DEBUG) {
                char peer[NETADDR_TEXT_MAX];
                log_debug("%s: %s: connection closed by the peer",
                          netaddr_format((const struct sockaddr *)&c->peer, peer, sizeof peer), c->l->name);
            }
            conn_count_truncated(c, "closed by the peer");
            conn_close_counted(c, NULL);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        char peer[NETADDR_TEXT_MAX];
        in->m->recv_errors++;
        log_ratelimited(&c->l->error_limit, in->log_interval_ms, LOG_LEVEL_WARN,
                        "%s: connection from %s: read: %s", c->l->name,
                        netaddr_format((const struct sockaddr *)&c->peer, peer, sizeof peer),
                        tls_why != NULL ? tls_why : strerror(errno));
        conn_count_truncated(c, "read error");
        conn_close_counted(c, NULL);
        return;
    }
    /*
     * bytes TLS has taken from the socket already, or its end seen after
     * the last bytes: the socket will not say so again
     */
    if (c->tls != NULL && (c->tls_ended || tls_buffered(c->tls) > 0))
        ev_feed_event(loop, &c->io, EV_READ);
}

/* The idle timer watches the connection's frames from now on. */
static void conn_idle_arm(struct ingest_conn *c, ev_tstamp after)
{
    struct ev_loop *loop = c->l->in->loop;
    ev_timer_stop(loop, &c->idle);
    if (after > 0) {
        c->idle.repeat = after;
        ev_timer_again(loop, &c->idle);
    }
}

/* Each kind of failed handshake: its counter and its word in the log (metrics.h names it too). */
static uint64_t *conn_failure_counter(struct ingest *in, enum tls_failure f)
{
    switch (f) {
    case TLS_FAIL_CERTIFICATE:
        return &in->m->tls_failed_certificate;
    case TLS_FAIL_NO_CERTIFICATE:
        return &in->m->tls_failed_no_certificate;
    case TLS_FAIL_TIMEOUT:
        return &in->m->tls_failed_timeout;
    default:
        return &in->m->tls_failed_protocol;
    }
}

static const char *const tls_failure_names[TLS_FAILURE_COUNT] = {
    [TLS_FAIL_PROTOCOL] = "protocol",
    [TLS_FAIL_CERTIFICATE] = "certificate",
    [TLS_FAIL_NO_CERTIFICATE] = "no_certificate",
    [TLS_FAIL_TIMEOUT] = "timeout",
};

/*
 * A handshake that failed (why: its text): counted by kind, logged with one
 * line per kind, listener and log.interval, closed.
 */
static void conn_tls_failed(struct ingest_conn *c, enum tls_failure f, const char *why)
{
    struct ingest *in = c->l->in;
    char peer[NETADDR_TEXT_MAX];
    (*conn_failure_counter(in, f))++;
    log_ratelimited(&c->l->tls_limit[f], in->log_interval_ms, LOG_LEVEL_WARN,
                    "%s: handshake with %s failed: %s: %s", c->l->name,
                    netaddr_format((const struct sockaddr *)&c->peer, peer, sizeof peer), tls_failure_names[f],
                    why);
    conn_close_counted(c, NULL);
}

/* Drives a TLS handshake; once it is done, the connection reads frames. */
static void conn_handshake(struct ingest_conn *c)
{
    struct ingest *in = c->l->in;
    switch (tls_handshake(c->tls)) {
    case TLS_WANT_READ:
        conn_watch(c, EV_READ);
        return;
    case TLS_WANT_WRITE:
        conn_watch(c, EV_READ | EV_WRITE);
        return;
    case TLS_CLOSED:
        conn_tls_failed(c, TLS_FAIL_PROTOCOL, "closed by the peer during the handshake");
        return;
    case TLS_FAILED:
        conn_tls_failed(c, tls_conn_failure(c->tls), tls_conn_error(c->tls));
        return;
    case TLS_OK:
        break;
    }
    c->handshaking = false;
    in->m->tls_handshakes++;
    char subject[TLS_SUBJECT_MAX], cn[TLS_SUBJECT_MAX];
    if (tls_conn_peer(c->tls, subject, sizeof subject, cn, sizeof cn)) {
        c->subject = strdup(subject);
        c->cn = strdup(cn);
    }
    if (log_current_level >= LOG_LEVEL_DEBUG) {
        char peer[NETADDR_TEXT_MAX];
        log_debug("%s: connection from %s: %s, client certificate %s", c->l->name,
                  netaddr_format((const struct sockaddr *)&c->peer, peer, sizeof peer), tls_conn_version(c->tls),
                  c->subject != NULL ? c->subject : "none");
    }
    c->last_active = ev_now(in->loop);
    conn_idle_arm(c, in->idle_timeout);
    conn_read(c);                   /* frames may have come with the handshake's last flight */
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct ingest_conn *c = w->data;
    if (c->handshaking)
        conn_handshake(c);
    else
        conn_read(c);
}

/*
 * Shutdown: reads the bytes the kernel has already accepted on the
 * connection (what FIONREAD reports now, no more), hands out the whole
 * frames among them, counts a partial one, and closes.
 */
static void conn_finish(struct ingest_conn *c)
{
    int queued = 0;
    if (c->handshaking || ioctl(c->fd, FIONREAD, &queued) != 0 || queued < 0)
        queued = 0;
    /* TLS: what it has taken from the socket too; plain text is no more than what carries it */
    size_t left = (size_t)queued + (c->tls != NULL && !c->handshaking ? tls_buffered(c->tls) : 0);
    while (left > 0) {
        size_t room;
        uint8_t *p = framer_space(&c->framer, &room);
        const char *tls_why = NULL;
        ssize_t n = conn_recv(c, p, left < room ? left : room, &tls_why);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;                  /* reset, or room == 0 (cannot happen after NEED_MORE) */
        framer_commit(&c->framer, (size_t)n);
        left -= (size_t)n;
        enum framer_status st = conn_deliver(c, NULL);
        if (st == FRAMER_BAD_MAGIC || st == FRAMER_BAD_LENGTH) {
            conn_close_counted(c, NULL);
            return;
        }
    }
    conn_count_truncated(c, "shutdown");
    conn_close_counted(c, NULL);
}

/*
 * One timer per connection, re-armed lazily: activity only stamps
 * last_active, and the timer, when it fires, either closes the connection or
 * sleeps for what is left (the libev manual's cheapest idle-timeout scheme).
 */
static void conn_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct ingest_conn *c = w->data;
    struct ingest *in = c->l->in;
    ev_tstamp left = c->last_active + (c->handshaking ? in->handshake_timeout : in->idle_timeout) - ev_now(loop);
    if (left > 0) {
        w->repeat = left;
        ev_timer_again(loop, w);
        return;
    }
    if (c->handshaking) {
        conn_tls_failed(c, TLS_FAIL_TIMEOUT, "not done within limits.tls_handshake_timeout");
        return;
    }
    char peer[NETADDR_TEXT_MAX];
    log_debug("%s: connection from %s idle, closed", c->l->name,
              netaddr_format((const struct sockaddr *)&c->peer, peer, sizeof peer));
    conn_count_truncated(c, "idle");
    conn_close_counted(c, &in->m->tcp_idle_closed);
}

static int conn_open(struct ingest_listener *l, int fd, const struct sockaddr_storage *peer, socklen_t plen)
{
    struct ingest *in = l->in;
    struct ingest_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    if (framer_init(&c->framer, in->max_frame) != 0) {
        free(c);
        return -1;
    }
    if (l->tls != NULL) {
        if ((c->tls = tls_conn_new(l->tls, fd, true, NULL)) == NULL) {
            framer_free(&c->framer);
            free(c);
            return -1;
        }
        c->handshaking = true;
    }
    c->l = l;
    c->fd = fd;
    c->peer = *peer;
    c->peerlen = plen;
    c->last_active = ev_now(in->loop);
    ev_io_init(&c->io, conn_read_cb, fd, EV_READ);
    c->io_events = EV_READ;
    c->io.data = c;
    ev_init(&c->idle, conn_idle_cb);
    c->idle.data = c;
    ev_io_start(in->loop, &c->io);
    conn_idle_arm(c, c->handshaking ? in->handshake_timeout : in->idle_timeout);
    list_insert_head(&l->conns, &c->link);
    l->nconns++;
    return 0;
}

static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct ingest_listener *l = w->data;
    if (!l->in->stopped)
        ev_io_start(loop, &l->io);
}

/* Accepts at most max_accepts connections, fewer once the queue is empty. */
static void tcp_accept(struct ingest_listener *l, int max_accepts)
{
    struct ingest *in = l->in;
    char peername[NETADDR_TEXT_MAX];

    for (int k = 0; k < max_accepts; k++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
                continue;           /* that connection is gone; try the next */
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                return;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                in->m->recv_errors++;
                log_ratelimited(&l->error_limit, in->log_interval_ms, LOG_LEVEL_WARN,
                                "%s: accept: %s (pausing)", l->name, strerror(errno));
                ev_io_stop(in->loop, &l->io);
                ev_timer_set(&l->accept_pause, INGEST_ACCEPT_PAUSE_S, 0.);
                ev_timer_start(in->loop, &l->accept_pause);
                return;
            default:
                in->m->recv_errors++;
                log_ratelimited(&l->error_limit, in->log_interval_ms, LOG_LEVEL_WARN,
                                "%s: accept: %s", l->name, strerror(errno));
                return;
            }
        }
        if (!peer_allowed(l, (struct sockaddr *)&peer)) {
            close(fd);
            in->m->tcp_not_allowed++;
            log_tally(&in->not_allowed_conn_tally, in->log_interval_ms, clock_mono_ms(), LOG_LEVEL_WARN,
                      INGEST_NOT_ALLOWED_CONNS, netaddr_format((struct sockaddr *)&peer, peername, sizeof peername));
            continue;
        }
        if (l->nconns >= in->max_connections) {
            close(fd);
            in->m->tcp_rejected++;
            log_ratelimited(&l->reject_limit, in->log_interval_ms, LOG_LEVEL_WARN,
                            "%s: connection from %s refused: tcp_max_connections (%zu) reached",
                            l->name, netaddr_format((struct sockaddr *)&peer, peername, sizeof peername),
                            in->max_connections);
            continue;
        }
        if (conn_open(l, fd, &peer, plen) != 0) {
            close(fd);
            in->m->tcp_rejected++;
            log_ratelimited(&l->reject_limit, in->log_interval_ms, LOG_LEVEL_WARN,
                            "%s: connection from %s refused: out of memory", l->name,
                            netaddr_format((struct sockaddr *)&peer, peername, sizeof peername));
            continue;
        }
        in->m->tcp_accepted++;
        log_debug("%s: connection from %s", l->name,
                  netaddr_format((struct sockaddr *)&peer, peername, sizeof peername));
    }
}

static void tcp_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    tcp_accept(w->data, INGEST_TCP_ACCEPTS_PER_WAKEUP);
}

/* ---- listeners ---- */

static int listener_open(struct ingest *in, struct ingest_listener *l, const struct conf_addr *addr,
                         size_t rcvbuf)
{
    int type = addr->transport == CONF_TCP ? SOCK_STREAM : SOCK_DGRAM;
    l->in = in;
    l->transport = addr->transport;
    struct sockaddr_storage sa;
    socklen_t salen = netaddr_from_conf(addr, &sa);
    l->fd = socket(sa.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0) {
        log_error("listen %s: socket: %s", addr->text, strerror(errno));
        return -1;
    }
    if (socket_common(l->fd, addr, &sa) != 0)
        return -1;
    if (addr->transport == CONF_UDP)
        set_rcvbuf(l->fd, addr, rcvbuf);
    if (bind(l->fd, (const struct sockaddr *)&sa, salen) != 0) {
        log_error("listen %s: bind: %s", addr->text, strerror(errno));
        return -1;
    }
    if (addr->transport == CONF_TCP && listen(l->fd, INGEST_TCP_BACKLOG) != 0) {
        log_error("listen %s: listen: %s", addr->text, strerror(errno));
        return -1;
    }
    l->boundlen = sizeof l->bound;
    if (getsockname(l->fd, (struct sockaddr *)&l->bound, &l->boundlen) != 0) {
        log_error("listen %s: getsockname: %s", addr->text, strerror(errno));
        return -1;
    }
    ready_format(l->name, sizeof l->name, transport_name(addr), (const struct sockaddr *)&l->bound);

    if (addr->transport == CONF_TCP)
        ev_io_init(&l->io, tcp_accept_cb, l->fd, EV_READ);
    else
        ev_io_init(&l->io, udp_read_cb, l->fd, EV_READ);
    l->io.data = l;
    ev_init(&l->accept_pause, accept_pause_cb);
    l->accept_pause.data = l;
    return 0;
}

/* A listener bound to addr (its counters at metrics index mindex), not yet started; NULL after logging. */
static struct ingest_listener *listener_new(struct ingest *in, size_t mindex, const struct conf *conf)
{
    const struct conf_addr *addr = &conf->listen[mindex];
    size_t rcvbuf = conf->udp_rcvbuf;
    struct ingest_listener *l = calloc(1, sizeof *l);
    if (l == NULL) {
        log_error("listen %s: out of memory", addr->text);
        return NULL;
    }
    l->fd = -1;
    l->mindex = mindex;
    listener_set_conf(l, conf, mindex);
    if (listener_open(in, l, addr, rcvbuf) != 0) {
        if (l->fd >= 0)
            close(l->fd);
        free(l);
        return NULL;
    }
    return l;
}

static void listener_start(struct ingest_listener *l)
{
    ev_io_start(l->in->loop, &l->io);
    log_info("listening %s", l->name);
}

/* The limits a reload changes; a new coalescing interval applies from the next busy wakeup. */
static void take_reloadable(struct ingest *in, const struct conf *conf)
{
    in->max_frame = conf->tcp_max_frame;
    in->idle_timeout = clock_ms_to_s(conf->tcp_idle_timeout_ms);
    in->handshake_timeout = clock_ms_to_s(conf->tls_handshake_timeout_ms);
    in->log_interval_ms = conf->log_interval_ms;
    in->udp_coalesce = clock_us_to_s(conf->udp_coalesce_us);
    if (in->coalescing) {
        ev_set_io_collect_interval(in->loop, 0.);
        in->coalescing = false;
    }
}

struct ingest *ingest_new(struct ev_loop *loop, const struct conf *conf, struct metrics *m,
                          ingest_packet_fn on_packet, ingest_batch_end_fn on_batch_end, void *arg)
{
    struct ingest *in = calloc(1, sizeof *in);
    if (in == NULL) {
        log_error("ingest: out of memory");
        return NULL;
    }
    in->loop = loop;
    in->m = m;
    in->on_packet = on_packet;
    in->on_batch_end = on_batch_end;
    in->arg = arg;
    in->max_connections = conf->tcp_max_connections;
    take_reloadable(in, conf);
    in->udp_batch = conf->udp_batch > 0 ? conf->udp_batch : 1;
    if (in->udp_batch > IOV_MAX)
        in->udp_batch = IOV_MAX;    /* recvmmsg() silently takes no more */

    in->listeners = calloc(conf->nlisten > 0 ? conf->nlisten : 1, sizeof *in->listeners);
    if (in->listeners == NULL)
        goto nomem;
    in->nlisteners = conf->nlisten;

    bool any_udp = false;
    for (size_t i = 0; i < conf->nlisten; i++)
        any_udp |= conf->listen[i].transport == CONF_UDP;
    if (any_udp && udp_buffers_alloc(in) != 0)
        goto nomem;

    for (size_t i = 0; i < conf->nlisten; i++)
        if ((in->listeners[i] = listener_new(in, i, conf)) == NULL)
            goto error;
    for (size_t i = 0; i < in->nlisteners; i++)
        listener_start(in->listeners[i]);
    return in;

nomem:
    log_error("ingest: out of memory");
error:
    ingest_free(in);
    return NULL;
}

/*
 * Closes l.  With hand_out, what the kernel already accepted is handed out
 * first (queued datagrams, pending connections, buffered frames), so that
 * senders are refused rather than queued for nobody.
 */
static void listener_close(struct ingest *in, struct ingest_listener *l, bool hand_out)
{
    if (l->fd >= 0 && hand_out) {
        ev_io_stop(in->loop, &l->io);
        if (l->transport == CONF_UDP)
            udp_read_queued(l);
        else
            tcp_accept(l, INGEST_TCP_BACKLOG + 1);     /* the accept queue holds backlog + 1 */
    }
    ev_io_stop(in->loop, &l->io);
    ev_timer_stop(in->loop, &l->accept_pause);
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    struct ingest_conn *c;
    while ((c = list_first_entry(&l->conns, struct ingest_conn, link)) != NULL) {
        if (hand_out)
            conn_finish(c);
        else
            conn_close(c);
    }
}

void ingest_stop(struct ingest *in)
{
    if (in == NULL || in->stopped)
        return;
    in->stopped = true;
    for (size_t i = 0; i < in->nlisteners; i++)
        if (in->listeners[i] != NULL)
            listener_close(in, in->listeners[i], true);
}

void ingest_free(struct ingest *in)
{
    if (in == NULL)
        return;
    uint64_t now = clock_mono_ms();
    for (int i = 1; i < ADMISSION_VERDICT_COUNT; i++)
        log_tally_flush(&in->refused_tally[i], now, LOG_LEVEL_WARN, refused_what[i]);
    log_tally_flush(&in->not_allowed_conn_tally, now, LOG_LEVEL_WARN, INGEST_NOT_ALLOWED_CONNS);
    for (size_t i = 0; i < in->nlisteners; i++) {
        if (in->listeners[i] == NULL)
            continue;
        listener_close(in, in->listeners[i], false);
        free(in->listeners[i]);
    }
    free(in->listeners);
    free(in->udp_bufs);
    free(in->udp_msgs);
    free(in->udp_iov);
    free(in->udp_peers);
    free(in);
}

int ingest_reconfigure(struct ingest *in, const struct conf *old, const struct conf *conf)
{
    struct ingest_listener **next = calloc(conf->nlisten > 0 ? conf->nlisten : 1, sizeof *next);
    bool *kept = calloc(in->nlisteners > 0 ? in->nlisteners : 1, sizeof *kept);
    bool any_udp = false;
    for (size_t i = 0; i < conf->nlisten; i++)
        any_udp |= conf->listen[i].transport == CONF_UDP;
    if (next == NULL || kept == NULL || (any_udp && in->udp_bufs == NULL && udp_buffers_alloc(in) != 0)) {
        free(next);
        free(kept);
        log_error("ingest: out of memory for the reload; listeners unchanged");
        return -1;
    }
    take_reloadable(in, conf);

    int rc = 0;
    for (size_t i = 0; i < conf->nlisten; i++) {
        for (size_t j = 0; j < in->nlisteners && j < old->nlisten; j++) {
            if (!kept[j] && in->listeners[j] != NULL && in->listeners[j]->fd >= 0 &&
                conf_addr_equal(&old->listen[j], &conf->listen[i])) {
                kept[j] = true;
                next[i] = in->listeners[j];
                next[i]->mindex = i;
                listener_set_conf(next[i], conf, i);
                break;
            }
        }
        if (next[i] != NULL)
            continue;
        if ((next[i] = listener_new(in, i, conf)) == NULL) {
            rc = -1;            /* logged; the others go on */
            continue;
        }
        if (!in->stopped)
            listener_start(next[i]);
    }
    struct ingest_listener **prev = in->listeners;
    size_t nprev = in->nlisteners;
    in->listeners = next;
    in->nlisteners = conf->nlisten;
    for (size_t j = 0; j < nprev; j++) {
        if (kept[j] || prev[j] == NULL)
            continue;
        prev[j]->mindex = INGEST_MINDEX_REMOVED;
        log_info("%s: closed (removed by a reload)", prev[j]->name);
        listener_close(in, prev[j], true);
        free(prev[j]);
    }
    free(prev);
    free(kept);
    return rc;
}

const char *ingest_listener_name(const struct ingest *in, size_t i)
{
    return in->listeners[i] != NULL ? in->listeners[i]->name : NULL;
}

int ingest_bound_addr(const struct ingest *in, size_t i, struct sockaddr_storage *out, socklen_t *len)
{
    if (i >= in->nlisteners || in->listeners[i] == NULL || in->listeners[i]->fd < 0)
        return -1;
    *out = in->listeners[i]->bound;
    *len = in->listeners[i]->boundlen;
    return 0;
}
