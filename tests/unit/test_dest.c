/*
 * test_dest.c - unit tests for src/dest.c over loopback: UDP forwarding is
 * byte-identical, conversion and chunk rewrites, max_packet, the balance
 * modes, and TCP targets (ordering, queueing while down, reconnect,
 * drop-oldest, a cut frame never resumed on a new connection).  Every test
 * runs a libev loop with a deadline.
 */
#include "conf.h"
#include "dest.h"
#include "hep.h"
#include "log.h"
#include "metrics.h"
#include "unit.h"
#include "unit_ev.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

/* Every wait in these tests gives up after this long. */
#define TEST_DEADLINE_S 10.0
/* How long to wait to show that a datagram does not come. */
#define TEST_SILENCE_MS 50
/* One send window: long enough for a loopback ICMP answer to be read. */
#define TEST_WINDOW_S 0.005

#define TEST_MAX_TARGETS 4
#define TEST_MAX_DESTS 2
#define TEST_RCVBUF (4 << 20)
#define TEST_FD_SCAN 1024           /* descriptors searched for the router's end of a connection */

/* ---- HEP3 packets with an id in the payload ---- */

struct pkt {
    uint8_t buf[HEP3_MAX_LEN];
    size_t len;
    struct hep_view view;
};

static void put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void chunk(struct pkt *p, uint16_t type, const void *val, size_t vlen)
{
    uint8_t *c = p->buf + p->len;
    put16(c, 0);
    put16(c + 2, type);
    put16(c + 4, HEP3_CHUNK_HDR_LEN + vlen);
    memcpy(c + HEP3_CHUNK_HDR_LEN, val, vlen);
    p->len += HEP3_CHUNK_HDR_LEN + vlen;
}

/* The smallest packet pkt_make() builds: 99 bytes of chunks + payload. */
#define PKT_MIN 131

/* A Kamailio-like HEP3 SIP packet of exactly total (>= PKT_MIN) bytes whose payload carries "X-Id: <id>". */
static void pkt_make(struct pkt *p, int id, size_t total)
{
    const uint8_t src[4] = { 10, 0, 0, 1 }, dst[4] = { 10, 0, 0, 2 };
    const uint8_t fam = HEP_AF_INET, proto = 17, type = HEP_PROTO_SIP;
    const uint8_t sport[2] = { 0x13, 0xc4 }, dport[2] = { 0x13, 0xc4 };
    const uint8_t ts[4] = { 0x65, 0x53, 0xf1, 0x00 }, cid[4] = { 0, 0, 0, 1 };
    memcpy(p->buf, HEP3_MAGIC, 4);
    p->len = HEP3_HDR_LEN;
    chunk(p, HEP_CHUNK_FAMILY, &fam, 1);
    chunk(p, HEP_CHUNK_IP_PROTO, &proto, 1);
    chunk(p, HEP_CHUNK_SRC_IP4, src, 4);
    chunk(p, HEP_CHUNK_DST_IP4, dst, 4);
    chunk(p, HEP_CHUNK_SRC_PORT, sport, 2);
    chunk(p, HEP_CHUNK_DST_PORT, dport, 2);
    chunk(p, HEP_CHUNK_TS_SEC, ts, 4);
    chunk(p, HEP_CHUNK_TS_USEC, ts, 4);
    chunk(p, HEP_CHUNK_PROTO_TYPE, &type, 1);
    chunk(p, HEP_CHUNK_CAPTURE_ID, cid, 4);
    static char payload[HEP3_MAX_LEN];
    int n = snprintf(payload, sizeof payload, "SIP/2.0 200 OK\r\nX-Id: %06d\r\n\r\n", id);
    size_t plen = (size_t)n;
    size_t room = p->len + HEP3_CHUNK_HDR_LEN;
    if (total >= room + plen) {
        memset(payload + plen, 'p', total - room - plen);
        plen = total - room;
    }
    chunk(p, HEP_CHUNK_PAYLOAD, payload, plen);
    CU_ASSERT_FATAL(p->len == total);     /* callers ask for at least PKT_MIN bytes */
    put16(p->buf + 4, p->len);
    CU_ASSERT_FATAL(hep_decode(p->buf, p->len, &p->view) == HEP_OK);
}

/* The id in a received packet (any HEP version), or -1. */
static int pkt_id(const uint8_t *buf, size_t len)
{
    struct hep_view v;
    if (hep_decode(buf, len, &v) != HEP_OK)
        return -1;
    const char *tag = "X-Id: ";
    const uint8_t *at = memmem(v.payload.data, v.payload.len, tag, strlen(tag));
    if (at == NULL)
        return -1;
    return atoi((const char *)at + strlen(tag));
}

/* ---- configuration by hand ---- */

struct fixture {
    struct conf conf;
    struct conf_dest dests[TEST_MAX_DESTS];
    struct conf_addr targets[TEST_MAX_DESTS][TEST_MAX_TARGETS];
    struct metrics m;
    struct ev_loop *loop;
    struct dest_set *ds;
};

static void fx_init(struct fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    fx->conf.dests = fx->dests;
    fx->conf.udp_batch = 16;
    fx->conf.tcp_queue_bytes = 1 << 20;
    fx->conf.reconnect_min_ms = 10;
    fx->conf.reconnect_max_ms = 40;
    fx->conf.connect_timeout_ms = 500;
    fx->conf.tcp_keepalive_idle_ms = 30000;
    fx->conf.tcp_keepalive_interval_ms = 5000;
    fx->conf.tcp_keepalive_count = 3;
    fx->conf.tcp_user_timeout_ms = 20000;
    fx->conf.log_interval_ms = 1000;
}

static size_t fx_dest(struct fixture *fx, char *name, enum conf_balance balance)
{
    size_t i = fx->conf.ndests++;
    CU_ASSERT_FATAL(i < TEST_MAX_DESTS);
    fx->dests[i].name = name;
    fx->dests[i].balance = balance;
    fx->dests[i].targets = fx->targets[i];
    return i;
}

static void fx_target(struct fixture *fx, size_t di, enum conf_transport transport, uint16_t port)
{
    struct conf_dest *d = &fx->dests[di];
    CU_ASSERT_FATAL(d->ntargets < TEST_MAX_TARGETS);
    struct conf_addr *a = &d->targets[d->ntargets++];
    char text[sizeof a->text];
    snprintf(text, sizeof text, "%s:127.0.0.1:%u", transport == CONF_TCP ? "tcp" : "udp", port);
    CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr(text, a));
}

static void fx_start(struct fixture *fx)
{
    CU_ASSERT_FATAL(metrics_init(&fx->m, &fx->conf) == 0);
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    CU_ASSERT_FATAL(fx->loop != NULL);
    fx->ds = dest_set_new(fx->loop, &fx->conf, &fx->m, 0);
    CU_ASSERT_FATAL(fx->ds != NULL);
}

static void fx_stop(struct fixture *fx)
{
    dest_set_free(fx->ds);
    ev_loop_destroy(fx->loop);
    metrics_free(&fx->m);
}

static struct metrics_target *tm(struct fixture *fx, size_t di, size_t j)
{
    return &fx->m.targets[fx->m.dest_first_target[di] + j];
}

/* ---- sockets ---- */

static struct sockaddr_in loopback_port(uint16_t port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(port);
    return sin;
}

static uint16_t local_port(int fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
    return ntohs(sin.sin_port);
}

/* A UDP socket on 127.0.0.1:port (0: any) with room for bursts. */
static int udp_receiver(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    int rcvbuf = TEST_RCVBUF;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sin = loopback_port(*port);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    *port = local_port(fd);
    return fd;
}

/* One datagram, or -1 after timeout_ms. */
static ssize_t recv_timeout(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return -1;
    return recv(fd, buf, cap, MSG_DONTWAIT);
}

/* A port with nothing listening on it (for a while): bound, then closed. */
static uint16_t closed_port(int type)
{
    int fd = socket(AF_INET, type, 0);
    struct sockaddr_in sin = loopback_port(0);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    uint16_t port = local_port(fd);
    close(fd);
    return port;
}

static int tcp_listener(uint16_t *port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CU_ASSERT_FATAL(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sin = loopback_port(*port);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    CU_ASSERT_FATAL(listen(fd, 8) == 0);
    *port = local_port(fd);
    return fd;
}

/* ---- the loop ---- */

static bool counter_reaches(void *arg)
{
    uint64_t **c = arg;             /* { counter, &want } */
    return *c[0] >= *c[1];
}

static bool wait_counter(struct ev_loop *loop, uint64_t *counter, uint64_t want)
{
    uint64_t *args[2] = { counter, &want };
    return unit_ev_run_until(loop, counter_reaches, args, TEST_DEADLINE_S);
}

/* The server side of a TCP target: accepts, then reads into one buffer. */
struct tcp_peer {
    int lfd;
    int cfd;
    uint8_t *buf;
    size_t len;
    size_t cap;
    size_t want;                    /* bytes to wait for */
    bool widen;                     /* a large receive buffer on the next accept */
};

static void peer_init(struct tcp_peer *p, uint16_t *port, size_t cap, int rcvbuf)
{
    memset(p, 0, sizeof *p);
    p->lfd = tcp_listener(port, rcvbuf);
    p->cfd = -1;
    p->cap = cap;
    p->buf = malloc(cap);
    CU_ASSERT_FATAL(p->buf != NULL);
}

static void peer_free(struct tcp_peer *p)
{
    if (p->cfd >= 0)
        close(p->cfd);
    close(p->lfd);
    free(p->buf);
}

/*
 * The peer starts reading for real: after stalling the sender with a tiny
 * receive buffer, a tiny window would make loopback crawl.
 */
static void peer_widen(struct tcp_peer *p)
{
    int rcvbuf = TEST_RCVBUF;
    p->widen = true;
    if (p->cfd >= 0)
        setsockopt(p->cfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
}

static bool peer_accepted(void *arg)
{
    struct tcp_peer *p = arg;
    if (p->cfd < 0) {
        p->cfd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK);
        if (p->cfd >= 0 && p->widen)
            peer_widen(p);
    }
    return p->cfd >= 0;
}

static bool peer_has_bytes(void *arg)
{
    struct tcp_peer *p = arg;
    if (!peer_accepted(p))
        return false;
    while (p->len < p->cap) {
        ssize_t n = recv(p->cfd, p->buf + p->len, p->cap - p->len, MSG_DONTWAIT);
        if (n <= 0)
            break;
        p->len += (size_t)n;
    }
    return p->len >= p->want;
}

/*
 * Splits the received stream into HEP3 frames and stores their ids.
 * Returns the number of frames, or -1 if the stream is not whole frames.
 */
static int peer_frames(const struct tcp_peer *p, int *ids, int max)
{
    size_t off = 0;
    int n = 0;
    while (off < p->len) {
        if (p->len - off < HEP3_HDR_LEN || memcmp(p->buf + off, HEP3_MAGIC, 4) != 0)
            return -1;
        size_t flen = (size_t)p->buf[off + 4] << 8 | p->buf[off + 5];
        if (flen < HEP3_HDR_LEN || off + flen > p->len || n >= max)
            return -1;
        ids[n++] = pkt_id(p->buf + off, flen);
        off += flen;
    }
    return n;
}

/* ---- UDP ---- */

static void test_udp_forwards_bytes_unchanged(void)
{
    struct fixture fx;
    fx_init(&fx);
    uint16_t port = 0;
    int r = udp_receiver(&port);
    size_t di = fx_dest(&fx, "homer", CONF_BALANCE_ALL);
    fx_target(&fx, di, CONF_UDP, port);
    fx_start(&fx);

    static struct pkt p;
    pkt_make(&p, 1, 500);
    size_t v2len = 0;
    uint8_t *v2 = unit_read_file("kamailio/v2/001.hep", &v2len);
    CU_ASSERT_FATAL(v2 != NULL);
    struct hep_view v2view;
    CU_ASSERT_FATAL(hep_decode(v2, v2len, &v2view) == HEP_OK);

    dest_send(fx.ds, di, &p.view, "k", 1);
    dest_send(fx.ds, di, &v2view, "k", 1);
    dest_flush(fx.ds);

    static uint8_t got[HEP3_MAX_LEN];
    ssize_t n = recv_timeout(r, got, sizeof got, 1000);
    CU_ASSERT(n == (ssize_t)p.len && memcmp(got, p.buf, p.len) == 0);
    /* hep_version 0 and no rewrite: v2 goes out as v2, untouched */
    n = recv_timeout(r, got, sizeof got, 1000);
    CU_ASSERT(n == (ssize_t)v2len && memcmp(got, v2, v2len) == 0);

    CU_ASSERT(fx.m.dests[di].packets == 2);
    CU_ASSERT(fx.m.dests[di].bytes == p.len + v2len);
    CU_ASSERT(fx.m.dests[di].converted == 0);
    CU_ASSERT(tm(&fx, di, 0)->packets == 2);
    CU_ASSERT(tm(&fx, di, 0)->bytes == p.len + v2len);
    CU_ASSERT(dest_pending(fx.ds) == 0);
    free(v2);
    close(r);
    fx_stop(&fx);
}

static void test_hep_version_3_converts_v2(void)
{
    struct fixture fx;
    fx_init(&fx);
    uint16_t port = 0;
    int r = udp_receiver(&port);
    size_t di = fx_dest(&fx, "voipmonitor", CONF_BALANCE_ALL);
    fx.dests[di].hep_version = 3;
    fx_target(&fx, di, CONF_UDP, port);
    fx_start(&fx);

    size_t v2len = 0;
    uint8_t *v2 = unit_read_file("kamailio/v2/001.hep", &v2len);
    CU_ASSERT_FATAL(v2 != NULL);
    struct hep_view in;
    CU_ASSERT_FATAL(hep_decode(v2, v2len, &in) == HEP_OK);
    CU_ASSERT_FATAL(in.version == 2);
    static struct pkt p3;
    pkt_make(&p3, 3, 300);

    dest_send(fx.ds, di, &in, "k", 1);
    dest_send(fx.ds, di, &p3.view, "k", 1);
    dest_flush(fx.ds);

    static uint8_t got[HEP3_MAX_LEN];
    ssize_t n = recv_timeout(r, got, sizeof got, 1000);
    CU_ASSERT_FATAL(n > 0);
    struct hep_view out;
    CU_ASSERT_FATAL(hep_decode(got, (size_t)n, &out) == HEP_OK);
    CU_ASSERT(out.version == 3);
    CU_ASSERT(out.src_port == in.src_port && out.dst_port == in.dst_port);
    CU_ASSERT(out.ts_sec == in.ts_sec);
    CU_ASSERT(out.payload.len == in.payload.len);
    CU_ASSERT(memcmp(out.payload.data, in.payload.data, in.payload.len) == 0);
    /* already v3: nothing to convert, the bytes stay as they are */
    n = recv_timeout(r, got, sizeof got, 1000);
    CU_ASSERT(n == (ssize_t)p3.len && memcmp(got, p3.buf, p3.len) == 0);
    CU_ASSERT(fx.m.dests[di].converted == 1);
    CU_ASSERT(fx.m.dests[di].encode_errors == 0);
    free(v2);
    close(r);
    fx_stop(&fx);
}

static void test_rewrite_node_name_capture_id_auth_key(void)
{
    struct fixture fx;
    fx_init(&fx);
    uint16_t port = 0;
    int r = udp_receiver(&port);
    size_t di = fx_dest(&fx, "homer", CONF_BALANCE_ALL);
    fx.dests[di].node_name = "edge-1";
    fx.dests[di].auth_key = "s3cret";
    fx.dests[di].set_capture_id = true;
    fx.dests[di].capture_id = 4242;
    fx_target(&fx, di, CONF_UDP, port);
    fx_start(&fx);

    static struct pkt p;
    pkt_make(&p, 7, 400);
    dest_send(fx.ds, di, &p.view, "k", 1);
    dest_flush(fx.ds);

    static uint8_t got[HEP3_MAX_LEN];
    ssize_t n = recv_timeout(r, got, sizeof got, 1000);
    CU_ASSERT_FATAL(n > 0);
    struct hep_view out;
    CU_ASSERT_FATAL(hep_decode(got, (size_t)n, &out) == HEP_OK);
    CU_ASSERT(out.node_name.len == 6 && memcmp(out.node_name.data, "edge-1", 6) == 0);
    CU_ASSERT(out.auth_key.len == 6 && memcmp(out.auth_key.data, "s3cret", 6) == 0);
    CU_ASSERT(out.capture_id == 4242);
    CU_ASSERT(out.payload.len == p.view.payload.len);
    CU_ASSERT(pkt_id(got, (size_t)n) == 7);
    CU_ASSERT(fx.m.dests[di].converted == 1);
    CU_ASSERT(fx.m.dests[di].bytes == (uint64_t)n);
    close(r);
    fx_stop(&fx);
}

static void test_max_packet_counts_too_big(void)
{
    struct fixture fx;
    fx_init(&fx);
    uint16_t port = 0;
    int r = udp_receiver(&port);
    size_t di = fx_dest(&fx, "old-heplify", CONF_BALANCE_ALL);
    fx.dests[di].max_packet = 200;
    fx_target(&fx, di, CONF_UDP, port);
    fx_start(&fx);

    static struct pkt big, fits;
    pkt_make(&big, 1, 201);
    pkt_make(&fits, 2, 200);
    CU_ASSERT_FATAL(big.len == 201 && fits.len == 200);
    dest_send(fx.ds, di, &big.view, "k", 1);
    dest_send(fx.ds, di, &fits.view, "k", 1);
    dest_flush(fx.ds);

    static uint8_t got[HEP3_MAX_LEN];
    CU_ASSERT(recv_timeout(r, got, sizeof got, 1000) == 200);
    CU_ASSERT(pkt_id(got, 200) == 2);
    CU_ASSERT(recv_timeout(r, got, sizeof got, TEST_SILENCE_MS) == -1);
    CU_ASSERT(fx.m.dests[di].too_big == 1);
    CU_ASSERT(fx.m.dests[di].packets == 2);
    CU_ASSERT(tm(&fx, di, 0)->packets == 1);
    close(r);
    fx_stop(&fx);
}

/* udp_batch messages per sendmmsg: a full batch leaves before dest_flush(). */
static void test_udp_full_batch_flushes_early(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.conf.udp_batch = 2;
    uint16_t port = 0;
    int r = udp_receiver(&port);
    size_t di = fx_dest(&fx, "homer", CONF_BALANCE_ALL);
    fx_target(&fx, di, CONF_UDP, port);
    fx_start(&fx);

    static struct pkt p[5];
    for (int i = 0; i < 5; i++) {
        pkt_make(&p[i], i, 150);
        dest_send(fx.ds, di, &p[i].view, "k", 1);
    }
    CU_ASSERT(tm(&fx, di, 0)->packets == 4);
    dest_flush(fx.ds);
    CU_ASSERT(tm(&fx, di, 0)->packets == 5);
    uint8_t got[256];
    for (int i = 0; i < 5; i++) {
        ssize_t n = recv_timeout(r, got, sizeof got, 1000);
        CU_ASSERT(n == 150 && pkt_id(got, 150) == i);
    }
    close(r);
    fx_stop(&fx);
}

/* Re-encoded packets beyond the arena: it is flushed early, nothing is overwritten. */
static void test_reencoded_batch_larger_than_arena(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.conf.udp_batch = 64;
    uint16_t port = 0;
    int r = udp_receiver(&port);
    size_t di = fx_dest(&fx, "homer", CONF_BALANCE_ALL);
    fx.dests[di].node_name = "n";
    fx_target(&fx, di, CONF_UDP, port);
    fx_start(&fx);

    enum { COUNT = 8, SIZE = 60000 };
    static struct pkt p;
    for (int i = 0; i < COUNT; i++) {
        pkt_make(&p, i, SIZE);          /* p is reused: only the arena copy may be sent */
        dest_send(fx.ds, di, &p.view, "k", 1);
    }
    dest_flush(fx.ds);
    static uint8_t got[HEP3_MAX_LEN];
    for (int i = 0; i < COUNT; i++) {
        ssize_t n = recv_timeout(r, got, sizeof got, 1000);
        CU_ASSERT_FATAL(n > SIZE);
        CU_ASSERT(pkt_id(got, (size_t)n) == i);
    }
    CU_ASSERT(fx.m.dests[di].converted == COUNT);
    CU_ASSERT(tm(&fx, di, 0)->packets == COUNT);
    close(r);
    fx_stop(&fx);
}

/* ---- balance ---- */

/* Reads every datagram waiting on fd; stores the ids; returns how many. */
static int drain_ids(int fd, int *ids, int max)
{
    static uint8_t got[HEP3_MAX_LEN];
    int n = 0;
    ssize_t len;
    while (n < max && (len = recv_timeout(fd, got, sizeof got, 0)) > 0)
        ids[n++] = pkt_id(got, (size_t)len);
    return n;
}

static void test_all_sends_a_copy_to_every_target(void)
{
    struct fixture fx;
    fx_init(&fx);
    int r[3];
    size_t di = fx_dest(&fx, "everyone", CONF_BALANCE_ALL);
    for (int j = 0; j < 3; j++) {
        uint16_t port = 0;
        r[j] = udp_receiver(&port);
        fx_target(&fx, di, CONF_UDP, port);
    }
    fx_start(&fx);
    static struct pkt p;
    pkt_make(&p, 9, 150);
    dest_send(fx.ds, di, &p.view, "k", 1);
    dest_flush(fx.ds);
    uint8_t got[256];
    for (int j = 0; j < 3; j++) {
        CU_ASSERT(recv_timeout(r[j], got, sizeof got, 1000) == 150);
        CU_ASSERT(memcmp(got, p.buf, 150) == 0);
        CU_ASSERT(tm(&fx, di, (size_t)j)->packets == 1);
        close(r[j]);
    }
    CU_ASSERT(fx.m.dests[di].packets == 1);
    fx_stop(&fx);
}

#define HASH_KEYS 64
#define HASH_REPEAT 3

static size_t hash_target_of(struct fixture *fx, size_t di, const char *key)
{
    static struct pkt p;
    uint64_t before[TEST_MAX_TARGETS];
    for (size_t j = 0; j < fx->dests[di].ntargets; j++)
        before[j] = tm(fx, di, j)->packets;
    pkt_make(&p, 0, 150);
    dest_send(fx->ds, di, &p.view, key, strlen(key));
    dest_flush(fx->ds);
    for (size_t j = 0; j < fx->dests[di].ntargets; j++)
        if (tm(fx, di, j)->packets != before[j])
            return j;
    return SIZE_MAX;
}

static void test_hash_is_stable_and_spreads(void)
{
    struct fixture fx;
    fx_init(&fx);
    int r[4];
    size_t di = fx_dest(&fx, "spread", CONF_BALANCE_HASH);
    for (int j = 0; j < 4; j++) {
        uint16_t port = 0;
        r[j] = udp_receiver(&port);
        fx_target(&fx, di, CONF_UDP, port);
    }
    fx_start(&fx);

    /* every packet of a key lands on one receiver */
    int owner[HASH_KEYS];
    for (int k = 0; k < HASH_KEYS; k++)
        owner[k] = -1;
    static struct pkt p;
    char key[32];
    for (int rep = 0; rep < HASH_REPEAT; rep++) {
        for (int k = 0; k < HASH_KEYS; k++) {
            int n = snprintf(key, sizeof key, "call-%d@host", k);
            pkt_make(&p, k, 150);
            dest_send(fx.ds, di, &p.view, key, (size_t)n);
            dest_flush(fx.ds);          /* p is reused: UDP sends point into it */
        }
    }
    int per_target[4] = { 0 }, total = 0;
    bool consistent = true;
    for (int j = 0; j < 4; j++) {
        int ids[HASH_KEYS * HASH_REPEAT];
        int n = drain_ids(r[j], ids, HASH_KEYS * HASH_REPEAT);
        for (int i = 0; i < n; i++) {
            CU_ASSERT_FATAL(ids[i] >= 0 && ids[i] < HASH_KEYS);
            if (owner[ids[i]] >= 0 && owner[ids[i]] != j)
                consistent = false;
            owner[ids[i]] = j;
        }
        per_target[j] = n;
        total += n;
    }
    CU_ASSERT(consistent);
    CU_ASSERT(total == HASH_KEYS * HASH_REPEAT);
    for (int j = 0; j < 4; j++)
        CU_ASSERT(per_target[j] >= HASH_REPEAT * 4);    /* no target starves */

    /* stable across sets (restarts, other workers, other instances) */
    struct dest_set *again = dest_set_new(fx.loop, &fx.conf, &fx.m, 0);
    CU_ASSERT_FATAL(again != NULL);
    struct dest_set *first = fx.ds;
    fx.ds = again;
    for (int k = 0; k < HASH_KEYS; k += 7) {
        snprintf(key, sizeof key, "call-%d@host", k);
        CU_ASSERT(hash_target_of(&fx, di, key) == (size_t)owner[k]);
    }
    fx.ds = first;
    dest_set_free(again);
    for (int j = 0; j < 4; j++)
        close(r[j]);
    fx_stop(&fx);
}

static void test_round_robin_alternates(void)
{
    struct fixture fx;
    fx_init(&fx);
    int r[2];
    size_t di = fx_dest(&fx, "rr", CONF_BALANCE_ROUND_ROBIN);
    for (int j = 0; j < 2; j++) {
        uint16_t port = 0;
        r[j] = udp_receiver(&port);
        fx_target(&fx, di, CONF_UDP, port);
    }
    fx_start(&fx);
    static struct pkt p;
    for (int i = 0; i < 6; i++) {
        pkt_make(&p, i, 150);
        dest_send(fx.ds, di, &p.view, "same-call", 9);
        dest_flush(fx.ds);
    }
    for (int j = 0; j < 2; j++) {
        int ids[8];
        CU_ASSERT(drain_ids(r[j], ids, 8) == 3);
        for (int i = 0; i < 3; i++)
            CU_ASSERT(ids[i] == 2 * i + j);
        close(r[j]);
    }
    fx_stop(&fx);
}

/* A UDP target that answers with port-unreachable is skipped by failover. */
static void test_failover_skips_refusing_udp_target(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.conf.reconnect_min_ms = 10000;           /* stays down for the whole test */
    uint16_t port = 0;
    int r = udp_receiver(&port);
    size_t di = fx_dest(&fx, "fo", CONF_BALANCE_FAILOVER);
    fx_target(&fx, di, CONF_UDP, closed_port(SOCK_DGRAM));
    fx_target(&fx, di, CONF_UDP, port);
    fx_start(&fx);

    static struct pkt p;
    int sent = 0;
    /* the first send provokes the ICMP error, a later one reports it */
    for (int i = 0; i < 10 && tm(&fx, di, 1)->packets == 0; i++) {
        pkt_make(&p, i, 150);
        dest_send(fx.ds, di, &p.view, "k", 1);
        dest_flush(fx.ds);
        sent++;
        usleep(1000);
    }
    CU_ASSERT(tm(&fx, di, 0)->refusals >= 1);         /* fx_init leaves udp_refusals_down 0: taken as 1 */
    CU_ASSERT(tm(&fx, di, 0)->went_down == 1);
    CU_ASSERT(tm(&fx, di, 1)->packets == 1);
    pkt_make(&p, 100, 150);
    dest_send(fx.ds, di, &p.view, "k", 1);
    dest_flush(fx.ds);
    int ids[16];
    int n = drain_ids(r, ids, 16);
    CU_ASSERT(n == 2);
    CU_ASSERT(n == 2 && ids[1] == 100);
    CU_ASSERT(sent <= 3);
    close(r);
    fx_stop(&fx);
}

/* Sends packet id to destination di and lets the loop read what came back. */
static void send_one_and_spin(struct fixture *fx, size_t di, int id)
{
    static struct pkt p;
    pkt_make(&p, id, 150);
    dest_send(fx->ds, di, &p.view, "k", 1);
    dest_flush(fx->ds);
    unit_ev_run_for(fx->loop, TEST_WINDOW_S);
}

/*
 * A refusing UDP target is down after udp_refusals_down refusals in a
 * row, not before; failover sends to the next target meanwhile; once its
 * port listens again, a probe brings it back and failover returns to it.
 */
static void test_udp_refusals_take_a_target_down_and_a_probe_brings_it_up(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.conf.udp_refusals_down = 3;
    fx.conf.reconnect_min_ms = 20;
    fx.conf.reconnect_max_ms = 40;
    fx.conf.connect_timeout_ms = 50;            /* how long a probe waits for a refusal */
    uint16_t bport = 0, aport = closed_port(SOCK_DGRAM);
    int rb = udp_receiver(&bport);
    size_t di = fx_dest(&fx, "fo", CONF_BALANCE_FAILOVER);
    fx_target(&fx, di, CONF_UDP, aport);
    fx_target(&fx, di, CONF_UDP, bport);
    fx_start(&fx);
    struct metrics_target *a = tm(&fx, di, 0);

    int id = 0;
    while (a->went_down == 0 && id < 50) {
        if (a->refusals < 3)
            CU_ASSERT(a->went_down == 0);
        send_one_and_spin(&fx, di, id++);
    }
    CU_ASSERT(a->went_down == 1);
    CU_ASSERT(a->refusals >= 3);
    CU_ASSERT(a->packets >= 3);                 /* each refusal answers a datagram sent */
    CU_ASSERT(a->went_up == 0);
    send_one_and_spin(&fx, di, 1000);
    int ids[64];
    int on_b = drain_ids(rb, ids, 64);
    CU_ASSERT(on_b >= 1 && ids[on_b - 1] == 1000);

    /* still closed: its probes are refused, it stays down (no second went_down) */
    uint64_t refused = a->refusals;
    for (int i = 0; a->refusals == refused && i < 200; i++)
        send_one_and_spin(&fx, di, 1100 + i);
    CU_ASSERT(a->refusals > refused);
    CU_ASSERT(a->went_down == 1);
    CU_ASSERT(a->went_up == 0);
    drain_ids(rb, ids, 64);

    /* A listens again: after the backoff one packet probes it, then it is up */
    int ra = udp_receiver(&aport);
    for (int i = 0; a->went_up == 0 && i < 200; i++)
        send_one_and_spin(&fx, di, 2000 + i);
    CU_ASSERT(a->went_up == 1);
    CU_ASSERT(a->went_down == 1);
    drain_ids(rb, ids, 64);
    int on_a = drain_ids(ra, ids, 64);
    CU_ASSERT(on_a == 1);                       /* the probe, and nothing else while it was judged */
    send_one_and_spin(&fx, di, 3000);
    CU_ASSERT(drain_ids(ra, ids, 64) == 1 && ids[0] == 3000);
    CU_ASSERT(drain_ids(rb, ids, 64) == 0);
    close(ra);
    close(rb);
    fx_stop(&fx);
}

/* ---- TCP ---- */

static void test_tcp_frames_arrive_whole_in_order(void)
{
    struct fixture fx;
    fx_init(&fx);
    uint16_t port = 0;
    struct tcp_peer peer;
    peer_init(&peer, &port, 1 << 20, 0);
    size_t di = fx_dest(&fx, "vm", CONF_BALANCE_ALL);
    fx_target(&fx, di, CONF_TCP, port);
    fx_start(&fx);
    CU_ASSERT(wait_counter(fx.loop, &tm(&fx, di, 0)->connects, 1));
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_accepted, &peer, TEST_DEADLINE_S));

    /* a v2 packet too: a TCP stream carries HEP3 only, so it is converted */
    size_t v2len = 0;
    uint8_t *v2 = unit_read_file("kamailio/v2/001.hep", &v2len);
    CU_ASSERT_FATAL(v2 != NULL);
    struct hep_view v2view;
    CU_ASSERT_FATAL(hep_decode(v2, v2len, &v2view) == HEP_OK);

    enum { COUNT = 100 };
    static struct pkt p;
    size_t total = 0;
    for (int i = 0; i < COUNT; i++) {
        pkt_make(&p, i, PKT_MIN + (size_t)i * 37);
        dest_send(fx.ds, di, &p.view, "k", 1);
        total += p.len;
        if (i % 10 == 9)
            dest_flush(fx.ds);
    }
    dest_send(fx.ds, di, &v2view, "k", 1);
    dest_flush(fx.ds);
    total = fx.m.dests[di].bytes;           /* plus the converted v2 */
    peer.want = total;
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_has_bytes, &peer, TEST_DEADLINE_S));
    CU_ASSERT(peer.len == total);

    int ids[COUNT + 1];
    CU_ASSERT_FATAL(peer_frames(&peer, ids, COUNT + 1) == COUNT + 1);
    for (int i = 0; i < COUNT; i++)
        CU_ASSERT(ids[i] == i);
    CU_ASSERT(fx.m.dests[di].converted == 1);
    CU_ASSERT(tm(&fx, di, 0)->packets == COUNT + 1);
    CU_ASSERT(tm(&fx, di, 0)->bytes == total);
    CU_ASSERT(dest_pending(fx.ds) == 0);
    free(v2);
    peer_free(&peer);
    fx_stop(&fx);
}

static void test_tcp_down_target_queues_until_reconnect(void)
{
    struct fixture fx;
    fx_init(&fx);
    uint16_t port = closed_port(SOCK_STREAM);
    size_t di = fx_dest(&fx, "vm", CONF_BALANCE_ALL);
    fx_target(&fx, di, CONF_TCP, port);
    fx_start(&fx);
    unit_ev_run_for(fx.loop, 0.05);                     /* a few refused attempts */
    CU_ASSERT(tm(&fx, di, 0)->connects == 0);

    static struct pkt p;
    size_t total = 0;
    for (int i = 0; i < 5; i++) {
        pkt_make(&p, i, 200);
        dest_send(fx.ds, di, &p.view, "k", 1);
        total += p.len;
    }
    dest_flush(fx.ds);
    CU_ASSERT(dest_pending(fx.ds) == total);

    struct tcp_peer peer;
    peer_init(&peer, &port, 1 << 16, 0);
    peer.want = total;
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_has_bytes, &peer, TEST_DEADLINE_S));
    int ids[8];
    CU_ASSERT(peer_frames(&peer, ids, 8) == 5);
    for (int i = 0; i < 5; i++)
        CU_ASSERT(ids[i] == i);
    CU_ASSERT(tm(&fx, di, 0)->connects == 1);
    CU_ASSERT(tm(&fx, di, 0)->queue_drops == 0);
    CU_ASSERT(dest_pending(fx.ds) == 0);
    peer_free(&peer);
    fx_stop(&fx);
}

/*
 * The socket of this process whose local address is the peer's view of
 * the connection (the router's end of an accepted one), or -1.
 */
static int socket_with_local_addr(const struct sockaddr_in *want)
{
    for (int fd = 0; fd < TEST_FD_SCAN; fd++) {
        struct sockaddr_in sin;
        socklen_t len = sizeof sin;
        if (getsockname(fd, (struct sockaddr *)&sin, &len) == 0 && sin.sin_family == AF_INET &&
            sin.sin_port == want->sin_port && sin.sin_addr.s_addr == want->sin_addr.s_addr)
            return fd;
    }
    return -1;
}

static int int_sockopt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    CU_ASSERT(getsockopt(fd, level, name, &v, &len) == 0);
    return v;
}

/* limits.tcp_keepalive_* and tcp_user_timeout are on the connection (keepalive in whole seconds, up). */
static void test_tcp_keepalive_and_user_timeout_are_set(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.conf.tcp_keepalive_idle_ms = 7000;
    fx.conf.tcp_keepalive_interval_ms = 2500;       /* rounded up to 3 s */
    fx.conf.tcp_keepalive_count = 4;
    fx.conf.tcp_user_timeout_ms = 1234;
    uint16_t port = 0;
    struct tcp_peer peer;
    peer_init(&peer, &port, 1 << 10, 0);
    size_t di = fx_dest(&fx, "vm", CONF_BALANCE_ALL);
    fx_target(&fx, di, CONF_TCP, port);
    fx_start(&fx);
    CU_ASSERT_FATAL(unit_ev_run_until(fx.loop, peer_accepted, &peer, TEST_DEADLINE_S));
    struct sockaddr_in router_end;
    socklen_t len = sizeof router_end;
    CU_ASSERT_FATAL(getpeername(peer.cfd, (struct sockaddr *)&router_end, &len) == 0);
    int fd = socket_with_local_addr(&router_end);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(int_sockopt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    CU_ASSERT_EQUAL(int_sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 7);
    CU_ASSERT_EQUAL(int_sockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 3);
    CU_ASSERT_EQUAL(int_sockopt(fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
    CU_ASSERT_EQUAL(int_sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 1234);
    peer_free(&peer);
    fx_stop(&fx);
}

static void test_abandon_counts_what_a_down_target_still_queues(void)
{
    struct fixture fx;
    fx_init(&fx);
    uint16_t port = closed_port(SOCK_STREAM);
    size_t di = fx_dest(&fx, "vm", CONF_BALANCE_ALL);
    fx_target(&fx, di, CONF_TCP, port);
    fx_start(&fx);
    static struct pkt p;
    for (int i = 0; i < 3; i++) {
        pkt_make(&p, i, 200);
        dest_send(fx.ds, di, &p.view, "k", 1);
    }
    dest_flush(fx.ds);
    CU_ASSERT(dest_pending(fx.ds) == 3 * p.len);
    CU_ASSERT(dest_abandon(fx.ds) == 3);
    CU_ASSERT(dest_pending(fx.ds) == 0);
    CU_ASSERT(tm(&fx, di, 0)->exit_drops == 3);
    CU_ASSERT(dest_abandon(fx.ds) == 0);
    fx_stop(&fx);
}

static void test_tcp_queue_full_drops_oldest(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.conf.tcp_queue_bytes = 3 * 300;
    uint16_t port = closed_port(SOCK_STREAM);
    size_t di = fx_dest(&fx, "vm", CONF_BALANCE_ALL);
    fx_target(&fx, di, CONF_TCP, port);
    fx_start(&fx);

    static struct pkt p;
    for (int i = 0; i < 5; i++) {
        pkt_make(&p, i, 300);
        dest_send(fx.ds, di, &p.view, "k", 1);
    }
    dest_flush(fx.ds);
    CU_ASSERT(tm(&fx, di, 0)->queue_drops == 2);
    CU_ASSERT(dest_pending(fx.ds) == 900);

    /* bigger than the whole queue: dropped, the queue kept */
    pkt_make(&p, 99, 901);
    dest_send(fx.ds, di, &p.view, "k", 1);
    CU_ASSERT(tm(&fx, di, 0)->queue_drops == 3);
    CU_ASSERT(dest_pending(fx.ds) == 900);

    struct tcp_peer peer;
    peer_init(&peer, &port, 1 << 16, 0);
    peer.want = 900;
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_has_bytes, &peer, TEST_DEADLINE_S));
    int ids[8];
    CU_ASSERT(peer_frames(&peer, ids, 8) == 3);
    CU_ASSERT(ids[0] == 2 && ids[1] == 3 && ids[2] == 4);
    peer_free(&peer);
    fx_stop(&fx);
}

static void test_tcp_reconnects_after_peer_closes(void)
{
    struct fixture fx;
    fx_init(&fx);
    uint16_t port = 0;
    struct tcp_peer peer;
    peer_init(&peer, &port, 1 << 16, 0);
    size_t di = fx_dest(&fx, "vm", CONF_BALANCE_ALL);
    fx_target(&fx, di, CONF_TCP, port);
    fx_start(&fx);
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_accepted, &peer, TEST_DEADLINE_S));
    CU_ASSERT(wait_counter(fx.loop, &tm(&fx, di, 0)->connects, 1));

    close(peer.cfd);
    peer.cfd = -1;
    CU_ASSERT(wait_counter(fx.loop, &tm(&fx, di, 0)->disconnects, 1));

    static struct pkt p;
    pkt_make(&p, 5, 250);
    dest_send(fx.ds, di, &p.view, "k", 1);
    dest_flush(fx.ds);
    peer.want = 250;
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_has_bytes, &peer, TEST_DEADLINE_S));
    int ids[2];
    CU_ASSERT(peer_frames(&peer, ids, 2) == 1 && ids[0] == 5);
    CU_ASSERT(tm(&fx, di, 0)->connects == 2);
    CU_ASSERT(tm(&fx, di, 0)->went_up == 2);        /* a TCP target is up while connected */
    CU_ASSERT(tm(&fx, di, 0)->went_down == 1);
    peer_free(&peer);
    fx_stop(&fx);
}

struct cut_wait {
    struct fixture *fx;
    struct tcp_peer *peer;
};

static bool all_delivered(void *arg)
{
    struct cut_wait *w = arg;
    peer_has_bytes(w->peer);
    return dest_pending(w->fx->ds) == 0 && w->peer->len >= w->peer->want;
}

/*
 * The peer stops reading, so writes stop mid-frame; then it resets the
 * connection.  The new connection must start on a frame boundary: the cut
 * frame is dropped whole, the frames after it follow in order.
 */
static void test_tcp_cut_frame_is_not_resumed_after_reconnect(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.conf.tcp_queue_bytes = 8 << 20;
    uint16_t port = 0;
    struct tcp_peer peer;
    peer_init(&peer, &port, 8 << 20, 4096);
    size_t di = fx_dest(&fx, "vm", CONF_BALANCE_ALL);
    fx_target(&fx, di, CONF_TCP, port);
    fx_start(&fx);
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_accepted, &peer, TEST_DEADLINE_S));
    CU_ASSERT(wait_counter(fx.loop, &tm(&fx, di, 0)->connects, 1));

    /* send until the kernel buffers are full and frames wait in the queue */
    enum { COUNT_MAX = 400, SIZE = 60001 };
    static struct pkt p;
    int count = 0;
    while (count < COUNT_MAX && dest_pending(fx.ds) <= 2 * SIZE) {
        pkt_make(&p, count++, SIZE);
        dest_send(fx.ds, di, &p.view, "k", 1);
        dest_flush(fx.ds);
    }
    CU_ASSERT_FATAL(dest_pending(fx.ds) > 2 * SIZE);

    /* unread data makes close() send a reset */
    close(peer.cfd);
    peer.cfd = -1;
    CU_ASSERT(wait_counter(fx.loop, &tm(&fx, di, 0)->disconnects, 1));
    CU_ASSERT(tm(&fx, di, 0)->send_errors <= 1);  /* the cut frame, if any */
    size_t left = dest_pending(fx.ds);
    CU_ASSERT(left % SIZE == 0);                /* only whole frames stay queued */

    struct cut_wait w = { &fx, &peer };
    peer.want = left;
    peer_widen(&peer);
    CU_ASSERT(unit_ev_run_until(fx.loop, all_delivered, &w, TEST_DEADLINE_S));
    CU_ASSERT(peer.len == left);
    int ids[COUNT_MAX];
    int n = peer_frames(&peer, ids, COUNT_MAX);
    CU_ASSERT_FATAL(n == (int)(left / SIZE));
    for (int i = 0; i < n; i++)
        CU_ASSERT(ids[i] == count - n + i);
    CU_ASSERT(tm(&fx, di, 0)->connects == 2);
    peer_free(&peer);
    fx_stop(&fx);
}

/*
 * A slow peer: the socket is full and the queue overflows while a frame is
 * half written.  That frame must still be finished on this connection (its
 * tail is kept aside), older queued frames give way, and the peer reads a
 * stream of whole frames in order.
 */
static void test_tcp_overflow_keeps_the_stream_whole(void)
{
    struct fixture fx;
    fx_init(&fx);
    enum { COUNT_MAX = 400, SIZE = 60001, DROPS = 8 };
    fx.conf.tcp_queue_bytes = 4 * SIZE;
    uint16_t port = 0;
    struct tcp_peer peer;
    peer_init(&peer, &port, 16 << 20, 4096);
    size_t di = fx_dest(&fx, "vm", CONF_BALANCE_ALL);
    fx_target(&fx, di, CONF_TCP, port);
    fx_start(&fx);
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_accepted, &peer, TEST_DEADLINE_S));
    CU_ASSERT(wait_counter(fx.loop, &tm(&fx, di, 0)->connects, 1));

    /* send until the kernel buffers and the queue are full and frames give way */
    static struct pkt p;
    struct metrics_target *t = tm(&fx, di, 0);
    int count = 0;
    while (count < COUNT_MAX && t->queue_drops < DROPS) {
        pkt_make(&p, count++, SIZE);
        dest_send(fx.ds, di, &p.view, "k", 1);
        dest_flush(fx.ds);
    }
    CU_ASSERT_FATAL(t->queue_drops == DROPS);
    CU_ASSERT(dest_pending(fx.ds) <= 4 * SIZE);  /* an aside tail counts against the bound */

    struct cut_wait w = { &fx, &peer };
    peer_widen(&peer);
    CU_ASSERT(unit_ev_run_until(fx.loop, all_delivered, &w, TEST_DEADLINE_S));
    int ids[COUNT_MAX];
    int n = peer_frames(&peer, ids, COUNT_MAX);
    CU_ASSERT_FATAL(n > 0);
    for (int i = 1; i < n; i++)
        CU_ASSERT(ids[i] > ids[i - 1]);
    CU_ASSERT(ids[n - 1] == count - 1);
    CU_ASSERT((uint64_t)n == t->packets);
    CU_ASSERT((uint64_t)n + t->queue_drops == (uint64_t)count);
    CU_ASSERT(t->send_errors == 0 && t->disconnects == 0);
    peer_free(&peer);
    fx_stop(&fx);
}

/* hash and failover go around a disconnected TCP target. */
static void test_tcp_balance_skips_disconnected_target(void)
{
    struct fixture fx;
    fx_init(&fx);
    uint16_t port = 0;
    struct tcp_peer peer;
    peer_init(&peer, &port, 1 << 16, 0);
    uint16_t dead = closed_port(SOCK_STREAM);
    size_t dh = fx_dest(&fx, "hashed", CONF_BALANCE_HASH);
    fx_target(&fx, dh, CONF_TCP, dead);
    fx_target(&fx, dh, CONF_TCP, port);
    size_t df = fx_dest(&fx, "failover", CONF_BALANCE_FAILOVER);
    uint16_t backup = 0;
    int r = udp_receiver(&backup);
    fx_target(&fx, df, CONF_TCP, dead);
    fx_target(&fx, df, CONF_UDP, backup);
    fx_start(&fx);
    CU_ASSERT(wait_counter(fx.loop, &tm(&fx, dh, 1)->connects, 1));

    static struct pkt p;
    char key[32];
    for (int k = 0; k < 20; k++) {
        int n = snprintf(key, sizeof key, "call-%d", k);
        pkt_make(&p, k, 150);
        dest_send(fx.ds, dh, &p.view, key, (size_t)n);
        dest_send(fx.ds, df, &p.view, key, (size_t)n);
        dest_flush(fx.ds);              /* p is reused: UDP sends point into it */
    }
    CU_ASSERT(wait_counter(fx.loop, &tm(&fx, dh, 1)->packets, 20));
    CU_ASSERT(tm(&fx, dh, 1)->packets == 20);
    CU_ASSERT(tm(&fx, dh, 0)->packets == 0);
    CU_ASSERT(tm(&fx, df, 1)->packets == 20);   /* the UDP backup */
    CU_ASSERT(dest_pending(fx.ds) == 0);        /* nothing waits for the dead one */
    int ids[32];
    CU_ASSERT(drain_ids(r, ids, 32) == 20);
    for (int k = 0; k < 20; k++)
        CU_ASSERT(ids[k] == k);
    close(r);
    peer_free(&peer);
    fx_stop(&fx);
}

/* ---- reload ---- */

/*
 * fx's set moves to next's configuration as a worker does it: counters
 * carried over by name into the same struct, then the destinations.
 */
static void fx_reload(struct fixture *fx, struct fixture *next)
{
    struct metrics moved;
    CU_ASSERT_FATAL(metrics_init(&moved, &next->conf) == 0);
    metrics_add_mapped(&moved, &next->conf, &fx->m, &fx->conf);
    metrics_free(&fx->m);
    fx->m = moved;
    CU_ASSERT(dest_set_reconfigure(fx->ds, &fx->conf, &next->conf) == 0);
    fx->conf = next->conf;          /* the arrays stay next's */
}

/*
 * A destination the reload does not change keeps its TCP connection, even
 * when another destination now comes before it: the peer sees one
 * connection carrying every frame in order, and the counters go on.
 */
static void test_reload_keeps_an_unchanged_destination_connected(void)
{
    struct fixture fx, next;
    uint16_t port = 0, other = 0;
    struct tcp_peer peer;
    peer_init(&peer, &port, 1 << 16, 0);
    int udp = udp_receiver(&other);
    fx_init(&fx);
    fx_target(&fx, fx_dest(&fx, "vm", CONF_BALANCE_ALL), CONF_TCP, port);
    fx_start(&fx);
    fx_init(&next);
    fx_target(&next, fx_dest(&next, "homer", CONF_BALANCE_ALL), CONF_UDP, other);
    fx_target(&next, fx_dest(&next, "vm", CONF_BALANCE_ALL), CONF_TCP, port);

    static struct pkt p;
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        pkt_make(&p, i, 200);
        dest_send(fx.ds, 0, &p.view, "k", 1);
        total += p.len;
    }
    dest_flush(fx.ds);
    peer.want = total;
    CU_ASSERT_FATAL(unit_ev_run_until(fx.loop, peer_has_bytes, &peer, TEST_DEADLINE_S));

    fx_reload(&fx, &next);
    for (int i = 3; i < 6; i++) {
        pkt_make(&p, i, 200);
        dest_send(fx.ds, 1, &p.view, "k", 1);       /* "vm" is index 1 now */
        total += p.len;
    }
    dest_flush(fx.ds);
    peer.want = total;
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_has_bytes, &peer, TEST_DEADLINE_S));
    int ids[8];
    CU_ASSERT(peer_frames(&peer, ids, 8) == 6);
    for (int i = 0; i < 6; i++)
        CU_ASSERT(ids[i] == i);
    int again = accept4(peer.lfd, NULL, NULL, SOCK_NONBLOCK);
    CU_ASSERT(again < 0);                           /* no second connection */
    CU_ASSERT(tm(&fx, 1, 0)->connects == 1);
    CU_ASSERT(tm(&fx, 1, 0)->packets == 6);         /* carried over, then counted on */
    CU_ASSERT(fx.m.dests[1].packets == 6);
    CU_ASSERT(fx.m.dests[0].packets == 0);
    close(udp);
    peer_free(&peer);
    fx_stop(&fx);
}

/*
 * A destination whose target a reload changes while its TCP queue holds
 * packets: new packets go to the new target at once, the old target gets
 * what was queued for it once it takes connections, and the set forgets
 * it when it is empty.  Nothing is lost.
 */
static void test_reload_changed_target_sends_its_old_queue_first(void)
{
    struct fixture fx, next;
    uint16_t old_port = closed_port(SOCK_STREAM), new_port = 0;
    struct tcp_peer fresh, late;
    peer_init(&fresh, &new_port, 1 << 16, 0);
    fx_init(&fx);
    fx_target(&fx, fx_dest(&fx, "vm", CONF_BALANCE_ALL), CONF_TCP, old_port);
    fx_start(&fx);
    fx_init(&next);
    fx_target(&next, fx_dest(&next, "vm", CONF_BALANCE_ALL), CONF_TCP, new_port);

    static struct pkt p;
    size_t queued = 0, sent_new = 0;
    for (int i = 0; i < 5; i++) {
        pkt_make(&p, i, 200);
        dest_send(fx.ds, 0, &p.view, "k", 1);
        queued += p.len;
    }
    dest_flush(fx.ds);
    CU_ASSERT_FATAL(dest_pending(fx.ds) == queued);

    fx_reload(&fx, &next);
    CU_ASSERT(dest_pending(fx.ds) == queued);       /* the retired queue is still there */
    for (int i = 5; i < 8; i++) {
        pkt_make(&p, i, 200);
        dest_send(fx.ds, 0, &p.view, "k", 1);
        sent_new += p.len;
    }
    dest_flush(fx.ds);
    fresh.want = sent_new;
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_has_bytes, &fresh, TEST_DEADLINE_S));
    int ids[8];
    CU_ASSERT(peer_frames(&fresh, ids, 8) == 3);
    for (int i = 0; i < 3; i++)
        CU_ASSERT(ids[i] == 5 + i);

    peer_init(&late, &old_port, 1 << 16, 0);        /* the old target comes back */
    late.want = queued;
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_has_bytes, &late, TEST_DEADLINE_S));
    CU_ASSERT(peer_frames(&late, ids, 8) == 5);
    for (int i = 0; i < 5; i++)
        CU_ASSERT(ids[i] == i);
    CU_ASSERT(dest_pending(fx.ds) == 0);
    dest_housekeeping(fx.ds);                       /* empty: closed and freed (ASan checks) */
    CU_ASSERT(tm(&fx, 0, 0)->packets == 3);         /* the new target's series */
    peer_free(&fresh);
    peer_free(&late);
    fx_stop(&fx);
}

/* A retired queue whose target never comes back is dropped at limits.drain_timeout. */
static void test_reload_retired_queue_is_dropped_after_the_drain_timeout(void)
{
    struct fixture fx, next;
    uint16_t old_port = closed_port(SOCK_STREAM), other = 0;
    int udp = udp_receiver(&other);
    fx_init(&fx);
    fx.conf.drain_timeout_ms = 50;
    fx_target(&fx, fx_dest(&fx, "vm", CONF_BALANCE_ALL), CONF_TCP, old_port);
    fx_start(&fx);
    fx_init(&next);
    next.conf.drain_timeout_ms = 50;
    fx_target(&next, fx_dest(&next, "vm", CONF_BALANCE_ALL), CONF_UDP, other);

    static struct pkt p;
    pkt_make(&p, 1, 200);
    dest_send(fx.ds, 0, &p.view, "k", 1);
    dest_flush(fx.ds);
    fx_reload(&fx, &next);
    CU_ASSERT(dest_pending(fx.ds) == p.len);
    dest_housekeeping(fx.ds);
    CU_ASSERT(dest_pending(fx.ds) == p.len);        /* not yet */
    unit_ev_run_for(fx.loop, 0.1);
    dest_housekeeping(fx.ds);
    CU_ASSERT(dest_pending(fx.ds) == 0);
    close(udp);
    fx_stop(&fx);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "reload keeps an unchanged destination connected", test_reload_keeps_an_unchanged_destination_connected },
        { "reload: a changed target sends its old queue first", test_reload_changed_target_sends_its_old_queue_first },
        { "reload: a retired queue is dropped after drain_timeout", test_reload_retired_queue_is_dropped_after_the_drain_timeout },
        { "udp forwards bytes unchanged", test_udp_forwards_bytes_unchanged },
        { "hep_version 3 converts v2", test_hep_version_3_converts_v2 },
        { "rewrite node name, capture id, auth key", test_rewrite_node_name_capture_id_auth_key },
        { "max_packet counts too_big", test_max_packet_counts_too_big },
        { "udp full batch flushes early", test_udp_full_batch_flushes_early },
        { "re-encoded batch larger than the arena", test_reencoded_batch_larger_than_arena },
        { "all sends a copy to every target", test_all_sends_a_copy_to_every_target },
        { "hash is stable and spreads", test_hash_is_stable_and_spreads },
        { "round_robin alternates", test_round_robin_alternates },
        { "failover skips a refusing udp target", test_failover_skips_refusing_udp_target },
        { "udp refusals take a target down, a probe brings it up",
          test_udp_refusals_take_a_target_down_and_a_probe_brings_it_up },
        { "tcp keepalive and user timeout are set", test_tcp_keepalive_and_user_timeout_are_set },
        { "tcp frames arrive whole in order", test_tcp_frames_arrive_whole_in_order },
        { "tcp down target queues until reconnect", test_tcp_down_target_queues_until_reconnect },
        { "tcp queue full drops oldest", test_tcp_queue_full_drops_oldest },
        { "abandon counts what a down target still queues", test_abandon_counts_what_a_down_target_still_queues },
        { "tcp reconnects after the peer closes", test_tcp_reconnects_after_peer_closes },
        { "tcp cut frame is not resumed after reconnect", test_tcp_cut_frame_is_not_resumed_after_reconnect },
        { "tcp overflow keeps the stream whole", test_tcp_overflow_keeps_the_stream_whole },
        { "tcp balance skips a disconnected target", test_tcp_balance_skips_disconnected_target },
        { NULL, NULL },
    };
    return unit_run("dest", tests);
}
