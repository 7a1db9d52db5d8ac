/*
 * hepdump.c - receive HEP on UDP and TCP listeners and print one JSON line
 * per packet: every decoded field and chunk, plus the SIP start line,
 * Call-ID, CSeq, tags and Via branch.
 *
 * It is the back-end stand-in of the integration tests and benchmarks, so it
 * is built not to lose packets: UDP is read with recvmmsg() batches into a
 * large socket buffer, JSON is formatted by hand into a big output buffer
 * that is written with write(2), and per-packet work is kept small.  TCP
 * input is a HEP3 stream framed by the u16 total length of each packet.
 *
 * With -r it reads the packets of a capture file instead (capture.h) and
 * prints them the same way, with the capture's time and source address.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "conf.h"
#include "hep.h"
#include "netaddr.h"
#include "ready.h"
#include "sip.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define PROG "hepdump"

/* Exit codes (man page, EXIT STATUS). */
#define EXIT_OK             0
#define EXIT_RUNTIME        1   /* bind failure, output write error */
#define EXIT_USAGE          2

/* UDP receive: messages per recvmmsg() call, and calls per wakeup. */
#define UDP_BATCH           64
#define UDP_ROUNDS_PER_WAKE 16
#define UDP_MAX_DGRAM       65536   /* > largest UDP payload (65507) */
#define DEFAULT_RCVBUF      (16u * 1024u * 1024u)

/* TCP: per-connection buffer (>= one whole HEP3 frame), listen backlog. */
#define TCP_CONN_BUF        (256u * 1024u)
#define TCP_BACKLOG         128
#define ACCEPT_PAUSE_SEC    1.0     /* when out of file descriptors */

/* Output: one big buffer, written when full, on a timer and at exit. */
#define OUT_BUF_SIZE        (4u * 1024u * 1024u)
#define OUT_FLUSH_SEC       1.0

/* Text sizes: "[v6addr]:port", and "udp:" before it. */

/* Highest generic chunk type hep.h decodes; others print their value. */
#define HEP_CHUNK_LAST_KNOWN HEP_CHUNK_NODE_NAME

#define NSEC_PER_USEC       1000L

/* -r: room for capture_open()'s reason, the file name included. */
#define PCAP_ERR_TEXT       (PATH_MAX + 256)

enum transport { TRANSPORT_UDP, TRANSPORT_TCP };

static const char *const transport_name[] = { "udp", "tcp" };

struct listener {
    enum transport transport;
    const char *spec;                   /* as given on the command line */
    struct sockaddr_storage addr;       /* parsed from spec */
    socklen_t addr_len;
    int fd;
    char bound[READY_ADDR_MAX];        /* "udp:127.0.0.1:40000" after bind */
    ev_io io;
    ev_timer accept_pause;              /* TCP: retry accept after EMFILE */
    uint32_t kernel_drops;              /* UDP: last SO_RXQ_OVFL value */
};

struct tcp_conn {
    ev_io io;
    int fd;
    char peer[NETADDR_TEXT_MAX];
    size_t peer_len;
    uint8_t *buf;
    size_t fill;
    struct tcp_conn *prev, *next;
};

/* Where JSON goes: a flat buffer in front of a file descriptor. */
struct out {
    char *data;
    size_t len;
    size_t cap;
    int fd;
    const char *name;
    bool failed;
};

/* Command-line settings. */
struct options {
    uint64_t max_packets;               /* 0: no limit */
    double max_seconds;                 /* 0: no limit */
    const char *output;                 /* NULL: stdout */
    const char *ready_file;
    const char *read_path;              /* -r: a capture instead of listeners */
    int rcvbuf;
    bool rcvbuf_set;
    bool raw;
    bool payload;
    bool count_only;
    bool quiet;
    bool unbuffered;
};

struct counters {
    uint64_t packets;
    uint64_t bytes;
    uint64_t errors;
    uint64_t by_version[4];             /* index 1..3 */
    uint64_t by_error[HEP_STATUS_COUNT];
    uint64_t by_transport[2];
    uint64_t tcp_connections;
    uint64_t tcp_stream_errors;         /* connections closed for bad framing */
};

static struct {
    struct ev_loop *loop;
    struct options opt;
    struct counters cnt;
    struct listener *listeners;
    size_t n_listeners;
    struct tcp_conn *conns;
    struct out out;
    bool stopping;
    int exit_code;
    struct timespec started;
    ev_timer stop_timer;
    ev_timer flush_timer;
    ev_prepare flush_prepare;
    ev_signal sigint_watcher;
    ev_signal sigterm_watcher;
} g;

/* recvmmsg() state, shared by all UDP listeners (one thread). */
#define UDP_CMSG_SPACE (CMSG_SPACE(sizeof(struct timespec)) + CMSG_SPACE(sizeof(uint32_t)))
static uint8_t udp_buf[UDP_BATCH][UDP_MAX_DGRAM];
static struct mmsghdr udp_msgs[UDP_BATCH];
static struct iovec udp_iov[UDP_BATCH];
static struct sockaddr_storage udp_peer[UDP_BATCH];
static union {
    struct cmsghdr align;
    uint8_t bytes[UDP_CMSG_SPACE];
} udp_cmsg[UDP_BATCH];

/* ---------------------------------------------------------------- messages */

static void msg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "hepdump: message" on stderr. */
static void msg_vwrite(const char *fmt, va_list ap)
{
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

/* Always printed: something went wrong. */
static void msg_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg_vwrite(fmt, ap);
    va_end(ap);
}

/* Informational; silenced by -q. */
static void msg_info(const char *fmt, ...)
{
    if (g.opt.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    msg_vwrite(fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ output */

static void stop_loop(int exit_code);

/* Writes everything buffered; a failed write stops the program. */
static void out_flush(void)
{
    struct out *o = &g.out;
    size_t off = 0;
    while (off < o->len && !o->failed) {
        ssize_t n = write(o->fd, o->data + off, o->len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            msg_error("cannot write %s: %s", o->name, strerror(errno));
            o->failed = true;
            stop_loop(EXIT_RUNTIME);
            break;
        }
        off += (size_t)n;
    }
    o->len = 0;
}

/* Makes room for n more bytes (n is always far below the buffer size). */
static inline void out_reserve(size_t n)
{
    if (g.out.len + n > g.out.cap)
        out_flush();
}

static inline void out_bytes(const void *p, size_t n)
{
    out_reserve(n);
    memcpy(g.out.data + g.out.len, p, n);
    g.out.len += n;
}

/* Only for string literals: "" s fails to compile otherwise. */
#define OUT_LIT(s) out_bytes("" s, sizeof(s) - 1)
/* A ",\"key\":" literal and its value. */
#define OUT_U64(key, n) do { OUT_LIT(key); out_u64(n); } while (0)
#define OUT_JSON_STR(key, p, len) do { OUT_LIT(key); out_json_str((p), (len)); } while (0)

static inline void out_char(char c)
{
    out_reserve(1);
    g.out.data[g.out.len++] = c;
}

static void out_u64(uint64_t v)
{
    char tmp[20];               /* 2^64 - 1 has 20 digits */
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    out_bytes(tmp + i, sizeof(tmp) - i);
}

/* Seconds with microseconds: 1712345678.123456 */
static void out_time(const struct timespec *t)
{
    char frac[7] = { '.' };
    long usec = t->tv_nsec / NSEC_PER_USEC;
    for (int i = 6; i >= 1; i--) {
        frac[i] = (char)('0' + usec % 10);
        usec /= 10;
    }
    out_u64((uint64_t)t->tv_sec);
    out_bytes(frac, sizeof(frac));
}

static const char hex_digit[] = "0123456789abcdef";

/*
 * A JSON string from arbitrary bytes.  Control characters, DEL and every
 * byte >= 0x80 become \u00XX, so the output is valid JSON (and ASCII) even
 * for non-UTF-8 input; a reader gets the original bytes back as code points
 * 0..255.
 */
static void out_json_str(const void *p, size_t n)
{
    const uint8_t *s = p;
    out_reserve(n * 6 + 2);     /* worst case: every byte as \u00XX */
    char *d = g.out.data + g.out.len;
    *d++ = '"';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *d++ = (char)c;
            continue;
        }
        *d++ = '\\';
        switch (c) {
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '\n': *d++ = 'n'; break;
        case '\r': *d++ = 'r'; break;
        case '\t': *d++ = 't'; break;
        default:
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = hex_digit[c >> 4];
            *d++ = hex_digit[c & 0xf];
        }
    }
    *d++ = '"';
    g.out.len = (size_t)(d - g.out.data);
}

static void out_json_cstr(const char *s)
{
    out_json_str(s, strlen(s));
}

/* Bytes as a quoted lowercase hex string. */
static void out_hex(const uint8_t *p, size_t n)
{
    out_reserve(n * 2 + 2);
    char *d = g.out.data + g.out.len;
    *d++ = '"';
    for (size_t i = 0; i < n; i++) {
        *d++ = hex_digit[p[i] >> 4];
        *d++ = hex_digit[p[i] & 0xf];
    }
    *d++ = '"';
    g.out.len = (size_t)(d - g.out.data);
}

/*
 * A 4- or 16-byte address from a HEP view, quoted.  IPv4 is formatted here:
 * glibc's inet_ntop() goes through sprintf(), a visible cost per packet.
 */
static void out_ip(const uint8_t *addr, size_t len)
{
    char text[INET6_ADDRSTRLEN + 2];
    size_t n = 0;
    text[n++] = '"';
    if (len == sizeof(struct in_addr)) {
        for (size_t i = 0; i < len; i++) {
            uint8_t b = addr[i];
            if (i != 0)
                text[n++] = '.';
            if (b >= 100)
                text[n++] = (char)('0' + b / 100);
            if (b >= 10)
                text[n++] = (char)('0' + b / 10 % 10);
            text[n++] = (char)('0' + b % 10);
        }
    } else if (inet_ntop(AF_INET6, addr, text + 1, INET6_ADDRSTRLEN) != NULL) {
        n += strlen(text + 1);
    }
    text[n++] = '"';
    out_bytes(text, n);
}

/* ------------------------------------------------------------ per packet */

/* The fields every line starts with: sequence, time, peer, transport, len. */
static void out_packet_head(size_t len, const char *peer, size_t peer_len,
                            enum transport tr, const struct timespec *t)
{
    OUT_LIT("{\"n\":");
    out_u64(g.cnt.packets);
    OUT_LIT(",\"t\":");
    out_time(t);
    OUT_LIT(",\"peer\":\"");
    out_bytes(peer, peer_len);
    OUT_LIT("\",\"transport\":\"");
    out_bytes(transport_name[tr], strlen(transport_name[tr]));
    OUT_LIT("\",\"len\":");
    out_u64(len);
}

static bool chunk_is_known(const struct hep_chunk *c)
{
    return c->vendor == 0 && c->type >= HEP_CHUNK_FAMILY && c->type <= HEP_CHUNK_LAST_KNOWN;
}

static void out_chunks(const struct hep_view *v)
{
    struct hep_chunk_iter it;
    struct hep_chunk c;
    bool first = true;
    OUT_LIT(",\"chunks\":[");
    hep_chunk_iter_init(&it, v);
    while (hep_chunk_next(&it, &c)) {
        if (!first)
            out_char(',');
        first = false;
        OUT_LIT("{\"vendor\":");
        out_u64(c.vendor);
        OUT_LIT(",\"type\":");
        out_u64(c.type);
        OUT_LIT(",\"len\":");
        out_u64(c.value.len);
        if (!chunk_is_known(&c)) {
            OUT_LIT(",\"value\":");
            out_hex(c.value.data, c.value.len);
        }
        out_char('}');
    }
    out_char(']');
}

/* The SIP start line: up to the first CR or LF. */
static size_t first_line_len(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n')
            return i;
    return n;
}

static void out_sip_str(const char *key, size_t key_len, const struct sip_str *s)
{
    out_bytes(key, key_len);
    out_json_str(s->ptr, s->len);
}

#define OUT_SIP_STR(key, s) out_sip_str((key), sizeof(key) - 1, (s))

static void out_sip(const struct hep_view *v)
{
    struct sip_msg m;
    int rc = sip_scan(v->payload.data, v->payload.len, &m);
    if (rc != SIP_OK) {
        OUT_LIT(",\"sip_error\":");
        out_json_cstr(sip_strerror(rc));
        return;
    }
    OUT_LIT(",\"sip\":{\"first_line\":");
    out_json_str(v->payload.data, first_line_len(v->payload.data, v->payload.len));
    if (sip_is_request(&m))
        OUT_SIP_STR(",\"method\":", &m.method_name);
    if (sip_is_reply(&m)) {
        OUT_LIT(",\"status\":");
        out_u64(m.status);
    }
    OUT_SIP_STR(",\"call_id\":", &m.call_id);
    OUT_LIT(",\"cseq\":");
    out_u64(m.cseq);
    OUT_SIP_STR(",\"cseq_method\":", &m.cseq_method_name);
    if (m.flags & SIP_F_FROM_TAG)
        OUT_SIP_STR(",\"from_tag\":", &m.from_tag);
    if (m.flags & SIP_F_TO_TAG)
        OUT_SIP_STR(",\"to_tag\":", &m.to_tag);
    if (m.flags & SIP_F_VIA_BRANCH)
        OUT_SIP_STR(",\"via_branch\":", &m.via_branch);
    out_char('}');
}

static void out_packet(const struct hep_view *v)
{
    OUT_U64(",\"version\":", v->version);
    if (v->present & HEP_HAS_FAMILY)
        OUT_U64(",\"family\":", v->family);
    if (v->present & HEP_HAS_IP_PROTO)
        OUT_U64(",\"ip_proto\":", v->ip_proto);
    if ((v->present & HEP_HAS_SRC_IP) && v->src_ip != NULL) {
        OUT_LIT(",\"src\":");
        out_ip(v->src_ip, v->addr_len);
    }
    if (v->present & HEP_HAS_SRC_PORT)
        OUT_U64(",\"sport\":", v->src_port);
    if ((v->present & HEP_HAS_DST_IP) && v->dst_ip != NULL) {
        OUT_LIT(",\"dst\":");
        out_ip(v->dst_ip, v->addr_len);
    }
    if (v->present & HEP_HAS_DST_PORT)
        OUT_U64(",\"dport\":", v->dst_port);
    if (v->present & HEP_HAS_TS) {
        OUT_U64(",\"ts_sec\":", v->ts_sec);
        OUT_U64(",\"ts_usec\":", v->ts_usec);
    }
    if (v->present & HEP_HAS_PROTO_TYPE)
        OUT_U64(",\"proto_type\":", v->proto_type);
    if (v->present & HEP_HAS_CAPTURE_ID) {
        OUT_U64(",\"capture_id\":", v->capture_id);
        OUT_U64(",\"capture_id_len\":", v->capture_id_len);
    }
    if (v->present & HEP_HAS_AUTH_KEY)
        OUT_JSON_STR(",\"auth_key\":", v->auth_key.data, v->auth_key.len);
    if (v->present & HEP_HAS_CORRELATION_ID)
        OUT_JSON_STR(",\"correlation_id\":", v->correlation_id.data, v->correlation_id.len);
    if (v->present & HEP_HAS_NODE_NAME)
        OUT_JSON_STR(",\"node_name\":", v->node_name.data, v->node_name.len);
    if (v->present & HEP_HAS_KEEPALIVE)
        OUT_U64(",\"keepalive\":", v->keepalive);
    if (v->present & HEP_HAS_VLAN)
        OUT_U64(",\"vlan\":", v->vlan);
    if (v->compressed)
        OUT_LIT(",\"compressed\":true");
    else
        OUT_LIT(",\"compressed\":false");
    if (v->present & HEP_HAS_PAYLOAD)
        OUT_U64(",\"payload_len\":", v->payload.len);
    if (v->version == 3)
        out_chunks(v);
    if (g.opt.payload && (v->present & HEP_HAS_PAYLOAD))
        OUT_JSON_STR(",\"payload\":", v->payload.data, v->payload.len);
    /* Compressed payloads are not inflated, so not scanned. */
    if (v->proto_type == HEP_PROTO_SIP && (v->present & HEP_HAS_PAYLOAD) && !v->compressed)
        out_sip(v);
}

/*
 * Counts one received packet and prints its line.  Every packet, valid or
 * not, takes a sequence number and counts towards -n.
 */
static void handle_packet(const uint8_t *buf, size_t len, const char *peer, size_t peer_len,
                          enum transport tr, const struct timespec *t)
{
    struct hep_view v;
    int rc = hep_decode(buf, len, &v);

    g.cnt.packets++;
    g.cnt.bytes += len;
    g.cnt.by_transport[tr]++;
    if (rc != HEP_OK) {
        g.cnt.errors++;
        if (rc > HEP_OK && rc < HEP_STATUS_COUNT)
            g.cnt.by_error[rc]++;
    } else if (v.version >= 1 && v.version <= 3) {
        g.cnt.by_version[v.version]++;
    }

    if (!g.opt.count_only) {
        out_packet_head(len, peer, peer_len, tr, t);
        if (rc == HEP_OK) {
            out_packet(&v);
        } else {
            OUT_LIT(",\"error\":");
            out_json_cstr(hep_status_name(rc));
            OUT_LIT(",\"message\":");
            out_json_cstr(hep_strerror(rc));
        }
        if (g.opt.raw) {
            OUT_LIT(",\"raw\":");
            out_hex(buf, len);
        }
        OUT_LIT("}\n");
    }

    if (g.opt.max_packets != 0 && g.cnt.packets >= g.opt.max_packets)
        stop_loop(EXIT_OK);
}

/* -------------------------------------------------------------- addresses */

/*
 * Parses "udp:HOST:PORT" / "tcp:HOST:PORT", HOST being an IPv4 address, a
 * bracketed IPv6 address or a name.  The split and the port are the
 * configuration's grammar (conf_split_host_port); the host is resolved
 * here, since it may be a name.  Returns NULL or what is wrong.
 */
static const char *parse_listen(const char *spec, struct listener *l)
{
    char host[256], port_text[16];  /* port: an unsigned in decimal */
    struct conf_host_port hp;

    memset(l, 0, sizeof(*l));
    l->spec = spec;
    l->fd = -1;
    if (strncmp(spec, "udp:", 4) == 0)
        l->transport = TRANSPORT_UDP;
    else if (strncmp(spec, "tcp:", 4) == 0)
        l->transport = TRANSPORT_TCP;
    else
        return "must start with udp: or tcp:";

    const char *why = conf_split_host_port(spec + 4, &hp);
    if (why != NULL)
        return why;
    if (hp.hlen == 0)
        return "has an empty host";
    if (hp.hlen >= sizeof(host))
        return "has a host name that is too long";
    memcpy(host, hp.host, hp.hlen);
    host[hp.hlen] = '\0';
    snprintf(port_text, sizeof(port_text), "%u", hp.port);

    struct addrinfo hints = { 0 }, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = l->transport == TRANSPORT_UDP ? SOCK_DGRAM : SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host, port_text, &hints, &res) != 0 || res == NULL)
        return "has a host that does not resolve";
    memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
    l->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return NULL;
}

/* ------------------------------------------------------------------- stop */

static void stop_loop(int exit_code)
{
    if (exit_code > g.exit_code)
        g.exit_code = exit_code;
    if (!g.stopping) {
        g.stopping = true;
        if (g.loop != NULL)             /* -r runs without one */
            ev_break(g.loop, EVBREAK_ALL);
    }
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    msg_info("caught signal %d, stopping", w->signum);
    stop_loop(EXIT_OK);
}

static void stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    stop_loop(EXIT_OK);
}

static void flush_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    out_flush();
}

/* -u: write out whatever was formatted before the loop waits again. */
static void flush_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    if (g.out.len != 0)
        out_flush();
}

/* -------------------------------------------------------------------- UDP */

static void udp_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct listener *l = w->data;
    (void)loop;
    (void)revents;

    for (int round = 0; round < UDP_ROUNDS_PER_WAKE && !g.stopping; round++) {
        for (int i = 0; i < UDP_BATCH; i++) {
            struct msghdr *h = &udp_msgs[i].msg_hdr;
            udp_iov[i].iov_base = udp_buf[i];
            udp_iov[i].iov_len = sizeof(udp_buf[i]);
            h->msg_name = &udp_peer[i];
            h->msg_namelen = sizeof(udp_peer[i]);
            h->msg_iov = &udp_iov[i];
            h->msg_iovlen = 1;
            h->msg_control = udp_cmsg[i].bytes;
            h->msg_controllen = sizeof(udp_cmsg[i].bytes);
            h->msg_flags = 0;
        }
        int n = recvmmsg(l->fd, udp_msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                msg_error("%s: recvmmsg: %s", l->bound, strerror(errno));
            return;
        }

        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);

        /* Consecutive datagrams usually share a sender: format it once. */
        char peer[NETADDR_TEXT_MAX];
        size_t peer_len = 0;
        struct sockaddr_storage last_peer;
        socklen_t last_len = 0;

        for (int i = 0; i < n && !g.stopping; i++) {
            struct msghdr *h = &udp_msgs[i].msg_hdr;
            struct timespec t = now;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
                if (c->cmsg_level != SOL_SOCKET)
                    continue;
                if (c->cmsg_type == SCM_TIMESTAMPNS)
                    memcpy(&t, CMSG_DATA(c), sizeof(t));
                else if (c->cmsg_type == SO_RXQ_OVFL)
                    memcpy(&l->kernel_drops, CMSG_DATA(c), sizeof(l->kernel_drops));
            }
            if (h->msg_namelen != last_len || memcmp(&last_peer, h->msg_name, h->msg_namelen) != 0) {
                last_len = h->msg_namelen;
                memcpy(&last_peer, h->msg_name, last_len);
                peer_len = strlen(netaddr_format((const struct sockaddr *)&udp_peer[i], peer, sizeof(peer)));
            }
            handle_packet(udp_buf[i], udp_msgs[i].msg_len, peer, peer_len, TRANSPORT_UDP, &t);
        }
        if (n < UDP_BATCH)
            return;
    }
}

/* Asks for a receive buffer of `bytes`: past rmem_max when privileged. */
static void udp_set_rcvbuf(struct listener *l, int bytes)
{
    int got = 0;
    socklen_t got_len = sizeof(got);
    if (setsockopt(l->fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0)
        setsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
    /* The kernel reports twice the usable size it granted. */
    if (getsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &got, &got_len) == 0 && got / 2 < bytes)
        msg_info("%s: receive buffer is %d bytes, asked %d (raise net.core.rmem_max)",
                 l->bound, got / 2, bytes);
}

/* ------------------------------------------------------------------- TCP */

static void tcp_conn_close(struct tcp_conn *c, const char *why)
{
    if (why != NULL)
        msg_info("tcp %s: closed: %s", c->peer, why);
    ev_io_stop(g.loop, &c->io);
    close(c->fd);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        g.conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c->buf);
    free(c);
}

/*
 * Cuts the buffered stream into HEP3 frames by their total length.  Returns
 * false after closing the connection on bad framing.
 */
static bool tcp_consume_frames(struct tcp_conn *c, const struct timespec *t)
{
    size_t off = 0;
    while (!g.stopping && c->fill - off >= HEP3_HDR_LEN) {
        const uint8_t *p = c->buf + off;
        if (memcmp(p, HEP3_MAGIC, sizeof(HEP3_MAGIC) - 1) != 0) {
            g.cnt.tcp_stream_errors++;
            msg_error("tcp %s: not a HEP3 frame (bad magic), closing", c->peer);
            tcp_conn_close(c, NULL);
            return false;
        }
        size_t frame_len = ((size_t)p[4] << 8) | p[5];
        if (frame_len < HEP3_HDR_LEN) {
            g.cnt.tcp_stream_errors++;
            msg_error("tcp %s: HEP3 length %zu < %u, closing", c->peer, frame_len, HEP3_HDR_LEN);
            tcp_conn_close(c, NULL);
            return false;
        }
        if (c->fill - off < frame_len)
            break;
        handle_packet(p, frame_len, c->peer, c->peer_len, TRANSPORT_TCP, t);
        off += frame_len;
    }
    if (off != 0) {
        memmove(c->buf, c->buf + off, c->fill - off);
        c->fill -= off;
    }
    return true;
}

static void tcp_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tcp_conn *c = w->data;
    (void)loop;
    (void)revents;

    if (g.stopping)
        return;
    ssize_t n = read(c->fd, c->buf + c->fill, TCP_CONN_BUF - c->fill);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        msg_error("tcp %s: read: %s", c->peer, strerror(errno));
        tcp_conn_close(c, NULL);
        return;
    }
    if (n == 0) {
        if (c->fill != 0) {
            g.cnt.tcp_stream_errors++;
            msg_error("tcp %s: closed by peer inside a frame (%zu bytes pending)", c->peer, c->fill);
            tcp_conn_close(c, NULL);
        } else {
            tcp_conn_close(c, "by peer");
        }
        return;
    }
    c->fill += (size_t)n;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    tcp_consume_frames(c, &now);
}

static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct listener *l = w->data;
    (void)revents;
    ev_io_start(loop, &l->io);
}

static void tcp_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct listener *l = w->data;
    (void)revents;

    for (;;) {
        struct sockaddr_storage ss;
        socklen_t ss_len = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &ss_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            msg_error("%s: accept: %s", l->bound, strerror(errno));
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The backlog stays readable: back off instead of spinning. */
                ev_io_stop(loop, &l->io);
                ev_timer_set(&l->accept_pause, ACCEPT_PAUSE_SEC, 0.0);
                ev_timer_start(loop, &l->accept_pause);
            }
            return;
        }
        struct tcp_conn *c = calloc(1, sizeof(*c));
        uint8_t *buf = malloc(TCP_CONN_BUF);
        if (c == NULL || buf == NULL) {
            msg_error("%s: out of memory for a connection", l->bound);
            free(c);
            free(buf);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->buf = buf;
        c->peer_len = strlen(netaddr_format((const struct sockaddr *)&ss, c->peer, sizeof(c->peer)));
        c->next = g.conns;
        if (g.conns != NULL)
            g.conns->prev = c;
        g.conns = c;
        g.cnt.tcp_connections++;
        ev_io_init(&c->io, tcp_read_cb, fd, EV_READ);
        c->io.data = c;
        ev_io_start(loop, &c->io);
        msg_info("tcp %s: connected to %s", c->peer, l->bound);
    }
}

/* -------------------------------------------------------------- listeners */

/* Creates, binds and starts one listener; on failure says why and returns false. */
static bool listener_open(struct listener *l)
{
    const char *step = "socket";
    int one = 1;
    int type = l->transport == TRANSPORT_UDP ? SOCK_DGRAM : SOCK_STREAM;

    l->fd = socket(l->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        goto error;
    if (l->addr.ss_family == AF_INET6) {
        /* [::]:P and 0.0.0.0:P may then be listened on side by side. */
        step = "setsockopt(IPV6_V6ONLY)";
        if (setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
            goto error;
    }
    if (l->transport == TRANSPORT_TCP) {
        step = "setsockopt(SO_REUSEADDR)";
        if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
            goto error;
    }
    step = "bind";
    if (bind(l->fd, (struct sockaddr *)&l->addr, l->addr_len) != 0)
        goto error;
    if (l->transport == TRANSPORT_TCP) {
        step = "listen";
        if (listen(l->fd, TCP_BACKLOG) != 0)
            goto error;
    }

    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    step = "getsockname";
    if (getsockname(l->fd, (struct sockaddr *)&bound, &bound_len) != 0)
        goto error;
    if (ready_format(l->bound, sizeof(l->bound), transport_name[l->transport], (const struct sockaddr *)&bound) != 0)
        goto error;

    if (l->transport == TRANSPORT_UDP) {
        udp_set_rcvbuf(l, g.opt.rcvbuf);
        /* Kernel receive time and the socket's drop counter with each datagram. */
        setsockopt(l->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
        setsockopt(l->fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
        ev_io_init(&l->io, udp_read_cb, l->fd, EV_READ);
    } else {
        ev_io_init(&l->io, tcp_accept_cb, l->fd, EV_READ);
        ev_init(&l->accept_pause, accept_pause_cb);
        l->accept_pause.data = l;
    }
    l->io.data = l;
    ev_io_start(g.loop, &l->io);
    return true;

error:
    msg_error("cannot listen on %s: %s: %s", l->spec, step, strerror(errno));
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    return false;
}

/* Writes the "listening ..." lines to FILE (ready.h: whole or not at all). */
static bool write_ready_file(const char *path)
{
    const char **lines = calloc(g.n_listeners, sizeof *lines);
    if (lines == NULL) {
        msg_error("cannot write %s: out of memory", path);
        return false;
    }
    for (size_t i = 0; i < g.n_listeners; i++)
        lines[i] = g.listeners[i].bound;
    bool ok = ready_write(path, lines, g.n_listeners) == 0;
    if (!ok)
        msg_error("cannot write %s: %s", path, strerror(errno));
    free(lines);
    return ok;
}

/* ---------------------------------------------------------------- summary */

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* {"packets":..,"bytes":..,"errors":..,"by_version":{..},...} into buf. */
static void format_summary(char *buf, size_t cap)
{
    const struct counters *c = &g.cnt;
    uint64_t drops = 0;
    for (size_t i = 0; i < g.n_listeners; i++)
        drops += g.listeners[i].kernel_drops;

    size_t n = (size_t)snprintf(buf, cap,
        "{\"packets\":%llu,\"bytes\":%llu,\"errors\":%llu,"
        "\"by_version\":{\"1\":%llu,\"2\":%llu,\"3\":%llu},\"by_error\":{",
        (unsigned long long)c->packets, (unsigned long long)c->bytes,
        (unsigned long long)c->errors, (unsigned long long)c->by_version[1],
        (unsigned long long)c->by_version[2], (unsigned long long)c->by_version[3]);
    bool first = true;
    for (int s = HEP_OK + 1; s < HEP_STATUS_COUNT && n < cap; s++) {
        if (c->by_error[s] == 0)
            continue;
        n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\":%llu", first ? "" : ",",
                              hep_status_name(s), (unsigned long long)c->by_error[s]);
        first = false;
    }
    if (n < cap)
        snprintf(buf + n, cap - n,
                 "},\"udp\":%llu,\"tcp\":%llu,\"tcp_connections\":%llu,"
                 "\"tcp_stream_errors\":%llu,\"kernel_drops\":%llu,\"seconds\":%.3f}\n",
                 (unsigned long long)c->by_transport[TRANSPORT_UDP],
                 (unsigned long long)c->by_transport[TRANSPORT_TCP],
                 (unsigned long long)c->tcp_connections,
                 (unsigned long long)c->tcp_stream_errors,
                 (unsigned long long)drops, seconds_since(&g.started));
}

/* ---------------------------------------------------------------- options */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " -l ADDR [-l ADDR]... [options]\n"
        "       " PROG " -r FILE [options]\n"
        "Receive HEP, or read it from a capture, and print one JSON line per packet.\n"
        "\n"
        "  -l, --listen ADDR      udp:HOST:PORT or tcp:HOST:PORT (IPv6: udp:[::1]:9060);\n"
        "                         port 0 picks a free port; repeatable\n"
        "  -r, --read FILE        read a pcap, pcapng or hepdump --raw JSON lines file\n"
        "                         instead of listening (no -l, -s, -u, --ready-file, --rcvbuf)\n"
        "  -n, --packets N        stop after N packets (valid or not)\n"
        "  -s, --seconds S        stop after S seconds (fractions allowed)\n"
        "  -o, --output FILE      write JSON to FILE instead of stdout\n"
        "  -u, --unbuffered       write output each time the receive queue is drained\n"
        "      --raw              add \"raw\": the whole packet in hex\n"
        "      --payload          add \"payload\": the payload as a JSON string\n"
        "      --count            print no packets, only a summary line at the end\n"
        "      --ready-file FILE  write the \"listening\" lines to FILE once all are bound\n"
        "      --rcvbuf BYTES     UDP receive buffer (default %u; K/M suffix allowed)\n"
        "  -q, --quiet            no informational messages on stderr\n"
        "  -h, --help             this help\n"
        "  -V, --version          print the version\n",
        DEFAULT_RCVBUF);
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry '" PROG " -h' for help.\n", stderr);
    va_end(ap);
    exit(EXIT_USAGE);
}

enum long_only_option {
    OPT_RAW = 256,
    OPT_PAYLOAD,
    OPT_COUNT,
    OPT_READY_FILE,
    OPT_RCVBUF,
};

static const struct option long_options[] = {
    { "listen", required_argument, NULL, 'l' },
    { "read", required_argument, NULL, 'r' },
    { "packets", required_argument, NULL, 'n' },
    { "seconds", required_argument, NULL, 's' },
    { "output", required_argument, NULL, 'o' },
    { "unbuffered", no_argument, NULL, 'u' },
    { "raw", no_argument, NULL, OPT_RAW },
    { "payload", no_argument, NULL, OPT_PAYLOAD },
    { "count", no_argument, NULL, OPT_COUNT },
    { "ready-file", required_argument, NULL, OPT_READY_FILE },
    { "rcvbuf", required_argument, NULL, OPT_RCVBUF },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

static uint64_t parse_count(const char *text)
{
    uint64_t v;
    if (conf_parse_number(text, 1, UINT64_MAX, &v) != CONF_NUMBER_OK)
        usage_error("-n: expected a positive integer, got \"%s\"", text);
    return v;
}

static double parse_seconds(const char *text)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !isfinite(v) || v <= 0)
        usage_error("-s: expected a positive number of seconds, got \"%s\"", text);
    return v;
}

static int parse_bytes(const char *text)
{
    uint64_t v;
    if (conf_parse_size(text, 1, INT_MAX, &v) != CONF_NUMBER_OK)
        usage_error("--rcvbuf: expected a size in bytes (K/M suffix allowed, at most %d), got \"%s\"",
                    INT_MAX, text);
    return (int)v;
}

static void parse_options(int argc, char **argv)
{
    g.opt.rcvbuf = DEFAULT_RCVBUF;
    g.listeners = calloc((size_t)argc, sizeof(*g.listeners));
    if (g.listeners == NULL) {
        msg_error("out of memory");
        exit(EXIT_RUNTIME);
    }

    int ch;
    while ((ch = getopt_long(argc, argv, "l:r:n:s:o:uqhV", long_options, NULL)) != -1) {
        switch (ch) {
        case 'l': {
            const char *why = parse_listen(optarg, &g.listeners[g.n_listeners]);
            if (why != NULL)
                usage_error("-l \"%s\": %s", optarg, why);
            g.n_listeners++;
            break;
        }
        case 'r': g.opt.read_path = optarg; break;
        case 'n': g.opt.max_packets = parse_count(optarg); break;
        case 's': g.opt.max_seconds = parse_seconds(optarg); break;
        case 'o': g.opt.output = optarg; break;
        case 'u': g.opt.unbuffered = true; break;
        case OPT_RAW: g.opt.raw = true; break;
        case OPT_PAYLOAD: g.opt.payload = true; break;
        case OPT_COUNT: g.opt.count_only = true; break;
        case OPT_READY_FILE: g.opt.ready_file = optarg; break;
        case OPT_RCVBUF:
            g.opt.rcvbuf = parse_bytes(optarg);
            g.opt.rcvbuf_set = true;
            break;
        case 'q': g.opt.quiet = true; break;
        case 'h': usage(stdout); exit(EXIT_OK);
        case 'V': printf(PROG " (heprouter) %s\n", PACKAGE_VERSION); exit(EXIT_OK);
        default: usage_error("unknown or incomplete option");
        }
    }
    if (optind < argc)
        usage_error("unexpected argument \"%s\"", argv[optind]);
    if (g.opt.read_path != NULL) {
        /* a file is read to its end as fast as it goes: nothing to listen, wait or hand over */
        if (g.n_listeners != 0 || g.opt.max_seconds > 0 || g.opt.unbuffered ||
            g.opt.ready_file != NULL || g.opt.rcvbuf_set)
            usage_error("-r does not go with -l, -s, -u, --ready-file or --rcvbuf");
    } else if (g.n_listeners == 0) {
        usage_error("at least one -l ADDR (or -r FILE) is required");
    }
}

static bool open_output(void)
{
    struct out *o = &g.out;
    o->cap = OUT_BUF_SIZE;
    o->data = malloc(o->cap);
    if (o->data == NULL) {
        msg_error("out of memory");
        return false;
    }
    if (g.opt.output == NULL || strcmp(g.opt.output, "-") == 0) {
        o->fd = STDOUT_FILENO;
        o->name = "stdout";
        /* Someone is watching: show packets as they come. */
        if (isatty(STDOUT_FILENO))
            g.opt.unbuffered = true;
        return true;
    }
    o->name = g.opt.output;
    o->fd = open(g.opt.output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o->fd < 0) {
        msg_error("cannot open %s: %s", g.opt.output, strerror(errno));
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------- end */

/* Prints the summary, flushes and frees; the exit status. */
static int finish(void)
{
    char summary[1024];
    format_summary(summary, sizeof(summary));
    if (g.opt.count_only)
        out_bytes(summary, strlen(summary));
    out_flush();
    if (!g.opt.quiet)
        fputs(summary, stderr);

    while (g.conns != NULL)
        tcp_conn_close(g.conns, NULL);
    for (size_t i = 0; i < g.n_listeners; i++)
        close(g.listeners[i].fd);
    if (g.out.fd != STDOUT_FILENO && close(g.out.fd) != 0) {
        msg_error("cannot write %s: %s", g.out.name, strerror(errno));
        g.exit_code = EXIT_RUNTIME;
    }
    free(g.out.data);
    free(g.listeners);
    if (g.loop != NULL)
        ev_loop_destroy(g.loop);
    return g.exit_code;
}

/* ------------------------------------------------------------------ -r */

/* "hepdump: FILE: N records, M packets, skipped: reason=K ..." on stderr. */
static void report_capture(const struct capture *c)
{
    const struct capture_stats *st = capture_stats(c);
    char text[512];
    size_t n = (size_t)snprintf(text, sizeof(text), "%llu records, %llu packets, skipped:",
                                (unsigned long long)st->records, (unsigned long long)st->packets);
    for (int why = 0; why < CAPTURE_SKIP_COUNT && n < sizeof(text); why++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, " %s=%llu", capture_skip_name(why),
                              (unsigned long long)st->skipped[why]);
    msg_info("%s: %s", g.opt.read_path, text);
}

/* Every packet of the capture through handle_packet(), as if received. */
static int read_capture(void)
{
    char err[PCAP_ERR_TEXT];
    struct capture *c = capture_open(g.opt.read_path, err, sizeof(err));
    if (c == NULL) {
        msg_error("cannot read %s", err);
        return EXIT_RUNTIME;
    }
    if (!open_output()) {
        capture_close(c);
        return EXIT_RUNTIME;
    }
    clock_gettime(CLOCK_MONOTONIC, &g.started);
    struct capture_packet p;
    int rc = 0;
    while (!g.stopping && (rc = capture_next(c, &p)) == 1) {
        char peer[NETADDR_TEXT_MAX];
        size_t peer_len = strlen(netaddr_format((const struct sockaddr *)&p.src, peer, sizeof(peer)));
        handle_packet(p.data, p.len, peer, peer_len,
                      p.transport == CAPTURE_TCP ? TRANSPORT_TCP : TRANSPORT_UDP, &p.ts);
    }
    if (rc < 0) {
        msg_error("%s: %s", g.opt.read_path, capture_error(c));
        g.exit_code = EXIT_RUNTIME;
    }
    report_capture(c);
    capture_close(c);
    return finish();
}

/* ------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (g.opt.read_path != NULL)
        return read_capture();

    g.loop = ev_default_loop(EVFLAG_AUTO);
    if (g.loop == NULL) {
        msg_error("cannot start the event loop");
        return EXIT_RUNTIME;
    }
    if (!open_output())
        return EXIT_RUNTIME;

    for (size_t i = 0; i < g.n_listeners; i++)
        if (!listener_open(&g.listeners[i]))
            return EXIT_RUNTIME;
    if (!g.opt.quiet)
        for (size_t i = 0; i < g.n_listeners; i++)
            fprintf(stderr, "listening %s\n", g.listeners[i].bound);
    if (g.opt.ready_file != NULL && !write_ready_file(g.opt.ready_file))
        return EXIT_RUNTIME;

    clock_gettime(CLOCK_MONOTONIC, &g.started);
    ev_now_update(g.loop);
    ev_signal_init(&g.sigint_watcher, signal_cb, SIGINT);
    ev_signal_start(g.loop, &g.sigint_watcher);
    ev_signal_init(&g.sigterm_watcher, signal_cb, SIGTERM);
    ev_signal_start(g.loop, &g.sigterm_watcher);
    if (g.opt.max_seconds > 0) {
        ev_timer_init(&g.stop_timer, stop_timer_cb, g.opt.max_seconds, 0.0);
        ev_timer_start(g.loop, &g.stop_timer);
    }
    if (g.opt.unbuffered) {
        ev_prepare_init(&g.flush_prepare, flush_prepare_cb);
        ev_prepare_start(g.loop, &g.flush_prepare);
    } else {
        ev_timer_init(&g.flush_timer, flush_timer_cb, OUT_FLUSH_SEC, OUT_FLUSH_SEC);
        ev_timer_start(g.loop, &g.flush_timer);
    }

    ev_run(g.loop, 0);
    return finish();
}
